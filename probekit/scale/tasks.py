"""What each scaled task does with its shards: read the inputs into shards, run one shard, merge them.

A task wraps one public entry point and nothing of its insides:

- ``"dna_probe"`` and ``"molecule_probe"``: :func:`probekit.probe` on each shard of
  records, merged by :func:`probekit.probe.chunks.merge_reports`;
- ``"ism"``: :func:`probekit.search.discrete.saturation_mutagenesis`, concatenated
  into one :class:`~probekit.results.ISMResult` in input order;
- ``"variants"``: :func:`probekit.variants.score_variants` on each chunk of a VCF or
  variant table, joined into one table as :func:`~probekit.variants.stream.score_variants_to_table`
  writes it.

Examples
--------
>>> sorted(TASKS)
['dna_probe', 'ism', 'molecule_probe', 'variants']
>>> [len(part) for part in TASKS["ism"].shards(["ACGT", "ACGA", "TTTT"], 2, {})]
[2, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from .shards import read_tables


@dataclass(frozen=True)
class Task:
    """One scaled task.

    Attributes
    ----------
    name : str
    shards : callable
        ``shards(inputs, shard_size, options) -> iterator of DataFrame`` on the driver.
    run : callable
        ``run(adapter, part, options, state) -> (tables, meta)`` on a worker;
        ``state`` is a dict the worker keeps between its shards.
    failed : callable
        ``failed(part, reason) -> tables``: the rows a shard that could not run stands for.
    merge : callable
        ``merge(folders, options, reused) -> result`` from the shards' folders, in order.
    key_columns : tuple of str
        Columns of a shard whose digest keys it.
    unit : str
        Unit of the progress bar.
    sized : bool
        Whether the inputs are all read before the run (so the progress bar has a total).
    """

    name: str
    shards: Callable
    run: Callable
    failed: Callable
    merge: Callable
    key_columns: tuple
    unit: str
    sized: bool = True


def _chunks(records: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(records), size):
        yield records.iloc[start : start + size].reset_index(drop=True)


def _good_meta(folders: list[Path]) -> tuple[dict, dict]:
    """The tables and meta of the first shard that ran (failed shards borrow its layout)."""
    for folder in folders:
        tables, meta = read_tables(folder)
        if "failed" not in meta:
            return tables, meta
    reasons = sorted({read_tables(f)[1]["failed"] for f in folders})
    raise RuntimeError(f"every shard failed: {'; '.join(reasons)}")


# ------------------------------------------------------------------- probes
def _sequence_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ..io import sequence_frame

    return _chunks(sequence_frame(inputs), size)


def _molecule_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ..io import read_molecules

    if isinstance(inputs, pd.DataFrame) and {"id", "smiles", "error"} <= set(inputs.columns):
        return _chunks(inputs, size)
    return _chunks(read_molecules(inputs), size)


def _probe(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ..probe import probe

    report = probe(adapter, part, progress=False, **options)
    return {name: report.table(name) for name in report.table_names}, {"kind": report.kind, "params": report.params}


def _probe_failed(part: pd.DataFrame, reason: str) -> dict:
    return {"summary": pd.DataFrame({"id": part["id"].astype(str).tolist(), "error": [reason] * len(part)})}


def _merge_probe(report_class: Callable):
    def merge(folders: list[Path], options: dict, reused: int):
        from ..probe.chunks import merge_reports

        good, meta = _good_meta(folders)
        reports = []
        for folder in folders:
            tables, shard = read_tables(folder)
            if "failed" in shard:
                empty = {name: table.iloc[:0] for name, table in good.items() if name != "summary"}
                params = {**meta["params"], "n_inputs": shard["n"], "n_errors": shard["n"], "seconds": 0.0}
                reports.append(report_class()(meta["kind"], {**empty, "summary": tables["summary"]}, params))
            else:
                reports.append(report_class()(shard["kind"], tables, shard["params"]))
        merged = merge_reports(reports)
        if len(reports) == 1:  # merge_reports returns a lone report as it is
            merged = report_class()(merged.kind, {n: merged.table(n) for n in merged.table_names}, {**merged.params, "chunks": 1})
        return merged

    return merge


def _sensitivity_report():
    from ..report.sensitivity import SensitivityReport

    return SensitivityReport


def _molecule_report():
    from ..report.molecules import MoleculeReport

    return MoleculeReport


# ---------------------------------------------------------------------- ISM
def _ism_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ..io import sequence_frame

    records = sequence_frame(inputs)
    bad = records["error"].dropna()
    if len(bad):
        raise ValueError(bad.iloc[0])
    lengths = records["sequence"].str.len().unique()
    if len(lengths) > 1:
        raise ValueError(f"saturation mutagenesis takes sequences of one length; got lengths {sorted(lengths.tolist())}")
    return _chunks(records, size)


def _ism(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ..search.discrete import saturation_mutagenesis

    result = saturation_mutagenesis(adapter, part["sequence"].tolist(), ids=part["id"].tolist(), progress=False, **options)
    n = result.effects.shape[0]
    params = result.params
    table = pd.DataFrame({
        "id": [str(i) for i in result.ids],
        "reference": result.reference.detach().cpu().numpy(),
        "effects": list(result.effects.detach().cpu().numpy().reshape(n, -1)),
        "ref_index": list(torch.as_tensor(params["ref_index"]).cpu().numpy()),
        "evaluations": torch.as_tensor(params["evaluations"]).cpu().numpy().astype(np.int64),
    })  # fmt: skip
    scalars = {k: v for k, v in params.items() if k not in ("ref_index", "evaluations")}
    meta = {"alphabet": result.alphabet, "start": result.start, "end": result.end, "params": scalars,
            "shape": list(result.effects.shape[1:])}  # fmt: skip
    return {"ism": table}, meta


def _ism_failed(part: pd.DataFrame, reason: str) -> dict:
    length = int(part["sequence"].str.len().iloc[0])
    n = len(part)
    return {"ism": pd.DataFrame({
        "id": part["id"].astype(str).tolist(), "reference": np.full(n, np.nan, dtype=np.float32),
        "effects": [np.full(length * 4, np.nan, dtype=np.float32) for _ in range(n)],
        "ref_index": [np.full(length, -1, dtype=np.int64) for _ in range(n)], "evaluations": np.zeros(n, dtype=np.int64),
    })}  # fmt: skip


def _merge_ism(folders: list[Path], options: dict, reused: int):
    from ..results import ISMResult

    _, meta = _good_meta(folders)
    tables, errors, seconds = [], {}, 0.0
    for folder in folders:
        shard_tables, shard = read_tables(folder)
        table = shard_tables["ism"]
        if "failed" in shard:
            errors.update({i: shard["failed"] for i in table["id"]})
        else:
            seconds += shard["params"].get("seconds", 0.0)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    length, a = meta["shape"]
    effects = np.stack(table["effects"].tolist()).reshape(len(table), length, a)
    params = {
        **meta["params"], "seconds": seconds, "shards": len(folders),
        "ref_index": torch.from_numpy(np.stack(table["ref_index"].tolist())),
        "evaluations": torch.from_numpy(np.array(table["evaluations"], dtype=np.int64)),
    }  # fmt: skip
    if errors:
        params["errors"] = errors
    return ISMResult(
        reference=torch.from_numpy(np.array(table["reference"])), effects=torch.from_numpy(np.ascontiguousarray(effects)),
        alphabet=meta["alphabet"], start=meta["start"], end=meta["end"], ids=table["id"].tolist(), params=params,
    )  # fmt: skip


# ----------------------------------------------------------------- variants
_VARIANT_KEYS = ("id", "chrom", "pos", "ref", "alt", "error")
_NOT_SCORING = ("table", "top", "genome", "length")


def _variant_chunks(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ..variants.io import iter_variants

    return iter_variants(inputs, chunk_size=size)


def _score(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ..variants import score_variants
    from ..variants.genome import Genome

    if "genome" not in state:
        state["genome"] = Genome(options["genome"])
    scoring = {k: v for k, v in options.items() if k not in _NOT_SCORING}
    result = score_variants(adapter, part, state["genome"], length=options["length"], chunk_size=max(len(part), 1), **scoring)
    return {"variants": result.to_frame()}, {}


def _variants_failed(part: pd.DataFrame, reason: str) -> dict:
    frame = part[[c for c in _VARIANT_KEYS if c in part.columns]].copy()
    frame["error"] = [e if isinstance(e, str) else reason for e in frame.get("error", [None] * len(frame))]
    for name in ("ref_score", "alt_score", "delta", "p_value"):
        frame[name] = np.nan
    return {"variants": frame}


def _merge_variants(folders: list[Path], options: dict, reused: int):
    from ..variants.stream import StreamOutcome, join_chunks, save_chunk, table_format

    good, _ = _good_meta(folders)
    columns = list(good["variants"].columns)
    paths = []
    for folder in folders:
        tables, _ = read_tables(folder)
        path = folder / "joined.parquet"  # each shard saved as the in-process stream saves its chunks
        save_chunk(tables["variants"].reindex(columns=columns), path)
        paths.append(path)
    table = Path(options["table"])
    table.parent.mkdir(parents=True, exist_ok=True)
    outcome = StreamOutcome(path=table, n_reused=reused)
    join_chunks(paths, table, kind=table_format(table), outcome=outcome, top=options.get("top", 20))
    for path in paths:
        path.unlink()
    return outcome


TASKS = {
    "dna_probe": Task("dna_probe", _sequence_records, _probe, _probe_failed, _merge_probe(_sensitivity_report),
                      ("id", "sequence", "error"), "seq"),
    "molecule_probe": Task("molecule_probe", _molecule_records, _probe, _probe_failed, _merge_probe(_molecule_report),
                           ("id", "smiles", "error"), "mol"),
    "ism": Task("ism", _ism_records, _ism, _ism_failed, _merge_ism, ("id", "sequence"), "seq"),
    "variants": Task("variants", _variant_chunks, _score, _variants_failed, _merge_variants, _VARIANT_KEYS, "var", sized=False),
}  # fmt: skip


def worker_options(task: str, options: dict) -> dict:
    """The options a worker needs: all but the driver's output settings (``table``, ``top``) of ``"variants"``."""
    if task != "variants":
        return options
    return {k: v for k, v in options.items() if k not in ("table", "top")}


def check_options(task: str, options: dict) -> dict:
    """``options`` checked for what the task needs (``TypeError`` when missing), with a genome given by its path."""
    needed = {"variants": ("genome", "length", "table")}.get(task, ())
    missing = [name for name in needed if name not in options]
    if missing:
        raise TypeError(f"task {task!r} needs {', '.join(f'{m}=' for m in missing)}")
    if task == "variants" and not isinstance(options["genome"], (str, Path)):
        path = getattr(options["genome"], "path", None)
        if path is None:
            raise TypeError("task 'variants' takes genome= as a FASTA path, opened once by each worker")
        options = {**options, "genome": Path(path)}
    return options


__all__ = ["TASKS", "Task", "worker_options", "check_options"]
