"""``probekit variants`` end to end on a tiny genome, VCF and TorchScript model."""

import pandas as pd
import pysam
import pytest
import torch

from probekit import SequenceModel, cli
from probekit.testing import ToyConv
from probekit.variants import score_variants

GENOME = "ACGTTGCAACGTACGTTGCAACGTTGCAACGTACGTTGCA"
VCF = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=40>\n"
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    "chr1\t10\trs1\tC\tT,G\t.\t.\t.\n"
    "chr1\t15\trs2\tG\tA\t.\t.\t.\n"
    "chr1\t20\trs3\tAA\tA\t.\t.\t.\n"
    "chr1\t25\trs4\tG\t<DEL>\t.\t.\t.\n"
)


@pytest.fixture
def files(tmp_path):
    genome, vcf, model = tmp_path / "g.fa", tmp_path / "calls.vcf", tmp_path / "toy.pt"
    genome.write_text(f">chr1\n{GENOME}\n")
    vcf.write_text(VCF)
    torch.manual_seed(0)
    torch.jit.script(ToyConv().eval()).save(str(model))
    return genome, vcf, model


def variants_args(genome, vcf, model, *extra):
    return ["variants", "--model", str(model), "--genome", str(genome), "--vcf", str(vcf), "--length", "10",
            "--device", "cpu", "--no-progress", "--draws", "20", *extra]  # fmt: skip


def test_scores_every_alt_and_writes_table_and_vcf(files, tmp_path, capsys):
    genome, vcf, model = files
    table, vcf_out = tmp_path / "out" / "scores.tsv", tmp_path / "out" / "scored.vcf.gz"
    assert cli.main(variants_args(genome, vcf, model, "--table", str(table), "--vcf-out", str(vcf_out))) == 0
    frame = pd.read_csv(table, sep="\t")
    assert len(frame) == 5  # one row per ALT
    assert frame["error"].notna().sum() >= 1 and frame.loc[frame["id"].str.startswith("rs4"), "error"].notna().all()
    adapter = SequenceModel(torch.jit.load(str(model)), output=1, device="cpu")
    expected = score_variants(adapter, vcf, genome, length=10, n_draws=20).to_frame()
    pd.testing.assert_series_equal(frame["delta"], expected["delta"], check_names=False)
    pd.testing.assert_series_equal(frame["p_value"], expected["p_value"], check_names=False)
    with pysam.VariantFile(str(vcf_out)) as scored:
        assert len(list(scored)) == 4
    out = capsys.readouterr().out
    assert "not scored: " in out
    assert "scored 4 of 5 variants (1 errors); median |delta|" in out


def test_csv_table_and_no_context(files, tmp_path):
    genome, vcf, model = files
    table = tmp_path / "scores.csv"
    assert cli.main(variants_args(genome, vcf, model, "--table", str(table), "--no-context")) == 0
    assert pd.read_csv(table)["p_value"].isna().all()


def test_missing_genome_is_one_error_line(files, tmp_path, capsys):
    _, vcf, model = files
    with pytest.raises(SystemExit) as stop:
        cli.main(variants_args(tmp_path / "none.fa", vcf, model, "--table", str(tmp_path / "s.tsv")))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("probekit: error: --genome file not found")


@pytest.mark.parametrize("extra", [["--table", "s.txt"], ["--table", "s.tsv", "--vcf-out", "x.vcf"]])
def test_bad_outputs_are_refused(files, tmp_path, capsys, extra):
    genome, vcf, model = files
    if "--vcf-out" in extra:
        vcf = tmp_path / "calls.tsv"
        vcf.write_text("CHROM\tPOS\tREF\tALT\nchr1\t10\tC\tT\n")
    with pytest.raises(SystemExit) as stop:
        cli.main(variants_args(genome, vcf, model, *[str(tmp_path / e) if "." in e else e for e in extra]))
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("probekit: error: ")


def test_nothing_scored_exits_1(files, tmp_path, capsys):
    genome, _, model = files
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(VCF.split("chr1\t10")[0] + "chr1\t25\trs4\tG\t<DEL>\t.\t.\t.\n")
    assert cli.main(variants_args(genome, vcf, model, "--table", str(tmp_path / "s.tsv"))) == 1
    assert "no variant could be scored" in capsys.readouterr().out


def test_chrom_alias_reads_a_vcf_name_as_the_genome_s(files, tmp_path):
    genome, _, model = files
    vcf = tmp_path / "mt.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nMT\t10\tm1\tC\tT\t.\t.\t.\n")
    table = tmp_path / "t.tsv"
    assert cli.main(variants_args(genome, vcf, model, "--table", str(table), "--no-motifs")) == 1
    assert "is not in the genome" in pd.read_csv(table, sep="\t")["error"][0]
    assert cli.main(variants_args(genome, vcf, model, "--table", str(table), "--no-motifs", "--chrom-alias", "MT=chr1")) == 0
    frame = pd.read_csv(table, sep="\t")
    assert frame["error"].isna().all() and "alias" in frame["note"][0]
    with pytest.raises(SystemExit):
        cli.main(variants_args(genome, vcf, model, "--table", str(table), "--chrom-alias", "MT"))
