"""The ``"molecule_screen"`` task: :func:`probekit.screening.screen_molecules` on each chunk of a molecule library.

The driver reads the library a chunk at a time as text
(:func:`~probekit.screening.iter_molecule_chunks`: a ``.smi`` or ``.csv`` of millions
of lines never sits in memory whole); each worker parses and scores its chunks;
the shards are joined into one table as
:func:`~probekit.screening.screen_molecules_to_table` writes it (``table=``), and the
result is a :class:`~probekit.screening.ScreenOutcome` (counts, the ``top``
highest-scoring rows).

Examples
--------
>>> TASKS["molecule_screen"].needs, TASKS["molecule_screen"].driver_only
(('table',), ('table', 'top', 'best', 'smiles_col', 'id_col'))
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .common import Task, good_meta, join_shard_tables

_KEYS = ("id", "smiles", "error")
_SCORING = ("outputs", "standardize")


def _library_chunks(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ...screening import iter_molecule_chunks

    return iter_molecule_chunks(inputs, chunk_size=size, smiles_col=options.get("smiles_col"), id_col=options.get("id_col"))


def _screen(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ...screening import screen_molecules

    return {"scores": screen_molecules(adapter, part, **{k: v for k, v in options.items() if k in _SCORING})}, {}


def _screen_failed(part: pd.DataFrame, reason: str) -> dict:
    ids = [str(i) for i in part["id"]]
    errors = [e if isinstance(e, str) and e else f"record {i!r}: {reason}" for i, e in zip(ids, part.get("error", [None] * len(part)))]
    frame = pd.DataFrame({"id": ids, "smiles": list(part["smiles"]), "score": np.nan})
    frame["error"] = pd.Series(errors, dtype=object)
    return {"scores": frame}


def _merge_screen(folders: list[Path], options: dict, reused: int):
    from ...screening.stream import ScreenOutcome, join_scores

    columns = list(good_meta(folders)[0]["scores"].columns) if folders else ["id", "smiles", "score", "error"]
    outcome = ScreenOutcome(path=Path(options["table"]), n_reused=reused)
    join_shard_tables(folders, "scores", columns, options["table"],
                      lambda paths, table: join_scores(paths, table, outcome=outcome, top=options.get("top", 20),
                                                         best=options.get("best", "highest")))
    return outcome


def _check_table(options: dict) -> dict:
    from ...variants.stream import table_format

    table_format(options["table"])
    return options


TASKS = {
    "molecule_screen": Task("molecule_screen", _library_chunks, _screen, _screen_failed, _merge_screen, _KEYS, "mol",
                            shard_size=10_000, sized=False, needs=("table",),
                            driver_only=("table", "top", "best", "smiles_col", "id_col"), prepare=_check_table),
}  # fmt: skip

__all__ = ["TASKS"]
