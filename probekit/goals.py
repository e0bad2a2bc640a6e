"""Goals: one sign convention for every search.

A goal turns the model's raw output into a scalar ``g`` per input; a search
succeeds when ``g <= 0``. Goals that refer to the unedited input (``flip``,
``decrease``, ``increase``) are bound to reference outputs first with
:meth:`Goal.bind`.

Examples
--------
>>> import torch
>>> from probekit import goals, outputs
>>> y0 = torch.tensor([[2.0, 0.0]])
>>> bound = goals.flip().bind(outputs.logit(0), y0)
>>> bound(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
tensor([ 2., -1.])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .outputs import Output, _class_axis


@dataclass(frozen=True)
class Goal:
    """What a search tries to reach; success when ``g(x) <= 0``.

    Build goals with :func:`flip`, :func:`target`, :func:`below`, :func:`above`,
    :func:`decrease` and :func:`increase`, or parse one with :func:`parse`.
    """

    kind: str
    value: float | int | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"

    def bind(self, output: Output, y_ref: torch.Tensor) -> "BoundGoal":
        """Bind the goal to the raw outputs ``y_ref`` (N, ...) of the unedited inputs."""
        y_ref = y_ref.detach()
        score = output(y_ref)
        use_classes = output.classes and y_ref.ndim <= 2 and _class_axis(y_ref).shape[1] > 1
        if self.kind == "flip" and use_classes:
            ref_class = _class_axis(y_ref).argmax(dim=1)
            return BoundGoal(self, output, score, ref_class=ref_class, mode="leave_class")
        if self.kind == "flip":
            sign = torch.where(score > output.threshold, 1.0, -1.0).to(score.dtype)
            return BoundGoal(self, output, score, sign=sign, mode="cross")
        if self.kind == "target":
            if y_ref.ndim > 2 or _class_axis(y_ref).shape[1] < 2:
                raise ValueError("goals.target(c) needs a class output with at least two columns")
            n = y_ref.shape[0]
            ref_class = torch.full((n,), int(self.value), device=y_ref.device, dtype=torch.long)
            return BoundGoal(self, output, score, ref_class=ref_class, mode="reach_class")
        if self.kind in ("below", "above", "decrease", "increase"):
            return BoundGoal(self, output, score, mode=self.kind)
        raise ValueError(f"unknown goal {self.kind!r}")


@dataclass(frozen=True)
class BoundGoal:
    """A goal tied to the reference outputs of N inputs.

    Call it with raw outputs ``y`` of candidates and ``rows`` (M,), the input each
    candidate belongs to; it returns ``g`` (M,), success where ``g <= 0``. Goals
    measured from the reference (``flip``, ``target``, ``decrease``, ``increase``)
    give NaN for inputs whose reference score is not finite, so they never succeed.
    """

    goal: Goal
    output: Output
    reference: torch.Tensor
    ref_class: torch.Tensor | None = None
    sign: torch.Tensor | None = None
    mode: str = ""

    def __call__(self, y: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.with_progress(y, rows)[0]

    def progress(self, y: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """What a search lowers: ``g`` (M,) up to a constant per input, at the precision of the score.

        For goals on the score this is the score with the goal's sign (``below``,
        ``decrease``: the score; ``above``, ``increase``: minus the score; ``flip``
        of a score: the score times the side it starts on); for class goals it is
        ``g`` itself. Candidates of one input are ranked by it: ``g = score - t``
        with a far threshold (``goals.below(-1e9)``) rounds to the same float32
        number for every score, the score does not. Like ``g``, it is NaN for
        inputs whose reference score is not finite where the goal is measured from it.

        Examples
        --------
        >>> import torch
        >>> from probekit import outputs
        >>> bound = below(-1e9).bind(outputs.value(0), torch.tensor([[0.0]]))
        >>> y = torch.tensor([[1.0], [2.0]])
        >>> bound(y).tolist(), bound.progress(y).tolist()
        ([1000000000.0, 1000000000.0], [1.0, 2.0])
        """
        return self.with_progress(y, rows)[1]

    def with_progress(self, y: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``g`` and :meth:`progress` (each (M,)) of raw outputs ``y``, reading the output once."""
        rows = self._rows(y, rows)
        if self.mode in ("leave_class", "reach_class"):
            (g,) = self._defined(rows, self._class_gap(y, rows))
            return g, g
        score = self.output(y)
        v = float(self.goal.value) if self.goal.value is not None else 0.0
        if self.mode == "below":
            return score - v, score
        if self.mode == "above":
            return v - score, -score
        if self.mode == "cross":
            sign = self.sign[rows].to(score.device)
            g, p = sign * (score - self.output.threshold), sign * score
        elif self.mode == "decrease":
            g, p = score - (self.reference[rows].to(score.device) - v), score
        elif self.mode == "increase":
            g, p = (self.reference[rows].to(score.device) + v) - score, -score
        else:
            raise ValueError(f"unknown goal mode {self.mode!r}")
        return self._defined(rows, g, p)

    def _rows(self, y: torch.Tensor, rows) -> torch.Tensor:
        if rows is None:
            rows = torch.arange(y.shape[0], device=y.device)
        return rows.to(self.reference.device)

    def _class_gap(self, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        logits = _class_axis(y)
        cls = self.ref_class[rows].to(logits.device)
        own = logits.gather(1, cls[:, None])[:, 0]
        others = logits.scatter(1, cls[:, None], float("-inf")).max(dim=1).values
        return own - others if self.mode == "leave_class" else others - own

    def _defined(self, rows: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``values`` (each (M,)) with NaN for inputs whose reference score is not finite: nothing can be measured from it."""
        finite = torch.isfinite(self.reference[rows]).to(values[0].device)
        return tuple(torch.where(finite, v, float("nan")) for v in values)

    def to(self, device: torch.device) -> "BoundGoal":
        """The same bound goal with its reference tensors on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return BoundGoal(self.goal, self.output, move(self.reference), move(self.ref_class), move(self.sign), self.mode)


def flip() -> Goal:
    """Change the model's call: the argmax class, or the side of the score's threshold."""
    return Goal("flip")


def target(c: int) -> Goal:
    """Make class ``c`` the argmax of the model's output."""
    return Goal("target", int(c))


def below(t: float) -> Goal:
    """Bring the score to ``t`` or below."""
    return Goal("below", float(t))


def above(t: float) -> Goal:
    """Bring the score to ``t`` or above."""
    return Goal("above", float(t))


def decrease(by: float) -> Goal:
    """Lower the score by at least ``by`` from its value on the unedited input."""
    if by <= 0:
        raise ValueError(f"decrease(by=) must be positive, got {by}")
    return Goal("decrease", float(by))


def increase(by: float) -> Goal:
    """Raise the score by at least ``by`` from its value on the unedited input."""
    if by <= 0:
        raise ValueError(f"increase(by=) must be positive, got {by}")
    return Goal("increase", float(by))


def parse(spec: "str | Goal | None") -> Goal:
    """Parse ``"flip"``, ``"target:1"``, ``"below:0.5"``, ``"decrease:1.0"`` ... into a :class:`Goal`.

    Examples
    --------
    >>> parse("decrease:1.0")
    Goal(kind='decrease', value=1.0)
    """
    if spec is None:
        return flip()
    if isinstance(spec, Goal):
        return spec
    kind, _, arg = str(spec).partition(":")
    builders = {"flip": flip, "target": target, "below": below, "above": above, "decrease": decrease, "increase": increase}
    if kind not in builders:
        raise ValueError(f"unknown goal {spec!r}; use one of flip, target:C, below:T, above:T, decrease:D, increase:D")
    if kind == "flip":
        if arg:
            raise ValueError("goal 'flip' takes no value")
        return flip()
    if not arg:
        raise ValueError(f"goal {kind!r} needs a value, e.g. '{kind}:1.0'")
    try:
        return builders[kind](int(arg) if kind == "target" else float(arg))
    except ValueError as error:
        raise ValueError(f"bad value in goal {spec!r}: {error}") from None


__all__ = ["Goal", "BoundGoal", "flip", "target", "below", "above", "decrease", "increase", "parse"]
