"""Reading variants (VCF/BCF, tables) and a reference genome: every record kept, bad ones named."""

import gzip
import subprocess
import sys
import warnings

import pandas as pd
import pytest

pysam = pytest.importorskip("pysam")

from probekit import ProbekitWarning  # noqa: E402
from probekit.variants import Genome, iter_variants, read_variants  # noqa: E402

HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=chr1,length=100>\n"
    "##contig=<ID=chr2,length=100>\n"
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)
GOOD = (
    "chr1\t5\trs1\tA\tG,T\t.\t.\t.\n"
    "chr1\t9\t.\tCA\tC\t.\t.\t.\n"
    "chr2\t3\trs3\tg\tgtt\t.\t.\t.\n"
)
BAD = (
    "chr1\t10\t.\tA\t<DEL>\t.\t.\t.\n"
    "chr1\t11\t.\tA\t]chr2:100]A\t.\t.\t.\n"
    "chr1\t12\t.\tA\tN[chr2:5[\t.\t.\t.\n"
    "chr1\t13\t.\tA\tA.\t.\t.\t.\n"
    "chr1\t14\t.\tA\t.\t.\t.\t.\n"
    "chr1\t15\t.\tA\t*\t.\t.\t.\n"
    "chr1\t16\t.\tAR\tG\t.\t.\t.\n"
    "chr1\t17\t.\tA\tGXT\t.\t.\t.\n"
    "chr1\t18\t.\tA\t<*>\t.\t.\t.\n"
)
MALFORMED = (
    "chr1\tseven\t.\tA\tG\t.\t.\t.\n"
    "chr2\t20\n"
    "chr2\t21\t.\tC\tA\t.\t.\t.\n"
)


def _vcf(tmp_path, body, name="v.vcf"):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def _rows(frame):
    return [tuple(r) for r in frame[["id", "chrom", "pos", "ref", "alt", "record"]].itertuples(index=False)]


EXPECTED_GOOD = [
    ("rs1:A>G", "chr1", 5, "A", "G", 0),
    ("rs1:A>T", "chr1", 5, "A", "T", 0),
    ("chr1:9:CA>C", "chr1", 9, "CA", "C", 1),
    ("rs3", "chr2", 3, "G", "GTT", 2),
]


def test_plain_vcf_splits_alleles_and_names_ids(tmp_path):
    frame = read_variants(_vcf(tmp_path, GOOD))
    assert list(frame.columns) == ["id", "chrom", "pos", "ref", "alt", "record", "error"]
    assert _rows(frame) == EXPECTED_GOOD
    assert frame["error"].isna().all()
    assert str(frame["pos"].dtype) == "Int64"


def test_bgzipped_indexed_and_bcf_read_the_same(tmp_path):
    plain = _vcf(tmp_path, GOOD)
    bgz = tmp_path / "v.vcf.gz"
    pysam.tabix_compress(str(plain), str(bgz))
    assert read_variants(bgz).equals(read_variants(plain))
    indexed = tmp_path / "i.vcf"
    indexed.write_text(HEADER + GOOD)
    indexed_gz = pysam.tabix_index(str(indexed), preset="vcf", force=True)  # bgzips and writes .tbi
    assert indexed_gz.endswith(".gz")
    assert read_variants(indexed_gz).equals(read_variants(plain))
    bcf = tmp_path / "v.bcf"
    with pysam.VariantFile(str(plain)) as src, pysam.VariantFile(str(bcf), "wb", header=src.header) as out:
        for rec in src:
            out.write(rec)
    assert _rows(read_variants(bcf)) == EXPECTED_GOOD


def test_unscorable_alleles_become_error_rows_naming_the_variant(tmp_path):
    frame = read_variants(_vcf(tmp_path, BAD))
    assert len(frame) == 9 and frame["error"].notna().all()
    assert frame["record"].tolist() == list(range(9))
    errors = frame["error"].tolist()
    assert errors[0].startswith("chr1:10 A><DEL>: ") and "symbolic" in errors[0]
    assert errors[1].startswith("chr1:11 A>]chr2:100]A: ") and "breakend" in errors[1]
    assert errors[2].startswith("chr1:12 A>N[chr2:5[: ") and "breakend" in errors[2]
    assert errors[3].startswith("chr1:13 A>A.: ") and "breakend" in errors[3]
    assert errors[4] == "chr1:14 A>.: the ALT is missing ('.')"
    assert errors[5].startswith("chr1:15 A>*: ") and "another record" in errors[5]
    assert errors[6] == "chr1:16 AR>G: the REF AR has 'R' at position 1, not a nucleotide; only A, C, G, T and N are accepted"
    assert errors[7] == "chr1:17 A>GXT: the ALT GXT has 'X' at position 1, not a nucleotide; only A, C, G, T and N are accepted"
    assert "symbolic" in errors[8]


@pytest.mark.parametrize("compressed", [False, True])
def test_malformed_lines_are_error_rows_and_reading_goes_on(tmp_path, compressed):
    path = _vcf(tmp_path, GOOD + MALFORMED)
    if compressed:
        gz = tmp_path / "v.vcf.gz"
        pysam.tabix_compress(str(path), str(gz))
        path = gz
    frame = read_variants(path)
    assert _rows(frame.iloc[:4]) == EXPECTED_GOOD
    tail = frame.iloc[4:].reset_index(drop=True)
    assert tail["record"].tolist() == [3, 4, 5]
    assert tail["error"][0] == "chr1:seven A>G: data line 4: POS 'seven' is not a whole number"
    assert tail["chrom"][0] == "chr1" and pd.isna(tail["pos"][0])
    assert tail["error"][1].startswith("chr2:20 ?>?: data line 5 ") and "2 tab-separated columns" in tail["error"][1]
    assert tail["error"][2] is None and tail["id"][2] == "chr2:21:C>A"


def test_a_vcf_that_is_not_one_raises(tmp_path):
    path = tmp_path / "x.vcf"
    path.write_text("this is not a vcf\n")
    with pytest.raises(ValueError, match="cannot read it as VCF"):
        read_variants(path)
    with pytest.raises(FileNotFoundError):
        read_variants(tmp_path / "missing.vcf")


def test_tables_tsv_csv_dataframe_agree(tmp_path):
    table = pd.DataFrame(
        {"#CHROM": ["chr1", "chr1", "chr2", "chr2", "chr1"], "POS": ["5", "9", "3", "x", "0"],
         "ID": ["rs1", "", "rs3", "", ""], "REF": ["A", "CA", "g", "A", "A"], "ALT": ["G,T", "C", "gtt", "C", "C"]}
    )  # fmt: skip
    tsv = tmp_path / "v.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    csv = tmp_path / "v.csv.gz"
    table.to_csv(csv, index=False, compression="gzip")
    frames = [read_variants(table), read_variants(tsv), read_variants(csv)]
    for frame in frames[1:]:
        assert frame.equals(frames[0])
    frame = frames[0]
    assert _rows(frame.iloc[:4]) == EXPECTED_GOOD
    assert frame["error"][4] == "chr2:x A>C: row 4: POS 'x' is not a whole number"
    assert frame["error"][5] == "chr1:0 A>C: POS 0 is not a position (positions start at 1, as in VCF)"
    assert frame["id"][4] == "chr2:?:A>C"


def test_table_with_integer_positions_and_missing_columns():
    frame = read_variants(pd.DataFrame({"chromosome": [1], "position": [7.0], "ref": ["T"], "alt": ["-"]}))
    assert frame["chrom"][0] == "1" and frame["pos"][0] == 7
    assert "empty allele" in frame["error"][0]
    with pytest.raises(ValueError, match="missing \\['alt'\\]"):
        read_variants(pd.DataFrame({"chrom": ["1"], "pos": [1], "ref": ["A"]}))
    with pytest.raises(ValueError, match="cannot tell what"):
        read_variants(__file__)


def test_chunks_keep_records_whole_and_match_the_whole_read(tmp_path):
    path = _vcf(tmp_path, GOOD + BAD + MALFORMED)
    whole = read_variants(path)
    chunks = list(iter_variants(path, chunk_size=2))
    assert all(len(c) >= 1 for c in chunks)
    assert pd.concat(chunks, ignore_index=True).equals(whole)
    assert chunks[0]["record"].tolist() == [0, 0]  # the two ALTs of record 0 stay together
    with pytest.raises(ValueError, match="chunk_size"):
        next(iter_variants(path, chunk_size=0))


def test_repeated_ids_are_renamed_across_chunks(tmp_path):
    body = "chr1\t5\trs1\tA\tG\t.\t.\t.\nchr1\t6\trs1\tA\tG\t.\t.\t.\nchr1\t7\trs1\tA\tG\t.\t.\t.\n"
    with pytest.warns(ProbekitWarning, match="rs1#1"):
        chunks = list(iter_variants(_vcf(tmp_path, body), chunk_size=1))
    assert [c["id"][0] for c in chunks] == ["rs1", "rs1#1", "rs1#2"]


# ------------------------------------------------------------------ genome
FASTA = ">chr1 first\nACGTACGTAC\nacgtNNNNNG\n>chr2\nTTTTRGGG\n"


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(FASTA)
    return path


def test_genome_builds_its_index_and_pads_with_n(fasta):
    genome = Genome(fasta)
    assert (fasta.parent / "g.fa.fai").exists()
    assert genome.lengths == {"chr1": 20, "chr2": 8}
    assert genome.fetch("chr1", 0, 4) == ("ACGT", 0, 0, "chr1")
    assert genome.fetch("chr1", 8, 16).sequence == "ACACGTNN"  # soft-masked bases upper-cased
    assert genome.fetch("chr1", -3, 2) == ("NNNAC", 3, 0, "chr1")
    assert genome.fetch("chr1", 17, 23) == ("NNGNNN", 0, 3, "chr1")
    assert genome.fetch("chr1", 30, 33) == ("NNN", 0, 3, "chr1")
    assert genome.fetch("chr1", -9, -7) == ("NN", 2, 0, "chr1")
    assert genome.fetch("chr2", 3, 6).sequence == "TNG"  # an IUPAC code in the reference reads as N
    assert genome.fetch("chr2", 4, 4).sequence == ""
    with pytest.raises(ValueError, match="start <= end"):
        genome.fetch("chr1", 5, 4)
    genome.close()


def test_genome_reads_only_the_bases_asked_for(fasta):
    genome = Genome(fasta)
    calls = []
    real = genome._fasta

    class Spy:
        def fetch(self, name, start, end):
            calls.append((name, start, end))
            return real.fetch(name, start, end)

    genome._fasta = Spy()
    genome.fetch("chr1", 15, 25)
    assert calls == [("chr1", 15, 20)]


def test_bgzipped_genome_and_plain_gzip(tmp_path, fasta):
    bgz = tmp_path / "b.fa.gz"
    pysam.tabix_compress(str(fasta), str(bgz))
    genome = Genome(bgz)
    assert genome.fetch("chr1", 8, 16).sequence == "ACACGTNN"
    assert (tmp_path / "b.fa.gz.fai").exists() and (tmp_path / "b.fa.gz.gzi").exists()
    plain_gz = tmp_path / "p.fa.gz"
    with gzip.open(plain_gz, "wt") as handle:
        handle.write(FASTA)
    with pytest.raises(ValueError, match="not bgzipped.*bgzip"):
        Genome(plain_gz)
    with pytest.raises(FileNotFoundError):
        Genome(tmp_path / "none.fa")


def test_a_fasta_faidx_cannot_index_says_why(tmp_path):
    path = tmp_path / "ragged.fa"
    path.write_text(">chr1\nACGT\nACGTAC\nAC\n")
    with pytest.raises(ValueError, match="lines of record 'chr1' differ in length \\(line 3\\)"):
        Genome(path)


def test_chromosome_names_resolve_exact_then_chr_then_aliases(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\nACGT\n>2\nGGCC\n>chrM\nTTAA\n>MT\nCCCC\n")
    genome = Genome(path, chrom_aliases={"mito": "chrM", "M": "MT"})
    assert genome.resolve("chr1") == ("chr1", "exact")
    assert genome.resolve("1") == ("chr1", "added 'chr'")
    assert genome.resolve("chr2") == ("2", "removed 'chr'")
    assert genome.resolve("MT") == ("MT", "exact")  # exact wins over chr rules and aliases
    assert genome.resolve("M") == ("chrM", "added 'chr'")  # the chr rule comes before aliases
    assert genome.resolve("mito") == ("chrM", "alias")
    assert genome.resolve("chr9") == (None, "not found")
    assert genome.fetch("1", 0, 2).sequence == "AC"
    with pytest.raises(KeyError, match="'chr9' is not in the genome.*'9'"):
        genome.fetch("chr9", 0, 2)
    with pytest.raises(ValueError, match="lacks"):
        Genome(path, chrom_aliases={"X": "chrX"})


def test_importing_the_variants_package_does_not_load_pysam():
    code = "import sys, probekit.variants; print('pysam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_no_warnings_from_clean_input(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_variants(_vcf(tmp_path, GOOD))
