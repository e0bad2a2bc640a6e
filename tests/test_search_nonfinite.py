"""Searches on models that return NaN or infinity for some candidates: those are skipped, never chosen.

Oracles: linear models on one-hot DNA or binary features (every score by hand),
with brute-force enumeration of the finite candidates.
"""

import itertools
import math
import warnings

import pytest
import torch

from probekit import FeatureModel, ProbekitWarning, SequenceModel, goals, outputs
from probekit.encode.dna import one_hot
from probekit.search import (
    bit_flips,
    fgsm,
    min_perturbation,
    min_substitutions,
    pgd,
    random_perturbation,
    random_substitutions,
    saturation_mutagenesis,
)

METHODS = ["exhaustive", "greedy", "beam", "gradient", "auto"]
SEQ = "ACGTACGTAC"
NAN_AT = (0, 1, 2)  # positions whose substitutions make the model return NaN


class PoisonedPWM(torch.nn.Module):
    """Score = sum of ``weight`` (4, L) over the one-hot input; NaN where a position of ``bad`` holds another base than ``ref``."""

    def __init__(self, weight, ref, bad, value=float("nan")):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("ref", ref)
        self.bad, self.value = list(bad), value

    def forward(self, x):
        score = (x * self.weight).sum(dim=(1, 2))
        moved = (x[:, :, self.bad] != self.ref[:, self.bad]).any(dim=2).any(dim=1)
        return torch.where(moved, torch.full_like(score, self.value), score)[:, None]


def _pwm(length=len(SEQ), seed=0):
    weight = torch.randn(4, length, generator=torch.Generator().manual_seed(seed))
    weight[:, NAN_AT] = weight[:, NAN_AT] - 5.0  # the NaN positions would hold the strongest edits
    weight[0, 5], weight[1, 5] = -3.0, 0.0  # 5C>A lowers the score by 3, the best finite single edit
    return weight


def _finite_singles(weight, x):
    """(delta, position, alt index) of every single substitution outside NAN_AT, by hand."""
    ref = x.argmax(dim=0)
    return [
        (float(weight[b, p] - weight[ref[p], p]), p, b)
        for p in range(x.shape[1])
        for b in range(4)
        if b != ref[p] and p not in NAN_AT
    ]


def _caught(fn):
    """``fn()`` and the messages of its ProbekitWarnings about non-finite outputs, which must point at this file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    ours = [w for w in caught if issubclass(w.category, ProbekitWarning) and "non-finite" in str(w.message)]
    assert all(w.filename == __file__ for w in ours), [(w.filename, str(w.message)) for w in ours]
    return result, [str(w.message) for w in ours]


@pytest.mark.parametrize("method", METHODS)
def test_min_substitutions_skips_nan_mutants_and_finds_the_proved_single_edit(method):
    x = one_hot([SEQ])[0]
    weight = _pwm()
    adapter = SequenceModel(PoisonedPWM(weight, x, NAN_AT), output=0, device="cpu", batch_size=8)
    result, messages = _caught(lambda: min_substitutions(adapter, [SEQ], goal=goals.decrease(2.5), max_edits=2,
                                                         method=method))
    singles = [s for s in _finite_singles(weight, x) if s[0] <= -2.5]
    assert len(singles) == 1  # brute force over the finite candidates: one single edit, 5C>A
    _, position, base = singles[0]
    assert result.edits == [[(position, SEQ[position], "ACGT"[base])]]
    assert result.success.tolist() == [True] and result.proved_minimal.tolist() == [True]
    assert float(result.score_after[0] - result.score_before[0]) == pytest.approx(-3.0, abs=1e-5)
    assert any("non-finite outputs for" in m and "were skipped" in m for m in messages)


def test_exhaustive_counts_the_skipped_candidates():
    x = one_hot([SEQ])[0]
    adapter = SequenceModel(PoisonedPWM(_pwm(), x, NAN_AT), output=0, device="cpu")
    _, messages = _caught(lambda: min_substitutions(adapter, [SEQ], goal=goals.decrease(100.0), max_edits=1,
                                                    method="exhaustive"))
    # every one of the 3 x 10 single substitutions is evaluated; those at positions 0-2 are NaN
    assert [m for m in messages if "non-finite outputs" in m] == [
        "the model returned non-finite outputs for 9 of 30 candidates; they were skipped"
    ]


def _bits_model(weight, ref, bad_feature, value=float("nan")):
    """Linear model on binary features; ``value`` wherever feature ``bad_feature`` leaves its reference value."""

    class Model(torch.nn.Module):
        def forward(self, x):
            score = x @ weight
            moved = x[:, bad_feature] != ref[bad_feature]
            return torch.where(moved, torch.full_like(score, value), score)[:, None]

    return Model()


def _brute_force_flips(weight, ref, goal_below, skip, k):
    """Fewest flips (and every minimal set) reaching ``score <= goal_below`` among sets avoiding ``skip``."""
    for size in range(k + 1):
        found = [
            combo
            for combo in itertools.combinations([j for j in range(len(ref)) if j != skip], size)
            if float((ref + (1 - 2 * ref) * torch.isin(torch.arange(len(ref)), torch.tensor(combo, dtype=torch.long)))
                     @ weight) <= goal_below
        ]
        if found:
            return size, found
    return None, []


@pytest.mark.parametrize("method", METHODS)
def test_bit_flips_keep_their_two_flip_set_despite_nan_flips(method):
    weight = torch.tensor([1.0, 2.0, -1.5, 0.5, 0.25, 4.0])
    ref = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])  # score 7.5
    adapter = FeatureModel(_bits_model(weight, ref, 5), output=outputs.value(0), kinds="binary", device="cpu",
                           batch_size=4)
    size, minimal = _brute_force_flips(weight, ref, 4.2, skip=5, k=3)
    assert size == 2 and minimal == [(1, 2)]  # flipping f5 alone would do, but the model gives NaN there
    result, _ = _caught(lambda: bit_flips(adapter, ref[None], goal=goals.below(4.2), max_flips=3, method=method))
    assert sorted(result.params["feature_indices"][0]) == [1, 2]
    assert result.success.tolist() == [True] and result.proved_minimal.tolist() == [method in ("exhaustive", "auto")]
    assert float(result.score_after[0]) == pytest.approx(4.0)


class AllNaN(torch.nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 1), float("nan"), device=x.device) + 0 * x.sum()


def test_an_all_nan_model_fails_every_search_with_warnings_and_nan_numbers():
    seq = SequenceModel(AllNaN(), output=0, device="cpu")
    result, messages = _caught(lambda: min_substitutions(seq, [SEQ, SEQ[::-1]], goal=goals.decrease(1.0), max_edits=2))
    assert result.success.tolist() == [False, False] and not result.proved_minimal.any()
    assert not result.params["no_solution_within"].any()  # nothing was proved about them
    assert result.n_edits.tolist() == [0, 0] and torch.isnan(result.score_before).all()
    assert any("input(s) [0, 1] have a non-finite score" in m for m in messages)
    ism, messages = _caught(lambda: saturation_mutagenesis(seq, [SEQ]))
    ref = one_hot([SEQ])[0].T.bool()
    assert torch.isnan(ism.effects[0][~ref]).all() and (ism.effects[0][ref] == 0).all()
    assert any("non-finite outputs for 30 of 30 candidates; their effects are NaN" in m for m in messages)
    null, messages = _caught(lambda: random_substitutions(seq, [SEQ], k=2, n_draws=5))
    assert torch.isnan(null.deltas).all() and any("their deltas are NaN" in m for m in messages)
    feat = FeatureModel(AllNaN(), output=outputs.value(0), device="cpu")
    X = torch.zeros(2, 3)
    for run in (lambda: pgd(feat, X, goal=goals.below(0.0), eps=0.5, steps=5),
                lambda: fgsm(feat, X, goal=goals.flip(), eps=0.5),
                lambda: min_perturbation(feat, X, goal=goals.below(0.0), eps_max=1.0, steps=5, search_steps=2)):
        perturbed, messages = _caught(run)
        assert perturbed.success.tolist() == [False, False]
        assert torch.isfinite(perturbed.x_adv).all()
        assert any("non-finite" in m for m in messages)


@pytest.mark.parametrize("goal", [goals.below(0.0), goals.decrease(0.5)])
def test_an_input_whose_own_score_is_nan_is_not_searched_but_the_others_are(goal):
    """The model is NaN where position 0 holds T: input 1 starts there, its mutants at 0 are finite."""
    weight = torch.zeros(4, 4)
    weight[0, 2] = -1.0  # an A at position 2 lowers the score by one

    class NaNAtT(torch.nn.Module):
        def forward(self, x):
            score = (x * weight).sum(dim=(1, 2)) + 0.5
            return torch.where(x[:, 3, 0] > 0, float("nan"), score)[:, None]

    adapter = SequenceModel(NaNAtT(), output=0, device="cpu")
    for method in METHODS:
        result, messages = _caught(lambda: min_substitutions(adapter, ["CCCC", "TCCC"], goal=goal, max_edits=2,
                                                             method=method))
        assert result.edits[0] == [(2, "C", "A")] and result.success.tolist() == [True, False]
        assert result.proved_minimal.tolist() == [True, False] and result.edits[1] == []
        assert not result.params["no_solution_within"][1]
        assert any("input(s) [1] have a non-finite score" in m for m in messages)


def test_ism_effects_of_nan_mutants_stay_nan_and_the_rest_are_exact():
    x = one_hot([SEQ])[0]
    weight = _pwm()
    adapter = SequenceModel(PoisonedPWM(weight, x, NAN_AT), output=0, device="cpu")
    ism, messages = _caught(lambda: saturation_mutagenesis(adapter, [SEQ]))
    ref = x.argmax(dim=0)
    hand = (weight - weight[ref, torch.arange(len(SEQ))]).T  # (L, 4)
    effects = ism.effects[0]
    mutants = ~x.T.bool()
    assert torch.isnan(effects[list(NAN_AT)][mutants[list(NAN_AT)]]).all()
    rest = [p for p in range(len(SEQ)) if p not in NAN_AT]
    torch.testing.assert_close(effects[rest], hand[rest], atol=1e-5, rtol=0)
    assert "the model returned non-finite outputs for 9 of 30 candidates; their effects are NaN" in messages


class MinusInfBeyond(torch.nn.Module):
    """Linear score ``w . x``, but -inf once feature 0 passes ``edge`` (a model that overflows)."""

    def __init__(self, w, edge):
        super().__init__()
        self.register_buffer("w", torch.tensor(w))
        self.edge = edge

    def forward(self, x):
        score = x @ self.w
        return torch.where(x[:, 0] > self.edge, float("-inf"), score)[:, None]


def test_pgd_never_takes_an_infinite_score_for_a_success():
    """Without the model's -inf region the goal is out of reach: PGD keeps the last finite iterate."""
    w = [-1.0, 2.0, 0.5]
    adapter = FeatureModel(MinusInfBeyond(w, 0.22), output=outputs.value(0), device="cpu")
    X = torch.zeros(1, 3)
    result, messages = _caught(lambda: pgd(adapter, X, goal=goals.below(-5.0), eps=0.5, norm="linf", steps=10,
                                           step_size=0.05))
    assert result.success.tolist() == [False]
    # four steps of 0.05 against the sign of w reach x0 = 0.2; the fifth (0.25) is -inf and skipped, and
    # from there on the model's NaN-free gradient keeps the iterates beyond the edge
    assert float(result.score_after[0]) == pytest.approx(-0.2 * sum(abs(v) for v in w), abs=1e-5)
    assert torch.isfinite(result.score_after).all()
    assert any("non-finite outputs for" in m for m in messages)
    fast, _ = _caught(lambda: fgsm(adapter, X, goal=goals.below(-5.0), eps=0.5))
    assert fast.success.tolist() == [False] and float(fast.score_after[0]) == 0.0  # the step lands at -inf


def test_min_perturbation_skips_infinite_points_and_finds_the_finite_boundary():
    """Reaching score <= -1 along -w needs an L2 radius of 1 / ||w|| = 0.2; with the -inf region beyond it
    the answer is exact, and with the region in the way no infinite point is ever reported."""
    w = [-3.0, 4.0]
    X = torch.zeros(2, 2)
    far = FeatureModel(MinusInfBeyond(w, 0.25), output=outputs.value(0), device="cpu")
    result, _ = _caught(lambda: min_perturbation(far, X, goal=goals.below(-1.0), norm="l2"))
    assert result.success.tolist() == [True, True]
    torch.testing.assert_close(result.norm, torch.full((2,), 0.2), atol=1e-3, rtol=0)
    near = FeatureModel(MinusInfBeyond(w, 0.05), output=outputs.value(0), device="cpu")
    for norm in ("l2", "linf"):
        result, messages = _caught(lambda: min_perturbation(near, X, goal=goals.below(-1.0), norm=norm))
        assert torch.isfinite(result.score_after).all() and (result.x_adv[:, 0] <= 0.05).all()
        # a finite point with score <= -1 has x0 <= 0.05, so 4 x1 <= -0.85: its L2 norm is at least 0.218
        assert ((result.norm >= (0.218 if norm == "l2" else 0.2125)) | ~result.success).all()
        assert torch.equal(result.success, result.score_after <= -1.0)
        assert any("non-finite outputs for" in m for m in messages)


def test_random_perturbation_marks_infinite_draws_nan():
    adapter = FeatureModel(MinusInfBeyond([1.0, 1.0], 0.05), output=outputs.value(0), device="cpu")
    X = torch.zeros(3, 2)
    null, messages = _caught(lambda: random_perturbation(adapter, X, norm="linf", eps=0.1, n_draws=40))
    beyond = null.params["norms"] >= 0  # every draw exists; those past the edge are -inf
    assert torch.isnan(null.deltas).any() and torch.isfinite(null.deltas).any()
    assert (torch.isnan(null.deltas) | (null.deltas.abs() <= 0.2 + 1e-6)).all() and beyond.all()
    bad = int(torch.isnan(null.deltas).sum())
    assert f"the model returned non-finite outputs for {bad} of 120 candidates; their deltas are NaN" in messages
    assert not math.isinf(float(null.deltas.nan_to_num(0).abs().max()))
