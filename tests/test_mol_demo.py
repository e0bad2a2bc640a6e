"""The molecule demo: measured data read in place, shipped weights reproduce their held-out predictions."""

import numpy as np
import pandas as pd
import pytest
import torch

from probekit import load_model
from probekit.mol_demo import DEMO_ARCH, chembl_paths, load_chembl_affinities, load_mol_demo, mol_demo_paths, regression_metrics


@pytest.fixture(scope="module")
def demo():
    return load_mol_demo(device="cpu")


def test_data_is_read_in_place_from_rdkit():
    paths = chembl_paths()
    assert all(p.exists() for p in paths.values())
    frame = load_chembl_affinities()
    assert len(frame) == 1017 and frame["error"].isna().all() and frame["pIC50"].notna().all()
    activity = pd.read_csv(paths["activity"], dtype={"Name": str})
    assert np.allclose(frame["pIC50"].to_numpy(), activity.set_index("Name").loc[frame["id"], "Act"].to_numpy())
    assert not any(p.name.startswith("CHEMBL2321810") for p in mol_demo_paths()["weights"].parent.iterdir())


def test_weights_are_a_plain_state_dict():
    model = load_model(mol_demo_paths()["weights"], arch=DEMO_ARCH)
    assert model(torch.zeros(1, 2052)).shape == (1, 1)


def test_heldout_r2_and_rmse(demo):
    test = demo.test
    assert len(test) == demo.metrics["n_test"] == 203 and test["error"].isna().all()
    pred = demo.adapter.score(test).numpy()
    shipped = pd.read_csv(mol_demo_paths()["heldout"])["predicted"].to_numpy()
    assert np.allclose(pred, shipped, atol=1e-3)  # the shipped weights give the recorded predictions
    metrics = regression_metrics(test["pIC50"], pred)
    assert metrics["r2"] == pytest.approx(demo.metrics["test_r2"], abs=1e-3)
    assert metrics["r2"] > 0.6 and metrics["rmse"] < 0.7
    # far better than predicting the training mean
    assert metrics["rmse"] < 0.75 * float(np.std(test["pIC50"]))


def test_featurizer_bounds_come_from_training_set(demo):
    lower, upper = demo.featurizer.bounds
    assert torch.equal(lower[:2048], torch.zeros(2048)) and torch.equal(upper[:2048], torch.ones(2048))
    assert (upper[2048:] > lower[2048:]).all()
    assert demo.adapter.kinds(2052) == ["binary"] * 2048 + ["continuous"] * 4


def test_training_is_deterministic_on_one_machine():
    from probekit.mol_demo import train_mol_demo

    a, _ = train_mol_demo(seed=0, epochs=2)
    b, _ = train_mol_demo(seed=0, epochs=2)
    c, _ = train_mol_demo(seed=1, epochs=2)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.state_dict()["net.1.weight"], c.state_dict()["net.1.weight"])


@pytest.mark.slow
def test_training_reproduces_the_shipped_model(demo, tmp_path):
    # Bit-for-bit weights need the same CPU kernels (AVX2 and AVX-512 round differently), so across
    # machines the retrained model must predict what the shipped one predicts, not hold the same bits.
    from probekit.mol_demo import save_mol_demo, train_mol_demo

    model, info = train_mol_demo(seed=0)
    save_mol_demo(model, info, data_dir=tmp_path)
    retrained = load_mol_demo(device="cpu", data_dir=tmp_path)
    assert retrained.test["id"].tolist() == demo.test["id"].tolist()  # the same seeded split
    assert info["test_r2"] == pytest.approx(demo.metrics["test_r2"], abs=0.02)
    ours = retrained.adapter.score(retrained.test).numpy()
    shipped = demo.adapter.score(demo.test).numpy()
    assert np.corrcoef(ours, shipped)[0, 1] > 0.99
    assert np.abs(ours - shipped).mean() < 0.1
