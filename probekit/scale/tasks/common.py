"""What a scaled task is, and the helpers its modules share.

A task wraps one public entry point and nothing of its insides: how the driver
reads the inputs into shards, what a worker does with one shard (with an adapter
it built once), the rows a shard that could not run stands for, and how the
driver merges the shards' folders into the result the in-process call gives.

Examples
--------
>>> import pandas as pd
>>> [len(part) for part in chunks(pd.DataFrame({"id": ["a", "b", "c"]}), 2)]
[2, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from ..shards import read_meta, read_tables


def _same(options: dict) -> dict:
    return options


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
        ``state`` is a dict the worker keeps between its shards (close() is called
        on what it holds when the worker is done).
    failed : callable
        ``failed(part, reason) -> tables``: the rows a shard that could not run stands for.
    merge : callable
        ``merge(folders, options, reused) -> result`` from the shards' folders, in order.
    key_columns : tuple of str
        Columns of a shard whose digest keys it.
    unit : str
        Unit of the progress bar.
    shard_size : int
        Inputs per shard when the run does not say.
    sized : bool
        Whether the inputs are all read before the run (so the progress bar has a total).
    needs : tuple of str
        Options the task cannot run without (``TypeError`` naming them when missing).
    driver_only : tuple of str
        Options only the driver uses (where to write the merged table...): not sent
        to the workers, nor part of the shards' keys.
    prepare : callable
        ``prepare(options) -> options`` on the driver, before anything runs (for
        example a genome object given by its path).
    """

    name: str
    shards: Callable
    run: Callable
    failed: Callable
    merge: Callable
    key_columns: tuple
    unit: str
    shard_size: int
    sized: bool = True
    needs: tuple = ()
    driver_only: tuple = ()
    prepare: Callable = _same

    def check_options(self, options: dict) -> dict:
        """``options`` checked for what the task needs (``TypeError`` when missing), then prepared."""
        missing = [name for name in self.needs if name not in options]
        if missing:
            raise TypeError(f"task {self.name!r} needs {', '.join(f'{m}=' for m in missing)}")
        return self.prepare(options)

    def worker_options(self, options: dict) -> dict:
        """The options a worker needs: all but :attr:`driver_only`."""
        return {k: v for k, v in options.items() if k not in self.driver_only}


def chunks(records: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """``records`` cut into frames of ``size`` rows (the last may be shorter), each indexed from 0."""
    for start in range(0, len(records), size):
        yield records.iloc[start : start + size].reset_index(drop=True)


def good_meta(folders: list[Path]) -> tuple[dict, dict]:
    """The tables and meta of the first shard that ran (failed shards borrow its layout).

    Raises ``RuntimeError`` naming the reasons when every shard failed.
    """
    for folder in folders:
        tables, meta = read_tables(folder)
        if "failed" not in meta:
            return tables, meta
    reasons = sorted({read_tables(f)[1]["failed"] for f in folders})
    raise RuntimeError(f"every shard failed: {'; '.join(reasons)}")


# Options that make a task's inputs BED regions of a genome (see region_options).
REGION_OPTIONS = ("genome", "length", "chrom_aliases")
# Columns of a shard of regions that key it, besides the id and error of every record.
REGION_KEYS = ("chrom", "window_start", "window_end", "strand")


def region_options(options: dict) -> dict:
    """``options`` with ``genome=`` as a FASTA path that each worker opens itself (its index built here, once).

    ``genome=`` (a path or an open :class:`~probekit.variants.genome.Genome`,
    whose ``chrom_aliases`` come along) makes the inputs BED regions; ``length=``
    and ``chrom_aliases=`` apply to them only.
    """
    from ...variants.genome import Genome

    if "genome" not in options:
        given = [f"{name}=" for name in REGION_OPTIONS if name in options]
        if given:
            raise TypeError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to BED regions: give genome= too")
        return options
    genome = options["genome"]
    if isinstance(genome, Genome):
        aliases = {**genome.chrom_aliases, **(options.get("chrom_aliases") or {})}
        options = {**options, "genome": genome.path.resolve(), **({"chrom_aliases": aliases} if aliases else {})}
    elif isinstance(genome, (str, Path)):
        options = {**options, "genome": Path(genome).resolve()}
        Genome(options["genome"], chrom_aliases=options.get("chrom_aliases")).close()  # clear errors, and the index built once
    else:
        raise TypeError(f"genome= takes a FASTA path or a probekit Genome, got {type(genome).__name__}")
    return options


def join_shard_tables(folders: list[Path], name: str, columns: list, table, join) -> None:
    """Write the shards' ``name`` tables, in order, into the file ``table`` through ``join(paths, table)``.

    Each shard's table is saved as the in-process stream saves its chunks (its
    columns in the order ``columns``) next to the shard, handed to ``join`` (the
    stream's own writer, which counts what it writes), then removed. Without
    shards, one empty table of ``columns`` is joined, so the file has its header.
    """
    import numpy as np

    from ...variants.stream import save_chunk

    table = Path(table)
    table.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for folder in folders:
        path = folder / "joined.parquet"
        save_chunk(read_tables(folder)[0][name].reindex(columns=columns), path)
        paths.append(path)
    if not paths:
        paths = [table.with_name(table.name + ".empty.parquet")]
        save_chunk(pd.DataFrame({c: pd.Series(dtype=np.float64 if c == "score" else object) for c in columns}), paths[0])
    try:
        join(paths, table)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def sequence_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    """Shards of :func:`probekit.io.sequence_frame` records (FASTA path, list, dict or frame).

    With ``genome=``, ``inputs`` is a BED file (or a :func:`probekit.regions.read_bed`
    frame) and each shard holds the regions' coordinates only: the workers read
    their sequences (:func:`shard_records`).
    """
    from ...io import sequence_frame
    from ...regions import read_bed

    if "genome" not in options:
        return chunks(sequence_frame(inputs), size)
    if isinstance(inputs, pd.DataFrame):
        if "length" in options:
            raise TypeError("length= resizes the regions of a BED file; a read_bed() frame is already sized")
        return chunks(inputs, size)
    return chunks(read_bed(inputs, length=options.get("length")), size)


def shard_records(part: pd.DataFrame, options: dict, state: dict) -> tuple[pd.DataFrame, dict]:
    """A shard's sequence records, and the options of the call that takes them.

    Regions (``genome=`` in ``options``) are read from the genome the worker opened
    on its first shard and keeps in ``state``; the region options are removed.
    """
    from ...regions import fetch_regions
    from ...variants.genome import Genome

    if "genome" not in options:
        return part, options
    if "genome" not in state:
        state["genome"] = Genome(options["genome"], chrom_aliases=options.get("chrom_aliases"))
    rest = {k: v for k, v in options.items() if k not in REGION_OPTIONS}
    return fetch_regions(part, state["genome"]), rest


def record_lengths(part: pd.DataFrame) -> pd.Series:
    """Length of each record of a shard: of its sequence, or of its region's window."""
    if "sequence" in part.columns:
        return part["sequence"].astype(str).str.len()
    return (part["window_end"] - part["window_start"]).astype("Int64")


def one_length(records: pd.DataFrame, what: str) -> None:
    """Raise ``ValueError`` when the valid records of ``records`` do not all have one length."""
    lengths = record_lengths(records[records["error"].isna()]).dropna().unique()
    if len(lengths) > 1:
        hint = "; length= resizes every BED region to the model's input length" if "window_start" in records else ""
        raise ValueError(f"{what} takes sequences of one length; got lengths {sorted(int(n) for n in lengths)}{hint}")


def valid_records(part: pd.DataFrame, options: dict, state: dict) -> tuple[pd.DataFrame, pd.Series, dict]:
    """:func:`shard_records`, the mask of its records without an error, and the call's options."""
    records, options = shard_records(part, options, state)
    return records, records["error"].isna().to_numpy(), options


def in_input_order(done: pd.DataFrame, table: pd.DataFrame, valid) -> pd.DataFrame:
    """The rows of the valid records (``done``) put back among the rows of all records (``table``), in input order."""
    import numpy as np

    if valid.all():
        return done.reset_index(drop=True)
    return pd.concat([done.set_axis(np.flatnonzero(valid)), table[~valid]]).sort_index().reset_index(drop=True)


def failed_reasons(part: pd.DataFrame, reason: str) -> list:
    """The error of each record of a shard that could not run: its own when it had one, else the shard's ``reason``."""
    if "error" not in part.columns:
        return [reason] * len(part)
    return [e if isinstance(e, str) else reason for e in part["error"]]


def meta_of_valid(folders: list[Path]) -> dict:
    """The meta of the first shard that ran on valid records (else of the first that ran)."""
    for folder in folders:
        meta = read_meta(folder)
        if "failed" not in meta and meta.get("n_valid", 1) > 0:
            return meta
    _, meta = good_meta(folders)
    raise RuntimeError(f"no record could be read; the first error: {meta.get('first_error')}")


def concat_shards(folders: list[Path], name: str) -> tuple[pd.DataFrame, float, dict]:
    """The shards' ``name`` tables in order as one table, their summed ``params["seconds"]``, and each record's error.

    Returns ``(table, seconds, errors)``; ``errors`` maps the id of every record with
    an error (its own, or its failed shard's) to the reason.
    """
    tables, seconds = [], 0.0
    for folder in folders:
        shard_tables, shard = read_tables(folder)
        tables.append(shard_tables[name])
        if "params" in shard:
            seconds += shard["params"].get("seconds", 0.0)
    table = pd.concat(tables, ignore_index=True)
    errors = {i: e for i, e in zip(table["id"], table["error"]) if isinstance(e, str)}
    return table, seconds, errors


__all__ = ["Task", "chunks", "good_meta", "join_shard_tables", "concat_shards", "sequence_records", "shard_records", "region_options", "record_lengths",
           "one_length", "valid_records", "in_input_order", "failed_reasons", "meta_of_valid", "REGION_OPTIONS", "REGION_KEYS"]
