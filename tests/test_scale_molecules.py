"""Molecules at scale, in process: probes through the scaled run, screening checked against the model called by hand."""

import functools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from probekit import FeatureModel, cli, outputs, scale
from probekit.encode.mol import Descriptors, Morgan
from probekit.io import read_molecules
from probekit.molmodel import MoleculeModel, load_molecule_model
from probekit.probe.chunks import ChunksKept
from probekit.screening import screen_molecules, screen_molecules_to_table

pytest.importorskip("pyarrow")

LIBRARY = {"ethanol": "CCO", "phenol": "c1ccccc1O", "broken": "C1CC(", "paracetamol": "CC(=O)Nc1ccc(O)cc1",
           "ethane": "CC", "aspirin": "CC(=O)Oc1ccccc1C(=O)O", "glycerol": "OCC(O)CO"}  # fmt: skip
QUIET = {"progress": False, "log": lambda line: None}


class Weighted(nn.Module):
    """Two outputs of two descriptors (donors, weight): ``donors - weight / 100`` and ``weight / 100``.

    It raises on a batch holding a molecule heavier than 170 Da (aspirin, of the library) and
    returns NaN for a molecule without hydrogen-bond donors (ethane).
    """

    def forward(self, x):
        if bool((x[:, 1] > 170).any()):
            raise ValueError("too heavy")
        first = torch.where(x[:, 0] > 0, x[:, 0] - x[:, 1] / 100, float("nan"))
        return torch.stack([first, x[:, 1] / 100], dim=1)


def weighted_adapter(model=None, batch_size=64):
    return FeatureModel(model or Weighted(), featurizer=Descriptors(["NumHDonors", "MolWt"]), output=outputs.value(0),
                        batch_size=batch_size, device="cpu")  # fmt: skip


def by_hand(smiles):
    """The model's two outputs on one molecule: the featurizer and the module called directly."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors as D

    mol = Chem.MolFromSmiles(smiles)
    donors, weight = float(D.NumHDonors(mol)), float(D.MolWt(mol))
    return donors - weight / 100, weight / 100


def plain(frame):
    """Rows as lists, every missing value None (Parquet reads text back as str, NaN where missing)."""
    return [[None if v is None or (isinstance(v, float) and v != v) else v for v in row] for row in frame.astype(object).values.tolist()]


def test_screen_scores_equal_the_model_called_on_each_molecule_and_bad_records_are_named():
    frame = screen_molecules(weighted_adapter(batch_size=4), LIBRARY, outputs=[outputs.value(1)])
    assert frame["id"].tolist() == list(LIBRARY) and list(frame.columns) == ["id", "smiles", "score", "value[1]", "error"]
    errors = dict(zip(frame["id"], frame["error"]))
    assert errors["broken"].startswith("record 'broken': ") and "C1CC(" in errors["broken"]
    assert errors["aspirin"] == "record 'aspirin': the model raised ValueError: too heavy"
    assert errors["ethane"] == "record 'ethane': the model returned NaN"
    for name in ("ethanol", "phenol", "paracetamol", "glycerol"):
        row = frame.set_index("id").loc[name]
        assert row["error"] is None
        assert (row["score"], row["value[1]"]) == pytest.approx(by_hand(LIBRARY[name]), rel=1e-5)
    assert frame.loc[frame["error"].notna(), ["score", "value[1]"]].isna().all().all()


def test_screen_takes_a_molecule_model_and_any_batch_size_gives_the_same_table():
    def length_unless_nitrogen(smiles):
        if any("N" in s for s in smiles):
            raise ValueError("no nitrogen")
        return torch.tensor([float(len(s)) for s in smiles])

    frames = [screen_molecules(MoleculeModel(length_unless_nitrogen, kind="smiles", batch_size=b, device="cpu"), LIBRARY)
              for b in (1, 3, 64)]  # fmt: skip
    scores = dict(zip(frames[0]["id"], frames[0]["score"]))
    assert scores["phenol"] == len("Oc1ccccc1") and np.isnan(scores["paracetamol"])  # canonical SMILES, as the model sees it
    assert frames[0].set_index("id").loc["paracetamol", "error"] == "record 'paracetamol': the model raised ValueError: no nitrogen"
    assert all(f.equals(frames[0]) for f in frames[1:])


@pytest.mark.parametrize("standardize", [False, True])
def test_records_are_read_as_read_molecules_reads_them(standardize):
    library = {"ok": "c1ccccc1O", "valence": "C(C)(C)(C)(C)C", "kekule": "c1cccc1", "empty": "", "syntax": "C1CC(",
               "salt": "[Na+].CC(=O)[O-]"}  # fmt: skip
    adapter = MoleculeModel(lambda smiles: torch.tensor([float(len(s)) for s in smiles]), kind="smiles", device="cpu")
    frame = screen_molecules(adapter, library, standardize=standardize)
    expected = read_molecules(library, standardize=standardize)
    assert frame["error"].tolist() == expected["error"].tolist()
    assert plain(frame[["score"]]) == [[float(len(s))] if e is None else [None] for s, e in zip(expected["smiles"], expected["error"])]


def test_a_streamed_screen_is_one_call_and_an_interrupted_one_resumes_to_the_same_table(tmp_path):
    one = screen_molecules(weighted_adapter(), LIBRARY, outputs=[1])
    table = tmp_path / "scores.parquet"
    stopping = weighted_adapter(InterruptOn())
    with pytest.raises(ChunksKept) as stop:
        screen_molecules_to_table(stopping, LIBRARY, table=table, settings={"model": "w"}, chunk_size=2, outputs=[1], **QUIET)
    assert stop.value.n == 3 and not table.exists()
    outcome = screen_molecules_to_table(weighted_adapter(), LIBRARY, table=table, settings={"model": "w"}, chunk_size=2,
                                        outputs=[1], top=2, **QUIET)  # fmt: skip
    assert plain(pd.read_parquet(table)) == plain(one)
    assert (outcome.n_rows, outcome.n_errors, outcome.n_chunks, outcome.n_reused) == (7, 3, 4, 3)
    best = one[one["error"].isna()].sort_values("score", ascending=False).head(2)
    assert outcome.top["id"].tolist() == best["id"].tolist() and outcome.errors == one["error"].dropna().tolist()
    assert not (tmp_path / "scores.parquet.partial").exists()


class InterruptOn(Weighted):
    """:class:`Weighted` that stops (as Ctrl-C) on a molecule with 3 hydrogen-bond donors (glycerol)."""

    def forward(self, x):
        if bool((x[:, 0] == 3).any()):
            raise KeyboardInterrupt
        return super().forward(x)


def test_molecule_screen_task_writes_the_streamed_table(tmp_path):
    path = tmp_path / "lib.csv"
    pd.DataFrame({"name": list(LIBRARY), "smiles": list(LIBRARY.values())}).to_csv(path, index=False)
    done = scale.run("molecule_screen", path, adapter_factory=weighted_adapter, out_dir=tmp_path / "s", shard_size=3,
                     table=tmp_path / "scale.tsv", outputs=[1], top=3, **QUIET)  # fmt: skip
    streamed = screen_molecules_to_table(weighted_adapter(), path, table=tmp_path / "one.tsv", settings={}, chunk_size=3,
                                         outputs=[1], top=3, **QUIET)  # fmt: skip
    assert (tmp_path / "scale.tsv").read_text() == (tmp_path / "one.tsv").read_text()
    assert done.n_done == 3 and done.result.line() == streamed.line() and done.result.top.equals(streamed.top)


def same_tables(merged, report):
    """The merged report holds the tables of the one in-process call (up to float32 noise of other batches)."""
    assert type(merged) is type(report) and merged.table_names == report.table_names
    for name in report.table_names:
        pd.testing.assert_frame_equal(merged.table(name), report.table(name), check_exact=False, rtol=1e-5, atol=1e-6, obj=name)


def graph_model(folder):
    from probekit.molmodel.graph import GraphNet

    torch.manual_seed(0)
    path = folder / "graph.pt"
    torch.jit.save(torch.jit.script(GraphNet(hidden=8, depth=1).eval()), str(path))
    return path


def test_molecule_probe_of_a_molecule_model_file_is_the_in_process_report(tmp_path):
    from probekit.probe.molmodels import probe_molecule_model

    records = read_molecules(["CCO", "C1CC(", "c1ccccc1O"])
    factory = functools.partial(load_molecule_model, graph_model(tmp_path), kind="torchscript", device="cpu")
    options = {"goal": "decrease:0.01", "max_edits": 1, "fragments": False, "counterfactuals": False}
    done = scale.run("molecule_probe", records, adapter_factory=factory, out_dir=tmp_path / "s", shard_size=2,
                     baseline_draws=5, **options, **QUIET)  # fmt: skip
    report = probe_molecule_model(factory(), records, n_random=5, **options)
    assert done.n_done == 2
    same_tables(done.result, report)


def test_molecule_probe_of_a_feature_model_keeps_the_featurizer_fitted_on_the_driver(tmp_path):
    from probekit.probe import probe

    torch.manual_seed(0)
    path = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.script(nn.Linear(32, 1)), str(path))
    records = read_molecules([LIBRARY[name] for name in ("ethanol", "broken", "aspirin", "glycerol")])
    featurizer = Morgan(radius=1, n_bits=32, counts=True).fit(records[records["error"].isna()])
    factory = functools.partial(scale.load_feature_adapter, path, featurizer=featurizer, output=0, device="cpu")
    options = {"goal": "decrease:0.1", "baseline_draws": 5, "max_flips": 1, "attribution": "saliency"}
    done = scale.run("molecule_probe", records, adapter_factory=factory, out_dir=tmp_path / "s", shard_size=2, **options,
                     **QUIET)  # fmt: skip
    report = probe(factory(), records, **options)
    upper = factory().bounds(32)[1]  # on the worker: the largest count of each bit among the molecules probed
    assert torch.isfinite(upper).all() and torch.equal(upper, featurizer.bounds[1]) and float(upper.max()) >= 2
    same_tables(done.result, report)


def test_the_screen_command_from_another_folder(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(nn.Linear(64, 2)), str(data / "mlp.pt"))
    (data / "lib.smi").write_text("".join(f"{s} {name}\n" for name, s in LIBRARY.items()))
    monkeypatch.chdir(tmp_path)
    args = ["screen", "--model", "data/mlp.pt", "--featurizer", "morgan:1:64", "--molecules", "data/lib.smi",
            "--table", "out/scores.csv", "--extra-outputs", "logit:1", "--top", "2", "--chunk-size", "3", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    adapter = FeatureModel(torch.jit.load(str(data / "mlp.pt")), featurizer=Morgan(radius=1, n_bits=64), output=outputs.value(0),
                           device="cpu")  # fmt: skip
    one = screen_molecules(adapter, data / "lib.smi", outputs=[outputs.logit(1)])
    table = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert table["id"].tolist() == list(LIBRARY) and table["error"].notna().sum() == 1
    np.testing.assert_allclose(table["score"], one["score"], rtol=1e-6)
    np.testing.assert_allclose(table["logit[1]"], one["logit[1]"], rtol=1e-6)
    assert "not scored: record 'broken'" in printed and "scored 6 of 7 molecules (1 error)" in printed
    best = one.sort_values("score", ascending=False)["id"].iloc[0]
    assert f"   1  {one.set_index('id').loc[best, 'score']:.4g}  {best}" in printed
    with pytest.raises(SystemExit) as stop:
        cli.main(args + ["--workers", "2"])
    assert stop.value.code == 2 and "--workers applies to --engine ray" in capsys.readouterr().err


def test_the_mol_command_on_the_local_engine_is_the_in_process_probe(tmp_path, monkeypatch):
    from probekit.probe.molecules import probe_features

    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(nn.Linear(64, 1)), str(tmp_path / "mlp.pt"))
    (tmp_path / "lib.smi").write_text("".join(f"{s} {name}\n" for name, s in LIBRARY.items()))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["mol", "--model", "mlp.pt", "--molecules", "lib.smi", "--featurizer", "morgan:1:64", "--goal", "decrease:0.1",
                     "--max-flips", "1", "--baseline-draws", "5", "--device", "cpu", "--no-progress", "--max-figures", "0",
                     "--chunk-size", "3", "--out", "r.html", "--table", "t.csv", "--engine", "local"]) == 0  # fmt: skip
    records = read_molecules(tmp_path / "lib.smi")
    featurizer = Morgan(radius=1, n_bits=64).fit(records[records["error"].isna()])
    adapter = FeatureModel(torch.jit.load(str(tmp_path / "mlp.pt")), featurizer=featurizer, output=outputs.value(0), device="cpu")
    report = probe_features(adapter, records, goal="decrease:0.1", max_flips=1, baseline_draws=5)
    report.to_frame().to_csv(tmp_path / "expected.csv", index=False)
    assert (tmp_path / "t.csv").read_text() == (tmp_path / "expected.csv").read_text()


class MalformedOnPhenol(Weighted):
    """:class:`Weighted`, but one row for the whole batch when it holds phenol (94 Da): no problem of one molecule."""

    def forward(self, x):
        out = super().forward(x)
        return out[:1] if bool(((x[:, 1] > 90) & (x[:, 1] < 100)).any()) else out


def malformed_adapter():
    return weighted_adapter(MalformedOnPhenol())


def test_a_shard_the_model_fails_as_a_whole_is_error_rows_naming_each_record(tmp_path):
    done = scale.run("molecule_screen", LIBRARY, adapter_factory=malformed_adapter, out_dir=tmp_path / "s", shard_size=3,
                     table=tmp_path / "t.parquet", **QUIET)  # fmt: skip
    table = pd.read_parquet(tmp_path / "t.parquet").set_index("id")
    assert done.n_failed == 1 and done.n_done == 2
    for name in ("ethanol", "phenol", "broken"):  # the first shard: records are read on the workers, so all share its reason
        assert table.loc[name, "error"].startswith(f"record {name!r}: the model's output looks transposed")
    assert table.loc[["ethanol", "phenol"], "score"].isna().all() and table.loc[["paracetamol", "glycerol"], "score"].notna().all()


def test_the_lowest_scores_first_when_lower_is_better(tmp_path, capsys):
    path = tmp_path / "lib.csv"
    pd.DataFrame({"name": list(LIBRARY), "smiles": list(LIBRARY.values())}).to_csv(path, index=False)
    done = scale.run("molecule_screen", path, adapter_factory=weighted_adapter, out_dir=tmp_path / "s", shard_size=3,
                     table=tmp_path / "scale.tsv", top=2, best="lowest", **QUIET)  # fmt: skip
    scored = {name: by_hand(s)[0] for name, s in LIBRARY.items() if name not in ("broken", "aspirin", "ethane")}
    lowest = sorted(scored, key=scored.get)[:2]
    assert done.result.top["id"].tolist() == lowest
    np.testing.assert_allclose(done.result.top["score"], [scored[n] for n in lowest], rtol=1e-5)
    with pytest.raises(ValueError, match="best must be 'highest' or 'lowest'"):
        screen_molecules_to_table(weighted_adapter(), path, table=tmp_path / "x.tsv", settings={}, best="smallest", **QUIET)
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(nn.Linear(64, 1)), str(tmp_path / "mlp.pt"))
    args = ["screen", "--model", str(tmp_path / "mlp.pt"), "--featurizer", "morgan:1:64", "--molecules", str(path),
            "--table", str(tmp_path / "cli.tsv"), "--top", "1", "--device", "cpu", "--no-progress", "--lowest"]  # fmt: skip
    assert cli.main(args) == 0
    table = pd.read_csv(tmp_path / "cli.tsv", sep="\t")
    worst = table.loc[table["score"].idxmin()]
    assert f"   1  {worst['score']:.4g}  {worst['id']}" in capsys.readouterr().out


def test_a_new_fit_of_the_featurizer_keys_new_shards(tmp_path):
    from probekit.scale.shards import describe

    def factory(fp):
        return functools.partial(scale.load_feature_adapter, tmp_path / "m.pt", featurizer=fp, output=0, device="cpu")

    assert describe(factory(Descriptors(["MolWt"]).fit(["CCO", "CCCC"]))) == describe(factory(Descriptors(["MolWt"]).fit(["CCO", "CCCC"])))
    assert describe(factory(Descriptors(["MolWt"]).fit(["CCO", "CCCC"]))) != describe(factory(Descriptors(["MolWt"]).fit(["CCO", "CCCCCC"])))
    assert describe(factory(Descriptors(["MolWt"]))) != describe(factory(Descriptors(["MolWt"]).fit(["CCO"])))


def test_further_outputs_come_from_the_forward_passes_of_the_score():
    calls = []

    class Counted(nn.Module):
        def forward(self, x):
            calls.append(len(x))
            return torch.stack([x[:, 0], x[:, 1] / 100], dim=1)

    smiles = [s for name, s in LIBRARY.items() if name not in ("broken", "ethane")]
    adapter = weighted_adapter(Counted(), batch_size=64)
    adapter.deterministic = True  # known: no check pass of its own
    frame = screen_molecules(adapter, smiles, outputs=[outputs.value(1)])
    assert calls == [len(smiles)]  # one pass for the score and the further output together
    np.testing.assert_allclose(frame["value[1]"], [by_hand(s)[1] for s in smiles], rtol=1e-5)
    graph = MoleculeModel(lambda smiles: torch.tensor([[len(s), -len(s)] for s in smiles], dtype=torch.float32),
                          kind="smiles", output=outputs.value(0), device="cpu")  # fmt: skip
    both = screen_molecules(graph, ["CCO", "C1CC(", "CCCC"], outputs=[outputs.value(1)])
    assert both["score"].tolist()[::2] == [3.0, 4.0] and both["value[1]"].tolist()[::2] == [-3.0, -4.0]
    assert np.isnan(both["value[1]"].iloc[1]) and both["error"].notna().tolist() == [False, True, False]
