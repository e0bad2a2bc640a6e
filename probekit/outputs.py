"""Select one scalar per input from a model's raw output.

An :class:`Output` maps the model's raw output ``y`` of shape ``(N, ...)`` to a
score of shape ``(N,)``. It also tells the goals how the model makes its call:
``classes`` is True when the score is one logit among several classes (so
:func:`probekit.goals.flip` means "change the argmax"), and ``threshold`` is
the line whose crossing flips a single score (0 for logits, margins and
values, 0.5 for probabilities).

Examples
--------
>>> import torch
>>> from probekit import outputs
>>> y = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
>>> outputs.logit(1)(y)
tensor([3., 0.])
>>> outputs.margin(1)(y)
tensor([ 2., -2.])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Output:
    """A named selection of one scalar per input from a model's raw output.

    Parameters
    ----------
    name : str
        Human-readable name used in reports (``"logit[1]"``).
    select : callable
        ``(N, ...) tensor -> (N,) tensor``; differentiable.
    classes : bool
        True when the score is one logit of a class axis (the last axis).
    index : int or None
        Class or task index the output refers to.
    threshold : float
        Line whose crossing changes the call of a single score.
    """

    name: str
    select: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    classes: bool = False
    index: int | None = None
    threshold: float = 0.0

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        score = self.select(y)
        if score.ndim != 1 or score.shape[0] != y.shape[0]:
            raise ValueError(
                f"output {self.name!r} must give one scalar per input, shape ({y.shape[0]},); "
                f"got {tuple(score.shape)} from a raw output of shape {tuple(y.shape)}"
            )
        return score


def _class_axis(y: torch.Tensor) -> torch.Tensor:
    """View raw output as (N, C); a 1-D output is one logit per input."""
    if y.ndim == 1:
        return y[:, None]
    if y.ndim == 2:
        return y
    raise ValueError(
        f"raw output of shape {tuple(y.shape)} has more than one axis after the batch; "
        "use outputs.window(...) or a callable to select one scalar per input"
    )


def logit(i: int = 0) -> Output:
    """Raw value of output column ``i``; a class logit when there are several columns."""

    def select(y: torch.Tensor) -> torch.Tensor:
        return _class_axis(y)[:, i]

    return Output(f"logit[{i}]", select, classes=True, index=i, threshold=0.0)


def value(i: int = 0) -> Output:
    """Regression output ``i`` (for example a predicted pIC50)."""

    def select(y: torch.Tensor) -> torch.Tensor:
        return _class_axis(y)[:, i]

    return Output(f"value[{i}]", select, classes=False, index=i, threshold=0.0)


def prob(i: int = 0) -> Output:
    """Probability of class ``i``: softmax over columns, or sigmoid of a single logit."""

    def select(y: torch.Tensor) -> torch.Tensor:
        y2 = _class_axis(y)
        if y2.shape[1] == 1:
            return torch.sigmoid(y2[:, 0])
        return torch.softmax(y2, dim=1)[:, i]

    return Output(f"prob[{i}]", select, classes=False, index=i, threshold=0.5)


def margin(i: int = 0) -> Output:
    """Logit ``i`` minus the largest other logit (a single logit is its own margin)."""

    def select(y: torch.Tensor) -> torch.Tensor:
        y2 = _class_axis(y)
        if y2.shape[1] == 1:
            return y2[:, 0]
        others = torch.cat([y2[:, :i], y2[:, i + 1 :]], dim=1)
        return y2[:, i] - others.max(dim=1).values

    return Output(f"margin[{i}]", select, classes=False, index=i, threshold=0.0)


def window(track: int = 0, start: int | None = None, end: int | None = None, *, reduce: str = "sum") -> Output:
    """Per-position (profile) output: reduce positions ``start:end`` of one track.

    The raw output must have shape ``(N, tracks, positions)``.

    Examples
    --------
    >>> import torch
    >>> y = torch.arange(12.0).reshape(1, 2, 6)
    >>> window(1, 2, 4)(y)
    tensor([17.])
    """
    if reduce not in ("sum", "mean", "max"):
        raise ValueError(f"reduce must be 'sum', 'mean' or 'max', got {reduce!r}")

    def select(y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 3:
            raise ValueError(
                f"outputs.window needs a profile output of shape (N, tracks, positions); got {tuple(y.shape)}"
            )
        part = y[:, track, start:end]
        if reduce == "sum":
            return part.sum(dim=1)
        if reduce == "mean":
            return part.mean(dim=1)
        return part.max(dim=1).values

    return Output(f"{reduce}(track {track}[{start}:{end}])", select, index=track)


def as_output(spec) -> Output:
    """Turn ``spec`` into an :class:`Output`.

    Accepts an :class:`Output`, an ``int`` class index (same as :func:`logit`),
    or any callable ``(N, ...) -> (N,)``.
    """
    if isinstance(spec, Output):
        return spec
    if isinstance(spec, bool):
        raise TypeError("output must be an Output, a class index or a callable, not a bool")
    if isinstance(spec, int):
        return logit(spec)
    if callable(spec):
        return Output(getattr(spec, "__name__", "custom"), spec)
    raise TypeError(f"output must be an Output, a class index or a callable; got {type(spec).__name__}")


__all__ = ["Output", "logit", "value", "prob", "margin", "window", "as_output"]
