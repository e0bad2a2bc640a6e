"""The ``"attributions"`` task: :func:`probekit.attr.attribute` of each shard of equal-length DNA sequences.

The shards are joined into one :class:`~probekit.attr.Attribution` in input
order, equal to one in-process ``attribute(adapter, sequences, method=...,
**options)`` on the same sequences: bit for bit for the deterministic methods,
and for the seeded ones too, since DeepLIFT-SHAP seeds each input's references
by the input itself (:func:`probekit.attr.shuffled_references`) and Shapley
sampling draws the same orders for every batch. Options that depend on all the
inputs together (``baseline="mean"``, references or baselines given per input)
are refused: a shard cannot know the other shards' inputs.

A record that cannot be read (an invalid sequence, a BED line or region that
cannot be read), and every record of a shard that could not run, holds NaN and
its reason in ``params["errors"]``. With ``genome=`` the inputs are BED
regions, read by each worker from the genome it opens once. Values travel as
float32.

Examples
--------
>>> TASKS["attributions"].shard_size, TASKS["attributions"].unit
(64, 'seq')
>>> TASKS["attributions"].check_options({"method": "saliency"})
{'method': 'saliency'}
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from .common import (REGION_KEYS, Task, concat_shards, failed_reasons, in_input_order, meta_of_valid, one_length, region_options,
                     sequence_records, valid_records)  # fmt: skip


def _records(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    parts = list(sequence_records(inputs, size, options))
    one_length(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"error": []}), "attributions")
    return iter(parts)


def _shared(name: str, value, per_input_ndim: int):
    """A tensor option as a nested list (exact in the shard keys); refused when it holds one row per input."""
    tensor = torch.as_tensor(value)
    if tensor.ndim == per_input_ndim and (name == "references" or tensor.shape[0] > 1):
        raise ValueError(f"{name}= given per input cannot be cut into shards; give one shared by every input")
    return tensor.tolist()


def _options(options: dict) -> dict:
    """The options checked on the driver: a known method, nothing that depends on all the inputs together."""
    from ...attr import METHODS

    options = region_options(options)
    method = options.get("method", "integrated_gradients")
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {sorted(METHODS)}")
    if "ids" in options:
        raise TypeError("task 'attributions' takes the ids of its records; ids= is not an option")
    if isinstance(options.get("baseline"), str) and options["baseline"] == "mean":
        raise ValueError("baseline='mean' is the mean of all the inputs, which no shard sees; give it as a tensor")
    for name, per_input_ndim in (("baseline", 3), ("references", 4)):
        if isinstance(options.get(name), (torch.Tensor, np.ndarray)):
            options = {**options, name: _shared(name, options[name], per_input_ndim)}
    return {**options, "method": method}


def _table(ids, errors, sequences=None, values=None, per_position=None, delta=None) -> pd.DataFrame:
    """One row per record; records that were not attributed hold no arrays and their reason."""
    n = len(ids)
    return pd.DataFrame({
        "id": [str(i) for i in ids],
        "sequence": [None] * n if sequences is None else list(sequences),
        "values": [None] * n if values is None else values,
        "per_position": [None] * n if per_position is None else per_position,
        "delta": np.full(n, np.nan, dtype=np.float32) if delta is None else delta,
        "error": list(errors),
    })  # fmt: skip


def _float32(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32, copy=False)


def _attribute(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ...adapters import SequenceModel
    from ...attr import METHODS

    if not isinstance(adapter, SequenceModel):
        raise TypeError(f"task 'attributions' takes DNA sequences and a SequenceModel, not a {type(adapter).__name__}")
    records, valid, options = valid_records(part, options, state)
    method = METHODS[options["method"]]
    kwargs = {k: v for k, v in options.items() if k != "method"}
    if "progress" in inspect.signature(method).parameters:
        kwargs["progress"] = False
    table = _table(records["id"], records["error"])
    meta = {"n_valid": int(valid.sum()), "first_error": next(iter(records["error"].dropna()), None)}
    if not valid.any():
        return {"attributions": table}, meta
    good = records[valid]
    result = method(adapter, good["sequence"].tolist(), ids=good["id"].tolist(), **kwargs)
    n = len(good)
    done = _table(good["id"], good["error"], sequences=good["sequence"], values=list(_float32(result.values).reshape(n, -1)),
                  per_position=list(_float32(result.per_position)),
                  delta=None if result.delta is None else _float32(result.delta))  # fmt: skip
    meta.update(method=result.method, form=result.form, alphabet=result.alphabet, params=result.params,
                shape=list(result.values.shape[1:]), has_delta=result.delta is not None)  # fmt: skip
    return {"attributions": in_input_order(done, table, valid)}, meta


def _failed(part: pd.DataFrame, reason: str) -> dict:
    return {"attributions": _table(part["id"], failed_reasons(part, reason))}


def _merge(folders: list[Path], options: dict, reused: int):
    from ...attr import Attribution
    from ...encode.dna import one_hot

    meta = meta_of_valid(folders)
    table, seconds, errors = concat_shards(folders, "attributions")
    (channels, length), n = meta["shape"], len(table)
    done = np.array([isinstance(v, np.ndarray) for v in table["values"]], dtype=bool)
    values = np.full((n, channels, length), np.nan, dtype=np.float32)
    per_position = np.full((n, length), np.nan, dtype=np.float32)
    inputs = torch.zeros(n, channels, length)
    if done.any():
        values[done] = np.stack(table["values"][done].tolist()).reshape(-1, channels, length)
        per_position[done] = np.stack(table["per_position"][done].tolist())
        inputs[torch.from_numpy(done)] = one_hot(table["sequence"][done].tolist(), alphabet=meta["alphabet"])
    params = {**meta["params"], "seconds": seconds, "shards": len(folders), **({"errors": errors} if errors else {})}
    delta = torch.from_numpy(np.array(table["delta"], dtype=np.float32)) if meta["has_delta"] else None
    return Attribution(
        values=torch.from_numpy(values), method=meta["method"], form=meta["form"], per_position=torch.from_numpy(per_position),
        inputs=inputs, delta=delta, alphabet=meta["alphabet"], ids=table["id"].tolist(), params=params,
    )  # fmt: skip


TASKS = {
    "attributions": Task("attributions", _records, _attribute, _failed, _merge, ("id", "sequence", "error", *REGION_KEYS),
                         "seq", shard_size=64, prepare=_options),
}  # fmt: skip

__all__ = ["TASKS"]
