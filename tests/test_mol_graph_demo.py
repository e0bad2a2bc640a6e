"""The graph demo: shipped weights load without pickled code and reproduce their recorded held-out R^2."""

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from probekit import load_model
from probekit.mol_demo import regression_metrics
from probekit.mol_graph_demo import (
    collate_graphs,
    load_mol_graph_demo,
    mol_graph_demo_heldout,
    mol_graph_demo_info,
    mol_graph_demo_paths,
    save_mol_graph_demo,
    train_mol_graph_demo,
)
from probekit.molmodel import GraphNet, MoleculeModel, featurize_graphs


@pytest.fixture(scope="module")
def adapter():
    return load_mol_graph_demo(device="cpu")


@pytest.fixture(scope="module")
def heldout():
    return mol_graph_demo_heldout()


def test_weights_are_a_state_dict_read_without_pickled_code():
    path = mol_graph_demo_paths()["weights"]
    assert path.stat().st_size < 300_000
    saved = torch.load(path, weights_only=True)
    info = mol_graph_demo_info()
    assert saved["arch"] == info["arch"] == "probekit.molmodel.graph:GraphNet"
    assert saved["arch_kwargs"] == info["arch_kwargs"]
    model = load_model(path, arch=saved["arch"], arch_kwargs=saved["arch_kwargs"])
    assert isinstance(model, GraphNet) and not model.training


def test_heldout_is_the_molecule_demo_split(heldout):
    mlp_heldout = pd.read_csv(mol_graph_demo_paths()["heldout"], dtype={"id": str})
    assert heldout["id"].tolist() == mlp_heldout["id"].tolist() == mol_graph_demo_info()["test_ids"]
    assert len(heldout) == 203 and heldout["error"].isna().all()


def test_heldout_predictions_reproduce_the_recorded_r2(adapter, heldout):
    info = mol_graph_demo_info()
    scores, problems = adapter.score_molecules(heldout)
    assert all(p is None for p in problems)
    assert np.allclose(scores.numpy(), heldout["predicted"].to_numpy(), atol=1e-3)
    metrics = regression_metrics(heldout["pIC50"], scores.numpy())
    assert metrics["r2"] == pytest.approx(info["test_r2"], abs=1e-3)
    assert metrics["rmse"] == pytest.approx(info["test_rmse"], abs=1e-3)
    assert metrics["rmse"] < float(np.std(heldout["pIC50"]))  # better than the held-out mean


def test_adapter_scores_equal_the_raw_model(adapter, heldout):
    mols = list(heldout["mol"][:4]) + [Chem.MolFromSmiles("c1ccccc1O")]
    with torch.no_grad():
        raw = adapter.model(*featurize_graphs(mols))[:, 0].double()
    scores, _ = adapter.score_molecules(mols)
    assert isinstance(adapter, MoleculeModel) and adapter.kind == "graph"
    assert torch.allclose(scores, raw, atol=1e-5, rtol=0)
    assert torch.allclose(adapter.replace(batch_size=2).score_molecules(mols)[0], scores, atol=1e-5, rtol=0)


def test_collated_graphs_match_featurizing_together(heldout):
    mols = list(heldout["mol"][:3])
    for a, b in zip(collate_graphs([featurize_graphs([m]) for m in mols]), featurize_graphs(mols)):
        assert torch.equal(a, b)


def test_training_is_seeded_and_round_trips(tmp_path):
    a, info = train_mol_graph_demo(0, 1, hidden=8, depth=1)
    b, _ = train_mol_graph_demo(0, 1, hidden=8, depth=1)
    c, _ = train_mol_graph_demo(1, 0, hidden=8, depth=1)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.state_dict()["embed.weight"], c.state_dict()["embed.weight"])
    assert info["test_ids"] == mol_graph_demo_info()["test_ids"]  # the split does not follow the training seed
    save_mol_graph_demo(a, info, data_dir=tmp_path)
    reloaded = load_mol_graph_demo(device="cpu", data_dir=tmp_path)
    assert reloaded.score_molecules(["CCO"])[0].shape == (1,)
