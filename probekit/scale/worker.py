"""The worker side of a scaled run: build the adapter once, then run shard after shard.

Examples
--------
>>> import functools
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> from probekit.io import sequence_frame
>>> factory = functools.partial(SequenceModel, ToyConv(), output=1, device="cpu")
>>> runner = ShardRunner(factory, "ism", {})
>>> outcome = runner(sequence_frame(["ACGTACGT", "TTGACCAT"]))
>>> outcome.error, outcome.tables["ism"]["id"].tolist()
(None, ['seq0', 'seq1'])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .tasks import TASKS


@dataclass
class ShardOutcome:
    """What one shard gave: its tables and meta, or the reason it could not run.

    Attributes
    ----------
    tables : dict of str -> pandas.DataFrame
    meta : dict
    error : str or None
        Why the shard failed as a whole (its records' own problems are rows of its tables).
    retried : bool
        Whether the shard ran again after its worker was lost.
    seconds : float
    """

    tables: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    error: str | None = None
    retried: bool = False
    seconds: float = 0.0


class ShardRunner:
    """Runs shards of one task with one adapter, built from ``factory`` on the first shard.

    Parameters
    ----------
    factory : callable
        Zero-argument callable returning the adapter.
    task : str
        A key of :data:`probekit.scale.tasks.TASKS`.
    options : dict
        The task's keyword options.
    """

    def __init__(self, factory, task: str, options: dict):
        self.factory, self.task, self.options = factory, TASKS[task], options
        self.adapter, self.state, self.broken = None, {}, None

    def __call__(self, part) -> ShardOutcome:
        from ..adapters import describe_failure

        started = time.perf_counter()
        try:
            if self.broken is not None:
                raise self.broken
            if self.adapter is None:
                try:
                    self.adapter = self.factory()
                except Exception as error:  # noqa: BLE001 - every shard of this worker reports it
                    self.broken = RuntimeError(f"cannot build the adapter: {describe_failure(error)}")
                    raise self.broken from None
            tables, meta = self.task.run(self.adapter, part, self.options, self.state)
        except Exception as error:  # noqa: BLE001 - the shard is reported with its reason; the rest goes on
            return ShardOutcome(error=describe_failure(error) or type(error).__name__, seconds=time.perf_counter() - started)
        return ShardOutcome(tables, meta, seconds=time.perf_counter() - started)

    def close(self) -> None:
        """Close what the task opened (such as a genome)."""
        for value in self.state.values():
            close = getattr(value, "close", None)
            if callable(close):
                close()
        self.state = {}
