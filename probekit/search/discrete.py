"""Discrete searches: saturation mutagenesis, fewest substitutions, bit flips.

All searches share one candidate model: an input has *sites* (sequence
positions, or binary features) and each site holds one of ``A`` *values*
(the bases of the alphabet, or 0/1). An edit sets a site to a value other than
its current one. Every search asks the adapter for model outputs of edited
copies of the inputs, built lazily chunk by chunk on ``adapter.device``
(memory O(batch x L)), and never loops in Python over candidates.

The single-edit scan, :func:`_single_substitution_scores`, is the one core that
saturation mutagenesis, greedy search and beam search go through for DNA; a
faster engine (for example incremental ISM for convolutional models) can
replace its body without touching the searches.

Examples
--------
>>> from probekit import SequenceModel, goals
>>> from probekit.testing import MotifCounter
>>> adapter = SequenceModel(MotifCounter("ACGT"), output=0, device="cpu")
>>> ism = saturation_mutagenesis(adapter, ["TTACGTTT"])
>>> ism.effects.shape
torch.Size([1, 8, 4])
>>> result = min_substitutions(adapter, ["TTACGTTT"], goal=goals.below(0.5), max_edits=2)
>>> int(result.n_edits[0]), bool(result.proved_minimal[0])
(1, True)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import goals as goals_module
from .._warnings import warn
from ..results import ISMResult, SubstitutionResult
from . import _select

METHODS = ("auto", "exhaustive", "greedy", "beam", "gradient")
_INDEX_BUDGET = 2**24  # candidate indices held at once by the single-edit scan
_EXHAUSTIVE_WARN = 1e8  # edit sets per input above which exhaustive search warns
_SELECT_CHUNK = 2**15  # edit sets of a level settled at once by exhaustive search


# ------------------------------------------------------------------ helpers
def _progress(iterable, progress: bool, desc: str, total=None):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def _chunk_rows(adapter) -> int:
    """Candidates built at once: a few model batches, so memory stays O(batch x L)."""
    return max(1, 4 * int(adapter.batch_size))


def _lazy_map(adapter, n: int, build, fn, *, progress: bool = False, desc: str = "candidates") -> torch.Tensor | None:
    """Evaluate ``fn(raw, rows)`` on ``n`` candidates made chunk by chunk by ``build(start, stop) -> (X, rows)``."""
    chunk = _chunk_rows(adapter)
    parts = []
    starts = range(0, n, chunk)
    for start in _progress(starts, progress, desc, total=len(starts)):
        X, rows = build(start, min(n, start + chunk))
        parts.append(adapter.map(X, fn, rows=rows))
    return torch.cat(parts) if parts else None


def _segment_argmin(values: torch.Tensor, groups: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group: the smallest value and the index of its first occurrence (-1 for empty groups)."""
    device = values.device
    lowest = torch.full((n,), float("inf"), device=device, dtype=values.dtype)
    lowest = lowest.scatter_reduce(0, groups, values, reduce="amin")
    is_min = values == lowest[groups]
    absent = values.numel()  # past every index: marks non-minima and empty groups
    order = torch.where(is_min, torch.arange(absent, device=device), absent)
    first = torch.full((n,), absent, device=device, dtype=torch.long)
    first = first.scatter_reduce(0, groups, order, reduce="amin")
    return lowest, torch.where(first == absent, -1, first)


def _ids(X, ids, n: int) -> list:
    if ids is not None:
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise ValueError(f"got {len(ids)} ids for {n} inputs")
        return ids
    if isinstance(X, pd.DataFrame) and "id" in X.columns:
        return [str(i) for i in X["id"]]
    return []


def _site_mask(spec, n: int, n_sites: int, device, *, names=None, what: str = "positions") -> torch.Tensor:
    """Turn a mask, a list of sites (or names) or a slice into a (n, n_sites) bool tensor."""
    if spec is None:
        return torch.ones(n, n_sites, dtype=torch.bool, device=device)
    if isinstance(spec, str):
        raise ValueError(f"{what} must be a bool mask, a list of sites or a slice; got the string {spec!r} (put a name in a list)")
    if isinstance(spec, slice):
        mask = torch.zeros(n_sites, dtype=torch.bool)
        mask[spec] = True
        return mask.expand(n, n_sites).clone().to(device)
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(s, str) for s in spec):
        if names is None:
            raise ValueError(f"{what} given by name, but the sites have no names")
        missing = [s for s in spec if s not in names]
        if missing:
            raise ValueError(f"unknown {what}: {missing[:5]}")
        lookup = {name: i for i, name in enumerate(names)}
        spec = [lookup[s] for s in spec]
    tensor = torch.as_tensor(np.asarray(spec) if not isinstance(spec, torch.Tensor) else spec)
    if tensor.dtype == torch.bool:
        if tensor.shape not in ((n_sites,), (n, n_sites)):
            raise ValueError(f"a {what} mask must have shape ({n_sites},) or ({n}, {n_sites}); got {tuple(tensor.shape)}")
        return tensor.expand(n, n_sites).clone().to(device)
    if tensor.ndim > 1:
        raise ValueError(f"{what} must be a bool mask, a 1-D list of indices or a slice; got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        raise ValueError(f"{what} must be a bool mask or integer indices, not {tensor.dtype} values")
    index = tensor.reshape(-1).long()
    if index.numel() and (index.min() < -n_sites or index.max() >= n_sites):
        raise ValueError(f"{what} must lie in [0, {n_sites}); got {index.tolist()[:10]}")
    if index.numel() != torch.unique(index % max(n_sites, 1)).numel():
        # most likely a mask written as 0s and 1s, which would silently become the sites {0, 1}
        raise ValueError(
            f"{what} given as indices repeat a site; for a mask, pass bool values (e.g. torch.tensor(mask, dtype=bool))"
        )
    mask = torch.zeros(n_sites, dtype=torch.bool, device=index.device)  # user indices may live on any device
    mask[index] = True
    return mask.expand(n, n_sites).clone().to(device)


# ----------------------------------------------------------- candidate model
def _dna_current(X: torch.Tensor) -> torch.Tensor:
    """Base index (N, L) of one-hot rows (N, A, L); -1 at all-zero (N) columns."""
    return torch.where(X.abs().sum(dim=1) > 0, X.argmax(dim=1), -1)


def _edit_slots(sites: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sites and values (B, k) to write for edit sets whose unused slots have sites < 0, without a host sync.

    An unused slot repeats a used slot of its row, so that write happens twice
    with the same value. A row with no used slot points every slot at site 0;
    ``keep`` (B, 1) is false for it, meaning "write site 0's current value back".
    """
    used = sites >= 0
    top, slot = sites.max(dim=1, keepdim=True)  # a used slot of each row, if it has one
    sites = torch.where(used, sites, top).clamp_min(0)
    values = torch.where(used, values, values.gather(1, slot))
    return sites, values, top >= 0


def _set_bases(X: torch.Tensor, sites: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Set base ``values`` at ``sites`` (B, k) of rows ``X`` (B, A, L), in place; sites < 0 are ignored.

    The sites of a row must be distinct.
    """
    if sites.shape[1] == 0:
        return X
    sites, values, keep = _edit_slots(sites, values)
    one_hot = torch.arange(X.shape[1], device=X.device) == values[..., None]  # (B, k, A)
    rows = torch.arange(X.shape[0], device=X.device)[:, None]
    X[rows, :, sites] = torch.where(keep[..., None], one_hot, X[:, None, :, 0])
    return X


def _bit_current(X: torch.Tensor) -> torch.Tensor:
    return X.round().long().clamp(0, 1)


def _set_bits(X: torch.Tensor, sites: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Set features ``sites`` (B, k) of rows ``X`` (B, F) to ``values``, in place; sites < 0 are ignored.

    The sites of a row must be distinct.
    """
    if sites.shape[1] == 0:
        return X
    sites, values, keep = _edit_slots(sites, values)
    rows = torch.arange(X.shape[0], device=X.device)[:, None]
    X[rows, sites] = torch.where(keep, values.to(X.dtype), X[:, :1])
    return X


def _site_values(adapter, X, sites, fn, *, current, apply, n_values, skip=None, progress=False) -> torch.Tensor:
    """``fn(raw, rows)`` for every row of ``X``, every site of ``sites`` and every value.

    Generic single-edit scan; the current value of a site gets the unedited
    row's value, and so do skipped sites. Returns (M, P, n_values, *).
    """
    sites = torch.as_tensor(sites, device=X.device).long()
    skip = None if skip is None else skip.to(X.device)
    m, p, a = X.shape[0], sites.numel(), n_values
    base = adapter.map(X, fn)
    rest = base.shape[1:]
    out = base[:, None, None].expand(m, p, a, *rest).clone()
    flat_out = out.view(m * p * a, *rest)
    block = max(1, _INDEX_BUDGET // max(p * a, 1))  # rows whose candidate indices are held at once
    for first in range(0, m, block):
        last = min(m, first + block)
        cur = current(X[first:last])[:, sites]
        need = torch.ones(last - first, p, a, dtype=torch.bool, device=X.device)
        need.scatter_(2, cur.clamp_min(0)[..., None], (cur < 0)[..., None])
        if skip is not None:
            need &= ~skip[first:last, :, None]
        flat = need.reshape(-1).nonzero().squeeze(1) + first * p * a

        def build(start, stop, flat=flat):
            idx = flat[start:stop]
            row, site, value = idx // (p * a), (idx // a) % p, idx % a
            return apply(X[row].clone(), sites[site][:, None], value[:, None]), row

        values = _lazy_map(adapter, flat.numel(), build, fn, progress=progress, desc="single edits")
        if values is not None:
            flat_out[flat] = values
    return out


def _single_substitution_scores(adapter, X, positions, fn, *, skip=None, progress=False) -> torch.Tensor:
    """``fn(raw output, rows)`` for every input, position and base: the single-substitution engine.

    This is the one core of saturation mutagenesis and of the greedy and beam
    searches over DNA. Models whose early layers are local go through the exact
    incremental engine (:mod:`probekit.search.incremental`); the others, and
    any model it cannot analyse, through batched full forward passes of lazily
    built mutants. Both keep the contract below.

    Parameters
    ----------
    adapter : SequenceModel
    X : torch.Tensor of shape (M, A, L)
        One-hot rows on ``adapter.device`` (N columns all zero).
    positions : torch.Tensor of shape (P,), long
        Positions to scan, shared by all rows.
    fn : callable
        ``(raw outputs of a batch, rows) -> (batch, *)``, where ``rows`` index ``X``.
    skip : torch.Tensor of shape (M, P), bool, optional
        Row-position pairs not to scan; they get the unedited row's value.
    progress : bool
        Show a progress bar over chunks.

    Returns
    -------
    torch.Tensor of shape (M, P, A, *) on ``adapter.device``
        ``fn`` of the row with base ``a`` at position ``positions[p]``; at the
        row's own base (and at skipped pairs) the value of the unedited row.
        At N columns that are not skipped all ``A`` bases are scanned.

    Notes
    -----
    Plugging in another engine: it must return the same tensor. Every search
    passes an ``fn`` that gives one or two numbers per row (ISM: the score;
    greedy and beam: the goal's progress and value, with ``rows`` mapped to the
    original inputs inside ``fn``), so an engine limited to such ``fn`` covers
    them; keep the generic scan below as the fallback for other ``fn`` and for
    models the engine cannot take. An engine that scans skipped pairs anyway must write
    the unedited row's value there (``fn`` of ``X`` itself, broadcast over
    bases), since searches rely on it to ignore N columns, protected and
    already edited positions.

    Examples
    --------
    >>> import torch
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=0, device="cpu")
    >>> X = adapter.encode(["ACGTAC"])
    >>> _single_substitution_scores(adapter, X, torch.arange(6), lambda y, r: adapter.output(y)).shape
    torch.Size([1, 6, 4])
    """
    from .incremental import incremental_single_substitutions

    fast = incremental_single_substitutions(adapter, X, positions, fn, skip=skip, progress=progress)
    if fast is not None:
        return fast
    return _site_values(
        adapter, X, positions, fn, current=_dna_current, apply=_set_bases, n_values=X.shape[1], skip=skip, progress=progress
    )


def _single_flip_values(adapter, X, features, fn, *, skip=None, progress=False) -> torch.Tensor:
    """``fn`` for every row of ``X`` (M, F) with each feature of ``features`` set to 0 and to 1: (M, P, 2, *)."""
    return _site_values(adapter, X, features, fn, current=_bit_current, apply=_set_bits, n_values=2, skip=skip, progress=progress)


@dataclass(frozen=True)
class _Space:
    """Sites x values of N inputs: what may be edited and how edits are applied."""

    X: torch.Tensor  # (N, ...) reference inputs on the device
    mask: torch.Tensor  # (N, S) editable sites
    n_values: int
    current: Callable[[torch.Tensor], torch.Tensor]  # rows -> (M, S) value index, -1 none
    apply: Callable  # (rows clone, sites (B, k) distinct per row, values (B, k)) -> rows, sites < 0 ignored
    singles: Callable  # (adapter, rows, sites (P,), fn, skip=(M, P)) -> (M, P, A)
    first_order: Callable  # (rows, grad of g) -> (M, S, A) estimated change of g

    @property
    def n_sites(self) -> int:
        return self.mask.shape[1]

    def allowed(self, rows: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """(M, S, A) edits that change a free site of ``rows`` to another value."""
        values = torch.arange(self.n_values, device=rows.device)
        return free[..., None] & (values != self.current(rows)[..., None])

    def edited(self, source: torch.Tensor, index: torch.Tensor, sites: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return self.apply(source[index].clone(), sites, values)


def _dna_first_order(X: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    cur = _dna_current(X)
    at_ref = grad.gather(1, cur.clamp_min(0)[:, None]).squeeze(1) * (cur >= 0)
    return (grad - at_ref[:, None]).transpose(1, 2)


def _bit_first_order(X: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    values = torch.arange(2, device=X.device, dtype=X.dtype)
    return grad[..., None] * (values - X[..., None])


def _dna_inputs(adapter, X) -> torch.Tensor:
    X = X.to(adapter.device, torch.float32) if isinstance(X, torch.Tensor) else adapter.encode(X)
    if X.ndim == 2:
        X = X[None]
    a = len(getattr(adapter, "alphabet", "ACGT"))
    if X.ndim != 3 or X.shape[1] != a:
        raise ValueError(f"one-hot input must have shape (N, {a}, L); got {tuple(X.shape)}")
    return X


def _dna_space(adapter, X, positions) -> _Space:
    X = _dna_inputs(adapter, X)
    n, a, length = X.shape
    mask = _site_mask(positions, n, length, X.device) & (_dna_current(X) >= 0)
    return _Space(X, mask, a, _dna_current, _set_bases, _single_substitution_scores, _dna_first_order)


def _bit_space(adapter, X, features) -> tuple[_Space, list[str]]:
    X = X.to(adapter.device, torch.float32) if isinstance(X, torch.Tensor) else adapter.encode(X)
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2:
        raise ValueError(f"feature input must have shape (N, F); got {tuple(X.shape)}")
    n, f = X.shape
    names = adapter.names(f) if hasattr(adapter, "names") else [f"f{j}" for j in range(f)]
    kinds = adapter.kinds(f) if hasattr(adapter, "kinds") else ["binary"] * f
    binary = torch.tensor([k == "binary" for k in kinds], device=X.device)
    if features is None:
        mask = binary.expand(n, f).clone()
    else:
        mask = _site_mask(features, n, f, X.device, names=names, what="features")
        wrong = (mask.any(dim=0) & ~binary).nonzero().squeeze(1).tolist()
        if wrong:
            raise ValueError(f"bit flips need binary features; {[names[j] for j in wrong][:5]} are {kinds[wrong[0]]}")
    not_bit = mask & (X != 0) & (X != 1)
    if not_bit.any():
        for i, j in not_bit.nonzero().tolist()[:5]:
            warn(f"input {i}: binary feature {names[j]!r} has value {float(X[i, j]):g}; it is not flipped")
        mask = mask & ~not_bit
    return _Space(X, mask, 2, _bit_current, _set_bits, _single_flip_values, _bit_first_order), names


# ------------------------------------------------------------------- state
class _State:
    """Best edit set per input so far; a success is kept unless pruning shrinks it.

    Candidates are compared by the tie rule of :mod:`probekit.search._select`
    with tolerance ``rtol``: on their progress ``p`` (``g`` up to a constant per
    input, see :meth:`probekit.goals.BoundGoal.progress`), then on their edits.
    """

    def __init__(self, n: int, max_edits: int, device, rtol: float = 0.0):
        self.found = torch.zeros(n, dtype=torch.bool, device=device)
        self.sites = torch.full((n, max(max_edits, 1)), -1, dtype=torch.long, device=device)
        self.values = torch.zeros_like(self.sites)
        self.g = torch.full((n,), float("inf"), device=device)
        self.p = torch.full((n,), float("inf"), device=device, dtype=torch.float64)
        self.evals = torch.zeros(n, dtype=torch.long, device=device)
        self.exhausted = torch.full((n,), -1, dtype=torch.long, device=device)  # levels proved without success
        self.rtol = rtol
        self.skipped = _select.Skipped()

    @property
    def n_edits(self) -> torch.Tensor:
        return (self.sites >= 0).sum(dim=1)

    def offer(self, inputs, sites, values, g, usable=None, *, p=None, keep_found: bool = True) -> None:
        """Keep candidate edit sets that succeed or beat the best so far.

        ``inputs`` (B,) are distinct input indices, or None for every input in
        order; ``usable`` (B,) bool marks the candidates to consider (default all);
        ``p`` (B,) their progress (default ``g``). A success is final unless
        ``keep_found`` is false: then a better success of as many edits replaces it.
        Candidates with a non-finite ``p`` or ``g`` are never kept.
        """
        rows = slice(None) if inputs is None else inputs
        p = g if p is None else p
        found, best_g, best_p = self.found[rows], self.g[rows], self.p[rows]
        extra = self.sites.shape[1] - sites.shape[1]
        if extra:
            sites = torch.nn.functional.pad(sites, (0, extra), value=-1)
            values = torch.nn.functional.pad(values, (0, extra))
        finite = torch.isfinite(p) & torch.isfinite(g)
        hit = finite & (g <= 0)
        keys_old = _select.edit_keys(self.sites[rows], self.values[rows])
        better = finite & _select.prefer(p, _select.edit_keys(sites, values), best_p, keys_old, self.rtol)
        same_size = (sites >= 0).sum(dim=1) == (self.sites[rows] >= 0).sum(dim=1)
        take = (hit & ~found) | (hit & found & same_size & better) | (~hit & ~found & better)
        if keep_found:
            take = take & ~found
        if usable is not None:
            hit, take = hit & usable, take & usable
        self.sites[rows] = torch.where(take[:, None], sites, self.sites[rows])
        self.values[rows] = torch.where(take[:, None], values, self.values[rows])
        self.g[rows] = torch.where(take, g.to(best_g.dtype), best_g)
        self.p[rows] = torch.where(take, p.to(best_p.dtype), best_p)
        self.found[rows] = found | hit

    def count(self, inputs, n: int) -> None:
        self.evals.index_add_(0, inputs, torch.full_like(inputs, n))


def _goal_values(adapter, bound, inputs=None) -> Callable:
    """``fn(raw, rows) -> (M, 2)``: the progress and the goal value of candidates.

    Both are NaN where the score, the progress or the goal value is not finite,
    so that such candidates are never chosen. ``inputs`` maps the rows ``fn``
    is called with to the original inputs.
    """

    def fn(y, rows):
        r = rows if inputs is None else inputs[rows]
        g, p = bound.with_progress(y, r)
        bad = _select.nonfinite(adapter.output(y), p, g)
        return torch.stack([p, g], dim=1).masked_fill(bad[:, None], float("nan"))

    return fn


def _evaluate_sets(adapter, space: _Space, bound, source, index, inputs, sites, values, *, progress=False):
    """Scores, progress and goal values (each (B,)) of rows ``source[index]`` with edit sets (B, k) applied.

    Progress and goal values are NaN where the model's output is not finite
    (see :func:`_goal_values`); without a ``bound`` only scores are computed.
    """
    n = index.numel()
    if n == 0:
        empty = torch.zeros(0, device=adapter.device)
        return empty, empty, empty

    def build(start, stop):
        return space.edited(source, index[start:stop], sites[start:stop], values[start:stop]), inputs[start:stop]

    if bound is None:
        scores = _lazy_map(adapter, n, build, lambda y, rows: adapter.output(y), progress=progress, desc="edit sets")
        return scores, scores, scores
    values_of = _goal_values(adapter, bound)
    fn = lambda y, rows: torch.cat([adapter.output(y)[:, None], values_of(y, rows)], dim=1)
    both = _lazy_map(adapter, n, build, fn, progress=progress, desc="edit sets")
    return both[:, 0], both[:, 1], both[:, 2]


def _best_per_input(state: _State, inputs, sites, values, g, n: int, *, p=None, keep_found: bool = True) -> None:
    """Offer each input the candidate the tie rule picks among (inputs, sites, values, g), ranked by ``p``."""
    if g.numel() == 0:
        return
    p = g if p is None else p
    keys = _select.edit_keys(sites, values)
    first = _select.segment_best(p, inputs, n, rtol=state.rtol, keys=keys, success=g <= 0)
    pick = first.clamp_min(0)  # group i is input i; empty groups are masked out by ``usable``
    state.offer(None, sites[pick], values[pick], g[pick], usable=first >= 0, p=p[pick], keep_found=keep_found)


# ------------------------------------------------------------- exhaustive
def _binomial_table(n_max: int, k: int, device) -> torch.Tensor:
    limit = 2**62
    table = [[min(math.comb(c, t), limit) for t in range(k + 1)] for c in range(n_max + 1)]
    return torch.tensor(table, dtype=torch.long, device=device)


def _unrank(ranks: torch.Tensor, k: int, table: torch.Tensor) -> torch.Tensor:
    """Combinations (B, k), increasing, of the colexicographic ``ranks`` (B,)."""
    out = torch.empty(ranks.numel(), k, dtype=torch.long, device=ranks.device)
    r = ranks.clone()
    for t in range(k, 0, -1):
        column = table[:, t].contiguous()
        c = torch.searchsorted(column, r, right=True) - 1
        out[:, t - 1] = c
        r -= column[c]
    return out


def _exhaustive(adapter, space: _Space, bound, state: _State, max_level: torch.Tensor, budget, progress: bool) -> None:
    """All edit sets of 1, 2, ... up to ``max_level`` edits, in increasing size; stops after the first level with a success.

    A level is always evaluated whole (within the budget), so its answer is the
    set the tie rule picks among all of its sets, whatever the chunks.
    """
    n, a = space.X.shape[0], space.n_values
    allowed = space.allowed(space.X, space.mask).reshape(n, -1)
    n_pairs = allowed.sum(dim=1)
    width = int(n_pairs.max()) if n else 0
    codes = torch.argsort((~allowed).to(torch.int8), dim=1, stable=True)[:, :width]
    pair_site, pair_value = codes // a, codes % a
    # a fixed number of sets per chunk (their candidates are built in smaller pieces): the chunks, and so
    # the order in which the best set of a level is settled, do not depend on the batch size
    chunk = _SELECT_CHUNK
    top = int(max_level.max()) if n else 0
    for level in range(1, top + 1):
        active = ~state.found & (max_level >= level) & (state.exhausted == level - 1)
        if not active.any():
            break
        if level == 1 and budget is None:
            _exhaustive_singles(adapter, space, bound, state, active)
            continue
        best = _State(n, level, space.X.device, state.rtol)  # the best set of this level so far
        table = _binomial_table(int(n_pairs[active].max()), level, space.X.device)
        counts = [math.comb(int(c), level) if on else 0 for c, on in zip(n_pairs.tolist(), active.tolist())]
        if max(counts) > _EXHAUSTIVE_WARN:
            warn(f"exhaustive search of {max(counts):.3g} sets of {level} edits for one input; method='auto' bounds this")
        total = torch.tensor([min(c, 2**62) for c in counts], device=space.X.device)
        remaining = torch.where(active, total, 0)
        done = torch.zeros_like(total)
        bar = _progress(None, progress, f"exhaustive, {level} edit(s)", total=int(remaining.sum())) if progress else None
        while True:
            if budget is not None:
                remaining = torch.minimum(remaining, (budget - state.evals).clamp_min(0))
            cum = remaining.cumsum(0)
            size = min(chunk, int(cum[-1]))
            if size == 0:
                break
            g_index = torch.arange(size, device=cum.device)
            inputs = torch.searchsorted(cum, g_index, right=True)
            local = done[inputs] + g_index - (cum[inputs] - remaining[inputs])
            combo = _unrank(local, level, table)
            sites = pair_site[inputs[:, None], combo]
            values = pair_value[inputs[:, None], combo]
            left = (cum - size).clamp_min(0).minimum(remaining)  # what each input has left after this chunk
            done += remaining - left
            remaining = left
            distinct = (sites[:, 1:] != sites[:, :-1]).all(dim=1).nonzero().squeeze(1)
            inputs, sites, values = inputs[distinct], sites[distinct], values[distinct]
            _, p, g = _evaluate_sets(adapter, space, bound, space.X, inputs, inputs, sites, values)
            state.count(inputs, 1)
            state.skipped.add(torch.isnan(p))
            _best_per_input(best, inputs, sites, values, g, n, p=p, keep_found=False)
            if bar is not None:
                bar.update(size)
        if bar is not None:
            bar.close()
        state.offer(None, best.sites, best.values, best.g, usable=active & torch.isfinite(best.p), p=best.p)
        complete = active & ~state.found & (done == total)
        state.exhausted[complete] = level


def _exhaustive_singles(adapter, space: _Space, bound, state: _State, active: torch.Tensor) -> None:
    """Every single edit of the ``active`` inputs through the single-edit engine (incremental for DNA)."""
    a = space.n_values
    index = active.nonzero().squeeze(1)
    rows = space.X[index]
    sites = torch.arange(space.n_sites, device=rows.device)
    scanned = space.singles(adapter, rows, sites, _goal_values(adapter, bound, index), skip=~space.mask[index])
    valid = space.allowed(rows, space.mask[index])
    state.evals.index_add_(0, index, valid.sum(dim=(1, 2)))
    state.skipped.add(torch.isnan(scanned[..., 0]), valid)
    flat = valid.reshape(-1).nonzero().squeeze(1)
    n_sites = sites.numel()
    cm, cp, ca = flat // (n_sites * a), (flat // a) % n_sites, flat % a
    p, g = scanned.reshape(-1, 2)[flat].unbind(1)
    _best_per_input(state, index[cm], sites[cp][:, None], ca[:, None], g, space.X.shape[0], p=p)
    state.exhausted[active & ~state.found] = 1


# ------------------------------------------------------------------- beam
def _beam(adapter, space: _Space, bound, state: _State, who: torch.Tensor, *, width: int, max_edits: int, budget, progress, seed=0):
    """Beam search of width ``width`` over edit sets (greedy when ``width`` is 1), one edit per step."""
    n, a, s = space.X.shape[0], space.n_values, space.n_sites
    member_input = (who & ~state.found).nonzero().squeeze(1)
    member_x = space.X[member_input].clone()
    member_sites = torch.empty(member_input.numel(), 0, dtype=torch.long, device=space.X.device)
    member_values = member_sites.clone()
    free = space.mask[member_input].clone()
    generator = torch.Generator().manual_seed(seed)
    zobrist = torch.randint(-(2**62), 2**62, (s, a), generator=generator).to(space.X.device)
    member_key = torch.zeros(member_input.numel(), dtype=torch.long, device=space.X.device)
    steps = _progress(range(1, max_edits + 1), progress, "beam" if width > 1 else "greedy")
    for _depth in steps:
        if budget is not None:
            keep = state.evals[member_input] < budget
            member_input, member_x, member_sites = member_input[keep], member_x[keep], member_sites[keep]
            member_values, free, member_key = member_values[keep], free[keep], member_key[keep]
        if member_input.numel() == 0:
            break
        scan = free.any(dim=0).nonzero().squeeze(1)
        if scan.numel() == 0:
            break
        scanned = space.singles(adapter, member_x, scan, _goal_values(adapter, bound, member_input), skip=~free[:, scan])
        valid = space.allowed(member_x, free)[:, scan]
        state.evals.index_add_(0, member_input, valid.sum(dim=(1, 2)) + 1)
        state.skipped.add(torch.isnan(scanned[..., 0]), valid)
        n_scan = scan.numel()
        flat = valid.reshape(-1).nonzero().squeeze(1)
        cm, cp, ca = flat // (n_scan * a), (flat // a) % n_scan, flat % a
        cprog, cg = scanned.reshape(-1, 2)[flat].unbind(1)
        ci = member_input[cm]
        csites = torch.cat([member_sites[cm], scan[cp][:, None]], dim=1)
        cvalues = torch.cat([member_values[cm], ca[:, None]], dim=1)
        _best_per_input(state, ci, csites, cvalues, cg, n, p=cprog)
        alive = ~state.found[ci] & torch.isfinite(cprog)
        cm, cp, ca, cprog, ci, csites, cvalues = (t[alive] for t in (cm, cp, ca, cprog, ci, csites, cvalues))
        if ci.numel() == 0:
            break
        keys = member_key[cm] ^ zobrist[scan[cp], ca]
        pick = _top_distinct(ci, keys, cprog, width, rtol=state.rtol, lex=_select.edit_keys(csites, cvalues), n=n)
        member_input, member_key = ci[pick], keys[pick]
        member_sites, member_values = csites[pick], cvalues[pick]
        member_x = space.apply(member_x[cm[pick]].clone(), scan[cp[pick]][:, None], ca[pick][:, None])
        free = free[cm[pick]].clone()
        free[torch.arange(pick.numel(), device=free.device), scan[cp[pick]]] = False


def _top_distinct(groups: torch.Tensor, keys: torch.Tensor, g: torch.Tensor, width: int, *, rtol: float = 0.0,
                  lex=None, n: int | None = None) -> torch.Tensor:
    """Indices of the ``width`` best candidates with distinct keys in each group, picked by the tie rule.

    ``g`` (M,) is what is minimised, ``keys`` (M,) identify equal edit sets,
    ``lex`` (M, k) their :func:`~probekit.search._select.edit_keys` (ties go to
    the lexicographically first set; without them to the first index).
    """
    return _select.top_distinct(groups, keys, g, width, rtol=rtol, lex=lex, n=n)


# --------------------------------------------------------------- gradient
def _gradient(adapter, space: _Space, bound, state: _State, who, *, max_edits: int, candidates: int, budget, progress):
    """Greedy steps whose candidates are the ``candidates`` best first-order guesses, each evaluated exactly."""
    a = space.n_values
    member_input = (who & ~state.found).nonzero().squeeze(1)
    member_x = space.X[member_input].clone()
    member_sites = torch.empty(member_input.numel(), 0, dtype=torch.long, device=space.X.device)
    member_values = member_sites.clone()
    free = space.mask[member_input].clone()
    for _depth in _progress(range(1, max_edits + 1), progress, "gradient"):
        keep = ~state.found[member_input]
        if budget is not None:
            keep &= state.evals[member_input] < budget
        member_input, member_x, member_sites = member_input[keep], member_x[keep], member_sites[keep]
        member_values, free = member_values[keep], free[keep]
        m = member_input.numel()
        if m == 0:
            break
        fn = lambda y, rows, mi=member_input: bound.progress(y, mi[rows])
        _, grad = adapter.gradient(member_x, fn)
        estimate = space.first_order(member_x, grad)
        valid = space.allowed(member_x, free)
        estimate = torch.where(valid & torch.isfinite(estimate), estimate, float("inf")).reshape(m, -1)
        rows, index = _lowest_estimates(estimate, candidates, state.rtol)
        sites, values = index // a, index % a
        _, p, g = _evaluate_sets(adapter, space, bound, member_x, rows, member_input[rows], sites[:, None], values[:, None])
        state.evals.index_add_(0, member_input, torch.bincount(rows, minlength=m) + 1)
        state.skipped.add(torch.isnan(p))
        if rows.numel() == 0:
            break
        keys = _select.edit_keys(sites[:, None], values[:, None])
        first = _select.segment_best(p, rows, m, rtol=state.rtol, keys=keys, success=g <= 0)
        moved = first >= 0
        first = first[moved]
        member_input, member_x, free = member_input[moved], member_x[moved], free[moved]
        member_sites = torch.cat([member_sites[moved], sites[first][:, None]], dim=1)
        member_values = torch.cat([member_values[moved], values[first][:, None]], dim=1)
        member_x = space.apply(member_x, sites[first][:, None], values[first][:, None])
        free[torch.arange(first.numel(), device=free.device), sites[first]] = False
        state.offer(member_input, member_sites, member_values, g[first], p=p[first])


def _lowest_estimates(estimate: torch.Tensor, k: int, rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and column indices of the ``k`` lowest finite ``estimate`` (M, C) per row, near-ties to the first columns.

    Values tied (within ``rtol``) with a row's ``k``-th lowest fill its last
    places in column order, so the choice does not hang on the last bits of a
    gradient. Returns row-major pairs.
    """
    m, c = estimate.shape
    k = min(k, c)
    if k == 0 or m == 0:
        empty = torch.zeros(0, dtype=torch.long, device=estimate.device)
        return empty, empty
    kth = estimate.topk(k, dim=1, largest=False).values[:, -1:]
    finite = torch.isfinite(estimate)
    tie = _select.within(estimate, kth.expand_as(estimate), rtol)
    sure = finite & (estimate < kth) & ~tie
    room = k - sure.sum(dim=1, keepdim=True)
    chosen = sure | (tie & (tie.cumsum(dim=1) <= room))
    rows, index = chosen.nonzero().unbind(1)
    return rows, index


# ---------------------------------------------------------------- pruning
def _prune(adapter, space: _Space, bound, state: _State, who) -> None:
    """Drop edits that are not needed: remove the one whose removal keeps success best, while any does."""
    while True:
        n_edits = state.n_edits
        targets = (who & state.found & (n_edits > 1)).nonzero().squeeze(1)
        if targets.numel() == 0:
            return
        counts = n_edits[targets]
        inputs = targets.repeat_interleave(counts)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(inputs.numel(), device=inputs.device) - starts.repeat_interleave(counts)
        sites, values = state.sites[inputs].clone(), state.values[inputs].clone()
        sites[torch.arange(inputs.numel(), device=inputs.device), slot] = -1
        _, p, g = _evaluate_sets(adapter, space, bound, space.X, inputs, inputs, sites, values)
        state.evals.index_add_(0, inputs, torch.ones_like(inputs))
        state.skipped.add(torch.isnan(p))
        ok = g <= 0
        if not ok.any():
            return
        keys = _select.edit_keys(sites, values)
        first = _select.segment_best(p, inputs, space.X.shape[0], rtol=state.rtol, keys=keys, eligible=ok)
        chosen = first[first >= 0]
        chosen_inputs = inputs[chosen]
        order = torch.argsort((sites[chosen] < 0).to(torch.int8), dim=1, stable=True)
        state.sites[chosen_inputs] = sites[chosen].gather(1, order)
        state.values[chosen_inputs] = values[chosen].gather(1, order)
        state.g[chosen_inputs] = g[chosen].to(state.g.dtype)
        state.p[chosen_inputs] = p[chosen].to(state.p.dtype)


# ----------------------------------------------------------------- driver
def _affordable_level(n_pairs: torch.Tensor, max_edits: int, max_combinations: float) -> torch.Tensor:
    levels = []
    for c in n_pairs.tolist():
        cost, level = 0, 0
        for j in range(1, max_edits + 1):
            cost += math.comb(int(c), j)
            if cost > max_combinations:
                break
            level = j
        levels.append(level)
    return torch.tensor(levels, dtype=torch.long, device=n_pairs.device)


def _search(adapter, space: _Space, goal, *, max_edits, method, beam_width, max_evaluations, max_combinations, gradient_candidates, progress):
    """Run ``method`` over ``space``; returns the final state, bound goal and the before/after numbers."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(max_edits, int) or max_edits < 0:
        raise ValueError(f"max_edits must be a non-negative int, got {max_edits!r}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    goal = goals_module.parse(goal)
    X = space.X
    n = X.shape[0]
    state = _State(n, max_edits, X.device, _select.tie_rtol(getattr(adapter, "dtype", None)))
    with adapter.session():
        y0 = adapter.predict(X)
        bound = goal.bind(adapter.output, y0).to(adapter.device)
        score_before, (g0, p0) = adapter.output(y0), bound.with_progress(y0)
        del y0
        state.evals += 1
        # an input whose own score is not finite has nothing to compare with: it is not searched
        broken = _select.nonfinite(score_before, g0, p0)
        _select.warn_inputs(broken, "they are not searched and are reported as not reaching the goal", stacklevel=3)
        space = dataclasses.replace(space, mask=space.mask & ~broken[:, None])
        met = (g0 <= 0) & ~broken
        state.found |= met
        state.g = torch.where(met, g0.to(state.g.dtype), state.g)
        state.p = torch.where(met, p0.to(state.p.dtype), state.p)
        state.exhausted[~met & ~broken] = 0
        everyone = ~broken
        common = {"budget": max_evaluations, "progress": progress}
        if method == "exhaustive":
            _exhaustive(adapter, space, bound, state, torch.full((n,), max_edits, device=X.device), **common)
        elif method in ("greedy", "beam"):
            width = 1 if method == "greedy" else beam_width
            _beam(adapter, space, bound, state, everyone, width=width, max_edits=max_edits, **common)
        elif method == "gradient":
            _gradient(adapter, space, bound, state, everyone, max_edits=max_edits, candidates=gradient_candidates, **common)
        else:
            n_pairs = space.allowed(X, space.mask).sum(dim=(1, 2))
            if max_combinations is None:
                max_combinations = 2e5 if adapter.device.type == "cuda" else 2e4
            _exhaustive(adapter, space, bound, state, _affordable_level(n_pairs, max_edits, max_combinations), **common)
            rest = ~state.found & ~broken & (state.exhausted < max_edits)
            if rest.any():
                _beam(adapter, space, bound, state, rest, width=beam_width, max_edits=max_edits, **common)
                _prune(adapter, space, bound, state, rest)
        final = space.apply(X.clone(), state.sites, state.values)
        score_after, g_after = adapter.evaluate(final, bound)
        state.evals += 1
    state.skipped.warn(stacklevel=3)
    success = ~broken & ~_select.nonfinite(score_after, g_after) & (g_after <= 0)
    proved = success & state.found & (state.n_edits <= state.exhausted + 1)
    return state, final, score_before, score_after, success, proved


def _as_lists(state: _State) -> tuple[list, list]:
    sites, values = state.sites.cpu().tolist(), state.values.cpu().tolist()
    out_sites = [[s for s in row if s >= 0] for row in sites]
    out_values = [[v for s, v in zip(srow, vrow) if s >= 0] for srow, vrow in zip(sites, values)]
    return out_sites, out_values


def min_substitutions(
    adapter,
    X,
    *,
    goal,
    max_edits: int,
    method: str = "auto",
    positions=None,
    beam_width: int = 8,
    max_evaluations: int | None = None,
    max_combinations: float | None = None,
    gradient_candidates: int = 16,
    ids=None,
    progress: bool = False,
) -> SubstitutionResult:
    """Fewest nucleotide substitutions that reach ``goal``, batched on ``adapter.device``.

    The objective is the goal value ``g`` itself (success when ``g <= 0``), so
    no edit penalty needs tuning to the model's output scale.

    Parameters
    ----------
    adapter : SequenceModel
    X : torch.Tensor of shape (N, 4, L), or anything ``adapter.encode`` takes
    goal : Goal or str
        For example ``goals.flip()`` or ``"below:0.5"``.
    max_edits : int
        Largest number of substitutions tried.
    method : {"auto", "exhaustive", "greedy", "beam", "gradient"}
        ``exhaustive`` evaluates every set of 1, 2, ... edits and proves
        minimality; ``greedy`` takes the best single substitution by ISM of
        ``g`` at each step; ``beam`` keeps the ``beam_width`` best edit sets per
        step; ``gradient`` ranks candidates by the input gradient of ``g`` and
        evaluates the ``gradient_candidates`` best exactly; ``auto`` is
        exhaustive over the sizes whose combinations number at most
        ``max_combinations`` per input, then beam search with removal of
        unneeded edits.
    positions : bool mask (L,) or (N, L), list of positions or slice, optional
        Positions that may be edited; the rest are protected. N positions are never edited.
    beam_width : int
    max_evaluations : int, optional
        Budget of model evaluations per input, checked between chunks and steps.
    max_combinations : float, optional
        Per-input number of edit sets up to which ``auto`` enumerates exhaustively;
        default 2e5 on CUDA and 2e4 on the CPU.
    gradient_candidates : int
        Candidates evaluated exactly per step of the gradient method.
    ids : list of str, optional
    progress : bool

    Returns
    -------
    SubstitutionResult
        ``edits`` per input as ``(position, ref, alt)`` in the order they were
        chosen; ``proved_minimal`` is true only when no smaller set reaches the
        goal (the input itself, or all smaller sets, were evaluated); failed
        inputs carry their closest attempt with ``success`` false.
        ``params["no_solution_within"]`` (N,) marks inputs proved to need more
        than ``max_edits`` substitutions.

    Notes
    -----
    The answer does not depend on the batch size. Candidates are ranked by the
    goal's progress (:meth:`probekit.goals.BoundGoal.progress`, the score with
    the goal's sign, which keeps its precision under a far threshold); values
    within ``1e-5 * max(1, |a|, |b|)`` (``1e-12`` for float64 models) tie, and
    ties go to the lexicographically first edit set (by position, then by the
    alternative base's index). Exhaustive search settles each level of edit
    sets whole, so among the smallest successful sets it reports the one
    reaching furthest. Candidates whose model output is NaN or infinite are
    never chosen and never succeed (a ``ProbekitWarning`` counts them), and an
    input whose own score is not finite is reported unsuccessful and unproved.

    Examples
    --------
    >>> from probekit import SequenceModel, goals
    >>> from probekit.testing import MotifCounter
    >>> adapter = SequenceModel(MotifCounter("ACGT"), output=0, device="cpu")
    >>> r = min_substitutions(adapter, ["ACGTTACGTT"], goal="below:0.5", max_edits=2, method="exhaustive")
    >>> int(r.n_edits[0]), bool(r.success[0]), bool(r.proved_minimal[0])
    (2, True, True)
    """
    start = time.perf_counter()
    space = _dna_space(adapter, X, positions)
    state, final, before, after, success, proved = _search(
        adapter,
        space,
        goal,
        max_edits=max_edits,
        method=method,
        beam_width=beam_width,
        max_evaluations=max_evaluations,
        max_combinations=max_combinations,
        gradient_candidates=gradient_candidates,
        progress=progress,
    )
    alphabet = getattr(adapter, "alphabet", "ACGT")
    ref = _dna_current(space.X).cpu()
    site_lists, value_lists = _as_lists(state)
    edits = [
        [(int(p), alphabet[int(ref[i, p])], alphabet[v]) for p, v in zip(sites, values)]
        for i, (sites, values) in enumerate(zip(site_lists, value_lists))
    ]
    return SubstitutionResult(
        edits=edits,
        n_edits=state.n_edits,
        success=success,
        proved_minimal=proved,
        score_before=before,
        score_after=after,
        sequences=final,
        evaluations=state.evals,
        ids=_ids(X, ids, space.X.shape[0]),
        params=_params(adapter, goal, method, max_edits, beam_width, state, start, alphabet=alphabet),
    )


def _params(adapter, goal, method, max_edits, beam_width, state: _State, start: float, **extra) -> dict:
    return {
        "goal": str(goals_module.parse(goal)),
        "method": method,
        "max_edits": max_edits,
        "beam_width": beam_width,
        "output": adapter.output.name,
        "device": str(adapter.device),
        "seconds": time.perf_counter() - start,
        "no_solution_within": ~state.found & (state.exhausted >= max_edits),
        "levels_exhausted": state.exhausted,
        **extra,
    }


def bit_flips(
    adapter,
    X,
    *,
    goal,
    max_flips: int,
    method: str = "auto",
    features=None,
    beam_width: int = 8,
    max_evaluations: int | None = None,
    max_combinations: float | None = None,
    gradient_candidates: int = 16,
    ids=None,
    progress: bool = False,
) -> SubstitutionResult:
    """Fewest flips of binary features (fingerprint bits) that reach ``goal``.

    The same search as :func:`min_substitutions`, where each binary feature has
    one alternative value, ``1 - x``.

    Parameters
    ----------
    adapter : FeatureModel
    X : torch.Tensor of shape (N, F), or anything ``adapter.encode`` takes
    goal : Goal or str
    max_flips : int
    method : {"auto", "exhaustive", "greedy", "beam", "gradient"}
    features : bool mask (F,) or (N, F), list of indices or names, or slice, optional
        Features that may flip; default every feature of kind ``"binary"``.
        Features of another kind cannot be flipped.
    beam_width, max_evaluations, max_combinations, gradient_candidates, ids, progress
        As in :func:`min_substitutions`.

    Returns
    -------
    SubstitutionResult
        ``edits`` per input as ``(feature_name, old, new)``;
        ``params["feature_indices"]`` holds the flipped feature indices per input.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> model = torch.nn.Linear(4, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 2.0, -1.0, 0.5]])); _ = model.bias.fill_(-2.5)
    >>> adapter = FeatureModel(model, output=outputs.value(0), kinds="binary", device="cpu")
    >>> r = bit_flips(adapter, torch.tensor([[1.0, 1.0, 0.0, 1.0]]), goal="below:0", max_flips=2)
    >>> r.edits[0], bool(r.proved_minimal[0])
    ([('f1', 1, 0)], True)
    """
    start = time.perf_counter()
    space, names = _bit_space(adapter, X, features)
    state, final, before, after, success, proved = _search(
        adapter,
        space,
        goal,
        max_edits=max_flips,
        method=method,
        beam_width=beam_width,
        max_evaluations=max_evaluations,
        max_combinations=max_combinations,
        gradient_candidates=gradient_candidates,
        progress=progress,
    )
    old = _bit_current(space.X).cpu()
    site_lists, value_lists = _as_lists(state)
    edits = [
        [(names[j], int(old[i, j]), int(v)) for j, v in zip(sites, values)]
        for i, (sites, values) in enumerate(zip(site_lists, value_lists))
    ]
    return SubstitutionResult(
        edits=edits,
        n_edits=state.n_edits,
        success=success,
        proved_minimal=proved,
        score_before=before,
        score_after=after,
        sequences=final,
        evaluations=state.evals,
        ids=_ids(X, ids, space.X.shape[0]),
        params=_params(adapter, goal, method, max_flips, beam_width, state, start, feature_indices=site_lists),
    )


_ISM_ULPS = 8  # mutant scores within this many roundings of the input's output scale count as unchanged


def _effects(values: torch.Tensor, reference: torch.Tensor, mutated: torch.Tensor, dtype) -> torch.Tensor:
    """ISM effects (N, P, A) of mutant scores ``values`` (N, P, A) against ``reference`` (N,).

    0 where nothing was mutated (``mutated`` false) and where a mutant's score
    equals the reference within rounding: ``|effect| <= 8 * eps * scale``, with
    ``eps`` that of the model's dtype and ``scale`` the largest score magnitude
    among the input and its mutants. Batched or windowed (incremental) forward
    passes round the last bits of a score differently from the reference's own
    pass, so a position the model ignores would otherwise show an effect of a
    unit or two in the last place (at most 2.2 measured, on 5 and 20 kb
    sequences); the smallest real effect there, of one position under a mean
    over 20 kb, was 60 units. NaN where the mutant's score is not finite, and
    everywhere for an input whose own score is not finite.
    """
    eps = max(torch.finfo(values.dtype).eps, torch.finfo(dtype).eps if dtype is not None and dtype.is_floating_point else 0.0)
    finite = torch.isfinite(values)
    scale = torch.where(finite & mutated, values.abs(), 0).amax(dim=(1, 2)).maximum(reference.abs())
    effects = values - reference[:, None, None]
    effects = torch.where(effects.abs() <= _ISM_ULPS * eps * scale[:, None, None], 0.0, effects)
    effects = torch.where(finite, effects, float("nan"))
    return torch.where(mutated, effects, 0.0)


def saturation_mutagenesis(
    adapter, X, *, start: int | None = None, end: int | None = None, include_n: bool = False, ids=None, progress: bool = False
) -> ISMResult:
    """In-silico saturation mutagenesis: the score change of every single substitution.

    Exact: each effect is the adapter's score of one mutant minus the score of
    the input. Mutants are built lazily per chunk on ``adapter.device``. An
    effect within rounding of the scores (8 units in the last place of the
    largest score of the input and its mutants) is exactly 0, so positions the
    model ignores read 0 however the scores were batched. A mutant whose score
    is not finite has a NaN effect (and a ``ProbekitWarning`` counts them).

    Parameters
    ----------
    adapter : SequenceModel
    X : torch.Tensor of shape (N, 4, L), or anything ``adapter.encode`` takes
    start, end : int, optional
        Scan positions ``start:end`` only (default: the whole sequence).
    include_n : bool
        Also substitute each base at N (all-zero) positions; otherwise their effects are 0.
    ids : list of str, optional
    progress : bool

    Returns
    -------
    ISMResult
        ``effects`` (N, L, 4), 0 at the reference base, at N positions unless
        asked for and outside ``start:end``; ``params["ref_index"]`` (N, L) the
        reference base index (-1 at N).

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> ism = saturation_mutagenesis(adapter, ["ACGTACGTAC"], start=2, end=6)
    >>> ism.effects.shape, float(ism.effects[0, 0].abs().sum())
    (torch.Size([1, 10, 4]), 0.0)
    """
    t0 = time.perf_counter()
    X_t = _dna_inputs(adapter, X)
    n, a, length = X_t.shape
    start = 0 if start is None else int(start)
    end = length if end is None else int(end)
    if not 0 <= start < end <= length:
        raise ValueError(f"need 0 <= start < end <= {length}; got start={start}, end={end}")
    positions = torch.arange(start, end, device=X_t.device)
    ref_index = _dna_current(X_t)
    skip = None if include_n else ref_index[:, positions] < 0
    with adapter.session():
        reference = adapter.score(X_t)
        values = _single_substitution_scores(adapter, X_t, positions, lambda y, rows: adapter.output(y), skip=skip, progress=progress)
    mutated = torch.arange(a, device=X_t.device) != ref_index[:, positions, None]  # (N, P, A) the scanned mutants
    if skip is not None:
        mutated &= ~skip[..., None]
    effects = torch.zeros(n, length, a, device=X_t.device)
    effects[:, start:end] = _effects(values, reference, mutated, getattr(adapter, "dtype", None))
    skipped = _select.Skipped()
    skipped.add(~torch.isfinite(values), mutated)
    skipped.warn("their effects are NaN", stacklevel=2)
    _select.warn_inputs(~torch.isfinite(reference), "their effects are NaN", stacklevel=2)
    has_ref = ref_index >= 0
    scanned = (a - 1) * has_ref[:, start:end].sum(dim=1) + (0 if skip is not None else a * (~has_ref[:, start:end]).sum(dim=1))
    return ISMResult(
        reference=reference,
        effects=effects,
        alphabet=getattr(adapter, "alphabet", "ACGT"),
        start=start,
        end=end,
        ids=_ids(X, ids, n),
        params={
            "ref_index": ref_index,
            "include_n": include_n,
            "output": adapter.output.name,
            "device": str(adapter.device),
            "seconds": time.perf_counter() - t0,
            "evaluations": scanned + 2,  # the reference is scored twice: once here, once by the scan
        },
    )


__all__ = ["bit_flips", "min_substitutions", "saturation_mutagenesis"]
