"""probe() on molecule models: atoms, fragments and counterfactuals in one report, with known answers."""

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from probekit import goals, probe
from probekit.molmodel import MoleculeModel
from probekit.report.molmodels import MoleculeModelReport, changed_atoms
from probekit.report.sensitivity import SensitivityReport

PHENOL = Chem.MolFromSmarts("[OX2H]c")
MOLECULES = ["Oc1ccc(CC(=O)O)cc1", "CCOC(=O)c1ccccc1", "not a smiles", "Oc1ccccc1O"]


def count_phenols(mols):
    return torch.tensor([float(len(m.GetSubstructMatches(PHENOL))) for m in mols])


@pytest.fixture(scope="module")
def report():
    adapter = MoleculeModel(count_phenols, kind="mols", device="cpu")
    return probe(adapter, MOLECULES, goal=goals.decrease(by=1.0), baseline_draws=30)


def test_summary_has_one_row_per_record_and_names_the_bad_one(report):
    summary = report.summary()
    assert summary["id"].tolist() == ["mol0", "mol1", "mol2", "mol3"]
    assert "not a valid SMILES" in summary["error"][2]
    assert summary["error"].notna().sum() == 1


def test_counterfactuals_remove_exactly_one_phenol_in_one_edit(report):
    summary = report.summary().set_index("id")
    for mid in ("mol0", "mol3"):
        row = summary.loc[mid]
        assert row["success"] and row["n_edits"] == 1
        before = len(Chem.MolFromSmiles(row["smiles"]).GetSubstructMatches(PHENOL))
        after = Chem.MolFromSmiles(row["counterfactual"])
        assert after is not None and len(after.GetSubstructMatches(PHENOL)) == before - 1
    assert not summary.loc["mol1", "success"]  # no phenol: nothing to remove


def test_the_phenol_oxygen_is_the_top_atom(report):
    atoms = report.atoms()
    for mid in ("mol0", "mol3"):
        mine = atoms[atoms["id"] == mid]
        mol = Chem.MolFromSmiles(mine["smiles"].iloc[0])
        hydroxyls = {m[0] for m in mol.GetSubstructMatches(PHENOL)}
        top = set(mine.loc[mine["importance"] == mine["importance"].max(), "atom"].astype(int))
        assert hydroxyls <= top


def test_report_renders_drawings_and_survives_a_save(report, tmp_path):
    html = report.to_html(tmp_path / "r.html").read_text()
    assert html.count("<svg") >= 4  # two molecules drawn, each with a counterfactual pair
    path = report.save(tmp_path / "r.pkr")
    again = SensitivityReport.load(path)
    assert isinstance(again, MoleculeModelReport)
    pd.testing.assert_frame_equal(again.summary(), report.summary())


def test_changed_atoms_mark_what_the_counterfactual_changed():
    assert changed_atoms("Oc1ccccc1", "Nc1ccccc1") == [0]
    assert changed_atoms("CCO", "CCO") == []
