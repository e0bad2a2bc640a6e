"""Automatic batch size: a memory bound, a floor, and a timed probe of throughput between them.

A timing probe alone is at the mercy of the machine's load: when another process
slows one pass down, small batches look best and a search that takes a second
takes a minute. So memory sets the largest batch, a floor the smallest, and
timing only chooses between them, from the fastest of repeated passes. On a CPU
moderate batches often win (they stay in cache); on a GPU the best batch is large.
Results are cached per model, input shape, device and dtype.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=0, device="cpu")
>>> pick_batch_size(adapter, adapter.encode(["ACGTACGTAC"]), candidates=(64, 128), budget_s=0.2) in (64, 128)
True
"""

from __future__ import annotations

import time
import weakref

import torch

from ._device import is_out_of_memory

# Batch sizes tried when none are given: beyond 512 a CPU gains nothing (batches leave the cache).
DEFAULT_CANDIDATES = {
    "cpu": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "cuda": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
}
# Smallest batch picked unless memory forbids it: below it, per-call overhead dominates.
FLOOR = {"cpu": 64, "cuda": 256}
# Activation bytes one CPU batch may hold (summed over the model's layers, an over-estimate of the peak).
CPU_MEMORY_BUDGET = 2 << 30
# Share of the free GPU memory one batch may take (the rest is headroom for the caller's tensors).
CUDA_MEMORY_FRACTION = 0.5
# Rows of the one forward pass that measures memory per row.
MEMORY_PROBE_ROWS = 8
# A larger batch within this share of the best throughput wins: timing noise favours small batches.
RATE_TOLERANCE = 0.9

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PLAIN_CACHE: dict = {}  # for models that cannot be weakly referenced (plain functions with closures)
_clock = time.perf_counter


def _cache_for(model) -> dict:
    try:
        return _CACHE.setdefault(model, {})
    except TypeError:
        return _PLAIN_CACHE.setdefault(id(model), {})


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _probe_batch(X: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` inputs built by cycling through the rows of ``X``."""
    index = torch.arange(size, device=X.device) % X.shape[0]
    return X[index]


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 0


def _layer_bytes(adapter, batch: torch.Tensor) -> int:
    """Input, output and every leaf layer's output bytes of one forward pass of ``batch`` (CPU estimate)."""
    total = {"bytes": 0}
    model = adapter.model
    leaves = [m for m in model.modules() if not any(True for _ in m.children())] if isinstance(model, torch.nn.Module) else []
    handles = []
    try:
        for module in leaves:
            handles.append(module.register_forward_hook(lambda m, args, out: total.__setitem__("bytes", total["bytes"] + _nbytes(out))))
    except (RuntimeError, AttributeError):  # TorchScript modules take no Python hooks
        pass
    try:
        y = adapter._call(batch)
    finally:
        for handle in handles:
            handle.remove()
    return total["bytes"] + _nbytes(batch) + _nbytes(y)


def _peak_bytes(adapter, batch: torch.Tensor) -> int:
    """Peak CUDA memory one forward pass of ``batch`` allocates beyond what was allocated before."""
    device = adapter.device
    _synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    adapter._call(batch)
    _synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def memory_per_row(adapter, X: torch.Tensor, *, rows: int = MEMORY_PROBE_ROWS) -> float:
    """Bytes one input takes in a forward pass, from one pass of ``rows`` inputs.

    On CUDA the peak allocation of the pass; on a CPU the input, the output and the
    output of every leaf layer, summed (an over-estimate of the peak).

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...)
        Example inputs on the adapter's device, cycled to ``rows`` rows.

    Returns
    -------
    float
        Bytes per input, at least 1.
    """
    batch = _probe_batch(X, rows)
    measured = _peak_bytes(adapter, batch) if adapter.device.type == "cuda" else _layer_bytes(adapter, batch)
    return max(1.0, measured / rows)


def memory_budget(device: torch.device) -> int:
    """Bytes one batch may take: a share of the free GPU memory, or a fixed CPU budget."""
    if device.type != "cuda":
        return CPU_MEMORY_BUDGET
    free, _ = torch.cuda.mem_get_info(device)
    unused_cache = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(CUDA_MEMORY_FRACTION * (free + unused_cache))


def _time_candidate(adapter, X: torch.Tensor, size: int, *, min_repeats: int, seconds: float) -> float:
    """Fastest of at least ``min_repeats`` timed passes of a batch of ``size`` (after one warm-up pass)."""
    batch = _probe_batch(X, size)
    adapter._call(batch)  # warm-up: allocation, kernel selection
    _synchronize(adapter.device)
    times: list[float] = []
    while len(times) < min_repeats or (sum(times) < seconds and len(times) < 50):
        t0 = _clock()
        adapter._call(batch)
        _synchronize(adapter.device)
        times.append(_clock() - t0)
    return min(times)


def pick_batch_size(
    adapter,
    X,
    *,
    candidates=None,
    budget_s: float = 1.0,
    min_repeats: int = 3,
    floor: int | None = None,
    memory_bytes: int | None = None,
) -> int:
    """A batch size that fits in memory, is not below a floor, and runs fastest between the two.

    The rule, in order:

    1. Memory bound. One forward pass of a few inputs measures the bytes per input
       (:func:`memory_per_row`); candidates above ``memory_bytes`` (default
       :func:`memory_budget`: half the free GPU memory, or 2 GiB of CPU activations)
       divided by it are dropped.
    2. Floor. Candidates below ``floor`` (default 64 on a CPU, 256 on a GPU) are dropped,
       unless memory leaves none at or above it; then the largest that fits is
       returned without timing.
    3. Timing. Each remaining candidate, smallest first, runs one warm-up pass and at
       least ``min_repeats`` timed passes; its throughput uses the fastest pass, so one
       pass slowed by another process does not count. The probe stops early when the
       time budget is spent (or the next candidate would overrun it), on out-of-memory,
       or when throughput has fallen for two candidates in a row. The largest
       candidate within 10% of the best throughput wins.

    Load on the machine can thus only choose between batches that fit and are not
    below the floor.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...)
        Example inputs in the adapter's canonical layout (one is enough).
    candidates : sequence of int, optional
        Batch sizes to choose from (default powers of two from 1 to 512 on a CPU, to 4096 on a GPU).
    budget_s : float
        Rough limit on the timing's total time, in seconds.
    min_repeats : int
        Timed passes per candidate at least.
    floor : int, optional
        Smallest batch to pick when memory allows.
    memory_bytes : int, optional
        Bytes one batch may take.

    Returns
    -------
    int
        One of ``candidates``; cached per (model, input shape, device, dtype and the settings above).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(4, 1), output=outputs.value(0), device="cpu")
    >>> pick_batch_size(adapter, torch.zeros(3, 4), candidates=(64, 128), budget_s=0.1) in (64, 128)
    True
    """
    if candidates is None:
        candidates = DEFAULT_CANDIDATES.get(adapter.device.type, DEFAULT_CANDIDATES["cpu"])
    candidates = sorted({int(c) for c in candidates})
    if not candidates or candidates[0] < 1:
        raise ValueError(f"candidates must be positive batch sizes, got {candidates}")
    X = adapter._as_input(X)
    if X.shape[0] == 0:
        raise ValueError("pick_batch_size needs at least one example input")
    floor = FLOOR.get(adapter.device.type, 64) if floor is None else int(floor)
    key = (
        tuple(X.shape[1:]), str(adapter.device), str(adapter.dtype),
        getattr(adapter, "strands", None), getattr(adapter, "autocast", None), tuple(candidates), floor, memory_bytes,
    )  # fmt: skip
    cache = _cache_for(adapter.model)
    if key not in cache:
        with adapter.session(), torch.no_grad():
            cache[key] = _pick(adapter, X, candidates, budget_s=budget_s, min_repeats=min_repeats,
                               floor=floor, memory_bytes=memory_bytes)  # fmt: skip
    return cache[key]


def _pick(adapter, X, candidates, *, budget_s, min_repeats, floor, memory_bytes) -> int:
    cap = (memory_budget(adapter.device) if memory_bytes is None else memory_bytes) / memory_per_row(adapter, X)
    while True:
        fits = [c for c in candidates if c <= cap] or candidates[:1]
        timed = [c for c in fits if c >= min(floor, fits[-1])]
        rates, out_of_memory_at = _time_all(adapter, X, timed, budget_s=budget_s, min_repeats=min_repeats)
        if rates:
            best = max(rates.values())
            return max(size for size, rate in rates.items() if rate >= RATE_TOLERANCE * best)
        if out_of_memory_at is None or out_of_memory_at <= candidates[0]:
            return timed[0]
        cap = out_of_memory_at - 1  # even the smallest candidate timed ran out of memory: look below it


def _time_all(adapter, X, timed, *, budget_s, min_repeats) -> tuple[dict[int, float], int | None]:
    """Throughput (inputs per second) of the candidates ``timed``, and the size that ran out of memory, if any."""
    per_candidate = budget_s / len(timed)
    rates: dict[int, float] = {}
    falls = 0
    started = _clock()
    for i, size in enumerate(timed):
        try:
            fastest = _time_candidate(adapter, X, size, min_repeats=min_repeats, seconds=per_candidate)
        except Exception as error:  # noqa: BLE001 - out of memory ends the probe; the rest re-raises
            if not is_out_of_memory(error):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return rates, size
        rate = size / max(fastest, 1e-9)
        falls = falls + 1 if rates and rate <= max(rates.values()) else 0
        rates[size] = rate
        if falls >= 2 or i + 1 == len(timed):
            break
        left = budget_s - (_clock() - started)
        if fastest * timed[i + 1] / size * (min_repeats + 1) > left:
            break  # the next candidate would overrun the budget
    return rates, None


def clear_cache() -> None:
    """Forget every probed batch size (for example after changing the machine's load)."""
    _CACHE.clear()
    _PLAIN_CACHE.clear()


__all__ = ["pick_batch_size", "clear_cache", "memory_per_row", "memory_budget", "DEFAULT_CANDIDATES", "FLOOR"]
