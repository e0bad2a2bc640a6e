"""The bad-molecule battery for read_molecules: every record kept, errors name the record and RDKit's reason."""

import random
import warnings

import pandas as pd
import pytest
from rdkit import Chem

from probekit import ProbekitWarning
from probekit.io import read_molecules, unique_ids

GOOD = {"ethanol": "CCO", "salt": "[Na+].CC(=O)[O-]", "ammonium": "C[NH3+]", "stereo": "C[C@H](N)C(=O)O", "ez": "C/C=C/C"}
BAD = {
    "syntax": ("C1CC(", "SMILES Parse Error"),
    "valence": ("C(C)(C)(C)(C)C", "Explicit valence for atom # 0 C, 5"),
    "kekulize": ("c1cccc1", "kekulize"),
    "unknown_element": ("CXyz", "SMILES Parse Error"),
    "empty": ("", "empty"),
}


def _all_records():
    records = dict(GOOD)
    records.update({k: v[0] for k, v in BAD.items()})
    return records


def _check(frame, records):
    assert list(frame.columns[:4]) == ["id", "smiles", "mol", "error"]
    assert frame["id"].tolist() == list(records)  # no record dropped, order kept
    for name, smiles in records.items():
        row = frame.set_index("id").loc[name]
        if name in GOOD:
            assert row["error"] is None, row["error"]
            assert isinstance(row["mol"], Chem.Mol)
            # the parsed molecule is the one written: same canonical SMILES as RDKit's own parse
            assert row["smiles"] == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        else:
            assert row["mol"] is None
            assert row["error"].startswith(f"record {name!r}: "), row["error"]
            assert BAD[name][1].lower() in row["error"].lower(), row["error"]


def test_mapping_battery():
    records = _all_records()
    _check(read_molecules(records), records)


def test_list_battery_keeps_every_record():
    records = _all_records()
    frame = read_molecules(list(records.values()))
    assert frame["id"].tolist() == [f"mol{i}" for i in range(len(records))]
    assert frame["error"].isna().tolist() == [name in GOOD for name in records]


def test_list_ids_are_named_in_errors():
    frame = read_molecules(["CCO", "C(C)(C)(C)(C)C", None])
    assert frame["id"].tolist() == ["mol0", "mol1", "mol2"]
    assert frame["error"][1].startswith("record 'mol1': ")
    assert frame["error"][2] == "record 'mol2': empty SMILES"


def test_valence_reason_is_rdkits():
    smiles = "C(C)(C)(C)(C)C"
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    reason = Chem.DetectChemistryProblems(mol)[0].Message()
    assert read_molecules([smiles])["error"][0] == f"record 'mol0': {reason}"


def test_salts_charges_stereo_kept():
    frame = read_molecules(list(GOOD.values()))
    salt, ammonium, stereo, ez = (frame["mol"][i] for i in (1, 2, 3, 4))
    assert len(Chem.GetMolFrags(salt)) == 2
    assert sorted(a.GetFormalCharge() for a in salt.GetAtoms() if a.GetFormalCharge()) == [-1, 1]
    assert Chem.GetFormalCharge(ammonium) == 1
    assert Chem.FindMolChiralCenters(stereo) == [(1, "S")]
    assert "/" in frame["smiles"][4] and ez.GetBondWithIdx(1).GetStereo() != Chem.BondStereo.STEREONONE


def test_standardize_keeps_largest_fragment_and_neutralises():
    frame = read_molecules(["[Na+].CC(=O)[O-]", "C[NH3+].[Cl-]", "CCO"], standardize=True)
    assert frame["smiles"].tolist() == ["CC(=O)O", "CN", "CCO"]
    assert frame["input_smiles"].tolist() == ["[Na+].CC(=O)[O-]", "C[NH3+].[Cl-]", "CCO"]
    assert all(Chem.GetFormalCharge(m) == 0 for m in frame["mol"])


def test_csv_and_tsv(tmp_path):
    records = _all_records()
    table = pd.DataFrame({"Name": list(records), "SMILES": list(records.values()), "pIC50": range(len(records))})
    table.to_csv(tmp_path / "m.csv", index=False)
    _check(read_molecules(tmp_path / "m.csv"), records)
    table.to_csv(tmp_path / "m.tsv", index=False, sep="\t")
    _check(read_molecules(str(tmp_path / "m.tsv"), smiles_col="SMILES", id_col="Name"), records)
    with pytest.raises(ValueError, match="no id column 'nope'"):
        read_molecules(tmp_path / "m.csv", id_col="nope")


def test_dataframe_input():
    records = _all_records()
    table = pd.DataFrame({"id": list(records), "smiles": list(records.values())})
    _check(read_molecules(table), records)


def test_smi_file(tmp_path):
    records = {k: v for k, v in _all_records().items() if v}
    text = "smiles name\n" + "\n".join(f"{s} {n}" for n, s in records.items()) + "\n\n"
    (tmp_path / "m.smi").write_text(text)
    _check(read_molecules(tmp_path / "m.smi"), records)


def _bad_valence_block() -> str:
    mol = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    return Chem.MolToMolBlock(mol, kekulize=False)


def test_sdf(tmp_path):
    good = Chem.MolFromSmiles("C[C@H](N)C(=O)O")
    good.SetProp("_Name", "alanine")
    salt = Chem.MolFromSmiles("[Na+].CC(=O)[O-]")
    salt.SetProp("_Name", "acetate")
    blocks = [Chem.MolToMolBlock(good), Chem.MolToMolBlock(salt)]
    bad = _bad_valence_block().split("\n", 1)[1]
    blocks.append("pentavalent\n" + bad)
    blocks.append("garbled\n  junk\n\n  x  y  V2000\nM  END\n")
    path = tmp_path / "m.sdf"
    path.write_text("".join(b.rstrip("\n") + "\n$$$$\n" for b in blocks))
    frame = read_molecules(path)
    assert len(frame) == 4
    assert frame["id"].tolist()[:3] == ["alanine", "acetate", "pentavalent"]
    assert frame["error"][0] is None and Chem.FindMolChiralCenters(frame["mol"][0]) == [(1, "S")]
    assert frame["error"][1] is None and len(Chem.GetMolFrags(frame["mol"][1])) == 2
    assert frame["error"][2].startswith("record 'pentavalent': ") and "valence" in frame["error"][2]
    assert frame["mol"][3] is None and "SDF entry 4" in frame["error"][3]


def test_duplicate_ids_are_made_unique():
    frame = read_molecules({"a": "CCO"} | {"b": "CCN"})
    assert frame["id"].tolist() == ["a", "b"]
    table = pd.DataFrame({"id": ["x", "x"], "smiles": ["CCO", "CCN"]})
    assert read_molecules(table)["id"].tolist() == ["x#0", "x#1"]


def test_repeated_ids_never_take_another_records_name_and_errors_name_the_final_id(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("name,smiles\na,CCO\na,c1ccccc1O\nb,CCN\nb,xx\na#0,CCC\n")
    with pytest.warns(ProbekitWarning, match=r"'a' -> 'a#1', 'a#2'; 'b' -> 'b#0', 'b#1'"):
        frame = read_molecules(path)
    assert frame["id"].tolist() == ["a#1", "a#2", "b#0", "b#1", "a#0"]
    assert frame["smiles"].tolist()[4] == "CCC"  # the record named a#0 keeps its name
    assert frame["error"][3].startswith("record 'b#1': SMILES Parse Error")
    assert frame["error"].drop(3).isna().all()


def test_repeated_sdf_titles_are_made_unique(tmp_path):
    blocks = []
    for smiles in ("CCO", "CCN", "C(C)(C)(C)(C)C"):
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        blocks.append("x\n" + Chem.MolToMolBlock(mol, kekulize=False).split("\n", 1)[1])
    path = tmp_path / "dup.sdf"
    path.write_text("".join(b.rstrip("\n") + "\n$$$$\n" for b in blocks))
    with pytest.warns(ProbekitWarning, match="'x' -> 'x#0', 'x#1', 'x#2'"):
        frame = read_molecules(path)
    assert frame["id"].tolist() == ["x#0", "x#1", "x#2"]
    assert frame["error"][2].startswith("record 'x#2': ")


def test_unique_ids_keep_singletons_and_never_collide():
    rng = random.Random(0)
    names = ["a", "b", "a#0", "a#1", "a#0#0", "b#2"]
    for _ in range(300):
        ids = [rng.choice(names) for _ in range(rng.randint(1, 8))]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = unique_ids(ids)
        assert bool(caught) == (len(set(ids)) < len(ids))  # a warning exactly when something was renamed
        assert len(out) == len(ids) and len(set(out)) == len(out)
        for old, new in zip(ids, out):
            assert new == old if ids.count(old) == 1 else new.startswith(old + "#")


def _sdf_with_property(tmp_path):
    writer_path = tmp_path / "p.sdf"
    writer = Chem.SDWriter(str(writer_path))
    for name, smiles in (("eth", "CCO"), ("phen", "c1ccccc1O")):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", name)
        mol.SetProp("cid", name.upper())
        mol.SetProp("pIC50", "6.1")
        writer.write(mol)
    writer.close()
    return writer_path


def test_sdf_id_property_is_read_and_a_missing_one_is_named(tmp_path):
    path = _sdf_with_property(tmp_path)
    assert read_molecules(path, id_col="cid")["id"].tolist() == ["ETH", "PHEN"]
    with pytest.raises(ValueError, match=r"no id property 'nonexistent'; SD properties are \['cid', 'pIC50'\]"):
        read_molecules(path, id_col="nonexistent")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_molecules(tmp_path / "none.smi")
    (tmp_path / "x.xyz").write_text("C")
    with pytest.raises(ValueError, match="cannot read"):
        read_molecules(tmp_path / "x.xyz")
