"""The HTML page of a report as a reader sees it: tables that fit, missing values, order, notes and figures."""

import re
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from probekit.report import SensitivityReport, html  # noqa: E402

BASES = "ACGT"
LENGTH = 10


def dna_report(inputs):
    """A DNA report of hand-made inputs: dicts with id, success, n_regions, p_value, ratio, scores."""
    rows, summary, regions, edits, trajectory = [], [], [], [], []
    for spec in inputs:
        id_, scores = spec["id"], spec.get("scores", [1.0, -0.5])
        seq = "ACGTACGTAC"
        for p in range(LENGTH):
            effects = {f"effect_{b}": (0.0 if b == seq[p] else -float(p)) for b in BASES}
            rows.append({"id": id_, "position": p, "ref": seq[p], "importance": float(p), "rank": LENGTH - p,
                         "critical": p >= 8, **effects})  # fmt: skip
        summary.append({"id": id_, "length": LENGTH, "score": scores[0], "goal": "flip", "goal_score": 0.0,
                        "n_edits": len(scores) - 1, "success": spec["success"], "proved_minimal": True,
                        "score_after": scores[-1], "ratio": spec["ratio"], "z": 3.0, "p_value": spec["p_value"],
                        "threshold": 7.5, "n_regions": spec["n_regions"], "motif": None,
                        "top_region": "7-10" if spec["n_regions"] else None, "error": None})  # fmt: skip
        if spec["n_regions"]:
            regions.append({"id": id_, "region": 1, "start": 7, "end": 10, "length": 3, "sequence": seq[7:],
                            "motif": None})  # fmt: skip
        trajectory.append({"id": id_, "step": 0, "position": None, "ref": None, "alt": None, "score": scores[0],
                           "g": scores[0]})  # fmt: skip
        for step, score in enumerate(scores[1:], start=1):
            entry = {"id": id_, "step": step, "position": step, "ref": seq[step], "alt": "T", "score": score, "g": score}
            trajectory.append(entry)
            edits.append(entry)
    summary = pd.DataFrame(summary)
    for column, dtype in {"n_regions": "Int64", "success": "boolean"}.items():
        summary[column] = summary[column].astype(dtype)
    trajectory = pd.DataFrame(trajectory)
    trajectory["position"] = trajectory["position"].astype("Int64")
    tables = {"frame": pd.DataFrame(rows), "summary": summary, "regions": pd.DataFrame(regions),
              "edits": pd.DataFrame(edits), "trajectory": trajectory}  # fmt: skip
    params = {"goal": "flip", "output": "margin[1]", "max_edits": 2, "baseline_draws": 200, "alpha": 0.05}
    return SensitivityReport("dna", tables, params)


NOTHING = {"id": "nothing", "success": False, "n_regions": 0, "p_value": 0.001, "ratio": 90.0, "scores": [1.0, 0.5]}
WEAK = {"id": "weak", "success": True, "n_regions": 0, "p_value": 0.04, "ratio": 2.0}
REGION = {"id": "region_only", "success": False, "n_regions": 1, "p_value": 0.2, "ratio": 1.5, "scores": [1.0, 0.4]}
STRONG = {"id": "strong", "success": True, "n_regions": 1, "p_value": 0.005, "ratio": 9.0}
TIED = {"id": "tied", "success": True, "n_regions": 1, "p_value": 0.005, "ratio": 30.0, "scores": [1.0, 0.3, -0.2]}


def input_order(text):
    return re.findall(r'<section id="input-([^"]+)">', text)


def test_inputs_without_a_finding_come_last_whatever_their_p_value():
    report = dna_report([NOTHING, WEAK, REGION, STRONG, TIED])
    assert input_order(report.to_html(figures=False)) == ["tied", "strong", "weak", "region_only", "nothing"]
    # the same order decides which inputs get figures when only a few are shown
    assert input_order(report.to_html(figures=False, max_inputs=2)) == ["tied", "strong"]


def test_strongest_first_puts_missing_p_values_after_the_others():
    s = pd.DataFrame({"id": list("abc"), "found": [True, True, True], "p": [np.nan, 0.5, 0.1],
                      "ratio": [5.0, 1.0, np.nan]})  # fmt: skip
    assert html.strongest_first(s, found="found", p_value="p", ratio="ratio")["id"].tolist() == ["c", "b", "a"]


def test_logomaker_note_is_said_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "logomaker", None)
    text = dna_report([WEAK, STRONG, TIED]).to_html()
    assert text.count("Install logomaker") == 1
    assert text.count("data:image/png;base64,") == 3


def test_one_edit_is_drawn_as_two_bars_not_a_line():
    report = dna_report([WEAK])
    ax = report.plot("trajectory", id="weak")
    lines = [ln for ln in ax.get_lines() if "goal" not in ln.get_label()]
    assert lines == []
    assert [round(p.get_y() + p.get_height(), 6) for p in ax.patches] == [1.0, -0.5]
    # the bar that reaches the goal is coloured apart from the one before it
    assert ax.patches[0].get_facecolor() != ax.patches[1].get_facecolor()
    matplotlib.pyplot.close("all")


def test_tables_scroll_inside_their_box_with_a_sticky_header():
    wide = pd.DataFrame({f"column_{i}": [1.5] for i in range(40)})
    text = html.table_html(wide)
    assert text.startswith('<div class="probekit-scroll">') and text.endswith("</div>")
    page = html.page("t", text)
    assert re.search(r"\.probekit-scroll \{[^}]*overflow: auto", page)
    assert re.search(r"th \{[^}]*position: sticky", page)


def test_missing_values_are_a_dash_never_nan_or_none():
    frame = pd.DataFrame({"id": ["a", "b"], "p_value": [0.01, np.nan], "motif": ["M1", None],
                          "n": pd.array([1, None], dtype="Int64")})  # fmt: skip
    text = html.table_html(frame)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
    assert cells == ["a", "0.01", "M1", "1", "b", html.MISSING, html.MISSING, html.MISSING]


def test_numbers_right_text_left_and_text_is_escaped():
    text = html.table_html(pd.DataFrame({"id": ["<b>x</b>"], "score": [2.0]}))
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x" not in text
    assert '<td class="num">2</td>' in text and re.search(r"<th class=\"num\"[^>]*>score</th>", text)


def test_long_tables_are_capped_and_say_how_many_rows_are_left_out():
    text = html.table_html(pd.DataFrame({"x": np.arange(120)}), max_rows=50)
    assert text.count("<tr>") == 51 and "70 more rows not shown" in text


def test_header_descriptions_become_tooltips():
    text = html.table_html(pd.DataFrame({"p_value": [0.1]}), descriptions={"p_value": "empirical p"})
    assert 'title="empirical p"' in text


def test_summary_drops_empty_columns_and_explains_the_p_value_floor():
    text = dna_report([WEAK, STRONG]).to_html(figures=False)
    summary = text[text.index('id="summary"') : text.index('id="regions"')]
    assert "motif</th>" not in summary and "error</th>" not in summary  # every value missing
    assert "the smallest p-value 200 draws can give is 0.00498" in summary
    assert ">nan<" not in text and ">None<" not in text


@pytest.mark.parametrize(
    "value, expected",
    [(0.0049751, "0.00498"), (float("nan"), html.MISSING), (None, html.MISSING), (pd.NA, html.MISSING),
     (np.float32(2.5), "2.5"), (np.int64(7), "7"), (True, "True"), ("text", "text")],
)  # fmt: skip
def test_fmt_number(value, expected):
    assert html.fmt_number(value) == expected


def test_good_rows_keep_rows_without_errors():
    s = pd.DataFrame({"id": ["a", "b", "c"], "error": [None, "bad", None]})
    assert html.good_rows(s)["id"].tolist() == ["a", "c"]
    assert html.good_rows(s.drop(columns="error"))["id"].tolist() == ["a", "b", "c"]



def test_many_inputs_get_links_to_their_figures_in_reading_order():
    text = dna_report([NOTHING, WEAK, REGION, STRONG, TIED]).to_html(figures=False)
    links = re.findall(r'<a href="#input-([^"]+)">', text)
    assert links == input_order(text) == ["tied", "strong", "weak", "region_only", "nothing"]


def test_an_input_without_a_random_comparison_says_so():
    lone = {"id": "lone", "success": False, "n_regions": 0, "p_value": np.nan, "ratio": np.nan, "scores": [1.0]}
    text = dna_report([lone]).to_html(figures=False)
    assert "edits none (goal not reached" in text and "no comparison with random edits" in text
    assert f"{html.MISSING}x" not in text
