"""Loading molecule models: chemprop files and pickles only with trust, TorchScript always."""

import sys

import numpy as np
import pytest
import torch

from probekit import outputs
from probekit.encode.mol import Morgan
from probekit.molmodel import MoleculeModel
from probekit.molmodel.adapter import import_chemprop
from probekit.molmodel.graph import GraphNet, featurize_graphs
from probekit.molmodel.loaders import load_molecule_model

SMILES = ["c1ccccc1O", "CCO", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC"]


def test_chemprop_file_needs_trust_and_then_scores_as_the_model(tmp_path):
    from chemprop import nn as cnn
    from chemprop.models import MPNN
    from chemprop.models.utils import save_model

    torch.manual_seed(0)
    model = MPNN(cnn.BondMessagePassing(d_h=16, depth=2), cnn.MeanAggregation(), cnn.RegressionFFN(input_dim=16, hidden_dim=8))
    save_model(tmp_path / "model.pt", model)
    with pytest.raises(ValueError, match="trust=True"):
        load_molecule_model(tmp_path / "model.pt", kind="chemprop")
    loaded = load_molecule_model(tmp_path / "model.pt", kind="chemprop", trust=True, output=outputs.value(0), device="cpu")
    expected = MoleculeModel(model, output=outputs.value(0), device="cpu").score_molecules(SMILES)[0]
    torch.testing.assert_close(loaded.score_molecules(SMILES)[0], expected)


def test_torchscript_graph_model_loads_without_trust(tmp_path):
    torch.manual_seed(0)
    net = GraphNet(hidden=8, depth=2)
    torch.jit.save(torch.jit.script(net), tmp_path / "net.pt")
    loaded = load_molecule_model(tmp_path / "net.pt", kind="torchscript", output=outputs.value(0), device="cpu")
    expected = MoleculeModel(net, featurizer=featurize_graphs, output=outputs.value(0), device="cpu").score_molecules(SMILES)[0]
    torch.testing.assert_close(loaded.score_molecules(SMILES)[0], expected)
    assert loaded.feature_names() == ("x", "edge_attr")


def test_sklearn_pickle_needs_trust_and_a_featurizer(tmp_path):
    import joblib
    from sklearn.linear_model import Ridge

    fp = Morgan(radius=1, n_bits=64)
    X = fp.transform(SMILES).numpy()
    estimator = Ridge().fit(X, np.arange(len(SMILES), dtype=float))
    joblib.dump(estimator, tmp_path / "ridge.joblib")
    with pytest.raises(ValueError, match="trust=True"):
        load_molecule_model(tmp_path / "ridge.joblib", kind="sklearn", featurizer=fp)
    with pytest.raises(ValueError, match="featurizer="):
        load_molecule_model(tmp_path / "ridge.joblib", kind="sklearn", trust=True)
    loaded = load_molecule_model(tmp_path / "ridge.joblib", kind="sklearn", featurizer=fp, trust=True, output=outputs.value(0))
    np.testing.assert_allclose(loaded.score_molecules(SMILES)[0].numpy(), estimator.predict(X))


def test_wrong_files_and_kinds_are_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_molecule_model(tmp_path / "missing.pt", kind="torchscript")
    with pytest.raises(ValueError, match="kind must be"):
        load_molecule_model(tmp_path / "missing.pt", kind="onnx")
    torch.save({"w": torch.ones(2)}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_molecule_model(tmp_path / "state.pt", kind="torchscript")


def test_missing_chemprop_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "chemprop_missing_for_test", None)
    with pytest.raises(ImportError, match=r"probekit\[chemprop\]"):
        import_chemprop("chemprop_missing_for_test")


def test_torchscript_model_over_fingerprints_takes_a_probekit_featurizer(tmp_path):
    fp = Morgan(radius=1, n_bits=32)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(32, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    torch.jit.save(torch.jit.script(mlp), tmp_path / "mlp.pt")
    loaded = load_molecule_model(tmp_path / "mlp.pt", kind="torchscript", featurizer=fp, output=outputs.value(0), device="cpu")
    assert loaded.kind == "features"
    with torch.no_grad():
        expected = mlp(fp.transform(SMILES))[:, 0].double()
    torch.testing.assert_close(loaded.score_molecules(SMILES)[0], expected)
