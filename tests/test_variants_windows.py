"""REF and ALT windows around variants, checked against windows written out by hand."""

import random

import pandas as pd
import pytest

pytest.importorskip("pysam")

from probekit.variants import Genome, allele_change, read_variants, variant_windows  # noqa: E402
from probekit.variants.windows import WINDOW_COLUMNS  # noqa: E402

#       index: 0         1         2
#              012345678901234567890123
CHR1 = "ACGTTGCAACGTNNNNNACGTTCA"  # 24 bases, an N run at 12-16
CHR2 = "GGATCCAT"  # 8 bases, soft-masked in the file


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(f">chr1\n{CHR1[:10]}\n{CHR1[10:20]}\n{CHR1[20:]}\n>chr2\nggATCCat\n")
    with Genome(path) as g:
        yield g


def _one(genome, chrom, pos, ref, alt, **kw):
    table = pd.DataFrame({"chrom": [chrom], "pos": [pos], "ref": [ref], "alt": [alt]})
    return variant_windows(table, genome, **kw).iloc[0]


# (chrom, pos, ref, alt, kind, n_bases, REF window, ALT window, padded), L = 8, variant at 4
CASES = [
    ("chr1", 6, "G", "A", "SNV", 1, "CGTTGCAA", "CGTTACAA", False),
    ("chr1", 6, "GC", "TT", "MNV", 2, "CGTTGCAA", "CGTTTTAA", False),
    ("chr1", 6, "GCA", "GCT", "SNV", 1, "CGTTGCAA", "CGTTGCTA", False),  # a padded SNV
    ("chr1", 6, "G", "GAT", "insertion", 2, "CGTTGCAA", "CGTTGATC", False),
    ("chr1", 6, "GCA", "G", "deletion", 2, "CGTTGCAA", "CGTTGACG", False),
    ("chr1", 6, "GCA", "TT", "indel", 3, "CGTTGCAA", "CGTTTTAC", False),
    ("chr1", 2, "C", "G", "SNV", 1, "NNNACGTT", "NNNAGGTT", True),  # contig start
    ("chr1", 22, "TCA", "T", "deletion", 2, "ACGTTCAN", "ACGTTNNN", True),  # deletion at the contig end
    ("chr1", 24, "A", "AGG", "insertion", 2, "GTTCANNN", "GTTCAGGN", True),  # insertion at the contig end
    ("chr1", 11, "G", "C", "SNV", 1, "CAACGTNN", "CAACCTNN", False),  # next to the N run
    ("chr1", 16, "NNA", "N", "deletion", 2, "TNNNNNAC", "TNNNNCGT", False),  # deletion leaving the N run
    ("chr1", 14, "N", "NACG", "insertion", 3, "CGTNNNNN", "CGTNNACG", False),  # insertion inside the N run
    ("chr2", 1, "G", "T", "SNV", 1, "NNNNGGAT", "NNNNTGAT", True),  # soft-masked second contig
    ("chr2", 7, "AT", "A", "deletion", 1, "ATCCATNN", "ATCCANNN", True),
]


@pytest.mark.parametrize("chrom,pos,ref,alt,kind,n,ref_window,alt_window,padded", CASES)
def test_windows_match_hand_built_strings(genome, chrom, pos, ref, alt, kind, n, ref_window, alt_window, padded):
    row = _one(genome, chrom, pos, ref, alt, length=8)
    assert row["error"] is None, row["error"]
    assert (row["kind"], row["n_bases"]) == (kind, n)
    assert row["ref_window"] == ref_window
    assert row["alt_window"] == alt_window
    assert row["padded"] == padded
    assert row["window_start"] == pos - 1 - 4
    assert row["genome_chrom"] == chrom


def test_the_padding_note_says_how_many_n_and_where(genome):
    start = _one(genome, "chr1", 2, "C", "G", length=8)
    assert start["note"] == "3 N added before the start of chr1"
    end = _one(genome, "chr1", 22, "TCA", "T", length=8)
    assert end["note"] == "3 N added past the end of chr1 (length 24)"  # the deletion pulls in 2 more
    assert _one(genome, "chr1", 6, "G", "A", length=8)["note"] is None


@pytest.mark.parametrize(
    "offset,ref_window,alt_window",
    [(0, "GCAACGTN", "ACAACGTN"), (7, "NNACGTTG", "NNACGTTA"), (2, "TTGCAACG", "TTACAACG")],
)
def test_the_offset_places_the_variant(genome, offset, ref_window, alt_window):
    row = _one(genome, "chr1", 6, "G", "A", length=8, offset=offset)
    assert (row["ref_window"], row["alt_window"]) == (ref_window, alt_window)
    assert row["window_start"] == 5 - offset


def test_odd_length_centres_on_length_floor_half(genome):
    row = _one(genome, "chr1", 6, "G", "GT", length=7)
    assert (row["ref_window"], row["alt_window"]) == ("GTTGCAA", "GTTGTCA")


def test_an_alt_longer_than_the_window_is_cut_with_a_note(genome):
    row = _one(genome, "chr1", 6, "G", "GAAAAAA", length=8)
    assert row["alt_window"] == "CGTTGAAA"
    assert row["note"] == "the ALT window holds the first 4 of the ALT's 7 bases"


def test_errors_name_the_variant_and_the_genome_base(genome):
    rows = variant_windows(
        pd.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr1", "chr3", "chr1"], "pos": [6, 6, 25, 24, 3, 6],
                      "ref": ["A", "GA", "A", "AC", "A", "G"], "alt": ["G", "TT", "G", "A", "G", "G"]}),
        genome, length=8,
    )  # fmt: skip
    assert rows["error"].tolist() == [
        "chr1:6 A>G: REF A does not match the genome's G at chr1:6",
        "chr1:6 GA>TT: REF GA does not match the genome's GC at chr1:6-7",
        "chr1:25 A>G: REF A lies past the end of chr1 (length 24)",
        "chr1:24 AC>A: REF AC runs 1 base past the end of chr1 (length 24)",
        "chr3:3 A>G: chromosome 'chr3' is not in the genome (nor '3', nor in chrom_aliases); the genome has chr1, chr2",
        "chr1:6 G>G: the ALT is the same as the REF",
    ]
    assert rows["ref_window"].isna().all() and rows["alt_window"].isna().all()


def test_chromosome_renaming_is_reported(genome):
    row = _one(genome, "1", 6, "G", "A", length=8)
    assert row["genome_chrom"] == "chr1" and row["chrom"] == "1"
    assert row["note"] == "chromosome '1' read as the genome's 'chr1' (added 'chr')"
    assert row["ref_window"] == "CGTTGCAA"


def test_reader_errors_pass_through_in_order(genome, tmp_path):
    path = tmp_path / "v.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "chr1\t6\tv1\tG\tA,<DEL>\t.\t.\t.\nchr1\t2\tv2\tC\tG\t.\t.\t.\n"
    )
    windows = variant_windows(path, genome, length=8)
    assert list(windows.columns) == WINDOW_COLUMNS
    assert windows["id"].tolist() == ["v1:G>A", "v1:G><DEL>", "v2"]
    assert windows["error"][0] is None and "symbolic" in windows["error"][1] and windows["error"][2] is None
    assert windows["ref_window"][0] == "CGTTGCAA" and windows["ref_window"][1] is None
    assert windows["record"].tolist() == [0, 0, 1]
    assert windows["padded"].dtype == bool


def test_bad_length_or_offset(genome):
    with pytest.raises(ValueError, match="length"):
        _one(genome, "chr1", 6, "G", "A", length=0)
    with pytest.raises(ValueError, match="offset"):
        _one(genome, "chr1", 6, "G", "A", length=8, offset=8)


def test_allele_change_trims_shared_bases():
    assert allele_change("A", "A") is None
    assert allele_change("AC", "AG") == ("SNV", 1, 1)
    assert allele_change("ACGT", "TCGA") == ("MNV", 0, 2)
    assert allele_change("AAA", "AAAAA") == ("insertion", 3, 2)
    assert allele_change("CAT", "C") == ("deletion", 1, 2)
    assert allele_change("CATG", "CG") == ("deletion", 1, 2)
    assert allele_change("CATG", "CCG") == ("indel", 1, 2)


def test_random_variants_against_whole_contig_slicing(tmp_path):
    """Windows cut from the whole contig held in memory (padded with N) agree with the genome's random access."""
    rng = random.Random(0)
    contig = "".join(rng.choice("ACGT") for _ in range(300))
    path = tmp_path / "r.fa"
    path.write_text(">r\n" + "\n".join(contig[i : i + 60] for i in range(0, 300, 60)) + "\n")
    pad = 100
    padded = "N" * pad + contig + "N" * pad
    rows, expected = [], []
    for _ in range(200):
        length = rng.randint(1, 40)
        offset = rng.randrange(length)
        p = rng.randrange(300)
        ref = contig[p : p + rng.randint(1, 4)]
        alt = "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 6)))
        if alt == ref:
            continue
        s = padded[pad + p - offset :]
        expected.append((s[:length], (s[:offset] + alt + s[offset + len(ref) :])[:length]))
        rows.append((length, offset, p + 1, ref, alt))
    with Genome(path) as genome:
        for (length, offset, pos, ref, alt), (ref_window, alt_window) in zip(rows, expected):
            row = _one(genome, "r", pos, ref, alt, length=length, offset=offset)
            assert (row["ref_window"], row["alt_window"]) == (ref_window, alt_window), (length, offset, pos, ref, alt)
            assert len(row["ref_window"]) == len(row["alt_window"]) == length


def test_windows_of_a_table_read_with_read_variants(genome):
    variants = read_variants(pd.DataFrame({"chrom": ["chr1"], "pos": [6], "ref": ["g"], "alt": ["a"]}))
    assert variant_windows(variants, genome, length=8)["alt_window"][0] == "CGTTACAA"
