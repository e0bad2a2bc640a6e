"""Discrete certificates: can k substitutions (or k bit flips) reach the goal?

Robustness to k corrupted symbols, as in coding theory. Each input gets a
status: ``certified`` (no set of at most k edits reaches the goal: proved),
``falsified`` (a counterexample, with its edits), ``unknown`` (the budget ran
out first, or the model returned NaN or inf on some edited sequence, which
proves nothing either way) or ``error`` (the model returned NaN or inf on the
input itself); ``reasons`` says why an input is ``unknown`` for lack of finite
outputs, or in ``error``. Inputs whose edit sets are few enough are decided exactly by
batched enumeration (:func:`probekit.search.min_substitutions` with
``method="exhaustive"``); the others by CROWN bounds over the k-edit set, then a
beam attack, then branch and bound: split on one position (left as it is, or
set to each other base), bound every branch, and close those whose lower bound
on the goal's ``g`` is positive, each input within its own budget of branches.

Examples
--------
>>> from probekit import SequenceModel, goals
>>> from probekit.testing import MotifCounter
>>> adapter = SequenceModel(MotifCounter("ACGT"), output=0, device="cpu")
>>> r = substitutions(adapter, ["ACGTTTTT", "ACGTACGT"], k=1, goal=goals.below(0.5))
>>> r.status
['falsified', 'certified']
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import torch

from ..goals import BoundGoal, Goal, parse
from ..results import Result, edits_text
from ._checks import input_reasons, warn_refused
from .crown import crown_rows
from .ibp import Problem, bind_problem, prepare
from .spec import BitFlips, Hamming, Spec


@dataclass(frozen=True)
class CertificateResult(Result):
    """Per-input verdict of a discrete certificate.

    Attributes
    ----------
    status : list of str
        ``certified``, ``falsified``, ``unknown`` or ``error`` per input.
    edits : list of list of tuple
        For falsified inputs, the counterexample ``(position, ref, alt)`` (or
        ``(feature, old, new)``); empty otherwise.
    g_lower : torch.Tensor of shape (N,)
        Proved lower bound of the goal's ``g`` over the whole edit set from bounds (above 0
        when certified by bounds or branch and bound; NaN where enumeration decided, -inf
        where no bound holds).
    g_best : torch.Tensor of shape (N,)
        Smallest ``g`` found (at most 0 when falsified).
    k : int
    how : list of str
        ``enumeration``, ``bounds``, ``attack`` or ``branch-and-bound`` per input.
    evaluations : torch.Tensor of shape (N,)
        Model evaluations and bound computations spent per input.
    reasons : list of str
        Per input, ``""`` or why it is ``error`` (the model returned NaN or inf on it)
        or ``unknown`` for lack of finite outputs (on edited sequences).
    """

    _tuple_lists = ("edits",)

    status: list
    edits: list
    g_lower: torch.Tensor
    g_best: torch.Tensor
    k: int = 1
    how: list = field(default_factory=list)
    evaluations: torch.Tensor | None = None
    ids: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per input: id, status, how, k, g_lower, g_best, edits, reason."""
        n = len(self.status)
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(n)],
                "status": self.status,
                "how": self.how or [""] * n,
                "k": self.k,
                "g_lower": self.g_lower.numpy(),
                "g_best": self.g_best.numpy(),
                "edits": [edits_text(e) for e in self.edits],
                "reason": self.reasons or [""] * n,
            }
        )


def _n_sets(n_sites: torch.Tensor, k: int, alternatives: int) -> np.ndarray:
    return np.array([sum(math.comb(int(m), j) * alternatives**j for j in range(k + 1)) for m in n_sites.tolist()])


@dataclass(frozen=True)
class _Watched(Goal):
    """A goal whose bound form counts, per input, the candidates the model gave NaN or inf (in ``seen``).

    A search treats such a candidate as one that does not reach the goal; a
    certificate must not: it proves nothing either way.
    """

    seen: torch.Tensor | None = None  # (N, 2): candidates with a NaN, with an infinity

    def bind(self, output, y_ref) -> BoundGoal:
        return _watch(Goal(self.kind, self.value).bind(output, y_ref), self.seen)


@dataclass(frozen=True)
class _WatchedBound(BoundGoal):
    seen: torch.Tensor | None = None

    def with_progress(self, y: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # every way of reading g (calling the goal, its progress) goes through here
        g, progress = super().with_progress(y, rows)
        rows = torch.arange(y.shape[0], device=g.device) if rows is None else rows
        nan = torch.isnan(g) | torch.isnan(y.reshape(y.shape[0], -1)).any(1)
        counts = torch.stack([nan, torch.isinf(g) & ~nan], 1).to(self.seen.dtype)
        self.seen.index_add_(0, rows.to(self.seen.device), counts.to(self.seen.device))  # no read back: no sync
        return g, progress

    def to(self, device) -> BoundGoal:
        return _watch(super().to(device), self.seen)


def _watch(bound: BoundGoal, seen: torch.Tensor) -> BoundGoal:
    return _WatchedBound(**{f.name: getattr(bound, f.name) for f in fields(BoundGoal)}, seen=seen)


def _nonfinite_reason(nan: int, inf: int, k: int) -> str:
    parts = [f"NaN on {nan}" if nan else "", f"inf on {inf}" if inf else ""]
    return (f"the model returned {' and '.join(p for p in parts if p)} evaluated edit(s) of this input within k={k}: "
            "they prove nothing either way")


class _Space:
    """What an edit is: a base substitution (DNA) or a bit flip."""

    def __init__(self, adapter, X, kind):
        self.kind = kind
        self.X = X
        if kind == "dna":
            self.alphabet = adapter.alphabet
            self.free = X.sum(1) > 0
            self.alternatives = X.shape[1] - 1
        else:
            kinds = adapter.kinds(X.shape[1])
            self.names = adapter.names(X.shape[1])
            binary = torch.tensor([kd == "binary" for kd in kinds], device=X.device)
            if not binary.any():
                raise ValueError("bit flips need binary features; this adapter has none")
            self.free = binary[None].expand_as(X).clone()
            self.alternatives = 1

    def pset(self, x, k, free, kmax=None):
        return Hamming(x, k, free, kmax=kmax) if self.kind == "dna" else BitFlips(x, k, free, kmax=kmax)

    def first_order(self, x, grad, free):
        """First-order best change of g per site (M, sites); +inf where not free."""
        if self.kind == "dna":
            ref = (grad * x).sum(1)
            alt = grad.masked_fill(x.bool(), float("inf")).min(1).values
            gain = alt - ref
        else:
            gain = grad * (1 - 2 * x)
        return gain.masked_fill(~free, float("inf"))

    def children(self, x, site):
        """Inputs with ``site`` edited to each alternative: (M * alternatives, ...) and the edit labels."""
        m = x.shape[0]
        if self.kind == "dna":
            a = x.shape[1]
            ar = torch.arange(m, device=x.device)
            ref = x[ar, :, site].argmax(1)
            alts = torch.stack([(ref + j) % a for j in range(1, a)], 1)  # (M, a-1)
            xs = x.repeat_interleave(a - 1, 0).clone()
            rows = torch.arange(m * (a - 1), device=x.device)
            xs[rows, :, site.repeat_interleave(a - 1)] = 0.0
            xs[rows, alts.reshape(-1), site.repeat_interleave(a - 1)] = 1.0
            table = torch.cat([site[:, None], ref[:, None], alts], 1).tolist()  # one read for all labels
            labels = [(s, self.alphabet[r], self.alphabet[b]) for s, r, *row in table for b in row]
            return xs, labels
        xs = x.clone()
        ar = torch.arange(m, device=x.device)
        old = xs[ar, site]
        xs[ar, site] = 1 - old
        table = torch.stack([site.double(), old.double()], 1).tolist()
        labels = [(self.names[int(s)], int(o), int(1 - o)) for s, o in table]
        return xs, labels


def _sites(spec, space: _Space, X: torch.Tensor, *, where: str) -> torch.Tensor:
    """Editable sites (N, sites) from a bool mask, a list of indices (or feature names) or a slice,
    as in :mod:`probekit.search`."""
    from ..search.discrete import _site_mask

    n, n_sites = space.free.shape
    return _site_mask(spec, n, n_sites, X.device, names=getattr(space, "names", None), what=where)


def _goal_rows(spec: Spec, rows: torch.Tensor) -> Spec:
    pick = lambda t: None if t is None else t[rows]  # noqa: E731
    return Spec(spec.C[rows], spec.d[rows], spec.reduce, spec.post, pick(spec.a), pick(spec.b))


def _g_lower(problem: Problem, x, k, free, rows, space: _Space, kmax: int) -> torch.Tensor:
    goal = _goal_rows(problem.goal, rows)
    with torch.no_grad():
        sub = bind_problem(problem, x, space.pset(x, k, free, kmax=kmax), goal)
        lo, hi = crown_rows(sub, goal)
    return goal.interval(lo, hi)[0]


# input entries held in open branches at once, roughly: inputs join the search as others finish
_OPEN_ENTRIES = 2**26


class _Open:
    """Open branches: input row, edited input, free sites, edits left, parent bound, edit history."""

    def __init__(self, rows, xs, free, ks, parent, hist):
        self.rows, self.xs, self.free, self.ks, self.parent, self.hist = rows, xs, free, ks, parent, hist

    def __len__(self) -> int:
        return len(self.hist)

    def take(self, idx: torch.Tensor) -> "_Open":
        hist = [self.hist[i] for i in idx.tolist()]
        return _Open(self.rows[idx], self.xs[idx], self.free[idx], self.ks[idx], self.parent[idx], hist)

    def cat(self, *others: "_Open") -> "_Open":
        parts = (self,) + others
        fields = [torch.cat([getattr(p, f) for p in parts]) for f in ("rows", "xs", "free", "ks", "parent")]
        return _Open(*fields, [h for p in parts for h in p.hist])


def _branch_and_bound(adapter, space, problem, bound, X, k, todo, *, max_nodes, batch_size, progress):
    """Decide inputs ``todo`` by branch and bound; returns per-input (status, edits, g_lower, g_best, work, seen).

    ``seen`` (N, 2) counts the branches whose sequence the model gave NaN (column 0)
    or inf (column 1): such an input expands no more and is never certified.

    Each input bounds at most ``max_nodes`` branches, in rounds of its ``batch_size``
    weakest open branches (best first). The rounds of several inputs are bounded
    together, but which branches an input takes depends on that input alone, so
    its verdict does not depend on the other inputs. The host reads from the
    device a few times per round, never once per branch.
    """
    n = X.shape[0]
    dev = X.device
    todo_l = todo.tolist()
    status = {i: "unknown" for i in todo_l}
    edits: dict = {}
    inf = torch.full((n,), float("inf"), device=dev, dtype=X.dtype)
    g_best = inf.clone()
    closed_min = inf.clone()  # smallest lower bound among closed branches
    left_min = inf.clone()  # smallest parent bound among branches never bounded
    left_open = torch.zeros(n, dtype=torch.bool, device=dev)  # inputs that ran out of budget with branches open
    work = torch.zeros(n, dtype=torch.long, device=dev)
    taken = torch.zeros(n, dtype=torch.long, device=dev)  # branches bounded per input
    hits = torch.zeros(n, dtype=torch.long, device=dev)  # branches per input that reached the goal
    seen = torch.zeros(n, 2, dtype=torch.long, device=dev)  # branches per input the model gave NaN, inf
    watched = _watch(bound, seen)
    # an input may open about (alternatives + 1) branches per branch it bounds
    window = max(1, _OPEN_ENTRIES // max(1, max_nodes * (space.alternatives + 1) * X[0].numel()))
    waiting = list(todo_l)
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    opened = _Open(empty, X[:0], space.free[:0], empty, X.new_zeros(0), [])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_nodes * len(todo_l), desc="branch and bound")
    while True:
        active = len(torch.unique(opened.rows)) if len(opened) else 0
        if waiting and active < window:
            new, waiting = waiting[: window - active], waiting[window - active :]
            r = torch.tensor(new, device=dev)
            parent = X.new_full((len(new),), -float("inf"))
            roots = _Open(r, X[r], space.free[r], torch.full_like(r, k), parent, [[] for _ in new])
            opened = opened.cat(roots)
        # inputs with a counterexample, a non-finite output, or out of budget, expand no more
        live = (hits[opened.rows] == 0) & (seen[opened.rows].sum(1) == 0) & (taken[opened.rows] < max_nodes)
        if not bool(live.all()):
            dead = torch.nonzero(~live)[:, 0]
            left_min.scatter_reduce_(0, opened.rows[dead], opened.parent[dead], "amin")
            left_open[opened.rows[dead]] = True
            opened = opened.take(torch.nonzero(live)[:, 0])
        if not len(opened):
            if waiting:
                continue
            break
        # each input's weakest branches, ties in the order they were opened
        order = torch.argsort(opened.parent, stable=True)
        order = order[torch.argsort(opened.rows[order], stable=True)]
        by_row = opened.rows[order]
        rank = torch.arange(len(order), device=dev) - torch.searchsorted(by_row, by_row)
        pick = rank < (max_nodes - taken).clamp(max=batch_size)[by_row]
        b = opened.take(order[pick])
        opened = opened.take(order[~pick].sort().values)  # the branches left open, in their order
        if bar is not None:
            bar.update(len(b))
        one = torch.ones_like(b.rows)
        taken.index_add_(0, b.rows, one)
        work.index_add_(0, b.rows, one)
        _, g_c = adapter.evaluate(b.xs, watched, b.rows)  # counts NaN and inf branches in ``seen``
        g_c = torch.where(torch.isfinite(g_c), g_c, float("inf"))  # no counterexample; no bound holds either (seen)
        g_best.scatter_reduce_(0, b.rows, g_c, "amin")
        reached = g_c <= 0
        hits.index_add_(0, b.rows, reached.long())
        alive = (hits[b.rows] == 0) & (seen[b.rows].sum(1) == 0)  # inputs without a counterexample or a NaN so far
        bounded = torch.nonzero(alive)[:, 0]
        g_lo = torch.full_like(g_c, -float("inf"))
        # kmax=k for every chunk: a branch's bound does not depend on which branches share its chunk
        for s in range(0, len(bounded), batch_size):
            j = bounded[s : s + batch_size]
            g_lo[j] = torch.minimum(_g_lower(problem, b.xs[j], b.ks[j], b.free[j], b.rows[j], space, k), g_c[j])
        work.index_add_(0, b.rows[bounded], one[bounded])
        # the branches of an input decided in this round keep their parents' bounds
        left_min.scatter_reduce_(0, b.rows[~alive], b.parent[~alive], "amin")
        can_split = (b.ks > 0) & b.free.any(1)
        split = alive & (g_lo <= 0) & can_split
        closed = alive & ~split
        # a branch that cannot split is one point, whose evaluated g is exact (its bound may round below it)
        exact = torch.where(can_split, g_lo, g_c)
        closed_min.scatter_reduce_(0, b.rows, torch.where(closed, exact, torch.full_like(g_lo, float("inf"))), "amin")
        rows_l, reached_l = b.rows.tolist(), reached.tolist()
        for j, hit in enumerate(reached_l):
            r = rows_l[j]
            if hit and status[r] != "falsified":
                status[r], edits[r] = "falsified", b.hist[j]
        s_idx = torch.nonzero(split)[:, 0]
        if not len(s_idx):
            continue
        sp, s_lo = b.take(s_idx), g_lo[s_idx]
        _, grad = adapter.gradient(sp.xs, bound, rows=sp.rows)
        site = space.first_order(sp.xs, grad, sp.free).reshape(len(sp), -1).argmin(1)
        # branch 1: the site stays as it is
        kept_free = sp.free.clone()
        kept_free[torch.arange(len(sp), device=dev), site] = False
        kept = _Open(sp.rows, sp.xs, kept_free, sp.ks, s_lo, sp.hist)
        # branches 2..: the site edited to each alternative
        e_x, labels = space.children(sp.xs, site)
        reps = space.alternatives
        edited = _Open(
            sp.rows.repeat_interleave(reps), e_x, kept_free.repeat_interleave(reps, 0), (sp.ks - 1).repeat_interleave(reps),
            s_lo.repeat_interleave(reps), [sp.hist[i // reps] + [labels[i]] for i in range(len(labels))],
        )
        opened = opened.cat(kept, edited)
    if bar is not None:
        bar.close()
    g_lower = torch.minimum(closed_min, left_min)
    left_l, seen_l = left_open.tolist(), seen.sum(1).tolist()
    for r in status:
        if status[r] == "unknown" and not left_l[r] and not seen_l[r]:
            status[r] = "certified"
    return status, edits, g_lower, g_best, work, seen


def _input_reasons(adapter, X: torch.Tensor, goal) -> list:
    """Per input, ``""`` or why it cannot be certified: the model returned NaN or inf on it."""
    y = adapter.predict(X)
    g = goal.bind(adapter.output, y)(y)
    nan_anywhere = torch.where(torch.isnan(y.reshape(y.shape[0], -1)).any(1), float("nan"), 0.0)
    return input_reasons(torch.stack([adapter.output(y).to(g), g, nan_anywhere.to(g)], 1))


def _counterexample(g: torch.Tensor) -> bool:
    """Whether a goal value reached by a candidate is evidence: at most 0 and finite."""
    return bool(torch.isfinite(g) & (g <= 0))


def _certify(adapter, X, *, k, goal, kind, positions, max_enumerate, max_nodes, batch_size, beam_width, attack, progress, ids):
    from ..search import discrete

    start = time.perf_counter()
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    goal = parse(goal)
    X = adapter._as_input(X).to(adapter.dtype)
    n = X.shape[0]
    space = _Space(adapter, X, kind)
    if positions is not None:
        space.free &= _sites(positions, space, X, where="positions" if kind == "dna" else "features")
    search = discrete.min_substitutions if kind == "dna" else discrete.bit_flips
    budget_key = "max_edits" if kind == "dna" else "max_flips"
    where = "positions" if kind == "dna" else "features"
    status, how = ["unknown"] * n, [""] * n
    edits: list = [[] for _ in range(n)]
    g_lower = torch.full((n,), -float("inf"))
    g_best = torch.full((n,), float("inf"))
    work = torch.zeros(n, dtype=torch.long)
    seen = torch.zeros(n, 2, dtype=torch.long)  # evaluated edited inputs the model gave NaN, inf

    def watched(m: int) -> tuple[_Watched, torch.Tensor]:
        counts = torch.zeros(m, 2, dtype=torch.long, device=X.device)
        return _Watched(goal.kind, goal.value, seen=counts), counts

    with adapter.session():
        reasons = _input_reasons(adapter, X, goal)
        ok = torch.tensor([not r for r in reasons], dtype=torch.bool)
        for i in torch.nonzero(~ok)[:, 0].tolist():
            status[i] = "error"
        counts = _n_sets(space.free.sum(1).cpu(), k, space.alternatives)
        small = torch.from_numpy(counts <= max_enumerate) & ok
        if small.any():
            idx = torch.nonzero(small)[:, 0]
            idx_d = idx.to(X.device)
            Xs = X[idx_d]
            watch, seen_s = watched(len(idx))
            r = search(adapter, Xs, goal=watch, method="exhaustive", **{budget_key: k, where: space.free[idx_d]})
            none = r.params["no_solution_within"]
            _, g_after = adapter.evaluate(r.sequences.to(X.device), adapter.bind(goal, Xs))
            g_after = g_after.cpu()
            seen[idx] += seen_s.cpu()
            for j, i in enumerate(idx.tolist()):
                how[i] = "enumeration"
                work[i] = int(r.evaluations[j])
                g_best[i] = float(g_after[j])
                if bool(r.success[j]) and _counterexample(g_after[j]):
                    status[i], edits[i] = "falsified", list(r.edits[j])
                elif bool(none[j]):
                    status[i] = "certified"
                    g_lower[i] = float(g_after[j]) if k == 0 else float("nan")
        rest = torch.nonzero(~small & ok)[:, 0]
        if len(rest):
            rest_d = rest.to(X.device)
            Xr, free_r = X[rest_d], space.free[rest_d]
            with torch.no_grad():
                problem = prepare(adapter, Xr, k=k, goal=goal)
                problem.pset = space.pset(Xr, k, free_r)
                lo, hi = crown_rows(problem, problem.goal)
            g_lo = problem.goal.interval(lo, hi)[0].cpu()
            attack_rows = []
            for j, i in enumerate(rest.tolist()):
                g_lower[i] = g_lo[j]
                work[i] += 1
                if g_lo[j] > 0:
                    status[i], how[i] = "certified", "bounds"
                else:
                    attack_rows.append(j)
            bound = adapter.bind(goal, Xr)
            bab = attack_rows
            if attack_rows and attack:
                a_idx = torch.tensor(attack_rows, device=X.device)
                watch, seen_a = watched(len(a_idx))
                r = search(
                    adapter, Xr[a_idx], goal=watch, method="beam", beam_width=beam_width,
                    **{budget_key: k, where: free_r[a_idx]},
                )
                _, g_att = adapter.evaluate(r.sequences.to(X.device), bound, a_idx)
                g_att = g_att.cpu()
                seen[rest[a_idx.cpu()]] += seen_a.cpu()
                bab = []
                for j, jr in enumerate(attack_rows):
                    i = int(rest[jr])
                    work[i] += int(r.evaluations[j])
                    g_best[i] = float(g_att[j])
                    if bool(r.success[j]) and _counterexample(g_att[j]):
                        status[i], how[i], edits[i] = "falsified", "attack", list(r.edits[j])
                    elif not seen[i].any():  # a NaN edit already rules out a proof
                        bab.append(jr)
                    else:
                        how[i] = "attack"
            if bab:
                sub_space = _Space.__new__(_Space)
                sub_space.__dict__.update(space.__dict__)
                sub_space.free = free_r
                st, ed, gl, gb, wk, sn = _branch_and_bound(
                    adapter, sub_space, problem, bound, Xr, k, torch.tensor(bab),
                    max_nodes=max_nodes, batch_size=batch_size, progress=progress,
                )
                gl, gb, wk, sn = gl.cpu(), gb.cpu(), wk.cpu(), sn.cpu()
                for jr in bab:
                    i = int(rest[jr])
                    status[i], how[i] = st[jr], "branch-and-bound"
                    edits[i] = ed.get(jr, [])
                    g_lower[i] = max(float(g_lower[i]), float(gl[jr]))
                    g_best[i] = min(float(g_best[i]), float(gb[jr]))
                    work[i] += int(wk[jr])
                    seen[i] += sn[jr]
    for i, (nan, inf) in enumerate(seen.tolist()):
        if (nan or inf) and status[i] != "falsified":
            status[i], g_lower[i] = "unknown", -float("inf")
            reasons[i] = _nonfinite_reason(nan, inf, k)
    warn_refused(reasons, ids=ids, outcome="they are not certified (status 'error' or 'unknown')")
    return CertificateResult(
        status=status,
        edits=edits,
        g_lower=g_lower,
        g_best=g_best,
        k=k,
        how=how,
        evaluations=work,
        ids=list(ids) if ids is not None else [],
        reasons=reasons,
        params={
            "goal": str(goal),
            "kind": kind,
            "max_enumerate": max_enumerate,
            "max_nodes": max_nodes,
            "output": adapter.output.name,
            "device": str(adapter.device),
            "seconds": time.perf_counter() - start,
        },
    )


def substitutions(
    adapter,
    X,
    *,
    k: int,
    goal=None,
    positions=None,
    max_enumerate: float = 2e4,
    max_nodes: int = 4096,
    batch_size: int = 64,
    beam_width: int = 8,
    attack: bool = True,
    progress: bool = False,
    ids=None,
) -> CertificateResult:
    """Certify or falsify, per sequence, that no ``k`` substitutions reach ``goal``.

    Parameters
    ----------
    adapter : SequenceModel
    X : torch.Tensor of shape (N, 4, L), or sequences the adapter can encode
    k : int
        Number of substitutions allowed.
    goal : Goal or str, optional
        Default :func:`probekit.goals.flip`.
    positions : bool mask (L,) or (N, L), list of positions or slice, optional
        Editable positions (N bases are never edited), as in
        :func:`probekit.search.min_substitutions`; a list names positions by index.
    max_enumerate : float
        Inputs with at most this many edit sets are decided by enumeration.
    max_nodes : int
        Branches that branch and bound may bound for each input; an input whose
        search needs more stays ``unknown``. The budget is each input's own, so a
        verdict does not depend on the other inputs of the call.
    batch_size : int
        Branches of one input bounded per round (best first), and branches bounded
        together.
    beam_width : int
        Width of the beam attack run before branch and bound.
    attack : bool
        Run the beam attack before branch and bound (which finds counterexamples too).
    progress : bool
    ids : list of str, optional

    Returns
    -------
    CertificateResult

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> substitutions(adapter, ["ACGTACGTAC"], k=0).status
    ['certified']
    """
    return _certify(
        adapter, X, k=k, goal=goal, kind="dna", positions=positions, max_enumerate=max_enumerate,
        max_nodes=max_nodes, batch_size=batch_size, beam_width=beam_width, attack=attack, progress=progress, ids=ids,
    )


def bit_flips(
    adapter,
    X,
    *,
    k: int,
    goal=None,
    features=None,
    max_enumerate: float = 2e4,
    max_nodes: int = 4096,
    batch_size: int = 64,
    beam_width: int = 8,
    attack: bool = True,
    progress: bool = False,
    ids=None,
) -> CertificateResult:
    """Certify or falsify, per input, that no ``k`` flips of binary features reach ``goal``.

    Parameters are those of :func:`substitutions`; ``features`` (a bool mask
    (F,) or (N, F), a list of indices or names, or a slice, as in
    :func:`probekit.search.bit_flips`) limits which binary features may flip.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 1.0, 1.0]])); _ = model.bias.fill_(-1.5)
    >>> adapter = FeatureModel(model, output=outputs.value(0), kinds="binary", device="cpu")
    >>> bit_flips(adapter, torch.tensor([[1.0, 1.0, 1.0]]), k=1, goal="below:0").status
    ['certified']
    """
    return _certify(
        adapter, X, k=k, goal=goal, kind="bits", positions=features, max_enumerate=max_enumerate,
        max_nodes=max_nodes, batch_size=batch_size, beam_width=beam_width, attack=attack, progress=progress, ids=ids,
    )


__all__ = ["substitutions", "bit_flips", "CertificateResult"]
