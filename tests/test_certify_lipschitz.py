"""Lipschitz bounds: the global upper bound is never below any measured local constant."""

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


class _MatMul(nn.Module):
    """``x @ W``: a linear map without a closed-form norm, so power iteration bounds it."""

    def __init__(self, d=6, seed=6):
        super().__init__()
        self.W = nn.Parameter(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x):
        return x @ self.W


def _power_iteration_each_step(forward, transpose, shape, iterations):
    """Reference: read the estimate and test convergence after every step."""
    v = torch.randn((1,) + shape, generator=torch.Generator().manual_seed(0))
    sigma = 0.0
    for _ in range(iterations):
        v = v / v.norm().clamp(min=1e-30)
        w = transpose(forward(v))
        previous, sigma = sigma, float(w.norm().sqrt())
        v = w
        if abs(sigma - previous) <= 1e-7 * sigma:
            break
    return sigma


@pytest.mark.parametrize("iterations", [1, 7, 10, 25, 56, 100])
def test_power_iteration_read_in_blocks_equals_reading_every_step(iterations):
    # the map converges at step 56, inside a block of reads; any step budget gives the per-step answer
    import math

    from probekit.certify.graph import trace
    from probekit.certify.lipschitz import _linear_parts, _operator_norm

    model = _MatMul()
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    X = torch.randn(1, 6)
    with torch.no_grad():
        graph = trace(adapter, X)
        bound = graph.bind(X)
        op = next(op for op in graph.ops if op.kind == "linear")
        shapes = [graph.op(name).shape for name in op.inputs]
        forward, transpose = _linear_parts(bound, op, 0, shapes)
        sigma = _power_iteration_each_step(forward, transpose, shapes[0], iterations)
        holder = math.sqrt(_operator_norm(bound, op, 0, shapes, "l1") * _operator_norm(bound, op, 0, shapes, "linf"))
        got = _operator_norm(bound, op, 0, shapes, "l2", iterations=iterations)
    assert got == min(holder, 1.01 * sigma)
    if iterations == 100:
        exact = float(torch.linalg.matrix_norm(model.W.detach().double(), 2))
        assert exact * (1 - 1e-5) <= got <= 1.01 * exact * (1 + 1e-5)
