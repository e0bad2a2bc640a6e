"""The ``"molecule_probe"`` task: :func:`probekit.probe` of a feature or molecule model on each shard of molecules.

Examples
--------
>>> TASKS["molecule_probe"].unit, TASKS["molecule_probe"].key_columns
('mol', ('id', 'smiles', 'error'))
"""

from __future__ import annotations

from typing import Iterator

import pandas as pd

from .common import Task, chunks
from .probes import merge_probe, probe_failed, run_probe


def _molecule_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ...io import read_molecules

    if isinstance(inputs, pd.DataFrame) and {"id", "smiles", "error"} <= set(inputs.columns):
        return chunks(inputs, size)
    return chunks(read_molecules(inputs), size)


TASKS = {
    "molecule_probe": Task("molecule_probe", _molecule_records, run_probe, probe_failed, merge_probe,
                           ("id", "smiles", "error"), "mol", shard_size=16),
}  # fmt: skip

__all__ = ["TASKS"]
