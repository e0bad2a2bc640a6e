"""A generic, seeded and resumable training loop for any torch model and DataLoader.

:func:`fit` trains a copy of the model (the model given is left as it was) on
the adapter's device with an *objective*: a callable
``objective(adapter, x, y, step) -> (loss, metrics)`` that says what one batch
costs. :func:`standard` is the plain loss; :mod:`probekit.train.adversarial`
and :mod:`probekit.train.certified` build robust ones. Each epoch reseeds the
random state from ``seed`` and the epoch number, so a run resumed from a
checkpoint gives the same weights as one that was never interrupted.

Examples
--------
>>> import torch
>>> X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
>>> model, history = fit(torch.nn.Linear(3, 2), (X, y), epochs=2, batch_size=16, device="cpu")
>>> list(history["epoch"])
[1, 2]
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from ..adapters import Adapter, FeatureModel, ModelCallError
from ..outputs import logit

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
LOSSES = ("auto", "cross_entropy", "bce", "mse")


@dataclass(frozen=True)
class Step:
    """Where training stands when an objective is called.

    Attributes
    ----------
    epoch : int
        Current epoch, from 0.
    epochs : int
        Epochs in the whole run.
    batch : int
        Batch index within the epoch.
    batches : int
        Batches per epoch (0 when the loader has no length).
    seed : int
        Seed of this epoch (for objectives that draw random numbers).
    loss : callable
        ``loss(raw_output, y) -> (N,)`` per-example training loss.
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    seed: int
    loss: Callable

    @property
    def progress(self) -> float:
        """Share of the run done before this batch, in [0, 1]."""
        per = max(self.batches, 1)
        return min(1.0, (self.epoch + min(self.batch, per) / per) / max(self.epochs, 1))


def ramp(progress: float, *, start: float = 0.0, end: float = 1.0, begin: float = 0.0, until: float = 1.0) -> float:
    """A linear schedule: ``start`` before ``begin``, ``end`` after ``until``, linear between (progress in [0, 1]).

    Examples
    --------
    >>> ramp(0.5, start=0.0, end=0.2, begin=0.25, until=0.75)
    0.1
    """
    if until <= begin:
        return end if progress >= begin else start
    t = min(max((progress - begin) / (until - begin), 0.0), 1.0)
    return round(start + t * (end - start), 12)


def per_example_loss(loss="auto") -> Callable:
    """The per-example training loss ``(raw_output (N, ...), y (N, ...)) -> (N,)``.

    Parameters
    ----------
    loss : {"auto", "cross_entropy", "bce", "mse"} or callable
        ``"auto"``: cross-entropy for integer labels and a class output with
        several columns, logistic loss (BCE with logits) for integer labels and
        one output column, squared error for float targets. A callable is used as given.

    Examples
    --------
    >>> fn = per_example_loss("auto")
    >>> fn(torch.zeros(2, 2), torch.tensor([0, 1])).shape
    torch.Size([2])
    """
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")
    return lambda out, y: _loss(loss, out, y)


def _loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    flat = out.reshape(out.shape[0], -1)
    if y.shape[0] != flat.shape[0]:
        raise ValueError(f"the model returned {flat.shape[0]} rows for a batch with {y.shape[0]} labels")
    if kind == "auto":
        integer = not y.is_floating_point()
        kind = ("cross_entropy" if flat.shape[1] > 1 else "bce") if integer else "mse"
    if kind == "cross_entropy":
        if bool(((y < 0) | (y >= flat.shape[1])).any()):
            raise ValueError(f"labels must lie in [0, {flat.shape[1] - 1}] for a model with {flat.shape[1]} outputs; "
                             f"got {int(y.min())}..{int(y.max())}")
        return F.cross_entropy(flat, y.long(), reduction="none")
    target = y.reshape(y.shape[0], -1).to(flat.dtype)
    if target.shape[1] != flat.shape[1]:
        raise ValueError(f"the model returns {flat.shape[1]} values per input but the targets have {target.shape[1]}")
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(flat, target, reduction="none").mean(1)
    return (flat - target).square().mean(1)


def standard() -> Callable:
    """The plain objective: the mean per-example loss on the clean batch.

    Examples
    --------
    >>> model, history = fit(torch.nn.Linear(2, 1), (torch.randn(8, 2), torch.randn(8)), objective=standard(),
    ...                      epochs=1, device="cpu")
    >>> float(history["loss"][0]) >= 0
    True
    """

    def objective(adapter, x, y, step: Step):
        return step.loss(forward(adapter, x), y).mean(), {}

    return objective


def forward(adapter: Adapter, x: torch.Tensor) -> torch.Tensor:
    """The raw output of the adapter's model on ``x`` with gradients, in the model's current (training) mode.

    Unlike :meth:`Adapter.forward` it leaves the model's train/eval mode alone, so
    dropout and batch normalisation train as they should.
    """
    return adapter._raw(x.to(adapter.device, adapter.dtype))


def as_adapter(model, *, device=None) -> Adapter:
    """``model`` if it is an adapter, else a :class:`FeatureModel` over it (raw output, column 0 as score)."""
    if isinstance(model, Adapter):
        return model if device is None else model.replace(device=device)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fit needs a torch.nn.Module or an adapter, got {type(model).__name__}")
    return FeatureModel(model, output=logit(0), device=device, batch_size=1024)


def _loader(data, batch_size: int):
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        X, y = data
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=batch_size, shuffle=True)
    return data


def _optimizer(optimizer, params, lr: float, weight_decay: float):
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer(params)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or a callable params -> Optimizer")
    return OPTIMIZERS[optimizer](params, lr=lr, weight_decay=weight_decay)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch * 7919) % (2**63 - 1)


def _seed_epoch(loader, seed: int) -> None:
    torch.manual_seed(seed)
    sampler = getattr(loader, "sampler", None)
    generator = getattr(sampler, "generator", None) or getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)


def _batch(item, device) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError("each batch must be a pair (inputs, labels or targets)")
    x, y = item
    return torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)


def _checked_step(objective, adapter, x, y, step: Step):
    try:
        return objective(adapter, x, y, step)
    except (ModelCallError, RuntimeError) as error:
        if step.batch > 0 or step.epoch > 0:
            raise
        raise ValueError(
            f"the model cannot train on the first batch (inputs of shape {tuple(x.shape)}, labels of shape "
            f"{tuple(y.shape)}): {error}"
        ) from error


def _load_checkpoint(path: Path, model, optimizer) -> tuple[int, list]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), list(state["history"])


def fit(
    model,
    data,
    *,
    objective=None,
    epochs: int = 1,
    loss="auto",
    optimizer="adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    device=None,
    seed: int = 0,
    checkpoint=None,
    resume: bool = True,
    callbacks=(),
    progress: bool = False,
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train a copy of ``model`` with ``objective``, seeded and resumable; returns it with a history table.

    Parameters
    ----------
    model : torch.nn.Module or Adapter
        The model to train, or an adapter over it (whose device, layout, feature
        bounds and kinds the robust objectives use). It is not changed: a copy is trained.
    data : torch.utils.data.DataLoader, iterable of (x, y) batches, or (X, y) tensors
        Inputs in probekit's canonical layout ((N, 4, L) one-hot DNA, (N, F)
        features) with class labels (N,) or float targets (N,) or (N, T).
    objective : callable, optional
        ``objective(adapter, x, y, step) -> (loss, metrics)`` (default :func:`standard`).
    epochs : int
    loss : {"auto", "cross_entropy", "bce", "mse"} or callable
        Per-example loss ``(raw_output, y) -> (N,)`` (see :func:`per_example_loss`).
    optimizer : {"adam", "adamw", "sgd"} or callable
        A name, or ``params -> torch.optim.Optimizer``.
    lr, weight_decay : float
    batch_size : int
        Batch size when ``data`` is a pair of tensors.
    device : str or torch.device, optional
        Default: the adapter's device (CUDA when available for a bare model).
    seed : int
        Seeds the random state of every epoch (shuffling, dropout, random starts).
    checkpoint : str or Path, optional
        File written after every epoch (model, optimizer, history); with ``resume``,
        a run finds it and goes on from the last finished epoch.
    resume : bool
    callbacks : sequence of callables
        ``callback(model, epoch) -> dict`` after each epoch; the dict's numbers join
        the history row (e.g. :func:`probekit.train.track_lipschitz`).
    progress : bool
        A tqdm bar over batches.

    Returns
    -------
    model : torch.nn.Module
        The trained copy, in eval mode, on the device.
    history : pandas.DataFrame
        One row per epoch: ``epoch``, ``loss`` (mean over batches), the objective's
        metrics (means), the callbacks' values and ``seconds``.

    Examples
    --------
    >>> X, y = torch.randn(16, 2), torch.randn(16)
    >>> model, history = fit(torch.nn.Linear(2, 1), (X, y), epochs=3, lr=0.1, device="cpu")
    >>> len(history), bool(history["loss"].iloc[-1] < history["loss"].iloc[0])
    (3, True)
    """
    from tqdm.auto import tqdm

    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    adapter = as_adapter(model, device=device)
    trained = copy.deepcopy(adapter.model).to(adapter.device)
    # batches come from the loader: the adapter's searches need no timed probe of batch sizes
    adapter = adapter.replace(model=trained, **({"batch_size": 1024} if getattr(adapter, "_auto_batch", False) else {}))
    objective = objective or standard()
    loss_fn = per_example_loss(loss)
    loader = _loader(data, batch_size)
    opt = _optimizer(optimizer, trained.parameters(), lr, weight_decay)
    path = Path(checkpoint) if checkpoint is not None else None
    first, rows = 0, []
    if path is not None and resume and path.exists():
        first, rows = _load_checkpoint(path, trained, opt)
    batches = len(loader) if hasattr(loader, "__len__") else 0
    devices = [adapter.device] if adapter.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for epoch in range(first, epochs):
            seed_e = _epoch_seed(seed, epoch)
            _seed_epoch(loader, seed_e)
            trained.train()
            started, sums, count = time.perf_counter(), {}, 0
            bar = tqdm(loader, total=batches or None, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
            for b, item in enumerate(bar):
                x, y = _batch(item, adapter.device)
                step = Step(epoch, epochs, b, batches, seed_e + b, loss_fn)
                value, metrics = _checked_step(objective, adapter, x, y, step)
                loss_value = float(value.detach())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"the training loss became {loss_value} at epoch {epoch + 1}, batch {b}")
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                for key, v in {"loss": loss_value, **metrics}.items():
                    sums[key] = sums.get(key, 0.0) + float(v)
                count += 1
                if progress:
                    bar.set_postfix(loss=f"{loss_value:.4g}")
            trained.eval()
            row = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()}}
            for callback in callbacks:
                row.update(callback(trained, epoch + 1) or {})
            row["seconds"] = time.perf_counter() - started
            rows.append(row)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"model": trained.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                            "history": rows}, path)
    trained.eval()
    history = pd.DataFrame(rows)
    if history.empty:
        history = pd.DataFrame({"epoch": pd.Series(dtype=int), "loss": pd.Series(dtype=float)})
    return trained, history


__all__ = ["fit", "standard", "per_example_loss", "ramp", "Step", "forward", "as_adapter"]
