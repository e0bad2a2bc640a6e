"""Automatic batch size: a short timed probe of throughput on the model and device at hand.

On a CPU small batches often win (they stay in cache: batch 32 was 2.5x faster
than 256 for ISM on a Basset-like CNN); on a GPU the best batch is large. The
probe times forward passes of growing batches built from the caller's inputs and
keeps the batch with the highest throughput. Results are cached per model, input
shape, device and dtype.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=0, device="cpu")
>>> pick_batch_size(adapter, adapter.encode(["ACGTACGTAC"]), candidates=(8, 16), budget_s=0.2) in (8, 16)
True
"""

from __future__ import annotations

import time
import weakref

import torch

from ._device import is_out_of_memory

DEFAULT_CANDIDATES = (8, 16, 32, 64, 128, 256, 512)

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PLAIN_CACHE: dict = {}  # for models that cannot be weakly referenced (plain functions with closures)


def _cache_for(model) -> dict:
    try:
        return _CACHE.setdefault(model, {})
    except TypeError:
        return _PLAIN_CACHE.setdefault(id(model), {})


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _probe_batch(adapter, X: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` inputs built by cycling through the rows of ``X``."""
    index = torch.arange(size, device=X.device) % X.shape[0]
    return X[index]


def pick_batch_size(
    adapter,
    X,
    *,
    candidates=DEFAULT_CANDIDATES,
    budget_s: float = 1.0,
    min_repeats: int = 2,
) -> int:
    """The batch size of ``candidates`` with the highest measured throughput.

    Each candidate, smallest first, runs one untimed warm-up forward pass and then
    timed passes (at least ``min_repeats``, until about ``budget_s / len(candidates)``
    seconds); its throughput is the batch divided by the fastest pass. The probe stops
    early when the time budget is spent, when a candidate runs out of memory, or when
    throughput has fallen for two candidates in a row.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...)
        Example inputs in the adapter's canonical layout (one is enough).
    candidates : sequence of int
        Batch sizes to try.
    budget_s : float
        Rough limit on the probe's total time, in seconds.
    min_repeats : int
        Timed passes per candidate at least.

    Returns
    -------
    int
        One of ``candidates``; cached per (model, input shape, device, dtype).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(4, 1), output=outputs.value(0), device="cpu")
    >>> pick_batch_size(adapter, torch.zeros(3, 4), candidates=(4, 8), budget_s=0.1) in (4, 8)
    True
    """
    candidates = sorted({int(c) for c in candidates})
    if not candidates or candidates[0] < 1:
        raise ValueError(f"candidates must be positive batch sizes, got {candidates}")
    X = adapter._as_input(X)
    if X.shape[0] == 0:
        raise ValueError("pick_batch_size needs at least one example input")
    key = (
        tuple(X.shape[1:]), str(adapter.device), str(adapter.dtype),
        getattr(adapter, "strands", None), getattr(adapter, "autocast", None), tuple(candidates),
    )
    cache = _cache_for(adapter.model)
    if key in cache:
        return cache[key]

    per_candidate = budget_s / len(candidates)
    best, best_rate, falls = candidates[0], 0.0, 0
    started = time.perf_counter()
    with adapter.session(), torch.no_grad():
        for size in candidates:
            batch = _probe_batch(adapter, X, size)
            try:
                adapter._call(batch)  # warm-up: allocation, kernel selection
                _synchronize(adapter.device)
                times = []
                spent = 0.0
                while len(times) < min_repeats or spent < per_candidate:
                    t0 = time.perf_counter()
                    adapter._call(batch)
                    _synchronize(adapter.device)
                    times.append(time.perf_counter() - t0)
                    spent += times[-1]
                    if len(times) >= 50:
                        break
            except Exception as error:  # noqa: BLE001 - out of memory ends the probe; the rest re-raises
                if not is_out_of_memory(error):
                    raise
                torch.cuda.empty_cache()
                break
            rate = size / max(min(times), 1e-9)
            if rate > best_rate:
                best, best_rate, falls = size, rate, 0
            else:
                falls += 1
                if falls >= 2:
                    break
            if time.perf_counter() - started > budget_s:
                break
    cache[key] = best
    return best


def clear_cache() -> None:
    """Forget every probed batch size (for example after changing the machine's load)."""
    _CACHE.clear()
    _PLAIN_CACHE.clear()


__all__ = ["pick_batch_size", "clear_cache", "DEFAULT_CANDIDATES"]
