"""Without an optional extra, the command or function that needs it says which extra to install, in one line."""

import sys

import pytest

from probekit.cli import main


def test_selfies_edits_without_selfies_name_the_extra(monkeypatch):
    from probekit.molmodel.mutate import neutral_alphabet

    monkeypatch.setitem(sys.modules, "selfies", None)  # import selfies now raises ImportError
    with pytest.raises(ImportError, match=r'probekit\[molecules\]'):
        neutral_alphabet()


def test_counterfactual_search_without_selfies_runs_with_the_other_operators(monkeypatch):
    from probekit import MoleculeModel
    from probekit.search.counterfactual import counterfactual_molecules

    monkeypatch.setitem(sys.modules, "selfies", None)
    adapter = MoleculeModel(lambda smiles: [float(s.count("O")) for s in smiles], output=0, device="cpu")
    with pytest.raises(ImportError, match="selfies"):
        counterfactual_molecules(adapter, ["OCCO"], goal="decrease:1", max_edits=1, n_random=2)
    found = counterfactual_molecules(adapter, ["OCCO"], goal="decrease:1", max_edits=1, n_random=2, operators=("atom",))
    row = found.summary().iloc[0]
    assert row["success"] and row["score_after"] == 1.0 and row["n_edits"] == 1


def test_demo_variants_without_pysam_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "pysam", None)
    with pytest.raises(SystemExit) as stop:
        main(["demo", "variants", "--out", str(tmp_path / "demo"), "--no-progress"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'probekit[variants]' in err and "Traceback" not in err


def test_screen_without_pyarrow_names_the_extras_that_install_it(monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    torch.jit.save(torch.jit.script(torch.nn.Linear(16, 1)), str(tmp_path / "mlp.pt"))
    (tmp_path / "lib.smi").write_text("CCO ethanol\n")
    with pytest.raises(SystemExit) as stop:
        main(["screen", "--model", str(tmp_path / "mlp.pt"), "--featurizer", "morgan:1:16", "--molecules",
              str(tmp_path / "lib.smi"), "--table", str(tmp_path / "scores.tsv"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.count("\n") == 0 and "probekit[molecules]" in err and "pip install pyarrow" in err


def test_bed_regions_without_pysam_is_one_line(monkeypatch, tmp_path, capsys):
    import torch

    from probekit.testing import ToyConv

    monkeypatch.setitem(sys.modules, "pysam", None)
    torch.save(ToyConv().state_dict(), tmp_path / "m.pt")
    (tmp_path / "g.fa").write_text(">chr1\n" + "ACGT" * 30 + "\n")
    (tmp_path / "p.bed").write_text("chr1\t10\t30\tpeak\n")
    with pytest.raises(SystemExit) as stop:
        main(["dna", "--model", str(tmp_path / "m.pt"), "--arch", "probekit.testing:ToyConv", "--bed", str(tmp_path / "p.bed"),
              "--genome", str(tmp_path / "g.fa"), "--out", str(tmp_path / "r.html"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.count("\n") == 0 and "probekit[variants]" in err
