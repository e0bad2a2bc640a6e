"""repr() of results and reports: short whatever the size, with the facts a reader looks for."""

import pandas as pd
import pytest
import torch

from probekit.attr import Attribution
from probekit.report import SensitivityReport
from probekit.results import BaselineResult, Bounds, ISMResult, PerturbationResult, SmoothingResult, SubstitutionResult

LIMIT = 300


def substitution(n, length=200):
    edits = [[(i % length, "A", "C")] * (i % 3) for i in range(n)]
    n_edits = torch.tensor([len(e) for e in edits])
    return SubstitutionResult(
        edits=edits, n_edits=n_edits, success=n_edits > 0, proved_minimal=n_edits == 1,
        score_before=torch.randn(n), score_after=torch.randn(n), sequences=torch.zeros(n, 4, length),
        evaluations=torch.full((n,), 30), ids=[f"seq{i}" for i in range(n)],
        params={"method": "auto", "goal": "flip", "device": "cpu", "seconds": 0.25,
                "no_solution_within": torch.zeros(n, dtype=torch.bool)},
    )  # fmt: skip


def test_ism_repr_of_a_large_scan_is_short():
    n, length = 1000, 1000
    effects = torch.zeros(n, length, 4)
    effects[3, 7, 2] = -2.5
    result = ISMResult(reference=torch.randn(n), effects=effects, ids=[f"s{i}" for i in range(n)],
                       params={"ref_index": torch.zeros(n, length, dtype=torch.long), "device": "cpu",
                               "output": "logit[0]", "seconds": 1.5})  # fmt: skip
    text = repr(result)
    assert len(text) < LIMIT
    for fact in ("ISMResult(", "n=1000", "length=1000", "float32[1000, 1000, 4]", "max_abs_effect=2.5", "device=cpu"):
        assert fact in text


def test_ism_repr_names_a_narrower_window():
    result = ISMResult(reference=torch.zeros(2), effects=torch.zeros(2, 50, 4), start=10, end=30)
    assert "window=10:30" in repr(result)


def test_substitution_repr_counts_successes_and_lists_few_edit_counts():
    text = repr(substitution(4))
    assert text.startswith("SubstitutionResult(n=4, success=2/4, proved_minimal=1/4, n_edits=[0, 1, 2, 0]")
    assert "method='auto'" in text and "device=cpu" in text and len(text) < LIMIT


@pytest.mark.parametrize("n", [10, 5000])
def test_substitution_repr_summarises_many_inputs(n):
    text = repr(substitution(n))
    assert len(text) < LIMIT and f"success={sum(i % 3 > 0 for i in range(n))}/{n}" in text
    assert "n_edits=median 1 in [0, 2]" in text


def test_perturbation_repr():
    n = 2000
    result = PerturbationResult(x_adv=torch.zeros(n, 300), delta=torch.zeros(n, 300), norm=torch.linspace(0, 1, n),
                                score_before=torch.zeros(n), score_after=torch.zeros(n), success=torch.arange(n) < 5,
                                params={"norm": "linf", "method": "pgd", "eps": torch.ones(n)})  # fmt: skip
    text = repr(result)
    assert len(text) < LIMIT and "success=5/2000" in text and "norm='linf'" in text and "float32[2000, 300]" in text
    assert "eps" not in text  # a per-input tensor parameter is left out


def test_baseline_bounds_smoothing_reprs():
    baseline = repr(BaselineResult(deltas=torch.ones(3000, 500), k=2))
    assert len(baseline) < LIMIT and "draws=500" in baseline and "k=2" in baseline and "mean_abs_delta=median 1" in baseline
    n = 4000
    certified = torch.arange(n) % 4 == 0
    bounds = repr(Bounds(lower=torch.zeros(n), upper=torch.ones(n), certified=certified, eps=0.1, method="crown"))
    assert len(bounds) < LIMIT and "certified=1000/4000" in bounds and "method='crown'" in bounds and "eps=0.1" in bounds
    smoothing = repr(SmoothingResult(prediction=torch.tensor([0, 1, -1]), p_lower=torch.rand(3), radius=torch.ones(3),
                                     axes=torch.ones(3, 1000)))  # fmt: skip
    assert "abstain=1/3" in smoothing and "radius=[1, 1, 1]" in smoothing and "axes=float32[3, 1000]" in smoothing


def test_result_types_in_other_modules_get_the_short_repr_too():
    values = torch.zeros(500, 4, 1000)
    text = repr(Attribution(values=values, method="saliency", per_position=torch.zeros(500, 1000), inputs=values))
    assert len(text) < LIMIT and "values=float32[500, 4, 1000]" in text and "method='saliency'" in text


def test_report_repr_counts_goals_reached_and_regions():
    summary = pd.DataFrame({"id": ["a", "b", "c"], "success": pd.array([True, False, None], dtype="boolean"),
                            "error": [None, None, "bad record"]})  # fmt: skip
    frame = pd.DataFrame({"id": ["a"], "importance": [1.0], "rank": [1], "critical": [True]})
    regions = pd.DataFrame({"id": ["a", "a"], "start": [0, 5], "end": [3, 8]})
    report = SensitivityReport("dna", {"frame": frame, "summary": summary, "regions": regions}, {"goal": "flip"})
    text = repr(report)
    assert "inputs=3" in text and "errors=1" in text and "success=1/2" in text and "regions=2" in text
    assert "goal='flip'" in text
