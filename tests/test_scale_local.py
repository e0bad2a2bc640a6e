"""probekit.scale on the in-process engine: the same results as the in-process calls, failed shards, resume."""

import functools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from probekit import SequenceModel, scale
from probekit.encode.dna import one_hot
from probekit.io import sequence_frame
from probekit.probe.chunks import ChunksKept, probe_in_chunks
from probekit.search.discrete import saturation_mutagenesis
from probekit.testing import ToyConv, random_sequences

pytest.importorskip("pyarrow")

PROBE = {"max_edits": 1, "baseline_draws": 10, "seed": 0}


def toy_adapter(seed: int = 0):
    return SequenceModel(ToyConv(seed=seed), output=1, device="cpu")


class InterruptOn(nn.Module):
    """ToyConv that raises KeyboardInterrupt, as a Ctrl-C would, when it is given ``sequence``."""

    def __init__(self, sequence: str):
        super().__init__()
        self.inner = ToyConv()
        self.register_buffer("target", one_hot(sequence)[0])

    def forward(self, x):
        if (x == self.target).flatten(1).all(dim=1).any():
            raise KeyboardInterrupt
        return self.inner(x)


class Broken(nn.Module):
    """Raises on every call: a shard with it fails as a whole."""

    def forward(self, x):
        raise RuntimeError("the weights went missing")


def _quiet(**kwargs):
    return {"progress": False, "log": lambda line: None, **kwargs}


def test_ism_equals_one_call(tmp_path):
    sequences = random_sequences(5, 12, seed=1)
    done = scale.run("ism", sequences, adapter_factory=toy_adapter, out_dir=tmp_path, shard_size=2, **_quiet())
    whole = saturation_mutagenesis(toy_adapter(), sequences, ids=[f"seq{i}" for i in range(5)])
    torch.testing.assert_close(done.result.effects, whole.effects, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(done.result.reference, whole.reference, atol=1e-5, rtol=1e-5)
    assert done.result.ids == whole.ids and done.result.params["ref_index"].equal(whole.params["ref_index"])
    assert (done.n_done, done.n_reused, done.n_failed) == (3, 0, 0)


def test_dna_probe_equals_the_chunked_probe(tmp_path):
    records = sequence_frame(random_sequences(5, 14, seed=2) + ["ACGRT"])
    done = scale.run("dna_probe", records, adapter_factory=toy_adapter, out_dir=tmp_path / "s", shard_size=4, **_quiet(**PROBE))
    report, _ = probe_in_chunks(toy_adapter(), records, settings=PROBE, partial_dir=tmp_path / "c", chunk_size=4, progress=False)
    for name in report.table_names:
        assert done.result.table(name).equals(report.table(name)), name
    assert done.result.summary()["error"].notna().tolist() == [False] * 5 + [True]


def test_model_failures_inside_a_probe_are_error_rows_and_a_run_where_every_shard_fails_raises(tmp_path):
    broken = functools.partial(SequenceModel, Broken(), output=1, device="cpu")
    done = scale.run("dna_probe", random_sequences(4, 10), adapter_factory=broken, out_dir=tmp_path, shard_size=2,
                     **_quiet(**PROBE))  # fmt: skip
    assert (done.n_done, done.n_failed) == (2, 0)  # probe() itself turns the model's failures into error rows
    assert done.result.summary()["error"].str.contains("weights went missing").all()
    with pytest.raises(RuntimeError, match="every shard failed.*weights went missing"):
        scale.run("ism", random_sequences(4, 10), adapter_factory=broken, out_dir=tmp_path / "b", shard_size=2, **_quiet())


class RefusesTrailingN(nn.Module):
    """ToyConv that raises on any batch holding a sequence that ends in N (ISM never substitutes an N)."""

    def __init__(self):
        super().__init__()
        self.inner = ToyConv()

    def forward(self, x):
        if (x.sum(dim=1)[:, -1] == 0).any():
            raise ValueError("cannot read a trailing N")
        return self.inner(x)


def refusing_adapter():
    return SequenceModel(RefusesTrailingN(), output=1, device="cpu")


def test_a_shard_failing_as_a_whole_gives_error_rows(tmp_path):
    sequences = random_sequences(4, 10, seed=4)
    sequences[2] = sequences[2][:-1] + "N"
    lines = []
    done = scale.run("ism", sequences, adapter_factory=refusing_adapter, out_dir=tmp_path, shard_size=2,
                     progress=False, log=lines.append)  # fmt: skip
    assert (done.n_done, done.n_failed) == (1, 1) and "trailing N" in lines[0]
    assert done.result.ids == ["seq0", "seq1", "seq2", "seq3"]
    assert done.result.effects[2:].isnan().all() and not done.result.effects[:2].isnan().any()
    assert set(done.result.params["errors"]) == {"seq2", "seq3"}


def test_an_interrupted_run_resumes_and_gives_the_same_result(tmp_path):
    sequences = random_sequences(6, 10, seed=3)
    stopping = functools.partial(SequenceModel, InterruptOn(sequences[4]), output=1, device="cpu")
    with pytest.raises(ChunksKept) as stop:
        scale.run("ism", sequences, adapter_factory=stopping, out_dir=tmp_path, shard_size=2, settings={"model": "toy"},
                  **_quiet())  # fmt: skip
    assert stop.value.n == 2
    going = functools.partial(SequenceModel, InterruptOn("A" * 10), output=1, device="cpu")
    again = scale.run("ism", sequences, adapter_factory=going, out_dir=tmp_path, shard_size=2, settings={"model": "toy"},
                      **_quiet())  # fmt: skip
    assert again.n_reused == stop.value.n and again.n_done == 3 - stop.value.n
    first = scale.run("ism", sequences, adapter_factory=going, out_dir=tmp_path / "fresh", shard_size=2, **_quiet())
    assert torch.equal(again.result.effects, first.result.effects)


def test_settings_key_the_shards(tmp_path):
    sequences = random_sequences(4, 10)
    scale.run("ism", sequences, adapter_factory=toy_adapter, out_dir=tmp_path, shard_size=2, **_quiet())
    other = functools.partial(toy_adapter, seed=1)
    again = scale.run("ism", sequences, adapter_factory=other, out_dir=tmp_path, shard_size=2, **_quiet())
    assert again.n_reused == 0
    window = scale.run("ism", sequences, adapter_factory=other, out_dir=tmp_path, shard_size=2, start=2, **_quiet())
    assert window.n_reused == 0 and window.result.start == 2


def test_a_live_model_is_not_shipped_to_workers(tmp_path):
    with pytest.raises(TypeError, match="zero-argument callable"):
        scale.run("ism", ["ACGT"], adapter_factory=toy_adapter(), out_dir=tmp_path, engine="ray")
    live = functools.partial(SequenceModel, ToyConv(), output=1)
    with pytest.raises(ValueError, match="live model"):
        scale.run("ism", ["ACGT"], adapter_factory=live, out_dir=tmp_path, engine="ray")


def test_unknown_task_and_engine(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        scale.run("nope", [], adapter_factory=toy_adapter, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown engine"):
        scale.run("ism", [], adapter_factory=toy_adapter, out_dir=tmp_path, engine="spark")
    with pytest.raises(TypeError, match="genome="):
        scale.run("variants", pd.DataFrame(), adapter_factory=toy_adapter, out_dir=tmp_path, length=10, table="t.tsv")


def mol_adapter():
    from probekit import FeatureModel, outputs
    from probekit.encode.mol import Morgan

    torch.manual_seed(0)
    return FeatureModel(nn.Linear(64, 1), featurizer=Morgan(radius=1, n_bits=64), output=outputs.value(0), device="cpu")


SMILES = ["CCO", "c1ccccc1O", "oops(", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "C1CCCCC1N"]
MOL_PROBE = {"goal": "decrease:0.1", "baseline_draws": 10}


def test_molecule_probe_equals_the_chunked_probe(tmp_path):
    from probekit.io import read_molecules
    from probekit.probe.molecules import probe_features

    records = read_molecules(SMILES)
    done = scale.run("molecule_probe", records, adapter_factory=mol_adapter, out_dir=tmp_path / "s", shard_size=4,
                     **_quiet(**MOL_PROBE))  # fmt: skip
    adapter = mol_adapter()
    report, _ = probe_in_chunks(adapter, records, settings=MOL_PROBE, partial_dir=tmp_path / "c", chunk_size=4,
                                probe_chunk=lambda part: probe_features(adapter, part, **MOL_PROBE), key_columns=("id", "smiles"),
                                progress=False)  # fmt: skip
    assert type(done.result) is type(report)
    for name in report.table_names:
        assert done.result.table(name).equals(report.table(name)), name


GENOME = "".join(np.random.default_rng(7).choice(list("ACGT"), 300))


def variant_files(folder):
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=300>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for k in range(14):
        pos = 20 + 9 * k
        ref = GENOME[pos - 1]
        alt = ref + "GT" if k % 7 == 3 else "ACGT"[("ACGT".index(ref) + 1 + k % 3) % 4]
        lines.append(f"chr1\t{pos}\tv{k}\t{ref}\t{alt}\t.\t.\t.")
    lines.append("chr1\t40\tbad\tT\t<DEL>\t.\t.\t.")
    genome, vcf = folder / "g.fa", folder / "calls.vcf"
    genome.write_text(f">chr1\n{GENOME}\n")
    vcf.write_text("\n".join(lines) + "\n")
    return genome, vcf


def test_variants_equal_the_streamed_table(tmp_path):
    from probekit.variants import score_variants_to_table

    genome, vcf = variant_files(tmp_path)
    options = {"length": 20, "n_draws": 10}
    done = scale.run("variants", vcf, adapter_factory=toy_adapter, out_dir=tmp_path / "s", shard_size=4, genome=genome,
                     table=tmp_path / "scale.parquet", **_quiet(**options))  # fmt: skip
    outcome = score_variants_to_table(toy_adapter(), vcf, genome, table=tmp_path / "one.parquet", settings={}, chunk_size=4,
                                      progress=False, log=lambda line: None, **options)  # fmt: skip
    assert pd.read_parquet(tmp_path / "scale.parquet").equals(pd.read_parquet(tmp_path / "one.parquet"))
    assert (done.result.n_rows, done.result.n_errors, done.result.n_chunks) == (outcome.n_rows, outcome.n_errors, 4)
    assert done.result.top.equals(outcome.top) and done.result.errors == outcome.errors


def test_engine_flags_need_the_ray_engine(tmp_path, capsys):
    from probekit import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["dna", "--model", "m.pt", "--fasta", "x.fa", "--out", str(tmp_path / "r.html"), "--workers", "2"])
    assert stop.value.code == 2 and "--workers applies to --engine ray" in capsys.readouterr().err


def test_shard_tables_come_back_as_written(tmp_path):
    from probekit.scale.shards import read_tables, write_tables

    table = pd.DataFrame({
        "effects": [np.arange(4, dtype=np.float32), None, np.ones(4, dtype=np.float32)],  # .npy, a row missing
        "grid": [np.full((2, 3), k, dtype=np.int64) for k in range(3)],  # .npy of 2-D rows
        "ragged": [np.ones(2), np.ones(3), np.nan],  # Parquet lists
        "note": [{"k": 1}, None, [1, 2]], "n": pd.array([1, None, 3], dtype="Int64"),
    })  # fmt: skip
    write_tables(tmp_path / "s", {"t": table, "none": table.iloc[:0]}, {"kind": "x"})
    back, meta = read_tables(tmp_path / "s")
    assert meta == {"kind": "x"} and back["none"].shape == (0, 5)
    assert list(back["t"].columns) == list(table.columns) and back["t"]["n"].equals(table["n"])
    for name in ("effects", "grid", "ragged"):
        for written, read in zip(table[name], back["t"][name]):
            if isinstance(written, np.ndarray):
                assert read.dtype == written.dtype and np.array_equal(read, written), name
            else:
                assert read is written or np.isnan(read) and np.isnan(written), name
    assert back["t"]["note"].tolist() == [{"k": 1}, None, [1, 2]]


def test_variants_keep_the_aliases_of_an_open_genome(tmp_path):
    from probekit.variants import Genome

    genome_path, vcf = variant_files(tmp_path)
    renamed = tmp_path / "renamed.vcf"  # the calls on a contig named "one", which the genome calls chr1
    renamed.write_text(vcf.read_text().replace("chr1\t", "one\t").replace("ID=chr1", "ID=one"))
    options = {"adapter_factory": toy_adapter, "shard_size": 4, "length": 20, "n_draws": 10, "progress": False,
               "log": lambda line: None}  # fmt: skip
    with Genome(genome_path, chrom_aliases={"one": "chr1"}) as genome:
        aliased = scale.run("variants", renamed, out_dir=tmp_path / "a", table=tmp_path / "a.tsv", genome=genome, **options)
    plain = scale.run("variants", vcf, out_dir=tmp_path / "p", table=tmp_path / "p.tsv", genome=genome_path, **options)
    a, p = pd.read_csv(tmp_path / "a.tsv", sep="\t"), pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert aliased.result.n_rows == plain.result.n_rows == 15
    assert a["error"].isna().sum() == p["error"].isna().sum() == 14
    assert np.array_equal(a["delta"].to_numpy(dtype=float), p["delta"].to_numpy(dtype=float), equal_nan=True)
