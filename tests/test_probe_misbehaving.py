"""probe() on models that misbehave: bad records become error rows with the model's own words, the rest goes on."""

import math
import warnings

import pytest

import probekit
from probekit import ProbekitWarning, SequenceModel, goals
from probekit.adapters import ModelOutputError
from probekit.testing import DropoutInEval, MalformedOutput, NonFiniteOn, RaisesOn, ToyConv

SEQS = {"a": "ACGTACGTACGTAC", "b": "GGGGACGTACGTAC", "c": "CCGTACGTACGTAC", "d": "TAGTACGTACGTAC"}


def _starts_with_gggg(x):
    return x[:, 2, :4].sum(dim=1) == 4  # only record b (its single mutants have at most three)


def _probe(model, **kwargs):
    adapter = SequenceModel(model, output=1, device="cpu", batch_size=kwargs.pop("batch_size", 64))
    return probekit.probe(adapter, SEQS, max_edits=2, baseline_draws=20, goal=goals.flip(), **kwargs)


def test_a_model_raising_on_one_record_names_it_with_its_own_message_and_keeps_the_others():
    clean = _probe(ToyConv()).summary().set_index("id")
    with pytest.warns(ProbekitWarning, match="1 sequences were not probed"):
        report = _probe(RaisesOn(ToyConv(), _starts_with_gggg, message="token GGGG is not in the vocabulary"))
    summary = report.summary().set_index("id")
    assert summary.at["b", "error"] == "record 'b': the model raised ValueError: token GGGG is not in the vocabulary"
    for i in "acd":
        assert summary.at[i, "error"] is None
        assert summary.at[i, "n_edits"] == clean.at[i, "n_edits"]
        assert summary.at[i, "score"] == pytest.approx(clean.at[i, "score"])
    assert set(report.to_frame()["id"]) == set("acd")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_scores_are_error_rows_not_numbers(value):
    report = _probe(NonFiniteOn(ToyConv(), _starts_with_gggg, value=value))
    summary = report.summary().set_index("id")
    word = "NaN" if math.isnan(value) else "inf"
    assert word in summary.at["b", "error"] and summary.at["b", "error"].startswith("record 'b'")
    assert summary.loc[list("acd"), "error"].isna().all()
    assert summary.loc[list("acd"), "score"].notna().all()


def test_an_all_nan_model_probes_nothing_and_says_so():
    with pytest.warns(ProbekitWarning, match="4 sequences were not probed"):
        report = _probe(NonFiniteOn(ToyConv(), lambda x: x[:, 0, 0] >= 0))
    summary = report.summary()
    assert summary["error"].notna().all() and summary["score"].isna().all()
    assert report.params["n_errors"] == 4


@pytest.mark.parametrize("how", MalformedOutput.HOWS)
def test_a_malformed_output_stops_the_run_with_one_message(how):
    with pytest.raises(ModelOutputError, match="batch of|transposed|0-d"):
        _probe(MalformedOutput(ToyConv(), how))


def test_a_model_random_in_eval_mode_is_named():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _probe(DropoutInEval(ToyConv()))
    messages = [str(w.message) for w in caught if issubclass(w.category, ProbekitWarning)]
    assert sum("different outputs for the same input" in m for m in messages) == 1
