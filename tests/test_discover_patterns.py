"""Discovery oracles: a model that literally scores a JASPAR matrix gives that matrix back.

The model is a hand-built convolution whose filter is the log-odds matrix of
GATA1 (MA0035.5, from the bundled demo's motif file): its score is the best
site score on either strand. TF-MoDISco on its ISM contributions must find one
pattern whose seqlets sit on the planted sites, and TOMTOM must name MA0035.5
as that pattern's best match among JASPAR-like targets.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

pytest.importorskip("modiscolite")
pytest.importorskip("memelite")

from probekit import SequenceModel  # noqa: E402
from probekit._warnings import ProbekitWarning  # noqa: E402
from probekit.datasets import load_demo_motifs, make_dna_sequences  # noqa: E402
from probekit.discover import DiscoveryResult, discover, hypothetical_contributions, match_jaspar  # noqa: E402
from probekit.discover.patterns import core_columns, sequence_records  # noqa: E402
from probekit.motifs import Motif  # noqa: E402

GATA = "MA0035.5"


def _demo_motif(matrix_id: str) -> Motif:
    m = load_demo_motifs()[matrix_id]
    counts = np.array([m["pfm"][b] for b in "ACGT"], dtype=np.float64)
    return Motif(m["name"], matrix_id, counts)


class MotifScorer(nn.Module):
    """Best log-odds score of a matrix over positions and both strands: logits (-s, s)."""

    def __init__(self, motif: Motif):
        super().__init__()
        w = torch.tensor(motif.log_odds(), dtype=torch.float32)
        self.register_buffer("weight", torch.stack([w, w.flip(0).flip(1)]))

    def forward(self, x):
        s = torch.nn.functional.conv1d(x, self.weight).amax(dim=(1, 2))
        return torch.stack([-s, s], dim=1)


def _decoys(n: int, seed: int = 0) -> list[Motif]:
    rng = np.random.default_rng(seed)
    return [Motif(f"decoy{i}", f"MX{i:04d}.1", rng.dirichlet(np.full(4, 0.5), size=int(rng.integers(6, 16))).T * 100) for i in range(n)]


@pytest.fixture(scope="module")
def gata():
    motif = _demo_motif(GATA)
    model = MotifScorer(motif)
    frame = make_dna_sequences(240, length=60, motifs={GATA: load_demo_motifs()[GATA]}, positive_fraction=0.8, seed=3)
    adapter = SequenceModel(model, output=1, device="cpu", batch_size=1024)
    result = discover(adapter, frame, n_leiden_runs=1)
    return motif, adapter, frame, result


def test_discovery_finds_the_scored_motif(gata):
    motif, _, frame, result = gata
    table = result.to_frame()
    positive = table[table["sign"] == 1].sort_values("n_seqlets", ascending=False)
    assert len(positive) >= 1
    top = positive.iloc[0]
    assert top["n_seqlets"] >= 10
    # the pattern's core reads the motif (on one strand or the other)
    core = result.consensus(top["pattern"])
    site = motif.consensus
    rc = site.translate(str.maketrans("ACGT", "TGCA"))[::-1]
    assert any(s[1:-1] in core or core[1:-1] in s for s in (site, rc)), (core, site)


def test_seqlets_sit_on_the_planted_sites(gata):
    _, _, frame, result = gata
    seqlets = result.seqlet_table(sequences=dict(zip(frame["id"], frame["sequence"])))
    top = result.to_frame().sort_values("n_seqlets", ascending=False)["pattern"].iloc[0]
    hits = seqlets[seqlets["pattern"] == top].merge(frame[["id", "start", "end"]], on="id", suffixes=("", "_planted"))
    overlap = (np.minimum(hits["end"], hits["end_planted"]) - np.maximum(hits["start"], hits["start_planted"])) > 0
    assert overlap.mean() > 0.9
    assert set(seqlets.columns) >= {"id", "start", "end", "strand", "pattern", "site"}
    assert ((seqlets["end"] - seqlets["start"]) == seqlets["site"].str.len()).all()


def test_tomtom_names_the_jaspar_matrix(gata):
    motif, _, _, result = gata
    top = result.to_frame().sort_values("n_seqlets", ascending=False)["pattern"].iloc[0]
    targets = [motif, _demo_motif("MA0139.2"), _demo_motif("MA0099.4")] + _decoys(60)
    matches = match_jaspar(result, motifs=targets, top=3)
    best = matches[(matches["pattern"] == top) & (matches["match_rank"] == 1)].iloc[0]
    assert best["matrix_id"] == GATA
    assert best["q_value"] < 0.05
    assert best["e_value"] == pytest.approx(best["p_value"] * len(targets))


def test_tomtom_reports_the_strand_and_orders_by_p():
    targets = [_demo_motif(GATA), _demo_motif("MA0139.2")] + _decoys(60)
    rc = _demo_motif(GATA).counts[::-1, ::-1].copy()
    matches = match_jaspar({"rc_gata": rc}, motifs=targets, top=5)
    assert matches["matrix_id"].iloc[0] == GATA
    assert matches["strand"].iloc[0] == "-"
    assert matches["p_value"].is_monotonic_increasing
    assert matches["match_rank"].tolist() == [1, 2, 3, 4, 5]


def test_tomtom_refuses_too_few_targets():
    with pytest.raises(ValueError, match="at least 50 target"):
        match_jaspar(["GATAAG"], motifs=_decoys(5))


def test_save_and_load_keep_the_patterns(gata, tmp_path):
    *_, result = gata
    path = tmp_path / "d.pt"
    result.save(path)
    again = DiscoveryResult.load(path)
    pd.testing.assert_frame_equal(again.to_frame(), result.to_frame())
    pd.testing.assert_frame_equal(again.seqlet_table(), result.seqlet_table())
    assert "patterns=" in repr(again)


def test_ism_contributions_are_centred_substitution_effects(gata):
    _, adapter, frame, _ = gata
    seqs = frame["sequence"].tolist()[:3]
    hyp = hypothetical_contributions(adapter, seqs)
    from probekit.search import saturation_mutagenesis

    effects = saturation_mutagenesis(adapter, seqs).effects.transpose(1, 2)
    torch.testing.assert_close(hyp, effects - effects.mean(dim=1, keepdim=True))


def test_given_contributions_must_be_hypothetical_and_match(gata):
    _, adapter, frame, _ = gata
    from probekit.attr import input_x_gradient

    observed = input_x_gradient(adapter, frame["sequence"].tolist()[:30])
    with pytest.raises(ValueError, match="hypothetical"):
        discover(adapter, frame.iloc[:30], contributions=observed)
    with pytest.raises(ValueError, match="contributions of shape"):
        discover(adapter, frame.iloc[:30], contributions=np.zeros((30, 4, 10), dtype=np.float32))


def test_bad_inputs_too_few_and_mixed_lengths(gata):
    _, adapter, frame, _ = gata
    with pytest.raises(ValueError, match="at least 20 sequences"):
        discover(adapter, frame["sequence"].tolist()[:5])
    seqs = frame["sequence"].tolist()[:4] + ["ACGT" * 5, "ACGXTT"]
    with pytest.warns(ProbekitWarning, match="left out"):
        ids, kept, errors = sequence_records(seqs)
    assert len(kept) == 4 and set(errors) == {"seq4", "seq5"}
    assert "length 20" in errors["seq4"] and "'X'" in errors["seq5"]


def test_mixed_lengths_become_error_rows(gata):
    _, adapter, frame, _ = gata
    seqs = frame["sequence"].tolist()[:30] + ["ACGT" * 5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = discover(adapter, seqs, contributions=np.zeros((30, 4, 60), dtype=np.float32), n_leiden_runs=1)
    assert len(result) == 0
    table = result.seqlet_table()
    assert table.loc[table["id"] == "seq30", "error"].str.contains("length 20").all()


def test_core_columns():
    assert core_columns(torch.tensor([[0.0, 1.0, 0.1, 0.5, 0.0]] * 4)) == [1, 4]
    assert core_columns(torch.zeros(4, 3)) == [0, 3]
