"""Single edits of molecules (SELFIES, matched pairs, atoms and bonds) and the similarity measures they are ranked by."""

import functools
import math

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("selfies")

from rdkit import Chem  # noqa: E402

from probekit.molmodel.mutate import (  # noqa: E402
    COMMON_SUBSTITUENTS,
    canonical,
    neutral_alphabet,
    random_edit_paths,
    single_edits,
    substituents,
    text_seed,
)
from probekit.molmodel.similarity import fingerprints, sa_score, similarity_function, tanimoto  # noqa: E402

PHENOL_ACID = "Oc1ccc(CC(=O)O)cc1"


def _sanitises(smiles: str) -> bool:
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return False
    Chem.SanitizeMol(mol)
    return True


@pytest.mark.parametrize("operator", ["atom", "mmpa", "selfies"])
def test_every_candidate_is_a_distinct_sanitised_canonical_molecule(operator):
    molecule = "CC(=O)Nc1ccc(O)cc1" if operator != "selfies" else "Oc1ccccc1"
    edits = single_edits(molecule, operators=[operator])
    smiles = [c.smiles for c in edits]
    assert smiles, operator
    assert smiles == sorted(set(smiles))
    assert canonical(molecule) not in smiles
    assert all(_sanitises(s) and canonical(s) == s for s in smiles)
    assert {c.operator for c in edits} == {operator}
    assert all(c.edit for c in edits)


def test_atom_edits_of_methanol_are_the_hand_listed_ones():
    edits = {c.smiles: c.edit for c in single_edits("CO", operators=["atom"])}
    assert set(edits) == {"C", "C=O", "CC", "CCl", "CF", "CN", "CS", "NO", "O", "OCl", "OF", "OO", "OS"}
    assert edits["CN"] == "replace O (atom 1) with N"
    assert edits["C=O"] == "bond 0-1 (C-O) single -> double"
    assert edits["C"] == "remove O (atom 1)"


def test_removing_the_phenol_oxygen_is_one_edit_of_the_atom_and_mmpa_operators():
    for operator, text in (("atom", "remove O (atom 0)"), ("mmpa", "*O -> *[H] at atom 1")):
        edits = {c.smiles: c.edit for c in single_edits(PHENOL_ACID, operators=[operator])}
        assert edits["O=C(O)Cc1ccccc1"] == text


def test_mmpa_swaps_the_smaller_side_for_common_and_own_substituents():
    assert substituents(PHENOL_ACID) == ["*C(=O)O", "*CC(=O)O", "*O"]
    edits = {c.smiles: c.edit for c in single_edits(PHENOL_ACID, operators=["mmpa"])}
    assert edits["O=C(O)Cc1ccc(C(F)(F)F)cc1"] == "*O -> *C(F)(F)F at atom 1"
    assert edits["O=C(O)Cc1ccc(C(=O)O)cc1"].startswith("*O -> *C(=O)O")
    only = single_edits(PHENOL_ACID, operators=["mmpa"], fragments=["N"])
    assert "NCc1ccc(O)cc1" in [c.smiles for c in only]
    assert "O=C(O)Cc1ccc(F)cc1" not in [c.smiles for c in only]
    assert len(COMMON_SUBSTITUENTS) >= 12


def test_selfies_edits_use_the_given_alphabet():
    edits = {c.smiles: c.edit for c in single_edits("CC", operators=["selfies"], alphabet=["[C]"])}
    assert edits == {"C": "SELFIES delete [C] at 0", "CCC": "SELFIES insert [C] at 0"}
    alphabet = neutral_alphabet()
    assert "[C]" in alphabet and "[Cl]" in alphabet and not any("+" in t or "-" in t for t in alphabet)


def test_sampling_is_seeded_balanced_and_a_subset_of_all_edits():
    everything = {c.smiles for c in single_edits(PHENOL_ACID, operators=["atom", "mmpa"])}
    drawn = single_edits(PHENOL_ACID, n=20, seed=4, operators=["atom", "mmpa"])
    assert len(drawn) == 20 and {c.smiles for c in drawn} <= everything
    assert drawn == single_edits(PHENOL_ACID, n=20, seed=4, operators=["atom", "mmpa"])
    assert drawn != single_edits(PHENOL_ACID, n=20, seed=5, operators=["atom", "mmpa"])
    assert {c.operator for c in drawn} == {"atom", "mmpa"}
    assert len(single_edits("CO", n=1000, operators=["atom"])) == 13


def test_invalid_molecules_and_operators_are_refused():
    with pytest.raises(ValueError, match="not a valid molecule"):
        single_edits("C1CC")
    with pytest.raises(ValueError, match="unknown operator"):
        single_edits("CCO", operators=["smiles"])


def test_random_walks_are_seeded_and_take_k_edits():
    walks = random_edit_paths(PHENOL_ACID, 2, n=6, seed=1)
    assert walks == random_edit_paths(PHENOL_ACID, 2, n=6, seed=1)
    assert all(len(edits) == 2 and _sanitises(s) for s, edits in walks)
    assert random_edit_paths("C", 1, n=2, operators=["atom"]) == [
        (s, e) for s, e in random_edit_paths("C", 1, n=2, operators=["atom"])
    ]
    assert text_seed(0, "CCO") != text_seed(0, "CCN")


def test_tanimoto_counts_bits_and_invalid_molecules():
    sims = tanimoto(PHENOL_ACID, [PHENOL_ACID, "O=C(O)Cc1ccccc1", "not a smiles"])
    assert sims[0] == 1.0 and 0.3 < sims[1] < 1.0 and math.isnan(sims[2])
    bits = tanimoto("CCCC", ["CCCCC"], counts=False)
    counts = tanimoto("CCCC", ["CCCCC"])
    assert bits[0] != counts[0]
    wide = similarity_function(functools.partial(tanimoto, radius=3))
    assert wide("CCO", ["CCO"]).tolist() == [1.0]
    assert fingerprints(["CCO"], counts=False, n_bits=512)[0].GetNumBits() == 512
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity_function("cosine")


def test_sa_score_ranks_a_simple_molecule_easier_than_a_complex_one():
    scores = sa_score(["CCO", "CC1(C)C2CC3C4(C)CC(O)C(C)(C2)C34C1", "nonsense"])
    if np.isnan(scores[0]):
        pytest.skip("RDKit's SA_Score contribution is not installed")
    assert scores[0] < scores[1] and np.isnan(scores[2])


def test_no_triple_bond_is_put_inside_a_ring():
    from rdkit import Chem

    from probekit.molmodel.mutate import single_edits

    for smiles in ("Cc1ccccc1", "C1CCCCC1O"):
        for candidate in single_edits(smiles, operators=["atom"], seed=0):
            mol = Chem.MolFromSmiles(candidate.smiles)
            assert not any(b.GetBondType() == Chem.BondType.TRIPLE and b.IsInRing() for b in mol.GetBonds()), candidate
