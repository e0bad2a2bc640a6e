"""probe_features: tables, re-scored bit flips, perturbations, atoms, HTML and the mol commands."""

import argparse
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from probekit import FeatureModel, goals, outputs
from probekit.chem import atom_importance
from probekit.encode.mol import Concat, Descriptors, Matrix, Morgan
from probekit.cli.demo import run_mol_demo
from probekit.cli.mol import add_mol_arguments, run_mol_cli
from probekit.mol_demo import mol_demo_paths
from probekit.probe.molecules import probe_features
from probekit.report.molecules import ATOM_COLUMNS, FRAME_COLUMNS, MoleculeReport

SMILES = ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1O", "CCN(CC)CC", "C1CC(", "OCC(O)CO"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models here are small: one thread avoids oversubscribing a shared CPU (4x faster under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class BitSum(torch.nn.Module):
    """score = w . x over the first ``n_bits`` features (+ v . descriptors): hand-computable effects."""

    def __init__(self, w, v=None):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float32))
        self.register_buffer("v", torch.as_tensor(v if v is not None else [], dtype=torch.float32))

    def forward(self, x):
        n = self.w.numel()
        out = x[:, :n] @ self.w
        if self.v.numel():
            out = out + x[:, n:] @ self.v
        return out[:, None]


@pytest.fixture(scope="module")
def morgan_report():
    fp = Morgan(radius=1, n_bits=32)
    w = torch.linspace(-1.0, 1.0, 32)
    adapter = FeatureModel(BitSum(w), featurizer=fp, output=outputs.value(0), device="cpu")
    report = probe_features(adapter, SMILES, goal=goals.decrease(by=1.5), max_flips=2, baseline_draws=30, seed=1)
    return adapter, fp, w, report


def test_frame_columns_rows_and_ranks(morgan_report):
    adapter, fp, w, report = morgan_report
    assert isinstance(report, MoleculeReport) and report.kind == "features"
    frame = report.to_frame()
    assert list(frame.columns) == FRAME_COLUMNS
    good = ["mol0", "mol1", "mol2", "mol4"]
    assert frame["id"].unique().tolist() == good  # the bad record has no feature rows
    assert len(frame) == len(good) * 32
    for _, rows in frame.groupby("id"):
        assert sorted(rows["rank"]) == list(range(1, 33))
        top = rows.sort_values("rank")["importance"].to_numpy()
        assert np.all(np.diff(top) <= 1e-9)
    summary = report.summary()
    assert summary["id"].tolist() == [f"mol{i}" for i in range(5)]
    assert summary["error"][3].startswith("record 'mol3': ")
    assert summary["error"].isna().sum() == 4


def test_attributions_are_integrated_gradients_of_a_linear_model(morgan_report):
    adapter, fp, w, report = morgan_report
    frame = report.to_frame()
    # IG from a zero baseline of a linear model is exactly w * x
    expected = frame["value"].to_numpy() * w.numpy()[frame["index"].to_numpy()]
    assert np.allclose(frame["attribution"].to_numpy(), expected, atol=1e-4)


def test_minimal_bit_flips_reach_the_goal_when_rescored_and_are_minimal(morgan_report):
    adapter, fp, w, report = morgan_report
    summary = report.summary().set_index("id")
    edits = report.edits()
    X = fp.transform([s for s in SMILES if s != "C1CC("])
    for k, id in enumerate(["mol0", "mol1", "mol2", "mol4"]):
        x = X[k].clone()
        mine = edits[edits["id"] == id].sort_values("step")
        for e in mine.itertuples():
            assert x[e.index] == e.old
            x[e.index] = e.new
            assert float(adapter.score(x[None])[0]) == pytest.approx(e.score_after, abs=1e-5)
        after = float(adapter.score(x[None])[0])
        before = float(adapter.score(X[k : k + 1])[0])
        assert after == pytest.approx(summary.loc[id, "score_after_flips"], abs=1e-5)
        # brute force over removals of one and two of the molecule's bits (the default flips="off"):
        # is any smaller set enough, and is the goal reachable?
        assert (mine["old"] == 1).all() and (mine["new"] == 0).all()
        gains = {j: -float(w[j]) for j in torch.nonzero(X[k]).flatten().tolist()}  # score change of removing bit j
        pairs = [gains[i] + gains[j] for i, j in itertools.combinations(gains, 2)]
        best = {1: min(gains.values()), 2: min(pairs) if pairs else np.inf}
        need = next((m for m in (1, 2) if best[m] <= -1.5 + 1e-6), None)
        if need is None:
            assert not summary.loc[id, "flips_success"]
        else:
            assert summary.loc[id, "flips_success"] and after <= before - 1.5 + 1e-5
            assert summary.loc[id, "n_flips"] == need == len(mine)


def test_flipped_columns_match_edits_and_critical(morgan_report):
    _, _, _, report = morgan_report
    frame, edits = report.to_frame(), report.edits()
    flipped = frame[frame["flipped"]]
    assert sorted(zip(flipped["id"], flipped["index"])) == sorted(zip(edits["id"], edits["index"]))
    success = report.summary().set_index("id")["flips_success"]
    for row in flipped.itertuples():
        assert row.flip_to == 1 - row.value
        if success[row.id]:
            assert row.critical


def test_random_baseline_ratio(morgan_report):
    _, _, _, report = morgan_report
    good = report.summary().dropna(subset=["score"])
    assert (good["flip_ratio"] > 0).all() and good["flip_p_value"].between(0, 1).all()
    assert (good["flip_random_k"] >= 1).all()


def test_atoms_table_spreads_attributions(morgan_report):
    adapter, fp, w, report = morgan_report
    atoms = report.atoms()
    assert list(atoms.columns) == ATOM_COLUMNS
    frame = report.to_frame()
    for i, s in enumerate(SMILES):
        if s == "C1CC(":
            assert f"mol{i}" not in set(atoms["id"])
            continue
        mol = Chem.MolFromSmiles(s)
        mine = atoms[atoms["id"] == f"mol{i}"].sort_values("atom")
        assert mine["atom"].tolist() == list(range(mol.GetNumAtoms()))
        assert mine["element"].tolist() == [a.GetSymbol() for a in mol.GetAtoms()]
        attr = frame[frame["id"] == f"mol{i}"].sort_values("index")["attribution"].to_numpy()
        assert np.allclose(mine["importance"], atom_importance(mol, attr, fp), atol=1e-6)
        assert mine["importance"].sum() == pytest.approx(attr.sum(), abs=1e-4)  # all set bits have atoms
        drawn = report.mol(f"mol{i}")
        assert drawn.GetNumAtoms() == mol.GetNumAtoms()
        assert [a.GetSymbol() for a in drawn.GetAtoms()] == mine["element"].tolist()


def test_feature_ranking(morgan_report):
    _, _, w, report = morgan_report
    ranking = report.features()
    frame = report.to_frame()
    assert ranking["rank"].tolist() == list(range(1, 33))
    means = frame.groupby("feature")["importance"].mean()
    assert np.allclose(ranking["mean_abs_attribution"], means[ranking["feature"]].to_numpy())
    counts = frame[frame["flipped"]].groupby("feature").size()
    assert (ranking.set_index("feature")["n_in_flips"].reindex(counts.index) == counts).all()


def test_html_notebook_view_and_save(morgan_report, tmp_path):
    _, _, _, report = morgan_report
    path = report.to_html(tmp_path / "r.html", max_inputs=2)
    text = path.read_text()
    assert text.count("<svg") >= 2 and "Feature ranking" in text and "record 'mol3': SMILES Parse Error" in text
    assert "<svg" in report._repr_html_()
    report.save(tmp_path / "r.pt")
    back = MoleculeReport.load(tmp_path / "r.pt")
    assert back.equals(report) and len(back.atoms()) == len(report.atoms())
    from probekit.report import SensitivityReport

    generic = SensitivityReport.load(tmp_path / "r.pt")
    assert isinstance(generic, MoleculeReport) and generic.equals(report)
    assert isinstance(SensitivityReport.from_json(report.to_json()), MoleculeReport)
    assert sorted(MoleculeReport.plot_kinds("features")) == ["atoms", "attribution"]
    ax = report.plot("atoms", id="mol0")
    assert ax is not None


def test_flips_off_only_removes_bits_the_molecule_has():
    fp = Morgan(radius=1, n_bits=32)
    adapter = FeatureModel(BitSum(torch.linspace(-1.0, 1.0, 32)), featurizer=fp, output=outputs.value(0), device="cpu")
    report = probe_features(adapter, SMILES[:3], goal=goals.decrease(by=0.5), flips="off", baseline_draws=10)
    edits = report.edits()
    assert len(edits) and (edits["old"] == 1).all() and (edits["new"] == 0).all()
    assert edits["substructure"].notna().all() and (edits["atoms"] != "").all()
    for e in edits.itertuples():  # each removed bit's SMARTS matches its molecule at the atoms named
        mol = Chem.MolFromSmiles(SMILES[int(e.id[3:])])
        atoms = {int(a) for a in e.atoms.split()}
        matched = set()
        for smarts in e.smarts.split("."):
            for match in mol.GetSubstructMatches(Chem.MolFromSmarts(smarts)):
                if set(match) <= atoms:
                    matched |= set(match)
        assert matched == atoms


def test_continuous_features_minimal_perturbation():
    # score = 2 a - b over two continuous features; decrease by 1 in L1: the cheapest is to lower a by 0.5
    names = ["a", "b", "flag"]
    table = pd.DataFrame({"id": ["p", "q"], "a": [1.0, 2.0], "b": [0.0, 1.0], "flag": [1.0, 0.0]})
    m = Matrix(names, kinds=["continuous", "continuous", "binary"], bounds=([-5, -5, 0], [5, 5, 1]))
    model = BitSum([0.0], v=[2.0, -1.0, 0.0])  # w over zero bits; v over all three columns
    model.w = torch.zeros(0)
    adapter = FeatureModel(model, featurizer=m, output=outputs.value(0), device="cpu")
    report = probe_features(adapter, table, goal=goals.decrease(by=1.0), norm="l1", baseline_draws=20)
    summary = report.summary().set_index("id")
    assert summary["perturbation_success"].all()
    assert np.allclose(summary["perturbation_norm"], 0.5, atol=1e-3)
    pert = report.perturbation()
    carried = pert[pert["share"] >= 0.1]
    assert set(carried["feature"]) == {"a"} and np.allclose(carried["delta"], -0.5, atol=1e-3)
    assert np.allclose(carried["range_fraction"], 0.5 / 10, atol=1e-4)  # bounds [-5, 5]
    assert report.atoms().empty
    assert report.features().set_index("feature").loc["a", "n_in_perturbation"] == 2


def test_feature_tensor_without_featurizer():
    adapter = FeatureModel(torch.nn.Linear(4, 1), output=outputs.value(0), kinds="binary", device="cpu")
    X = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1]])
    report = probe_features(adapter, X, goal="decrease:0.01", baseline_draws=10)
    assert report.to_frame()["id"].unique().tolist() == ["x0", "x1"]
    assert report.atoms().empty


def test_probe_dispatches_feature_models(morgan_report):
    from probekit.probe import probe

    adapter, _, _, _ = morgan_report
    report = probe(adapter, SMILES[:2], goal=goals.decrease(by=0.5), max_edits=1, baseline_draws=10)
    assert isinstance(report, MoleculeReport)
    assert report.params["max_flips"] == 1


def test_bad_arguments():
    adapter = FeatureModel(torch.nn.Linear(4, 1), output=0, kinds="binary", device="cpu")
    with pytest.raises(ValueError, match="flips"):
        probe_features(adapter, torch.zeros(1, 4), flips="sideways")
    with pytest.raises(ValueError, match="max_flips"):
        probe_features(adapter, torch.zeros(1, 4), max_flips=0)


@pytest.fixture(scope="module")
def demo():
    from probekit.mol_demo import load_mol_demo

    return load_mol_demo(device="cpu")


def test_demo_model_flips_reach_goal_when_rescored(demo):
    heldout = demo.test.head(2)
    report = probe_features(demo.adapter, heldout, goal=goals.decrease(by=0.5), max_flips=2, baseline_draws=20)
    frame = report.to_frame()
    assert list(frame.columns) == FRAME_COLUMNS and len(frame) == 2 * 2052
    assert len(report.atoms()) == sum(m.GetNumAtoms() for m in heldout["mol"])
    X = demo.featurizer.transform(heldout)
    summary = report.summary().set_index("id")
    edits = report.edits()
    for k, id in enumerate(heldout["id"]):
        x = X[k].clone()
        for e in edits[edits["id"] == id].itertuples():
            x[e.index] = e.new
        after = float(demo.adapter.score(x[None])[0])
        assert after == pytest.approx(summary.loc[id, "score_after_flips"], abs=1e-4)
        if summary.loc[id, "flips_success"]:
            assert after <= summary.loc[id, "score"] - 0.5 + 1e-5
    # the continuous descriptors stay inside the bounds taken from the training set
    lower, upper = demo.featurizer.bounds
    pert = report.perturbation()
    assert (pert["new_value"] >= lower[pert["index"]].numpy() - 1e-4).all()
    assert (pert["new_value"] <= upper[pert["index"]].numpy() + 1e-4).all()


@pytest.mark.parametrize("autocast", [None, "bf16"])
def test_mol_command_end_to_end(tmp_path, autocast):
    heldout = pd.read_csv(mol_demo_paths()["heldout"], dtype={"id": str}).head(2)[["id", "smiles"]]
    heldout.loc[len(heldout)] = ["broken", "C1CC("]
    heldout.to_csv(tmp_path / "m.csv", index=False)
    parser = argparse.ArgumentParser()
    add_mol_arguments(parser)
    args = parser.parse_args([
        "--model", str(mol_demo_paths()["weights"]), "--arch", "probekit.mol_demo:AffinityMLP",
        "--molecules", str(tmp_path / "m.csv"),
        "--featurizer", "morgan:2:2048+descriptors:MolLogP,TPSA,MolWt,FractionCSP3", "--goal", "decrease:0.5",
        "--max-flips", "1", "--baseline-draws", "10", "--out", str(tmp_path / "r.html"), "--table", str(tmp_path / "t.csv"),
        "--atoms-table", str(tmp_path / "a.csv"), "--device", "cpu", "--no-progress",
    ] + (["--autocast", autocast] if autocast else []))  # fmt: skip
    lines = []
    assert run_mol_cli(args, log=lines.append) == 0
    said = [line for line in lines if "of full precision" in line]
    assert len(said) == (1 if autocast else 0)
    if autocast:  # mixed precision was used, measured against full precision, and reported
        assert said[0].startswith(f"autocast {autocast}: outputs within ")
    assert any("skipping: record 'broken'" in line for line in lines)
    assert (tmp_path / "r.html").read_text().count("<svg") >= 2
    assert set(pd.read_csv(tmp_path / "t.csv", dtype={"id": str})["id"]) == set(heldout["id"][:2])
    assert len(pd.read_csv(tmp_path / "a.csv")) > 0


def test_mol_command_bounds_descriptors_next_to_fingerprint_bits(tmp_path):
    smiles = {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "paracetamol": "CC(=O)Nc1ccc(O)cc1", "phenol": "c1ccccc1O",
              "glycerol": "OCC(O)CO", "broken": "C1CC("}  # fmt: skip
    pd.DataFrame({"id": list(smiles), "smiles": list(smiles.values())}).to_csv(tmp_path / "m.csv", index=False)
    model = BitSum(torch.linspace(-0.1, 0.1, 16), [1.0, 1.0, 1.0])  # the descriptors carry the score
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    parser = argparse.ArgumentParser()
    add_mol_arguments(parser)
    args = parser.parse_args([
        "--model", str(tmp_path / "m.pt"), "--molecules", str(tmp_path / "m.csv"),
        "--featurizer", "morgan:1:16+descriptors:MolWt,TPSA,MolLogP", "--goal", "decrease:500", "--max-flips", "1",
        "--baseline-draws", "5", "--out", str(tmp_path / "r.html"), "--table", str(tmp_path / "t.csv"), "--device", "cpu",
        "--no-progress",
    ])  # fmt: skip
    assert run_mol_cli(args, log=lambda line: None) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    good = [s for name, s in smiles.items() if name != "broken"]
    reference = Descriptors(["MolWt", "TPSA", "MolLogP"]).transform(good)
    for j, name in enumerate(["MolWt", "TPSA", "MolLogP"]):
        rows = table[table["feature"] == name]
        assert len(rows) == len(good) and (rows["delta"] != 0).any()  # the goal pushes every descriptor
        # the perturbed values stay within the range of the molecules probed (TPSA never below 0)
        assert rows["new_value"].between(float(reference[:, j].min()) - 1e-3, float(reference[:, j].max()) + 1e-3).all()
    bits = table[table["kind"] == "binary"]
    assert bits["new_value"].isin([0.0, 1.0]).all()


def test_count_fingerprint_features_get_their_substructures():
    reports = {}
    for counts in (False, True):
        adapter = FeatureModel(BitSum(torch.linspace(-1.0, 1.0, 64)), featurizer=Morgan(radius=1, n_bits=64, counts=counts),
                               output=outputs.value(0), device="cpu")  # fmt: skip
        reports[counts] = probe_features(adapter, SMILES[:2], goal="decrease:0.5", baseline_draws=5)
    bits, counts = (reports[c].to_frame() for c in (False, True))
    present = counts["value"] > 0
    assert present.any() and counts.loc[present, "substructure"].notna().all()
    assert counts.loc[~present, "substructure"].isna().all()
    # a count feature stands for the same substructures as the bit it counts
    assert counts["substructure"].tolist() == bits["substructure"].tolist()
    assert reports[True].features()["substructure"].notna().sum() == reports[False].features()["substructure"].notna().sum()


def test_mol_command_errors(tmp_path):
    from probekit.cli import CLIError

    parser = argparse.ArgumentParser()
    add_mol_arguments(parser)
    base = ["--model", str(mol_demo_paths()["weights"]), "--out", str(tmp_path / "r.html")]
    with pytest.raises(CLIError, match="molecule file not found"):
        run_mol_cli(parser.parse_args(base + ["--molecules", str(tmp_path / "none.smi")]))
    (tmp_path / "m.smi").write_text("CCO a\n")
    with pytest.raises(CLIError, match="unknown featurizer"):
        run_mol_cli(parser.parse_args(base + ["--molecules", str(tmp_path / "m.smi"), "--featurizer", "ecfp9x"]))


def test_demo_command(tmp_path):
    ns = argparse.Namespace(out=tmp_path, device="cpu", goal=None, max_edits=1, baseline_draws=10, seed=0,
                            n_molecules=2, no_progress=True, autocast="bf16")  # fmt: skip
    lines = []
    assert run_mol_demo(ns, log=lines.append) == 0
    assert "held-out R^2 = 0.786" in lines[0]
    assert any(line.startswith("autocast bf16: outputs within") for line in lines)
    assert (tmp_path / "mol_demo_report.html").exists() and (tmp_path / "mol_demo_atoms.csv").exists()
    assert not (tmp_path / "mol_demo_report.html.partial").exists()  # its chunks are removed after success
    # the graph model on the same compounds: its R^2, then atoms, fragments and counterfactual molecules
    assert any(line.startswith("graph model") and "R^2 = 0.665" in line for line in lines)
    graph = pd.read_csv(tmp_path / "mol_graph_demo_counterfactuals.csv")
    assert len(graph) == 2 and graph["error"].isna().all()
    assert (tmp_path / "mol_graph_demo_report.html").read_text().count("<svg") >= 2


def test_demo_command_honours_method_output_and_batch_size(tmp_path, monkeypatch):
    import probekit.cli.mol as molecules

    seen = {}
    real = molecules.probe_features

    def spy(adapter, inputs, **kwargs):
        seen.update(kwargs, adapter=adapter)
        return real(adapter, inputs, **kwargs)

    monkeypatch.setattr(molecules, "probe_features", spy)
    ns = argparse.Namespace(out=tmp_path, device="cpu", goal="decrease:0.5", max_edits=1, baseline_draws=5, seed=0,
                            n_molecules=1, no_progress=True, method="greedy", output="logit:0", batch_size=64,
                            max_figures=0, no_graph=True)  # fmt: skip
    assert run_mol_demo(ns, log=lambda line: None) == 0
    assert seen["method"] == "greedy" and seen["adapter"].batch_size == 64 and seen["adapter"].output.name == "logit[0]"
    text = (tmp_path / "mol_demo_report.html").read_text()
    assert "greedy" in text and "logit[0]" in text and "<svg" not in text  # no figures asked for
    # without --output (the command line leaves the choice to each demo): the predicted pIC50
    ns.output, ns.goal = None, None
    assert run_mol_demo(ns, log=lambda line: None) == 0
    assert seen["adapter"].output.name == "value[0]" and str(seen["goal"]) == "decrease:1.0"


def test_demo_command_refuses_options_that_cannot_apply(tmp_path):
    from probekit.cli import CLIError

    ns = argparse.Namespace(out=tmp_path, device="cpu", n_molecules=1, baseline_draws=5, no_progress=True)
    with pytest.raises(CLIError, match="--output logit:5 does not apply to the affinity model"):
        run_mol_demo(argparse.Namespace(**vars(ns), output="logit:5"), log=lambda line: None)
    with pytest.raises(CLIError, match="--motifs applies to DNA models only"):
        run_mol_demo(argparse.Namespace(**vars(ns), motifs=True), log=lambda line: None)
    with pytest.raises(CLIError, match="--batch-size must be at least 1"):
        run_mol_demo(argparse.Namespace(**vars(ns), batch_size=-2), log=lambda line: None)
    assert not (tmp_path / "mol_demo_report.html").exists()


def test_probe_features_on_device_matches_cpu(device):
    fp = Morgan(radius=1, n_bits=32)
    w = torch.linspace(-1.0, 1.0, 32)
    reports = [
        probe_features(FeatureModel(BitSum(w), featurizer=fp, output=outputs.value(0), device=d), SMILES[:3],
                       goal=goals.decrease(by=1.0), max_flips=2, baseline_draws=10, seed=0)
        for d in ("cpu", device)
    ]  # fmt: skip
    a, b = (r.summary() for r in reports)
    assert np.allclose(a["score"], b["score"], atol=1e-5)
    assert a["n_flips"].tolist() == b["n_flips"].tolist()
    assert np.allclose(reports[0].atoms()["importance"], reports[1].atoms()["importance"], atol=1e-5)


@pytest.mark.parametrize("method", ["saliency", "feature_ablation"])
def test_other_attribution_methods(method):
    fp = Morgan(radius=1, n_bits=32)
    w = torch.linspace(-1.0, 1.0, 32)
    adapter = FeatureModel(BitSum(w), featurizer=fp, output=outputs.value(0), device="cpu")
    report = probe_features(adapter, SMILES[:2], goal="decrease:0.5", attribution=method, baseline_draws=10)
    frame = report.to_frame()
    if method == "feature_ablation":  # replacing a feature by 0 removes w_j x_j exactly
        expected = frame["value"].to_numpy() * w.numpy()[frame["index"].to_numpy()]
        assert np.allclose(frame["attribution"], expected, atol=1e-5)
    else:  # saliency: |gradient| = |w|
        assert np.allclose(frame["attribution"], np.abs(w.numpy())[frame["index"].to_numpy()], atol=1e-5)
    assert report.params["attribution"] == method


REFERENCE = ["CCCl", "ClCCCl", "c1ccccc1Cl", "CCN", "CC(=O)O", "CCS", "OCCO", "c1ccncc1", "CCBr", "NCCN"]


def _common_environments(fp, smiles, bit):
    """Brute force: every environment of ``bit`` in the molecules ``smiles``, counted."""
    from collections import Counter

    from probekit.chem import bit_environments

    return Counter(e["smiles"] for s in smiles for e in bit_environments(Chem.MolFromSmiles(s), bit, fp))


@pytest.mark.parametrize("fitted", [True, False])
def test_flips_on_name_the_substructure_each_added_bit_stands_for(fitted):
    fp = Morgan(radius=1, n_bits=64)
    if fitted:
        fp.fit(REFERENCE)
    w = torch.linspace(-1.0, 1.0, 64)
    adapter = FeatureModel(BitSum(w), featurizer=fp, output=outputs.value(0), device="cpu")
    probed = SMILES[:3] + ["CCCl"]
    report = probe_features(adapter, probed, goal="decrease:0.5", flips="on", max_flips=2, baseline_draws=10)
    edits = report.edits()
    assert len(edits) and (edits["old"] == 0).all() and (edits["change"] == "added").all() and (edits["atoms"] == "").all()
    assert (edits["edit"] == [f"{f}: 0->1" for f in edits["feature"]]).all()
    for e in edits.itertuples():
        counts = _common_environments(fp, REFERENCE if fitted else [s for s in probed if Chem.MolFromSmiles(s)], e.index)
        if not counts:  # no molecule at hand has the bit: nothing to name it by
            assert e.substructure is None and e.source is None
            continue
        assert e.source == ("reference set" if fitted else "molecules probed")
        assert counts[e.substructure] == max(counts.values())  # its most common environment
        frame = report.to_frame()
        assert frame[(frame["id"] == e.id) & (frame["index"] == e.index)]["substructure"].item() == e.substructure
    text = report.to_html()
    assert "flips=on: only bits the molecule lacks are switched on" in text


def test_flips_default_removes_the_molecules_own_substructures(morgan_report):
    _, fp, _, report = morgan_report
    edits = report.edits()
    assert report.params["flips"] == "off" and len(edits)
    assert (edits["change"] == "removed").all() and (edits["source"] == "this molecule").all()
    assert edits["substructure"].notna().all() and (edits["atoms"] != "").all()
    summary = report.summary().set_index("id")
    for id, mine in edits.groupby("id"):
        assert summary.loc[id, "flips"] == "; ".join(f"{f}: 1->0" for f in mine.sort_values("step")["feature"])
    text = report.to_html()
    assert "flips=off: only bits the molecule has are switched off" in text
    assert "removes " in text and "->" in text


def test_only_bad_records_give_error_rows():
    adapter = FeatureModel(torch.nn.Linear(32, 1), featurizer=Morgan(radius=1, n_bits=32), output=outputs.value(0), device="cpu")
    report = probe_features(adapter, ["C1CC(", ""], baseline_draws=5)
    assert report.summary()["error"].str.startswith(("record 'mol0'", "record 'mol1'")).all()
    assert report.to_frame().empty and report.atoms().empty
    assert "Records with errors" in report.to_html()


# ------------------------------------------------------------------ probekit mol in chunks
CHUNK_SMILES = {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "paracetamol": "CC(=O)Nc1ccc(O)cc1", "phenol": "c1ccccc1O",
                "broken": "C1CC(", "glycerol": "OCC(O)CO", "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O"}  # fmt: skip


@pytest.fixture
def chunk_inputs(tmp_path):
    """Five molecules and a bad record, and a TorchScript model over 16 Morgan bits and two descriptors."""
    pd.DataFrame({"id": list(CHUNK_SMILES), "smiles": list(CHUNK_SMILES.values())}).to_csv(tmp_path / "m.csv", index=False)
    torch.jit.script(BitSum(torch.linspace(-1.0, 1.0, 16), [0.2, 0.02])).save(str(tmp_path / "m.pt"))
    return tmp_path


@pytest.fixture
def written(monkeypatch):
    """The reports ``probekit mol`` writes, in order."""
    import probekit.cli.mol as molecules

    reports = []
    real = molecules._write_outputs
    monkeypatch.setattr(molecules, "_write_outputs", lambda report, *a, **k: reports.append(report) or real(report, *a, **k))
    return reports


def mol_main(folder, out, *extra):
    from probekit import cli

    return cli.main([
        "mol", "--model", str(folder / "m.pt"), "--molecules", str(folder / "m.csv"),
        "--featurizer", "morgan:1:16+descriptors:MolLogP,TPSA", "--goal", "decrease:0.5", "--max-flips", "2",
        "--baseline-draws", "20", "--out", str(folder / out), "--device", "cpu", "--batch-size", "256",
        "--max-figures", "0", "--no-progress", *extra,
    ])  # fmt: skip


def mol_chunks(folder, out):
    return sorted((folder / (out + ".partial")).glob("chunk-*.pt"))


def assert_same_tables(a, b):
    assert a.table_names == b.table_names
    for name in a.table_names:  # batches of different composition round differently in the last float bits
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_exact=False, atol=1e-5, rtol=1e-4, obj=name)


def test_mol_command_in_chunks_gives_the_tables_of_one_run(chunk_inputs, written):
    assert mol_main(chunk_inputs, "many.html", "--chunk-size", "2") == 0
    assert mol_main(chunk_inputs, "one.html", "--chunk-size", "100") == 0
    many, one = written
    assert many.params["chunks"] == 3 and "chunks" not in one.params
    assert_same_tables(many, one)
    assert many.features()["rank"].tolist() == list(range(1, 19))  # one ranking of the whole set, not one per chunk
    # removing two of its own bits never lowers phenol's score by 0.5 (the default flips="off")
    assert many.summary()["flips_success"].sum() == 4 and many.summary()["perturbation_success"].sum() == 5
    assert not (chunk_inputs / "many.html.partial").exists()  # removed after success


def test_mol_command_resumes_from_the_chunks_it_saved(chunk_inputs, written, capsys, monkeypatch):
    from probekit.probe import chunks as cli

    assert mol_main(chunk_inputs, "r.html", "--chunk-size", "2", "--keep-partial") == 0
    chunks = mol_chunks(chunk_inputs, "r.html")
    assert len(chunks) == 3
    stamps = {p.name: p.stat().st_mtime_ns for p in chunks}
    chunks[1].unlink()  # as if the run had stopped while on the second chunk
    capsys.readouterr()
    calls = []
    real = cli._probe_chunk
    monkeypatch.setattr(cli, "_probe_chunk", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert mol_main(chunk_inputs, "r.html", "--chunk-size", "2", "--keep-partial") == 0
    assert len(calls) == 1
    assert "resumed: reused 2 of 3 chunks" in capsys.readouterr().out
    assert [p.name for p in mol_chunks(chunk_inputs, "r.html")] == [p.name for p in chunks]
    assert chunks[0].stat().st_mtime_ns == stamps[chunks[0].name] and chunks[2].stat().st_mtime_ns == stamps[chunks[2].name]
    first, resumed = written
    assert_same_tables(first, resumed)


def test_mol_command_does_not_reuse_chunks_of_other_settings(chunk_inputs, capsys):
    assert mol_main(chunk_inputs, "r.html", "--chunk-size", "3", "--keep-partial") == 0
    capsys.readouterr()
    assert mol_main(chunk_inputs, "r.html", "--chunk-size", "3", "--keep-partial", "--goal", "decrease:0.6") == 0
    assert "reused" not in capsys.readouterr().out
    assert len(mol_chunks(chunk_inputs, "r.html")) == 4  # two of the first goal, two of the second


def test_interrupted_mol_command_keeps_its_chunks(chunk_inputs, capsys, monkeypatch):
    from probekit.probe import chunks as cli

    real = cli._probe_chunk
    calls = []

    def stop_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(cli, "_probe_chunk", stop_on_second)
    with pytest.raises(SystemExit) as stopped:
        mol_main(chunk_inputs, "r.html", "--chunk-size", "2")
    assert stopped.value.code == 130
    folder = chunk_inputs / "r.html.partial"
    assert f"1 finished chunk kept in {folder}" in capsys.readouterr().err
    assert len(mol_chunks(chunk_inputs, "r.html")) == 1 and not (chunk_inputs / "r.html").exists()


def test_baseline_of_a_molecule_does_not_depend_on_the_others(morgan_report):
    adapter, _, _, report = morgan_report
    alone = probe_features(adapter, SMILES[1:2], goal=goals.decrease(by=1.5), max_flips=2, baseline_draws=30, seed=1)
    columns = ["flip_random_k", "flip_random_mean", "flip_ratio", "flip_z", "flip_p_value"]
    expected = report.summary().set_index("id").loc[["mol1"], columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.summary()[columns], expected, check_exact=False, atol=1e-6)


# ------------------------------------------------------------------ molecules the model cannot score
class Picky(torch.nn.Module):
    """score = w . x, but it raises on any molecule with 15 or more bits and returns NaN for one with under 2."""

    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float32))

    def forward(self, x):
        count = x.sum(dim=1)
        if bool((count >= 15).any()):
            raise ValueError(f"cannot score a molecule with {int(count.max())} bits")
        out = x @ self.w
        return torch.where(count < 2, torch.full_like(out, float("nan")), out)[:, None]


def test_molecules_the_model_cannot_score_become_error_rows_and_the_rest_goes_on():
    fp = Morgan(radius=1, n_bits=64)
    w = torch.linspace(-1.0, 1.0, 64)
    smiles = ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "C", "OCC(O)CO"]
    counts = fp.transform(smiles).sum(dim=1).tolist()
    assert counts[2] >= 15 and counts[4] < 2 and all(2 < c < 15 for k, c in enumerate(counts) if k not in (2, 4))
    adapter = FeatureModel(Picky(w), featurizer=fp, output=outputs.value(0), device="cpu", batch_size=8)
    options = dict(goal="decrease:0.5", max_flips=2, baseline_draws=20, seed=3)
    report = probe_features(adapter, smiles, **options)
    summary = report.summary().set_index("id")
    assert summary.loc["mol2", "error"] == "record 'mol2': the model raised ValueError: cannot score a molecule with 16 bits"
    assert summary.loc["mol4", "error"] == "record 'mol4': the model returned NaN"
    good = ["mol0", "mol1", "mol3", "mol5"]
    assert summary["error"].isna().tolist() == [k in good for k in summary.index]
    assert report.to_frame()["id"].unique().tolist() == good and set(report.atoms()["id"]) == set(good)
    assert "cannot score a molecule" in report.to_html()
    # the others get what they get when probed without the two the model cannot score
    alone = probe_features(adapter, [smiles[i] for i in (0, 1, 3, 5)], **options).summary()
    columns = ["score", "n_flips", "flips", "score_after_flips", "flip_ratio", "flip_p_value"]
    expected = alone[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(summary.loc[good, columns].reset_index(drop=True), expected, check_exact=False, atol=1e-6)
    assert np.allclose(summary.loc[good, "score"], (fp.transform([smiles[i] for i in (0, 1, 3, 5)]) @ w).numpy(), atol=1e-5)


# ------------------------------------------------------------------ plausible perturbations
def _brute_nearest(reference, x, new):
    """RMS z-distance of ``new`` to the nearest of ``reference`` rows and ``x``; the reference's 95% neighbour distance."""
    scale = reference.std(axis=0)
    z = lambda a: a / scale  # noqa: E731
    gaps = []
    for i in range(len(reference)):
        others = np.delete(reference, i, axis=0)
        gaps.append(min(np.sqrt(np.mean((z(reference[i]) - z(r)) ** 2)) for r in others))
    nearest = min(np.sqrt(np.mean((z(new) - z(r)) ** 2)) for r in list(reference) + [x])
    return nearest, np.quantile(gaps, 0.95)


@pytest.fixture(scope="module")
def chembl():
    from probekit.mol_demo import load_chembl_affinities

    return load_chembl_affinities().head(150)


def test_perturbations_no_real_molecule_could_have_are_marked(chembl):
    d = Descriptors(["MolWt", "HeavyAtomCount"]).fit(chembl)
    assert d.reference.features.shape == (150, 2)
    model = BitSum(torch.zeros(0), [0.01, 0.0])  # score = MolWt / 100; the heavy-atom count stays as it is
    adapter = FeatureModel(model, featurizer=d, output=outputs.value(0), device="cpu")
    heavy = chembl.iloc[[int(np.argmax([m.GetNumHeavyAtoms() for m in chembl["mol"]]))]]
    probed = pd.concat([chembl.head(2), heavy], ignore_index=True)
    reference = d.reference.features.double().numpy()
    for by, expect in ((0.02, [True, True, True]), (1.0, [False, False, False])):
        report = probe_features(adapter, probed, goal=f"decrease:{by}", norm="l1", baseline_draws=10)
        summary, pert = report.summary(), report.perturbation()
        assert report.params["reference"] == "reference set" and report.params["n_reference"] == 150
        X = d.transform(probed).double().numpy()
        for k, row in enumerate(summary.itertuples()):
            new = X[k] + np.array([pert.loc[pert["id"] == row.id, "delta"].sum(), 0.0])
            nearest, threshold = _brute_nearest(reference, X[k], new)
            assert row.perturbation_nearest_reference == pytest.approx(nearest, rel=1e-4)
            assert report.params["reference_distance"] == pytest.approx(threshold, rel=1e-4)
            in_range = reference[:, 0].min() - 1e-3 <= new[0] <= reference[:, 0].max() + 1e-3
            assert bool(row.perturbation_plausible) == (in_range and nearest <= threshold) == expect[k]
            mine = pert[pert["id"] == row.id]
            assert (mine["plausible"] == row.perturbation_plausible).all()
            assert mine["change"].tolist() == [f"MolWt: {X[k, 0]:.4g}->{new[0]:.4g}"]
        if not expect[0]:
            text = report.to_html()
            assert "Implausible: a change no nearby real molecule has: read it as a direction of sensitivity" in text
            # the heaviest molecule keeps its heavy atoms but loses 100 Da: within range, yet no real molecule is like it
            assert pert.loc[pert["id"] == heavy["id"].iloc[0], "in_range"].all()


def test_without_a_fitted_reference_the_molecules_probed_are_the_reference(chembl):
    d = Descriptors(["MolWt", "HeavyAtomCount"])
    adapter = FeatureModel(BitSum(torch.zeros(0), [0.01, 0.0]), featurizer=d, output=outputs.value(0), device="cpu",
                           bounds=(torch.tensor([0.0, 0.0]), torch.tensor([2000.0, 200.0])))  # fmt: skip
    report = probe_features(adapter, chembl.head(12), goal="decrease:0.02", norm="l1", baseline_draws=5)
    assert report.params["reference"] == "molecules probed" and report.params["n_reference"] == 12
    assert report.summary()["perturbation_plausible"].notna().all()


def test_command_line_defaults_remove_substructures_and_choose_the_attribution():
    parser = argparse.ArgumentParser()
    add_mol_arguments(parser)
    args = parser.parse_args(["--model", "m.pt", "--molecules", "m.smi", "--out", "r.html"])
    assert args.flips == "off" and args.attribution == "auto"
    text = " ".join(parser.format_help().split())
    assert "each flip removes one of its own substructures" in text and "each flip adds a substructure" in text
