"""Motif scanning: planted JASPAR consensus recovered at its offset and strand; scores against brute force."""

import itertools

import numpy as np
import pandas as pd
import pytest

from probekit.motifs import Motif, annotate_regions, jaspar_motifs, scan
from probekit.testing import random_sequences

pytest.importorskip("pyjaspar")

COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


def revcomp(s):
    return "".join(COMP[c] for c in reversed(s))


def brute_scores(seq, motif):
    """Log-odds of every offset on both strands, written out position by position."""
    lo = motif.log_odds()
    k = motif.length
    out = {}
    for o in range(len(seq) - k + 1):
        window = seq[o : o + k]
        out[(o, "+")] = sum(lo["ACGT".index(b), j] for j, b in enumerate(window))
        out[(o, "-")] = sum(lo["ACGT".index(b), j] for j, b in enumerate(revcomp(window)))
    return out


@pytest.fixture(scope="module")
def ctcf():
    (motif,) = jaspar_motifs(matrix_ids=["MA0139.1"])
    return motif


def test_jaspar_fetch_by_id(ctcf):
    assert ctcf.name == "CTCF" and ctcf.matrix_id == "MA0139.1"
    assert ctcf.counts.shape == (4, 19)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_planted_consensus_found_at_offset_and_strand(ctcf, strand):
    background = random_sequences(1, 80, seed=3)[0]
    site = ctcf.consensus if strand == "+" else revcomp(ctcf.consensus)
    offset = 37
    seq = background[:offset] + site + background[offset + len(site) :]
    best = scan(seq, [ctcf], top=1)
    assert best.loc[0, "offset"] == offset
    assert best.loc[0, "strand"] == strand
    assert best.loc[0, "rel_score"] == pytest.approx(1.0)
    assert best.loc[0, "match"] == site


def test_scan_scores_equal_brute_force(ctcf):
    seq = random_sequences(1, 40, seed=5)[0]
    other = Motif.from_consensus("TGACTCA", name="AP1")
    hits = scan(seq, [ctcf, other], min_rel_score=0.0)
    for motif in (ctcf, other):
        expected = brute_scores(seq, motif)
        got = hits[hits["name"] == motif.name]
        assert len(got) == len(expected)
        for row in got.itertuples():
            assert row.score == pytest.approx(expected[(row.offset, row.strand)], abs=1e-9)
            assert row.end - row.offset == motif.length


def test_scan_sorted_and_threshold(ctcf):
    seq = random_sequences(1, 60, seed=1)[0]
    hits = scan(seq, [ctcf], min_rel_score=0.3)
    assert (hits["rel_score"] >= 0.3 - 1e-9).all()
    assert hits["p_value"].is_monotonic_increasing


def test_p_values_equal_enumeration_of_all_sites():
    counts = np.array([[8, 1, 0, 3, 2], [1, 6, 1, 3, 5], [0, 2, 9, 2, 1], [1, 1, 0, 2, 2]], dtype=float)
    motif = Motif("toy", "", counts)
    # p-values are exact for log-odds rounded to a grid of 0.05 bits (as FIMO does)
    grid = np.round(motif.log_odds() / 0.05).astype(int)
    all_sites = list(itertools.product(range(4), repeat=5))
    all_scores = np.array([sum(grid[b, j] for j, b in enumerate(site)) for site in all_sites])
    seq = random_sequences(1, 40, seed=2)[0]
    hits = scan(seq, [motif], min_rel_score=0.0)
    assert len(hits) == 2 * 36
    for row in hits.itertuples():
        site = row.match if row.strand == "+" else revcomp(row.match)
        own = sum(grid["ACGT".index(b), j] for j, b in enumerate(site))
        assert row.p_value == pytest.approx(np.mean(all_scores >= own), abs=1e-12)


def test_longer_good_match_ranks_above_short_perfect_one(ctcf):
    seq = random_sequences(1, 60, seed=11)[0]
    site = list(ctcf.consensus)
    site[3] = "A" if site[3] != "A" else "C"  # one mismatch in the 19-mer
    seq = seq[:10] + "".join(site) + seq[29:40] + "CACGTG" + seq[46:]
    best = scan(seq, [ctcf, Motif.from_consensus("CACGTG", name="Ebox")], top=1).iloc[0]
    assert best["name"] == "CTCF" and best["offset"] == 10


def test_annotate_regions_reports_overlapping_motif(ctcf):
    background = random_sequences(1, 100, seed=7)[0]
    site = revcomp(ctcf.consensus)
    seq = background[:50] + site + background[50 + len(site) :]
    regions = pd.DataFrame({"id": ["s", "s"], "region": [1, 2], "start": [55, 2], "end": [62, 8]})
    ap1 = Motif.from_consensus("TGACTCA", name="AP1")
    ann = annotate_regions(regions, {"s": seq}, motifs=[ctcf, ap1], top=2)
    first = ann[(ann["region"] == 1) & (ann["match_rank"] == 1)].iloc[0]
    assert first["name"] == "CTCF" and first["offset"] == 50 and first["strand"] == "-"
    # every reported match overlaps its region
    merged = ann.merge(regions, on=["id", "region"])
    assert ((merged["offset"] < merged["end_y"]) & (merged["end_x"] > merged["start"])).all()


def test_n_bases_and_short_sequences():
    m = Motif.from_consensus("ACGTAC")
    assert scan("ACG", [m], min_rel_score=0.0).empty
    hits = scan("NNACGTACNN", [m], top=1)
    assert hits.loc[0, "offset"] == 2


@pytest.mark.slow
def test_full_collection_loads_and_scans():
    motifs = jaspar_motifs()
    assert len(motifs) > 500
    seq = "GGG" + motifs[0].consensus + "GGG"
    hits = scan(seq, motifs)
    own = hits[(hits["matrix_id"] == motifs[0].matrix_id) & (hits["strand"] == "+")].iloc[0]
    assert own["offset"] == 3 and own["rel_score"] == pytest.approx(1.0)
    assert hits["p_value"].is_monotonic_increasing
