"""Lipschitz bounds: the global upper bound is never below any measured local constant."""

import math

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, outputs
from probekit.certify import error_bound, lipschitz
from probekit.certify.lipschitz import _conv1d_norm
from test_certify_bounds import CNN, Funky, mlp, one_hot

DUAL = {"l2": 2, "linf": 1, "l1": float("inf")}


def _pair_ratios(adapter, X, norm, m=64, scale=0.05, seed=0):
    """|f(x) - f(x')| / ||x - x'|| over random pairs near X: a lower bound of the constant."""
    gen = torch.Generator().manual_seed(seed)
    a = X.repeat_interleave(m, 0) + scale * torch.randn((X.shape[0] * m,) + tuple(X.shape[1:]), generator=gen)
    b = a + 1e-3 * torch.randn(a.shape, generator=gen)
    p = {"l2": 2, "linf": float("inf"), "l1": 1}[norm]
    d = torch.linalg.vector_norm((a - b).flatten(1), ord=p, dim=1)
    return ((adapter.score(a) - adapter.score(b)).abs() / d).max()


@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_upper_bound_above_measured_constants(norm):
    torch.manual_seed(0)
    cases = [
        (FeatureModel(mlp(), output=outputs.margin(0), device="cpu"), torch.randn(4, 5)),
        (FeatureModel(Funky(d=5), output=outputs.prob(1), device="cpu"), torch.randn(4, 5)),
        (SequenceModel(CNN(), output=1, device="cpu"), one_hot(3, 16)),
    ]
    for adapter, X in cases:
        r = lipschitz(adapter, norm=norm, X=X)
        assert (r.lower > 0).all()
        assert (r.lower <= r.upper * (1 + 1e-5)).all()
        assert _pair_ratios(adapter, X, norm) <= r.upper * (1 + 1e-4)


def test_linear_layer_is_exact_in_every_norm():
    torch.manual_seed(1)
    layer = nn.Linear(6, 1)
    adapter = FeatureModel(layer, output=outputs.value(0), device="cpu")
    w = layer.weight.detach()[0]
    X = torch.randn(3, 6)
    for norm, q in DUAL.items():
        r = lipschitz(adapter, norm=norm, X=X)
        want = float(torch.linalg.vector_norm(w, ord=q))
        assert r.upper == pytest.approx(want, rel=1e-4)
        torch.testing.assert_close(r.lower, torch.full((3,), want), rtol=1e-4, atol=1e-6)
    wide = nn.Linear(6, 4)
    W = wide.weight.detach()
    assert lipschitz(wide, input_shape=(6,)).upper == pytest.approx(float(torch.linalg.matrix_norm(W, 2)), rel=1e-5)
    assert lipschitz(wide, norm="linf", input_shape=(6,)).upper == pytest.approx(float(W.abs().sum(1).max()), rel=1e-5)
    assert lipschitz(wide, norm="l1", input_shape=(6,)).upper == pytest.approx(float(W.abs().sum(0).max()), rel=1e-5)


@pytest.mark.parametrize("padding,dilation,stride", [(2, 1, 1), (0, 2, 1), (1, 1, 2)])
def test_conv_norm_bounds_the_exact_spectral_norm(padding, dilation, stride):
    torch.manual_seed(2)
    conv = nn.Conv1d(3, 4, 5, padding=padding, dilation=dilation, stride=stride)
    length = 24
    jac = torch.autograd.functional.jacobian(lambda x: conv(x) - conv(torch.zeros_like(x)), torch.zeros(1, 3, length))
    exact = torch.linalg.matrix_norm(jac.reshape(-1, 3 * length), 2)
    bound = _conv1d_norm(conv.weight, length, padding, dilation, 1)
    assert exact <= bound * (1 + 1e-5)
    if stride == 1:
        assert bound <= exact * 1.1
    r = lipschitz(conv, X=torch.zeros(1, 3, length) + 0.5)
    assert r.upper >= float(exact) * (1 - 1e-5)


def test_error_bound_holds_for_sampled_errors():
    torch.manual_seed(3)
    adapter = FeatureModel(mlp(), output=outputs.value(1), device="cpu")
    X = torch.randn(5, 5)
    delta = 0.05
    bound = error_bound(adapter, X, input_error=delta, norm="l2")
    lip = error_bound(adapter, X, input_error=delta, norm="l2", method="lipschitz")
    assert (bound <= lip + 1e-6).all()
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(5 * 200, 5, generator=gen)
    noise = noise / noise.norm(dim=1, keepdim=True) * delta * torch.rand(5 * 200, 1, generator=gen)
    change = (adapter.score(X.repeat_interleave(200, 0) + noise) - adapter.score(X).repeat_interleave(200)).abs()
    assert (change.view(5, 200).max(1).values <= bound + 1e-5).all()


def test_exp_has_no_global_constant():
    class Exp(nn.Module):
        def forward(self, x):
            return torch.exp(x).sum(-1, keepdim=True)

    with pytest.raises(ValueError, match="exp"):
        lipschitz(FeatureModel(Exp(), output=0, device="cpu"), input_shape=(3,))


class _Buffer(nn.Module):
    """``x @ W`` with ``W`` a buffer: a linear map bounded through its matrix."""

    def __init__(self, W):
        super().__init__()
        self.register_buffer("W", W)

    def forward(self, x):
        return x @ self.W


def _hidden_top_direction():
    """A map whose largest singular direction is orthogonal to a seeded random start vector."""
    v = torch.randn((1, 2), generator=torch.Generator().manual_seed(0)).reshape(-1)
    v = v / v.norm()
    u = torch.stack([-v[1], v[0]])
    return torch.outer(v, v) + 1.05 * torch.outer(u, u)


def _exact(model, shape):
    jac = torch.autograd.functional.jacobian(lambda x: model(x) - model(torch.zeros_like(x)), torch.zeros((1,) + shape))
    return float(torch.linalg.matrix_norm(jac.reshape(-1, math.prod(shape)).double(), 2))


@pytest.mark.parametrize("written_out", [True, False])
def test_other_linear_maps_get_an_upper_bound_of_their_spectral_norm(written_out, monkeypatch):
    import importlib

    lipschitz_module = importlib.import_module("probekit.certify.lipschitz")
    if not written_out:  # maps too large to write out get the Hoelder bound
        monkeypatch.setattr(lipschitz_module, "_EXPLICIT", 0)
    gen = torch.Generator().manual_seed(7)
    cases = [
        (_Buffer(_hidden_top_direction()), (2,)),
        (_Buffer(torch.randn(12, 5, generator=gen)), (12,)),  # wider input than output
        (_Buffer(torch.randn(5, 12, generator=gen)), (5,)),
        (nn.Conv1d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 10)),
        (nn.Conv1d(3, 4, 3, padding=2, padding_mode="circular", stride=2), (3, 9)),
        (nn.Conv2d(2, 3, 3, padding=1), (2, 6, 5)),
        (nn.Conv2d(2, 4, 3, padding=2, dilation=2, stride=2, groups=2), (2, 7, 7)),
        (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="replicate"), nn.Flatten()), (2, 5, 5)),
    ]
    for model, shape in cases:
        exact = _exact(model, shape)
        upper = lipschitz(model, input_shape=shape).upper
        assert upper >= exact * (1 - 1e-6), (model, upper, exact)
        if written_out and not isinstance(model, nn.Conv2d):
            assert upper <= exact * (1 + 1e-5), (model, upper, exact)
    if written_out:  # the Fourier bound of a zero-padded Conv2d is close to its norm
        conv = nn.Conv2d(2, 3, 3, padding=1)
        assert lipschitz(conv, input_shape=(2, 8, 8)).upper <= _exact(conv, (2, 8, 8)) * 1.2


@pytest.mark.parametrize(
    "act",
    [nn.LeakyReLU(2.0), nn.LeakyReLU(0.1), nn.ELU(3.0), nn.ELU(0.5), nn.Softplus(beta=5.0), nn.Sigmoid(), nn.Tanh(),
     nn.Hardtanh(-0.5, 0.5), nn.ReLU6()],
)
def test_activation_slopes_bound_every_difference_quotient(act):
    grid = torch.linspace(-4, 4, 8001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        quotients = (act(grid[1:]) - act(grid[:-1])).abs() / (grid[1:] - grid[:-1])
    r = lipschitz(nn.Sequential(act), input_shape=(1,))
    assert float(quotients.max()) <= r.upper * (1 + 1e-5)
    adapter = FeatureModel(nn.Sequential(act), output=outputs.value(0), device="cpu")
    X = torch.tensor([[-1.0], [0.5]])
    bound = error_bound(adapter, X, input_error=0.1, method="lipschitz")
    moved = torch.stack([(adapter.score(X + d) - adapter.score(X)).abs() for d in (-0.1, 0.1)]).max(0).values
    assert (moved <= bound + 1e-6).all()


def test_an_activation_that_jumps_has_no_lipschitz_constant():
    from probekit.certify import UnsupportedOperation

    with pytest.raises(UnsupportedOperation, match="jumps by 0.313"):
        lipschitz(nn.Sequential(nn.Linear(2, 2), nn.Softplus(threshold=1.0)), input_shape=(2,))
    assert lipschitz(nn.Sequential(nn.Softplus()), input_shape=(1,)).upper == 1.0
