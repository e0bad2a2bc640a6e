"""Featurizers: names, kinds, bounds, values against RDKit called directly, provenance, error rows."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import Descriptors as RDDescriptors
from rdkit.Chem import MACCSkeys, rdFingerprintGenerator

from probekit import FeatureModel, outputs
from probekit.encode.mol import MACCS, Concat, Descriptors, Matrix, Morgan, parse_featurizer
from probekit.io import read_molecules

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O", "[Na+].CC(=O)[O-]"]


def test_morgan_names_kinds_bounds():
    fp = Morgan(radius=3, n_bits=512)
    assert fp.names[0] == "morgan3_0" and len(fp.names) == 512 and len(set(fp.names)) == 512
    assert fp.kinds == ["binary"] * 512
    lower, upper = fp.bounds
    assert torch.equal(lower, torch.zeros(512)) and torch.equal(upper, torch.ones(512))
    counts = Morgan(radius=2, n_bits=64, counts=True)
    assert counts.kinds[0] == "integer"
    assert counts.bounds[0][0] == 0 and math.isinf(counts.bounds[1][0])


@pytest.mark.parametrize("counts", [False, True])
def test_morgan_matches_rdkit_and_every_set_bit_has_environments(counts):
    fp = Morgan(radius=2, n_bits=256, counts=counts)
    X, prov = fp.featurize(SMILES)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=256)
    for i, s in enumerate(SMILES):
        mol = Chem.MolFromSmiles(s)
        ref = gen.GetCountFingerprintAsNumPy(mol) if counts else gen.GetFingerprintAsNumPy(mol)
        assert np.array_equal(X[i].numpy(), ref.astype(np.float32))
        for bit in range(256):
            envs = prov.environments(i, bit)
            assert bool(envs) == bool(X[i, bit] > 0)
            if counts:  # each environment is one occurrence of the bit
                assert len(envs) == int(X[i, bit])


def _env_of(prov, i, center, radius):
    for bit in range(prov.featurizer.n_features):
        for env in prov.environments(i, bit):
            if env["center"] == center and env["radius"] == radius:
                return bit, env
    return None, None


def test_morgan_environments_known_by_hand():
    fp = Morgan(radius=2, n_bits=2048)
    _, prov = fp.featurize(["CCO", "CC(=O)O"])
    # ethanol: atoms C0 C1 O2; bonds 0 (C0-C1), 1 (C1-O2)
    _, o0 = _env_of(prov, 0, center=2, radius=0)
    assert o0["atoms"] == (2,) and o0["bonds"] == () and o0["smiles"] == "O" and o0["smarts"] == "[#8]"
    _, o1 = _env_of(prov, 0, center=2, radius=1)
    assert o1["atoms"] == (1, 2) and o1["bonds"] == (1,) and o1["smiles"] == "OC"
    # acetic acid C0 C1(=O2)O3: radius 1 around the carboxyl carbon covers all four heavy atoms
    _, c1 = _env_of(prov, 1, center=1, radius=1)
    assert c1["atoms"] == (0, 1, 2, 3) and sorted(c1["bonds"]) == [0, 1, 2]
    patt = Chem.MolFromSmarts(c1["smarts"])
    assert Chem.MolFromSmiles("CC(=O)O").HasSubstructMatch(patt)
    # the bit of the O's radius-0 environment is the same in phenol's O atom
    bit_o, _ = _env_of(prov, 0, center=2, radius=0)
    _, prov2 = fp.featurize(["c1ccccc1O"])
    assert [e["atoms"] for e in prov2.environments(0, bit_o)] == [(6,)]


def test_provenance_frame():
    _, prov = Morgan(radius=1, n_bits=2048).featurize(["CCO"])
    table = prov.frame()
    # 3 radius-0 environments + 3 radius-1 environments (RDKit drops none of them in ethanol)
    assert len(table) == 6
    assert set(table["radius"]) == {0, 1}
    assert table["feature"].str.startswith("morgan1_").all()


def test_descriptors_values_kinds_and_fitted_bounds():
    names = ["MolWt", "TPSA", "NumHDonors", "fr_phenol", "MolLogP"]
    d = Descriptors(names)
    assert d.kinds == ["continuous", "continuous", "integer", "integer", "continuous"]
    lower, upper = d.bounds
    assert math.isinf(lower[0]) and lower[2] == 0 and math.isinf(upper[2])
    X = d.transform(SMILES)
    funcs = dict(RDDescriptors.descList)
    ref = [[funcs[n](Chem.MolFromSmiles(s)) for n in names] for s in SMILES]
    assert np.allclose(X.numpy(), np.array(ref, dtype=np.float32))
    d.fit(SMILES)
    lower, upper = d.bounds
    assert torch.allclose(lower, X.min(dim=0).values) and torch.allclose(upper, X.max(dim=0).values)
    with pytest.raises(ValueError, match="unknown RDKit descriptors"):
        Descriptors(["NotADescriptor"])


def test_all_descriptors_default():
    d = Descriptors()
    assert len(d.names) == len(RDDescriptors.descList)


def test_maccs_matches_rdkit_and_environments_match_smarts():
    m = MACCS()
    assert len(m.names) == 167 and m.kinds == ["binary"] * 167
    X, prov = m.featurize(SMILES[:3])
    for i, s in enumerate(SMILES[:3]):
        mol = Chem.MolFromSmiles(s)
        assert X[i].tolist() == [float(b) for b in MACCSkeys.GenMACCSKeys(mol)]
        for key in torch.nonzero(X[i]).flatten().tolist():
            for env in prov.environments(i, key):
                # the environment's atoms are one match of the key's SMARTS
                matches = {tuple(sorted(mt)) for mt in mol.GetSubstructMatches(Chem.MolFromSmarts(env["smarts"]))}
                assert env["atoms"] in matches


def test_featurize_keeps_error_rows_and_transform_names_them():
    fp = Morgan(radius=1, n_bits=64)
    X, prov = fp.featurize(["CCO", "C1CC(", "", "CCN"])
    assert X.shape == (4, 64)
    assert prov.ok.tolist() == [True, False, False, True]
    assert torch.isnan(X[1]).all() and torch.isfinite(X[0]).all()
    assert prov.errors[1].startswith("record 'mol1': ")
    assert prov.environments(1, 0) == []
    with pytest.raises(ValueError, match="record 'mol1'.*record 'mol2'"):
        fp.transform(["CCO", "C1CC(", ""])


def test_featurization_failure_becomes_error_row():
    d = Descriptors(["MolWt"])
    d._compute = lambda mol: (_ for _ in ()).throw(RuntimeError("boom")) if mol.GetNumAtoms() == 2 else (np.ones(1), {})
    X, prov = d.featurize(["CCO", "CC", "CCCC"])
    assert prov.ok.tolist() == [True, False, True]
    assert "record 'mol1': featurization failed: boom" == prov.errors[1]


def test_concat_names_kinds_bounds_environments():
    morgan, desc = Morgan(radius=1, n_bits=32), Descriptors(["MolLogP", "NumHDonors"]).fit(SMILES)
    both = Concat(morgan, desc)
    assert both.names == morgan.names + desc.names
    assert both.kinds == morgan.kinds + desc.kinds
    assert torch.equal(both.bounds[1], torch.cat([morgan.bounds[1], desc.bounds[1]]))
    X, prov = both.featurize(SMILES[:2])
    Xm, provm = morgan.featurize(SMILES[:2])
    assert torch.equal(X[:, :32], Xm)
    for bit in range(32):
        assert prov.environments(1, bit) == provm.environments(1, bit)
    assert prov.environments(1, 32) == []


def test_matrix_features():
    table = pd.DataFrame({"id": ["a", "b"], "x": [0.5, float("nan")], "flag": [1, 0]})
    m = Matrix(["x", "flag"], kinds=["continuous", "binary"], bounds=([0, 0], [1, 1]))
    X, prov = m.featurize(table)
    assert prov.errors == [None, "record 'b': feature 'x' is not finite"]
    assert torch.equal(m.bounds[1], torch.ones(2))
    with pytest.raises(ValueError, match="record 'b'"):
        m.transform(table)
    with pytest.raises(ValueError, match="kind"):
        Matrix(["x"], kinds="fuzzy")


def test_parse_featurizer():
    assert repr(parse_featurizer("morgan:3:1024")) == "Morgan(radius=3, n_bits=1024, counts=False)"
    assert parse_featurizer("morgan-counts").kinds[0] == "integer"
    assert parse_featurizer("descriptors:MolWt,TPSA").names == ["MolWt", "TPSA"]
    assert parse_featurizer("maccs").n_features == 167
    with pytest.raises(ValueError, match="unknown featurizer"):
        parse_featurizer("ecfp6x")


def test_feature_model_with_featurizer(device):
    fp = Concat(Morgan(radius=2, n_bits=128), Descriptors(["MolLogP"]))
    model = torch.nn.Linear(129, 1)
    adapter = FeatureModel(model, featurizer=fp, output=outputs.value(0), device=device)
    X = fp.transform(SMILES)
    expected = model(X).detach()[:, 0]
    assert torch.allclose(adapter.score(SMILES).cpu(), expected, atol=1e-5)
    frame = read_molecules(SMILES)
    assert torch.allclose(adapter.score(frame).cpu(), expected, atol=1e-5)
    mols = [Chem.MolFromSmiles(s) for s in SMILES]
    assert torch.allclose(adapter.score(mols).cpu(), expected, atol=1e-5)
    assert adapter.kinds(129) == ["binary"] * 128 + ["continuous"]
    assert adapter.names(129)[-1] == "MolLogP"
    with pytest.raises(ValueError, match="record 'mol1'"):
        adapter.score(["CCO", "C1CC("])


def test_feature_model_kinds_and_bounds_without_featurizer():
    adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, kinds="binary", device="cpu")
    lower, upper = adapter.bounds(3)
    assert lower.tolist() == [0, 0, 0] and upper.tolist() == [1, 1, 1]
    adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, kinds=["binary", "continuous", "integer"],
                           bounds=(torch.tensor([0.0, -1, 0]), torch.tensor([1.0, 1, 5])), device="cpu")
    assert adapter.bounds(3)[1].tolist() == [1, 1, 5]
    table = pd.DataFrame({"f0": [1.0], "f1": [0.5], "f2": [2.0]})
    assert adapter.encode(table).tolist() == [[1.0, 0.5, 2.0]]


def test_feature_model_bounds_of_the_wrong_shape():
    adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, bounds=(torch.zeros(2), torch.ones(2)), device="cpu")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        adapter.bounds(3)


def test_molecule_table_with_nan_errors_and_missing_mols():
    import numpy as np

    frame = pd.DataFrame({"id": ["a", "b"], "mol": [Chem.MolFromSmiles("CCO"), None], "error": [np.nan, np.nan]})
    X, prov = Morgan(radius=1, n_bits=16).featurize(frame)
    assert prov.ok.tolist() == [True, False]
    assert prov.errors[1] == "record 'b': no molecule"


def test_molecule_tables_with_repeated_ids_are_made_unique():
    from probekit import ProbekitWarning
    from probekit.encode.mol import molecule_frame

    # read_molecules names each list mol0, mol1, ...: joined, the names repeat
    joined = pd.concat([read_molecules(["CCO", "C1CC("]), read_molecules(["CCC", "CCN"])], ignore_index=True)
    with pytest.warns(ProbekitWarning, match="'mol0' -> 'mol0#0', 'mol0#1'; 'mol1' -> 'mol1#0', 'mol1#1'"):
        frame = molecule_frame(joined)
    assert frame["id"].tolist() == ["mol0#0", "mol1#0", "mol0#1", "mol1#1"]
    assert frame["error"][1].startswith("record 'mol1#0': ")  # the error names the renamed record
    with pytest.warns(ProbekitWarning):
        X, prov = Concat(Morgan(radius=1, n_bits=16), Descriptors(["MolLogP"])).featurize(joined)
    assert prov.ids == frame["id"].tolist() and prov.ok.tolist() == [True, False, True, True]
    table = pd.DataFrame({"id": ["p", "p"], "x": [1.0, 2.0]})
    with pytest.warns(ProbekitWarning, match="'p' -> 'p#0', 'p#1'"):
        assert Matrix(["x"]).featurize(table)[1].ids == ["p#0", "p#1"]


def test_feature_model_dataframe_uses_numeric_columns():
    adapter = FeatureModel(torch.nn.Linear(2, 1), output=0, device="cpu")
    table = pd.DataFrame({"id": ["p"], "x": [1.0], "y": [2.0]})
    assert adapter.encode(table).tolist() == [[1.0, 2.0]]


# molecules that exercise the count thresholds of the MACCS keys (several CH3, O, N, rings, halogens),
# the keys without a SMARTS (aromatic rings, fragments) and unusual atoms
MACCS_PANEL = [
    "CCO", "OCCO", "CC(C)C", "CC(C)(C)C", "CC(C)CC(C)C", "OC(O)C(O)CO", "CN1CCC[C@H]1c1cccnc1", "CC(=O)Nc1ccc(O)cc1",
    "c1ccccc1-c1ccccc1", "c1ccc2ccccc2c1", "c1ccc2cc3ccccc3cc2c1", "[Na+].CC(=O)[O-]", "[Cl-].[NH4+]", "[13CH4]",
    "FC(F)(F)C(Cl)(Cl)Br", "OP(=O)(O)OCC", "CS(=O)(=O)NC", "C#N", "C[Si](C)(C)C", "CI", "NC(=N)NCCC(N)C(=O)O",
    "O=C1CCCCC1", "C1CC1C1CC1", "C1CCC2(CC1)CCCC2", "OC1=CC=CC=C1", "CCOC(=O)C=CC(=O)OCC", "N#Cc1ccc(C#N)cc1",
    "CC12CCC3C(CCC4=CC(=O)CCC34C)C1CCC2O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OC(=O)CC(O)(CC(O)=O)C(O)=O",
]  # fmt: skip


def test_maccs_environments_are_empty_exactly_when_the_key_is_unset():
    from probekit.mol_demo import load_chembl_affinities

    smiles = MACCS_PANEL + load_chembl_affinities()["smiles"].tolist()[::40]
    m = MACCS()
    X, prov = m.featurize(smiles)
    assert prov.ok.all()
    for i, s in enumerate(smiles):
        keys = MACCSkeys.GenMACCSKeys(Chem.MolFromSmiles(s))
        for key in range(167):
            assert bool(prov.environments(i, key)) == bool(keys[key]), (s, key, MACCSkeys.smartsPatts.get(key))
    # without the recorded provenance the key is recomputed, with the same answer
    mol = prov.mols[0]
    assert [m.environments(mol, key) for key in range(167)] == [prov.environments(0, key) for key in range(167)]


def test_maccs_count_keys_need_more_matches_than_their_count():
    m = MACCS()
    ethanol, isobutane = Chem.MolFromSmiles("CCO"), Chem.MolFromSmiles("CC(C)C")
    assert m.environments(ethanol, 141) == []  # key 141: more than two [CH3]; ethanol has one
    assert sorted(e["atoms"] for e in m.environments(isobutane, 141)) == [(0,), (2,), (3,)]
    biphenyl = Chem.MolFromSmiles("c1ccccc1-c1ccccc1")  # key 125: more than one aromatic ring
    assert sorted(e["atoms"] for e in m.environments(biphenyl, 125)) == [tuple(range(6)), tuple(range(6, 12))]
    salt = Chem.MolFromSmiles("[Na+].CC(=O)[O-]")  # key 166: more than one fragment
    assert sorted(e["smiles"] for e in m.environments(salt, 166)) == ["CC(=O)[O-]", "[Na+]"]
    assert m.environments(ethanol, 166) == [] and m.environments(ethanol, 125) == []


def test_environments_of_a_salt_write_nothing_to_stderr(capfd):
    fp = Morgan(radius=1, n_bits=64)
    X, prov = fp.featurize(["[Na+].CC(=O)[O-]"])
    capfd.readouterr()
    table = prov.frame()
    assert capfd.readouterr().err == ""
    assert set(table["index"]) == set(torch.nonzero(X[0]).flatten().tolist())
    for env in table.itertuples():  # every environment still gets the SMILES of its own atoms
        assert Chem.MolFromSmiles(env.smiles, sanitize=False).GetNumAtoms() == len(env.atoms)
    assert "[Na+]" in set(table["smiles"])


# ------------------------------------------------------------------ the reference set of fit()
REFERENCE = ["CCO", "c1ccccc1O", "not a smiles", "CC(=O)Nc1ccc(O)cc1", "OCC(O)CO", "CCN(CC)CC", "c1ccncc1",
             "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "CC(=O)Oc1ccccc1C(=O)O", "ClCCCl", "Clc1ccccc1", "CCCCCCCC"] * 6  # fmt: skip


def test_fit_keeps_the_reference_set_of_the_molecules_that_featurize():
    d = Descriptors(["MolWt", "NumHDonors"]).fit(REFERENCE[:12])
    good = [s for s in REFERENCE[:12] if s != "not a smiles"]
    assert d.reference.smiles == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in good]
    assert d.reference.index.tolist() == [0, 1]
    assert torch.equal(d.reference.features, d.transform(good))
    assert Morgan(radius=1, n_bits=32).reference is None  # nothing before fit


def _occurrences(fp, smiles, bit):
    """Brute force: the environments setting ``bit``, molecule by molecule in order, the first 50 counted."""
    from collections import Counter

    from probekit.chem import bit_environments
    from probekit.encode.mol import MAX_OCCURRENCES

    seen = [e["smiles"] for s in smiles if Chem.MolFromSmiles(s) for e in bit_environments(Chem.MolFromSmiles(s), bit, fp)]
    return Counter(seen[:MAX_OCCURRENCES]), len(seen[:MAX_OCCURRENCES])


def test_morgan_describes_a_bit_by_its_most_common_environment_in_the_reference_set():
    fp = Morgan(radius=2, n_bits=128).fit(REFERENCE)
    bits = sorted({b for s in REFERENCE if Chem.MolFromSmiles(s) for b in fp.transform([s])[0].nonzero().flatten().tolist()})
    collided = 0
    for bit in bits:
        counts, total = _occurrences(fp, REFERENCE, bit)
        described = fp.describe(bit)
        assert described["source"] == "reference set" and described["total"] == total
        assert described["count"] == counts[described["smiles"]] == max(counts.values())
        assert described["n_environments"] == len(counts)
        collided += len(counts) > 1
    assert collided  # 128 bits: some stand for several environments, and the most common one is named
    unset = next(b for b in range(128) if b not in bits)
    assert fp.describe(unset) is None and Morgan(radius=2, n_bits=128).describe(bits[0]) is None


def test_concat_fit_gives_each_part_its_reference():
    both = Concat(Morgan(radius=1, n_bits=64), Descriptors(["MolWt", "TPSA"]), MACCS()).fit(REFERENCE[:12])
    assert both.reference.index.tolist() == [64, 65]
    assert torch.equal(both.reference.features, Descriptors(["MolWt", "TPSA"]).transform([s for s in REFERENCE[:12] if s != "not a smiles"]))
    lower, upper = both.bounds
    assert float(lower[64]) == pytest.approx(46.069, abs=1e-3) and float(upper[64]) > 200
    bit = int(both.transform(["Clc1ccccc1"])[0, :64].nonzero()[0])
    assert both.describe(bit) == both.featurizers[0].describe(bit) is not None
    assert both.describe(64) is None  # a descriptor is no substructure
    assert both.describe(66 + 141)["smarts"] == "[CH3]"  # MACCS key 141: its definition


def test_maccs_describes_keys_by_their_definition():
    fp = MACCS()
    assert fp.describe(141) == {"smiles": None, "smarts": "[CH3]", "count": 2, "source": "key definition"}
    assert fp.describe(125)["text"].startswith("aromatic rings")
    assert fp.describe(0) is None
