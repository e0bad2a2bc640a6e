"""Bit -> substructure mapping, atom importance spread over environments, highlighted drawings."""

import numpy as np
import pytest
from rdkit import Chem

from probekit.chem import atom_importance, bit_environments, counterfactual_bits, draw_atoms
from probekit.encode.mol import MACCS, Concat, Descriptors, Morgan


def _bit_for(mol, fp, atoms):
    """The bit whose only environment in ``mol`` covers exactly ``atoms``."""
    for bit in range(fp.n_features):
        envs = bit_environments(mol, bit, fp)
        if [e["atoms"] for e in envs] == [atoms]:
            return bit
    raise AssertionError(f"no bit with environment {atoms}")


def test_radius0_bit_of_ethanol_oxygen():
    mol = Chem.MolFromSmiles("CCO")
    fp = Morgan(radius=0, n_bits=2048)
    bit = _bit_for(mol, fp, (2,))
    (env,) = bit_environments(mol, bit, fp)
    assert env == {"center": 2, "radius": 0, "atoms": (2,), "bonds": (), "smiles": "O", "smarts": "[#8]"}
    # the two carbons differ (CH3 vs CH2), so each has its own radius-0 bit
    assert _bit_for(mol, fp, (0,)) != _bit_for(mol, fp, (1,))


def test_radius1_environment_atoms_by_hand():
    # isopropanol: C0 C1(C2) O3; radius 1 around C1 covers every heavy atom
    mol = Chem.MolFromSmiles("CC(C)O")
    fp = Morgan(radius=1, n_bits=2048)
    envs = [e for b in range(2048) for e in bit_environments(mol, b, fp) if e["center"] == 1 and e["radius"] == 1]
    assert len(envs) == 1 and envs[0]["atoms"] == (0, 1, 2, 3) and sorted(envs[0]["bonds"]) == [0, 1, 2]
    # the two methyls are equivalent: one radius-0 bit with two environments
    shared = [b for b in range(2048) if sorted(e["atoms"] for e in bit_environments(mol, b, fp)) == [(0,), (2,)]]
    assert len(shared) == 1


def test_benzene_ring_environment():
    mol = Chem.MolFromSmiles("c1ccccc1")
    fp = Morgan(radius=1, n_bits=2048)
    X = fp.transform([mol])[0]
    bits = X.nonzero().flatten().tolist()
    assert len(bits) == 2  # one aromatic CH bit at radius 0, one at radius 1
    sizes = sorted(len(e["atoms"]) for b in bits for e in bit_environments(mol, b, fp))
    assert sizes == [1] * 6 + [3] * 6


def test_atom_importance_spreads_weights_and_conserves_them():
    mol = Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")
    fp = Morgan(radius=2, n_bits=1024)
    X = fp.transform([mol])[0]
    rng = np.random.default_rng(0)
    weights = rng.normal(size=1024) * X.numpy()  # only set bits carry weight
    imp = atom_importance(mol, weights, fp)
    assert imp.shape == (mol.GetNumAtoms(),)
    assert np.isclose(imp.sum(), weights.sum())  # every bit's weight is handed out in full
    # a single radius-1 bit: split evenly over its atoms
    env_bit = next(b for b in X.nonzero().flatten().tolist()
                   if len(bit_environments(mol, b, fp)) == 1 and bit_environments(mol, b, fp)[0]["radius"] == 1)
    (env,) = bit_environments(mol, env_bit, fp)
    imp = atom_importance(mol, {env_bit: 3.0}, fp)
    expected = np.zeros(mol.GetNumAtoms())
    expected[list(env["atoms"])] = 3.0 / len(env["atoms"])
    assert np.allclose(imp, expected)
    assert np.abs(atom_importance(mol, weights, fp, normalize=True)).max() == pytest.approx(1.0)


def test_atom_importance_ignores_descriptors_and_offsets_concat():
    mol = Chem.MolFromSmiles("CCO")
    morgan = Morgan(radius=0, n_bits=64)
    both = Concat(Descriptors(["MolWt"]), morgan)
    bit = _bit_for(mol, morgan, (2,))
    assert np.allclose(atom_importance(mol, {0: 5.0, 1 + bit: 1.0}, both), [0, 0, 1])


def test_maccs_environments_are_smarts_matches():
    mol = Chem.MolFromSmiles("CCO")
    m = MACCS()
    X = m.transform([mol])[0]
    found = [e for k in X.nonzero().flatten().tolist() for e in bit_environments(mol, k, m)]
    assert found and all(set(e["atoms"]) <= {0, 1, 2} for e in found)
    assert any(e["atoms"] == (2,) for e in found)  # the OH key maps to the oxygen


def test_bit_environments_are_empty_exactly_when_the_bit_is_unset():
    for featurizer in (Morgan(radius=2, n_bits=64), MACCS(), Concat(Morgan(radius=1, n_bits=32), MACCS())):
        for smiles in ("CCO", "CC(C)C", "[Na+].CC(=O)[O-]"):
            mol = Chem.MolFromSmiles(smiles)
            x = featurizer.transform([mol])[0]
            for bit in range(featurizer.n_features):
                assert bool(bit_environments(mol, bit, featurizer)) == bool(x[bit]), (featurizer, smiles, bit)


def test_unset_maccs_key_gives_its_atoms_no_importance():
    mol = Chem.MolFromSmiles("CCO")  # key 141 needs more than two CH3; ethanol has one
    assert MACCS().transform([mol])[0, 141] == 0
    weights = np.zeros(167)
    weights[141] = 1.0
    assert atom_importance(mol, weights, MACCS()).tolist() == [0.0, 0.0, 0.0]


def test_draw_atoms_svg_and_png():
    mol = Chem.MolFromSmiles("CCO")
    svg = draw_atoms(mol, [0.0, -0.5, 1.0], legend="ethanol")
    assert svg.lstrip().startswith("<?xml") and "class='legend'" in svg
    # highlighted atoms are drawn in colour; an unweighted drawing has none of those fills
    plain = draw_atoms(mol, [0.0, 0.0, 0.0])
    assert svg.count("fill:#") > plain.count("fill:#")
    png = draw_atoms(mol, [0.0, 0.5, 1.0], fmt="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="3 atoms"):
        draw_atoms(mol, [1.0, 2.0])


def test_counterfactual_bits():
    mol = Chem.MolFromSmiles("CCO")
    fp = Morgan(radius=1, n_bits=2048)
    bit = _bit_for(mol, fp, (1, 2))
    out = counterfactual_bits(mol, [(bit, 1, 0), (5, 0, 1)], fp)
    assert out[0] == {"feature": bit, "change": "removed", "atoms": (1, 2), "smiles": "OC"}
    assert out[1]["change"] == "added" and out[1]["atoms"] == ()


def test_atom_swaps_are_valid_and_scored_exactly():
    import torch

    from probekit import FeatureModel, goals, outputs
    from probekit.chem import atom_swaps

    desc = Descriptors(["MolWt"])
    adapter = FeatureModel(torch.nn.Identity(), featurizer=desc, output=outputs.value(0), device="cpu")
    table = atom_swaps(adapter, "CC(=O)Nc1ccc(O)cc1", goal=goals.decrease(by=10.0))
    assert len(table) == table["smiles"].nunique() > 10
    from rdkit.Chem import Descriptors as RD

    for row in table.itertuples():
        mol = Chem.MolFromSmiles(row.smiles)
        assert mol is not None
        assert row.score == pytest.approx(RD.MolWt(mol), rel=1e-5)  # the model is MolWt itself
    assert (table["success"] == (table["delta"] <= -10.0 + 1e-4)).all()
    assert table["g"].is_monotonic_increasing
    # only the atoms asked for change
    only = atom_swaps(adapter, "CC(=O)Nc1ccc(O)cc1", atoms=[8])
    assert set(only["atoms"]) == {(8,)}
    assert "delete atom 8 (O)" in set(only["edit"])


def test_counterfactual_swaps_are_never_hypervalent():
    import torch

    from probekit import FeatureModel, outputs
    from probekit.chem import atom_swaps

    periodic = Chem.GetPeriodicTable()

    def hypervalent(smiles):
        mol = Chem.MolFromSmiles(smiles)
        return sum(a.GetTotalValence() > periodic.GetDefaultValence(a.GetAtomicNum()) for a in mol.GetAtoms())

    adapter = FeatureModel(torch.nn.Identity(), featurizer=Descriptors(["MolWt"]), output=outputs.value(0), device="cpu")
    original = "Cc1cnc(NS(=O)(=O)c2ccccc2C#N)s1"  # its sulfonyl S is the one hypervalent atom
    table = atom_swaps(adapter, original)
    swapped = table[table["edit"].str.startswith("atom")]
    assert len(swapped) > 5
    assert all(hypervalent(s) == hypervalent(original) == 1 for s in swapped["smiles"])


def test_bit_substructures_name_bits_from_the_reference_set_or_the_molecules_at_hand():
    from collections import Counter

    from probekit.chem import bit_substructures

    smiles = ["CCCl", "ClCCCl", "c1ccccc1Cl", "CCO", "CCN"]
    fp = Morgan(radius=1, n_bits=64)
    X, prov = fp.featurize(smiles)
    bits = sorted(set(X.nonzero()[:, 1].tolist()))
    named = bit_substructures(fp, bits + [b for b in range(64) if b not in bits][:2], provenance=prov)
    assert sorted(named) == bits  # bits no molecule has cannot be named
    for bit in bits:
        counts = Counter(e["smiles"] for i in range(len(smiles)) for e in prov.environments(i, bit))
        assert named[bit]["source"] == "molecules probed" and counts[named[bit]["smiles"]] == max(counts.values())
    fitted = Morgan(radius=1, n_bits=64).fit(["CCBr", "CCCl"])
    from_reference = bit_substructures(fitted, bits, provenance=prov)
    assert {d["source"] for d in from_reference.values()} == {"reference set", "molecules probed"}
    for bit, d in from_reference.items():  # the reference set first; the molecules at hand for bits it lacks
        assert (d["source"] == "reference set") == (fitted.describe(bit) is not None)
