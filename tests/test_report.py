"""SensitivityReport on hand-made tables: accessors, plots, HTML, JSON, save/load, extension; table helpers."""

import json
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from probekit.report import SensitivityReport, html  # noqa: E402
from probekit.report.tables import (  # noqa: E402
    critical_mask,
    find_regions,
    frame_from_plain,
    frame_to_plain,
    null_threshold,
    position_importance,
    rank_desc,
)

BASES = "ACGT"


def toy_report(length=12, seed=0):
    """Two good inputs and one bad record, with every DNA table filled by hand."""
    g = np.random.default_rng(seed)
    rows, summary, regions, edits, trajectory = [], [], [], [], []
    for i, id_ in enumerate(["a", "b"]):
        seq = "".join(g.choice(list(BASES), length))
        effects = g.normal(size=(length, 4)) * 0.1
        effects[4:8] -= 2.0  # a strong block at 4..7
        for p, ref in enumerate(seq):
            effects[p, BASES.index(ref)] = 0.0
        importance = np.abs(effects).max(axis=1)
        rank = np.empty(length, dtype=np.int64)
        rank[np.argsort(-importance, kind="stable")] = np.arange(1, length + 1)
        for p in range(length):
            inside = 4 <= p < 8
            row = {"id": id_, "position": p, "ref": seq[p], "importance": importance[p], "rank": int(rank[p]),
                   "critical": inside, "region": 1 if inside else None, "motif": "M1" if inside else None}  # fmt: skip
            row.update({f"effect_{b}": effects[p, j] for j, b in enumerate(BASES)})
            rows.append(row)
        summary.append({"id": id_, "length": length, "score": 1.0 + i, "goal": "below:0.5", "goal_score": 0.5,
                        "n_edits": 2, "success": True, "proved_minimal": i == 0, "score_after": 0.1,
                        "adversarial_delta": -0.9 - i, "ratio": 3.0, "z": 4.0, "p_value": 0.01, "threshold": 1.0,
                        "error": None})  # fmt: skip
        regions.append({"id": id_, "region": 1, "start": 4, "end": 8, "length": 4, "sequence": seq[4:8],
                        "importance_sum": importance[4:8].sum(), "motif": "M1"})  # fmt: skip
        trajectory.append({"id": id_, "step": 0, "position": None, "ref": None, "alt": None, "score": 1.0 + i, "g": 0.5 + i})
        for step, (p, s) in enumerate([(5, 0.6 + i / 2), (6, 0.1)], start=1):
            alt = "A" if seq[p] != "A" else "C"
            entry = {"id": id_, "step": step, "position": p, "ref": seq[p], "alt": alt, "score": s, "g": s - 0.5}
            trajectory.append(entry)
            edits.append(entry)
    summary.append({"id": "bad", "length": 5, "error": "record 'bad': position 2 has 'R', an IUPAC ambiguity code"})
    summary = pd.DataFrame(summary)
    for col, dtype in {"length": "Int64", "n_edits": "Int64", "success": "boolean", "proved_minimal": "boolean"}.items():
        summary[col] = summary[col].astype(dtype)
    frame = pd.DataFrame(rows)
    frame["region"] = frame["region"].astype("Int64")
    trajectory = pd.DataFrame(trajectory)
    trajectory["position"] = trajectory["position"].astype("Int64")
    tables = {"frame": frame, "summary": summary, "regions": pd.DataFrame(regions), "edits": pd.DataFrame(edits),
              "trajectory": trajectory}  # fmt: skip
    return SensitivityReport("dna", tables, {"goal": "below:0.5", "output": "logit[0]", "seed": 0, "alpha": 0.05})


@pytest.fixture(scope="module")
def report():
    return toy_report()


def test_accessors_return_copies_and_report_is_immutable(report):
    frame = report.to_frame()
    frame.loc[0, "importance"] = 1e9
    assert report.to_frame().loc[0, "importance"] != 1e9
    with pytest.raises(AttributeError):
        report.kind = "features"
    assert report.ids == ["a", "b", "bad"]
    assert len(report) == 3


def test_required_tables_and_types():
    with pytest.raises(ValueError, match="summary"):
        SensitivityReport("dna", {"frame": pd.DataFrame()})
    with pytest.raises(TypeError, match="DataFrame"):
        SensitivityReport("dna", {"frame": pd.DataFrame(), "summary": [1]})


def test_critical_orders_by_rank_and_limits_per_input(report):
    crit = report.critical(top=2)
    assert crit.groupby("id").size().to_dict() == {"a": 2, "b": 2}
    frame = report.to_frame()
    for id_, rows in crit.groupby("id"):
        own = frame[(frame["id"] == id_) & frame["critical"]].sort_values("importance", ascending=False)
        assert rows["position"].tolist() == own["position"].head(2).tolist()
    assert len(report.critical(top=None)) == int(frame["critical"].sum())


def test_summary_keeps_error_rows(report):
    summary = report.summary()
    bad = summary[summary["id"] == "bad"].iloc[0]
    assert "IUPAC" in bad["error"]
    assert summary[summary["id"] != "bad"]["error"].isna().all()


def test_ism_plot_draws_the_effect_matrix(report):
    ax = report.plot("ism", id="b")
    image = ax.get_images()[0].get_array()
    rows = report.to_frame().query("id == 'b'").sort_values("position")
    np.testing.assert_allclose(np.asarray(image), rows[[f"effect_{b}" for b in BASES]].to_numpy().T)
    matplotlib.pyplot.close("all")


def test_trajectory_plot_has_scores_and_goal_line(report):
    ax = report.plot("trajectory", id="a")
    traj = report.table("trajectory").query("id == 'a'").sort_values("step")
    # one bar per step, drawn from the goal line (0.5) to the score after the edits so far
    tops = [p.get_y() + p.get_height() for p in ax.patches]
    np.testing.assert_allclose(tops, traj["score"].to_numpy())
    np.testing.assert_allclose([p.get_y() for p in ax.patches], 0.5)
    goal = [ln for ln in ax.get_lines() if "goal" in ln.get_label()][0]
    assert np.allclose(goal.get_ydata(), 0.5)
    matplotlib.pyplot.close("all")


def test_logo_plot_heights_are_importance(report):
    pytest.importorskip("logomaker")
    ax = report.plot("logo", id="a", start=2, end=10)
    assert ax.get_xlim() == (1.5, 9.5)
    matplotlib.pyplot.close("all")


def test_logo_without_logomaker_names_the_extra(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "logomaker", None)
    with pytest.raises(ImportError, match=r'probekit\[plot\]'):
        report.plot("logo", id="a")
    matplotlib.pyplot.close("all")


def test_plot_errors_name_the_problem(report):
    with pytest.raises(ValueError, match="no plot 'nope'"):
        report.plot("nope")
    with pytest.raises(ValueError, match="IUPAC"):
        report.plot("ism", id="bad")
    with pytest.raises(KeyError):
        report.plot("ism", id="missing")


def test_to_html_is_one_self_contained_file(report, tmp_path):
    path = report.to_html(tmp_path / "out" / "report.html")
    assert list((tmp_path / "out").iterdir()) == [path]
    text = path.read_text()
    assert text.count("data:image/png;base64,") >= 2  # one figure per good input
    assert 'src="http' not in text and "<link" not in text and "<script src" not in text
    assert "IUPAC" in text and "Critical regions" in text
    assert "<table" in text


def test_repr_html_is_a_fragment(report):
    text = report._repr_html_()
    assert text.startswith('<div class="probekit-report">') and "<html" not in text


def test_save_load_round_trip_is_exact(report, tmp_path):
    path = report.save(tmp_path / "r.pt")
    again = SensitivityReport.load(path)
    assert again == report
    for name in report.table_names:
        pd.testing.assert_frame_equal(again.table(name), report.table(name))
    assert again.params == report.params


def test_load_refuses_other_files(tmp_path):
    torch.save({"x": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a saved"):
        SensitivityReport.load(tmp_path / "x.pt")


def test_to_json_round_trip_keeps_values(report):
    text = report.to_json()
    payload = json.loads(text)
    assert payload["kind"] == "dna" and set(payload["tables"]) == set(report.table_names)
    again = SensitivityReport.from_json(text)
    for name in report.table_names:
        pd.testing.assert_frame_equal(again.table(name), report.table(name), check_dtype=False, rtol=1e-14)


def test_new_kind_registers_plots_and_sections(tmp_path):
    frame = pd.DataFrame({"id": ["m", "m"], "feature": ["f0", "f1"], "importance": [1.0, 2.0], "rank": [2, 1],
                          "critical": [False, True]})  # fmt: skip
    summary = pd.DataFrame({"id": ["m"], "error": [None]})

    @SensitivityReport.register_plot("toykind", "bars")
    def bars(report, id, ax, **kwargs):
        rows = report.to_frame().query("id == @id")
        ax.bar(rows["feature"], rows["importance"])
        return ax

    def atoms(report, *, figures, max_inputs):
        fig, ax = html.new_figure(3, 2)
        report.plot("bars", ax=ax)
        return html.section("Toy atoms", html.table_html(report.to_frame()) + html.figure_html(fig))

    SensitivityReport.register_section("toykind", atoms, order=5)
    report = SensitivityReport("toykind", {"frame": frame, "summary": summary})
    assert report.plot_kinds("toykind") == ["bars"]
    heights = [p.get_height() for p in report.plot("bars").patches]
    assert heights == [1.0, 2.0]
    text = report.to_html()
    assert "Toy atoms" in text and "data:image/png;base64," in text
    matplotlib.pyplot.close("all")


# ------------------------------------------------------------------ helpers
def naive_regions(mask, max_gap, min_length):
    """Definition: merge runs of True whose separating gap is <= max_gap, drop short ones."""
    idx = [i for i, m in enumerate(mask) if m]
    if not idx:
        return []
    groups, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if i - prev - 1 > max_gap:
            groups.append((start, prev + 1))
            start = i
        prev = i
    groups.append((start, prev + 1))
    return [(s, e) for s, e in groups if e - s >= min_length]


@pytest.mark.parametrize("seed", range(20))
def test_find_regions_matches_definition(seed):
    g = np.random.default_rng(seed)
    mask = g.random(30) < g.uniform(0.1, 0.7)
    for max_gap in (0, 1, 3):
        for min_length in (1, 2, 4):
            assert find_regions(torch.as_tensor(mask), max_gap=max_gap, min_length=min_length) == naive_regions(
                mask, max_gap, min_length
            )


def test_find_regions_widen_to_half_the_peak():
    importance = np.array([0.1, 0.5, 0.9, 2.0, 0.6, 1.1, 0.4, 0.0, 3.0, 1.0, 1.6])
    mask = importance >= 1.05  # seeds: 3, 5, 8, 10
    # run 3: peak 2.0 -> neighbours >= 1.0: none on the left (0.9), none on the right (0.6)
    # run 5: peak 1.1 -> >= 0.55: 4 (0.6) joins, 6 (0.4) does not
    # run 8: peak 3.0 -> >= 1.5: 9 (1.0) does not; run 10: peak 1.6 -> 9 (1.0) joins
    got = find_regions(mask, importance=importance, max_gap=0, min_length=1)
    assert got == [(3, 6), (8, 11)]
    assert find_regions(mask, max_gap=0, min_length=1) == [(3, 4), (5, 6), (8, 9), (10, 11)]


def test_null_threshold_is_lower_quantile_of_alternatives():
    g = torch.Generator().manual_seed(0)
    effects = torch.randn(3, 10, 4, generator=g)
    alternatives = torch.rand(3, 10, 4, generator=g) < 0.75
    got = null_threshold(effects, alternatives, alpha=0.1)
    for i in range(3):
        vals = np.sort(effects[i].abs()[alternatives[i]].numpy())
        expected = vals[int(np.floor(0.9 * (len(vals) - 1)))]
        assert float(got[i]) == pytest.approx(float(expected))


def test_importance_rank_and_critical():
    effects = torch.tensor([[[0.0, -3.0, 1.0, 0.0], [0.5, 0.0, 0.2, -0.1], [0.0, 0.0, 0.0, 0.0]]])
    importance = position_importance(effects)
    assert importance.tolist() == [[3.0, 0.5, 0.0]]
    assert rank_desc(importance).tolist() == [[1, 2, 3]]
    assert critical_mask(importance, torch.tensor([0.5])).tolist() == [[True, True, False]]
    # an all-zero input has no critical position even with a zero threshold
    assert not critical_mask(torch.zeros(1, 4), torch.zeros(1)).any()


def test_plain_frames_round_trip_through_weights_only(tmp_path):
    frame = pd.DataFrame(
        {
            "f": [0.1 + 0.2, np.nan, 1e-300],
            "i": np.array([1, 2, 3], dtype=np.int32),
            "b": [True, False, True],
            "nb": pd.array([True, None, False], dtype="boolean"),
            "ni": pd.array([1, None, 3], dtype="Int64"),
            "s": ["x", None, "z"],
        }
    )
    torch.save(frame_to_plain(frame), tmp_path / "f.pt")
    again = frame_from_plain(torch.load(tmp_path / "f.pt", weights_only=True))
    pd.testing.assert_frame_equal(again, frame)
