"""The variant demo end to end: motif losses rank first, every bad record is an error row naming it, and the
annotated VCF reads back with every record."""

import math
import warnings

import pandas as pd
import pytest

pysam = pytest.importorskip("pysam")

from probekit import ProbekitWarning, cli  # noqa: E402
from probekit.variants import Genome  # noqa: E402
from probekit.variants.annotate import info_text  # noqa: E402
from probekit.variants.demo import (  # noqa: E402
    DEMO_CONTIGS, demo_adapter, demo_genome, demo_summary, run_variants_demo, write_variants_demo,
)
from probekit.variants.io import variant_label  # noqa: E402

# What each bad record's error says after naming the variant.
BAD_REASONS = {
    "REF does not match the genome": "does not match the genome's",
    "symbolic ALT": "is symbolic",
    "breakend ALT": "is a breakend",
    "missing ALT": "the ALT is missing",
    "non-nucleotide base": "'X' at position 1, not a nucleotide",
    "malformed line (too few columns)": "has 3 tab-separated columns, not the 8 of a VCF record",
    "REF runs past the contig end": "runs 2 bases past the end of chr1",
    "unknown chromosome": "chromosome 'chr9' is not in the genome",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants_demo")
    with pytest.warns(ProbekitWarning, match="data lines 15 could not be parsed by htslib"):
        return run_variants_demo(folder, adapter=demo_adapter(device="cpu", batch_size=128), n_draws=50)


def test_motif_losses_rank_first_by_delta(run):
    frame = run.frame
    losses = frame[frame["role"] == "motif loss"]
    assert len(losses) == 9 and set(losses["planted"]) == {"FOS::JUN", "CTCF", "GATA1"}
    assert sorted(losses["abs_rank"].astype(int)) == list(range(1, 10))
    assert (losses["delta"] < -3).all()  # every loss lowers the "motif" call by much
    neutral = frame[frame["role"] == "neutral"]
    assert neutral["delta"].abs().max() < 0.5 * losses["delta"].abs().min()
    snv_losses = losses[losses["kind"] == "SNV"]
    assert (snv_losses["context"].str.startswith("all ")).all() and (snv_losses["context_rank"] <= 15).all()


def test_one_row_per_input_alt_in_file_order(run):
    frame, truth = run.frame, run.files.truth
    assert frame["id"].tolist() == truth["id"].tolist()
    assert frame[["chrom", "ref", "alt"]].fillna("?").values.tolist() == truth[["chrom", "ref", "alt"]].fillna("?").values.tolist()
    data_lines = [line for line in pysam.BGZFile(str(run.files.vcf)).read().decode().splitlines() if not line.startswith("#")]
    assert frame["record"].nunique() == len(data_lines) == 24
    assert frame.groupby("record").size().max() == 3  # multi-allelic records split, one row per ALT


def test_every_bad_record_kind_is_an_error_row_naming_the_variant(run):
    frame = run.frame
    bad = frame[frame["role"] == "bad"]
    cases = run.files.truth.set_index("id").loc[bad["id"], "case"].tolist()
    assert sorted(cases) == sorted(BAD_REASONS)
    for case, row in zip(cases, bad.to_dict("records")):
        pos = row["pos"] if row["pos"] is not pd.NA else None
        label = variant_label(row["chrom"], pos, row["ref"], row["alt"] if row["ref"] else None)
        assert row["error"].startswith(label + ": "), (case, row["error"])
        assert BAD_REASONS[case] in row["error"], (case, row["error"])
        assert math.isnan(row["delta"]) and math.isnan(row["ref_score"])


def test_good_rows_are_scored_with_their_notes(run):
    frame = run.frame
    good = frame[frame["role"] != "bad"]
    assert good["error"].isna().all() and good["delta"].notna().all() and good["p_value"].notna().all()
    notes = dict(zip(good["id"], good["note"]))
    assert notes["bg_no_chr"] == "chromosome '2' read as the genome's 'chr2' (added 'chr')"
    assert notes["bg_mt"].startswith("chromosome 'MT' read as the genome's 'chrM' (alias); ")
    assert notes["bg_start"] == "61 N added before the start of chr1"
    assert notes["gata1_chrM"] == "41 N added past the end of chrM (length 180)"
    assert set(good.loc[good["padded"], "id"]) == {"bg_start", "gata1_chrM", "bg_mt"}
    assert set(good["kind"]) == {"SNV", "MNV", "insertion", "deletion"}


def test_planted_sites_are_in_the_genome_file(run):
    contigs, sites = demo_genome()
    with Genome(run.files.genome) as genome:
        assert genome.lengths == DEMO_CONTIGS
        for name, sequence in contigs.items():
            assert genome.fetch(name, 0, len(sequence)).sequence == sequence
    for site in sites.to_dict("records"):
        assert contigs[site["chrom"]][site["start"] : site["end"]] == site["site"]
    gaps = sites.sort_values(["chrom", "start"]).groupby("chrom")["start"].diff().dropna()
    assert (gaps >= 300).all()  # no window of the model holds two sites


def test_the_inputs_are_the_same_for_the_same_seed(tmp_path):
    a, b = write_variants_demo(tmp_path / "a"), write_variants_demo(tmp_path / "b")
    for name in ("genome", "vcf"):
        assert getattr(a, name).read_bytes() == getattr(b, name).read_bytes()
    pd.testing.assert_frame_equal(a.truth, b.truth)


def test_annotated_vcf_reads_back_with_every_parsed_record(run):
    with pysam.VariantFile(str(run.written["vcf"])) as handle:
        written = [(r.chrom, r.pos, r.id, r.alts, dict(r.info)) for r in handle]
    frame = run.frame
    records = frame.drop_duplicates("record")
    parsed = records[~records["error"].fillna("").str.contains("tab-separated columns")]
    assert [(c, p) for c, p, *_ in written] == list(zip(parsed["chrom"], parsed["pos"]))
    for (chrom, pos, vid, alts, info), record in zip(written, parsed["record"]):
        rows = frame[frame["record"] == record]
        if alts is None:  # a missing ALT takes no per-ALT value
            assert rows["alt"].tolist() == ["."] and "PK_DELTA" not in info
            continue
        assert len(info["PK_DELTA"]) == len(alts) == len(rows)
        for j, row in enumerate(rows.to_dict("records")):
            assert info["PK_ERR"][j] == info_text(row["error"])
            if row["error"] is None:
                assert info["PK_DELTA"][j] == pytest.approx(row["delta"], rel=1e-5, abs=1e-6)
                assert info["PK_P"][j] == pytest.approx(row["p_value"], rel=1e-5)
    table = pd.read_csv(run.written["table"], sep="\t")
    assert table["id"].tolist() == frame["id"].tolist()


def test_html_report_shows_the_strongest_variants(run):
    html = run.written["report"].read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    for vid in ("fosjun_1", "ctcf_1", "gata1_del"):
        assert vid in html


def test_motif_columns_name_every_loss_and_nothing_else(run):
    frame = run.frame
    losses = frame[frame["role"] == "motif loss"]
    assert (losses["motif_change"] == "loss").all()
    assert [r.split(" ")[0] for r in losses["motif_ref"]] == losses["planted"].tolist()
    assert (losses["motif_ref_p"] <= 1e-4).all() and (losses["motif_delta"] < -5).all()
    others = frame[(frame["role"] == "neutral")]
    assert (others["motif_change"] == "").all()


def test_summary_names_the_losses(run):
    lines = demo_summary(run.frame, top=3)
    assert lines[0] == "top 3 of 20 scored variants by |delta|:"
    assert lines[1].startswith("   1. fosjun_1  SNV  delta -11") and lines[1].endswith("FOS::JUN MA0099.4 site lost (-8.8 bits)")
    assert all(" site lost (" in line for line in lines[1:4])
    assert lines[4] == "motif losses rank 1, 2, 3, 4, 5, 6, 7, 8, 9 by |delta| (all 9 in the top 9)"
    assert lines[5] == "the motif columns call 9 of 9 a loss of the planted factor; 0 other variants have a motif change"
    without = demo_summary(run.frame.drop(columns=[c for c in run.frame if c.startswith("motif_")]), top=3)
    assert all("destroys the planted" in line for line in without[1:4])
    assert not any(line.startswith("the motif columns") for line in without)


def test_cli_demo_variants(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbekitWarning)
        code = cli.main(["demo", "variants", "--out", str(tmp_path), "--device", "cpu", "--batch-size", "128",
                         "--baseline-draws", "20", "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "motif losses rank 1, 2, 3, 4, 5, 6, 7, 8, 9 by |delta| (all 9 in the top 9)" in out
    assert "the motif columns call 9 of 9 a loss of the planted factor" in out
    assert "8 records not scored, each an error row naming it:" in out
    assert (tmp_path / "variants_demo.tsv").exists() and (tmp_path / "variants_demo.vcf.gz.tbi").exists()
