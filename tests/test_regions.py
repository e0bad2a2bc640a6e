"""BED regions on a genome: the bases cut by hand from the FASTA text, both strands, resizing, contig ends, bad lines."""

import gzip

import pandas as pd
import pytest
import torch

from probekit import SequenceModel, cli, probe
from probekit.regions import fetch_regions, read_bed, read_regions
from probekit.search.discrete import saturation_mutagenesis
from probekit.testing import ToyConv, random_sequences

pytest.importorskip("pysam")

# Two contigs; chr1 is soft-masked in part and wrapped at 10 bases a line, as FASTA files are.
CHR1 = "ACGTTGCAACGGATCCTTAGGCATCGATCGTACGATTACAGGCTAGCTAACGTAGCTAGGA"
CHR2 = "TTGACCATGGCAATCGGATCAGTCA"
_PAIR = str.maketrans("ACGTN", "TGCAN")


def revcomp(text: str) -> str:
    return text.translate(_PAIR)[::-1]


def wrapped(name: str, sequence: str, width: int = 10) -> str:
    lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
    return f">{name} a description\n" + "\n".join(lines) + "\n"


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "ref.fa"
    path.write_text(wrapped("chr1", CHR1[:20] + CHR1[20:30].lower() + CHR1[30:]) + wrapped("chr2", CHR2))
    return path


def bed_file(tmp_path, text: str, name: str = "peaks.bed"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_regions_are_the_bases_cut_from_the_fasta_text(tmp_path, genome):
    bed = bed_file(tmp_path, "chr1\t0\t12\tfirst\t0\t+\nchr1\t15\t33\trev\t7\t-\nchr2\t3\t10\nchr1\t40\t52\t.\t0\t.\n")
    regions = read_regions(bed, genome)
    assert regions["id"].tolist() == ["first", "rev", "chr2:3-10", "chr1:40-52"]
    assert regions["sequence"].tolist() == [CHR1[0:12], revcomp(CHR1[15:33]), CHR2[3:10], CHR1[40:52]]
    assert regions["error"].isna().all() and not regions["padded"].any()
    assert regions["strand"].tolist() == ["+", "-", "+", "+"]
    assert regions[["start", "end"]].values.tolist() == [[0, 12], [15, 33], [3, 10], [40, 52]]


def test_length_resizes_around_the_centre_or_the_narrowpeak_summit(tmp_path, genome):
    rows = [
        "chr1\t20\t30\teven\t0\t+",  # centre 25: [22, 28)
        "chr1\t20\t31\todd\t0\t+",  # centre 25: [22, 28)
        "chr1\t20\t30\tsummit\t0\t+\t1.0\t2.0\t3.0\t2",  # anchor 22: [19, 25)
        "chr1\t20\t30\tsummit_minus\t0\t-\t1.0\t2.0\t3.0\t2",  # the same window, reverse complemented
        "chr1\t24\t25\tone_base\t0\t+",  # anchor 24: [21, 27)
        "chr1\t20\t26\tsame\t0\t+",  # already 6 bases: itself
    ]
    regions = read_regions(bed_file(tmp_path, "\n".join(rows) + "\n"), genome, length=6)
    expected = [CHR1[22:28], CHR1[22:28], CHR1[19:25], revcomp(CHR1[19:25]), CHR1[21:27], CHR1[20:26]]
    assert regions["sequence"].tolist() == expected
    assert regions[["window_start", "window_end"]].values.tolist() == [[22, 28], [22, 28], [19, 25], [19, 25], [21, 27], [20, 26]]
    assert regions[["start", "end"]].values.tolist()[0] == [20, 30]  # the region as written is kept


def test_contig_ends_are_n_padded_and_flagged(tmp_path, genome):
    bed = bed_file(tmp_path, "chr1\t0\t4\tleft\t0\t+\nchr2\t22\t25\tright\t0\t+\nchr2\t22\t25\tright_minus\t0\t-\n")
    regions = read_regions(bed, genome, length=10)
    # left: anchor 2 -> [-3, 7); right: anchor 23 -> [18, 28) on a 25-base contig
    assert regions["sequence"].tolist() == ["NNN" + CHR1[:7], CHR2[18:] + "NNN", revcomp(CHR2[18:] + "NNN")]
    assert regions["padded"].all() and regions["error"].isna().all()
    assert regions["note"][0] == "3 N added before the start of chr1"
    assert regions["note"][1] == "3 N added past the end of chr2 (length 25)"


def test_unknown_chromosomes_and_malformed_lines_are_error_rows(tmp_path, genome):
    text = ("chrom\tstart\tend\tname\n# a comment\ntrack name=peaks\nbrowser position chr1\n\n"
            "chr1\t2\t8\tgood\nchrZ\t1\t5\tnowhere\nchr1\t5\nchr1\tfive\t9\tworded\nchr1\t9\t5\tbackwards\n"
            "chr1\t1\t5\tsideways\t0\tx\nchr2\t100\t110\tpast\n1\t2\t8\tno_prefix\n")  # fmt: skip
    regions = read_regions(bed_file(tmp_path, text), genome)
    errors = dict(zip(regions["id"], regions["error"]))
    assert regions["id"].tolist() == ["good", "nowhere", "line8", "worded", "backwards", "sideways", "past", "no_prefix"]
    assert errors["good"] is None and errors["no_prefix"] is None
    assert regions["sequence"].tolist()[0] == CHR1[2:8] and regions["sequence"].tolist()[-1] == CHR1[2:8]
    assert "read as the genome's 'chr1'" in regions["note"].iloc[-1]
    assert errors["nowhere"].startswith("record 'nowhere' (line 7): chromosome 'chrZ' is not in the genome")
    assert errors["line8"] == "peaks.bed line 8 (line8): a BED line needs chrom, start and end; got 2 columns"
    assert errors["worded"] == "peaks.bed line 9 (worded): start 'five' is not a whole number"
    assert errors["backwards"] == "peaks.bed line 10 (backwards): need 0 <= start <= end, got start 9 and end 5"
    assert errors["sideways"] == "peaks.bed line 11 (sideways): strand 'x' is not +, - or ."
    assert errors["past"] == "record 'past' (line 12): chr2:100-110 lies outside chr2 (length 25)"
    assert (regions["sequence"][regions["error"].notna()] == "").all()


def test_bgzipped_genome_and_gzipped_bed_read_the_same(tmp_path, genome):
    pysam = pytest.importorskip("pysam")
    text = "chr1\t3\t19\ta\t0\t-\nchr2\t0\t9\tb\n"
    packed = tmp_path / "ref.fa.gz"
    pysam.tabix_compress(str(genome), str(packed))
    zipped = tmp_path / "peaks.bed.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    plain = read_regions(bed_file(tmp_path, text), genome, length=8)
    assert read_regions(zipped, packed, length=8).equals(plain)
    assert plain["sequence"].tolist() == [revcomp(CHR1[7:15]), CHR2[0:8]]  # anchors 11 and 4


def test_read_bed_reads_no_genome_and_shards_fetch_what_the_whole_file_gives(tmp_path, genome):
    bed = bed_file(tmp_path, "".join(f"chr1\t{i}\t{i + 9}\tr{i}\t0\t{'+-'[i % 2]}\n" for i in range(0, 40, 3)))
    coordinates = read_bed(bed, length=7)
    assert "sequence" not in coordinates.columns
    whole = read_regions(bed, genome, length=7)
    parts = [fetch_regions(coordinates.iloc[i : i + 4].reset_index(drop=True), genome) for i in range(0, len(coordinates), 4)]
    assert pd.concat(parts, ignore_index=True).equals(whole)


def test_regions_go_wherever_sequences_go(tmp_path, genome):
    bed = bed_file(tmp_path, "chr1\t0\t16\ta\nchrZ\t0\t16\tb\nchr1\t30\t46\tc\t0\t-\n")
    regions = read_regions(bed, genome)
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    report = probe(adapter, regions, max_edits=1, baseline_draws=5, progress=False)
    summary = report.summary().set_index("id")
    assert summary["error"].notna().tolist() == [False, True, False] and "chrZ" in summary.loc["b", "error"]
    valid = regions[regions["error"].isna()]
    ism = saturation_mutagenesis(adapter, valid)
    by_hand = saturation_mutagenesis(adapter, [CHR1[0:16], revcomp(CHR1[30:46])])
    assert ism.effects.equal(by_hand.effects)


def test_length_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="positive int"):
        read_bed(bed_file(tmp_path, "chr1\t0\t4\n"), length=0)
    with pytest.raises(FileNotFoundError, match="BED file not found"):
        read_bed(tmp_path / "missing.bed")


# ---------------------------------------------------------------- the command line
FAST = ["--max-edits", "1", "--baseline-draws", "5", "--no-progress", "--device", "cpu", "--max-figures", "0"]


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "toy.pt"
    torch.save(ToyConv().state_dict(), path)
    return path


def dna_command(model, *inputs, out, table):
    return ["dna", "--model", str(model), "--arch", "probekit.testing:ToyConv", "--output", "logit:1", *inputs,
            "--out", str(out), "--table", str(table), *FAST]  # fmt: skip


def test_dna_command_on_bed_regions_writes_the_table_of_the_same_sequences_as_fasta(tmp_path, model, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    chroms = dict(zip(["chr1", "chr2"], random_sequences(2, 300, seed=5)))
    (data / "ref.fa").write_text("".join(wrapped(name, seq, 60) for name, seq in chroms.items()))
    (data / "peaks.bed").write_text("chr1\t100\t140\tp1\t0\t+\nchr2\t10\t170\tp2\t0\t-\n")
    (data / "peaks.fa").write_text(f">p1\n{chroms['chr1'][90:150]}\n>p2\n{revcomp(chroms['chr2'][60:120])}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    bed_args = ["--bed", "../data/peaks.bed", "--genome", "../data/ref.fa", "--length", "60"]
    assert cli.main(dna_command(model, *bed_args, out="bed.html", table="bed.csv")) == 0
    assert cli.main(dna_command(model, "--fasta", "../data/peaks.fa", out="fa.html", table="fa.csv")) == 0
    from_bed, from_fasta = pd.read_csv("bed.csv"), pd.read_csv("fa.csv")
    assert from_bed["id"].unique().tolist() == ["p1", "p2"]
    pd.testing.assert_frame_equal(from_bed, from_fasta)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (["--bed", "peaks.bed"], "--bed needs --genome"),
        (["--fasta", "x.fa", "--genome", "ref.fa"], "--genome applies to --bed regions"),
        (["--bed", "peaks.bed", "--genome", "missing.fa"], "genome FASTA not found"),
        (["--bed", "missing.bed", "--genome", "ref.fa"], "BED file not found"),
        (["--bed", "peaks.bed", "--genome", "ref.fa", "--length", "0"], "--length must be at least 1"),
        (["--bed", "peaks.bed", "--fasta", "x.fa"], "not allowed with argument"),
    ],
)
def test_dna_command_refuses_missing_and_conflicting_inputs(tmp_path, genome, model, monkeypatch, capsys, inputs, message):
    monkeypatch.chdir(tmp_path)
    bed_file(tmp_path, "chr1\t0\t10\n")
    (tmp_path / "x.fa").write_text(">a\nACGT\n")
    with pytest.raises(SystemExit) as stopped:
        cli.main(dna_command(model, *inputs, out=tmp_path / "r.html", table=tmp_path / "r.csv"))
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
