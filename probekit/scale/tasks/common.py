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

from ..shards import read_tables


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


def sequence_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    """Shards of :func:`probekit.io.sequence_frame` records (FASTA path, list, dict or frame)."""
    from ...io import sequence_frame

    return chunks(sequence_frame(inputs), size)


__all__ = ["Task", "chunks", "good_meta", "sequence_records"]
