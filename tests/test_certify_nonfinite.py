"""Certificates refuse non-finite model outputs: a NaN or an infinity proves nothing.

Toy models return NaN (``exp`` overflowing to inf, then ``inf - inf``) or inf on
some inputs or some edited inputs. Such an input is never reported certified: it
gets a status and a reason naming what the model returned, the rest of the batch
is certified as before, and each call warns once with the count.
"""

import math
import warnings

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit._warnings import ProbekitWarning
from probekit.certify import bit_flips, crown, error_bound, ibp, lipschitz, smoothing, substitutions
from probekit.diagnose import margin, robustness_curve
from probekit.results import PerturbationResult

L = 8
NAN_POS = 2  # a T at this position overflows the model


class NanAtBase(nn.Module):
    """Score ``sum(W * x)`` (|score| <= 8), NaN when the sequence holds a T at ``NAN_POS``.

    ``exp(200)`` is inf in float32, and ``inf - inf`` is NaN; traceable by the bounds.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("W", torch.linspace(-1, 1, 4 * L).reshape(4, L))

    def forward(self, x):
        s = (x * self.W).sum((1, 2))
        e = torch.exp(200.0 * x[:, 3, NAN_POS])
        return (s + (e - e))[:, None]


class NanAtFeature(nn.Module):
    """``x @ w`` (|value| <= 1.2 on binary inputs), NaN when feature 0 is 1."""

    def __init__(self, f=6):
        super().__init__()
        self.register_buffer("w", torch.linspace(-0.2, 0.2, f))

    def forward(self, x):
        e = torch.exp(200.0 * x[:, 0])
        return (x @ self.w + (e - e))[:, None]


def _dna(seqs):
    return torch.nn.functional.one_hot(torch.tensor([["ACGT".index(c) for c in s] for s in seqs]), 4).permute(0, 2, 1).float()


def _refusals(caught):
    """The warnings that report refused inputs (one per call)."""
    return [w for w in caught if issubclass(w.category, ProbekitWarning) and "NaN or inf on" in str(w.message)]


def _run(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, _refusals(caught)


# ----------------------------------------------------------------- substitutions
@pytest.mark.parametrize("route", [dict(), dict(max_enumerate=0), dict(max_enumerate=0, attack=False)],
                         ids=["enumeration", "bounds-attack", "branch-and-bound"])
def test_substitutions_refuse_nan_mutants_and_inputs(route):
    adapter = SequenceModel(NanAtBase(), output=outputs.value(0), device="cpu")
    # 0: a T at NAN_POS is one substitution away; 1: the model is NaN on the input itself;
    # 2: NAN_POS may not be edited, so every edited sequence is finite
    X = _dna(["ACGAACGT", "ACTAACGT", "ACGAACGT"])
    positions = torch.ones(3, L, dtype=torch.bool)
    positions[2, NAN_POS] = False
    goal = goals.below(-100.0)  # no finite sequence reaches it: |score| <= 8
    r, refusals = _run(substitutions, adapter, X, k=1, goal=goal, positions=positions, max_nodes=256, **route)
    assert r.status[0] == "unknown"  # a NaN mutant is not "not a counterexample"
    assert "NaN" in r.reasons[0] and "k=1" in r.reasons[0]
    assert r.status[1] == "error" and r.reasons[1] == "the model returned NaN on this input"
    assert r.status[2] == "certified" and r.reasons[2] == ""
    assert r.g_lower[0] == -math.inf
    assert len(refusals) == 1 and "2 of 3" in str(refusals[0].message)
    frame = r.to_frame()
    assert list(frame["reason"]) == r.reasons


def test_substitution_certificate_is_sound_where_it_certifies():
    adapter = SequenceModel(NanAtBase(), output=outputs.value(0), device="cpu")
    X = _dna(["ACGAACGT"])
    positions = torch.ones(1, L, dtype=torch.bool)
    positions[0, NAN_POS] = False
    goal = goals.below(-1.0)
    r = substitutions(adapter, X, k=2, goal=goal, positions=positions, max_enumerate=0, attack=False)
    # every sequence within 2 substitutions at the allowed positions stays above -1
    free = [p for p in range(L) if p != NAN_POS]
    worst = math.inf
    for i in free:
        for j in free:
            for a in range(4):
                for b in range(4):
                    x = X.clone()
                    x[0, :, i] = 0
                    x[0, a, i] = 1
                    x[0, :, j] = 0
                    x[0, b, j] = 1
                    worst = min(worst, float(adapter.score(x)[0]))
    assert math.isfinite(worst)
    assert (r.status[0] == "certified") == (worst > -1.0)
    if r.status[0] == "certified":
        assert float(r.g_lower[0]) <= worst + 1.0 + 1e-5


def test_bit_flips_refuse_nan_flips_and_inputs():
    adapter = FeatureModel(NanAtFeature(), output=outputs.value(0), kinds="binary", device="cpu")
    X = torch.tensor([[0.0, 1, 0, 1, 0, 1], [1.0, 1, 0, 1, 0, 1], [0.0, 1, 0, 1, 0, 1]])
    features = torch.ones(3, 6, dtype=torch.bool)
    features[2, 0] = False
    r, refusals = _run(bit_flips, adapter, X, k=1, goal=goals.below(-100.0), features=features)
    assert r.status == ["unknown", "error", "certified"]
    assert "NaN" in r.reasons[0] and r.reasons[1] == "the model returned NaN on this input"
    assert len(refusals) == 1


# ----------------------------------------------------------------- bounds
class Exp(nn.Module):
    def forward(self, x):
        return torch.exp(10.0 * x)


@pytest.mark.parametrize("method", [ibp, crown])
def test_bounds_refuse_an_infinite_output(method):
    # exp(100) is inf: its bounds are [inf, inf], which once "certified" that the score stays positive
    adapter = FeatureModel(Exp(), output=outputs.value(0), device="cpu")
    X = torch.tensor([[0.0], [10.0]])
    b, refusals = _run(method, adapter, X, eps=0.01)
    assert bool(b.certified[0]) and not bool(b.certified[1])
    assert b.params["error"] == ["", "the model returned inf on this input"]
    assert math.isnan(float(b.lower[1])) and math.isnan(float(b.upper[1]))
    assert len(refusals) == 1 and "1 of 2" in str(refusals[0].message)
    # the certified row is sound: sampled points of its ball stay inside its bounds
    pts = X[:1] + 0.01 * (2 * torch.rand(256, 1, generator=torch.Generator().manual_seed(0)) - 1)
    s = adapter.score(pts)
    assert bool((s >= b.lower[0] - 1e-5).all() and (s <= b.upper[0] + 1e-5).all())


@pytest.mark.parametrize("method", [ibp, crown])
def test_bounds_refuse_nan_outputs_and_go_on(method):
    # row 1: NaN from the model (exp overflows, inf - inf); row 2: a NaN feature; rows 0 and 3 are fine
    adapter = FeatureModel(NanAtFeature(2), output=outputs.value(0), device="cpu")
    X = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, math.nan], [0.0, 0.5]])
    b, refusals = _run(method, adapter, X, eps=0.01)
    assert b.params["error"] == ["", "the model returned NaN on this input", "the model returned NaN on this input", ""]
    assert b.certified.tolist() == [True, False, False, True]
    assert bool(torch.isnan(b.lower[1:3]).all()) and bool(torch.isfinite(b.lower[[0, 3]]).all())
    assert len(refusals) == 1 and "2 of 4" in str(refusals[0].message)


def test_crown_rows_turn_overflowed_bounds_into_the_whole_line():
    # finite at the input, NaN inside the set: the bound must not be NaN (a NaN lower bound compares false
    # with 0, and branch and bound closed such a branch as if it were proved)
    from probekit.certify.crown import crown_rows
    from probekit.certify.ibp import prepare

    adapter = SequenceModel(NanAtBase(), output=outputs.value(0), device="cpu")
    with torch.no_grad():
        problem = prepare(adapter, _dna(["ACGAACGT"]), k=1, goal=goals.below(-100.0))
        lo, hi = crown_rows(problem, problem.goal)
    assert not bool(torch.isnan(lo).any() or torch.isnan(hi).any())
    assert float(problem.goal.interval(lo, hi)[0][0]) == -math.inf


# ----------------------------------------------------------------- smoothing
class NanBeyond(nn.Module):
    """Two logits favouring class 0 by 5, NaN where feature 0 exceeds 3 (not traceable: smoothing only)."""

    def forward(self, x):
        logits = torch.stack([5.0 + 0 * x[:, 0], 0 * x[:, 0]], 1)
        return torch.where(x[:, :1] > 3, torch.full_like(logits, math.nan), logits)


def test_smoothing_abstains_on_nan_inputs_and_noisy_copies():
    adapter = FeatureModel(NanBeyond(), output=0, device="cpu")
    X = torch.tensor([[0.0, 0.0], [2.6, 0.0], [5.0, 0.0]])  # fine; some noisy copies NaN; NaN itself
    r, refusals = _run(smoothing, adapter, X, sigma=0.25, n0=50, n=500)
    assert int(r.prediction[0]) == 0 and float(r.radius[0]) > 0
    assert r.prediction[1:].tolist() == [-1, -1]
    assert r.radius[1:].tolist() == [0.0, 0.0] and bool(torch.isnan(r.p_lower[1:]).all())
    assert r.params["error"][0] == ""
    assert "noisy copies" in r.params["error"][1]
    assert r.params["error"][2] == "the model returned NaN on this input"
    assert len(refusals) == 1


# ----------------------------------------------------------------- Lipschitz
def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))


def test_lipschitz_and_error_bound_refuse_nan_outputs():
    adapter = FeatureModel(_mlp(), output=outputs.value(0), device="cpu")
    X = torch.tensor([[0.0, 0.0, 0.0], [math.nan, 0.0, 0.0], [1.0, 0.0, 0.0]])
    r, refusals = _run(lipschitz, adapter, X=X, n_samples=4, rounds=1)
    assert math.isfinite(r.upper)
    assert torch.isfinite(r.lower[[0, 2]]).all() and math.isnan(float(r.lower[1]))
    assert r.reasons == ["", "the model returned NaN on this input", ""]
    assert list(r.to_frame()["reason"]) == r.reasons
    assert len(refusals) == 1
    for method in ("lipschitz", "crown", "both"):
        e, refusals = _run(error_bound, adapter, X, input_error=0.1, method=method)
        # "lipschitz" once gave the NaN input a finite error bound, L * 0.1
        assert math.isnan(float(e[1])) and torch.isfinite(e[[0, 2]]).all(), method
        assert len(refusals) == 1


# ----------------------------------------------------------------- diagnose
class OverflowAbove(nn.Module):
    """Margin ``t - x0`` between two logits, NaN once ``exp(1000 (x0 - 3))`` overflows (x0 > 3.09); traceable."""

    def __init__(self, t):
        super().__init__()
        self.t = t

    def forward(self, x):
        e = torch.exp(1000.0 * (x[:, :1] - 3.0))
        first = self.t - x[:, :1] + (e - e)  # e - e is exactly 0, or NaN where e is inf
        return torch.cat([first, 0.0 * first], 1)


def test_margin_marks_nan_inputs_and_goes_on():
    adapter = FeatureModel(OverflowAbove(2.0), output=outputs.margin(0), device="cpu")
    X = torch.tensor([[0.0, 0.0], [5.0, 0.0], [1.0, 0.0]])  # margins 2, NaN, 1
    frame, refusals = _run(margin, adapter, X, search_steps=6, steps=20)
    assert list(frame["error"]) == ["", "the model returned NaN on this input", ""]
    row = frame.iloc[1]
    assert math.isnan(row["g"]) and math.isnan(row["lower"]) and math.isnan(row["upper"]) and not row["attack_success"]
    good = frame.iloc[[0, 2]]
    assert (good["lower"] > 0).all() and (good["lower"] <= good["upper"] + 1e-6).all()
    assert (good["lower"] <= [2.0 + 1e-6, 1.0 + 1e-6]).all()  # sound: the true margins are 2 and 1
    assert len(refusals) == 1


def _attack_into_nan(adapter, X, *, goal, eps, norm):
    """An 'attack' that moves feature 0 up by eps: into the NaN region from 2.5 at eps 1, and reports no success."""
    delta = torch.zeros_like(X)
    delta[:, 0] = eps
    score = adapter.score(X)
    return PerturbationResult(x_adv=X + delta, delta=delta, norm=eps.clone(), score_before=score,
                              score_after=adapter.score(X + delta), success=torch.zeros(X.shape[0], dtype=torch.bool))


def test_robustness_curve_leaves_out_nan_inputs_and_counts_nan_candidates_as_reached():
    adapter = FeatureModel(OverflowAbove(10.0), output=outputs.margin(0), device="cpu")
    X = torch.tensor([[2.5, 0.0], [5.0, 0.0], [0.0, 0.0]])
    curve, refusals = _run(robustness_curve, adapter, X, eps=[0.0, 1.0], attack=_attack_into_nan, n_random=8)
    frame = curve.to_frame()
    assert (frame["n"] == 2).all()
    assert curve.params["error"][1] == "the model returned NaN on this input"
    attacked = frame[frame.method == "_attack_into_nan"].set_index("eps")["robust"]
    # at eps 1 the attack lands on NaN for input 0: no evidence of robustness there
    assert attacked[0.0] == 1.0 and attacked[1.0] == 0.5
    worst = frame[frame.method == "random (worst of 8)"].set_index("eps")["robust"]
    assert worst[1.0] == 0.5  # some draw of input 0 lands in the NaN region (x0 + 1 > 3.09)
    assert len(refusals) == 1


def test_bounds_and_smoothing_tables_say_why_an_input_was_refused():
    from probekit.certify import smoothing

    X = torch.tensor([[0.0], [10.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = ibp(FeatureModel(Exp(), output=outputs.value(0), device="cpu"), X, eps=0.01).to_frame()
        smoothed = smoothing(FeatureModel(NanBeyond(), output=0, device="cpu"),
                             torch.tensor([[0.0, 0.0], [5.0, 0.0]]), sigma=0.1, n=50, n0=10).to_frame()  # fmt: skip
    assert frame["error"].isna().tolist() == [True, False] and frame["error"][1] == "the model returned inf on this input"
    assert smoothed["error"].isna().tolist() == [True, False] and "NaN" in smoothed["error"][1]
