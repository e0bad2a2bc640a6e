"""Streamed, chunked variant scoring: Parquet/TSV tables, resuming after an interrupt, the report and the CLI."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from probekit import SequenceModel, cli
from probekit.probe.chunks import ChunksKept
from probekit.testing import ToyConv
from probekit.variants import score_variants, score_variants_to_table, variant_report
from probekit.variants.stream import partial_folder

pytest.importorskip("pyarrow")

rng = np.random.default_rng(7)
GENOME = "".join(rng.choice(list("ACGT"), 300))


def _vcf_text(n: int) -> str:
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=300>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for k in range(n):
        pos = 20 + 9 * k
        ref = GENOME[pos - 1]
        alt = "ACGT"[("ACGT".index(ref) + 1 + k % 3) % 4]
        if k % 7 == 3:
            alt = ref + "GT"  # an insertion
        lines.append(f"chr1\t{pos}\tv{k}\t{ref}\t{alt}\t.\t.\t.")
    lines.append("chr1\t40\tbad\tT\t<DEL>\t.\t.\t.")
    return "\n".join(lines) + "\n"


@pytest.fixture
def files(tmp_path):
    genome, vcf = tmp_path / "g.fa", tmp_path / "calls.vcf"
    genome.write_text(f">chr1\n{GENOME}\n")
    vcf.write_text(_vcf_text(25))
    return genome, vcf


class Interrupting(nn.Module):
    """ToyConv that raises KeyboardInterrupt on its ``stop_at``-th call, as a Ctrl-C would."""

    def __init__(self, stop_at: int):
        super().__init__()
        self.inner, self.calls, self.stop_at = ToyConv(seed=2), 0, stop_at

    def forward(self, x):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner(x)


@pytest.mark.parametrize("name", ["scores.parquet", "scores.tsv"])
def test_streamed_table_equals_one_call(files, tmp_path, name):
    genome, vcf = files
    adapter = SequenceModel(ToyConv(seed=2), output=1, device="cpu")
    outcome = score_variants_to_table(adapter, vcf, genome, table=tmp_path / name, length=20, settings={}, chunk_size=4,
                                      n_draws=10, progress=False, log=lambda line: None)  # fmt: skip
    whole = score_variants(adapter, vcf, genome, length=20, n_draws=10).to_frame()
    table = pd.read_parquet(tmp_path / name) if name.endswith("parquet") else pd.read_csv(tmp_path / name, sep="\t")
    assert len(table) == len(whole) == outcome.n_rows == 26
    assert outcome.n_chunks == 7 and outcome.n_errors == 1
    np.testing.assert_allclose(table["delta"], whole["delta"], rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(table["p_value"], whole["p_value"], rtol=1e-12, equal_nan=True)  # ranks are tie-tolerant
    assert table["id"].tolist() == whole["id"].tolist()
    assert not partial_folder(tmp_path / name).exists()
    strongest = whole[whole["error"].isna()].assign(size=whole["delta"].abs()).sort_values("size", ascending=False, kind="stable")
    assert outcome.top["id"].tolist()[:5] == strongest["id"].tolist()[:5]
    assert outcome.abs_delta_median == pytest.approx(float(strongest["size"].median()), rel=1e-6)


def test_interrupted_run_resumes_to_the_same_table(files, tmp_path):
    genome, vcf = files
    table = tmp_path / "scores.parquet"
    model = Interrupting(stop_at=9)
    adapter = SequenceModel(model, output=1, device="cpu", batch_size=64)
    with pytest.raises(ChunksKept) as stop:
        score_variants_to_table(adapter, vcf, genome, table=table, length=20, settings={"m": 1}, chunk_size=4, n_draws=10,
                                progress=False, log=lambda line: None)  # fmt: skip
    kept = stop.value.n
    assert kept >= 1 and len(list(partial_folder(table).glob("chunk-*.parquet"))) == kept
    assert not table.exists()
    model.stop_at = -1
    lines = []
    outcome = score_variants_to_table(adapter, vcf, genome, table=table, length=20, settings={"m": 1}, chunk_size=4,
                                      n_draws=10, progress=False, log=lines.append)  # fmt: skip
    assert outcome.n_reused == kept and lines and "reused" in lines[0]
    fresh = tmp_path / "fresh.parquet"
    score_variants_to_table(SequenceModel(ToyConv(seed=2), output=1, device="cpu"), vcf, genome, table=fresh, length=20,
                            settings={"m": 1}, chunk_size=4, n_draws=10, progress=False, log=lambda line: None)  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(table), pd.read_parquet(fresh))


def test_changed_settings_do_not_reuse_chunks(files, tmp_path):
    genome, vcf = files
    adapter = SequenceModel(ToyConv(seed=2), output=1, device="cpu")
    table = tmp_path / "scores.tsv"
    folder = partial_folder(table)
    folder.mkdir()
    first = score_variants_to_table(adapter, vcf, genome, table=table, length=20, settings={"m": 1}, chunk_size=4,
                                    context=False, progress=False, log=lambda line: None)  # fmt: skip
    assert first.n_reused == 0
    # a saved chunk of other settings in the folder is not one of this run's
    folder.mkdir()
    (folder / "chunk-000000-0000000000000000.parquet").write_bytes(b"not this run")
    again = score_variants_to_table(adapter, vcf, genome, table=table, length=20, settings={"m": 2}, chunk_size=4,
                                    context=False, progress=False, log=lambda line: None)  # fmt: skip
    assert again.n_reused == 0


def test_report_marks_the_strongest_variants(files, tmp_path):
    genome, vcf = files
    adapter = SequenceModel(ToyConv(seed=2), output=1, device="cpu")
    result = score_variants(adapter, vcf, genome, length=20, n_draws=10)
    report = variant_report(adapter, result, genome, length=20, top=3)
    frame = result.to_frame()
    top_id = frame.loc[frame["delta"].abs().idxmax(), "id"]
    assert report.top["id"][0] == top_id
    entry = report.ism[top_id]
    # the ISM of the report is the model's: the variant's own effect is its delta
    row = frame.set_index("id").loc[top_id]
    if row["kind"] == "SNV":
        assert entry["effects"][entry["offset"], "ACGT".index(row["alt"])] == pytest.approx(row["delta"], rel=1e-5, abs=1e-6)
    html = report.to_html(tmp_path / "r.html")
    assert html.count("<img") == 1 + len(report.ism)
    assert top_id in html and "Variants with errors" in html


def test_cli_streams_to_parquet_with_vcf_and_report(files, tmp_path, capsys):
    genome, vcf = files
    model = tmp_path / "toy.pt"
    torch.jit.script(ToyConv(seed=2).eval()).save(str(model))
    table, vcf_out, html = tmp_path / "o" / "v.parquet", tmp_path / "o" / "v.vcf.gz", tmp_path / "o" / "r.html"
    argv = ["variants", "--model", str(model), "--genome", str(genome), "--vcf", str(vcf), "--length", "20", "--device",
            "cpu", "--no-progress", "--draws", "10", "--chunk-size", "5", "--no-motifs", "--table", str(table),
            "--vcf-out", str(vcf_out), "--out", str(html), "--lfc"]  # fmt: skip
    assert cli.main(argv) == 0
    frame = pd.read_parquet(table)
    assert len(frame) == 26 and "log2_fc" in frame.columns
    import pysam

    with pysam.VariantFile(str(vcf_out)) as records:
        deltas = {r.id: r.info["PK_DELTA"][0] for r in records}
    assert deltas["v0"] == pytest.approx(frame.loc[frame["id"] == "v0", "delta"].item(), rel=1e-5)
    assert html.read_text().count("<img") >= 2
    out = capsys.readouterr().out
    assert "scored 25 of 26 variants (1 errors)" in out


def test_the_critical_region_flag_survives_the_parquet_table(files, tmp_path):
    genome, vcf = files
    adapter = SequenceModel(ToyConv(seed=2), output=1, device="cpu")
    table = tmp_path / "scores.parquet"
    score_variants_to_table(adapter, vcf, genome, table=table, length=20, settings={}, chunk_size=4, n_draws=10,
                            progress=False, log=lambda line: None)  # fmt: skip
    whole = score_variants(adapter, vcf, genome, length=20, n_draws=10).to_frame()
    read = pd.read_parquet(table)
    assert read["in_critical_region"].tolist() == whole["in_critical_region"].tolist()
    assert any(v is True for v in whole["in_critical_region"]) or any(v is False for v in whole["in_critical_region"])
