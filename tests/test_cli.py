"""The probekit command line, end to end on the bundled demo model."""

import re

import pandas as pd
import pytest
import torch

from probekit import cli
from probekit.probe import chunks as chunking
from probekit.datasets import DEMO_ARCH, dna_demo_paths, load_dna_demo

FAST = ["--max-edits", "1", "--baseline-draws", "10", "--no-progress", "--device", "cpu", "--max-figures", "0", "--batch-size", "512"]
WIDTH = 80  # the demo model pools over positions, so it takes windows of any length


@pytest.fixture(scope="module")
def heldout():
    return load_dna_demo()[1]


@pytest.fixture(scope="module")
def windows(heldout):
    """Five demo sequences cut to WIDTH bases around the planted site."""
    rows = heldout.head(5).copy()
    starts = [min(max(0, r.start - 30), len(r.sequence) - WIDTH) if r.start >= 0 else 0 for r in rows.itertuples()]
    rows["sequence"] = [s[a : a + WIDTH] for s, a in zip(rows["sequence"], starts)]
    return rows


@pytest.fixture
def fasta(tmp_path, windows):
    """Five demo windows and one bad record."""
    text = "".join(f">{r.id}\n{r.sequence}\n" for r in windows.itertuples()) + ">broken\nACGTRACGT\n"
    path = tmp_path / "in.fa"
    path.write_text(text)
    return path


def dna_args(fasta, out, *extra):
    return ["dna", "--model", str(dna_demo_paths()["model"]), "--arch", DEMO_ARCH, "--fasta", str(fasta), "--out", str(out), *FAST, *extra]


def chunk_files(out):
    return sorted(out.with_name(out.name + ".partial").glob("chunk-*.pt"))


def test_dna_end_to_end(tmp_path, fasta, windows, capsys):
    out, table = tmp_path / "report.html", tmp_path / "positions.csv"
    assert cli.main(dna_args(fasta, out, "--table", str(table), "--chunk-size", "2", "--max-figures", "3")) == 0
    html = out.read_text()
    assert html.count("data:image/png;base64,") >= 3  # one per shown sequence, embedded, not linked
    frame = pd.read_csv(table)
    for column in ["id", "position", "ref", "importance", "rank", "critical", "region", "motif", "effect_A", "effect_T"]:
        assert column in frame.columns
    good = windows
    assert list(frame["id"].unique()) == good["id"].tolist()
    assert len(frame) == 5 * WIDTH
    # The reference base column is the sequence read back.
    first = frame[frame["id"] == good["id"].iloc[0]].sort_values("position")
    assert "".join(first["ref"]) == good["sequence"].iloc[0]
    printed = capsys.readouterr().out
    assert "broken" in printed and "'R'" in printed  # the bad record is named, the rest went on
    assert "broken" in html
    assert not out.with_name(out.name + ".partial").exists()  # cleaned up after success


def test_cli_table_matches_library_call(tmp_path, fasta, windows, device):
    """The CLI on ``device`` gives what probe() gives on the CPU (chunking and device change nothing)."""
    from probekit import SequenceModel, outputs
    from probekit.probe import probe

    args = dna_args(fasta, tmp_path / "r.html", "--table", str(tmp_path / "t.csv"), "--chunk-size", "2")
    args[args.index("--device") + 1] = device
    cli.main(args)
    table = pd.read_csv(tmp_path / "t.csv")
    model, _ = load_dna_demo()
    adapter = SequenceModel(model, output=outputs.margin(1), device="cpu")
    expected = probe(adapter, windows[["id", "sequence"]], max_edits=1, baseline_draws=10).to_frame()
    assert table["id"].tolist() == expected["id"].tolist()
    for column in ["importance", "effect_A", "effect_C", "effect_G", "effect_T"]:
        assert (table[column] - expected[column]).abs().max() < 1e-4, column


def test_chunked_run_equals_one_chunk(tmp_path, fasta):
    """Merging chunk reports gives the same positions table as probing all at once."""
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    cli.main(dna_args(fasta, a, "--table", str(tmp_path / "a.csv"), "--chunk-size", "2"))
    cli.main(dna_args(fasta, b, "--table", str(tmp_path / "b.csv"), "--chunk-size", "100"))
    one, many = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    # Batches of different composition round differently in the last float bits.
    pd.testing.assert_frame_equal(one, many, check_exact=False, atol=1e-5, rtol=1e-4)


def test_resume_reuses_finished_chunks(tmp_path, fasta, capsys):
    out, table = tmp_path / "report.html", tmp_path / "t.csv"
    args = dna_args(fasta, out, "--table", str(table), "--chunk-size", "2", "--keep-partial")
    cli.main(args)
    first_table = pd.read_csv(table)
    chunks = chunk_files(out)
    assert len(chunks) == 3  # 6 records in chunks of 2
    stamps = {p.name: p.stat().st_mtime_ns for p in chunks}
    chunks[1].unlink()  # as if the run had stopped while on the second chunk
    capsys.readouterr()

    calls = []
    real = chunking._probe_chunk
    cli_probe = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunking, "_probe_chunk", cli_probe)
        cli.main(args)
    assert len(calls) == 1
    assert "reused 2 of 3 chunks" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in chunk_files(out)}
    assert after[chunks[0].name] == stamps[chunks[0].name]
    assert after[chunks[2].name] == stamps[chunks[2].name]
    assert chunks[1].name in after
    pd.testing.assert_frame_equal(pd.read_csv(table), first_table)


def test_interrupted_run_resumes(tmp_path, fasta, capsys):
    out = tmp_path / "report.html"
    args = dna_args(fasta, out, "--chunk-size", "2")
    real = chunking._probe_chunk
    calls = []

    def stop_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunking, "_probe_chunk", stop_on_second)
        with pytest.raises(SystemExit) as stopped:
            cli.main(args)
    assert stopped.value.code == 130
    assert f"1 finished chunk kept in {out.with_name(out.name + '.partial')}" in capsys.readouterr().err
    assert not out.exists() and len(chunk_files(out)) == 1
    saved = chunk_files(out)[0]
    stamp = saved.stat().st_mtime_ns
    calls.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunking, "_probe_chunk", lambda *a, **k: calls.append(1) or real(*a, **k))
        cli.main(args + ["--keep-partial"])
    assert len(calls) == 2 and saved.stat().st_mtime_ns == stamp
    assert "reused 1 of 3 chunks" in capsys.readouterr().out
    assert out.exists()


def test_an_interrupt_before_any_chunk_is_saved_claims_none(tmp_path, fasta, capsys, monkeypatch):
    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(chunking, "_probe_chunk", stop)
    with pytest.raises(SystemExit) as stopped:
        cli.main(dna_args(fasta, tmp_path / "r.html", "--chunk-size", "2"))
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == "probekit: interrupted"
    assert chunk_files(tmp_path / "r.html") == []


def test_changed_settings_do_not_reuse_chunks(tmp_path, fasta, capsys):
    out = tmp_path / "report.html"
    cli.main(dna_args(fasta, out, "--chunk-size", "3", "--keep-partial"))
    capsys.readouterr()
    cli.main(dna_args(fasta, out, "--chunk-size", "3", "--keep-partial", "--goal", "decrease:1.0"))
    assert "reused" not in capsys.readouterr().out
    assert len(chunk_files(out)) == 4  # two of the first settings, two of the new


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--goal": "sideways"}, "bad --goal 'sideways'"),
        ({"--goal": "below:x"}, "bad --goal 'below:x'"),
        ({"--output": "logit:x"}, "bad --output 'logit:x'"),
        ({"--fasta": "missing.fa"}, "FASTA file not found"),
        ({"--model": "missing.pt"}, "model file not found"),
        ({"--arch": None}, "say which architecture"),
        ({"--arch": "probekit.testing:ToyNLC"}, "cannot load model"),
        ({"--arch": "no_such_module:Net"}, "cannot import 'no_such_module'"),
        ({"--max-edits": "0"}, "--max-edits must be at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, fasta, capsys, change, message):
    args = dna_args(fasta, tmp_path / "r.html")
    for flag, value in change.items():
        if flag not in args:
            args += [flag, ""]
        i = args.index(flag)
        if value is None:
            del args[i : i + 2]
        else:
            args[i + 1] = str(tmp_path / value) if value.endswith((".fa", ".pt")) else value
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("probekit: error:"), err
    assert message in err, err
    assert not (tmp_path / "r.html").exists()


def test_unloadable_model_file(tmp_path, fasta, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    args = dna_args(fasta, tmp_path / "r.html")
    args[args.index("--model") + 1] = str(junk)
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    assert re.match(r"probekit: error: cannot load model .*junk\.pt", capsys.readouterr().err)


def test_a_state_dict_that_does_not_fit_the_architecture_names_every_mismatch(tmp_path, fasta, capsys):
    args = dna_args(fasta, tmp_path / "r.html")
    args[args.index("--arch") + 1] = "probekit.testing:ToyConv"
    with pytest.raises(SystemExit):
        cli.main(args)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load model" in err
    assert "Missing key" in err or "size mismatch" in err or "Unexpected key" in err, err


def test_pickled_model_needs_trust(tmp_path, fasta, capsys):
    model, _ = load_dna_demo()
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    args = [a for a in dna_args(fasta, tmp_path / "r.html") if a not in ("--arch", DEMO_ARCH)]
    args[args.index("--model") + 1] = str(path)
    with pytest.raises(SystemExit):
        cli.main(args)
    assert "trust" in capsys.readouterr().err
    assert cli.main(args + ["--trust"]) == 0


def test_missing_required_argument_exits_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["dna", "--fasta", "x.fa"])
    assert stopped.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_parse_output_and_goal():
    y = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    assert torch.equal(cli.parse_output("margin:1")(y), torch.tensor([2.0, -2.0]))
    assert torch.equal(cli.parse_output("1")(y), torch.tensor([3.0, 0.0]))
    assert torch.allclose(cli.parse_output("prob:0")(y), torch.softmax(y, 1)[:, 0])
    assert str(cli.parse_goal("above:2.5")) == "above:2.5"
    with pytest.raises(cli.CLIError):
        cli.parse_output("softmax:1")


def test_demo_dna_reports_recovery(tmp_path, capsys):
    assert cli.main(["demo", "dna", "--out", str(tmp_path), "--limit", "12", *FAST]) == 0
    printed = capsys.readouterr().out
    match = re.search(r"planted motif is the top critical region in (\d+)/(\d+) sequences", printed)
    assert match, printed
    top, n = int(match.group(1)), int(match.group(2))
    heldout = load_dna_demo()[1]
    assert n == int((heldout.head(12)["label"] == 1).sum())
    assert top >= 0.8 * n
    assert (tmp_path / "dna_demo_report.html").exists()
    recovery = pd.read_csv(tmp_path / "dna_demo_recovery.csv")
    assert int(recovery["top"].sum()) == top
    assert re.search(r"probed 12 of 12 sequences \(0 errors\); flip reached for \d+/12, proved minimal for \d+", printed)
    regions = pd.read_csv(tmp_path / "dna_demo_regions.csv")
    assert regions["motif"].notna().any()  # motifs are annotated by default


def test_demo_motifs_default_on_off_and_without_pyjaspar(tmp_path, capsys, monkeypatch):
    import probekit.motifs

    parser = cli.build_parser()
    assert parser.parse_args(["demo", "dna"]).motifs is None
    assert parser.parse_args(["demo", "dna", "--motifs"]).motifs is True
    assert parser.parse_args(["demo", "dna", "--no-motifs"]).motifs is False

    def no_pyjaspar(*args, **kwargs):
        raise ImportError('JASPAR motifs need pyjaspar: pip install "probekit[motifs]"')

    monkeypatch.setattr(probekit.motifs, "jaspar_motifs", no_pyjaspar)
    assert cli.main(["demo", "dna", "--out", str(tmp_path), "--limit", "2", *FAST]) == 0
    printed = capsys.readouterr().out
    skipped = [line for line in printed.splitlines() if line.startswith("motif annotation skipped")]
    assert skipped == ['motif annotation skipped: JASPAR motifs need pyjaspar: pip install "probekit[motifs]"; '
                       "--no-motifs silences this"]  # fmt: skip
    assert pd.read_csv(tmp_path / "dna_demo_regions.csv")["motif"].isna().all()
    with pytest.raises(SystemExit) as stopped:
        cli.main(["demo", "dna", "--out", str(tmp_path), "--limit", "2", "--motifs", *FAST])
    assert stopped.value.code == 2
    assert "--motifs: JASPAR motifs need pyjaspar" in capsys.readouterr().err
    assert cli.main(["demo", "dna", "--out", str(tmp_path), "--limit", "2", "--no-motifs", *FAST]) == 0
    assert "motif annotation" not in capsys.readouterr().out


def test_registry_has_room_for_more_commands():
    parser = cli.build_parser()
    assert set(cli.COMMANDS) >= {"dna", "demo"}
    assert "dna" in cli.DEMOS
    assert parser.parse_args(["demo", "dna"]).name == "dna"


def test_mol_command_is_wired_through_main(tmp_path, capsys):
    (tmp_path / "m.smi").write_text("CCO a\n")
    with pytest.raises(SystemExit) as stop:
        cli.main(["mol", "--model", str(tmp_path / "missing.pt"), "--molecules", str(tmp_path / "m.smi"), "--out", str(tmp_path / "r.html")])
    assert stop.value.code == 2
    assert "missing.pt" in capsys.readouterr().err
    assert "mol" in cli.DEMOS


def test_autocast_runs_end_to_end_and_reports_its_error(tmp_path, fasta, windows, capsys):
    """--autocast bf16 probes in mixed precision, says how far it moved the outputs, and stays close to fp32."""
    full, mixed = tmp_path / "full.csv", tmp_path / "mixed.csv"
    assert cli.main(dna_args(fasta, tmp_path / "a.html", "--table", str(full))) == 0
    assert "of full precision" not in capsys.readouterr().out
    assert cli.main(dna_args(fasta, tmp_path / "b.html", "--table", str(mixed), "--autocast", "bf16")) == 0
    printed = capsys.readouterr().out
    match = re.search(r"autocast bf16: outputs within ([0-9.e+-]+) of full precision", printed)
    assert match is not None, printed
    error = float(match.group(1))
    assert 0 < error < 0.05  # bf16 keeps 8 bits of mantissa: a small, nonzero change
    a, b = pd.read_csv(full), pd.read_csv(mixed)
    assert a["id"].tolist() == b["id"].tolist()
    scale = a["importance"].abs().max()
    assert (a["importance"] - b["importance"]).abs().max() < 0.1 * scale


def test_autocast_setting_keeps_full_precision_chunks_from_being_reused(tmp_path, fasta, capsys):
    out = tmp_path / "r.html"
    cli.main(dna_args(fasta, out, "--chunk-size", "2", "--keep-partial"))
    capsys.readouterr()
    cli.main(dna_args(fasta, out, "--chunk-size", "2", "--autocast", "bf16"))
    assert "resumed" not in capsys.readouterr().out
