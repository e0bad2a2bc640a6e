"""MoleculeModel: every kind of molecule model scored through one adapter, bad records as problems."""

import numpy as np
import pytest
import torch
from rdkit import Chem

from probekit import goals, outputs
from probekit.adapters import ModelOutputError
from probekit.molmodel import MoleculeModel

SMILES = ["c1ccccc1O", "CCO", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "Oc1ccc(O)cc1", "C1CCCCC1", "CCCl", "c1ccncc1"]


def count_oxygens(smiles):
    return torch.tensor([float(sum(a.GetSymbol() == "O" for a in Chem.MolFromSmiles(s).GetAtoms())) for s in smiles])


def tiny_mpnn(seed=0, n_tasks=1):
    from chemprop import nn as cnn
    from chemprop.models import MPNN

    torch.manual_seed(seed)
    return MPNN(cnn.BondMessagePassing(d_h=16, depth=2), cnn.MeanAggregation(), cnn.RegressionFFN(n_tasks=n_tasks, input_dim=16, hidden_dim=8))


def test_parse_names_each_bad_record():
    adapter = MoleculeModel(count_oxygens, kind="smiles", device="cpu")
    mols, problems = adapter.parse(["CCO", "C1CC", None, "", Chem.MolFromSmiles("O")])
    assert [m is None for m in mols] == [False, True, True, True, False]
    assert problems[1].startswith("record 1 'C1CC': not a valid SMILES")
    assert problems[2] == "record 2: no molecule" and problems[3] == "record 3: empty SMILES"
    assert problems[0] is None and problems[4] is None


def test_invalid_molecules_are_nan_rows_and_the_rest_is_scored():
    adapter = MoleculeModel(count_oxygens, kind="smiles", output=outputs.value(0), device="cpu")
    scores, problems = adapter.score_molecules(["Oc1ccccc1", "c1cc", "OCCO"])
    assert scores.dtype == torch.float64 and scores[0] == 1 and scores[2] == 2 and scores[1].isnan()
    assert "not a valid SMILES" in problems[1] and problems[0] is None
    assert adapter.n_calls == 2
    raw = adapter.predict_molecules(["Oc1ccccc1", "c1cc"])
    assert raw.shape == (2, 1) and raw[1].isnan().all()


def test_a_model_raising_on_one_molecule_names_it_and_scores_the_others():
    def picky(smiles):
        if any("Cl" in s for s in smiles):
            raise ValueError("no halogens here")
        return count_oxygens(smiles)

    adapter = MoleculeModel(picky, kind="smiles", batch_size=8, device="cpu")
    scores, problems = adapter.score_molecules(SMILES)
    bad = SMILES.index("CCCl")
    assert problems[bad] == "the model raised ValueError: no halogens here"
    assert scores[bad].isnan() and all(p is None for i, p in enumerate(problems) if i != bad)
    assert torch.equal(scores[:bad], count_oxygens(SMILES[:bad]).double())


def test_non_finite_outputs_are_problems():
    adapter = MoleculeModel(lambda s: torch.tensor([float("nan") if x == "CCO" else 1.0 for x in s]), kind="smiles", device="cpu")
    scores, problems = adapter.score_molecules(["CCO", "CCN"])
    assert problems == ["the model returned NaN", None] and scores[1] == 1


def test_malformed_output_stops_the_run():
    adapter = MoleculeModel(lambda s: torch.ones(len(s) + 1), kind="smiles", device="cpu")
    with pytest.raises(ModelOutputError):
        adapter.score_molecules(["CCO", "CCN"])


def test_mols_kind_gets_rdkit_molecules_and_arrays_are_accepted():
    adapter = MoleculeModel(lambda mols: np.array([m.GetNumAtoms() for m in mols]), kind="mols", device="cpu")
    scores, _ = adapter.score_molecules(["CCO", Chem.MolFromSmiles("c1ccccc1")])
    assert scores.tolist() == [3.0, 6.0]


def test_evaluate_molecules_gives_inf_for_bad_candidates():
    def picky(smiles):
        if "N" in smiles:
            raise RuntimeError("nitrogen")
        return torch.tensor([float(len(s)) for s in smiles])

    adapter = MoleculeModel(picky, kind="smiles", output=outputs.value(0), batch_size=2, device="cpu")
    bound = adapter.bind(goals.decrease(by=1.0), ["CCCO", "CCCCCC"])
    scores, g = adapter.evaluate_molecules(["CCO", "C1C", "N", "CCCCC", "CCCCCC"], bound, torch.tensor([0, 0, 0, 1, 1]))
    assert scores[[0, 3, 4]].tolist() == [3.0, 5.0, 6.0] and scores[[1, 2]].isnan().all()
    assert g.tolist() == [0.0, float("inf"), float("inf"), 0.0, 1.0]


def test_chemprop_through_the_adapter_equals_its_own_forward_at_any_batch_size():
    from chemprop.data import BatchMolGraph
    from chemprop.featurizers import SimpleMoleculeMolGraphFeaturizer

    model = tiny_mpnn(n_tasks=2)
    model.train()
    adapter = MoleculeModel(model, output=outputs.value(1), batch_size=3, device="cpu")
    assert adapter.kind == "chemprop"
    raw = adapter.predict_molecules(SMILES)
    assert model.training, "the adapter put the model back in train mode"
    model.eval()
    featurizer = SimpleMoleculeMolGraphFeaturizer()
    with torch.no_grad():
        expected = model(BatchMolGraph([featurizer(Chem.MolFromSmiles(s)) for s in SMILES]))
    model.train()
    torch.testing.assert_close(raw, expected.double(), rtol=1e-5, atol=1e-6)
    one = adapter.replace(batch_size=1).score_molecules(SMILES)[0]
    torch.testing.assert_close(one, raw[:, 1], rtol=1e-5, atol=1e-6)


def test_sklearn_forest_on_morgan_bits_equals_its_predict():
    from sklearn.ensemble import RandomForestRegressor

    from probekit.encode.mol import Morgan

    fp = Morgan(radius=2, n_bits=128)
    X = fp.transform(SMILES).numpy()
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, np.arange(len(SMILES), dtype=float))
    adapter = MoleculeModel(forest, featurizer=fp, output=outputs.value(0), batch_size=3, device="cpu")
    assert adapter.kind == "sklearn"
    scores, problems = adapter.score_molecules(SMILES + ["not smiles"])
    np.testing.assert_allclose(scores[:-1].numpy(), forest.predict(X))
    assert problems[-1].startswith("record 8 'not smiles'")


def test_sklearn_needs_a_featurizer():
    from sklearn.linear_model import LinearRegression

    with pytest.raises(ValueError, match="featurizer="):
        MoleculeModel(LinearRegression(), kind="sklearn")


def test_plain_score_refuses_invalid_molecules_by_name():
    adapter = MoleculeModel(count_oxygens, kind="smiles", device="cpu")
    assert adapter.score(["CCO", "OCO"]).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="record 1 'C1C'"):
        adapter.score(["CCO", "C1C"])


def test_read_molecules_frames_keep_their_errors_and_empty_calls_work():
    from probekit.io import read_molecules

    adapter = MoleculeModel(count_oxygens, kind="smiles", device="cpu")
    scores, problems = adapter.score_molecules(read_molecules(["OCCO", "C1CC"]))
    assert scores[0] == 2 and problems[1].startswith("record 'mol1'")
    scores, problems = adapter.score_molecules([])
    assert scores.shape == (0,) and problems == []


def test_the_adapter_contract_holds_with_input_gradients_skipped():
    from probekit.molmodel import GraphNet, featurize_graphs
    from probekit.testing import check_adapter

    torch.manual_seed(0)
    adapter = MoleculeModel(GraphNet(hidden=8), featurizer=featurize_graphs, output=0, device="cpu")
    report = check_adapter(adapter, SMILES[:4], raise_on_failure=False).set_index("check")
    assert report["passed"].all()
    assert report.loc["gradient shape", "detail"].startswith("skipped") and "atom_importance" in report.loc["gradient shape", "detail"]


def test_a_torch_model_over_fingerprints_scores_as_its_feature_adapter():
    from probekit import FeatureModel
    from probekit.encode.mol import Morgan

    fp = Morgan(radius=2, n_bits=64)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    adapter = MoleculeModel(mlp, featurizer=fp, output=outputs.value(0), batch_size=3, device="cpu")
    assert adapter.kind == "features"
    expected = FeatureModel(mlp, featurizer=fp, output=outputs.value(0), device="cpu").score(SMILES)
    torch.testing.assert_close(adapter.score_molecules(SMILES)[0], expected.double())
