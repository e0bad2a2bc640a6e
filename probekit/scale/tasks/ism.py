"""The ``"ism"`` task: :func:`probekit.search.discrete.saturation_mutagenesis` of each shard of sequences.

The shards are concatenated into one :class:`~probekit.results.ISMResult` in input
order. A record that cannot be read (an invalid sequence, a BED line or region
that cannot be read), and every record of a shard that could not run, holds NaN
effects and its reason in ``params["errors"]``. With ``genome=`` the inputs are
BED regions, read by each worker from the genome it opens once.

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

from .common import (REGION_KEYS, Task, concat_shards, failed_reasons, in_input_order, meta_of_valid, one_length, region_options,
                     sequence_records, valid_records)  # fmt: skip


def _ism_records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    parts = list(sequence_records(inputs, size, options))
    one_length(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"error": []}), "saturation mutagenesis")
    return iter(parts)


def _table(ids, errors, reference=None, effects=None, ref_index=None, evaluations=None) -> pd.DataFrame:
    """One row per record; records that were not scanned hold NaN, no arrays and their reason."""
    n = len(ids)
    return pd.DataFrame({
        "id": [str(i) for i in ids],
        "reference": np.full(n, np.nan, dtype=np.float32) if reference is None else reference,
        "effects": [None] * n if effects is None else effects,
        "ref_index": [None] * n if ref_index is None else ref_index,
        "evaluations": np.zeros(n, dtype=np.int64) if evaluations is None else evaluations,
        "error": list(errors),
    })  # fmt: skip


def _ism(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ...search.discrete import saturation_mutagenesis

    records, valid, options = valid_records(part, options, state)
    table = _table(records["id"], records["error"])
    meta = {"n_valid": int(valid.sum()), "first_error": next(iter(records["error"].dropna()), None)}
    if not valid.any():
        return {"ism": table}, meta
    good = records[valid]
    result = saturation_mutagenesis(adapter, good["sequence"].tolist(), ids=good["id"].tolist(), progress=False, **options)
    n, params = result.effects.shape[0], result.params
    scanned = _table(good["id"], good["error"], reference=result.reference.detach().cpu().numpy().astype(np.float32),
                     effects=list(result.effects.detach().cpu().numpy().astype(np.float32).reshape(n, -1)),
                     ref_index=list(torch.as_tensor(params["ref_index"]).cpu().numpy().astype(np.int64)),
                     evaluations=torch.as_tensor(params["evaluations"]).cpu().numpy().astype(np.int64))  # fmt: skip
    scalars = {k: v for k, v in params.items() if k not in ("ref_index", "evaluations")}
    meta.update(alphabet=result.alphabet, start=result.start, end=result.end, params=scalars,
                shape=list(result.effects.shape[1:]))  # fmt: skip
    return {"ism": in_input_order(scanned, table, valid)}, meta


def _ism_failed(part: pd.DataFrame, reason: str) -> dict:
    return {"ism": _table(part["id"], failed_reasons(part, reason))}


def _merge_ism(folders: list[Path], options: dict, reused: int):
    from ...results import ISMResult

    meta = meta_of_valid(folders)
    table, seconds, errors = concat_shards(folders, "ism")
    length, a = meta["shape"]
    scanned = table["effects"].map(lambda v: isinstance(v, np.ndarray)).to_numpy(dtype=bool)
    effects = np.full((len(table), length, a), np.nan, dtype=np.float32)
    ref_index = np.full((len(table), length), -1, dtype=np.int64)
    if scanned.any():
        effects[scanned] = np.stack(table["effects"][scanned].tolist()).reshape(-1, length, a)
        ref_index[scanned] = np.stack(table["ref_index"][scanned].tolist())
    params = {**meta["params"], "seconds": seconds, "shards": len(folders), "ref_index": torch.from_numpy(ref_index),
              "evaluations": torch.from_numpy(np.array(table["evaluations"], dtype=np.int64))}  # fmt: skip
    if errors:
        params["errors"] = errors
    return ISMResult(
        reference=torch.from_numpy(np.array(table["reference"], dtype=np.float32)), effects=torch.from_numpy(effects),
        alphabet=meta["alphabet"], start=meta["start"], end=meta["end"], ids=table["id"].tolist(), params=params,
    )  # fmt: skip


TASKS = {
    "ism": Task("ism", _ism_records, _ism, _ism_failed, _merge_ism, ("id", "sequence", *REGION_KEYS), "seq",
                shard_size=64, prepare=region_options),
}  # fmt: skip

__all__ = ["TASKS"]
