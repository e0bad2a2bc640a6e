"""Atom and fragment importance on molecules, against models whose important atoms are known exactly."""

import itertools
import math

import numpy as np
import pytest
import torch
from rdkit import Chem

from probekit import outputs
from probekit.molmodel import MoleculeModel
from probekit.molmodel.graph import GraphBatch, GraphNet, featurize_graphs
from probekit.molmodel.importance import (
    atom_importance,
    fragment_importance,
    fragment_shapley,
    fragments,
    integrated_gradients,
    mask_atoms,
)
from probekit.molmodel.results import AtomImportance, FragmentImportance

PHENOL = Chem.MolFromSmarts("[OX2H]c")
WEIGHTS = {"C": 1.0, "O": 3.0, "N": -2.0, "S": 0.5}


def count_phenols(mols):
    return torch.tensor([float(len(m.GetSubstructMatches(PHENOL))) for m in mols])


def atom_weights(mols):
    """An additive model: each atom adds the weight of its element (a dummy atom adds nothing)."""
    return torch.tensor([sum(WEIGHTS.get(a.GetSymbol(), 0.0) for a in m.GetAtoms()) for m in mols])


def oxygen_pairs(mols):
    """Not additive: the number of oxygen pairs, so that fragments interact."""
    return torch.tensor([float(math.comb(sum(a.GetSymbol() == "O" for a in m.GetAtoms()), 2)) for m in mols])


def adapter_of(fn, **kwargs):
    return MoleculeModel(fn, kind="mols", output=outputs.value(0), device="cpu", **kwargs)


def test_phenol_counter_marks_exactly_the_hydroxyl_and_its_ring_carbon():
    result = atom_importance(adapter_of(count_phenols), ["Cc1ccc(O)cc1", "CCO"], n_random=100)
    frame = result.to_frame()
    phenol = frame[frame["id"] == "mol0"]
    assert sorted(phenol[phenol["importance"] > 0]["atom"]) == [4, 5]
    assert phenol["importance"].max() == 1.0 and (phenol["importance"] >= 0).all()
    top = phenol[phenol["atom"] == 5].iloc[0]
    assert top["element"] == "O" and top["rank"] <= 2 and top["ratio"] > 2 and top["p_value"] < 0.5
    assert (frame[frame["id"] == "mol1"]["importance"] == 0).all()
    assert result.method == "occlusion" and result.params["mask"] == "dummy"


def test_additive_model_gives_each_atom_its_weight():
    mol = "CC(=O)Nc1ccc(O)cc1"
    result = atom_importance(adapter_of(atom_weights), [mol], n_random=10)
    expected = [WEIGHTS[a.GetSymbol()] for a in Chem.MolFromSmiles(mol).GetAtoms()]
    assert result.importance.tolist() == expected
    assert result.rank[result.importance.argmax()] == 1


def test_fragment_importance_of_an_additive_model_is_the_fragment_weight():
    mol = Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")
    result = fragment_importance(adapter_of(atom_weights), [mol], n_random=16)
    expected = [sum(WEIGHTS[mol.GetAtomWithIdx(a).GetSymbol()] for a in f) for f in fragments(mol)]
    assert result.importance.tolist() == expected
    frame = result.to_frame()
    assert list(frame["size"]) == [len(f) for f in fragments(mol)]
    assert all(Chem.MolFromSmarts(s) is not None for s in frame["smarts"])


def test_recap_fragments_and_remove_masking():
    mol = Chem.MolFromSmiles("CC(=O)NCc1ccccc1")
    assert fragments(mol, scheme="recap") == [(0, 1, 2), (3, 4, 5, 6, 7, 8, 9, 10)]
    assert Chem.MolToSmiles(mask_atoms(mol, [0, 1, 2], how="remove")) == "NCc1ccccc1"
    result = fragment_importance(adapter_of(atom_weights), [mol], scheme="recap", mask="remove", n_random=8)
    assert result.scheme == "recap" and result.importance.tolist() == [5.0, 5.0]


def exact_shapley(fn, mol, parts):
    """Shapley values by the subset formula, masking with dummy atoms, model called directly."""
    n = len(parts)

    def value(coalition):
        masked = [a for f in range(n) if f not in coalition for a in parts[f]]
        return float(fn([mask_atoms(mol, masked)])[0])

    phi = np.zeros(n)
    for f in range(n):
        others = [g for g in range(n) if g != f]
        for size in range(n):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi[f] += weight * (value(set(subset) | {f}) - value(set(subset)))
    return phi


def test_shapley_matches_exact_enumeration_on_four_fragments():
    mol = Chem.MolFromSmiles("OCC(=O)Oc1ccc(O)cc1")
    parts = fragments(mol)
    assert 2 < len(parts) <= 4
    result = fragment_shapley(adapter_of(oxygen_pairs), [mol], n_samples=64, n_random=8)
    assert result.params["exact"] == [True]
    np.testing.assert_allclose(result.importance.numpy(), exact_shapley(oxygen_pairs, mol, parts), atol=1e-12)
    assert result.importance.sum().item() == pytest.approx(float(result.reference[0] - result.empty[0]))


def test_sampled_shapley_keeps_efficiency_and_is_seeded():
    mol = "CCOC(=O)c1ccc(NC(=O)CCl)cc1OC"
    adapter = adapter_of(oxygen_pairs)
    a = fragment_shapley(adapter, [mol], n_samples=6, n_random=8, seed=3)
    b = fragment_shapley(adapter.replace(batch_size=5), ["CCO", mol], n_samples=6, n_random=8, seed=3)
    assert a.params["exact"] == [False]
    assert a.importance.sum().item() == pytest.approx(float(a.reference[0] - a.empty[0]))
    assert torch.equal(a.importance, b.importance[b.molecule == 1]) and torch.equal(a.p_value, b.p_value[b.molecule == 1])


def test_invalid_and_failing_molecules_become_error_rows():
    def picky(mols):
        if any(a.GetSymbol() == "Cl" for m in mols for a in m.GetAtoms()):
            raise ValueError("no chlorine")
        return atom_weights(mols)

    adapter = adapter_of(picky, batch_size=4)
    result = atom_importance(adapter, ["CCO", "C1CC", "CCCl", "CN"], n_random=10)
    frame = result.to_frame()
    errors = frame.set_index("id")["error"]
    assert errors["mol1"].startswith("record 1 'C1CC': not a valid SMILES")
    assert errors["mol2"] == "record 2: the model raised ValueError: no chlorine"
    assert frame[frame["id"] == "mol3"]["importance"].tolist() == [1.0, -2.0]
    assert list(frame["id"]) == ["mol0"] * 3 + ["mol1", "mol2"] + ["mol3"] * 2
    summary = result.summary()
    assert summary["top_atom"][[0, 3]].tolist() == ["O2", "C0"] and summary["top_atom"][[1, 2]].isna().all()


def test_all_candidates_go_to_the_model_in_few_batches():
    calls = []

    def counted(mols):
        calls.append(len(mols))
        return atom_weights(mols)

    adapter = adapter_of(counted, batch_size=512)
    fragment_shapley(adapter, ["CC(=O)Nc1ccc(O)cc1", "OCC(=O)Oc1ccc(O)cc1"], n_samples=24, n_random=32)
    assert len(calls) <= 4 and sum(calls) > 100


def test_results_save_and_load(tmp_path):
    result = fragment_importance(adapter_of(atom_weights), ["CC(=O)Oc1ccccc1", "C1C"], n_random=8)
    result.save(tmp_path / "f.pt")
    again = FragmentImportance.load(tmp_path / "f.pt")
    assert again.to_frame().equals(result.to_frame())
    atoms = atom_importance(adapter_of(atom_weights), ["CCO"], n_random=8)
    atoms.save(tmp_path / "a.pt")
    assert torch.equal(AtomImportance.load(tmp_path / "a.pt").importance, atoms.importance)


def graphnet_adapter(batch_size=64):
    torch.manual_seed(0)
    return MoleculeModel(GraphNet(hidden=16, depth=2), featurizer=featurize_graphs, output=outputs.value(0), batch_size=batch_size, device="cpu")


def copies(mol, xs, es):
    graphs = featurize_graphs([mol] * xs.shape[0])
    return GraphBatch(xs.reshape(-1, xs.shape[-1]), graphs.edge_index, es.reshape(-1, es.shape[-1]), graphs.batch)


def test_gradient_attributions_equal_captum_run_directly():
    from captum.attr import IntegratedGradients

    adapter = graphnet_adapter()
    mol = Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")
    ((atoms, bonds),) = integrated_gradients(adapter, [mol], n_steps=64)
    graph = featurize_graphs([mol])
    net = adapter.model.eval()
    a, b = IntegratedGradients(lambda xs, es: net(*copies(mol, xs, es))[:, 0]).attribute(
        (graph.x[None], graph.edge_attr[None]), baselines=(torch.zeros_like(graph.x)[None], torch.zeros_like(graph.edge_attr)[None]), n_steps=64
    )
    np.testing.assert_allclose(atoms, a[0].sum(-1).double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bonds, b[0].sum(-1).reshape(-1, 2).sum(-1).double().numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        full = net(*graph)[0, 0] - net(*copies(mol, torch.zeros_like(graph.x)[None], torch.zeros_like(graph.edge_attr)[None]))[0, 0]
    assert atoms.sum() + bonds.sum() == pytest.approx(float(full), rel=2e-2, abs=2e-3)


def test_gradients_of_molecules_sharing_calls_equal_those_one_by_one():
    mols = [Chem.MolFromSmiles(s) for s in ["CC(=O)Nc1ccc(O)cc1", "CCO", "c1ccncc1C#N"]]
    together = integrated_gradients(graphnet_adapter(batch_size=64), mols, n_steps=16)
    for mol, (atoms, bonds) in zip(mols, together):
        ((alone_atoms, alone_bonds),) = integrated_gradients(graphnet_adapter(batch_size=16), [mol], n_steps=16)
        np.testing.assert_allclose(atoms, alone_atoms, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(bonds, alone_bonds, rtol=1e-4, atol=1e-6)


def test_gradient_method_gives_bond_rows_and_auto_picks_it_for_graph_models():
    result = atom_importance(graphnet_adapter(), ["CCO", "c1ccccc1N"], n_random=10, n_steps=16)
    assert result.method == "gradient"
    assert result.bond_weights(1).shape == (7,) and result.atom_weights(0).shape == (3,)
    with pytest.raises(ValueError, match="occlusion"):
        atom_importance(adapter_of(atom_weights), ["CCO"], method="gradient")


def test_feature_masking_is_batch_size_invariant():
    """Importance agrees to float32 rounding; a p-value may move by one draw where symmetric atoms tie."""
    mols = ["CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OCC(=O)Oc1ccc(O)cc1"]
    one = atom_importance(graphnet_adapter(batch_size=1), mols, method="occlusion", n_random=20)
    many = atom_importance(graphnet_adapter(batch_size=64), mols, method="occlusion", n_random=20)
    assert one.params["mask"] == "features"
    torch.testing.assert_close(one.importance, many.importance, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one.p_value, many.p_value, rtol=0, atol=0.1)


def test_chemprop_gradients_equal_captum_on_its_batch_graph():
    from captum.attr import IntegratedGradients
    from chemprop import nn as cnn
    from chemprop.data import BatchMolGraph
    from chemprop.featurizers import SimpleMoleculeMolGraphFeaturizer
    from chemprop.models import MPNN

    torch.manual_seed(0)
    model = MPNN(cnn.BondMessagePassing(d_h=16, depth=2), cnn.MeanAggregation(), cnn.RegressionFFN(input_dim=16, hidden_dim=8)).eval()
    adapter = MoleculeModel(model, output=outputs.value(0), device="cpu")
    mol = Chem.MolFromSmiles("Oc1ccccc1C")
    ((atoms, bonds),) = integrated_gradients(adapter, [mol], n_steps=16)
    graph = SimpleMoleculeMolGraphFeaturizer()(mol)

    def forward(vs, es):
        batch = BatchMolGraph([graph] * vs.shape[0])
        batch.V, batch.E = vs.reshape(-1, vs.shape[-1]), es.reshape(-1, es.shape[-1])
        return model(batch)[:, 0]

    V, E = torch.from_numpy(graph.V).float()[None], torch.from_numpy(graph.E).float()[None]
    a, b = IntegratedGradients(forward).attribute((V, E), baselines=(torch.zeros_like(V), torch.zeros_like(E)), n_steps=16)
    np.testing.assert_allclose(atoms, a[0].sum(-1).double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bonds, b[0].sum(-1).reshape(-1, 2).sum(-1).double().numpy(), rtol=1e-5, atol=1e-6)


def test_atom_indices_follow_the_molecule_given_and_drawings_name_top_fragments():
    from probekit.molmodel.draw import draw_importance

    mol = Chem.RenumberAtoms(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    result = atom_importance(adapter_of(atom_weights), [mol], n_random=8)
    assert [a.GetSymbol() for a in result.mol(0).GetAtoms()] == [a.GetSymbol() for a in mol.GetAtoms()]
    assert result.importance.tolist() == [WEIGHTS[a.GetSymbol()] for a in mol.GetAtoms()]
    assert "<svg" in draw_importance(result, 0)
    frags = fragment_importance(adapter_of(atom_weights), ["CC(=O)Nc1ccc(O)cc1"], n_random=8)
    top = frags.to_frame().sort_values("rank")["smarts"].iloc[0]
    svg = draw_importance(frags, 0, top=1)
    assert svg.count("<path") > 10 and "#FF" in svg.upper()
    assert frags.summary()["top_fragment"].iloc[0] == top


def test_feature_masking_of_bonds_finds_the_double_bonds():
    def double_bonds(x, edge_index, edge_attr, batch):
        owner = batch[edge_index[0]]
        return torch.zeros(int(batch.max()) + 1).index_add(0, owner, edge_attr[:, 1]) / 2

    adapter = MoleculeModel(double_bonds, kind="graph", featurizer=featurize_graphs, output=outputs.value(0), device="cpu")
    result = atom_importance(adapter, ["C=CC(=O)O"], method="occlusion", n_random=10)
    assert result.params["mask"] == "features" and (result.importance == 0).all()
    assert result.bond_weights(0).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_chemprop_masking_zeroes_exactly_the_atom_and_bond_features():
    from chemprop import nn as cnn
    from chemprop.data import BatchMolGraph
    from chemprop.featurizers import SimpleMoleculeMolGraphFeaturizer
    from chemprop.models import MPNN

    torch.manual_seed(1)
    model = MPNN(cnn.BondMessagePassing(d_h=16, depth=2), cnn.SumAggregation(), cnn.RegressionFFN(input_dim=16, hidden_dim=8)).eval()
    adapter = MoleculeModel(model, output=outputs.value(0), device="cpu")
    scores, _ = adapter.score_masked(["CCO", "c1ccccc1O"], [(2,), ()], bond_masks=[(), (6,)])
    graphs = [SimpleMoleculeMolGraphFeaturizer()(Chem.MolFromSmiles(s)) for s in ["CCO", "c1ccccc1O"]]
    batch = BatchMolGraph(graphs)
    batch.V[2] = 0
    batch.E[[4 + 2 * 6, 4 + 2 * 6 + 1]] = 0  # chemprop writes each bond as two consecutive edges, after CCO's four
    with torch.no_grad():
        expected = model(batch)[:, 0].double()
    torch.testing.assert_close(scores, expected)


def test_fingerprint_estimator_occlusion_equals_predictions_on_the_masked_molecules():
    from sklearn.linear_model import Ridge

    from probekit.encode.mol import Morgan

    fp = Morgan(radius=1, n_bits=64)
    train = ["c1ccccc1O", "CCO", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "OCCO"]
    estimator = Ridge().fit(fp.transform(train).numpy(), np.arange(5.0))
    adapter = MoleculeModel(estimator, featurizer=fp, output=outputs.value(0), device="cpu")
    mol = Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")
    result = atom_importance(adapter, [mol], n_random=10)
    reference = estimator.predict(fp.transform([mol]).numpy())[0]
    masked = estimator.predict(fp.transform([mask_atoms(mol, [a]) for a in range(mol.GetNumAtoms())]).numpy())
    np.testing.assert_allclose(result.importance.numpy(), reference - masked)
    assert len(result.bond) == 0 and result.params["mask"] == "dummy"


def test_masked_molecules_the_model_cannot_score_warn_and_leave_nan():
    from probekit import ProbekitWarning

    def no_dummies(smiles):
        if any("*" in s for s in smiles):
            raise ValueError("unknown atom *")
        return count_oxygens_smiles(smiles)

    def count_oxygens_smiles(smiles):
        return torch.tensor([float(s.count("O")) for s in smiles])

    adapter = MoleculeModel(no_dummies, kind="smiles", output=outputs.value(0), device="cpu")
    with pytest.warns(ProbekitWarning, match="6 of 7 masked molecules have no score.*unknown atom"):
        result = atom_importance(adapter, ["Oc1ccccc1"], mask="remove", n_random=10)
    assert result.importance[0] == 1.0 and result.importance[1:].isnan().all() and result.errors == [None]
