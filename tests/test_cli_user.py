"""The command line as a new user meets it: their own model file in their own folder, a fresh shell."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from probekit import cli
from probekit.adapters import ModelCallError
from probekit.probe import chunks as chunking

PROBEKIT = Path(sys.executable).with_name("probekit")
FAST = ["--max-edits", "1", "--baseline-draws", "10", "--no-progress", "--device", "cpu", "--max-figures", "0"]
SEQUENCES = {"first": "ACGTTGACTCAGGCATACGTCCAT", "second": "TTGACCATGATGCAGTCAGGTACA", "third": "CCATGCAGTTGACGTCAGTACGAT"}

USER_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv1d(4, channels, 5, padding=2)
        self.head = nn.Linear(channels, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).amax(-1))
'''


class Conv(nn.Module):
    """A small two-class CNN, as a user might train."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).amax(-1))


class OneRow(nn.Module):
    """Averages over the batch by mistake: one row whatever the batch."""

    def __init__(self):
        super().__init__()
        self.net = Conv()

    def forward(self, x):
        return self.net(x).mean(0, keepdim=True)


class RaisesOnPolyG(nn.Module):
    """Raises on a sequence that is mostly G, as a model with a bad vocabulary entry might."""

    def __init__(self):
        super().__init__()
        self.net = Conv()

    def forward(self, x):
        if bool((x[:, 2, :].sum(-1) >= 20).any()):
            raise ValueError("poly-G input is out of range")
        return self.net(x)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The user's folder, made the working directory, with a FASTA file of three sequences."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seqs.fa").write_text("".join(f">{name}\n{seq}\n" for name, seq in SEQUENCES.items()))
    yield tmp_path
    sys.modules.pop("mymodel", None)  # imported from this folder by the command; the next test has its own


def torchscript(model: nn.Module, folder: Path, name: str = "model.ts") -> Path:
    path = folder / name
    torch.jit.script(model).save(str(path))
    return path


def user_module(folder: Path):
    """``mymodel.py`` written in ``folder`` and its ``Net`` class, loaded without putting ``folder`` on the path."""
    import importlib.util

    (folder / "mymodel.py").write_text(USER_MODULE)
    spec = importlib.util.spec_from_file_location("_user_mymodel", folder / "mymodel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net


def dna(model: Path, *extra) -> list[str]:
    return ["dna", "--model", str(model), "--fasta", "seqs.fa", "--out", "report.html", *FAST, *extra]


def run_probekit(folder: Path, *args) -> subprocess.CompletedProcess:
    """The installed ``probekit`` command in ``folder``, as from a fresh shell."""
    if not PROBEKIT.exists():
        pytest.skip("the probekit command is not installed next to this Python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(PROBEKIT), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("probekit: error: "), err
    return err


def fails(args, capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    return error_line(capsys)


# ------------------------------------------------------------ --arch from the user's folder
def test_arch_module_in_the_working_folder_with_constructor_arguments(folder):
    torch.save(user_module(folder)(channels=32).state_dict(), folder / "model.pt")
    done = run_probekit(folder, *dna(folder / "model.pt", "--arch", "mymodel:Net", "--arch-kwargs", '{"channels": 32}'))
    assert done.returncode == 0, done.stderr
    assert (folder / "report.html").exists()
    assert "probed 3 of 3 sequences (0 errors); flip reached for" in done.stdout
    assert not (folder / "report.html.partial").exists()


def test_arch_module_that_is_not_there_says_where_it_looked(folder):
    torch.save(user_module(folder)().state_dict(), folder / "model.pt")
    done = run_probekit(folder, *dna(folder / "model.pt", "--arch", "mymodl:Net"))
    assert done.returncode == 2
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert f"cannot import 'mymodl' for --arch mymodl:Net: No module named 'mymodl' (looked in the current folder {folder}" in err
    assert not (folder / "report.html.partial").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ("{channels: 32}", "bad --arch-kwargs '{channels: 32}': not JSON"),
        ("[32]", "bad --arch-kwargs '[32]': a JSON list where an object"),
        ('{"chanels": 32}', "cannot build --arch mymodel:Net with --arch-kwargs {'chanels': 32}"),
    ],
)
def test_bad_arch_kwargs_are_one_line(folder, capsys, kwargs, message):
    torch.save(user_module(folder)().state_dict(), folder / "model.pt")
    err = fails(dna(folder / "model.pt", "--arch", "mymodel:Net", "--arch-kwargs", kwargs), capsys)
    assert message in err


def test_arch_kwargs_without_arch(folder, capsys):
    torch.save(user_module(folder)().state_dict(), folder / "model.pt")
    assert "--arch-kwargs needs --arch" in fails(dna(folder / "model.pt", "--arch-kwargs", '{"channels": 8}'), capsys)


def test_a_state_dict_of_other_constructor_arguments_points_to_arch_kwargs(folder, capsys):
    torch.save(user_module(folder)(channels=32).state_dict(), folder / "model.pt")
    err = fails(dna(folder / "model.pt", "--arch", "mymodel:Net"), capsys)
    assert "does not fit --arch mymodel:Net" in err and "give them with --arch-kwargs" in err
    assert "conv.weight: (32, 4, 5) in the file, (8, 4, 5) in the model" in err


def test_arch_kwargs_are_part_of_the_saved_chunks_key(folder, capsys):
    torch.save(user_module(folder)(channels=32).state_dict(), folder / "model.pt")
    args = dna(folder / "model.pt", "--arch", "mymodel:Net", "--keep-partial")
    assert cli.main(args + ["--arch-kwargs", '{"channels": 32}']) == 0
    saved = json.loads((folder / "report.html.partial" / "settings.json").read_text())
    assert saved["arch_kwargs"] == {"channels": 32}
    capsys.readouterr()
    assert cli.main(args + ["--arch-kwargs", '{ "channels" : 32 }']) == 0  # the same arguments, spelled otherwise
    assert "reused 1 of 1 chunks" in capsys.readouterr().out


# ------------------------------------------------------------ messages in command-line words
def test_pickled_model_error_speaks_of_flags_without_escape_codes(folder, capsys):
    torch.save(Conv(), folder / "whole.pt")
    err = fails(dna(folder / "whole.pt"), capsys)
    assert "--trust" in err and "--arch module:Class" in err
    assert "trust=True" not in err and "arch=" not in err and "\x1b" not in err
    assert "holds a pickled" in err


def test_state_dict_without_arch_asks_for_the_flag(folder, capsys):
    torch.save(Conv().state_dict(), folder / "model.pt")
    err = fails(dna(folder / "model.pt"), capsys)
    assert err.endswith("say which architecture it belongs to with --arch module:Class")


def test_torchscript_with_arch_runs_and_says_arch_was_not_needed(folder, capsys):
    path = torchscript(Conv(), folder)
    assert cli.main(dna(path, "--arch", "mymodel:Net")) == 0  # no such module: it is never imported
    printed = capsys.readouterr().out
    assert f"note: {path} is a TorchScript file, which carries its own architecture; --arch mymodel:Net was not needed" in printed
    assert "probed 3 of 3 sequences" in printed


# ------------------------------------------------------------ model failures
def test_wrong_output_shape_is_one_line_and_leaves_no_partial_folder(folder, capsys):
    err = fails(dna(torchscript(OneRow(), folder)), capsys)
    assert err.startswith("probekit: error: the model returned 1 row for a batch of 3"), err
    assert "Traceback" not in err
    assert not (folder / "report.html.partial").exists() and not (folder / "report.html").exists()


def test_a_model_raising_on_one_record_leaves_the_others_probed(folder, capsys):
    with open(folder / "seqs.fa", "a") as handle:
        handle.write(">polyG\n" + "G" * 24 + "\n")
    assert cli.main(dna(torchscript(RaisesOnPolyG(), folder), "--table", "positions.csv")) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("not probed: ")]
    assert lines == ["not probed: record 'polyG': the model raised ValueError: poly-G input is out of range"], captured.out
    assert "probed 3 of 4 sequences (1 error); flip reached for" in captured.out
    assert set(pd.read_csv(folder / "positions.csv")["id"]) == set(SEQUENCES)
    assert all(line.startswith("probekit: warning: ") for line in captured.err.splitlines()), captured.err


def test_summary_line_counts_fasta_errors(folder, capsys):
    with open(folder / "seqs.fa", "a") as handle:
        handle.write(">iupac\nACGTRACGTACGTACGTACGTACG\n")
    assert cli.main(dna(torchscript(Conv(), folder))) == 0
    printed = capsys.readouterr().out
    assert "skipping: record 'iupac'" in printed and "not probed" not in printed
    assert "probed 3 of 4 sequences (1 error); flip reached for" in printed


def test_a_failure_after_finished_chunks_says_what_is_kept(folder, capsys, monkeypatch):
    real, calls = chunking._probe_chunk, []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ModelCallError("the model failed on a batch of shape (1, 4, 24): out of range")
        return real(*args, **kwargs)

    monkeypatch.setattr(chunking, "_probe_chunk", fail_on_second)
    err = fails(dna(torchscript(Conv(), folder), "--chunk-size", "2"), capsys)
    assert "out of range; 1 finished chunk kept in report.html.partial, and a rerun with the same settings resumes" in err
    assert len(list((folder / "report.html.partial").glob("chunk-*.pt"))) == 1


def test_missing_motif_extra_is_one_line_and_leaves_nothing(folder, capsys, monkeypatch):
    import probekit.motifs

    def no_pyjaspar(*args, **kwargs):
        raise ImportError('JASPAR motifs need pyjaspar: pip install "probekit[motifs]"')

    monkeypatch.setattr(probekit.motifs, "jaspar_motifs", no_pyjaspar)
    err = fails(dna(torchscript(Conv(), folder), "--motifs"), capsys)
    assert err == 'probekit: error: --motifs: JASPAR motifs need pyjaspar: pip install "probekit[motifs]"'
    assert not (folder / "report.html.partial").exists()


def test_an_error_inside_the_run_removes_the_partial_folder_it_made(folder, capsys, monkeypatch):
    def no_extra(*args, **kwargs):
        raise ImportError('logos need logomaker: pip install "probekit[plot]"')

    monkeypatch.setattr(chunking, "_probe_chunk", no_extra)
    err = fails(dna(torchscript(Conv(), folder)), capsys)
    assert err == 'probekit: error: logos need logomaker: pip install "probekit[plot]"'
    assert not (folder / "report.html.partial").exists()


# ------------------------------------------------------------ help
def test_method_help_says_when_exhaustive_is_worth_it():
    parser = cli.build_parser()
    for command in ("dna", "demo"):
        text = " ".join(parser._subparsers._group_actions[0].choices[command].format_help().split())
        assert "exhaustive enumerates every set up to --max-edits" in text
        assert "worth it only when the summary has answers auto could not prove minimal" in text


class AllNaN(nn.Module):
    """Returns NaN for every input, as a model with a broken normalisation might."""

    def __init__(self):
        super().__init__()
        self.net = Conv()

    def forward(self, x):
        return self.net(x) * float("nan")


def test_a_model_that_scores_nothing_exits_1_with_every_record_named(folder, capsys):
    assert cli.main(dna(torchscript(AllNaN(), folder))) == 1
    out = capsys.readouterr().out
    assert sum(line.startswith("not probed: ") and "the model returned NaN" in line for line in out.splitlines()) == 3
    assert "probed 0 of 3 sequences (3 errors)" in out and "no record could be probed" in out
    assert (folder / "report.html").exists()  # the report with its error rows is still written


def test_the_advice_survives_a_deep_path(folder, capsys):
    deep = folder.joinpath(*["a-rather-long-folder-name"] * 8)
    deep.mkdir(parents=True)
    torch.save(Conv(), deep / "whole.pt")
    err = fails(dna(deep / "whole.pt"), capsys)
    assert "--trust" in err and "--arch module:Class" in err and "..." not in err
