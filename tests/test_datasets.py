"""The bundled DNA demo: reproducible training, true planted positions, and motif recovery by probe."""

import numpy as np
import pandas as pd
import pytest
import torch

from probekit import SequenceModel, outputs
from probekit.datasets import (
    DemoCNN,
    accuracy,
    dna_demo_paths,
    load_demo_motifs,
    load_dna_demo,
    make_dna_sequences,
    motif_log_odds,
    planted_motif_recovery,
    reverse_complement,
    train_dna_demo,
)


@pytest.fixture(scope="module")
def demo():
    return load_dna_demo()


def test_short_training_runs_are_identical():
    a, _ = train_dna_demo(n_train=128, epochs=1, seed=3)
    b, _ = train_dna_demo(n_train=128, epochs=1, seed=3)
    c, _ = train_dna_demo(n_train=128, epochs=1, seed=4)
    for name, value in a.state_dict().items():
        assert torch.allclose(value, b.state_dict()[name], atol=1e-6, rtol=0), name
    assert any(not torch.allclose(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_training_leaves_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_dna_demo(n_train=64, epochs=1, seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_full_training_reproduces_shipped_model(demo):
    # Bit-for-bit weights need the same CPU kernels (AVX2 and AVX-512 round differently), so across
    # machines the retrained model must make the same calls, not hold the same bits.
    model, heldout = demo
    retrained, _ = train_dna_demo()
    validation = make_dna_sequences(500, seed=1000)
    from probekit.encode.dna import one_hot

    X = one_hot(validation["sequence"].tolist())
    with torch.no_grad():
        agree = (model(X).argmax(1) == retrained(X).argmax(1)).float().mean()
    assert agree >= 0.98
    shipped_accuracy = accuracy(model, heldout["sequence"], heldout["label"])
    assert accuracy(retrained, heldout["sequence"], heldout["label"]) >= shipped_accuracy - 0.04


def test_shipped_model_is_accurate(demo):
    model, heldout = demo
    assert isinstance(model, DemoCNN) and not model.training
    assert accuracy(model, heldout["sequence"], heldout["label"]) > 0.9
    fresh = make_dna_sequences(400, seed=5000)  # never seen in training
    assert accuracy(model, fresh["sequence"], fresh["label"]) > 0.9


def test_heldout_truth_positions_hold_the_planted_motif(demo):
    _, heldout = demo
    motifs = load_demo_motifs()
    names = {m["name"]: m for m in motifs.values()}
    positives = heldout[heldout["label"] == 1]
    assert 30 <= len(positives) < len(heldout)
    for row in positives.itertuples():
        motif = names[row.motif]
        width = len(motif["pfm"]["A"])
        assert row.end - row.start == width
        site = row.sequence[row.start : row.end]
        forward = site if row.strand == "+" else reverse_complement(site)
        # Oracle: the planted window scores far above what background reaches on average
        # (0 bits) and close to the consensus; a shifted window does not.
        best = sum(np.log2((max(col) + 0.5) / (sum(col) + 2.0) / 0.25) for col in zip(*(motif["pfm"][b] for b in "ACGT")))
        assert motif_log_odds(motif, forward) > 0.5 * best, (row.id, forward)
    negatives = heldout[heldout["label"] == 0]
    assert (negatives["strand"] == "").all()


def test_sequences_are_seeded_and_truth_matches():
    a = make_dna_sequences(30, length=60, seed=7)
    b = make_dna_sequences(30, length=60, seed=7)
    c = make_dna_sequences(30, length=60, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a["sequence"].equals(c["sequence"])
    planted = a[a["start"] >= 0]
    assert all(r.sequence[r.start : r.end] == r.site for r in planted.itertuples())
    assert set(a["sequence"].str.len()) == {60}


def test_decoys_keep_the_composition_of_a_site():
    frame = make_dna_sequences(200, length=40, positive_fraction=0.0, decoy_fraction=1.0, seed=2)
    assert (frame["label"] == 0).all() and frame["motif"].str.startswith("shuffled ").all()
    widths = {m["name"]: len(m["pfm"]["A"]) for m in load_demo_motifs().values()}
    assert all(r.end - r.start == widths[r.motif.removeprefix("shuffled ")] for r in frame.itertuples())


def test_reverse_complement():
    assert reverse_complement("AACGTT") == "AACGTT"
    assert reverse_complement("GATAAG") == "CTTATC"


def test_planted_motif_recovery_by_hand():
    regions = pd.DataFrame(
        {"id": ["a", "a", "b", "c"], "region": [1, 2, 1, 1], "start": [50, 10, 0, 5], "end": [55, 18, 4, 9]}
    )
    regions["rank"] = regions["region"]
    truth = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "label": [1, 1, 0, 1], "motif": ["x"] * 4, "start": [12, 4, 5, 3], "end": [19, 9, 9, 9]}
    )
    out = planted_motif_recovery(regions, truth).set_index("id")
    assert list(out.index) == ["a", "b", "d"]  # negatives are left out
    assert out.loc["a", "motif_rank"] == 2 and not out.loc["a", "top"]
    assert np.isnan(out.loc["b", "motif_rank"]) and not out.loc["b", "top"]  # [0, 4) ends where the site starts
    assert out.loc["d", "n_regions"] == 0 and not out.loc["d", "top"]


def test_demo_model_flags_the_planted_motif(demo):
    from probekit.probe import probe

    model, heldout = demo
    positives = heldout[heldout["label"] == 1].head(20)
    adapter = SequenceModel(model, output=outputs.margin(1), device="cpu", batch_size=512)
    report = probe(adapter, positives[["id", "sequence"]], max_edits=1, baseline_draws=20)
    recovery = planted_motif_recovery(report.regions(), positives)
    assert len(recovery) == 20
    assert recovery["top"].mean() >= 0.8, recovery


def test_paths_exist():
    for path in dna_demo_paths().values():
        assert path.exists(), path


def test_planted_motif_recovery_says_whether_jaspar_named_the_planted_factor():
    from probekit.datasets import planted_motif_recovery

    truth = pd.DataFrame({"id": ["a", "b", "c"], "label": [1, 1, 1], "motif": ["CTCF", "GATA1", "FOS::JUN"],
                          "start": [10, 10, 10], "end": [20, 20, 20]})  # fmt: skip
    regions = pd.DataFrame({
        "id": ["a", "b", "c"], "region": [1, 1, 1], "start": [9, 9, 60], "end": [21, 21, 70],
        "motif": ["CTCF", "Gata2", "FOS::JUN"], "motif_tied_with": [None, "GATA1, GATA3", None],
        "motif_query_match": ["CTCF", "GATA1", "FOS::JUN"],
    })  # fmt: skip
    r = planted_motif_recovery(regions, truth).set_index("id")
    assert r["named"].tolist() == [True, False, False]  # c's top region misses the site: nothing is named
    assert r["named_or_tied"].tolist() == [True, True, False]
    assert r["query_named"].tolist() == [True, True, False]
