"""Every search gives the same answer at every batch size: 1, 7, 32 and "auto".

Float rounding changes with the batch a candidate is computed in; searches break
ties and near-ties by a rule that does not (the lowest value, then the
lexicographically first edit set), and settle exhaustive levels in chunks of a
fixed size. The helpers :func:`at_batch_sizes` and :func:`assert_same_results`
work for any search (or any function of an adapter returning a probekit result).
"""

import dataclasses
import warnings

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.results import BaselineResult, ISMResult, PerturbationResult, SubstitutionResult
from probekit.search import (
    bit_flips,
    fgsm,
    min_perturbation,
    min_substitutions,
    pgd,
    random_bit_flips,
    random_perturbation,
    random_substitutions,
    saturation_mutagenesis,
)
from probekit.search._select import edit_keys, lex_less, segment_best, tie_rtol, top_distinct, within
from probekit.testing import MotifCounter, ToyConv, random_sequences

BATCH_SIZES = (1, 7, 32, "auto")
METHODS = ("exhaustive", "greedy", "beam", "gradient", "auto")


# ------------------------------------------------------------------ helpers
def at_batch_sizes(search, adapter, *args, sizes=BATCH_SIZES, **kwargs) -> list:
    """``search(adapter at each batch size, *args, **kwargs)`` for every size of ``sizes``."""
    results = []
    for size in sizes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results.append(search(adapter.replace(batch_size=size), *args, **kwargs))
    return results


def _close(a, b, what, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol, equal_nan=True, msg=lambda m: f"{what}: {m}")


def assert_same_results(results, *, atol=1e-5, rtol=1e-5) -> None:
    """Every result of ``results`` (one type) equals the first: discrete answers exactly, numbers within tolerance."""
    first = results[0]
    for other in results[1:]:
        assert type(other) is type(first)
        if isinstance(first, SubstitutionResult):
            assert other.edits == first.edits
            for name in ("n_edits", "success", "proved_minimal"):
                assert torch.equal(getattr(other, name), getattr(first, name)), name
            assert torch.equal(other.params["no_solution_within"], first.params["no_solution_within"])
            for name in ("score_before", "score_after"):
                _close(getattr(other, name), getattr(first, name), name, atol, rtol)
        elif isinstance(first, ISMResult):
            _close(other.reference, first.reference, "reference", atol, rtol)
            _close(other.effects, first.effects, "effects", atol, rtol)
            assert torch.equal(other.effects == 0, first.effects == 0)  # the same positions read exactly 0
        elif isinstance(first, BaselineResult):
            _close(other.deltas, first.deltas, "deltas", atol, rtol)
            if "sites" in first.params:
                assert torch.equal(other.params["sites"], first.params["sites"])
                assert torch.equal(other.params["values"], first.params["values"])
        elif isinstance(first, PerturbationResult):
            assert torch.equal(other.success, first.success)
            for name in ("x_adv", "delta", "norm", "score_before", "score_after"):
                _close(getattr(other, name), getattr(first, name), name, atol, rtol)
        else:
            raise TypeError(f"no comparison for {type(first).__name__}")


# ------------------------------------------------------------------- models
class TiedCounts(nn.Module):
    """Every T -> A/C/G substitution lowers the score by 0.6: 0.7 per T, 0.1 per other base.

    With ``jitter``, each position's T weighs 0.7 times ``1 + jitter * r`` (r a
    few units, different per position): the effects differ in their last few
    bits only, as equal effects computed in different batches do.
    """

    def __init__(self, length: int, jitter: float = 0.0):
        super().__init__()
        weight = torch.full((4, length), 0.1)
        offsets = torch.tensor([(3 * i) % 7 - 3 for i in range(length)], dtype=torch.float64)  # largest at position 2
        weight[3] = (0.7 * (1 + jitter * offsets)).float()
        self.register_buffer("weight", weight)

    def forward(self, x):
        return (x * self.weight).sum(dim=(1, 2))[:, None]


def _plain(model):
    """A plain callable around ``model``: no tracing, so every search takes full forward passes."""
    return lambda x: model(x)


def _sequence_cases():
    seqs = random_sequences(4, 14, seed=1)
    yield "toyconv-flip", SequenceModel(ToyConv(seed=0, channels=16), output=0, device="cpu"), seqs, goals.flip()
    yield "toyconv-decrease", SequenceModel(ToyConv(seed=3, channels=16), output=1, device="cpu"), seqs, goals.decrease(1.5)
    yield ("full-passes", SequenceModel(_plain(ToyConv(seed=2, channels=16)), output=0, device="cpu"), seqs,
           goals.decrease(1.0))
    yield ("motif", SequenceModel(MotifCounter("ACGT"), output=0, device="cpu"), ["TACGTTACGTAA", "ACGTACGTACGT"],
           goals.below(0.5))


SEQUENCE_CASES = list(_sequence_cases())


# ---------------------------------------------------------------- the rule
def test_the_tie_rule_on_hand_made_candidates():
    rtol = tie_rtol(torch.float32)
    assert rtol == 1e-5 and tie_rtol(torch.float64) == 1e-12
    assert within(torch.tensor([1.0, 1.0, 1e-7, float("inf")]), torch.tensor([1.0 + 5e-6, 1.0 + 5e-5, 0.0, float("inf")]),
                  rtol).tolist() == [True, False, True, False]
    # sets compare edit by edit on (site, value); a set comes before the sets it begins
    keys = edit_keys(torch.tensor([[4, 2], [2, -1], [2, 4], [2, 3]]), torch.tensor([[0, 1], [1, 0], [1, 0], [3, 3]]))
    assert lex_less(keys, keys[[2, 2, 3, 2]]).tolist() == [False, True, True, False]
    # group 0: 0.3 beats the tie of 0.1 and 0.1 + 1e-7, which goes to the lexicographically first set (site 2);
    # group 1: a failing candidate within the tolerance of a success never wins; group 2 is empty
    p = torch.tensor([0.1 + 1e-7, 0.3, 0.1, -1e-8, 1e-8, float("nan")])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    sites = torch.tensor([[2], [0], [5], [9], [1], [0]])
    best = segment_best(p, groups, 3, rtol=rtol, keys=edit_keys(sites, torch.zeros_like(sites)), success=p <= 0)
    assert best.tolist() == [0, 3, -1]
    # the beam keeps the best distinct sets, picked one by one by the same rule (there, ties are just ties)
    picked = top_distinct(groups[:5], torch.tensor([1, 2, 3, 4, 5]), p[:5], 2, rtol=rtol,
                          lex=edit_keys(sites[:5], torch.zeros_like(sites[:5])))
    assert picked.tolist() == [0, 2, 4, 3]


@pytest.mark.parametrize("jitter", [0.0, 2.0**-22], ids=["exact", "last-bits"])
@pytest.mark.parametrize("method", METHODS)
def test_tied_substitutions_go_to_the_first_positions_at_every_batch_size(method, jitter):
    """54 single edits lower the score by 0.6 each (up to a few roundings): the answer is 0T>A, 1T>A."""
    adapter = SequenceModel(TiedCounts(18, jitter), output=0, device="cpu")
    seq = "T" * 18
    results = at_batch_sizes(min_substitutions, adapter, [seq], goal=goals.decrease(1.1), max_edits=2, method=method)
    assert results[0].edits == [[(0, "T", "A"), (1, "T", "A")]]
    assert_same_results(results)
    ism = at_batch_sizes(saturation_mutagenesis, adapter, [seq])
    assert_same_results(ism)
    assert torch.allclose(ism[0].effects[0, :, :3], torch.tensor(-0.6), atol=1e-5)


# ------------------------------------------------------ every search, every size
@pytest.mark.parametrize("name, adapter, seqs, goal", SEQUENCE_CASES, ids=[c[0] for c in SEQUENCE_CASES])
def test_saturation_mutagenesis(name, adapter, seqs, goal):
    assert_same_results(at_batch_sizes(saturation_mutagenesis, adapter, seqs))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name, adapter, seqs, goal", SEQUENCE_CASES, ids=[c[0] for c in SEQUENCE_CASES])
def test_min_substitutions(name, adapter, seqs, goal, method):
    results = at_batch_sizes(min_substitutions, adapter, seqs, goal=goal, max_edits=2, method=method, beam_width=3)
    assert_same_results(results)


def test_min_substitutions_exhaustive_levels_above_a_chunk(monkeypatch):
    """Levels settled over several chunks give the answer of one chunk (fixed-size chunks, same fold)."""
    from probekit.search import discrete

    adapter = SequenceModel(ToyConv(seed=5, channels=16), output=0, device="cpu")
    seqs = random_sequences(3, 12, seed=6)
    whole = min_substitutions(adapter, seqs, goal=goals.decrease(2.0), max_edits=2, method="exhaustive")
    monkeypatch.setattr(discrete, "_SELECT_CHUNK", 37)
    chunked = at_batch_sizes(min_substitutions, adapter, seqs, goal=goals.decrease(2.0), max_edits=2,
                             method="exhaustive")
    assert_same_results([whole, *chunked])
    assert (whole.n_edits == 2).any()


def _bit_adapter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, 1))
    return FeatureModel(model, output=outputs.value(0), kinds="binary", device="cpu")


def _bits():
    return (torch.rand(5, 10, generator=torch.Generator().manual_seed(1)) > 0.5).float()


@pytest.mark.parametrize("method", METHODS)
def test_bit_flips(method):
    adapter = _bit_adapter()
    results = at_batch_sizes(bit_flips, adapter, _bits(), goal=goals.decrease(0.3), max_flips=2, method=method,
                             beam_width=3)
    assert_same_results(results)
    assert results[0].success.any()


def test_random_baselines():
    name, adapter, seqs, _ = SEQUENCE_CASES[0]
    assert_same_results(at_batch_sizes(random_substitutions, adapter, seqs, k=2, n_draws=9, seed=3))
    assert_same_results(at_batch_sizes(random_bit_flips, _bit_adapter(), _bits(), k=2, n_draws=9, seed=3))


def _feature_adapter():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    return FeatureModel(model, output=outputs.margin(1), bounds=(-3.0, 3.0), device="cpu")


def _features():
    return torch.randn(6, 6, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_continuous_searches(norm):
    adapter, X = _feature_adapter(), _features()
    assert_same_results(at_batch_sizes(fgsm, adapter, X, goal=goals.flip(), eps=0.4, norm=norm))
    runs = at_batch_sizes(pgd, adapter, X, goal=goals.flip(), eps=0.4, norm=norm, steps=15, restarts=2, seed=1)
    assert_same_results(runs)
    assert 0 < int(runs[0].success.sum()) < X.shape[0]
    smallest = at_batch_sizes(min_perturbation, adapter, X, goal=goals.flip(), norm=norm, steps=15, search_steps=6)
    assert_same_results(smallest, atol=1e-4, rtol=1e-4)
    assert_same_results(at_batch_sizes(random_perturbation, adapter, X, norm=norm, eps=0.4, n_draws=9, seed=2))


def test_the_helpers_notice_a_difference():
    adapter = SequenceModel(ToyConv(seed=0), output=0, device="cpu")
    one = min_substitutions(adapter, ["ACGTACGTAC"], goal=goals.decrease(0.5), max_edits=1)
    moved = dataclasses.replace(one, edits=[[(9, "C", "A")]])
    with pytest.raises(AssertionError):
        assert_same_results([one, moved])
