"""Molecules on a local Ray (2 CPUs): ``probekit mol --engine ray`` and the molecule screen give what the local engine gives."""

import pandas as pd
import pytest
import torch
from torch import nn

import ray_session
import test_scale_molecules as local
from probekit import cli, scale

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

pytestmark = pytest.mark.ray

FAST = ["--goal", "decrease:0.01", "--max-flips", "1", "--baseline-draws", "5", "--device", "cpu", "--no-progress",
        "--max-figures", "0", "--chunk-size", "2"]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray with 2 CPUs for the module; the test modules are sent to the workers by value."""
    with ray_session.local_ray(local, __import__(__name__)):
        yield


@pytest.fixture
def library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ("ethanol", "broken", "paracetamol", "glycerol", "phenol")
    (tmp_path / "lib.smi").write_text("".join(f"{local.LIBRARY[n]} {n}\n" for n in names))
    return tmp_path


def _mol_on_both_engines(folder, model_args, tables):
    """``probekit mol`` on the local engine and on Ray (2 workers); the CSV tables ``tables`` of each."""
    written = {}
    for engine in ("local", "ray"):
        extra = ["--workers", "2"] if engine == "ray" else []
        paths = {flag: folder / f"{engine}{flag.replace('-', '_')}.csv" for flag in tables}
        args = ["mol", *model_args, "--molecules", "lib.smi", "--out", f"{engine}.html", *FAST, "--engine", engine, *extra]
        assert cli.main(args + [part for flag, path in paths.items() for part in (flag, str(path))]) == 0
        written[engine] = {flag: path.read_text() for flag, path in paths.items()}
    assert not (folder / "ray.html.partial").exists()
    return written["local"], written["ray"]


def test_mol_command_of_a_feature_model_on_ray_equals_local(library, capsys):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(nn.Linear(32, 1)), str(library / "mlp.pt"))
    here, there = _mol_on_both_engines(library, ["--model", "mlp.pt", "--featurizer", "morgan-counts:1:32",
                                                 "--attribution", "saliency"], ["--table", "--atoms-table"])  # fmt: skip
    assert there == here
    assert "3 shards on ray (2 workers): 3 done, 0 reused, 0 retried, 0 failed" in capsys.readouterr().out


def test_mol_command_of_a_torchscript_molecule_model_on_ray_equals_local(library):
    local.graph_model(library)
    here, there = _mol_on_both_engines(library, ["--model", "graph.pt", "--model-kind", "torchscript"],
                                       ["--table", "--atoms-table"])  # fmt: skip
    assert there == here


def test_molecule_screen_on_ray_equals_local(tmp_path):
    path = tmp_path / "lib.smi"
    path.write_text("".join(f"{smiles} {name}\n" for name, smiles in local.LIBRARY.items()))
    options = {"adapter_factory": local.weighted_adapter, "shard_size": 2, "outputs": [1], "top": 3, "progress": False,
               "log": lambda line: None}  # fmt: skip
    here = scale.run("molecule_screen", path, out_dir=tmp_path / "l", table=tmp_path / "l.parquet", **options)
    there = scale.run("molecule_screen", path, out_dir=tmp_path / "r", table=tmp_path / "r.parquet", engine="ray", workers=2,
                      **options)  # fmt: skip
    assert pd.read_parquet(tmp_path / "r.parquet").equals(pd.read_parquet(tmp_path / "l.parquet"))
    assert there.n_done == 4 and there.workers == 2 and there.result.line() == here.result.line()
    assert there.result.top.equals(here.result.top) and there.result.n_errors == 3
