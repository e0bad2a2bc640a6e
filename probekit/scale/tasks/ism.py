"""The ``"ism"`` task: :func:`probekit.search.discrete.saturation_mutagenesis` of each shard of sequences.

The shards are concatenated into one :class:`~probekit.results.ISMResult` in input
order; a shard that could not run holds NaN effects and names its reason in
``params["errors"]``.

Examples
--------
>>> [len(part) for part in TASKS["ism"].shards(["ACGT", "ACGA", "TTTT"], 2, {})]
[2, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from ..shards import read_tables
from .common import Task, chunks, good_meta

def _ism_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ...io import sequence_frame

    records = sequence_frame(inputs)
    bad = records["error"].dropna()
    if len(bad):
        raise ValueError(bad.iloc[0])
    lengths = records["sequence"].str.len().unique()
    if len(lengths) > 1:
        raise ValueError(f"saturation mutagenesis takes sequences of one length; got lengths {sorted(lengths.tolist())}")
    return chunks(records, size)


def _ism(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ...search.discrete import saturation_mutagenesis

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
    from ...results import ISMResult

    _, meta = good_meta(folders)
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


TASKS = {"ism": Task("ism", _ism_records, _ism, _ism_failed, _merge_ism, ("id", "sequence"), "seq", shard_size=64)}

__all__ = ["TASKS"]
