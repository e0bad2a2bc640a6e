"""Perturbation sets and output specifications shared by IBP and CROWN.

A perturbation set says which inputs are allowed (an L-inf, L2 or L1 ball
intersected with the valid range, the sequences within k substitutions, the
binary vectors within k bit flips) and can minimise a linear form over itself
exactly (:meth:`concretize`). A :class:`Spec` turns the model's raw output into
the adapter's score, or the goal's ``g``, as a reduction (min, max, softmax) of
linear forms, so that margins get tight bounds.

Examples
--------
>>> import torch
>>> s = Box(torch.zeros(1, 2), torch.ones(1, 2))
>>> s.concretize(torch.tensor([[[1.0, -2.0]]]))
tensor([[-2.]])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..goals import BoundGoal

# ------------------------------------------------------------------ sets


class Box:
    """The box ``lower <= x <= upper`` (N, ...)."""

    kind = "box"

    def __init__(self, lower: torch.Tensor, upper: torch.Tensor):
        self.lower, self.upper = lower, upper

    @property
    def center(self) -> torch.Tensor:
        return (self.lower + self.upper) / 2

    def concretize(self, A: torch.Tensor) -> torch.Tensor:
        """Minimum of ``sum(A * x)`` over the set: A (S, N, ...) -> (S, N)."""
        flat = A.flatten(2)
        center = ((self.lower + self.upper) / 2).flatten(1)
        radius = ((self.upper - self.lower) / 2).flatten(1)
        return torch.einsum("snf,nf->sn", flat, center) - torch.einsum("snf,nf->sn", flat.abs(), radius)

    def select(self, rows: torch.Tensor) -> "Box":
        return Box(self.lower[rows], self.upper[rows])


class LpBall(Box):
    """``||x - x0||_p <= eps`` intersected with a box (the valid range of the inputs)."""

    kind = "lp"

    def __init__(self, x0: torch.Tensor, eps, p: float, lower: torch.Tensor, upper: torch.Tensor):
        # eps: a number or one radius per input (N,)
        self.eps = eps if isinstance(eps, torch.Tensor) else torch.full((x0.shape[0],), float(eps), device=x0.device, dtype=x0.dtype)
        wide = self.eps.view((-1,) + (1,) * (x0.ndim - 1))
        super().__init__(torch.maximum(x0 - wide, lower), torch.minimum(x0 + wide, upper))
        self.x0, self.p = x0, p

    def concretize(self, A: torch.Tensor) -> torch.Tensor:
        flat = A.flatten(2)
        q = {2.0: 2.0, 1.0: float("inf")}[self.p]
        ball = (flat * self.x0.flatten(1)).sum(-1) - self.eps[None] * torch.linalg.vector_norm(flat, ord=q, dim=-1)
        # the box holds the ball's intersection with the valid range, so both are lower bounds
        return torch.maximum(ball, super().concretize(A))

    def select(self, rows):
        new = LpBall.__new__(LpBall)
        Box.__init__(new, self.lower[rows], self.upper[rows])
        new.x0, new.eps, new.p = self.x0[rows], self.eps[rows], self.p
        return new


class Hamming(Box):
    """One-hot sequences (N, A, L) within ``k`` substitutions of ``x0`` at editable positions.

    ``k`` may differ per input; positions without a base (N) are never edited. ``kmax``,
    the largest ``k``, may be given when the caller knows it (else it is read once here).
    """

    kind = "hamming"

    def __init__(self, x0: torch.Tensor, k, editable: torch.Tensor | None = None, *, kmax: int | None = None):
        n = x0.shape[0]
        self.x0 = x0
        self.k = torch.as_tensor(k, device=x0.device).long().expand(n).clone()
        self.kmax = _largest(k, n) if kmax is None else int(kmax)
        has_base = x0.sum(1) > 0
        self.editable = has_base if editable is None else editable & has_base
        free = (self.editable & (self.k[:, None] > 0))[:, None, :].expand_as(x0)
        super().__init__(torch.where(free, torch.zeros_like(x0), x0), torch.where(free, torch.ones_like(x0), x0))

    def gains(self, A: torch.Tensor) -> torch.Tensor:
        """Best (most negative) change of ``sum(A * x)`` per position: (S, N, L), <= 0."""
        ref = (A * self.x0).sum(2)
        alt = A.masked_fill(self.x0.bool()[None], float("inf")).min(2).values
        gain = (alt - ref).clamp(max=0)
        return gain.masked_fill(~self.editable[None], 0.0)

    def concretize(self, A: torch.Tensor) -> torch.Tensor:
        base = (A * self.x0).flatten(2).sum(-1)
        return base + _k_smallest(self.gains(A), self.k, self.kmax)

    def select(self, rows):
        return Hamming(self.x0[rows], self.k[rows], self.editable[rows])


class BitFlips(Box):
    """Binary vectors (N, F) within ``k`` flips of ``x0`` at flippable features (``kmax`` as in :class:`Hamming`)."""

    kind = "bitflip"

    def __init__(self, x0: torch.Tensor, k, flippable: torch.Tensor, *, kmax: int | None = None):
        n = x0.shape[0]
        self.x0 = x0
        self.k = torch.as_tensor(k, device=x0.device).long().expand(n).clone()
        self.kmax = _largest(k, n) if kmax is None else int(kmax)
        self.flippable = flippable.expand_as(x0).clone()
        free = self.flippable & (self.k[:, None] > 0)
        super().__init__(torch.where(free, torch.zeros_like(x0), x0), torch.where(free, torch.ones_like(x0), x0))

    def gains(self, A: torch.Tensor) -> torch.Tensor:
        gain = (A * (1 - 2 * self.x0)).clamp(max=0)
        return gain.masked_fill(~self.flippable[None], 0.0)

    def concretize(self, A: torch.Tensor) -> torch.Tensor:
        base = (A * self.x0).flatten(2).sum(-1)
        return base + _k_smallest(self.gains(A).flatten(2), self.k, self.kmax)

    def select(self, rows):
        return BitFlips(self.x0[rows], self.k[rows], self.flippable[rows])


def _largest(k, n: int) -> int:
    """The largest of ``k`` (a number or one value per input) as a host int; 0 for no inputs."""
    if n == 0:
        return 0
    return int(torch.as_tensor(k).long().max())


def _k_smallest(gains: torch.Tensor, k: torch.Tensor, kmax: int) -> torch.Tensor:
    """Sum of the ``k[n]`` smallest entries of ``gains`` (S, N, L) along the last axis; ``kmax`` = max(k)."""
    kmax = min(kmax, gains.shape[-1])
    if kmax == 0:
        return torch.zeros(gains.shape[:2], dtype=gains.dtype, device=gains.device)
    smallest = gains.topk(kmax, dim=-1, largest=False).values
    keep = torch.arange(kmax, device=gains.device)[None, None, :] < k[None, :, None]
    return (smallest * keep).sum(-1)


def make_set(adapter, X: torch.Tensor, *, eps=None, k=None, norm: str = "linf"):
    """The perturbation set around ``X`` for an adapter: a ball (``eps``) or ``k`` edits."""
    if (eps is None) == (k is None):
        raise ValueError("give exactly one of eps= (a norm ball) or k= (substitutions / bit flips)")
    lower, upper = valid_range(adapter, X)
    # an input outside its stated range still belongs to its own set
    lower, upper = torch.minimum(lower, X), torch.maximum(upper, X)
    if k is not None:
        if is_one_hot(adapter, X):
            return Hamming(X, k)
        if X.ndim != 2:
            raise ValueError(f"k= bit flips need features of shape (N, F); got inputs of shape {tuple(X.shape)}")
        kinds = adapter.kinds(X.shape[1]) if hasattr(adapter, "kinds") else ["binary"] * X.shape[1]
        flippable = torch.tensor([kd == "binary" for kd in kinds], device=X.device)[None]
        if not flippable.any():
            raise ValueError("k= bit flips need binary features; this adapter has none")
        return BitFlips(X, k, flippable)
    eps = torch.as_tensor(eps, dtype=X.dtype, device=X.device)
    if eps.ndim == 0:
        eps = float(eps)
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        wide = eps
    else:
        if eps.shape != (X.shape[0],):
            raise ValueError(f"eps must be a number or one radius per input, shape ({X.shape[0]},); got {tuple(eps.shape)}")
        if (eps < 0).any():
            raise ValueError(f"eps must be non-negative; input {int(torch.nonzero(eps < 0)[0])} has {float(eps.min())}")
        wide = eps.view((-1,) + (1,) * (X.ndim - 1))
    if norm == "linf":
        return Box(torch.maximum(X - wide, lower), torch.minimum(X + wide, upper))
    if norm in ("l2", "l1"):
        return LpBall(X, eps if isinstance(eps, torch.Tensor) else float(eps), 2.0 if norm == "l2" else 1.0, lower, upper)
    raise ValueError(f"norm must be 'linf', 'l2' or 'l1', got {norm!r}")


def is_one_hot(adapter, X: torch.Tensor) -> bool:
    """Whether ``X`` is one-hot DNA: the inputs of a sequence adapter (an adapter with feature bounds
    may take (N, C, L) inputs too, which are real-valued features)."""
    from ..adapters import SequenceModel

    return isinstance(adapter, SequenceModel) or (X.ndim == 3 and not hasattr(adapter, "bounds"))


def valid_range(adapter, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid values of each input entry: [0, 1] for one-hot DNA, the feature bounds otherwise."""
    if is_one_hot(adapter, X):
        return torch.zeros_like(X), torch.ones_like(X)
    if hasattr(adapter, "bounds"):
        shape = X.shape[1:]
        lo, hi = adapter.bounds(shape.numel())
        return lo.to(X).reshape(shape)[None].expand_as(X), hi.to(X).reshape(shape)[None].expand_as(X)
    inf = torch.full_like(X, float("inf"))
    return -inf, inf


# ------------------------------------------------------------------ specs


@dataclass
class Spec:
    """A scalar per input as ``post(reduce_s(C[n, s] . y[n] + d[n, s]))``, then ``a * . + b``.

    Attributes
    ----------
    C : torch.Tensor of shape (N, S, Y)
        Linear forms over the flattened raw output.
    d : torch.Tensor of shape (N, S)
    reduce : str
        ``min``, ``max`` or ``softmax`` (rows are ``y_j - y_i``; value ``1 / (1 + sum exp(row))``).
    post : str
        ``""`` or ``sigmoid`` (monotone map after the reduction).
    a, b : torch.Tensor of shape (N,)
    """

    C: torch.Tensor
    d: torch.Tensor
    reduce: str = "min"
    post: str = ""
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None

    def evaluate(self, y: torch.Tensor) -> torch.Tensor:
        """The scalar on raw outputs ``y`` (N, ...) (for checking the spec)."""
        rows = torch.einsum("nsy,ny->ns", self.C, y.reshape(y.shape[0], -1).to(self.C)) + self.d
        return self._finish(rows, rows)[0]

    def interval(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds of the scalar from bounds ``lo <= rows <= hi`` (N, S) of the linear forms."""
        return self._finish(lo, hi)

    def _finish(self, lo, hi):
        if self.reduce == "min":
            lo, hi = lo.min(1).values, hi.min(1).values
        elif self.reduce == "max":
            lo, hi = lo.max(1).values, hi.max(1).values
        else:  # softmax probability, decreasing in every row
            lo, hi = 1 / (1 + hi.exp().sum(1)), 1 / (1 + lo.exp().sum(1))
        if self.post == "sigmoid":
            lo, hi = torch.sigmoid(lo), torch.sigmoid(hi)
        if self.a is not None:
            a, b = self.a.to(lo), self.b.to(lo)
            lo, hi = torch.where(a >= 0, a * lo + b, a * hi + b), torch.where(a >= 0, a * hi + b, a * lo + b)
        return lo, hi

    def affine(self, a: torch.Tensor, b: torch.Tensor) -> "Spec":
        """The spec followed by ``a * . + b`` (composing with any earlier affine map)."""
        a0 = self.a if self.a is not None else torch.ones_like(a)
        b0 = self.b if self.b is not None else torch.zeros_like(b)
        return Spec(self.C, self.d, self.reduce, self.post, a * a0, a * b0 + b)


def output_spec(output, y: torch.Tensor) -> Spec:
    """The adapter's score as a :class:`Spec` over raw outputs ``y`` (N, ...).

    Supports ``outputs.logit``, ``value``, ``margin``, ``prob`` and ``window``, and any
    custom callable that is linear in the raw output. The spec is checked against
    ``output(y)`` on ``y`` and on random outputs.
    """
    n = y.shape[0]
    flat = y.reshape(n, -1)
    Y = flat.shape[1]
    dev, dt = y.device, y.dtype
    name = output.name
    eye = torch.eye(Y, device=dev, dtype=dt)
    zeros = lambda s: torch.zeros(n, s, device=dev, dtype=dt)  # noqa: E731
    spec = None
    i = output.index
    two_d = y.ndim <= 2
    if two_d and (name.startswith("logit[") or name.startswith("value[")):
        spec = Spec(eye[i][None, None].expand(n, 1, Y), zeros(1))
    elif two_d and name.startswith("margin["):
        if Y == 1:
            spec = Spec(eye[0][None, None].expand(n, 1, Y), zeros(1))
        else:
            rows = torch.stack([eye[i] - eye[j] for j in range(Y) if j != i])
            spec = Spec(rows[None].expand(n, -1, -1), zeros(Y - 1), "min")
    elif two_d and name.startswith("prob["):
        if Y == 1:
            spec = Spec(eye[0][None, None].expand(n, 1, Y), zeros(1), post="sigmoid")
        else:
            rows = torch.stack([eye[j] - eye[i] for j in range(Y) if j != i])
            spec = Spec(rows[None].expand(n, -1, -1), zeros(Y - 1), "softmax")
    else:
        spec = _linear_spec(output, y)
    _check(spec, output, y)
    return spec


def _linear_spec(output, y: torch.Tensor) -> Spec:
    """Recover a linear (or max-of-window) output by probing it on basis outputs."""
    n = y.shape[0]
    Y = y[0].numel()
    shape = y.shape[1:]
    with torch.no_grad():
        zero = torch.zeros((1,) + shape, device=y.device, dtype=y.dtype)
        basis = torch.eye(Y, device=y.device, dtype=y.dtype).reshape((Y,) + shape)
        try:
            d = output(zero)
            cols = output(basis) - d
        except Exception as error:  # noqa: BLE001 - reported as unsupported
            raise TypeError(f"output {output.name!r} cannot be bounded: {error}") from error
    if output.name.startswith("max("):
        support = torch.nonzero(cols.abs() > 0)[:, 0]
        rows = torch.eye(Y, device=y.device, dtype=y.dtype)[support]
        return Spec(rows[None].expand(n, -1, -1), torch.zeros(n, len(support), device=y.device, dtype=y.dtype), "max")
    return Spec(cols[None, None].expand(n, 1, Y), d.expand(n)[:, None].clone())


def _check(spec: Spec, output, y: torch.Tensor) -> None:
    g = torch.Generator(device="cpu").manual_seed(0)
    probe = torch.randn((4,) + tuple(y.shape[1:]), generator=g).to(y)
    # outputs holding a NaN or an infinity check nothing (0 * inf is NaN); the inputs they belong to are refused later
    finite = torch.isfinite(y.reshape(y.shape[0], -1)).all(1)
    for yy in (y[finite], probe):
        n = yy.shape[0]
        if n == 0:
            continue
        sub = Spec(spec.C[:1].expand(n, -1, -1), spec.d[:1].expand(n, -1), spec.reduce, spec.post)
        want = output(yy)
        got = sub.evaluate(yy)
        if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
            raise TypeError(
                f"output {output.name!r} is not one bounds can run through "
                "(supported: logit, value, margin, prob, window and linear callables)"
            )


def goal_spec(bound: BoundGoal, score: Spec, y_numel: int) -> Spec:
    """The goal's ``g`` (success where ``g <= 0``) as a :class:`Spec`."""
    n = bound.reference.shape[0]
    dev = score.C.device
    dt = score.C.dtype
    if bound.mode in ("leave_class", "reach_class"):
        cls = bound.ref_class.to(dev)
        eye = torch.eye(y_numel, device=dev, dtype=dt)
        own = eye[cls]  # (N, Y)
        others = [j for j in range(y_numel)]
        rows = torch.stack([own - eye[j][None] for j in others], dim=1)  # (N, Y, Y)
        keep = cls[:, None] != torch.arange(y_numel, device=dev)[None]
        # the own class's row is zero; replace it by a duplicate of a real row so min/max ignore it
        first_other = torch.where(cls == 0, 1, 0)
        rows = torch.where(keep[:, :, None], rows, rows[torch.arange(n, device=dev), first_other][:, None, :])
        if bound.mode == "leave_class":
            return Spec(rows, torch.zeros(n, y_numel, device=dev, dtype=dt), "min")
        return Spec(-rows, torch.zeros(n, y_numel, device=dev, dtype=dt), "max")
    ones = torch.ones(n, device=dev, dtype=dt)
    ref = bound.reference.to(dev, dt)
    v = float(bound.goal.value) if bound.goal.value is not None else 0.0
    if bound.mode == "cross":
        sign = bound.sign.to(dev, dt)
        return score.affine(sign, -sign * bound.output.threshold)
    if bound.mode == "below":
        return score.affine(ones, -v * ones)
    if bound.mode == "above":
        return score.affine(-ones, v * ones)
    if bound.mode == "decrease":
        return score.affine(ones, -(ref - v))
    if bound.mode == "increase":
        return score.affine(-ones, ref + v)
    raise ValueError(f"unknown goal mode {bound.mode!r}")


__all__ = ["Box", "LpBall", "Hamming", "BitFlips", "make_set", "valid_range", "Spec", "output_spec", "goal_spec"]
