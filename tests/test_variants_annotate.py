"""Annotated VCF output, read back with pysam and compared with the scores it was written from."""

import gzip
import math
import random

import pytest

pysam = pytest.importorskip("pysam")

from probekit import SequenceModel  # noqa: E402
from probekit.testing import ToyConv  # noqa: E402
from probekit.variants import Genome, score_variants, write_annotated_vcf  # noqa: E402
from probekit.variants.annotate import INFO_FIELDS, info_text  # noqa: E402

CHR1 = "".join(random.Random(7).choice("ACGT") for _ in range(80))
LENGTH = 16
FLOATS = {"PK_REF": "ref_score", "PK_ALT": "alt_score", "PK_DELTA": "delta", "PK_PCT": "context_percentile", "PK_P": "p_value"}


def other(base):
    return "ACGT"[("ACGT".index(base) + 1) % 4]


def records():
    b = lambda pos, n=1: CHR1[pos - 1 : pos - 1 + n]  # noqa: E731
    wrong = other(b(60))
    return [
        ("chr1", 20, "rs1", b(20), other(b(20))),  # SNV
        ("chr1", 25, "rs2", b(25), f"{other(b(25))},{other(other(b(25)))},{other(other(other(b(25))))}"),  # multi-allelic
        ("chr1", 30, ".", b(30, 3), b(30)),  # deletion
        ("chr1", 40, "sv1", b(40), "<DEL>"),  # symbolic: every ALT an error
        ("chr1", 45, "mix", b(45), f"{other(b(45))},<INS>"),  # one ALT scored, one error
        ("chr1", 60, "bad", wrong, other(wrong)),  # REF does not match the genome
        ("chr1", 70, "rs7", b(70), other(b(70))),
    ]


@pytest.fixture
def inputs(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(f">chr1\n{CHR1}\n")
    vcf = tmp_path / "in.vcf"
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=80>", '##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]  # fmt: skip
    lines += [f"{c}\t{p}\t{i}\t{r}\t{a}\t50\tPASS\tDP={k + 3}" for k, (c, p, i, r, a) in enumerate(records())]
    vcf.write_text("\n".join(lines) + "\n")
    adapter = SequenceModel(ToyConv(seed=2), output=1, device="cpu", batch_size=5)
    with Genome(fasta) as genome:
        result = score_variants(adapter, str(vcf), genome, length=LENGTH, n_draws=20, seed=1)
    return vcf, result


def read_back(path):
    with pysam.VariantFile(str(path)) as handle:
        return handle.header.copy(), [(r.chrom, r.pos, r.id, r.ref, r.alts, dict(r.info)) for r in handle]


def check(out, vcf, result):
    header, written = read_back(out)
    _, original = read_back(vcf)
    for key, _, kind, _ in INFO_FIELDS:
        assert key in header.info and header.info[key].number == "A" and header.info[key].type == kind
    # every record, in order, with what it had
    assert [w[:5] for w in written] == [o[:5] for o in original]
    assert [w[5].get("DP") for w in written] == [o[5].get("DP") for o in original]
    frame = result.to_frame()
    assert frame["record"].nunique() == len(written)
    for record, (_, _, _, _, alts, info) in enumerate(written):
        rows = frame[frame["record"] == record].reset_index(drop=True)
        assert len(rows) == len(alts) and list(rows["alt"]) == [a.upper() for a in alts]
        for j, row in rows.iterrows():
            for key, column in FLOATS.items():
                value, expected = info[key][j], row[column]
                if row["error"] is not None or math.isnan(expected):
                    assert value is None, (record, j, key, value)
                else:
                    assert value == pytest.approx(expected, rel=1e-5, abs=1e-6), (record, j, key)
            assert info["PK_ERR"][j] == info_text(row["error"])
    return written, frame


def test_plain_vcf_carries_one_value_per_alt_and_errors(inputs, tmp_path):
    vcf, result = inputs
    out = write_annotated_vcf(result, vcf, tmp_path / "out.vcf")
    written, frame = check(out, vcf, result)
    # the oracle covers what it should: a 3-ALT record, all-error records and a mixed one
    assert len(written[1][4]) == 3
    assert written[3][5]["PK_DELTA"] == (None,) and "symbolic" in written[3][5]["PK_ERR"][0]
    assert written[4][5]["PK_DELTA"][0] is not None and written[4][5]["PK_DELTA"][1] is None
    assert "does_not_match" in written[5][5]["PK_ERR"][0]
    assert frame["error"].notna().sum() == 3 and frame["error"].isna().sum() >= 6
    text = out.read_text()
    assert not any(" " in line.split("\t")[7] for line in text.splitlines() if not line.startswith("#"))


def test_bgzipped_output_is_indexed_when_sorted_and_readable(inputs, tmp_path):
    vcf, result = inputs
    out = write_annotated_vcf(result, vcf, tmp_path / "out.vcf.gz")
    with open(out, "rb") as handle:
        assert handle.read(2) == b"\x1f\x8b"
    assert (tmp_path / "out.vcf.gz.tbi").exists()
    check(out, vcf, result)
    with pysam.VariantFile(str(out)) as handle:
        assert [r.pos for r in handle.fetch("chr1", 38, 50)] == [40, 45]


def test_unsorted_input_is_bgzipped_without_index(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(f">chr1\n{CHR1}\n>chr2\n{CHR1[::-1]}\n")
    vcf = tmp_path / "in.vcf"  # no contig lines: the output header declares them
    rows = [("chr2", 10, CHR1[::-1][9]), ("chr1", 30, CHR1[29]), ("chr1", 12, CHR1[11])]
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(f"{c}\t{p}\t.\t{r}\t{other(r)}\t.\t.\t.\n" for c, p, r in rows))  # fmt: skip
    adapter = SequenceModel(ToyConv(seed=2), output=0, device="cpu")
    result = score_variants(adapter, str(vcf), str(fasta), length=LENGTH, context=False)
    out = write_annotated_vcf(result, vcf, tmp_path / "out.vcf.gz")
    assert not (tmp_path / "out.vcf.gz.tbi").exists()
    written, _ = check(out, vcf, result)
    assert [(w[0], w[1]) for w in written] == [(c, p) for c, p, _ in rows]
    assert all(w[5]["PK_P"] == (None,) and w[5]["PK_DELTA"][0] is not None for w in written)
    assert "PK_DELTA=" in gzip.open(out, "rt").read()


def test_info_text_leaves_no_separator():
    text = info_text("a b;c,d=e%f\tg\nh")
    assert not set(" ;,=\t\n") & set(text)
    assert text == "a_b%3Bc%2Cd%3De%25f%09g%0Ah"
