"""probekit.scale on a local Ray (2 CPUs): the same results as in process, a killed worker, resume."""

import functools
import os

import pandas as pd
import pytest
import torch
from torch import nn

import ray_session
import test_scale_local as local
from probekit import SequenceModel, scale
from probekit.probe.chunks import ChunksKept
from probekit.testing import ToyConv, random_sequences

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray with 2 CPUs for the module; the test modules are sent to the workers by value."""
    with ray_session.local_ray(local, __import__(__name__)):
        yield


def _both(task, inputs, tmp_path, **options):
    """The same run on the in-process engine and on Ray (2 workers)."""
    quiet = {"progress": False, "log": lambda line: None}
    here = scale.run(task, inputs, out_dir=tmp_path / "local", **quiet, **options)
    there = scale.run(task, inputs, out_dir=tmp_path / "ray", engine="ray", workers=2, **quiet, **options)
    return here, there


def test_dna_probe_on_ray_equals_local(tmp_path):
    inputs = random_sequences(6, 14, seed=2) + ["ACGRT"]
    here, there = _both("dna_probe", inputs, tmp_path, adapter_factory=local.toy_adapter, shard_size=2, **local.PROBE)
    assert there.n_done == 4 and there.workers == 2
    for name in here.result.table_names:
        assert there.result.table(name).equals(here.result.table(name)), name


def test_molecule_probe_on_ray_equals_local(tmp_path):
    here, there = _both("molecule_probe", local.SMILES, tmp_path, adapter_factory=local.mol_adapter, shard_size=3,
                        **local.MOL_PROBE)  # fmt: skip
    assert type(there.result) is type(here.result)
    for name in here.result.table_names:
        assert there.result.table(name).equals(here.result.table(name)), name


def test_variants_on_ray_equal_local(tmp_path):
    genome, vcf = local.variant_files(tmp_path)
    options = {"adapter_factory": local.toy_adapter, "shard_size": 4, "genome": genome, "length": 20, "n_draws": 10}
    here = scale.run("variants", vcf, out_dir=tmp_path / "l", table=tmp_path / "l.tsv", progress=False, **options)
    there = scale.run("variants", vcf, out_dir=tmp_path / "r", table=tmp_path / "r.tsv", engine="ray", progress=False, **options)
    assert (tmp_path / "l.tsv").read_text() == (tmp_path / "r.tsv").read_text()
    assert there.result.n_rows == here.result.n_rows == 15 and there.n_done == 4


def test_an_interrupted_run_resumes_on_ray(tmp_path):
    sequences = random_sequences(8, 10, seed=3)
    keep = {"shard_size": 2, "settings": {"model": "toy"}, "progress": False, "log": lambda line: None}
    stopping = functools.partial(SequenceModel, local.InterruptOn(sequences[4]), output=1, device="cpu")
    with pytest.raises(ChunksKept) as stop:
        scale.run("ism", sequences, adapter_factory=stopping, out_dir=tmp_path / "r", **keep)
    going = functools.partial(SequenceModel, local.InterruptOn("A" * 10), output=1, device="cpu")
    resumed = scale.run("ism", sequences, adapter_factory=going, out_dir=tmp_path / "r", engine="ray", trust=True, **keep)
    whole = scale.run("ism", sequences, adapter_factory=going, out_dir=tmp_path / "w", **keep)
    assert stop.value.n == 2 and (resumed.n_reused, resumed.n_done) == (2, 2)
    assert torch.equal(resumed.result.effects, whole.result.effects) and resumed.result.ids == whole.result.ids


class DiesOnce(nn.Module):
    """ToyConv whose first call anywhere ends its process (as a killed worker), leaving ``marker`` behind."""

    def __init__(self, marker: str):
        super().__init__()
        self.inner, self.marker = ToyConv(), marker

    def forward(self, x):
        try:  # O_EXCL: exactly one process creates the marker, so exactly one dies
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return self.inner(x)
        os._exit(1)


def dies_once(marker: str):
    return SequenceModel(DiesOnce(marker), output=1, device="cpu")


def test_a_killed_worker_is_retried_and_every_input_comes_once(tmp_path):
    sequences = random_sequences(8, 10, seed=5)
    factory = functools.partial(dies_once, str(tmp_path / "died"))
    done = scale.run("ism", sequences, adapter_factory=factory, out_dir=tmp_path / "r", engine="ray", workers=2,
                     shard_size=2, settings={"model": "toy"}, progress=False, log=lambda line: None)  # fmt: skip
    assert (tmp_path / "died").exists()
    assert (done.n_done, done.n_failed, done.n_retried) == (4, 0, 1)
    assert done.result.ids == [f"seq{i}" for i in range(8)]
    fresh = scale.run("ism", sequences, adapter_factory=factory, out_dir=tmp_path / "l", shard_size=2, progress=False,
                      log=lambda line: None)  # fmt: skip
    assert torch.equal(done.result.effects, fresh.result.effects)
    assert isinstance(done.shards, pd.DataFrame) and done.shards["retried"].sum() == 1


def _model_file(tmp_path):
    path = tmp_path / "toy.pt"
    torch.save(ToyConv().state_dict(), path)
    return ["--model", str(path), "--arch", "probekit.testing:ToyConv", "--device", "cpu", "--no-progress"]


def test_the_dna_command_on_ray_writes_the_local_table(tmp_path, capsys):
    from probekit import cli

    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(random_sequences(5, 16, seed=6))) + ">broken\nACGR\n")
    common = ["dna", *_model_file(tmp_path), "--fasta", str(fasta), "--max-edits", "1", "--baseline-draws", "10",
              "--max-figures", "0", "--chunk-size", "2"]  # fmt: skip
    assert cli.main([*common, "--out", str(tmp_path / "l.html"), "--table", str(tmp_path / "l.csv")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "r.html"), "--table", str(tmp_path / "r.csv"), "--engine", "ray",
                     "--workers", "2"]) == 0  # fmt: skip
    assert (tmp_path / "l.csv").read_text() == (tmp_path / "r.csv").read_text()
    assert "3 shards on ray (2 workers): 3 done, 0 reused" in capsys.readouterr().out
    assert not (tmp_path / "r.html.partial").exists()


def test_the_variants_command_on_ray_writes_the_local_table(tmp_path, capsys):
    from probekit import cli

    genome, vcf = local.variant_files(tmp_path)
    common = ["variants", *_model_file(tmp_path), "--genome", str(genome), "--vcf", str(vcf), "--length", "20",
              "--draws", "10", "--no-motifs", "--chunk-size", "4"]  # fmt: skip
    assert cli.main([*common, "--table", str(tmp_path / "l.tsv")]) == 0
    assert cli.main([*common, "--table", str(tmp_path / "r.tsv"), "--engine", "ray"]) == 0
    assert (tmp_path / "l.tsv").read_text() == (tmp_path / "r.tsv").read_text()
    assert "4 shards on ray" in capsys.readouterr().out


def test_actors_kept_from_an_ended_ray_session_are_forgotten_not_ended():
    from probekit.scale import ray_engine

    stale = [ray.get_runtime_context()]  # stands for a handle of the old session: ending it would raise
    ray_engine._POOL[("node of an ended session", "01000000", (1, 1, 0), 3)] = stale
    ray_engine.release_workers()
    assert ray_engine._POOL == {}
