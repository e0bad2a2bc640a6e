"""Bounds of ordinary DNA CNNs: which method runs, and that it stays sound.

A 32-channel CNN over 200 bp is the size of a real model. The CROWN box of its
second convolution runs each neuron's backward pass over its receptive window
(34 positions, not 200); where a model is no such stack (both strands) and the
dense pass would cost too much, that layer gets an IBP box (CROWN-IBP) and the
result says so. Timings belong in ``benchmarks/``; these tests check the choice,
the report and soundness: sampled points and random substitutions inside the
set stay within the bounds, which are never looser than IBP's, and the windowed
boxes equal the dense ones.
"""

import warnings

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, outputs
from probekit._warnings import ProbekitWarning
from probekit.certify import crown, ibp
from probekit.certify.crown import _bn_backward, _conv_backward, intermediate_boxes, node_bounds
from probekit.certify.graph import trace
from probekit.certify.ibp import prepare
from probekit.certify.windows import plan


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(4, 32, 15, padding=7), nn.ReLU(), nn.MaxPool1d(4),
        nn.Conv1d(32, 32, 5), nn.ReLU(), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, 2),
    ).eval()


def one_hot(n, length, seed=1):
    idx = torch.randint(0, 4, (n, length), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float()


def _caught(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, ProbekitWarning)]


def _scores_in_box(adapter, X, eps, n=64, seed=0):
    """Scores (n, N) of random points and corners of each input's L-inf ball cut to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = (X - eps).clamp(0, 1), (X + eps).clamp(0, 1)
    u = torch.rand((n,) + tuple(X.shape), generator=g)
    u[: n // 2] = u[: n // 2].round()  # corners, where ReLU nets take their extremes
    pts = lo + u * (hi - lo)
    return adapter.score(pts.reshape((-1,) + tuple(X.shape[1:]))).reshape(n, X.shape[0])


def _random_substitutions(X, k, n=128, seed=0):
    """n random sequences within k substitutions of each input: (n, N, 4, L)."""
    g = torch.Generator().manual_seed(seed)
    out = X[None].repeat(n, 1, 1, 1)
    length = X.shape[-1]
    for _ in range(k):
        pos = torch.randint(0, length, (n, X.shape[0]), generator=g)
        base = torch.randint(0, 4, (n, X.shape[0]), generator=g)
        col = torch.nn.functional.one_hot(base, 4).float()
        out[torch.arange(n)[:, None], torch.arange(X.shape[0])[None], :, pos] = col
    return out


def test_cnn_layers_get_windowed_crown_boxes():
    adapter = SequenceModel(cnn(), output=1, device="cpu")
    X = one_hot(4, 200)
    b, messages = _caught(crown, adapter, X, eps=0.01)
    assert b.method == "crown" and b.params["ibp_layers"] == [] and not messages
    # the first convolution reads the box (exact already); the ReLU and max pooling take their boxes from
    # their inputs' boxes, so they get no pass of their own
    assert b.params["boxes"] == {"Conv1d (model.0)": "exact", "Conv1d (model.3)": "crown (windows)"}
    a = ibp(adapter, X, eps=0.01)
    assert bool(((b.upper - b.lower) < 0.5 * (a.upper - a.lower)).all())
    s = _scores_in_box(adapter, X, 0.01)
    assert bool((s >= b.lower - 1e-5).all() and (s <= b.upper + 1e-5).all())


def test_costly_layers_outside_a_stack_get_ibp_boxes_and_the_result_says_so():
    adapter = SequenceModel(cnn(), output=1, device="cpu", strands="both")
    X = one_hot(3, 200)
    b, messages = _caught(crown, adapter, X, eps=0.01)
    assert b.method == "crown-ibp"
    # the forward strand is a stack (windows); its reverse complement is not, and the dense pass costs too much
    hows = {label: how for label, how in b.params["boxes"].items() if label.startswith("Conv1d (model.3)")}
    assert sorted(hows.values()) == ["crown (windows)", "ibp"]
    assert len(b.params["ibp_layers"]) == 1 and b.params["ibp_layers"][0].startswith("Conv1d (model.3) [")
    crown_ibp = [m for m in messages if m.startswith("CROWN-IBP bounds")]
    assert len(crown_ibp) == 1 and "max_neurons=1472" in crown_ibp[0]
    a = ibp(adapter, X, eps=0.01)
    assert bool(((b.upper - b.lower) <= (a.upper - a.lower) + 1e-5).all())
    assert bool(((b.upper - b.lower) < 0.9 * (a.upper - a.lower)).all())  # the backward pass still pays off
    s = _scores_in_box(adapter, X, 0.01)
    assert bool((s >= b.lower - 1e-5).all() and (s <= b.upper + 1e-5).all())


def test_cnn_substitution_bounds_are_sound_and_no_looser_than_ibp():
    adapter = SequenceModel(cnn(), output=1, device="cpu")
    X = one_hot(3, 200, seed=2)
    b = crown(adapter, X, k=2)
    a = ibp(adapter, X, k=2)
    assert b.method == "crown" and b.norm == "hamming"
    assert b.params["boxes"]["Conv1d (model.3)"] == "crown (windows)"
    assert bool(((b.upper - b.lower) <= (a.upper - a.lower) + 1e-5).all())
    mutants = _random_substitutions(X, 2)
    s = adapter.score(mutants.reshape(-1, 4, 200)).reshape(mutants.shape[0], 3)
    assert bool((s >= b.lower - 1e-5).all() and (s <= b.upper + 1e-5).all())


@pytest.mark.parametrize("eps", [0.005, 0.05])
def test_crown_and_crown_ibp_are_sound_and_no_looser_than_ibp(eps):
    adapter = SequenceModel(cnn(), output=0, device="cpu")
    X = one_hot(3, 60, seed=3)
    full = crown(adapter, X, eps=eps)
    mixed = crown(adapter, X, eps=eps, intermediate="ibp")
    plain = ibp(adapter, X, eps=eps)
    assert full.method == "crown" and full.params["ibp_layers"] == []
    assert mixed.method == "crown-ibp" and mixed.params["intermediate"] == "ibp"
    assert bool(((mixed.upper - mixed.lower) <= (plain.upper - plain.lower) + 1e-5).all())
    assert bool(((full.upper - full.lower) <= (plain.upper - plain.lower) + 1e-5).all())
    s = _scores_in_box(adapter, X, eps)
    for b in (full, mixed):
        assert bool((s >= b.lower - 1e-5).all() and (s <= b.upper + 1e-5).all())


def _stacks():
    torch.manual_seed(0)
    first = nn.Sequential(
        nn.Conv1d(4, 8, 7, padding=3), nn.ReLU(), nn.MaxPool1d(3),
        nn.Conv1d(8, 6, 3, stride=2, dilation=2, padding=1), nn.ReLU(), nn.Conv1d(6, 5, 3), nn.ReLU(),
    )
    second = nn.Sequential(
        nn.Conv1d(4, 8, 5), nn.BatchNorm1d(8), nn.Sigmoid(), nn.MaxPool1d(4, stride=2, padding=1), nn.Dropout(),
        nn.Conv1d(8, 8, 3, padding=2, groups=2), nn.Tanh(), nn.Conv1d(8, 4, 2), nn.LeakyReLU(0.1),
    )
    second[1].running_mean.normal_()
    second[1].running_var.uniform_(0.5, 2.0)
    third = nn.Sequential(
        nn.Conv1d(4, 6, 4, padding="same"), nn.ELU(), nn.MaxPool1d(2, ceil_mode=True),
        nn.Conv1d(6, 6, 6, padding="same", dilation=2), nn.Softplus(), nn.Conv1d(6, 3, 3, padding="valid"), nn.ReLU(),
    )
    return [first.eval(), second.eval(), third.eval()]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("model", _stacks(), ids=["relu-pool-strided", "bn-sigmoid-groups", "same-elu-ceil"])
@pytest.mark.parametrize("where", [dict(eps=0.1), dict(eps=0.3, norm="l2"), dict(eps=0.5, norm="l1"), dict(k=2)],
                         ids=["linf", "l2", "l1", "k2"])
def test_windowed_boxes_equal_dense_ones(model, where):
    adapter = SequenceModel(model, output=lambda y: y.reshape(y.shape[0], -1)[:, 0], device="cpu")
    X = one_hot(3, 50, seed=6)
    X[1, :, 10] = 0.0  # an N base: never edited
    with torch.no_grad():
        problem = prepare(adapter, X, **where)
        bounds, _ = intermediate_boxes(problem, max_neurons=10**9)
        checked = 0
        for op in problem.graph.ops[1:]:
            if op.kind == "linear" and plan(problem, op.name) is not None:
                got = node_bounds(problem, op.name, bounds)
                want = node_bounds(problem, op.name, bounds, dense=True)
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
                checked += 1
    assert checked >= 3


def test_default_keeps_crown_boxes_for_small_models():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)).eval()
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    b, messages = _caught(crown, adapter, torch.randn(4, 16), eps=0.05)
    assert b.method == "crown" and b.params["ibp_layers"] == [] and not messages


def test_explicit_max_neurons_keeps_its_meaning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)).eval()
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    b, messages = _caught(crown, adapter, torch.randn(2, 8), eps=0.05, max_neurons=16)
    assert b.method == "crown-ibp" and b.params["ibp_layers"] == ["Linear (model.2)"]
    assert any("wider than max_neurons=16" in m for m in messages)


# ------------------------------------------------ the direct transposes of conv and batch norm
def _generic_transpose(bound, op, a):
    """The transpose by vmap(vjp) of the operation itself (the path every other linear op takes)."""
    n = bound.n
    zeros = [torch.zeros((n,) + bound.graph.op(name).shape) for name in op.inputs]
    with torch.enable_grad():
        out, vjp_fn = torch.func.vjp(lambda *v: bound.apply(op, *v), *zeros)
    (grad,) = torch.func.vmap(vjp_fn)(a)
    return grad, (a * out).reshape(a.shape[0], a.shape[1], -1).sum(-1)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.Conv1d(4, 6, 5, padding=2), (4, 20)),
        (nn.Conv1d(4, 6, 3, stride=2, dilation=2, padding=3), (4, 21)),
        (nn.Conv1d(4, 6, 3, groups=2, bias=False), (4, 11)),
        (nn.Conv2d(3, 5, 3, stride=(1, 2), padding=1), (3, 7, 8)),
        (nn.BatchNorm1d(4), (4, 9)),
        (nn.BatchNorm1d(4), (4,)),
    ],
)
def test_direct_transposes_match_the_generic_one(layer, shape):
    torch.manual_seed(0)
    if isinstance(layer, nn.BatchNorm1d):
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
        layer.weight.data.normal_()
        layer.bias.data.normal_()
    model = nn.Sequential(layer).eval()
    adapter = FeatureModel(model, output=lambda y: y.reshape(y.shape[0], -1)[:, 0], device="cpu")
    X = torch.randn((2,) + shape)
    graph = trace(adapter, X)
    bound = graph.bind(X)
    op = graph.op(graph.output)
    a = torch.randn((3, 2) + tuple(op.shape))
    if isinstance(layer, nn.BatchNorm1d):
        got, got_bias = _bn_backward(layer, a)
    else:
        got, got_bias = _conv_backward(layer, a, shape)
    want, want_bias = _generic_transpose(bound, op, a)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.as_tensor(got_bias).expand(3, 2), want_bias, atol=1e-5, rtol=1e-5)


def test_margin_takes_crown_ibp_as_certifier():
    from probekit.diagnose import margin

    adapter = SequenceModel(cnn(), output=outputs.margin(1), device="cpu")
    X = one_hot(2, 200, seed=4)
    fast = margin(adapter, X, search_steps=4, steps=20, certifier="crown-ibp")
    full = margin(adapter, X, search_steps=4, steps=20)
    assert fast.attrs["certifier"] == "crown-ibp" and fast.attrs["bound_method"] == "crown-ibp"
    assert full.attrs["bound_method"] == "crown"
    # both radii are certified, so both lie below the attack's; CROWN's intermediate boxes find the larger
    assert (fast["lower"] > 0).all() and (fast["lower"] < full["lower"]).all()
    assert (full["lower"] <= full["upper"]).all()
