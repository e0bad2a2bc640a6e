"""Ranking motif matches of a region: planted factors come first, long matrices do not win by length,
p-values are exact and calibrated, q-values correct for the matrices tried, queries mark their best match."""

import itertools

import numpy as np
import pandas as pd
import pytest

from probekit.datasets import make_dna_sequences, reverse_complement
from probekit.motifs import (
    REGION_MATCH_COLUMNS,
    Motif,
    annotate_regions,
    base_composition,
    jaspar_motifs,
    matches_query,
    region_matches,
    scan,
)
from probekit.testing import random_sequences

pytest.importorskip("pyjaspar")


@pytest.fixture(scope="module")
def jaspar():
    return jaspar_motifs()


def plant(background: str, site: str, at: int) -> str:
    return background[:at] + site + background[at + len(site) :]


def grid_of(motif, background=(0.25, 0.25, 0.25, 0.25)):
    return np.round(motif.log_odds(background=background) / 0.05).astype(int)


def test_planted_ctcf_core_is_top_match_not_a_longer_zinc_finger(jaspar):
    (ctcf,) = [m for m in jaspar if m.matrix_id == "MA0139.2"]
    core = ctcf.consensus[2:14]  # 12 of its 15 columns: longer zinc-finger matrices used to win here
    rng = np.random.default_rng(0)
    tops = []
    for i, background in enumerate(random_sequences(10, 200, seed=21)):
        at = int(rng.integers(10, 180))
        site = core if i % 2 else reverse_complement(core)
        ranked = region_matches(plant(background, site, at), at, at + len(core), motifs=jaspar)
        tops.append(ranked.iloc[0])
    assert [t["name"] for t in tops] == ["CTCF"] * 10
    assert all(t["q_value"] < 1e-3 for t in tops)
    assert all(t["tf_class"] == "C2H2 zinc finger factors" for t in tops)


def test_long_matrix_gains_nothing_from_flanks_outside_the_region():
    rng = np.random.default_rng(1)
    core = Motif.from_consensus("GATTACAG", name="core")
    flank_left, flank_right = rng.integers(0, 4, 11), rng.integers(0, 4, 11)
    weak = lambda idx: np.eye(4)[:, idx] * 6 + 2  # noqa: E731  (a preferred base at 60%)
    long_counts = np.concatenate([weak(flank_left), core.counts, weak(flank_right)], axis=1)
    long = Motif("long", "", long_counts)
    # The region is the 8-mer; its flanks happen to read the long matrix's preferred bases.
    left = "".join("ACGT"[i] for i in flank_left)
    right = "".join("ACGT"[i] for i in flank_right)
    seq = random_sequences(1, 20, seed=4)[0] + left + "GATTACAG" + right + random_sequences(1, 20, seed=5)[0]
    start = 20 + len(left)
    assert scan(seq, [core, long], top=1).loc[0, "name"] == "long"  # whole-site p-values favour it
    ranked = region_matches(seq, start, start + 8, motifs=[core, long]).set_index("name")
    assert ranked.loc["long", "p_value"] == pytest.approx(ranked.loc["core", "p_value"])
    # ...and it had 23 ways to lay 8 of its columns over the region, the 8-mer one.
    assert ranked.loc["long", "p_region"] > 10 * ranked.loc["core", "p_region"]
    assert ranked.loc["core", "match_rank"] == 1 and ranked.loc["core", "n_tied"] == 0


def test_region_p_value_is_exact_on_the_columns_over_the_region():
    counts = np.array([[8, 1, 0, 3, 2, 5], [1, 6, 1, 3, 5, 1], [0, 2, 9, 2, 1, 1], [1, 1, 0, 2, 2, 3]], dtype=float)
    motif = Motif("toy", "", counts)
    for background in ("uniform", (0.35, 0.15, 0.15, 0.35)):
        bg = (0.25,) * 4 if background == "uniform" else background
        grid = grid_of(motif, bg)
        seq = random_sequences(1, 30, seed=8)[0]
        start, end = 12, 15  # 3 bases: the 6-column motif covers them with 3 of its columns
        best = region_matches(seq, start, end, motifs=[motif], min_rel_score=0.0, background=background).iloc[0]
        a = start - best["offset"]
        site = best["match"] if best["strand"] == "+" else reverse_complement(best["match"])
        cols = range(a, a + 3) if best["strand"] == "+" else range(6 - a - 3, 6 - a)
        observed = sum(grid["ACGT".index(site[c]), c] for c in cols)
        p = 0.0
        for bases in itertools.product(range(4), repeat=3):
            if sum(grid[b, c] for b, c in zip(bases, cols)) >= observed:
                p += np.prod([bg[b] for b in bases])
        assert best["p_value"] == pytest.approx(p, rel=1e-9)
        n = 2 * 4  # offsets 9..12 cover the region, on both strands
        assert best["p_region"] == pytest.approx(1 - (1 - p) ** n, rel=1e-9)


def test_p_and_q_values_are_large_on_random_windows(jaspar):
    (ctcf,) = [m for m in jaspar if m.matrix_id == "MA0139.2"]
    seqs = random_sequences(60, 120, seed=7)
    rng = np.random.default_rng(0)
    lengths = rng.integers(6, 20, 60)
    starts = [int(rng.integers(0, 120 - n)) for n in lengths]
    one = [
        region_matches(s, a, a + int(n), motifs=[ctcf], min_rel_score=0.0).loc[0, "p_region"]
        for s, a, n in zip(seqs, starts, lengths)
    ]
    assert 0.3 < np.median(one) < 0.8
    assert np.mean(np.array(one) < 0.05) < 0.1
    regions = pd.DataFrame({"id": range(60), "region": 1, "start": starts, "end": np.add(starts, lengths)})
    top = annotate_regions(regions, dict(enumerate(seqs)), motifs=jaspar, top=1)
    assert top["q_value"].median() > 0.1  # the best of a thousand matrices is not a discovery
    assert (top["q_value"] < 0.05).mean() < 0.1


def test_planted_demo_factors_lead_their_regions(jaspar):
    planted = make_dna_sequences(40, length=120, positive_fraction=1.0, seed=3)
    regions = planted.assign(region=1)[["id", "region", "start", "end"]]
    ann = annotate_regions(regions, dict(zip(planted["id"], planted["sequence"])), motifs=jaspar, top=3)
    first = ann[ann["match_rank"] == 1].set_index("id").loc[planted["id"]]
    tied = [
        name == top or name in tied_with.split(", ")
        for name, top, tied_with in zip(planted["motif"], first["name"], first["tied_with"])
    ]
    assert np.mean(tied) >= 0.8  # the planted factor leads, or ties with the matrix that leads
    family = {m.name: set(m.tf_family) for m in jaspar}
    same_family = [bool(family[n] & set(f.split("; "))) for n, f in zip(planted["motif"], first["tf_family"])]
    assert np.mean(same_family) >= 0.9
    assert (first["p_region"] < 1e-3).all()


def test_query_marks_the_best_asked_for_match_even_below_top(jaspar):
    seq = plant(random_sequences(1, 80, seed=2)[0], "ATGAGTCAT", 30)  # an AP-1 site many bZIP matrices share
    regions = pd.DataFrame({"id": ["s"], "region": [1], "start": [30], "end": [39]})
    ann = annotate_regions(regions, {"s": seq}, motifs=jaspar, top=1, query=["FOS::JUN", "CTCF"])
    assert list(ann.columns) == REGION_MATCH_COLUMNS
    asked = ann[ann["query_best"]]
    assert len(asked) == 1 and asked.iloc[0]["name"] == "FOS::JUN" and asked.iloc[0]["match_rank"] > 1
    assert asked.iloc[0]["p_region"] == pytest.approx(ann.iloc[0]["p_region"])  # tied with the top match
    by_family = annotate_regions(regions, {"s": seq}, motifs=jaspar, top=3, query="Fos-related")
    best = by_family[by_family["query_best"]].iloc[0]
    assert "Fos-related" in best["tf_family"].split("; ")
    with pytest.raises(ValueError, match="matches none"):
        annotate_regions(regions, {"s": seq}, motifs=jaspar, query="NOT-A-FACTOR")


def test_matches_query_reads_names_dimers_ids_and_families(jaspar):
    (fos_jun,) = [m for m in jaspar if m.matrix_id == "MA0099.4"]
    assert fos_jun.tf_family == ("Fos-related", "Jun-related")
    assert all(matches_query(fos_jun, q) for q in ("fos::jun", "JUN", "MA0099", "MA0099.4", "Jun-related"))
    assert not matches_query(fos_jun, ["JUNB", "MA0099.3", "C4-GATA-related"])


def test_sequence_background_is_strand_symmetric_and_changes_p_values():
    assert base_composition("GGGGCCAT", pseudocount=0) == (0.125, 0.375, 0.375, 0.125)
    gc = Motif.from_consensus("GCGCGC")
    seq = "GCGCGCGGCCGCGGCCAATTGCGCGC"
    uniform = scan(seq, [gc], top=1).loc[0, "p_value"]
    rich = scan(seq, [gc], top=1, background="sequence").loc[0, "p_value"]
    assert uniform == pytest.approx(4.0**-6)
    assert rich > 10 * uniform  # a GC-rich site is no surprise in GC-rich sequence
    with pytest.raises(ValueError, match="four positive"):
        scan(seq, [gc], background=(1, 0, 0, 1))


def test_annotate_regions_keeps_region_order_and_ranks_from_one():
    seq = plant(random_sequences(1, 60, seed=9)[0], "TGACTCA", 20)
    regions = pd.DataFrame({"id": ["s", "s"], "region": [2, 1], "start": [40, 20], "end": [50, 27]})
    ann = annotate_regions(regions, {"s": seq}, motifs=["TGACTCA", "GATA", "CACGTG"], top=2, min_rel_score=0.0)
    assert ann["region"].drop_duplicates().tolist() == [2, 1]
    assert (ann.groupby("region")["match_rank"].min() == 1).all()
    first = ann[(ann["region"] == 1) & (ann["match_rank"] == 1)].iloc[0]
    assert first["name"] == "TGACTCA" and first["offset"] == 20 and first["coverage"] == 1.0
    loose = annotate_regions(regions, {"s": seq}, motifs=["TGACTCA", "GATA"], min_overlap=0.0, min_rel_score=0.0)
    merged = loose.merge(regions, on=["id", "region"], suffixes=("", "_region"))
    assert ((merged["offset"] < merged["end_region"]) & (merged["end"] > merged["start"])).all()
    with pytest.raises(ValueError, match="not inside"):
        annotate_regions(regions.assign(end=[70, 27]), {"s": seq}, motifs=["TGACTCA"])
