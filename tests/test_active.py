"""Active learning: rankings where disagreement and fragility are known by construction, and the diversity rule."""

import itertools

import numpy as np
import pytest
import torch

from probekit import FeatureModel, SequenceModel, outputs
from probekit.active import acquisition, next_batch, select_diverse
from probekit.ensemble import Ensemble
from probekit.testing import random_sequences


def _count_a(threshold):
    """Margin ``#A - threshold``: its sign flips after ceil(|#A - threshold|) substitutions to or from A."""
    return SequenceModel(lambda x, t=threshold: (x[:, 0].sum(dim=-1) - t)[:, None], output=outputs.margin(0), device="cpu")


def _with_a(count, *, length=12, seed=0):
    rng = np.random.default_rng(seed)
    letters = ["A"] * count + list(rng.choice(list("CGT"), size=length - count))
    rng.shuffle(letters)
    return "".join(letters)


# A counts and, for the ensemble of thresholds 4.5, 5.5, 6.5 (mean margin #A - 5.5):
# vote disagreement, and the fewest edits that flip the mean's sign
COUNTS = [5, 6, 7, 8, 3]
VOTES = [1 / 3, 1 / 3, 0.0, 0.0, 0.0]
EDITS = [1, 1, 2, 3, 3]


def _ensemble():
    return Ensemble([_count_a(t) for t in (4.5, 5.5, 6.5)])


def test_disagreement_and_fragility_known_by_construction():
    candidates = [_with_a(c, seed=i) for i, c in enumerate(COUNTS)]
    table = acquisition(_ensemble(), candidates, by="combined", max_edits=3, method="exhaustive").sort_values("index")
    assert np.allclose(table["vote_disagreement"], VOTES)
    assert np.allclose(table["disagreement"], VOTES)  # a margin votes by its sign
    assert np.allclose(table["spread"], np.std([-1.0, 0.0, 1.0]))  # thresholds one apart: the same spread everywhere
    assert table["n_edits"].tolist() == EDITS
    assert np.allclose(table["fragility"], [1 / e for e in EDITS])
    d, f = np.array(VOTES), 1 / np.array(EDITS)
    expected = 0.5 * (d - d.min()) / (d.max() - d.min()) + 0.5 * (f - f.min()) / (f.max() - f.min())
    assert np.allclose(table["acquisition"], expected)
    ranked = acquisition(_ensemble(), candidates, by="combined", max_edits=3, method="exhaustive")
    assert ranked["index"].tolist()[:2] == [0, 1] and ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    by_fragility = acquisition(_ensemble(), candidates, by="fragility", max_edits=3, method="exhaustive")
    assert by_fragility["index"].tolist() == [0, 1, 2, 3, 4]  # ties keep the candidates' order


def test_spread_ranking_of_a_regression_ensemble():
    members = [FeatureModel(lambda x, s=s: s * x, output=outputs.value(0), device="cpu") for s in (1.0, 2.0, 4.0)]
    X = torch.tensor([[0.5], [-3.0], [2.0], [0.0]])
    table = acquisition(Ensemble(members), X, by="disagreement")
    assert table["index"].tolist() == [1, 2, 0, 3]
    assert np.allclose(table["spread"], np.abs([-3.0, 2.0, 0.5, 0.0]) * np.std([1.0, 2.0, 4.0]))


def test_perturbation_fragility_of_a_linear_ensemble():
    w = torch.tensor([[1.0, -2.0, 0.5]])
    members = [FeatureModel(lambda x, b=b: x @ w.T + b, output=outputs.margin(0), device="cpu") for b in (-0.1, 0.1)]
    X = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    table = acquisition(Ensemble(members), X, by="fragility", eps_max=5.0).sort_values("index")
    # the smallest L-inf change that flips w.x is |w.x| / ||w||_1
    assert np.allclose(table["min_norm"], [1.0 / 3.5, 0.2 / 3.5, 2.0 / 3.5], rtol=1e-2)
    assert table.sort_values("rank")["index"].tolist() == [1, 0, 2]


def _brute_force_ok(picks, distance, limit, *, at_least):
    for a, b in itertools.combinations(picks, 2):
        value = distance(a, b)
        if (value < limit) if at_least else (value > limit):
            return False
    return True


def test_next_batch_keeps_dna_picks_apart():
    sequences = random_sequences(30, 10, seed=2)
    sequences += [s[:-2] + "AA" for s in sequences[:10]]  # near-copies that the rule must keep out
    ensemble = Ensemble([SequenceModel(lambda x, k=k: x[:, k].sum(dim=-1, keepdim=True), output=outputs.value(0), device="cpu")
                         for k in range(4)])  # fmt: skip
    picks = next_batch(ensemble, sequences, size=8, by="disagreement", min_distance=6)
    chosen = picks["input"].tolist()
    assert picks["pick"].tolist() == list(range(1, len(picks) + 1)) and 1 <= len(picks) <= 8
    hamming = lambda a, b: sum(x != y for x, y in zip(a, b))  # noqa: E731
    assert _brute_force_ok(chosen, hamming, 6, at_least=True)
    # greedy down the ranking: every better-ranked candidate left out is too close to an earlier pick
    ranking = acquisition(ensemble, sequences, by="disagreement")
    last = ranking.index[ranking["index"] == picks["index"].iloc[-1]][0]
    for row in ranking.iloc[:last].itertuples():
        if row.index not in set(picks["index"]):
            assert min(hamming(row.input, c) for c in chosen) < 6


def test_next_batch_keeps_molecule_picks_dissimilar():
    from probekit.encode.mol import Morgan
    from probekit.molmodel.similarity import tanimoto

    smiles = ["CCO", "CCCO", "CCCCO", "c1ccccc1O", "c1ccccc1N", "c1ccccc1CO", "CC(=O)O", "CC(=O)N", "CCN", "CCCN"]
    fp = Morgan(radius=2, n_bits=64)
    members = [FeatureModel(torch.nn.Linear(64, 1), featurizer=fp, output=outputs.margin(0), device="cpu") for _ in range(3)]
    picks = next_batch(Ensemble(members), smiles, size=5, by="combined", max_edits=1, max_similarity=0.3)
    chosen = picks["input"].tolist()
    assert len(chosen) >= 2
    similarity = lambda a, b: float(tanimoto(a, [b])[0])  # noqa: E731
    assert _brute_force_ok(chosen, similarity, 0.3, at_least=False)
    assert {"spread", "vote_disagreement", "n_edits", "fragility", "acquisition"} <= set(picks.columns)


def test_select_diverse_on_tensors_matches_brute_force():
    X = (torch.rand(40, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    picks = select_diverse(X, list(range(40)), size=10, max_similarity=0.4)

    def bits_tanimoto(a, b):
        x, y = X[a] > 0.5, X[b] > 0.5
        return float((x & y).sum()) / max(float((x | y).sum()), 1.0)

    assert _brute_force_ok(picks, bits_tanimoto, 0.4, at_least=False)
    assert picks[0] == 0


def test_bad_requests_give_clear_errors():
    adapter = _count_a(4.5)
    with pytest.raises(TypeError, match="needs an Ensemble"):
        acquisition(adapter, ["AAAA"], by="disagreement")
    with pytest.raises(ValueError, match="by must be one of"):
        acquisition(adapter, ["AAAA"], by="entropy")
    with pytest.raises(ValueError, match="not both"):
        select_diverse(["AAAA", "CCCC"], [0, 1], size=1, min_distance=1, max_similarity=0.5)
    with pytest.raises(ValueError, match="one length"):
        select_diverse(["AAAA", "CCC"], [0, 1], size=2, min_distance=1)
