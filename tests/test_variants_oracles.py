"""Variant scores against oracles computed without probekit: windows cut with plain Python from the FASTA text,
scores of a per-position linear model summed by hand, and single-substitution context from explicit forward
passes of every mutant."""

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

pysam = pytest.importorskip("pysam")

from probekit import SequenceModel  # noqa: E402
from probekit.testing import ToyConv  # noqa: E402
from probekit.variants import score_variants  # noqa: E402

LENGTH = 12
BASES = "ACGT"
_rng = random.Random(11)
# chr1: soft-masked stretch, an IUPAC code (read as N) and an N run; chr2 shorter than a window
CHR1_TEXT = (
    "".join(_rng.choice(BASES) for _ in range(10)) + "".join(_rng.choice("acgt") for _ in range(10))
    + "".join(_rng.choice(BASES) for _ in range(15)) + "R" + "".join(_rng.choice(BASES) for _ in range(4))
    + "N" * 8 + "".join(_rng.choice(BASES) for _ in range(42))
)  # fmt: skip
CHR2_TEXT = "".join(_rng.choice(BASES) for _ in range(9))


def write_inputs(folder):
    """A plain FASTA, its bgzipped copy (what is scored) and the contigs read back from the plain text by hand."""
    plain = folder / "genome.fa"
    wrap = lambda s: "\n".join(s[i : i + 25] for i in range(0, len(s), 25))  # noqa: E731
    plain.write_text(f">chr1 first contig\n{wrap(CHR1_TEXT)}\n>chr2\n{wrap(CHR2_TEXT)}\n")
    packed = folder / "genome.fa.gz"
    pysam.tabix_compress(str(plain), str(packed), force=True)
    return packed, read_fasta_by_hand(plain)


def read_fasta_by_hand(path):
    contigs, name = {}, None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            contigs[name] = ""
        else:
            contigs[name] += "".join(b if b in BASES else "N" for b in line.strip().upper())
    return contigs


def cut(contig, pos, ref, alt, *, offset):
    """The documented rule: REF window from ``pos - 1 - offset``; ALT window = left flank + ALT + genome after REF."""
    pad = "N" * 50
    s = (pad + contig + pad)[50 + pos - 1 - offset :]
    assert s[offset : offset + len(ref)] == ref
    return s[:LENGTH], (s[:offset] + alt + s[offset + len(ref) :])[:LENGTH]


def cases(contigs):
    """(chrom, pos, ref, alts, what) per VCF record; REFs read from the hand-parsed contigs."""
    c1, c2 = contigs["chr1"], contigs["chr2"]
    at = lambda contig, pos, n=1: contig[pos - 1 : pos - 1 + n]  # noqa: E731
    nxt = lambda b: BASES[(BASES.index(b) + 1) % 4]  # noqa: E731
    n_run = c1.index("NNNNNNNN") + 1  # 1-based first N of the run
    rows = [
        ("chr1", 8, at(c1, 8), [nxt(at(c1, 8)), nxt(nxt(at(c1, 8)))], "multi-allelic SNV"),
        ("chr1", 14, at(c1, 14), [nxt(at(c1, 14))], "SNV on soft-masked bases"),
        ("chr1", 24, at(c1, 24, 3), [at(c1, 24) + nxt(at(c1, 25)) + at(c1, 26)], "SNV written with flanking bases"),
        ("chr1", 28, at(c1, 28, 3), [nxt(at(c1, 28)) + at(c1, 29) + nxt(at(c1, 30))], "MNV"),
        ("chr1", 31, at(c1, 31), [at(c1, 31) + "GA", at(c1, 31) + "T"], "insertions"),
        ("chr1", 33, at(c1, 33, 4), [at(c1, 33)], "deletion"),
        ("chr1", 36, at(c1, 36), [nxt(at(c1, 36)) if at(c1, 36) != "N" else "A"], "SNV at an IUPAC code (N)"),
        ("chr1", n_run - 2, at(c1, n_run - 2, 4), [at(c1, n_run - 2)], "deletion into the N run"),
        ("chr1", n_run + 2, "NN", ["AC"], "MNV inside the N run"),
        ("chr1", n_run + 4, "N", ["NTTG"], "insertion inside the N run"),
        ("chr1", n_run + 8, at(c1, n_run + 8), [nxt(at(c1, n_run + 8))], "SNV next to the N run"),
        ("chr1", 2, at(c1, 2), [nxt(at(c1, 2))], "SNV at the contig start"),
        ("chr1", 1, at(c1, 1, 3), [at(c1, 1)], "deletion at the contig start"),
        ("chr1", len(c1) - 3, at(c1, len(c1) - 3, 4), [at(c1, len(c1) - 3)], "deletion of the last bases"),
        ("chr1", len(c1), at(c1, len(c1)), [at(c1, len(c1)) + "CAT"], "insertion after the last base"),
        ("chr1", len(c1) - 1, at(c1, len(c1) - 1, 2), [nxt(at(c1, len(c1) - 1)) + nxt(at(c1, len(c1)))], "MNV at the end"),
        ("chr2", 5, at(c2, 5), [nxt(at(c2, 5)), at(c2, 5) + "AA", nxt(nxt(at(c2, 5)))], "mixed record on a short contig"),
        ("chr2", 3, at(c2, 3, 5), [at(c2, 3) + "G"], "indel on a short contig"),
    ]
    return rows


def write_vcf(folder, records):
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>", "##contig=<ID=chr2>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{c}\t{p}\tr{i}\t{r}\t{','.join(a)}\t.\t.\t." for i, (c, p, r, a, _) in enumerate(records)]
    path = folder / "calls.vcf"
    path.write_text("\n".join(lines) + "\n")
    return path


class PerPosition(nn.Module):
    """Score = sum over positions of a weight per (position, base): hand-computable from the window's letters."""

    def __init__(self, seed=0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(LENGTH, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))

    def forward(self, x):
        return (x.double() * self.weight.T[None]).sum(dim=(1, 2))[:, None]


def linear_by_hand(weight, window, both):
    forward = sum(weight[i][BASES.index(b)] for i, b in enumerate(window) if b != "N")
    if not both:
        return forward
    rc = window[::-1].translate(str.maketrans("ACGT", "TGCA"))
    return 0.5 * (forward + linear_by_hand(weight, rc, False))


@pytest.fixture
def inputs(tmp_path):
    genome, contigs = write_inputs(tmp_path)
    records = cases(contigs)
    return genome, contigs, records, write_vcf(tmp_path, records)


def expected_rows(contigs, records, offset):
    for chrom, pos, ref, alts, what in records:
        for alt in alts:
            yield (chrom, pos, ref, alt, what), cut(contigs[chrom], pos, ref, alt, offset=offset)


@pytest.mark.parametrize("both", [False, True], ids=["forward", "both_strands"])
@pytest.mark.parametrize("context", [True, False], ids=["context", "no_context"])
@pytest.mark.parametrize("offset", [None, 2])
def test_linear_model_scores_equal_sums_by_hand(inputs, both, context, offset):
    genome, contigs, records, vcf = inputs
    model = PerPosition(seed=3)
    adapter = SequenceModel(model, output=0, device="cpu", strands="both" if both else "forward", batch_size=16)
    frame = score_variants(adapter, vcf, genome, length=LENGTH, offset=offset, context=context, n_draws=5).to_frame()
    weight = model.weight.detach().tolist()
    expected = list(expected_rows(contigs, records, LENGTH // 2 if offset is None else offset))
    assert len(frame) == len(expected) == sum(len(r[3]) for r in records)
    for row, ((chrom, pos, ref, alt, what), (ref_window, alt_window)) in zip(frame.to_dict("records"), expected):
        assert row["error"] is None, (what, row["error"])
        assert (row["chrom"], row["pos"], row["ref"], row["alt"]) == (chrom, pos, ref, alt)
        ref_score, alt_score = linear_by_hand(weight, ref_window, both), linear_by_hand(weight, alt_window, both)
        assert row["ref_score"] == pytest.approx(ref_score, rel=1e-5, abs=1e-6), what
        assert row["alt_score"] == pytest.approx(alt_score, rel=1e-5, abs=1e-6), what
        assert row["delta"] == pytest.approx(alt_score - ref_score, rel=1e-5, abs=1e-6), what
        assert row["padded"] == reads_past_an_end(contigs[chrom], pos, ref, alt, LENGTH // 2 if offset is None else offset), what


def reads_past_an_end(contig, pos, ref, alt, offset):
    """Whether the bases both windows need (a deletion pulls in more of the right flank) leave the contig."""
    start = pos - 1 - offset
    end = max(start + LENGTH, pos - 1 + len(ref) + max(0, LENGTH - offset - len(alt)))
    return start < 0 or end > len(contig)


def one_hot_by_hand(windows):
    eye = {b: np.eye(4)[i] for i, b in enumerate(BASES)} | {"N": np.zeros(4)}
    return torch.tensor(np.stack([np.stack([eye[b] for b in w], axis=1) for w in windows]), dtype=torch.float32)


def explicit_scores(model, windows, both):
    """Logit 0 of each window by one explicit forward pass (and of its reverse complement, averaged)."""
    with torch.no_grad():
        X = one_hot_by_hand(windows)
        y = model(X)[:, 0].double()
        if both:
            y = 0.5 * (y + model(X.flip(1).flip(2))[:, 0].double())  # ACGT order: complement is the channel flip
    return y.numpy()


def brute_context(model, ref_window, delta, both):
    """Rank, percentile and p-value of |delta| among all 3L' single substitutions, each scored by its own pass."""
    mutants = [ref_window[:i] + b + ref_window[i + 1 :] for i, a in enumerate(ref_window) if a != "N" for b in BASES if b != a]
    reference = explicit_scores(model, [ref_window], both)[0]
    sizes = np.abs(explicit_scores(model, mutants, both) - reference)
    d, tol = abs(delta), 1e-5 * abs(delta)
    own = int(np.argmin(np.abs(sizes - d)))  # the variant's own substitution is one of them
    others = np.delete(sizes, own)
    n = others.size
    rank = 1 + int((others > d + tol).sum())
    return rank, 100 * (1 + int((others <= d + tol).sum())) / (1 + n), (1 + int((others >= d - tol).sum())) / (1 + n), len(mutants)


@pytest.mark.parametrize("both", [False, True], ids=["forward", "both_strands"])
def test_snv_context_against_explicit_passes_of_every_mutant(inputs, both):
    genome, contigs, records, vcf = inputs
    model = ToyConv(seed=9, channels=6).eval()
    adapter = SequenceModel(model, output=0, device="cpu", strands="both" if both else "forward", batch_size=64)
    frame = score_variants(adapter, vcf, genome, length=LENGTH).to_frame()
    checked = 0
    for row, ((chrom, pos, ref, alt, what), (ref_window, alt_window)) in zip(frame.to_dict("records"), expected_rows(contigs, records, LENGTH // 2)):
        ref_score, alt_score = explicit_scores(model, [ref_window, alt_window], both)
        assert row["delta"] == pytest.approx(alt_score - ref_score, rel=1e-5, abs=1e-6), what
        if row["kind"] != "SNV" or "N" in ref[: len(alt)]:
            assert not row["context"].startswith("all "), what  # MNVs, indels and substitutions of N: random draws
            continue
        rank, percentile, p, n = brute_context(model, ref_window, row["delta"], both)
        assert row["context"] == f"all {n} single substitutions of the REF window", what
        assert (row["context_rank"], row["context_percentile"], row["p_value"]) == pytest.approx((rank, percentile, p)), what
        checked += 1
    assert checked >= 8


def test_linear_model_context_is_the_weight_differences(inputs):
    """On the linear model each substitution's effect is W[i, b] - W[i, a]: the percentile needs no forward pass."""
    genome, contigs, records, vcf = inputs
    model = PerPosition(seed=4)
    frame = score_variants(SequenceModel(model, output=0, device="cpu"), vcf, genome, length=LENGTH).to_frame()
    w = model.weight.detach().numpy()
    for row, ((chrom, pos, ref, alt, what), (ref_window, _)) in zip(frame.to_dict("records"), expected_rows(contigs, records, LENGTH // 2)):
        if not row["context"].startswith("all "):
            continue
        effects = np.array([w[i, BASES.index(b)] - w[i, BASES.index(a)] for i, a in enumerate(ref_window) if a != "N"
                            for b in BASES if b != a])  # fmt: skip
        d = abs(row["delta"])
        others = np.delete(np.abs(effects), int(np.argmin(np.abs(np.abs(effects) - d))))
        assert row["context_rank"] == 1 + int((others > d * (1 + 1e-5)).sum()), what
        assert row["p_value"] == pytest.approx((1 + int((others >= d * (1 - 1e-5)).sum())) / (1 + others.size)), what
        assert row["context_percentile"] == pytest.approx(100 * (1 + int((others <= d * (1 + 1e-5)).sum())) / (1 + others.size))
        assert not math.isnan(row["p_value"])
