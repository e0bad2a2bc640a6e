"""Motif experiments against explicit forward passes and hand-built rules."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from probekit import SequenceModel
from probekit.discover import ablation_effect, insertion_effect, motif_sites, spacing_grid
from probekit.discover.experiments import background_tensor
from probekit.discover.results import MotifEffects, SpacingResult
from probekit.encode.dna import decode, one_hot
from probekit.testing import MotifCounter, ToyConv, random_sequences

AP1 = "TGACTCA"


def _rc(site: str) -> str:
    return site.translate(str.maketrans("ACGT", "TGCA"))[::-1]


class PairRule(nn.Module):
    """1 for each A site followed, ``gap`` bases after its end, by a B site (both forward); nothing else counts."""

    def __init__(self, a: str, b: str, gap: int):
        super().__init__()
        self.register_buffer("a", one_hot([a])[0])
        self.register_buffer("b", one_hot([b])[0])
        self.shift = len(a) + gap

    def forward(self, x):
        hit_a = (torch.nn.functional.conv1d(x, self.a[None]) > self.a.shape[1] - 0.5).float()[:, 0]
        hit_b = (torch.nn.functional.conv1d(x, self.b[None]) > self.b.shape[1] - 0.5).float()[:, 0]
        n = min(hit_a.shape[1], hit_b.shape[1] - self.shift)
        return (hit_a[:, :n] * hit_b[:, self.shift : self.shift + n]).sum(dim=1, keepdim=True)


@pytest.fixture
def toy():
    return SequenceModel(ToyConv(), output=1, device="cpu", batch_size=64)


def test_insertion_effects_equal_explicit_forward_passes(toy):
    seqs = random_sequences(6, 40, seed=2)
    result = insertion_effect(toy, AP1, backgrounds=seqs, n_backgrounds=3, positions=[5, 20], n_random=7, seed=4)
    X, _ = background_tensor(toy, seqs, n_backgrounds=3, seed=4)
    backgrounds = decode(X)
    model = ToyConv().eval()

    def score(texts):
        with torch.no_grad():
            return model(one_hot(texts))[:, 1]

    expected = []
    for bg in backgrounds:
        for p in (5, 20):
            for site in (AP1, _rc(AP1)):
                edited = bg[:p] + site + bg[p + len(site) :]
                expected.append(float(score([edited]) - score([bg])))
    torch.testing.assert_close(result.effects[0], torch.tensor(expected), atol=1e-5, rtol=1e-5)
    # the random k-mers are drawn from the seed: the same draws, at the same places
    codes = torch.randint(0, 4, (7, 7), generator=torch.Generator().manual_seed(4))
    kmers = ["".join("ACGT"[c] for c in row) for row in codes.tolist()]
    means = []
    for kmer in kmers:
        deltas = [
            float(score([bg[:p] + s + bg[p + 7 :]]) - score([bg])) for bg in backgrounds for p in (5, 20) for s in (kmer, _rc(kmer))
        ]
        means.append(np.mean(deltas))
    torch.testing.assert_close(result.random[0], torch.tensor(means, dtype=torch.float32), atol=1e-5, rtol=1e-5)


def test_insertion_of_the_counted_motif_is_significant():
    adapter = SequenceModel(MotifCounter(AP1), output=0, device="cpu")
    seqs = random_sequences(20, 60, seed=1)
    table = insertion_effect(adapter, [AP1, "GATAAG"], backgrounds=seqs, orientations=("+",), n_random=199).to_frame()
    ap1 = table.iloc[0]
    assert ap1["effect"] == pytest.approx(1.0, abs=0.1)
    assert ap1["p_value"] == pytest.approx(1 / 200)
    assert ap1["ratio"] > 50
    assert table.iloc[1]["p_value"] > 0.05


def test_insertion_is_one_batched_call_per_motif(toy, monkeypatch):
    calls = []
    original = SequenceModel.score

    def counted(self, X):
        calls.append(X.shape[0])
        return original(self, X)

    monkeypatch.setattr(SequenceModel, "score", counted)
    insertion_effect(toy, [AP1, "GATA"], backgrounds=random_sequences(4, 30), n_backgrounds=5, positions=[0, 10, 20], n_random=9)
    assert calls == [5, 5 * 3 * 2 * 10, 5 * 3 * 2 * 10]


def test_insertion_bad_motifs_are_error_rows(toy):
    seqs = random_sequences(5, 20)
    table = insertion_effect(toy, [AP1, "MA9999.1", "A" * 25, "ACGZ"], backgrounds=seqs, n_random=5).to_frame()
    assert table["error"].iloc[0] is None and np.isfinite(table["effect"].iloc[0])
    assert "MA9999.1" in table["error"].iloc[1]
    assert "does not fit" in table["error"].iloc[2]
    assert "'Z'" in table["error"].iloc[3]
    assert table["effect"].iloc[1:].isna().all()


def test_jaspar_ids_give_their_consensus():
    pytest.importorskip("pyjaspar")
    label, site, error = motif_sites("MA0035.5")[0]
    assert error is None and "GATA1" in label and site == "CTAATCT"


def test_insertion_is_reproducible_and_mixed_backgrounds_are_reported(toy):
    seqs = random_sequences(5, 30) + ["ACGT"]
    with pytest.warns(UserWarning, match="left out"):
        a = insertion_effect(toy, AP1, backgrounds=seqs, n_random=10, seed=3)
    with pytest.warns(UserWarning, match="left out"):
        b = insertion_effect(toy, AP1, backgrounds=seqs, n_random=10, seed=3)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    assert a.params["background_errors"] == 1


def test_ablation_of_counted_instances():
    adapter = SequenceModel(MotifCounter(AP1), output=0, device="cpu")
    seqs = random_sequences(8, 50, seed=5)
    seqs = [s[:20] + AP1 + s[27:] for s in seqs]
    hits = pd.DataFrame({"id": [f"seq{i}" for i in range(8)] + ["nope", "seq0"], "start": [20] * 8 + [0, 45], "end": [27] * 8 + [7, 55]})
    result = ablation_effect(adapter, seqs, hits, method="random", n_random=49, seed=1)
    table = result.to_frame()
    good = table.iloc[:8]
    assert (good["effect"] == -1).all()
    assert (good["random_mean"].abs() < 0.2).all()
    assert (good["p_value"] <= 0.05).all()
    assert table["error"].iloc[8] == "no sequence 'nope'"
    assert "not inside" in table["error"].iloc[9]
    assert table["effect"].iloc[8:].isna().all()
    # a dinucleotide shuffle of a 7-mer sometimes gives the 7-mer back: a loss, but not always the whole count
    shuffled = ablation_effect(adapter, seqs, hits.iloc[:8], n_draws=10, n_random=9, seed=1).to_frame()
    assert (shuffled["effect"] < -0.2).all() and (shuffled["effect"] >= -1).all()


def test_spacing_grid_finds_the_hand_built_rule():
    adapter = SequenceModel(PairRule("GATAAG", "CACGTG", gap=3), output=0, device="cpu")
    seqs = random_sequences(10, 60, seed=7)
    grid = spacing_grid(adapter, "GATAAG", "CACGTG", backgrounds=seqs, distances=range(0, 7), n_backgrounds=8)
    table = grid.to_frame()
    rule = (table["distance"] == 3) & (table["orientation"] == "+/+")
    # CACGTG is its own reverse complement, so "+/-" keeps the rule too
    rule |= (table["distance"] == 3) & (table["orientation"] == "+/-")
    assert (table.loc[rule, "excess"] == 1).all()
    assert (table.loc[~rule, "excess"].abs() < 1e-6).all()
    assert (table["first"].abs() < 1e-6).all() and (table["second"].abs() < 1e-6).all()
    assert (table.loc[rule, "excess_p"] < 0.01).all()
    assert len(table) == 7 * 4


def test_spacing_grid_bad_inputs():
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    seqs = random_sequences(3, 20)
    with pytest.raises(ValueError, match="do not fit"):
        spacing_grid(adapter, "GATAAG", "CACGTG", backgrounds=seqs, distances=[0, 15])
    with pytest.raises(ValueError, match="'X'"):
        spacing_grid(adapter, "GATXAG", "CACGTG", backgrounds=seqs)
    with pytest.raises(ValueError, match="orientations"):
        spacing_grid(adapter, "GATAAG", "CACGTG", backgrounds=seqs, orientations=["+"])


def test_effect_results_save_and_load(toy, tmp_path):
    result = insertion_effect(toy, [AP1, "MA9999.1"], backgrounds=random_sequences(3, 20), n_random=5)
    result.save(tmp_path / "e.pt")
    again = MotifEffects.load(tmp_path / "e.pt")
    pd.testing.assert_frame_equal(again.to_frame(), result.to_frame())
    grid = spacing_grid(toy, "GATA", "CACG", backgrounds=random_sequences(3, 30), distances=[0, 1])
    grid.save(tmp_path / "g.pt")
    pd.testing.assert_frame_equal(SpacingResult.load(tmp_path / "g.pt").to_frame(), grid.to_frame())


def test_insertion_in_chunks_equals_one_call(toy, monkeypatch):
    import probekit.discover.experiments as experiments

    seqs = random_sequences(4, 30)
    whole = insertion_effect(toy, AP1, backgrounds=seqs, n_backgrounds=3, positions=[0, 10], n_random=20, seed=2)
    monkeypatch.setattr(experiments, "_CHUNK_ROWS", 25)
    chunked = insertion_effect(toy, AP1, backgrounds=seqs, n_backgrounds=3, positions=[0, 10], n_random=20, seed=2)
    torch.testing.assert_close(chunked.effects, whole.effects)
    torch.testing.assert_close(chunked.random, whole.random)
