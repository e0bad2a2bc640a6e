"""``probekit mol --model-kind torchscript|sklearn``: molecule models from their own files, probed end to end."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from probekit import cli
from probekit.molmodel.graph import GraphNet

SMILES = "Oc1ccc(CC(=O)O)cc1 phenol\nCCOC(=O)c1ccccc1 ester\nC1CC bad\nc1ccncc1 pyridine\n"


@pytest.fixture
def molecules(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text(SMILES)
    return path


def _args(model, molecules, out, *extra):
    return ["mol", "--model", str(model), "--molecules", str(molecules), "--out", str(out), "--device", "cpu",
            "--no-progress", "--baseline-draws", "10", "--max-flips", "1", *extra]  # fmt: skip


def test_torchscript_graph_model_gives_atoms_and_counterfactuals(tmp_path, molecules, capsys):
    torch.manual_seed(0)
    model = tmp_path / "graph.pt"
    torch.jit.save(torch.jit.script(GraphNet(hidden=8, depth=2).eval()), str(model))
    out, table = tmp_path / "r.html", tmp_path / "atoms.csv"
    code = cli.main(_args(model, molecules, out, "--model-kind", "torchscript", "--goal", "decrease:0.01",
                          "--atoms-table", str(table)))  # fmt: skip
    assert code == 0
    atoms = pd.read_csv(table)
    assert set(atoms.loc[atoms["error"].isna(), "id"]) == {"phenol", "ester", "pyridine"}
    assert atoms.loc[atoms["id"] == "bad", "error"].str.contains("unclosed ring").all()
    assert out.read_text().count("<svg") >= 3
    printed = capsys.readouterr().out
    assert "skipping: " in printed and "bad" in printed


def test_sklearn_pickle_needs_trust_and_then_matches_the_estimator(tmp_path, molecules, capsys):
    from sklearn.ensemble import RandomForestRegressor

    from probekit.encode.mol import parse_featurizer

    featurizer = parse_featurizer("morgan:2:256")
    train = ["CCO", "Oc1ccccc1", "CC(=O)O", "c1ccccc1", "CCN", "Oc1ccc(O)cc1"]
    y = np.array([0.0, 1.0, 0.2, 0.1, 0.3, 2.0])
    X = featurizer(train).numpy() if callable(featurizer) else featurizer.transform(train)
    estimator = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    model = tmp_path / "rf.pkl"
    model.write_bytes(pickle.dumps(estimator))
    out, table = tmp_path / "r.html", tmp_path / "summary.csv"
    args = _args(model, molecules, out, "--model-kind", "sklearn", "--featurizer", "morgan:2:256", "--table", str(table))
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    assert stop.value.code == 2 and "--trust" in capsys.readouterr().err
    assert cli.main(args + ["--trust"]) == 0
    summary = pd.read_csv(table).set_index("id")
    expected = estimator.predict(featurizer(["Oc1ccc(CC(=O)O)cc1"]).numpy() if callable(featurizer)
                                 else featurizer.transform(["Oc1ccc(CC(=O)O)cc1"]))  # fmt: skip
    assert summary.loc["phenol", "score"] == pytest.approx(float(expected[0]), rel=1e-6)
