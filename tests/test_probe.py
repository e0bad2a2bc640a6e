"""probe(): planted motifs recovered, error rows, baseline statistics, windows, motifs, attributions."""

import sys
import types
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from probekit import FeatureModel, ProbekitWarning, SequenceModel, goals  # noqa: E402
from probekit.encode.dna import one_hot  # noqa: E402
from probekit.probe import probe  # noqa: E402
from probekit.report import SensitivityReport  # noqa: E402
from probekit.testing import MotifCounter, ToyConv, ToyNLC  # noqa: E402

MOTIF = "TGACTCA"
REQUIRED = {"id", "position", "ref", "importance", "rank", "critical", "region", "motif",
            "effect_A", "effect_C", "effect_G", "effect_T"}  # fmt: skip


def backgrounds(n, length, motif=MOTIF, seed=0, max_match=4):
    """Random sequences with no window matching ``motif`` at more than ``max_match`` positions."""
    g = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        s = "".join(g.choice(list("ACGT"), length))
        k = len(motif)
        best = max(sum(a == b for a, b in zip(s[o : o + k], motif)) for o in range(length - k + 1))
        if best <= max_match:
            out.append(s)
    return out


def plant(seq, motif, at):
    return seq[:at] + motif + seq[at + len(motif) :]


class PlantedPWM(nn.Module):
    """Score = 2 for a full motif match, 1 with one mismatch, 0 otherwise, plus small per-position noise."""

    def __init__(self, motif, length, noise=0.03, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("pwm", one_hot([motif])[0])
        self.register_buffer("w", torch.randn(4, length, generator=g) * noise)
        self.k = len(motif)

    def forward(self, x):
        hits = nn.functional.conv1d(x, self.pwm[None])[:, 0]
        return (torch.relu(hits - (self.k - 2)).amax(dim=-1) + (x * self.w).sum(dim=(1, 2)))[:, None]


@pytest.fixture(scope="module")
def counter_report():
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    seqs = [plant(s, MOTIF, at) for s, at in zip(backgrounds(3, 30, seed=1), (3, 12, 20))]
    return probe(adapter, seqs, goal=goals.below(0.5), max_edits=1, baseline_draws=50), seqs, (3, 12, 20)


def test_planted_motif_is_the_top_critical_region(counter_report):
    report, seqs, planted = counter_report
    regions = report.regions()
    frame = report.to_frame()
    for i, at in enumerate(planted):
        own = regions[regions["id"] == f"seq{i}"]
        top = own[own["region"] == 1].iloc[0]
        assert top["start"] <= at and top["end"] >= at + len(MOTIF)
        rows = frame[frame["id"] == f"seq{i}"]
        assert sorted(rows[rows["rank"] <= len(MOTIF)]["position"]) == list(range(at, at + len(MOTIF)))
        summary = report.summary().set_index("id").loc[f"seq{i}"]
        assert summary["n_edits"] == 1 and summary["success"] and summary["proved_minimal"]
        assert summary["top_region"] == f"{top['start']}-{top['end']}"


def test_planted_pwm_with_noise(device):
    length = 30
    model = PlantedPWM(MOTIF, length)
    adapter = SequenceModel(model, output=0, device=device)
    planted = (5, 19)
    seqs = [plant(s, MOTIF, at) for s, at in zip(backgrounds(2, length, seed=4), planted)]
    report = probe(adapter, seqs, goal=goals.decrease(1.5), max_edits=2, baseline_draws=40)
    regions = report.regions()
    for i, at in enumerate(planted):
        top = regions[(regions["id"] == f"seq{i}") & (regions["region"] == 1)].iloc[0]
        assert (top["start"], top["end"]) == (at, at + len(MOTIF))
        assert top["n_edits_inside"] == 2
    # trajectory: each step's score is the model's score of the edited string
    traj = report.table("trajectory")
    summary = report.summary().set_index("id")
    for i, seq in enumerate(seqs):
        own = traj[traj["id"] == f"seq{i}"].sort_values("step")
        assert own["step"].tolist() == [0, 1, 2]
        edited = list(seq)
        expected = [float(adapter.score([seq])[0])]
        for row in own.iloc[1:].itertuples():
            assert edited[row.position] == row.ref
            edited[row.position] = row.alt
            expected.append(float(adapter.score(["".join(edited)])[0]))
        np.testing.assert_allclose(own["score"].to_numpy(), expected, atol=1e-5)
        assert own["score"].iloc[-1] == pytest.approx(summary.loc[f"seq{i}", "score_after"], abs=1e-5)
        assert summary.loc[f"seq{i}", "goal_score"] == pytest.approx(expected[0] - 1.5, abs=1e-5)
        assert own["g"].iloc[-1] <= 0 < own["g"].iloc[0]


def test_frame_rows_columns_and_effects_equal_ism():
    from probekit.search.discrete import saturation_mutagenesis

    adapter = SequenceModel(ToyConv(seed=2), output=1, device="cpu")
    seqs = backgrounds(2, 20, seed=2) + backgrounds(1, 26, seed=3)
    report = probe(adapter, seqs, max_edits=1, baseline_draws=20)
    frame = report.to_frame()
    assert REQUIRED <= set(frame.columns)
    assert len(frame) == 20 + 20 + 26
    assert frame.groupby("id").size().to_dict() == {"seq0": 20, "seq1": 20, "seq2": 26}
    ism = saturation_mutagenesis(adapter, seqs[2:])
    rows = frame[frame["id"] == "seq2"].sort_values("position")
    effects = rows[[f"effect_{b}" for b in "ACGT"]].to_numpy()
    np.testing.assert_allclose(effects, ism.effects[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(rows["importance"], np.abs(effects).max(axis=1), atol=1e-6)
    assert sorted(rows["rank"]) == list(range(1, 27))
    assert rows.sort_values("rank")["importance"].is_monotonic_decreasing


def test_bad_records_are_error_rows_and_the_rest_goes_on(tmp_path):
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    good = plant(backgrounds(1, 24, seed=5)[0], MOTIF, 8)
    fasta = tmp_path / "in.fa"
    fasta.write_text(f">ok\n{good}\n>iupac\nACGRTACG\n>gap\nACG-TT\n>digit\nAC1GT\n>ok2\n{good.lower()}\n")
    report = probe(adapter, str(fasta), goal="below:0.5", max_edits=1, baseline_draws=20)
    summary = report.summary().set_index("id")
    assert list(summary.index) == ["ok", "iupac", "gap", "digit", "ok2"]
    for bad, word in (("iupac", "IUPAC"), ("gap", "gap"), ("digit", "digit")):
        assert bad in summary.loc[bad, "error"] and word in summary.loc[bad, "error"]
    for ok in ("ok", "ok2"):
        assert summary.loc[ok, "error"] is None and summary.loc[ok, "success"]
    assert set(report.to_frame()["id"]) == {"ok", "ok2"}
    # nothing readable: a report of errors, with the usual columns
    none = probe(adapter, ["ACGR", "", "AC-T"], baseline_draws=5)
    assert none.summary()["error"].notna().all() and none.to_frame().empty
    assert REQUIRED <= set(none.to_frame().columns)


def test_length_the_model_cannot_take_becomes_error_rows():
    adapter = SequenceModel(ToyNLC(20), output=0, layout="NLC", device="cpu")
    seqs = backgrounds(2, 20, seed=6) + backgrounds(1, 24, seed=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = probe(adapter, seqs, max_edits=1, baseline_draws=10)
    assert any(issubclass(w.category, ProbekitWarning) for w in caught)
    summary = report.summary().set_index("id")
    assert "length 24" in summary.loc["seq2", "error"]
    assert summary.loc[["seq0", "seq1"], "error"].isna().all()
    assert set(report.to_frame()["id"]) == {"seq0", "seq1"}


def test_p_value_and_ratio_match_the_baseline(counter_report):
    from probekit.search.baseline import random_substitutions

    report, seqs, _ = counter_report
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    summary = report.summary()
    assert (summary["random_k"] == 1).all()  # one edit each, so one baseline call for all
    baseline = random_substitutions(adapter, one_hot(seqs), k=1, n_draws=50, seed=0)
    deltas = baseline.deltas.double().numpy()
    adv = summary["adversarial_delta"].to_numpy()
    for i in range(len(seqs)):
        sign = -1.0 if adv[i] < 0 else 1.0
        extreme = np.sum(sign * deltas[i] >= sign * adv[i])
        assert summary["p_value"][i] == pytest.approx((1 + extreme) / (1 + deltas.shape[1]))
        assert summary["ratio"][i] == pytest.approx(abs(adv[i]) / np.abs(deltas[i]).mean())
        assert summary["random_mean"][i] == pytest.approx(deltas[i].mean(), abs=1e-6)


def test_window_limits_scan_and_edits():
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    seq = plant(plant(backgrounds(1, 40, seed=8)[0], MOTIF, 2), MOTIF, 25)
    report = probe(adapter, [seq], goal="below:1.5", max_edits=1, baseline_draws=10, window=(20, 40))
    frame = report.to_frame()
    outside = frame[(frame["position"] < 20)]
    assert (outside["importance"] == 0).all() and not outside["critical"].any()
    assert report.edits()["position"].between(20, 39).all()
    assert report.regions()[["start", "end"]].values.tolist() == [[25, 32]]


def test_a_window_starting_before_the_sequence_is_clipped():
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    seq = plant(backgrounds(1, 30, seed=8)[0], MOTIF, 3)
    report = probe(adapter, [seq], goal="below:0.5", max_edits=1, baseline_draws=10, window=(-5, 12))
    assert report.summary()["error"][0] is None and bool(report.summary()["success"][0])
    assert report.edits()["position"].between(0, 11).all()


def test_unreached_goals_are_compared_with_draws_of_the_edits_made_and_never_more_than_can_be_made():
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    # two editable positions in the window: draws of three substitutions could not be made
    report = probe(adapter, ["ACGTACGTACGTAC"], goal=goals.below(-1e6), max_edits=3, window=(4, 6), baseline_draws=20)
    row = report.summary().iloc[0]
    assert not row["success"] and row["random_k"] <= 2
    assert np.isfinite(row["p_value"]) and np.isfinite(row["random_mean"])


def test_bad_settings_fail_before_any_work():
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    with pytest.raises(ValueError, match="unknown method"):
        probe(adapter, ["ACGTACGT"], method="magic")
    with pytest.raises(ValueError, match="unknown attribution"):
        probe(adapter, ["ACGTACGT"], attribution="magic")
    with pytest.warns(ProbekitWarning, match="window"):
        report = probe(adapter, ["ACGTACGT", "ACGTACGTACGTAC"], window=slice(10, 14), max_edits=1, baseline_draws=5)
    assert "window" in report.summary()["error"][0] and report.summary()["error"][1] is None


def test_motif_annotation_names_the_planted_jaspar_motif():
    pytest.importorskip("pyjaspar")
    from probekit.motifs import Motif, jaspar_motifs

    (ctcf,) = jaspar_motifs(matrix_ids=["MA0139.1"])
    site = ctcf.consensus
    seq = plant(backgrounds(1, 60, motif=site, seed=9, max_match=12)[0], site, 21)
    adapter = SequenceModel(MotifCounter(site), output=0, device="cpu")
    report = probe(adapter, [seq], goal="below:0.5", max_edits=1, baseline_draws=10,
                   motifs=[ctcf, Motif.from_consensus("TGACTCA", name="AP1")])  # fmt: skip
    top = report.regions().iloc[0]
    assert (top["motif"], top["motif_id"], top["motif_offset"], top["motif_strand"]) == ("CTCF", "MA0139.1", 21, "+")
    frame = report.to_frame()
    assert set(frame[frame["region"] == 1]["motif"]) == {"CTCF"}
    assert frame[frame["region"].isna()]["motif"].isna().all()
    assert not report.table("motifs").empty


def test_attribution_column_equals_attr():
    from probekit.attr import input_x_gradient

    adapter = SequenceModel(ToyConv(seed=3), output=1, device="cpu")
    seqs = backgrounds(2, 16, seed=10)
    report = probe(adapter, seqs, max_edits=1, baseline_draws=10, attribution="input_x_gradient")
    expected = input_x_gradient(adapter, seqs).per_position.reshape(-1).numpy()
    np.testing.assert_allclose(report.to_frame()["attribution"].to_numpy(), expected, atol=1e-6)


def test_input_forms_agree(counter_report):
    report, seqs, _ = counter_report
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    kwargs = dict(goal=goals.below(0.5), max_edits=1, baseline_draws=50)
    for form in (one_hot(seqs), pd.DataFrame({"id": ["seq0", "seq1", "seq2"], "sequence": seqs})):
        other = probe(adapter, form, **kwargs)
        pd.testing.assert_frame_equal(
            other.summary().drop(columns="evaluations"), report.summary().drop(columns="evaluations")
        )
        pd.testing.assert_frame_equal(other.to_frame(), report.to_frame())


def test_report_html_and_round_trip(counter_report, tmp_path):
    report, _, _ = counter_report
    text = report.to_html(tmp_path / "r.html", max_inputs=1).read_text()
    assert text.count("data:image/png;base64,") == 1 and 'src="http' not in text
    assert SensitivityReport.load(report.save(tmp_path / "r.pt")) == report


def test_feature_models_are_handed_to_the_molecule_report(monkeypatch):
    calls = {}
    fake = types.ModuleType("probekit.probe.molecules")

    def probe_features(adapter, inputs, **kwargs):
        calls.update(kwargs, adapter=adapter, inputs=inputs)
        return "features report"

    fake.probe_features = probe_features
    monkeypatch.setitem(sys.modules, "probekit.probe.molecules", fake)
    adapter = FeatureModel(nn.Linear(3, 1), output=0, device="cpu")
    X = torch.zeros(2, 3)
    assert probe(adapter, X, max_edits=4, seed=3, norm="l2") == "features report"
    assert calls["adapter"] is adapter and calls["inputs"] is X and calls["max_edits"] == 4 and calls["seed"] == 3
    assert calls["norm"] == "l2" and "attribution" not in calls  # its own default method stays
    probe(adapter, X, attribution="saliency")
    assert calls["attribution"] == "saliency"
    with pytest.raises(ValueError, match="DNA"):
        probe(adapter, X, motifs=True)
    with pytest.raises(TypeError, match="feature models only"):
        probe(SequenceModel(MotifCounter(MOTIF), output=0, device="cpu"), ["ACGT"], norm="l2")


def _bits_adapter(n_bits=32):
    from probekit.encode.mol import Morgan

    torch.manual_seed(0)
    return FeatureModel(nn.Linear(n_bits, 1), featurizer=Morgan(radius=1, n_bits=n_bits), output=0, device="cpu")


def test_feature_models_get_the_flip_budget_asked_for():
    adapter = _bits_adapter()
    smiles = ["CCO", "c1ccccc1O"]
    unreachable = goals.decrease(by=50.0)  # every search spends its whole budget
    for options, expected in (({}, 3), ({"max_flips": 1}, 1), ({"max_edits": 2}, 2), ({"max_flips": 2, "max_edits": 2}, 2)):
        report = probe(adapter, smiles, goal=unreachable, baseline_draws=5, **options)
        summary = report.summary()
        assert report.params["max_flips"] == expected, options
        assert summary["n_flips"].tolist() == [expected] * 2 and summary["flip_random_k"].tolist() == [expected] * 2
    with pytest.raises(ValueError, match="max_flips=1 and max_edits=2 disagree"):
        probe(adapter, smiles, max_flips=1, max_edits=2, baseline_draws=5)


def test_feature_models_take_repeated_ids():
    from probekit.io import read_molecules

    joined = pd.concat([read_molecules(["CCO", "CCN"]), read_molecules(["CCC"])], ignore_index=True)
    with pytest.warns(ProbekitWarning, match="'mol0' -> 'mol0#0', 'mol0#1'"):
        report = probe(_bits_adapter(), joined, goal=goals.decrease(by=0.1), baseline_draws=5)
    assert report.summary()["id"].tolist() == ["mol0#0", "mol1", "mol0#1"]
    assert sorted(report.atoms()["id"].unique()) == ["mol0#0", "mol0#1", "mol1"]
    assert report.mol("mol0#1").GetNumAtoms() == 3


def test_dna_records_with_repeated_ids_are_all_probed():
    frame = pd.DataFrame({"id": ["s", "s", "s#0"], "sequence": ["ACGTTGACTCAT", "TTTTTTTTTTTT", "ACGTACGTACGX"]})
    adapter = SequenceModel(MotifCounter(MOTIF), output=0, device="cpu")
    with pytest.warns(ProbekitWarning, match="'s' -> 's#1', 's#2'"):
        report = probe(adapter, frame, goal=goals.below(0.5), max_edits=1, baseline_draws=5)
    summary = report.summary()
    assert summary["id"].tolist() == ["s#1", "s#2", "s#0"]
    assert summary["error"][2].startswith("record 's#0': ") and summary["error"][:2].isna().all()


def _pwm_adapter(weight):
    from probekit import SequenceModel

    class PWM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", weight)

        def forward(self, x):
            return (x * self.w).sum(dim=(1, 2))[:, None]

    return SequenceModel(PWM(), output=0, device="cpu", batch_size=64)


def test_critical_positions_are_the_planted_block_and_nothing_in_a_flat_model():
    from probekit.testing import random_sequences

    g = torch.Generator().manual_seed(0)
    flat = torch.randn(4, 120, generator=g) * 0.1
    planted = flat.clone()
    planted[:, 50:58] += torch.randn(4, 8, generator=g) * 3.0
    seqs = random_sequences(3, 120, seed=1)
    strong = probe(_pwm_adapter(planted), seqs, goal=goals.below(-100.0), max_edits=1, baseline_draws=20).to_frame()
    crit = strong[strong["critical"]]
    assert len(crit) and crit["position"].between(50, 57).all()
    quiet = probe(_pwm_adapter(flat), seqs, goal=goals.below(-100.0), max_edits=1, baseline_draws=20).to_frame()
    # without the floor the top alpha (5%) of substitutions, about 6 positions per sequence, would be critical
    assert quiet.groupby("id")["critical"].sum().max() <= 2


def test_motif_query_names_the_best_match_among_the_expected_factors():
    pytest.importorskip("pyjaspar")
    from probekit.motifs import Motif, jaspar_motifs

    (ctcf,) = jaspar_motifs(matrix_ids=["MA0139.1"])
    site = ctcf.consensus
    seq = plant(backgrounds(1, 60, motif=site, seed=9, max_match=12)[0], site, 21)
    adapter = SequenceModel(MotifCounter(site), output=0, device="cpu")
    decoy = Motif.from_consensus(site, name="DECOY")  # the same site: the top match may be either
    kwargs = dict(goal="below:0.5", max_edits=1, baseline_draws=10, motifs=[decoy, ctcf])
    top = probe(adapter, [seq], motif_query=["CTCF"], **kwargs).regions().iloc[0]
    assert top["motif_query_match"] == "CTCF"
    assert 0 <= top["motif_q_value"] <= 1 and top["motif_p_value"] <= top["motif_q_value"] + 1e-12
    assert {top["motif"], top["motif_tied_with"]} == {"DECOY", "CTCF"}  # the tie is named, not hidden
    assert probe(adapter, [seq], **kwargs).regions().iloc[0]["motif_query_match"] is None
    with pytest.raises(ValueError, match="motifs="):
        probe(adapter, [seq], goal="below:0.5", motif_query=["CTCF"])
