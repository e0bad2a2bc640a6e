"""The attributions task and BED regions on a local Ray (2 CPUs): what the in-process engine gives."""

import pytest
import torch

import ray_session
import test_scale_attributions as local
from probekit import cli, scale
from probekit.testing import ToyConv, random_sequences

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")
pytest.importorskip("pysam")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray with 2 CPUs for the module; the test modules are sent to the workers by value."""
    with ray_session.local_ray(local, __import__(__name__)):
        yield


def test_attributions_on_ray_equal_local(tmp_path):
    sequences = random_sequences(5, 14, seed=2) + ["ACGTRACGTACGTA"]
    options = {"adapter_factory": local.one_at_a_time, "shard_size": 2, "method": "integrated_gradients", "n_steps": 4,
               **local.QUIET}  # fmt: skip
    here = scale.run("attributions", sequences, out_dir=tmp_path / "l", **options).result
    there = scale.run("attributions", sequences, out_dir=tmp_path / "r", engine="ray", workers=2, **options).result
    assert there.ids == here.ids and there.params["errors"] == here.params["errors"]
    for name in ("values", "per_position", "inputs", "delta"):
        assert torch.equal(getattr(there, name).nan_to_num(), getattr(here, name).nan_to_num()), name


def test_the_dna_command_on_bed_regions_on_ray_writes_the_local_table(tmp_path, capsys):
    genome, bed = local.genome_and_bed(tmp_path)
    model = tmp_path / "toy.pt"
    torch.save(ToyConv().state_dict(), model)
    common = ["dna", "--model", str(model), "--arch", "probekit.testing:ToyConv", "--device", "cpu", "--no-progress",
              "--bed", str(bed), "--genome", str(genome), "--length", "16", "--max-edits", "1", "--baseline-draws", "5",
              "--max-figures", "0", "--chunk-size", "2"]  # fmt: skip
    assert cli.main([*common, "--out", str(tmp_path / "l.html"), "--table", str(tmp_path / "l.csv")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "r.html"), "--table", str(tmp_path / "r.csv"), "--engine", "ray",
                     "--workers", "2"]) == 0  # fmt: skip
    assert (tmp_path / "l.csv").read_text() == (tmp_path / "r.csv").read_text()
    out = capsys.readouterr().out
    assert "3 shards on ray (2 workers): 3 done, 0 reused" in out and "chr3" in out
