"""``probekit motifs``: errors as one line with exit code 2; the whole run on the demo model (slow)."""

import pandas as pd
import pytest

from probekit import cli
from probekit.cli.motifs import run_demo_motifs
from probekit.datasets import DEMO_ARCH, dna_demo_paths, make_dna_sequences

MODEL = str(dna_demo_paths()["model"])


def _fasta(path, frame):
    path.write_text("".join(f">{i}\n{s}\n" for i, s in zip(frame["id"], frame["sequence"])))
    return str(path)


def test_too_few_sequences_is_one_line_error(tmp_path, capsys):
    fasta = _fasta(tmp_path / "x.fa", make_dna_sequences(5, seed=1))
    with pytest.raises(SystemExit) as stop:
        cli.main(["motifs", "--model", MODEL, "--arch", DEMO_ARCH, "--fasta", fasta, "--out", str(tmp_path / "m.html")])
    assert stop.value.code == 2
    assert "discovery needs at least 20 sequences of one length; got 5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [(["--fasta", "missing.fa"], "FASTA file not found"), (["--random-kmers", "0"], "--random-kmers must be at least 1")],
)
def test_bad_arguments(tmp_path, capsys, change, message):
    fasta = _fasta(tmp_path / "x.fa", make_dna_sequences(5, seed=1))
    argv = ["motifs", "--model", MODEL, "--arch", DEMO_ARCH, "--fasta", fasta, "--out", str(tmp_path / "m.html")]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv + change)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_motifs_command_writes_page_and_tables(tmp_path, capsys):
    frame = make_dna_sequences(300, seed=3000, positive_fraction=0.8, prefix="p")
    fasta = _fasta(tmp_path / "peaks.fa", pd.concat([frame, pd.DataFrame({"id": ["short"], "sequence": ["ACGT"]})]))
    out, table, seqlets = tmp_path / "motifs.html", tmp_path / "patterns.tsv", tmp_path / "seqlets.tsv"
    argv = ["motifs", "--model", MODEL, "--arch", DEMO_ARCH, "--fasta", fasta, "--output", "logit:1", "--out", str(out),
            "--table", str(table), "--seqlets", str(seqlets), "--leiden-runs", "2", "--random-kmers", "99", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "left out: record short has length 4" in printed and "pattern" in printed
    patterns = pd.read_csv(table, sep="\t")
    assert {"pattern", "n_seqlets", "consensus", "match", "match_q", "insertion_p"} <= set(patterns.columns)
    assert (patterns["sign"] == 1).sum() >= 2
    rows = pd.read_csv(seqlets, sep="\t")
    assert rows.loc[rows["id"] == "short", "error"].notna().all()
    assert "data:image/png;base64" in out.read_text()


@pytest.mark.slow
def test_demo_motifs(tmp_path, capsys):
    import argparse

    args = argparse.Namespace(out=tmp_path, limit=300, leiden_runs=2, random_kmers=99, no_progress=True, device=None, batch_size=None)
    assert run_demo_motifs(args) == 0
    assert (tmp_path / "motifs_demo.html").exists() and (tmp_path / "motifs_demo_patterns.tsv").exists()
