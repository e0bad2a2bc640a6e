"""Motif gain/loss of variants: best overlapping matches against a brute-force scan, and in the scored table."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from probekit import SequenceModel, outputs
from probekit.motifs import Motif, scan
from probekit.testing import MotifCounter, ToyConv
from probekit.variants import Genome, score_variants
from probekit.variants.motifs import changed_spans, motif_changes

MOTIFS = [
    Motif.from_consensus("GATAAG", name="gata"),
    Motif.from_consensus("TGACTCA", name="ap1"),
    Motif("pwm", "X1", np.array([[8, 1, 1, 0, 5], [0, 6, 1, 9, 2], [1, 2, 7, 0, 2], [1, 1, 1, 1, 1]], dtype=float)),
]


def _brute(window: str, span: tuple[int, int], motifs) -> dict:
    """Smallest p per matrix over whole placements overlapping ``span`` (any strand), by scanning every placement."""
    hits = scan(window, motifs, min_rel_score=0.0)
    s, e = span
    overlap = (hits["offset"] < max(e, s)) & (hits["end"] > s)
    best = hits[overlap].groupby("name")["p_value"].min()
    return best.to_dict()


def _random(rng, n):
    return "".join(rng.choice(list("ACGT"), n))


@pytest.mark.parametrize("kind", ["SNV", "MNV", "insertion", "deletion"])
def test_best_match_equals_brute_force_scan(kind):
    rng = np.random.default_rng(1)
    refs, alts, ref_spans, alt_spans = [], [], [], []
    for _ in range(12):
        genome = _random(rng, 60)
        offset = 25
        ref_allele = {"SNV": genome[offset], "MNV": genome[offset : offset + 3], "insertion": genome[offset],
                      "deletion": genome[offset : offset + 4]}[kind]  # fmt: skip
        alt_allele = {"SNV": lambda: "ACGT"[("ACGT".index(ref_allele) + 1) % 4], "MNV": lambda: _random(rng, 3),
                      "insertion": lambda: ref_allele + _random(rng, 3), "deletion": lambda: ref_allele[0]}[kind]()  # fmt: skip
        if alt_allele == ref_allele:
            alt_allele = ref_allele[:-1] + ("A" if ref_allele[-1] != "A" else "C")
        ref_window = genome[:40]
        alt_window = (genome[:offset] + alt_allele + genome[offset + len(ref_allele) :])[:40]
        r, a = changed_spans(ref_allele, alt_allele, offset)
        refs.append(ref_window), alts.append(alt_window), ref_spans.append(r), alt_spans.append(a)
    table = motif_changes(refs, alts, ref_spans=ref_spans, alt_spans=alt_spans, motifs=MOTIFS, p_threshold=1e-2)
    for i in range(len(refs)):
        brute_ref = _brute(refs[i], ref_spans[i], MOTIFS)
        brute_alt = _brute(alts[i], alt_spans[i], MOTIFS)
        best_ref = min(brute_ref.values())
        best_alt = min(brute_alt.values())
        assert table["motif_ref_p"][i] == pytest.approx(best_ref, rel=1e-9)
        assert table["motif_alt_p"][i] == pytest.approx(best_alt, rel=1e-9)
        assert brute_ref[table["motif_ref"][i].split()[0]] == pytest.approx(best_ref, rel=1e-9)


def test_loss_and_gain_of_a_planted_site():
    site = "TTGACTCATT"
    background = "CCCCCCCCCCCCCCCCCCCC"
    ref = background + site + background
    broken = background + "TTGTTTCATT" + background  # MNV over the site's core
    table = motif_changes([ref, broken], [broken, ref], ref_spans=[(22, 25)] * 2, alt_spans=[(22, 25)] * 2, motifs=MOTIFS,
                          p_threshold=1e-3)  # fmt: skip
    assert table["motif_ref"][0] == "ap1" and table["motif_change"][0] == "loss"
    assert table["motif_delta"][0] < -5
    assert table["motif_alt"][1] == "ap1" and table["motif_change"][1] == "gain"


def test_insertion_point_needs_bases_on_both_sides():
    # GATAAG sits right before the insertion point: it does not span it, so it is not the REF's match there
    ref = "CCCCCCGATAAGCCCCCC"
    table = motif_changes([ref], [ref[:12] + "TT" + ref[12:]], ref_spans=[(12, 12)], alt_spans=[(12, 14)], motifs=[MOTIFS[0]],
                          p_threshold=1e-3)  # fmt: skip
    brute = _brute(ref, (12, 12), [MOTIFS[0]])
    assert table["motif_ref_p"][0] == pytest.approx(brute["gata"])
    assert table["motif_ref_p"][0] > 1e-3


@pytest.fixture()
def genome(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\nCCCCCCCCCCTTGACTCATTCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC\n")
    return Genome(path)


def test_scored_table_has_motif_columns_and_error_rows_stay_empty(genome):
    adapter = SequenceModel(MotifCounter("TGACTCA"), output=0, device="cpu")
    variants = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1"], "pos": [14, 35, 16], "ref": ["ACT", "C", "G"],
                             "alt": ["TTT", "A", "A"]})  # fmt: skip
    frame = score_variants(adapter, variants, genome, length=20, motifs=MOTIFS, motif_p=1e-3).to_frame()
    assert frame["motif_change"].tolist()[:2] == ["loss", ""]
    assert frame["motif_ref"][0] == "ap1"
    assert frame["delta"][0] == -1.0
    assert frame["error"][2] is not None and frame["motif_change"][2] is None and math.isnan(frame["motif_delta"][2])


def test_further_outputs_and_log_fold_change_equal_explicit_passes(genome):
    model = ToyConv(n_outputs=3, seed=3)
    adapter = SequenceModel(model, output=1, device="cpu")
    variants = pd.DataFrame({"chrom": ["chr1"] * 3, "pos": [15, 25, 30], "ref": ["C", "C", "C"], "alt": ["G", "CAT", "T"]})
    result = score_variants(adapter, variants, genome, length=20, outputs=[0, outputs.value(2)], log_fold_change=True,
                            pseudocount=0.5, context=False)  # fmt: skip
    frame = result.to_frame()
    from probekit.variants import variant_windows

    windows = variant_windows(variants, genome, length=20)
    with torch.no_grad():
        ref = model(adapter.encode(list(windows["ref_window"]))).double()
        alt = model(adapter.encode(list(windows["alt_window"]))).double()
    np.testing.assert_allclose(frame["delta:logit[0]"], (alt[:, 0] - ref[:, 0]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame["ref:value[2]"], ref[:, 2].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame["delta"], (alt[:, 1] - ref[:, 1]).numpy(), rtol=1e-5, atol=1e-6)
    expected = np.log2((alt[:, 1] + 0.5) / (ref[:, 1] + 0.5)).numpy()
    expected[(alt[:, 1] < 0).numpy() | (ref[:, 1] < 0).numpy()] = np.nan
    np.testing.assert_allclose(frame["log2_fc"], expected, rtol=1e-5, atol=1e-6)
    assert "log2_fc:value[2]" in frame.columns


def test_annotated_vcf_carries_the_motif_change(tmp_path, genome):
    pysam = pytest.importorskip("pysam")
    from probekit.variants import write_annotated_vcf

    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   "chr1\t14\tsite\tACT\tTTT,ACA\t.\t.\t.\nchr1\t35\tfar\tC\tA\t.\t.\t.\n")  # fmt: skip
    adapter = SequenceModel(MotifCounter("TGACTCA"), output=0, device="cpu")
    result = score_variants(adapter, vcf, genome.path, length=20, motifs=MOTIFS, motif_p=1e-3)
    out = write_annotated_vcf(result, vcf, tmp_path / "out.vcf")
    with pysam.VariantFile(str(out)) as records:
        motif = {r.id: r.info["PK_MOTIF"] for r in records}
    assert motif["site"][0] == "loss:ap1"
    assert motif["far"] == (".",)
    assert result.to_frame()["motif_change"].tolist() == ["loss", "" if motif["site"][1] == "." else "loss", ""]
