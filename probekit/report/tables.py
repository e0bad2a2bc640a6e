"""Tidy tables of a report: position importance, null thresholds, critical regions, and plain storage.

Importance, thresholds and regions are plain tensor functions so that every
report kind (DNA positions, molecule features) computes them the same way.

Examples
--------
>>> import torch
>>> find_regions(torch.tensor([0, 1, 1, 0, 1, 0, 0, 0, 1], dtype=torch.bool), max_gap=1, min_length=2)
[(1, 5)]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch


def position_importance(effects: torch.Tensor) -> torch.Tensor:
    """Importance of each position: the largest absolute effect over its alternative bases.

    Parameters
    ----------
    effects : torch.Tensor of shape (N, L, A)
        ISM effects (score of each substitution minus the reference score; 0 at the
        reference base).

    Returns
    -------
    torch.Tensor of shape (N, L)

    Examples
    --------
    >>> position_importance(torch.tensor([[[0.0, -2.0, 1.0, 0.5]]]))
    tensor([[2.]])
    """
    return effects.abs().amax(dim=2)


def null_threshold(effects: torch.Tensor, alternatives: torch.Tensor, *, alpha: float = 0.05) -> torch.Tensor:
    """Per-input threshold: the ``1 - alpha`` quantile of |effect| of one random substitution.

    A random single substitution is one of the input's alternative bases drawn
    uniformly, so its |effect| is distributed as the |effects| of all single
    substitutions in the ISM of that same input: the quantile is exact, with no
    sampling.

    Parameters
    ----------
    effects : torch.Tensor of shape (N, L, A)
    alternatives : torch.Tensor of shape (N, L, A), bool
        True at every substitution that was scanned (not the reference base, not ``N``,
        inside the window).
    alpha : float

    Returns
    -------
    torch.Tensor of shape (N,); NaN for an input with no substitution.

    Examples
    --------
    >>> e = torch.arange(8.0).reshape(1, 2, 4)
    >>> float(null_threshold(e, e > 0, alpha=0.5)[0])
    4.0
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    flat = effects.abs().reshape(effects.shape[0], -1).double()
    mask = alternatives.reshape(effects.shape[0], -1)
    values = torch.where(mask, flat, torch.full_like(flat, float("nan")))
    # "lower" keeps the threshold an observed effect: an input whose top alpha of
    # substitutions share one effect size keeps them all at the threshold.
    return torch.nanquantile(values, 1 - alpha, dim=1, interpolation="lower").to(effects.dtype)


def outlier_floor(importance: torch.Tensor, *, alpha: float = 0.05) -> torch.Tensor:
    """Per-input floor under which no position counts as critical: a robust outlier test.

    The bulk of an input's positions has small importance; a position stands
    out when it exceeds ``median + z * 1.4826 * MAD`` of the input's position
    importances, with ``z`` the normal quantile of ``1 - alpha / L``
    (Bonferroni over the L positions). A sequence without a motif then gets few
    or no critical positions instead of always its top ``alpha``.

    Parameters
    ----------
    importance : torch.Tensor of shape (N, L)
    alpha : float

    Returns
    -------
    torch.Tensor of shape (N,)

    Examples
    --------
    >>> imp = torch.tensor([[1.0, 1.1, 0.9, 1.0, 9.0, 1.05, 0.95, 1.0]])
    >>> bool(outlier_floor(imp)[0] < 9.0), bool(outlier_floor(imp)[0] > 1.1)
    (True, True)
    """
    from statistics import NormalDist

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    values = importance.double()
    median = values.median(dim=1).values
    mad = (values - median[:, None]).abs().median(dim=1).values
    z = NormalDist().inv_cdf(1 - alpha / max(values.shape[1], 1))
    return (median + z * 1.4826 * mad).to(importance.dtype)


def critical_mask(importance: torch.Tensor, threshold: torch.Tensor, *, rtol: float = 1e-6) -> torch.Tensor:
    """Positions whose importance reaches the input's threshold and is not zero.

    Parameters
    ----------
    importance : torch.Tensor of shape (N, L)
    threshold : torch.Tensor of shape (N,)

    Returns
    -------
    torch.Tensor of shape (N, L), bool
    """
    scale = importance.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(importance.dtype).tiny)
    nonzero = importance > rtol * scale
    return nonzero & (importance >= threshold[:, None] - rtol * scale)


def find_regions(
    mask, *, max_gap: int = 2, min_length: int = 3, importance=None, grow: float = 0.5
) -> list[tuple[int, int]]:
    """Runs of True, widened to half their peak, merged across gaps of at most ``max_gap``, at least ``min_length`` long.

    Parameters
    ----------
    mask : torch.Tensor or array of shape (L,), bool
        Seed positions (e.g. critical positions).
    max_gap : int
        Runs separated by this many positions outside them, or fewer, are merged.
    min_length : int
        Shorter merged runs are dropped.
    importance : torch.Tensor or array of shape (L,), optional
        When given, each run extends on both sides through contiguous positions whose
        importance is at least ``grow`` times the run's peak (its full width at half
        maximum for ``grow=0.5``), so a motif whose weaker positions fall just below
        the threshold stays whole.
    grow : float

    Returns
    -------
    list of (start, end) with ``end`` exclusive

    Examples
    --------
    >>> find_regions([True, True, False, False, False, True], max_gap=2, min_length=1)
    [(0, 2), (5, 6)]
    >>> find_regions([0, 0, 1, 0, 0, 0], importance=[0.1, 0.6, 1.0, 0.7, 0.2, 0.9], max_gap=0, min_length=1)
    [(1, 4)]
    """
    m = np.asarray(torch.as_tensor(mask).cpu(), dtype=bool)
    if not m.any():
        return []
    runs = _runs(m)
    if importance is not None:
        imp = np.asarray(torch.as_tensor(importance).cpu(), dtype=np.float64)
        widened = []
        for s, e in runs:
            low = grow * imp[s:e].max()
            while s > 0 and imp[s - 1] >= low and imp[s - 1] > 0:
                s -= 1
            while e < len(imp) and imp[e] >= low and imp[e] > 0:
                e += 1
            widened.append((s, e))
        runs = widened
    merged = [runs[0]]
    for start, end in runs[1:]:
        if start - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return [(s, e) for s, e in merged if e - s >= min_length]


def _runs(m: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], m, [False]])
    change = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(change[0::2].tolist(), change[1::2].tolist()))


def rank_desc(values: torch.Tensor) -> torch.Tensor:
    """Rank along the last axis, 1 for the largest; ties keep position order.

    Examples
    --------
    >>> rank_desc(torch.tensor([[0.5, 2.0, 0.5]]))
    tensor([[2, 1, 3]])
    """
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(1, values.shape[-1] + 1, device=values.device).expand_as(order).contiguous())
    return ranks


# ------------------------------------------------------------------- storage
def normalize_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as ``object`` with None for missing, whatever string dtype pandas inferred.

    Keeps tables equal after save/load and JSON round trips across pandas versions.
    """
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if dtype == object or (pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)):
            values = out[column].astype(object)
            out[column] = values.where(values.notna(), None)
    return out



def jsonable(value):
    """Turn ``value`` into plain JSON types (tensors and arrays to lists, NaN to None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


_NUMERIC = ("b", "i", "u", "f")


def _plain_value(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain_value(x) for x in v]
    return str(v)


def frame_to_plain(frame: pd.DataFrame) -> dict:
    """A DataFrame as plain data that ``torch.load(weights_only=True)`` reads back.

    NumPy-typed columns become tensors; other columns (strings, nullable ints, mixed)
    become lists of Python values with their pandas dtype name.
    """
    columns, dtypes, data = [], [], []
    for name in frame.columns:
        col = frame[name]
        columns.append(str(name))
        dtypes.append(str(col.dtype))
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in _NUMERIC:
            arr = col.to_numpy()
            if arr.dtype.kind == "u" and arr.dtype != np.uint8:
                arr = arr.astype(np.int64)
            data.append(torch.from_numpy(np.array(arr, copy=True)))
        else:
            data.append([_plain_value(v) for v in col.astype(object).tolist()])
    return {"columns": columns, "dtypes": dtypes, "data": data}


def frame_from_plain(plain: dict) -> pd.DataFrame:
    """Inverse of :func:`frame_to_plain`."""
    series = {}
    for name, dtype, values in zip(plain["columns"], plain["dtypes"], plain["data"]):
        if isinstance(values, torch.Tensor):
            series[name] = pd.Series(values.numpy(), dtype=dtype)
        else:
            series[name] = pd.Series(values, dtype=dtype) if dtype != "object" else pd.Series(values, dtype=object)
    return pd.DataFrame(series, columns=plain["columns"])


__all__ = [
    "position_importance", "null_threshold", "critical_mask", "find_regions", "rank_desc", "frame_to_plain",
    "frame_from_plain", "normalize_text", "jsonable",
]  # fmt: skip
