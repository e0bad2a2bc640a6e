"""``probekit mol`` as a user meets it: their own model in their own folder, molecules it cannot score, its help."""

import sys

import pytest
import torch
from torch import nn

from probekit import cli

MOLECULES = {"paracetamol": "CC(=O)Nc1ccc(O)cc1", "phenol": "c1ccccc1O", "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
             "glycerol": "OCC(O)CO"}  # fmt: skip
FAST = ["--featurizer", "morgan:1:64", "--goal", "decrease:0.5", "--max-flips", "1", "--baseline-draws", "5",
        "--device", "cpu", "--no-progress", "--max-figures", "0"]  # fmt: skip

USER_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.head = nn.Linear(64, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.linspace(-1.0, 1.0, 64)[None])
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(x) * self.scale
'''


class RaisesOnAspirin(nn.Module):
    """score = w . x, but it raises on a molecule with 15 or more bits set (aspirin, of those here)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.linspace(-1.0, 1.0, 64))

    def forward(self, x):
        if bool((x.sum(dim=1) >= 15).any()):
            raise ValueError("too many substructures")
        return (x @ self.w)[:, None]


class AllNaN(nn.Module):
    """NaN for every molecule, as a model with a broken normalisation might return."""

    def forward(self, x):
        return x[:, :1] * float("nan")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The user's folder, made the working directory, with a SMILES file and a broken record."""
    monkeypatch.chdir(tmp_path)
    lines = [f"{smiles} {name}" for name, smiles in MOLECULES.items()] + ["C1CC( broken"]
    (tmp_path / "m.smi").write_text("\n".join(lines) + "\n")
    yield tmp_path
    sys.modules.pop("mymodel", None)  # imported from this folder by the command; the next test has its own


def mol(model, *extra) -> list[str]:
    return ["mol", "--model", str(model), "--molecules", "m.smi", "--out", "report.html", *FAST, *extra]


def torchscript(model: nn.Module, folder) -> str:
    path = folder / "model.ts"
    torch.jit.script(model).save(str(path))
    return str(path)


def test_arch_kwargs_build_a_state_dict_model_from_the_working_folder(folder, capsys):
    (folder / "mymodel.py").write_text(USER_MODULE)
    sys.path.insert(0, str(folder))
    try:
        import mymodel
    finally:
        sys.path.remove(str(folder))
    torch.save(mymodel.Net().state_dict(), folder / "model.pt")
    sys.modules.pop("mymodel")
    run = ["--arch", "mymodel:Net", "--keep-partial", "--table", "t.csv"]
    assert cli.main(mol(folder / "model.pt", *run, "--arch-kwargs", '{"scale": 1.0}')) == 0
    first = (folder / "t.csv").read_text()
    # other constructor arguments are another model: the saved chunks of the first run are not reused
    assert cli.main(mol(folder / "model.pt", *run, "--arch-kwargs", '{"scale": 2.0}')) == 0
    out = capsys.readouterr().out
    assert "resumed:" not in out and (folder / "t.csv").read_text() != first


def test_a_molecule_the_model_cannot_score_is_named_and_the_rest_is_probed(folder, capsys):
    assert cli.main(mol(torchscript(RaisesOnAspirin(), folder))) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("not probed: ")] == [
        "not probed: record 'aspirin': the model raised ValueError: too many substructures"
    ]
    skipped = [line for line in out if line.startswith("skipping: ")]  # listed once, as unreadable
    assert len(skipped) == 1 and skipped[0].startswith("skipping: record 'broken': SMILES Parse Error")


def test_a_model_that_scores_nothing_exits_1_with_every_molecule_named(folder, capsys):
    assert cli.main(mol(torchscript(AllNaN(), folder))) == 1
    out = capsys.readouterr().out
    assert sum(line.startswith("not probed: ") and "the model returned NaN" in line for line in out.splitlines()) == 4
    assert "no record could be probed: all 5 failed" in out
    assert (folder / "report.html").exists()  # the report with its error rows is still written


def test_method_help_says_when_exhaustive_is_worth_it():
    parser = cli.build_parser()
    text = " ".join(parser._subparsers._group_actions[0].choices["mol"].format_help().split())
    assert "the count grows as n^k for n bits that may flip" in text
    assert "proves the set it finds minimal whenever it is at most one flip larger than the sets it enumerated" in text
    assert "worth it only when the summary has answers auto could not prove minimal" in text
