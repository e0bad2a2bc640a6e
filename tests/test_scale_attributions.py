"""probekit.scale's attributions task and BED-region inputs on the in-process engine: the in-process calls' answers."""

import functools

import numpy as np
import pytest
import torch

from probekit import SequenceModel, scale
from probekit.attr import attribute
from probekit.probe.chunks import probe_in_chunks
from probekit.regions import read_regions
from probekit.search.discrete import saturation_mutagenesis
from probekit.testing import ToyConv, random_sequences

pytest.importorskip("pyarrow")
pytest.importorskip("pysam")

PROBE = {"max_edits": 1, "baseline_draws": 5, "seed": 0}
QUIET = {"progress": False, "log": lambda line: None}


def one_at_a_time():
    """Batches of one input: a model's rounding cannot depend on which inputs share its batch."""
    return SequenceModel(ToyConv(), output=1, device="cpu", batch_size=1)


def toy_adapter():
    return SequenceModel(ToyConv(), output=1, device="cpu")


def genome_and_bed(folder):
    """A two-contig genome and a BED file of six regions: both strands, one off a contig's end, one unknown, one broken."""
    chroms = dict(zip(["chr1", "chr2"], random_sequences(2, 90, seed=8)))
    genome = folder / "ref.fa"
    genome.write_text("".join(f">{name}\n{seq}\n" for name, seq in chroms.items()))
    bed = folder / "peaks.bed"
    bed.write_text("chr1\t10\t30\tp1\t0\t+\nchr2\t40\t52\tp2\t0\t-\nchr3\t0\t10\tunknown\nchr1\t80\t90\tedge\n"
                   "chr1\tten\t20\tbroken\nchr2\t60\t85\tp3\t0\t-\n")  # fmt: skip
    return genome, bed


@pytest.mark.parametrize(
    "method, options",
    [("integrated_gradients", {"n_steps": 6}), ("deeplift_shap", {"n_references": 3, "seed": 4})],
)
def test_attributions_equal_one_call_at_any_shard_size(tmp_path, method, options):
    sequences = random_sequences(4, 12, seed=3)
    whole = attribute(one_at_a_time(), sequences, method=method, **options)
    for size in (2, 3):
        done = scale.run("attributions", sequences, adapter_factory=one_at_a_time, out_dir=tmp_path / str(size),
                         shard_size=size, method=method, **options, **QUIET).result  # fmt: skip
        assert done.values.dtype == torch.float32 and done.ids == [f"seq{i}" for i in range(4)]
        for name in ("values", "per_position", "inputs", "delta"):
            assert torch.equal(getattr(done, name), getattr(whole, name)), (method, size, name)
        assert (done.method, done.form, done.params["shards"]) == (method, "observed", 2)


class Smooth(torch.nn.Module):
    """A smooth convolutional model, on which integrated gradients' quadrature converges fast."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.linear = torch.nn.Conv1d(4, 6, 5, padding=2), torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.linear(torch.tanh(self.conv(x)).mean(dim=-1))


def smooth_adapter():
    return SequenceModel(Smooth(), output=1, device="cpu")


def test_integrated_gradients_complete_per_record_and_batches_change_only_rounding(tmp_path):
    sequences = random_sequences(6, 16, seed=5)
    done = scale.run("attributions", sequences, adapter_factory=smooth_adapter, out_dir=tmp_path, shard_size=4,
                     method="integrated_gradients", n_steps=32, **QUIET).result  # fmt: skip
    whole = attribute(smooth_adapter(), sequences, method="integrated_gradients", n_steps=32)
    torch.testing.assert_close(done.values, whole.values, atol=1e-6, rtol=1e-5)
    # completeness: each record's attributions sum to f(x) - f(baseline), the baseline being all N (zeros)
    model = Smooth()
    with torch.no_grad():
        X = torch.stack([torch.eye(4)[:, ["ACGT".index(b) for b in s]] for s in sequences])
        expected = model(X)[:, 1] - model(torch.zeros(1, 4, 16))[:, 1]
    torch.testing.assert_close(done.per_position.sum(dim=1), expected, atol=1e-4, rtol=1e-4)
    assert done.delta.abs().max() < 1e-4


def test_unreadable_records_are_nan_rows_with_their_reasons_and_shared_options_are_checked(tmp_path):
    sequences = random_sequences(3, 12, seed=6) + ["ACGTRACGTACG"]
    done = scale.run("attributions", sequences, adapter_factory=toy_adapter, out_dir=tmp_path, shard_size=3,
                     method="saliency", **QUIET).result  # fmt: skip
    assert done.values[3].isnan().all() and not done.values[:3].isnan().any()
    assert list(done.params["errors"]) == ["seq3"] and "'R'" in done.params["errors"]["seq3"]
    torch.testing.assert_close(done.values[:3], attribute(toy_adapter(), sequences[:3], method="saliency").values)
    with pytest.raises(ValueError, match="baseline='mean'"):
        scale.run("attributions", sequences, adapter_factory=toy_adapter, out_dir=tmp_path / "m", baseline="mean", **QUIET)
    with pytest.raises(ValueError, match="per input"):
        scale.run("attributions", sequences, adapter_factory=toy_adapter, out_dir=tmp_path / "r", method="deeplift_shap",
                  references=torch.zeros(4, 2, 4, 12), **QUIET)  # fmt: skip
    with pytest.raises(ValueError, match="one length"):
        scale.run("attributions", ["ACGT", "ACGTA"], adapter_factory=toy_adapter, out_dir=tmp_path / "l", **QUIET)


def test_a_shard_that_fails_as_a_whole_is_named(tmp_path):
    class Refuses(torch.nn.Module):
        """ToyConv that raises on any batch holding a sequence that starts with N."""

        def __init__(self):
            super().__init__()
            self.inner = ToyConv()

        def forward(self, x):
            if (x.sum(dim=1)[:, 0] == 0).any():
                raise ValueError("cannot read a leading N")
            return self.inner(x)

    sequences = random_sequences(4, 10, seed=7)
    sequences[3] = "N" + sequences[3][1:]
    lines = []
    factory = functools.partial(SequenceModel, Refuses(), output=1, device="cpu")
    done = scale.run("attributions", sequences, adapter_factory=factory, out_dir=tmp_path, shard_size=2, method="saliency",
                     progress=False, log=lines.append)  # fmt: skip
    assert "leading N" in lines[0] and done.n_failed == 1
    assert done.result.values[2:].isnan().all() and not done.result.values[:2].isnan().any()
    assert set(done.result.params["errors"]) == {"seq2", "seq3"}


def test_bed_regions_through_attributions_and_ism_equal_the_in_process_calls(tmp_path):
    genome, bed = genome_and_bed(tmp_path)
    regions = read_regions(bed, genome, length=16)
    valid = torch.from_numpy(regions["error"].isna().to_numpy(dtype=bool, copy=True))
    good = regions[valid.numpy()]
    assert regions.loc[regions["id"] == "edge", "padded"].item() and valid.sum() == 4
    inputs = {"genome": genome, "length": 16, "adapter_factory": one_at_a_time, "shard_size": 2, **QUIET}

    done = scale.run("attributions", bed, out_dir=tmp_path / "a", method="saliency", **inputs).result
    whole = attribute(one_at_a_time(), good, method="saliency")
    assert done.ids == regions["id"].tolist() and torch.equal(done.values[valid], whole.values)
    assert set(done.params["errors"]) == {"unknown", "broken"} and done.values[~valid].isnan().all()

    ism = scale.run("ism", bed, out_dir=tmp_path / "i", **inputs).result
    in_process = saturation_mutagenesis(one_at_a_time(), good["sequence"].tolist())
    torch.testing.assert_close(ism.effects[valid], in_process.effects, atol=1e-5, rtol=1e-5)  # ISM's own rounding rule
    assert ism.effects[~valid].isnan().all() and ism.ids == regions["id"].tolist()
    assert "chr3" in ism.params["errors"]["unknown"] and "line 5" in ism.params["errors"]["broken"]



def test_bed_regions_probed_in_shards_equal_the_chunked_probe(tmp_path):
    genome, bed = genome_and_bed(tmp_path)
    regions = read_regions(bed, genome, length=16)
    inputs = {"genome": genome, "length": 16, "adapter_factory": toy_adapter, "shard_size": 2, **QUIET}
    report = scale.run("dna_probe", bed, out_dir=tmp_path / "p", **inputs, **PROBE).result
    chunked, _ = probe_in_chunks(toy_adapter(), regions, settings=PROBE, partial_dir=tmp_path / "c", chunk_size=2,
                                 progress=False)  # fmt: skip
    for name in chunked.table_names:
        assert report.table(name).equals(chunked.table(name)), name


def test_the_driver_reads_no_sequence_and_the_genome_is_opened_once_per_worker(tmp_path, monkeypatch):
    from probekit.scale.tasks import TASKS
    from probekit.variants import genome as genome_module

    genome, bed = genome_and_bed(tmp_path)
    options = TASKS["ism"].check_options({"genome": str(genome), "length": 16})
    parts = list(TASKS["ism"].shards(bed, 2, options))
    assert all("sequence" not in part.columns for part in parts)
    opened = []
    monkeypatch.setattr(genome_module.Genome, "__init__", _counting(genome_module.Genome.__init__, opened))
    scale.run("ism", bed, genome=genome, length=16, adapter_factory=toy_adapter, out_dir=tmp_path / "i", shard_size=2, **QUIET)
    assert len(opened) == 2  # the driver checks it once; the one local worker opens it once for its three shards
    with pytest.raises(TypeError, match="give genome= too"):
        scale.run("ism", bed, length=16, adapter_factory=toy_adapter, out_dir=tmp_path / "x", **QUIET)


def _counting(init, calls):
    def counted(self, *args, **kwargs):
        calls.append(args)
        init(self, *args, **kwargs)

    return counted


def test_a_rerun_on_bed_regions_reuses_its_shards_and_a_changed_length_does_not(tmp_path):
    genome, bed = genome_and_bed(tmp_path)
    inputs = {"genome": genome, "adapter_factory": toy_adapter, "out_dir": tmp_path / "s", "shard_size": 3, **QUIET}
    first = scale.run("attributions", bed, length=16, method="saliency", **inputs)
    again = scale.run("attributions", bed, length=16, method="saliency", **inputs)
    other = scale.run("attributions", bed, length=12, method="saliency", **inputs)
    assert (first.n_done, again.n_reused, other.n_reused) == (2, 2, 0)
    assert torch.equal(again.result.values.nan_to_num(), first.result.values.nan_to_num())
    assert other.result.values.shape == (6, 4, 12)
    assert first.result.delta is None  # saliency has no summation error
