"""Device resolution, the model-state context, and out-of-memory back-off.

These helpers are used only by the adapters: they are the single place where a
model is moved, put in eval mode and restored afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Callable, Iterator

import torch

from ._warnings import warn


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a :class:`torch.device`; ``None`` means CUDA when available.

    A CUDA device always carries its index (``"cuda"`` becomes the current
    device, e.g. ``cuda:0``), so that it compares equal to the device tensors
    and parameters report.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device is None else device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} was asked for but CUDA is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def model_device(model) -> torch.device | None:
    """Device of the first parameter or buffer of ``model``; ``None`` for a plain callable."""
    if not isinstance(model, torch.nn.Module):
        return None
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return None


def model_dtype(model) -> torch.dtype | None:
    """Floating dtype of the first floating parameter of ``model``, or ``None``."""
    if not isinstance(model, torch.nn.Module):
        return None
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


@contextlib.contextmanager
def model_on(model, device: torch.device, dtype: torch.dtype | None = None) -> Iterator[None]:
    """Move ``model`` to ``device`` (and ``dtype``) in eval mode; restore both afterwards.

    Each submodule gets its own training flag back, so a part the user froze in
    eval mode inside a training model stays frozen.
    """
    if not isinstance(model, torch.nn.Module):
        yield
        return
    original_device = model_device(model)
    original_dtype = model_dtype(model)
    # a frozen TorchScript module has no training flag: there is nothing to switch
    modes = [(module, module.training) for module in model.modules() if hasattr(module, "training")]
    try:
        if original_device is not None and original_device != device:
            model.to(device)
        if dtype is not None and original_dtype is not None and original_dtype != dtype:
            model.to(dtype)
        if any(training for _, training in modes):
            for module, _ in modes:
                module.training = False
        yield
    finally:
        if dtype is not None and original_dtype is not None and original_dtype != dtype:
            model.to(original_dtype)
        if original_device is not None and original_device != device:
            model.to(original_device)
        for module, training in modes:
            if module.training != training:
                module.training = training


def has_forward_hooks(model) -> bool:
    """Whether a forward hook or pre-hook (of a submodule, or global) could change what ``model`` computes."""
    from torch.nn.modules import module as module_state

    if getattr(module_state, "_global_forward_hooks", None) or getattr(module_state, "_global_forward_pre_hooks", None):
        return True
    return isinstance(model, torch.nn.Module) and any(
        getattr(m, "_forward_hooks", None) or getattr(m, "_forward_pre_hooks", None) for m in model.modules()
    )


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA out-of-memory errors (which back-off can recover from)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def map_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    batch_size: int,
    *,
    on_backoff: Callable[[int], None] | None = None,
) -> list[torch.Tensor]:
    """Apply ``fn(start, stop)`` over ``range(n)`` in batches, halving on CUDA OOM.

    ``fn`` takes a slice ``(start, stop)`` and returns a tensor whose first axis
    has ``stop - start`` rows. Returns the list of per-batch results in order.
    """
    results: list[torch.Tensor] = []
    start = 0
    size = max(1, int(batch_size))
    while start < n:
        stop = min(n, start + size)
        try:
            results.append(fn(start, stop))
        except Exception as error:  # noqa: BLE001 - re-raised unless it is an OOM
            if not is_out_of_memory(error) or size == 1:
                raise
            torch.cuda.empty_cache()
            size = max(1, size // 2)
            if on_backoff is not None:
                on_backoff(size)
            continue
        start = stop
    return results


def backoff_warner() -> Callable[[int], None]:
    """A callback that warns once, the first time the batch is halved."""
    said = {"done": False}

    def _warn(size: int) -> None:
        if not said["done"]:
            warn(f"CUDA ran out of memory; batch size halved to {size} and the run goes on")
            said["done"] = True

    return _warn
