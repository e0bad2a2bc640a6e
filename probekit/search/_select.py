"""Choosing among candidates by a rule that does not depend on batching, and skipping non-finite ones.

A model's output for one input changes in its last bits with the batch it is
computed in (matrix kernels block and sum in another order), so "the lowest
value, first come first served" picks different candidates at batch 32 and at
batch 256. Every search here chooses instead by one rule:

* candidates whose model output (score or goal value) is not finite are never
  chosen and never succeed;
* the lowest value wins, where two values tie when they differ by at most
  ``rtol * max(1, |a|, |b|)`` (compared in float64);
* ties go to the lexicographically first edit set: its edits sorted by position
  (site), compared edit by edit on position and then on the new value (the
  alternative base's index, or the bit), a set before any set it begins.

``rtol`` is :func:`tie_rtol` of the model's dtype: ``1e-5`` (``torch.allclose``'s
default, about 80 float32 roundings of a value) for float32 and lower
precisions, ``1e-12`` for float64. The absolute floor (``rtol`` itself, from the
``1``) covers models whose outputs are small but computed from activations of
order one, where the rounding is that of the activations. A value compared with
a tolerance is not an order, so the winner is decided against the lowest value
of a group (:func:`segment_best`): only candidates that differ by about the
tolerance itself may still go either way.

Examples
--------
>>> import torch
>>> p = torch.tensor([0.3, 0.1 + 1e-9, 0.1, 0.7])
>>> keys = edit_keys(torch.tensor([[5], [2], [4], [0]]), torch.tensor([[1], [3], [0], [2]]))
>>> segment_best(p, torch.zeros(4, dtype=torch.long), 1, keys=keys, rtol=1e-5)
tensor([1])
"""

from __future__ import annotations

import torch

from .._warnings import warn

_VALUE_BITS = 16  # an edit's key is site * 2**16 + value: values (bases, bits) are far fewer


def tie_rtol(dtype: torch.dtype | None) -> float:
    """Relative tolerance within which two model outputs of ``dtype`` tie (see the module notes)."""
    return 1e-12 if dtype == torch.float64 else 1e-5


def within(a: torch.Tensor, b: torch.Tensor, rtol: float) -> torch.Tensor:
    """Where finite ``a`` and ``b`` (M,) differ by at most ``rtol * max(1, |a|, |b|)``, in float64."""
    a, b = a.double(), b.double()
    scale = torch.maximum(a.abs(), b.abs()).clamp_min(1.0)
    return torch.isfinite(a) & torch.isfinite(b) & ((a - b).abs() <= rtol * scale)


def edit_keys(sites: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Sort keys (B, k) of edit sets ``sites``/``values`` (B, k), unused slots (site < 0) ignored.

    Comparing two rows column by column orders the sets lexicographically on
    (site, value) pairs; the unused slots come last as -1, so a set comes
    before the sets that begin with it.
    """
    used = sites >= 0
    codes = torch.where(used, sites * (1 << _VALUE_BITS) + values, torch.iinfo(torch.long).max)
    codes = codes.sort(dim=1).values
    return torch.where(codes == torch.iinfo(torch.long).max, -1, codes)


def lex_less(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Where row ``a`` (B, k) of :func:`edit_keys` comes strictly before row ``b`` (B, k')."""
    width = max(a.shape[1], b.shape[1])
    if width == 0:
        return torch.zeros(a.shape[0], dtype=torch.bool, device=a.device)
    a = torch.nn.functional.pad(a, (0, width - a.shape[1]), value=-1)
    b = torch.nn.functional.pad(b, (0, width - b.shape[1]), value=-1)
    differ = a != b
    first = differ.to(torch.int8).argmax(dim=1, keepdim=True)
    return differ.any(dim=1) & (a.gather(1, first) < b.gather(1, first))[:, 0]


def prefer(p_new, keys_new, p_old, keys_old, rtol: float) -> torch.Tensor:
    """Where a finite candidate ``p_new`` beats the kept ``p_old`` (M,): clearly lower, or tied and first."""
    tie = within(p_new, p_old, rtol)
    lower = p_new.double() < p_old.double()
    return torch.isfinite(p_new) & torch.where(tie, lex_less(keys_new, keys_old), lower)


def segment_best(p, groups, n: int, *, rtol: float, keys=None, success=None, eligible=None) -> torch.Tensor:
    """Per group, the index of the candidate the rule picks (-1 for groups without a finite candidate).

    Parameters
    ----------
    p : torch.Tensor of shape (M,)
        What is minimised; non-finite values are never picked.
    groups : torch.Tensor of shape (M,), long
        The group of each candidate, in ``[0, n)``.
    n : int
    rtol : float
        Tie tolerance (:func:`tie_rtol`).
    keys : torch.Tensor of shape (M, k), optional
        :func:`edit_keys` of each candidate; without them ties go to the first index.
    success : torch.Tensor of shape (M,), bool, optional
        Where a group has a success, only its successes may win (a tie must not
        hand the choice to a failing candidate).
    eligible : torch.Tensor of shape (M,), bool, optional
        Candidates that may be picked at all.

    Returns
    -------
    torch.Tensor of shape (n,), long
    """
    device = p.device
    p = p.double()
    ok = torch.isfinite(p) if eligible is None else eligible & torch.isfinite(p)
    if success is not None:
        wins = (ok & success).to(torch.uint8)
        any_success = torch.zeros(n, dtype=torch.uint8, device=device).scatter_reduce(0, groups, wins, reduce="amax")
        ok = ok & (success | (any_success[groups] == 0))
    masked = torch.where(ok, p, float("inf"))
    lowest = torch.full((n,), float("inf"), dtype=p.dtype, device=device).scatter_reduce(0, groups, masked, reduce="amin")
    alive = ok & within(p, lowest[groups], rtol)
    if keys is not None:
        big = torch.iinfo(torch.long).max
        for j in range(keys.shape[1]):
            column = torch.where(alive, keys[:, j], big)
            least = torch.full((n,), big, dtype=torch.long, device=device).scatter_reduce(0, groups, column, reduce="amin")
            alive = alive & (keys[:, j] == least[groups])
    absent = p.numel()
    order = torch.where(alive, torch.arange(absent, device=device), absent)
    first = torch.full((n,), absent, dtype=torch.long, device=device).scatter_reduce(0, groups, order, reduce="amin")
    return torch.where(first == absent, -1, first)


def top_distinct(groups, keys, p, width: int, *, rtol: float = 0.0, lex=None, n: int | None = None) -> torch.Tensor:
    """Indices of up to ``width`` candidates per group with distinct ``keys``, picked one by one by the rule.

    ``keys`` (M,) identify equal candidates (for instance a hash of the edit set),
    ``lex`` (M, k) are their :func:`edit_keys`. Returns indices ordered by group,
    then by the order they were picked.
    """
    if n is None:
        n = int(groups.max()) + 1 if groups.numel() else 0
    alive = torch.isfinite(p)
    picks = []
    for _ in range(width):
        best = segment_best(p, groups, n, rtol=rtol, keys=lex, eligible=alive)
        got = best[best >= 0]
        if got.numel() == 0:
            break
        picks.append(got)
        taken = torch.zeros(n, dtype=torch.bool, device=p.device)
        taken[groups[got]] = True
        taken_key = torch.zeros(n, dtype=keys.dtype, device=p.device)
        taken_key[groups[got]] = keys[got]
        alive = alive & ~(taken[groups] & (keys == taken_key[groups]))
    if not picks:
        return torch.zeros(0, dtype=torch.long, device=p.device)
    picked = torch.cat(picks)
    return picked[torch.argsort(groups[picked], stable=True)]


def nonfinite(*values: torch.Tensor) -> torch.Tensor:
    """Where any of ``values`` (M,) is not finite: bool (M,)."""
    bad = ~torch.isfinite(values[0])
    for v in values[1:]:
        bad = bad | ~torch.isfinite(v)
    return bad


def warn_inputs(broken: torch.Tensor, consequence: str, *, stacklevel: int = 1) -> None:
    """Name the inputs (bool (N,) ``broken``) whose own score is not finite, once, with the ``consequence``.

    ``stacklevel`` 1 points the warning at the caller, 2 at its caller, and so on.
    """
    if bool(broken.any()):
        where = broken.nonzero().squeeze(1).tolist()
        more = " ..." if len(where) > 10 else ""
        warn(f"input(s) {where[:10]}{more} have a non-finite score; {consequence}", stacklevel=stacklevel + 2)


class Skipped:
    """Counts candidates whose model outputs were not finite over one search, and warns once at the end.

    Counts stay on the device until :meth:`warn` reads them, so counting costs no
    host synchronisation.
    """

    def __init__(self):
        self.bad = 0
        self.total = 0

    def add(self, bad: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Count the candidates ``valid`` (default all) of which ``bad`` are not finite."""
        if valid is not None:
            bad = bad & valid
        self.bad = self.bad + bad.sum()
        self.total = self.total + (bad.numel() if valid is None else valid.sum())

    def warn(self, consequence: str = "they were skipped", *, stacklevel: int = 1) -> None:
        """Warn once when some candidate was not finite; ``stacklevel`` as in :func:`warn_inputs`."""
        bad = int(self.bad)
        if bad:
            warn(f"the model returned non-finite outputs for {bad} of {int(self.total)} candidates; {consequence}",
                 stacklevel=stacklevel + 2)


__all__ = ["tie_rtol", "within", "edit_keys", "lex_less", "prefer", "segment_best", "top_distinct", "nonfinite",
           "warn_inputs", "Skipped"]
