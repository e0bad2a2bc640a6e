"""Models that misbehave: malformed outputs, records they raise on, non-finite outputs, randomness in eval mode."""

import warnings

import pytest
import torch
from torch import nn

from probekit import FeatureModel, ModelCallError, SequenceModel, goals, outputs
from probekit._warnings import ProbekitWarning
from probekit.adapters import ModelOutputError
from probekit.encode.dna import one_hot
from probekit.testing import (
    DropoutInEval,
    MalformedOutput,
    NonFiniteOn,
    RaisesOn,
    ToyConv,
    base_at,
    check_adapter,
    random_sequences,
)


class Counting(nn.Module):
    """Records the batch size of every call of ``model``."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.sizes = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.model(x)


def sequences_with_g_at_7(n=10, length=12):
    """``n`` random sequences; rows 2, 3 and 7 carry G at position 7, the others do not."""
    seqs = [list(s) for s in random_sequences(n, length, seed=5)]
    for i, s in enumerate(seqs):
        s[7] = "G" if i in (2, 3, 7) else "A"
    return one_hot(["".join(s) for s in seqs])


MESSAGES = {
    "reduce": r"the model returned 2 rows for a batch of 3",
    "one_row": r"the model returned 1 row for a batch of 3",
    "extra_row": r"the model returned 4 rows for a batch of 3",
    "transpose": r"looks transposed: \(2, 3\) is \(C, N\) instead of \(N, C\)",
    "scalar": r"0-d tensor .* for a batch of 3",
}


@pytest.mark.parametrize("how", sorted(MESSAGES))
def test_malformed_output_is_named_once_for_every_length(how):
    adapter = SequenceModel(MalformedOutput(ToyConv(), how), output=0, device="cpu")
    X = one_hot(random_sequences(3, 12))
    with pytest.raises(ModelOutputError, match=MESSAGES[how]) as raised:
        adapter.score(X)
    assert isinstance(raised.value, ModelCallError)
    assert "length" not in str(raised.value)  # not blamed on the sequence length


@pytest.mark.parametrize("how", sorted(MESSAGES))
def test_malformed_output_of_a_feature_model(how):
    adapter = FeatureModel(MalformedOutput(nn.Linear(5, 2), how), output=outputs.value(0), device="cpu", batch_size=8)
    with pytest.raises(ModelOutputError, match=MESSAGES[how]):
        adapter.predict(torch.randn(3, 5))


def test_malformed_reverse_strand_output_is_caught_too():
    adapter = SequenceModel(MalformedOutput(ToyConv(), "extra_row"), output=0, device="cpu", strands="both")
    with pytest.raises(ModelOutputError, match="4 rows for a batch of 3"):
        adapter.score(one_hot(random_sequences(3, 12)))


def test_screen_raises_a_malformed_output_at_once_instead_of_bisecting():
    model = Counting(MalformedOutput(ToyConv(), "one_row"))
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=16)
    with pytest.raises(ModelOutputError, match="1 row for a batch of 16"):
        adapter.screen(one_hot(random_sequences(16, 12)))
    assert model.sizes == [16]


def test_a_model_that_cannot_take_a_length_still_says_so():
    adapter = SequenceModel(nn.Sequential(nn.Flatten(), nn.Linear(40, 1)), output=0, device="cpu")
    with pytest.raises(ModelCallError, match="length 12") as raised:
        adapter.score(one_hot(random_sequences(2, 12)))
    assert not isinstance(raised.value, ModelOutputError)


@pytest.mark.parametrize("batch_size", [1, 4, 64, "auto"])
def test_screen_finds_the_records_the_model_raises_on_and_keeps_the_rest(batch_size):
    X = sequences_with_g_at_7()
    base = ToyConv()
    model = Counting(RaisesOn(base, base_at(7, "G"), message="bad token at 7"))
    adapter = SequenceModel(model, output=1, device="cpu", batch_size=batch_size)
    adapter.resolve_batch_size(X[:1])  # the automatic size's probe, on a good record
    model.sizes.clear()
    scores, problems = adapter.screen(X)
    bad = [2, 3, 7]
    assert problems == ["the model raised ValueError: bad token at 7" if i in bad else None for i in range(10)]
    good = [i for i in range(10) if i not in bad]
    assert torch.allclose(scores[good], base(X[good])[:, 1], atol=1e-6)
    assert torch.isnan(scores[bad]).all()
    assert len(model.sizes) < 4 * len(X)  # bisection, not one call per record and retries
    with pytest.raises(ModelCallError):
        adapter.score(X)  # plain scoring still refuses the batch as a whole


def test_screen_of_good_records_is_one_pass_per_batch_and_equals_score():
    model = Counting(ToyConv())
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=4)
    X = one_hot(random_sequences(10, 12))
    adapter.score(X[:1])  # the determinism check is done once, here
    model.sizes.clear()
    scores, problems = adapter.screen(X)
    assert problems == [None] * 10 and model.sizes == [4, 4, 2]
    assert torch.equal(scores, adapter.score(X))


def test_screen_when_the_first_record_is_bad_and_the_batch_size_is_automatic():
    X = sequences_with_g_at_7()[2:]  # the first record raises: the batch-size probe cannot use it
    adapter = SequenceModel(RaisesOn(ToyConv(), base_at(7, "G")), output=0, device="cpu")
    scores, problems = adapter.screen(X)
    assert [p is not None for p in problems] == [True, True, False, False, False, True, False, False]
    assert adapter.batch_size >= 1 and torch.isfinite(scores[[2, 3, 4, 6, 7]]).all()


@pytest.mark.parametrize("value, word", [(float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "-inf")])
def test_screen_names_non_finite_outputs(value, word):
    X = sequences_with_g_at_7()
    base = ToyConv()
    adapter = SequenceModel(NonFiniteOn(base, base_at(7, "G"), value=value), output=0, device="cpu", batch_size=4)
    scores, problems = adapter.screen(X)
    bad = [2, 3, 7]
    assert problems == [f"the model returned {word}" if i in bad else None for i in range(10)]
    assert adapter.deterministic is True  # the same NaN twice is no randomness
    assert torch.isnan(scores[bad]).all()
    good = [i for i in range(10) if i not in bad]
    assert torch.allclose(scores[good], base(X[good])[:, 0], atol=1e-6)


def test_screen_flags_a_nan_in_an_output_the_score_does_not_read():
    class NaNInColumnOne(nn.Module):
        def forward(self, x):
            y = torch.stack([x[:, 0], x[:, 0]], dim=1)
            y[x[:, 1] > 0, 1] = float("nan")
            return y

    adapter = FeatureModel(NaNInColumnOne(), output=outputs.value(0), device="cpu", batch_size=8)
    scores, problems = adapter.screen(torch.tensor([[1.0, 0.0], [2.0, 1.0]]))
    assert problems == [None, "the model returned NaN"] and scores[0] == 1.0 and torch.isnan(scores[1])


def test_screen_when_every_record_is_nan():
    adapter = FeatureModel(lambda x: torch.full((x.shape[0], 1), float("nan")), output=0, device="cpu")
    scores, problems = adapter.screen(torch.randn(5, 3))
    assert problems == ["the model returned NaN"] * 5 and torch.isnan(scores).all()


def test_screen_of_no_records():
    scores, problems = FeatureModel(nn.Linear(3, 1), output=0, device="cpu").screen(torch.zeros(0, 3))
    assert scores.shape == (0,) and problems == []


def test_non_finite_candidates_never_succeed():
    model = NonFiniteOn(nn.Linear(3, 1), lambda x: x[:, 0] > 5)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu", batch_size=2)
    X = torch.zeros(1, 3)
    bound = adapter.bind(goals.below(1e9), X)  # every finite candidate succeeds
    candidates = torch.tensor([[0.0, 1.0, 0.0], [9.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    scores, g = adapter.evaluate(candidates, bound, rows=torch.zeros(3, dtype=torch.long))
    assert torch.isnan(scores[1]) and g[1] == float("inf")
    assert (g[[0, 2]] <= 0).all() and int(g.argmin()) != 1


def test_an_infinite_goal_value_is_skipped_too():
    adapter = FeatureModel(lambda x: x, output=outputs.value(0), device="cpu", batch_size=4)
    X = torch.tensor([[1.0], [float("inf")]])
    _, g = adapter.evaluate(X, adapter.bind(goals.below(0.0), X))
    assert g[0] == 1.0 and g[1] == float("inf")


def test_random_model_in_eval_mode_warns_once_and_is_marked():
    adapter = SequenceModel(DropoutInEval(ToyConv(), p=0.5), output=0, device="cpu", batch_size=4)
    X = one_hot(random_sequences(6, 12))
    with pytest.warns(ProbekitWarning, match="different outputs for the same input in eval mode"):
        adapter.score(X)
    assert adapter.deterministic is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter.score(X)  # the verdict is kept: no second warning
        adapter.replace(output=1).score(X)  # nor from a copy of the same model
        fixed = adapter.replace(model=ToyConv())
        assert fixed.deterministic is None
        fixed.score(X)
    assert fixed.deterministic is True


def test_torch_rand_inside_forward_is_found():
    class Noisy(nn.Module):
        def forward(self, x):
            return x.sum(1) + torch.rand(x.shape[0], 1)

    adapter = FeatureModel(Noisy(), output=0, device="cpu", batch_size=8)
    with pytest.warns(ProbekitWarning, match="results will change from run to run"):
        adapter.score(torch.zeros(3, 4))
    assert adapter.deterministic is False


def test_determinism_check_costs_one_small_pass_and_is_silent_for_a_deterministic_model():
    model = Counting(ToyConv())
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=64)
    adapter.score(one_hot(random_sequences(100, 12)))
    assert model.sizes == [64, 8, 36]
    model = Counting(ToyConv())
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=4)
    X = one_hot(random_sequences(10, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter.score(X)
    assert model.sizes == [4, 4, 4, 2] and adapter.deterministic is True  # the first batch's rows once more
    model.sizes.clear()
    adapter.score(X)
    assert model.sizes == [4, 4, 2]


def test_check_adapter_reports_the_random_model():
    adapter = SequenceModel(DropoutInEval(ToyConv()), output=0, device="cpu")
    with pytest.warns(ProbekitWarning):
        report = check_adapter(adapter, one_hot(random_sequences(4, 12)), raise_on_failure=False)
    assert not report.set_index("check").loc["deterministic", "passed"]


def test_evaluating_no_candidates_gives_empty_scores():
    adapter = FeatureModel(nn.Linear(3, 1), output=outputs.value(0), device="cpu")
    X = torch.zeros(1, 3)
    scores, g = adapter.evaluate(torch.zeros(0, 3), adapter.bind(goals.below(0.0), X), rows=torch.zeros(0, dtype=torch.long))
    assert scores.shape == g.shape == (0,)


def test_a_smoothed_adapter_leaves_the_determinism_check_to_its_base():
    from probekit.certify import Smoothed

    model = Counting(nn.Linear(3, 2))
    base = FeatureModel(model, output=1, device="cpu", batch_size=64)
    smooth = Smoothed(base, sigma=0.5, n=16)
    smooth.predict(torch.zeros(2, 3))
    assert smooth.deterministic is True and base.deterministic is True
    model.sizes.clear()
    Smoothed(base, sigma=0.5, n=16).predict(torch.zeros(2, 3))
    assert sum(model.sizes) < 2 * 2 * 16  # the noisy copies once, no second smoothed pass
