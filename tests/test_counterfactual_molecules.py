"""Counterfactual molecules: known answers, exhaustive checks, reproducibility and the result type."""

import math

import pytest
import torch

pytest.importorskip("rdkit")
pytest.importorskip("selfies")

from rdkit import Chem  # noqa: E402

from probekit import ProbekitWarning, goals  # noqa: E402
from probekit.molmodel import MoleculeModel  # noqa: E402
from probekit.molmodel.mutate import single_edits  # noqa: E402
from probekit.molmodel.similarity import tanimoto  # noqa: E402
from probekit.search import counterfactual_molecules  # noqa: E402
from probekit.search.counterfactual import CounterfactualResult  # noqa: E402

PHENOL = Chem.MolFromSmarts("[OX2H][c]")
PHENOLS = ["Oc1ccc(CC(=O)O)cc1", "CC(=O)Nc1ccc(O)cc1", "CC(C)NCC(O)c1ccc(O)c(O)c1", "COc1cc(C=O)ccc1O"]


def _phenols(smiles):
    return len(Chem.MolFromSmiles(smiles).GetSubstructMatches(PHENOL))


def _count(symbols):
    def model(smiles):
        return [float(sum(a.GetSymbol() in symbols for a in Chem.MolFromSmiles(s).GetAtoms())) for s in smiles]

    return model


class Counting:
    """A SMILES model that records how often, and on how many molecules, it is called."""

    def __init__(self, fn):
        self.fn, self.calls, self.molecules = fn, 0, 0

    def __call__(self, smiles):
        self.calls += 1
        self.molecules += len(smiles)
        return torch.tensor(self.fn(smiles), dtype=torch.float64)


def _sanitises(smiles):
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    Chem.SanitizeMol(mol)
    return True


def test_a_phenol_counter_gets_one_edit_that_removes_exactly_one_phenol():
    adapter = MoleculeModel(lambda s: [_phenols(x) for x in s], kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, PHENOLS, goal=goals.decrease(by=1.0), n_candidates=60, n_random=20)
    assert result.success.all() and (result.n_edits == 1).all()
    for i, smiles in enumerate(PHENOLS):
        original = Chem.MolFromSmiles(smiles)
        for found, edits, sim in zip(result.counterfactuals[i], result.edits[i], result.similarities[i]):
            mol = Chem.MolFromSmiles(found)
            assert _sanitises(found)
            assert _phenols(found) == _phenols(smiles) - 1
            assert abs(mol.GetNumHeavyAtoms() - original.GetNumHeavyAtoms()) <= 1
            assert len(edits) == 1 and sim >= 0.5
            assert sim == pytest.approx(float(tanimoto(smiles, [found])[0]))
        assert result.similarities[i] == sorted(result.similarities[i], reverse=True)
        assert len(set(result.counterfactuals[i])) == len(result.counterfactuals[i]) == 3


def test_every_returned_molecule_sanitises_and_errors_become_rows():
    adapter = MoleculeModel(_count("NO"), kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, ["C1CC", "CC(=O)Nc1ccc(O)cc1", "", "CCN"], goal="decrease:1",
                                      n_candidates=50, n_random=10)
    frame = result.to_frame()
    assert frame["error"].notna().tolist() == [True, False, False, False, True, False, False, False]
    assert "C1CC" in result.errors[0] and result.errors[2] == "record 2: empty SMILES"
    assert result.success.tolist() == [False, True, False, True]
    assert all(_sanitises(s) for s in frame["counterfactual"].dropna())
    assert result.evaluations[[0, 2]].tolist() == [0, 0] and (result.evaluations[[1, 3]] > 0).all()


def test_the_fewest_edits_of_a_nitrogen_counter_are_the_hand_counted_ones():
    adapter = MoleculeModel(_count("N"), kind="smiles", device="cpu")
    molecules = ["NCCN", "NCC(N)CN", "CCN"]
    result = counterfactual_molecules(adapter, molecules, goal=goals.decrease(by=2.0), operators=["atom"],
                                      n_candidates=None, max_edits=3, n_random=0)
    assert result.n_edits.tolist() == [2, 2, 1]
    assert result.success.tolist() == [True, True, False]
    for i in range(2):
        assert all(_count("N")([s])[0] <= _count("N")([molecules[i]])[0] - 2 for s in result.counterfactuals[i])
    assert math.isnan(result.p_value[0]) and result.random_deltas.shape == (3, 0)
    shallow = counterfactual_molecules(adapter, ["NCC(N)CN"], goal="decrease:3", operators=["atom"], max_edits=2,
                                       n_random=0)
    assert not shallow.success[0] and shallow.n_edits[0] >= 1
    deep = counterfactual_molecules(adapter, ["NCC(N)CN"], goal="decrease:3", operators=["atom"], max_edits=3,
                                    n_random=0)
    assert deep.success[0] and deep.n_edits[0] == 3


@pytest.mark.parametrize("goal", [goals.decrease(by=1.0), goals.decrease(by=2.0)])
def test_the_fewest_edit_claim_agrees_with_every_single_edit(goal):
    model = _count("NO")
    adapter = MoleculeModel(model, kind="smiles", device="cpu")
    molecule = "CC(N)O"
    result = counterfactual_molecules(adapter, [molecule], goal=goal, n_candidates=None, max_edits=2, n_random=0)
    neighbours = single_edits(molecule)
    scores = model([c.smiles for c in neighbours])
    wins = [c.smiles for c, s in zip(neighbours, scores) if s <= model([molecule])[0] - goal.value]
    if wins:
        sims = tanimoto(molecule, wins)
        best = max(sims)
        assert result.n_edits[0] == 1 and result.success[0]
        assert result.similarity[0] == pytest.approx(best)
        assert set(result.counterfactuals[0]) <= set(wins)
        assert result.best[0] == min(w for w, s in zip(wins, sims) if s == best)
    else:
        assert not (result.success[0] and result.n_edits[0] == 1)
    assert int(result.evaluations[0]) >= len(neighbours)


def test_the_same_seed_gives_the_same_molecules_in_any_batch_split_and_rerun():
    model = Counting(lambda s: [_count("NO")([x])[0] + 0.1 * len(x) for x in s])
    adapter = MoleculeModel(model, kind="smiles", device="cpu")
    molecules = ["CC(=O)Nc1ccc(O)cc1", "OCCN", "Oc1ccc(CC(=O)O)cc1"]
    options = {"goal": goals.decrease(by=1.5), "n_candidates": 25, "n_random": 8, "max_edits": 2, "seed": 3}
    runs = [counterfactual_molecules(adapter, molecules, batch_size=size, **options) for size in (1, 7, 256)]
    runs.append(counterfactual_molecules(adapter, molecules, **options))
    first = runs[0].to_frame()
    for run in runs[1:]:
        assert run.to_frame().equals(first)
        assert torch.equal(run.random_deltas.nan_to_num(-9), runs[0].random_deltas.nan_to_num(-9))
        assert torch.equal(run.evaluations, runs[0].evaluations)
    alone = counterfactual_molecules(adapter, molecules[1:2], **options)
    assert alone.counterfactuals[0] == runs[0].counterfactuals[1] and alone.edits[0] == runs[0].edits[1]
    other = counterfactual_molecules(adapter, molecules, **{**options, "seed": 4})
    assert other.params["seed"] == 4 and runs[0].params["seed"] == 3


def test_each_level_is_scored_in_one_call_and_calls_are_counted():
    model = Counting(_count("O"))
    adapter = MoleculeModel(model, kind="smiles", device="cpu", batch_size=10_000)
    result = counterfactual_molecules(adapter, ["OCC(O)CO", "OCCO"], goal="decrease:2", n_candidates=30, n_random=12,
                                      max_edits=2, operators=["atom", "mmpa"])
    scored = int(result.evaluations.sum()) + int(result.params["baseline_evaluations"].sum()) + 2
    assert adapter.n_calls == result.params["model_calls"] == scored
    assert model.calls <= 1 + 2 + 2 + 1  # references, one per level, one per baseline size, one determinism check
    assert (result.evaluations <= 2 * 30).all()


def test_a_goal_the_input_already_reaches_needs_no_edit():
    adapter = MoleculeModel(_count("O"), kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, ["CCO"], goal=goals.below(5.0), n_random=5)
    assert result.success.tolist() == [True] and result.n_edits.tolist() == [0] and result.best == [None]
    assert int(result.evaluations[0]) == 0


def test_the_random_baseline_ranks_a_targeted_change_above_random_walks():
    adapter = MoleculeModel(lambda s: [3.0 * _phenols(x) for x in s], kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, ["CC(=O)Nc1ccc(O)cc1"], n_candidates=40, n_random=40)
    deltas = result.random_deltas[0]
    assert deltas.shape == (40,) and torch.isfinite(deltas).sum() >= 20
    assert result.ratio[0] > 1 and 0 < result.p_value[0] < 1
    stats = result.baseline().compare(torch.tensor([result.score_after[0] - result.score_before[0]]))
    assert stats["p_value"][0] == pytest.approx(float(result.p_value[0]))


def test_result_round_trips_and_reads_as_tables(tmp_path):
    adapter = MoleculeModel(lambda s: [_phenols(x) for x in s], kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, ["Oc1ccc(CC(=O)O)cc1", "not smiles"], n_candidates=30, n_random=10,
                                      ids=["hpa", "bad"], operators=["atom", "mmpa"])
    path = tmp_path / "cf.pt"
    result.save(path)
    back = CounterfactualResult.load(path)
    assert back.to_frame().equals(result.to_frame())
    assert back.counterfactuals == result.counterfactuals and back.edits == result.edits
    assert list(result.to_frame().columns) == [
        "id", "smiles", "rank", "counterfactual", "edits", "n_edits", "similarity", "score_before", "score_after",
        "delta", "success", "sa_score", "p_value", "error",
    ]
    summary = result.summary()
    assert summary["id"].tolist() == ["hpa", "bad"] and summary["evaluations"].tolist()[1] == 0
    assert "success=1/2" in repr(result)
    assert all(1 <= s <= 10 or math.isnan(s) for s in result.sa_scores[0])


def test_bad_settings_are_refused():
    adapter = MoleculeModel(_count("O"), kind="smiles", device="cpu")
    with pytest.raises(ValueError, match="operators"):
        counterfactual_molecules(adapter, ["CCO"], operators=["swap"])
    with pytest.raises(ValueError, match="beam_width"):
        counterfactual_molecules(adapter, ["CCO"], beam_width=0)
    with pytest.raises(ValueError, match="unknown similarity"):
        counterfactual_molecules(adapter, ["CCO"], similarity="dice")


def test_an_input_the_model_fails_on_is_an_error_row_and_the_rest_go_on():
    def model(smiles):
        if any("Br" in s for s in smiles):
            raise ValueError("no bromine, please")
        return [_phenols(s) for s in smiles]

    adapter = MoleculeModel(model, kind="smiles", device="cpu")
    with pytest.warns(ProbekitWarning, match="no finite score for 3 of 40 candidate"):
        result = counterfactual_molecules(adapter, ["Brc1ccc(O)cc1", "Oc1ccc(CC(=O)O)cc1"], n_candidates=40,
                                          n_random=5, operators=["atom", "mmpa"])
    assert "no bromine, please" in result.errors[0] and result.errors[1] is None
    assert result.success.tolist() == [False, True]
    assert not any("Br" in s for s in result.counterfactuals[1])


def test_a_read_molecules_frame_gives_its_ids_and_error_rows():
    from probekit import read_molecules

    frame = read_molecules({"hpa": "Oc1ccc(CC(=O)O)cc1", "bad": "C1CC"})
    adapter = MoleculeModel(lambda s: [_phenols(x) for x in s], kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, frame, n_candidates=20, n_random=0, operators=["atom"])
    assert result.ids == ["hpa", "bad"] and result.smiles == ["O=C(O)Cc1ccc(O)cc1", "C1CC"]
    assert result.errors[0] is None and "bad" in result.errors[1]
    single = counterfactual_molecules(adapter, Chem.MolFromSmiles("Oc1ccccc1"), n_candidates=20, n_random=0,
                                      operators=["atom"])
    assert single.success.tolist() == [True] and single.smiles == ["Oc1ccccc1"]


def test_a_similarity_floor_keeps_every_candidate_close():
    adapter = MoleculeModel(_count("NO"), kind="smiles", device="cpu")
    result = counterfactual_molecules(adapter, ["CC(=O)Nc1ccc(O)cc1"], goal="decrease:2", min_similarity=0.6,
                                      n_candidates=40, n_random=0, max_edits=2)
    assert all(s >= 0.6 for s in result.similarities[0])
    free = counterfactual_molecules(adapter, ["CC(=O)Nc1ccc(O)cc1"], goal="decrease:2", n_candidates=40, n_random=0,
                                    max_edits=2)
    assert int(result.evaluations[0]) <= int(free.evaluations[0])
