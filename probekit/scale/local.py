"""The in-process engine: the shards one after another in this process, with one adapter.

Examples
--------
>>> from probekit import SequenceModel, sequence_frame
>>> from probekit.testing import MotifCounter
>>> adapter = SequenceModel(MotifCounter("TGA"), output=0, device="cpu")
>>> shards = enumerate([sequence_frame(["CCTGACC"]), sequence_frame(["TTTTTTT"])])
>>> found = {}
>>> run_local(lambda: adapter, "ism", options={"start": 2}, pending=shards,
...           on_result=lambda i, part, out: found.update({i: out.error}))
1
>>> found
{0: None, 1: None}
"""

from __future__ import annotations

from typing import Callable, Iterable

from .worker import ShardRunner


def run_local(factory, task: str, *, options: dict, pending: Iterable, on_result: Callable) -> int:
    """Run each ``(index, part)`` of ``pending`` in this process; ``on_result(index, part, outcome)`` after each.

    Returns the number of workers used (1).
    """
    runner = ShardRunner(factory, task, options)
    try:
        for index, part in pending:
            on_result(index, part, runner(part))
    finally:
        runner.close()
    return 1
