"""Diagnostics against closed forms on linear models, sampled points, and masked / ordinary model pairs."""

import math

import pytest
import torch

from probekit import FeatureModel, goals, outputs
from probekit.diagnose import MaskingVerdict, RobustnessCurve, gradient_masking, margin, robustness_curve
from probekit.search.continuous import vector_norm

W = [1.0, -3.0, 0.5, 2.0]
DUAL = {"linf": 1, "l2": 2, "l1": math.inf}


def linear(w, b=0.0):
    model = torch.nn.Linear(len(w), 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w)[None])
        model.bias.fill_(b)
    return model


def mlp(n_in=6, seed=1):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


class Quantised(torch.nn.Module):
    """Rounds its input to a grid: the gradient is zero almost everywhere."""

    def __init__(self, model, step=0.25):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, x):
        return self.model(torch.round(x / self.step) * self.step)


class _ZeroGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.zeros_like(grad)


class StraightThroughZero(torch.nn.Module):
    """Identity forward, zero backward: looks perfectly robust to gradient attacks."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(_ZeroGrad.apply(x))


class Noisy(torch.nn.Module):
    """Adds noise in every forward pass, also in eval mode."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x + 0.05 * torch.randn_like(x))


# ------------------------------------------------------------------ margin
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_margin_linear_closed_form(norm):
    pytest.importorskip("probekit.certify")
    adapter = FeatureModel(linear(W, 0.3), output=outputs.value(0), device="cpu")
    X = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    X = X[adapter.score(X) > 0.05]
    frame = margin(adapter, X, goal=goals.below(0.0), norm=norm, search_steps=12)
    exact = (adapter.score(X) / torch.linalg.vector_norm(torch.tensor(W), ord=DUAL[norm])).numpy()
    assert frame["first_order"].to_numpy() == pytest.approx(exact, rel=1e-4)
    assert frame["upper"].to_numpy() == pytest.approx(exact, rel=5e-3)
    assert frame["lower"].to_numpy() == pytest.approx(exact, rel=5e-3)
    assert (frame["lower"] <= frame["upper"] + 1e-6).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_margin_lower_below_upper_and_sound(norm):
    pytest.importorskip("probekit.certify")
    net = mlp()
    adapter = FeatureModel(net, output=outputs.margin(1), device="cpu")
    X = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    frame = margin(adapter, X, norm=norm, search_steps=8, steps=20)
    assert frame["attack_success"].all()
    assert (frame["lower"] <= frame["upper"] + 1e-6).all()
    assert (frame["lower"] > 0).all()
    # nothing sampled inside the certified radius reaches the goal
    bound = adapter.bind(goals.flip(), X)
    g = torch.Generator().manual_seed(3)
    n_draws = 400
    rows = torch.arange(5).repeat_interleave(n_draws)
    radius = torch.tensor(frame["lower"].to_numpy(), dtype=torch.float32)[rows]
    d = torch.randn(rows.numel(), 6, generator=g) if norm == "l2" else torch.rand(rows.numel(), 6, generator=g) * 2 - 1
    d = d / vector_norm(d, norm)[:, None] * radius[:, None]
    _, gv = adapter.evaluate(X[rows] + d, bound, rows=rows)
    assert (gv > 0).all()


def test_margin_without_certifier():
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu")
    frame = margin(adapter, torch.randn(3, 6), certifier=None, search_steps=4, steps=10)
    assert frame["lower"].isna().all()
    assert set(frame.columns) >= {"id", "g", "first_order", "upper", "lower", "attack_success"}


# -------------------------------------------------------- robustness curve
def test_robustness_curve_linear_exact():
    adapter = FeatureModel(linear(W), output=outputs.margin(0), device="cpu")
    X = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    eps = [0.0, 0.1, 0.3, 0.6, 1.2]
    curve = robustness_curve(adapter, X, eps=eps, norm="l2", n_random=10, steps=20)
    assert isinstance(curve, RobustnessCurve)
    frame = curve.to_frame()
    true_margin = adapter.score(X).abs() / torch.tensor(W).norm()
    for e in eps:
        attacked = float(frame[(frame.method == "pgd") & (frame.eps == e)].robust.iloc[0])
        assert attacked == pytest.approx(float((true_margin > e).float().mean()))
        random = float(frame[(frame.method == "random") & (frame.eps == e)].robust.iloc[0])
        assert random >= attacked
    assert float(frame[(frame.method == "random") & (frame.eps == 0.0)].robust.iloc[0]) == 1.0


def test_robustness_curve_with_labels_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    net = mlp()
    adapter = FeatureModel(net, output=outputs.logit(1), device="cpu")
    X = torch.randn(20, 6, generator=torch.Generator().manual_seed(4))
    labels = torch.randint(0, 2, (20,), generator=torch.Generator().manual_seed(5))
    curve = robustness_curve(adapter, X, labels=labels, eps=[0.0, 0.5], norm="linf", attack="fgsm", n_random=5)
    frame = curve.to_frame()
    accuracy = float((net(X).argmax(dim=1) == labels).float().mean())
    assert float(frame[(frame.method == "fgsm") & (frame.eps == 0.0)].robust.iloc[0]) == pytest.approx(accuracy)
    assert curve.plot() is curve


# -------------------------------------------------------- gradient masking
@pytest.fixture
def masked_setup():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 2))
    X = torch.randn(24, 6, generator=torch.Generator().manual_seed(0))
    return net, X


def test_ordinary_model_not_flagged(masked_setup):
    net, X = masked_setup
    verdict = gradient_masking(FeatureModel(net, output=outputs.margin(1), device="cpu"), X, eps=2.0, steps=20,
                               n_search=64)
    assert isinstance(verdict, MaskingVerdict)
    assert not verdict.flagged, verdict.reasons
    assert verdict.evidence["white_box_success"] > 0.2
    assert len(verdict.to_frame()) == 24


@pytest.mark.parametrize("wrapper", [Quantised, StraightThroughZero])
def test_masked_models_flagged(masked_setup, wrapper):
    net, X = masked_setup
    adapter = FeatureModel(wrapper(net), output=outputs.margin(1), device="cpu")
    verdict = gradient_masking(adapter, X, eps=2.0, steps=20, n_search=64)
    assert verdict.flagged
    assert verdict.evidence["zero_or_nonfinite_gradient_fraction"] > 0.9
    assert verdict.evidence["white_box_success"] < verdict.evidence["transfer_success"]
    assert any("transfer" in r for r in verdict.reasons)
    # a user-given surrogate (the unmasked network) exposes it too
    given = gradient_masking(adapter, X, eps=2.0, steps=20, n_search=16, surrogate=net)
    assert given.evidence["surrogate"] == "given"
    assert given.evidence["transfer_success"] > given.evidence["white_box_success"]


def test_stochastic_model_flagged(masked_setup):
    net, X = masked_setup
    verdict = gradient_masking(FeatureModel(Noisy(net), output=outputs.margin(1), device="cpu"), X[:8], eps=0.5,
                               steps=5, n_search=8)
    assert verdict.flagged
    assert any("stochastic" in r for r in verdict.reasons)


def test_diagnostics_on_one_hot_sequences(device):
    from probekit import SequenceModel
    from probekit.testing import ToyConv, random_sequences

    adapter = SequenceModel(ToyConv(), output=outputs.margin(1), device=device)
    X = adapter.encode(random_sequences(5, 12, seed=2))
    frame = margin(adapter, X, norm="l2", search_steps=5, steps=10)
    assert frame["attack_success"].all()
    assert (frame["lower"].fillna(0) <= frame["upper"] + 1e-6).all()
    curve = robustness_curve(adapter, X, eps=[0.0, 1.0], norm="l2", n_random=4, steps=10).to_frame()
    assert (curve[curve.eps == 0.0].robust == 1.0).all()
    verdict = gradient_masking(adapter, X, eps=1.0, norm="l2", steps=10, n_search=16)
    assert not verdict.flagged, verdict.reasons


def test_margin_uses_per_input_radii_when_the_certifier_takes_them(monkeypatch):
    import probekit.diagnose as diagnose

    w = torch.tensor(W)
    adapter = FeatureModel(linear(W, 0.3), output=outputs.value(0), device="cpu")
    calls = []

    def exact_certifier(adapter, X, *, eps, norm, goal):
        calls.append(torch.as_tensor(eps).numel())
        eps = torch.as_tensor(eps).expand(X.shape[0])
        lowest = adapter.score(X) - eps * torch.linalg.vector_norm(w, ord=DUAL[norm])
        return type("B", (), {"certified": lowest > 0})()

    monkeypatch.setattr(diagnose, "_certify_fn", lambda name: exact_certifier)
    X = torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0], [3.0, -1.0, 0.0, 0.0]])
    frame = margin(adapter, X, goal=goals.below(0.0), norm="l2", search_steps=12)
    exact = (adapter.score(X) / w.norm()).numpy()
    assert frame["lower"].to_numpy() == pytest.approx(exact, rel=1e-3)
    assert all(n == 3 for n in calls[:1]) and len(calls) <= 1 + 12 + 4


def test_displays():
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu")
    X = torch.randn(6, 6, generator=torch.Generator().manual_seed(7))
    curve = robustness_curve(adapter, X, eps=[0.0, 0.5], n_random=3, steps=5)
    assert "<table" in curve._repr_html_()
    verdict = gradient_masking(adapter, X, eps=0.5, steps=5, n_search=8, ids=[f"m{i}" for i in range(6)])
    assert "<table" in verdict._repr_html_()
    assert verdict.to_frame()["id"].tolist()[0] == "m0"
