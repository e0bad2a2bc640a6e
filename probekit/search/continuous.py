"""Continuous searches over feature inputs: FGSM, PGD, minimal perturbations, random baselines.

All searches minimise the goal value ``g`` (success where ``g <= 0``) through the
adapter only (:meth:`~probekit.adapters.Adapter.gradient` and
:meth:`~probekit.adapters.Adapter.evaluate`), batched on ``adapter.device``.
Every iterate stays inside the eps-ball of the chosen norm *and* inside the
feature bounds of the adapter; frozen features never move; binary and integer
features are frozen unless ``relax_discrete=True``, in which case they are
relaxed during the search and every reported point is rounded and re-checked.

Inputs of any shape ``(N, ...)`` work (one-hot DNA is treated as continuous in
[0, 1]); features are flattened to ``(N, D)`` internally.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, goals, outputs
>>> from probekit.search.continuous import pgd
>>> model = torch.nn.Linear(3, 1)
>>> adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
>>> result = pgd(adapter, torch.zeros(2, 3), goal=goals.decrease(by=0.1), eps=1.0, norm="l2")
>>> result.x_adv.shape
torch.Size([2, 3])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .. import goals as _goals
from .._device import map_batches
from .._warnings import warn
from ..adapters import Adapter, input_gradient
from ..goals import BoundGoal
from ..results import BaselineResult, PerturbationResult
from . import _select
from .baseline import _skip_nonfinite, input_seeds

NORMS = ("linf", "l2", "l1")
DUAL_ORDER = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}
_BISECTION_ITERS = 50


# ---------------------------------------------------------------- geometry
def _check_norm(norm: str) -> str:
    norm = str(norm).lower().replace("-", "").replace("_", "")
    aliases = {"inf": "linf", "linf": "linf", "l2": "l2", "2": "l2", "l1": "l1", "1": "l1"}
    if norm not in aliases:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    return aliases[norm]


def vector_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Norm of each row of ``delta`` (N, ...) in ``"linf"``, ``"l2"`` or ``"l1"``: shape (N,).

    Examples
    --------
    >>> vector_norm(torch.tensor([[3.0, -4.0]]), "l2")
    tensor([5.])
    """
    flat = delta.reshape(delta.shape[0], math.prod(delta.shape[1:]))
    order = {"linf": float("inf"), "l2": 2.0, "l1": 1.0}[_check_norm(norm)]
    if flat.shape[1] == 0:
        return torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
    if order == float("inf"):  # two reductions without a temporary: several times faster than the inf-norm kernel
        return torch.maximum(flat.amax(dim=1), flat.amin(dim=1).neg())
    return torch.linalg.vector_norm(flat, ord=order, dim=1)


def project_l1_ball(z: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of ``z`` (N, D) onto the L1 ball of radius ``eps`` (N,).

    The sorting algorithm of Duchi, Shalev-Shwartz, Singer and Chandra (2008), batched.

    Examples
    --------
    >>> project_l1_ball(torch.tensor([[3.0, 1.0]]), torch.tensor([2.0]))
    tensor([[2., 0.]])
    """
    eps = torch.as_tensor(eps, dtype=z.dtype, device=z.device).expand(z.shape[0])
    a = z.abs()
    inside = a.sum(dim=1) <= eps
    u = a.sort(dim=1, descending=True).values
    css = u.cumsum(dim=1)
    k = torch.arange(1, z.shape[1] + 1, device=z.device, dtype=z.dtype)
    cond = u - (css - eps[:, None]) / k > 0
    rho = (cond * torch.arange(z.shape[1], device=z.device)).argmax(dim=1)  # last index where cond holds
    theta = (css.gather(1, rho[:, None])[:, 0] - eps) / (rho + 1).to(z.dtype)
    out = torch.sign(z) * (a - theta.clamp_min(0)[:, None]).clamp_min(0)
    return torch.where(inside[:, None], z, out)


def project(delta: torch.Tensor, eps, *, norm: str = "linf", lower=None, upper=None) -> torch.Tensor:
    """Project each row of ``delta`` (N, D) onto {||d|| <= eps} ∩ {lower <= d <= upper}.

    ``lower <= 0 <= upper`` (N, D) are the bounds of the *perturbation* (feature
    bounds minus the input; both 0 for a frozen feature); ``None`` means unbounded. The projection is the
    exact Euclidean one: a clamp for L-inf; for L2 and L1 the closed form
    (rescaling, Duchi's sorting algorithm) when it lies in the box, otherwise the
    KKT form ``clamp(z / (1 + lam))`` resp. ``clamp(soft_threshold(z, tau))`` with
    the multiplier found by bisection. A final rescaling towards 0 (which stays in
    the box, since the box contains 0) guarantees ``||d|| <= eps`` against rounding.

    Returns
    -------
    torch.Tensor of shape (N, D)

    Examples
    --------
    >>> d = torch.tensor([[3.0, 4.0]])
    >>> project(d, torch.tensor([1.0]), norm="l2", lower=-torch.ones(1, 2), upper=torch.ones(1, 2))
    tensor([[0.6000, 0.8000]])
    """
    norm = _check_norm(norm)
    eps = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device).expand(delta.shape[0]).clamp_min(0)
    if lower is None and upper is None and norm != "linf":  # the ball alone: no box to meet, no bisection
        if norm == "l2":
            length = vector_norm(delta, "l2")
            out = delta * torch.where(length > eps, eps / length.clamp_min(1e-30), torch.ones_like(length))[:, None]
        else:
            out = project_l1_ball(delta, eps)
        length = vector_norm(out, norm)
        return out * torch.where(length > eps, eps / length.clamp_min(1e-30), torch.ones_like(length))[:, None]
    lower = torch.full_like(delta, -math.inf) if lower is None else torch.as_tensor(lower).to(delta).expand_as(delta)
    upper = torch.full_like(delta, math.inf) if upper is None else torch.as_tensor(upper).to(delta).expand_as(delta)
    if norm == "linf":
        return torch.minimum(torch.maximum(delta, torch.maximum(lower, -eps[:, None])), torch.minimum(upper, eps[:, None]))
    boxed = torch.minimum(torch.maximum(delta, lower), upper)
    done = vector_norm(boxed, norm) <= eps
    if norm == "l2":
        length = vector_norm(delta, "l2")
        ball = delta * torch.where(length > eps, eps / length.clamp_min(1e-30), torch.ones_like(length))[:, None]
    else:
        ball = project_l1_ball(delta, eps)
    in_box = ((ball >= lower) & (ball <= upper)).all(dim=1)
    out = torch.where(done[:, None], boxed, ball)
    hard = ~done & ~in_box
    # on the CPU the rows that need the multiplier are gathered; elsewhere every row is solved and the hard
    # ones are picked, so that the projection reads nothing back from the device but its convergence checks
    gather = _cheap_sync(delta.device)
    if not gather or hard.any():
        z, lo, hi, e = (delta[hard], lower[hard], upper[hard], eps[hard]) if gather else (delta, lower, upper, eps)
        if norm == "l2":
            t = _l2_box_scale(z, lo, hi, e, check_every=1 if gather else 8)
            sol = torch.minimum(torch.maximum(t[:, None] * z, lo), hi)
        else:
            # ||clamp(soft(z, tau))||_1 falls with tau in [0, max|z|]
            a, b = torch.zeros_like(e), z.abs().amax(dim=1)
            for i in range(_BISECTION_ITERS):
                tau = 0.5 * (a + b)
                soft = torch.sign(z) * (z.abs() - tau[:, None]).clamp_min(0)
                big = vector_norm(torch.minimum(torch.maximum(soft, lo), hi), "l1") > e
                a_next, b_next = torch.where(big, tau, a), torch.where(big, b, tau)
                # in floating point the bracket stops moving well before the last iteration
                settled = i % 8 == 7 and torch.equal(a_next, a) and torch.equal(b_next, b)
                a, b = a_next, b_next
                if settled:
                    break
            soft = torch.sign(z) * (z.abs() - b[:, None]).clamp_min(0)
            sol = torch.minimum(torch.maximum(soft, lo), hi)
        if gather:
            out = out.clone()
            out[hard] = sol
        else:
            out = torch.where(hard[:, None], sol, out)
    length = vector_norm(out, norm)
    scale = torch.where(length > eps, eps / length.clamp_min(1e-30), torch.ones_like(length))
    return out * scale[:, None]


def _l2_box_scale(z: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: torch.Tensor, *,
                  check_every: int = 1) -> torch.Tensor:
    """The t (M,) in [0, 1] with ``||clamp(t z, lo, hi)||_2 = eps``, exactly, for rows where ``||clamp(z)|| > eps``.

    Coordinate i stops growing at t_i = limit_i / z_i (its bound in z_i's direction). With the set
    of coordinates stopped at some t held fixed, the squared norm is ``s^2 R + C`` (R: z^2 of the free
    coordinates, C: the squared limits of the stopped ones), whose root is the next t. From t = 1 this
    root lies below the solution, and from then on the roots rise towards it; each is exact once the
    stopped set is the solution's, which takes a few passes instead of a bisection's dozens. Once
    exact, a pass returns t unchanged, so checking for that only every ``check_every`` passes (fewer
    reads from the device) gives the same t.
    """
    limit = torch.where(z > 0, hi, lo)
    stop = torch.where(z != 0, limit / torch.where(z != 0, z, 1.0), math.inf)  # z_i = 0 never stops
    z2, limit2 = z.square(), torch.where(torch.isinf(stop), 0.0, limit.square())
    target = eps.square()
    t = torch.ones_like(eps)
    for i in range(_BISECTION_ITERS):
        stopped = stop <= t[:, None]
        free = torch.where(stopped, 0.0, z2).sum(dim=1)
        held = torch.where(stopped, limit2, 0.0).sum(dim=1)
        root = ((target - held).clamp_min(0) / free.clamp_min(1e-30)).sqrt().clamp(0, 1)
        if i == 0:
            t = root
            continue
        root = torch.maximum(root, t)  # rises in exact arithmetic; rounding must not make it cycle
        if i % check_every == 0 and torch.equal(root, t):
            break
        t = root
    return t


# ----------------------------------------------------------- search space
class _Space:
    """Flattened inputs and the per-coordinate box of allowed perturbations.

    ``lower`` and ``upper`` (N, D) bound ``delta`` (``lower <= 0 <= upper``, both 0
    where a feature is frozen). A *plain* space (every input finite and inside the
    feature bounds ``lo``, ``hi`` (D,), nothing frozen) builds them only when asked:
    there they are ``lo - x0`` and ``hi - x0``, and the L-inf searches use ``lo`` and
    ``hi`` directly.
    """

    def __init__(self, x0, lo, hi, discrete, shape, lower=None, upper=None):
        self.x0, self.lo, self.hi, self.discrete, self.shape = x0, lo, hi, discrete, shape  # x0 (N, D); lo, hi (D,)
        self.plain = lower is None
        self._lower, self._upper = lower, upper

    @property
    def lower(self) -> torch.Tensor:
        if self._lower is None:
            self._lower = torch.sub(self.lo, self.x0)
        return self._lower

    @property
    def upper(self) -> torch.Tensor:
        if self._upper is None:
            self._upper = torch.sub(self.hi, self.x0)
        return self._upper

    def unflat(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape((flat.shape[0],) + self.shape)


def _as_inputs(adapter, X) -> torch.Tensor:
    X = adapter.encode(X) if not isinstance(X, torch.Tensor) else X
    if not X.is_floating_point():
        X = X.float()
    return X.to(adapter.device)


@dataclass(frozen=True)
class _FeatureInfo:
    """What a search needs to know of the features: read-only, shared between calls on one adapter."""

    discrete: torch.Tensor  # bool (D,): binary and integer features
    lo: torch.Tensor  # (D,) lower bounds, float32 on the adapter's device
    hi: torch.Tensor  # (D,) upper bounds
    any_discrete: bool
    lo_max: float  # the largest lower bound and the smallest upper bound: inputs within [lo_max, hi_min]
    hi_min: float  # are inside every feature's bounds


def _feature_info(adapter, X: torch.Tensor) -> _FeatureInfo:
    """Which flattened features of ``X`` are discrete and their bounds; cached where the adapter caches."""
    compute = lambda: _compute_feature_info(adapter, X)  # noqa: E731
    cached = getattr(adapter, "_cached", None)
    if cached is None:
        return compute()
    return cached(("search_features", X.ndim, tuple(X.shape[1:])), compute)


def _compute_feature_info(adapter, X: torch.Tensor) -> _FeatureInfo:
    n_flat = X[0].numel() if X.shape[0] else math.prod(X.shape[1:])
    device = adapter.device
    discrete, lower, upper = None, None, None
    if X.ndim == 2 and hasattr(adapter, "kind_mask"):
        discrete = ~adapter.kind_mask(X.shape[1], "continuous")
    elif X.ndim == 2 and hasattr(adapter, "kinds"):
        discrete = torch.tensor([k != "continuous" for k in adapter.kinds(X.shape[1])], dtype=torch.bool)
    if X.ndim == 2 and hasattr(adapter, "bounds"):
        lower, upper = adapter.bounds(X.shape[1])
    elif hasattr(adapter, "alphabet"):  # one-hot sequences, treated as continuous in [0, 1]
        lower, upper = torch.zeros(n_flat), torch.ones(n_flat)
    if lower is None:
        lower, upper = torch.full((n_flat,), -math.inf), torch.full((n_flat,), math.inf)
    discrete = torch.zeros(n_flat, dtype=torch.bool) if discrete is None else discrete
    lo, hi = lower.reshape(-1).float().to(device), upper.reshape(-1).float().to(device)
    extremes = torch.stack([lo.max(), hi.min()]).tolist() if n_flat else [-math.inf, math.inf]
    return _FeatureInfo(discrete.to(device), lo, hi, bool(discrete.any()), *extremes)


def _mask_rows(mask, X: torch.Tensor) -> torch.Tensor:
    """``mask`` as (N, D) bool on the inputs' device (True = may change)."""
    n, d = X.shape[0], X[0].numel()
    if mask is None:
        return torch.ones(n, d, dtype=torch.bool, device=X.device)
    mask = torch.as_tensor(mask, device=X.device).bool()
    if mask.numel() == d:
        return mask.reshape(1, d).expand(n, d)
    if mask.numel() == n * d:
        return mask.reshape(n, d)
    raise ValueError(f"mask must have the shape of one input {tuple(X.shape[1:])} or of all inputs {tuple(X.shape)}; got {tuple(mask.shape)}")


def _space(adapter, X: torch.Tensor, mask, relax_discrete: bool) -> _Space:
    info = _feature_info(adapter, X)
    lo, hi, discrete = info.lo, info.hi, info.discrete
    n, d = X.shape[0], X[0].numel()
    x0 = X.reshape(n, d)
    free = None if mask is None else _mask_rows(mask, X)
    if not relax_discrete and info.any_discrete:
        free = (torch.ones(n, d, dtype=torch.bool, device=X.device) if free is None else free) & ~discrete
    shape = tuple(X.shape[1:])
    # the smallest and largest input values tell whether any is out of bounds or not finite (min and max
    # propagate NaN): over all features at once when that settles it (one pass), else feature by feature
    suspect = False
    if x0.numel() > 0:
        low, high = torch.stack(torch.aminmax(x0)).tolist()
        if not (math.isfinite(low) and math.isfinite(high) and low >= info.lo_max and high <= info.hi_min):
            low, high = x0.amin(dim=0), x0.amax(dim=0)  # several times faster than aminmax over a dimension
            suspect = not bool(((low >= lo) & (high <= hi) & torch.isfinite(low) & torch.isfinite(high)).all())
    if free is None and not suspect:
        return _Space(x0, lo, hi, discrete, shape)
    lower, upper = torch.sub(lo, x0), torch.sub(hi, x0)
    outside = (x0 < lo) | (x0 > hi) if suspect else None
    if suspect and outside.any():
        i, j = (int(v) for v in torch.nonzero(outside)[0])
        warn(
            f"{int(outside.any(dim=1).sum())} input(s) lie outside the feature bounds (first: input {i}, feature {j}); "
            "their out-of-bounds values are kept and never pushed further out"
        )
    broken = ~torch.isfinite(x0).all(dim=1) if suspect else None
    if suspect and broken.any():
        free = torch.ones(n, d, dtype=torch.bool, device=X.device) if free is None else free
        warn(
            f"input(s) {torch.nonzero(broken)[:, 0].tolist()[:10]} have non-finite features; they are left unchanged "
            "and reported as not reaching the goal, and the other inputs go on"
        )
        free = free & ~broken[:, None]
    lower.clamp_(max=0)
    upper.clamp_(min=0)
    if free is not None:
        lower.masked_fill_(~free, 0.0)
        upper.masked_fill_(~free, 0.0)
        discrete = discrete & free.any(dim=0)
    return _Space(x0, lo, hi, discrete, shape, lower, upper)


def _bind(adapter, goal, X: torch.Tensor) -> BoundGoal:
    if isinstance(goal, BoundGoal):
        return goal.to(adapter.device)
    return adapter.bind(_goals.parse(goal), X)


def _eps_rows(eps, n: int, device) -> torch.Tensor:
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):  # checked without a tensor (and a sync)
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError("eps must be finite and non-negative")
        return torch.full((n,), float(eps), dtype=torch.float32, device=device)
    eps = torch.as_tensor(eps, dtype=torch.float32, device=device).reshape(-1)
    if eps.numel() == 1:
        eps = eps.expand(n)
    if eps.numel() != n:
        raise ValueError(f"eps must be a number or one value per input ({n}); got {eps.numel()} values")
    if (eps < 0).any() or not torch.isfinite(eps).all():
        raise ValueError("eps must be finite and non-negative")
    return eps.clone()


def _round_discrete(delta, x0, discrete, eps, norm, lower, upper) -> torch.Tensor:
    """Round relaxed discrete features to integers, keeping norm and bounds.

    Each discrete coordinate is rounded to the nearest integer; where that leaves
    the box, or where the rounded row exceeds ``eps``, it is truncated towards the
    input instead (which never increases ``|delta|``).
    """
    target = torch.round(x0 + delta) - x0
    toward = torch.trunc(delta)
    ok = (target >= lower) & (target <= upper)
    if norm == "linf":
        ok = ok & (target.abs() <= eps[:, None])
    rounded = torch.where(discrete & ok, target, torch.where(discrete, toward, delta))
    too_big = vector_norm(rounded, norm) > eps * (1 + 1e-6) + 1e-7
    truncated = torch.where(discrete, toward, delta)
    return torch.where(too_big[:, None], truncated, rounded)


# ---------------------------------------------------------------- steps
def _steepest(grad, delta, lower, upper, norm, l1_fraction):
    """Unit steepest-descent direction of ``g`` in ``norm`` (the step is ``alpha`` times it)."""
    if norm == "linf":
        return -torch.sign(grad)
    # coordinates pinned at a bound in the descent direction cannot move
    blocked = ((delta <= lower) & (grad > 0)) | ((delta >= upper) & (grad < 0)) | ((lower == 0) & (upper == 0))
    grad = torch.where(blocked, torch.zeros_like(grad), grad)
    if norm == "l2":
        return -grad / vector_norm(grad, "l2").clamp_min(1e-30)[:, None]
    k = max(1, int(math.ceil(l1_fraction * grad.shape[1])))
    top = grad.abs().topk(k, dim=1)
    # coordinates tied with the k-th largest |grad| all move (as in SLIDE's quantile rule)
    chosen = (grad.abs() >= top.values[:, -1:]) & (grad != 0)
    # weighted by |grad| (unit L1 length): with the L1 projection's soft threshold the mass then
    # gathers on the steepest coordinates instead of staying spread over the chosen ones
    direction = torch.where(chosen, -grad, torch.zeros_like(grad))
    return direction / vector_norm(direction, "l1").clamp_min(1e-30)[:, None]


def _random_in_ball(n, d, eps, norm, generator, device) -> torch.Tensor:
    """Uniform draws in the ``norm`` ball of radius ``eps`` (n,), drawn on the CPU generator for device-free seeds."""
    eps = eps.cpu()
    if norm == "linf":
        out = (torch.rand(n, d, generator=generator, dtype=torch.float32) * 2 - 1) * eps[:, None]
    elif norm == "l2":
        g = torch.randn(n, d, generator=generator, dtype=torch.float32)
        r = torch.rand(n, generator=generator, dtype=torch.float32) ** (1.0 / max(d, 1))
        out = g / vector_norm(g, "l2").clamp_min(1e-30)[:, None] * (r * eps)[:, None]
    else:
        e = -torch.log(torch.rand(n, d + 1, generator=generator, dtype=torch.float32).clamp_min(1e-30))
        signs = torch.randint(0, 2, (n, d), generator=generator) * 2 - 1
        out = signs * e[:, :d] / e.sum(dim=1, keepdim=True) * eps[:, None]
    return out.to(device)


def _better(g_new, n_new, g_old, n_old, p_new=None, p_old=None, rtol: float = 0.0):
    """Where a candidate beats the kept one: success first, then a smaller norm, else a lower progress ``p``.

    ``p`` is the goal's progress (``g`` up to a constant per input; default ``g``),
    which keeps the score's precision where ``g`` rounds (a far threshold). Norms
    and progress within ``rtol`` (:func:`~probekit.search._select.within`) tie,
    and a tie keeps the old one, so the kept point does not hang on rounding.
    """
    p_new = g_new if p_new is None else p_new
    p_old = g_old if p_old is None else p_old
    fail_old = g_old > 0
    smaller = (n_new < n_old) & ~_select.within(n_new, n_old, rtol)
    lower = (p_new < p_old) & ~_select.within(p_new, p_old, rtol)
    return torch.where(g_new <= 0, fail_old | smaller, fail_old & lower)


@dataclass
class _Run:
    delta: torch.Tensor  # (M, D) best perturbation per row
    g: torch.Tensor  # (M,)
    norm: torch.Tensor  # (M,)
    evaluations: torch.Tensor  # (N,) model evaluations per input
    score: torch.Tensor | None = None  # (M,) score at the best perturbation
    score0: torch.Tensor | None = None  # (M,) score at the unperturbed input, when it was evaluated
    x: torch.Tensor | None = None  # (M, D) the evaluated point of each best perturbation
    bound: BoundGoal | None = None  # the goal, bound during the first pass when it was not bound before
    p: torch.Tensor | None = None  # (M,) the goal's progress at the best perturbation


def _join_bound(parts: list[BoundGoal]) -> BoundGoal:
    """One bound goal from the bound goals of consecutive batches of inputs."""
    if len(parts) == 1:
        return parts[0]
    cat = lambda name: None if getattr(parts[0], name) is None else torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    first = parts[0]
    return BoundGoal(first.goal, first.output, cat("reference"), cat("ref_class"), cat("sign"), first.mode)


def _own_gradient(adapter) -> bool:
    """Whether ``adapter`` computes input gradients its own way (e.g. a smoothed model, whose forward has none)."""
    return type(adapter).gradient is not Adapter.gradient


def _probe(adapter, space, bound, x, rows, *, grad: bool, bind=None, skipped=None):
    """Scores, goal values ``g``, progress ``p`` (M,) and, with ``grad``, ``dg/dx`` (M, D) of the flat candidates ``x`` (M, D).

    One pass through :meth:`~probekit.adapters.Adapter.forward` per batch of the
    adapter (halved on out-of-memory), with no stacking of values and gradients.
    ``p`` is the goal's progress (:meth:`~probekit.goals.BoundGoal.progress`),
    ``g`` up to a constant per input, and the gradient is its gradient. Where
    the score, ``g`` or ``p`` is not finite, ``g`` and ``p`` are +inf (the
    candidate never succeeds and is never kept), and ``skipped``
    (a :class:`~probekit.search._select.Skipped`) counts it.
    With ``bind`` (an unbound goal), ``x`` are the unedited inputs themselves and
    the goal is bound to their outputs in the same pass; the bound goal is
    returned as a fifth value.
    """
    m = x.shape[0]
    parts = []
    bound_parts = {}
    resolve = getattr(adapter, "resolve_batch_size", None)  # batch_size="auto" probes once, on first use
    if resolve is not None and getattr(adapter, "_auto_batch", True):
        resolve(space.unflat(x))

    def run(start: int, stop: int) -> torch.Tensor:
        xb = space.unflat(x[start:stop])
        if grad and _own_gradient(adapter):
            scores, goal_values = [], []

            def goal_progress(y, r):
                g, p = bound.with_progress(y, r)
                scores.append(adapter.output(y).detach().float())
                goal_values.append(g.detach().float())
                return p

            p, dg = adapter.gradient(xb, goal_progress, rows=rows[start:stop])
            parts.append((torch.cat(scores), torch.cat(goal_values), p.detach().float(),
                          dg.reshape(stop - start, -1).contiguous()))
            return p
        if grad:
            xb = xb.detach().requires_grad_(True)
        y = adapter.forward(xb)
        if bind is not None:
            bound_parts[start] = bind.bind(adapter.output, y)
            g, p = bound_parts[start].with_progress(y)
        else:
            g, p = bound.with_progress(y, rows[start:stop])
        # contiguous: a gradient may come back as an expanded view (of a sum, say), and PGD steps write into it
        dg = input_gradient(p.sum(), xb).reshape(stop - start, -1).contiguous() if grad else None
        parts.append((adapter.output(y).detach().float(), g.detach().float(), p.detach().float(), dg))
        return p

    with adapter.session(), (torch.enable_grad() if grad else torch.no_grad()):
        map_batches(run, m, getattr(adapter, "batch_size", m) or m, on_backoff=getattr(adapter, "_on_backoff", None))
    if not parts:
        empty = torch.zeros(0, device=x.device, dtype=torch.float32)
        scores, g, p, dg = empty, empty, empty, torch.zeros_like(x) if grad else None
    elif len(parts) == 1:
        scores, g, p, dg = parts[0]
    else:
        scores, g, p, dg = zip(*parts)
        scores, g, p, dg = torch.cat(scores), torch.cat(g), torch.cat(p), torch.cat(dg) if grad else None
    bad = _select.nonfinite(scores, g, p)
    if skipped is not None:
        skipped.add(bad)
    g, p = g.masked_fill(bad, math.inf), p.masked_fill(bad, math.inf)
    out = scores, g, p, dg
    if bind is None:
        return out
    if not bound_parts:
        return (*out, adapter.bind(bind, space.unflat(x)))
    return (*out, _join_bound([bound_parts[start] for start in sorted(bound_parts)]))


def _defined_rows(bound: BoundGoal, device):
    """Bool (N,): the inputs whose own score is finite; False (nothing to mask) when all are."""
    finite = torch.isfinite(bound.reference).to(device)
    return False if bool(finite.all()) else finite


def _cheap_sync(device) -> bool:
    """Whether reading a flag back to Python is free (the CPU); elsewhere PGD reads one only every few steps."""
    return device.type == "cpu"


def _pgd_core(adapter, space, bound, rows, eps, *, norm, steps, step_size, restarts, random_start, early_stop,
              l1_fraction, generator, progress=False, skipped=None) -> _Run:
    """PGD on the inputs ``rows`` (M,) of ``space`` with per-row ``eps`` (M,); best of restarts per row.

    ``bound`` is a bound goal, or an unbound :class:`~probekit.goals.Goal` when
    the run starts at the unedited inputs (all of them, one restart, no random
    start): the goal is then bound to the outputs of the first gradient pass,
    which saves the forward pass that binding would take.

    The iterates are the model's inputs themselves, and the copies (restarts
    times rows) still running are held as compact tensors, shrunk only when some
    finish (early stop), so a step touches each (K, D) tensor a handful of
    times: for L-inf the step and the projection are a ``sign``, one ``addcmul``
    into the gradient's buffer and one ``clamp`` to the box ``x0 + [max(lower,
    -eps), min(upper, eps)]``, which is the exact projection (from the inputs of a
    plain space the first step, no longer than eps, is clamped to the feature
    bounds alone, and the box is built before the second); the iterate's buffer
    then becomes the kept best, and only the copies that did not improve are
    copied back into it.
    The last iterate is only evaluated (no gradient). Norms are computed only
    where two successes are compared; the kept norms are recomputed from the
    kept perturbations at the end. Failures are compared on the goal's progress
    (the score with the goal's sign), not on ``g``, which a far threshold rounds
    to one number. Along one run a strictly better iterate replaces the kept
    one (near convergence a step gains less than any tie tolerance); between
    restarts, values within the tie tolerance go to the first restart.
    Iterates whose model outputs are not finite are never kept, and the inputs
    whose own score is not finite never succeed.
    """
    device = adapter.device
    everyone = rows is None  # all inputs once: the space's tensors serve as they are
    rows = torch.arange(space.x0.shape[0], device=device) if everyone else rows
    m, d = rows.shape[0], space.x0.shape[1]
    k = m * restarts
    rr = rows.repeat(restarts) if restarts > 1 else rows  # restart-major copies of the rows
    slot = torch.arange(m, device=device)
    slot = slot.repeat(restarts) if restarts > 1 else slot
    e = eps.repeat(restarts) if restarts > 1 else eps
    if step_size is None:
        alpha = 2.5 * e / max(steps, 1)
    else:
        alpha = _eps_rows(step_size, m, device)
        alpha = alpha.repeat(restarts) if restarts > 1 else alpha
    zero_start = restarts == 1 and not random_start
    discrete = bool(space.discrete.any())
    fast = norm == "linf" and not discrete
    # L-inf from the unedited inputs of a plain space: the boxes come from the feature bounds, and the
    # (N, D) bounds of delta are never built
    lazy_box = fast and space.plain and everyone and zero_start
    if lazy_box:
        x0, lower, upper = space.x0, None, None
    elif everyone and restarts == 1:
        x0, lower, upper = space.x0, space.lower, space.upper
    else:
        x0, lower, upper = space.x0[rr], space.lower[rr], space.upper[rr]
    x = x0  # the zero start; steps never write into this tensor
    if not zero_start:
        starts = torch.arange(restarts, device=device).repeat_interleave(m)
        rand = (starts > 0) | bool(random_start)
        delta = torch.zeros_like(x0)
        draw = _random_in_ball(int(rand.sum()), d, e[rand], norm, generator, device)
        delta[rand] = project(draw, e[rand], norm=norm, lower=lower[rand], upper=upper[rand]).to(delta.dtype)
        x = x0 + delta
    bind = None
    if not isinstance(bound, BoundGoal):
        if not (everyone and zero_start):
            raise ValueError("an unbound goal needs a run from the unedited inputs")
        bind, bound = bound, None
    # the copies still running, compact; `pos` says which of the k copies each one is
    per_copy = {"dtype": torch.float32, "device": device}  # goal values, norms and scores are float32 throughout
    st = {"pos": torch.arange(k, device=device), "rows": rr, "slot": slot, "x0": x0, "e": e, "alpha": alpha[:, None],
          "x": x, "best": x, "best_g": torch.full((k,), math.inf, **per_copy),
          "best_p": torch.full((k,), math.inf, **per_copy),
          "best_n": torch.full((k,), math.inf, **per_copy), "best_s": torch.full((k,), math.nan, **per_copy),
          "evals": torch.zeros(k, **per_copy)}
    if lazy_box:  # a first step no longer than eps cannot leave the ball: the feature bounds are its box
        st["alpha0"] = torch.minimum(alpha, e)[:, None]
    elif norm == "linf":
        st["lo"] = torch.maximum(lower, -e[:, None]).add_(x0)
        st["hi"] = torch.minimum(upper, e[:, None]).add_(x0)
    if not fast:
        st["lower"], st["upper"] = lower, upper
    # whether any bound is finite (decided once): without one, L2 and L1 projections never need a bisection
    boxed = not fast and bool(torch.isfinite(lower).any() | torch.isfinite(upper).any())
    full = {}  # the kept best of copies that have left the running set, filled on the first compaction
    hits = torch.zeros(m, device=device, dtype=torch.float32)  # successes per row (early stop)
    score0 = None
    defined = None if bound is None else _defined_rows(bound, device)
    rtol = _select.tie_rtol(getattr(adapter, "dtype", None))
    cheap_sync = _cheap_sync(device)
    seen_success = False
    per_step = 2.0 if discrete else 1.0  # evaluations per step: the iterate, and its rounded point

    def write_back(which):
        """Keep the results of the running copies at indices ``which`` in ``full``."""
        pos = st["pos"].index_select(0, which)
        for name in ("best", "best_g", "best_p", "best_n", "best_s", "evals"):
            if name not in full:
                full[name] = torch.empty((k,) + st[name].shape[1:], dtype=st[name].dtype, device=device)
            full[name].index_copy_(0, pos, st[name].index_select(0, which))

    iterator = range(steps + 1)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"pgd ({norm})")
    for t in iterator:
        x, x0a, ra = st["x"], st["x0"], st["rows"]
        live = None if not early_stop or cheap_sync else hits[st["slot"]] == 0
        if bind is not None:
            scores, g, p, grad, bound = _probe(adapter, space, None, x, ra, grad=t < steps, bind=bind, skipped=skipped)
            bind = None
        else:
            scores, g, p, grad = _probe(adapter, space, bound, x, ra, grad=t < steps, skipped=skipped)
        if defined is None:
            defined = _defined_rows(bound, device)
        if live is None:
            st["evals"] += per_step
        else:  # copies whose row has succeeded are still in the batch but no longer count
            st["evals"] += live * per_step
        if t == 0 and not random_start:
            score0 = scores[:m]
        candidate = x
        if discrete:
            rounded = _round_discrete(x - x0a, x0a, space.discrete, st["e"], norm, st["lower"], st["upper"])
            candidate = x0a + rounded
            scores, g, p, _ = _probe(adapter, space, bound, candidate, ra, grad=False, skipped=skipped)
        if defined is not False:
            undefined = ~defined[ra]
            g, p = g.masked_fill(undefined, math.inf), p.masked_fill(undefined, math.inf)
        ok = g <= 0
        need_norm = not early_stop and (not cheap_sync or seen_success or bool(ok.any()))
        seen_success = seen_success or need_norm
        n_new = vector_norm(candidate - x0a, norm).float() if need_norm else st["best_n"]
        if t == 0:  # nothing kept yet (every kept g is inf): any finite g is better, and the kept g becomes g
            better = g < math.inf
            st["best_g"], st["best_p"] = g, p
        else:
            # one run's iterates: strictly better replaces (its last steps gain less than any tie tolerance)
            better = _better(g, n_new, st["best_g"], st["best_n"], p, st["best_p"])
            if live is not None:
                better = better & live
            st["best_g"] = torch.where(better, g, st["best_g"])
            st["best_p"] = torch.where(better, p, st["best_p"])
        if need_norm:
            st["best_n"] = torch.where(better, n_new, st["best_n"])
        st["best_s"] = torch.where(better, scores, st["best_s"])
        last = t == steps
        new = None
        if not last:  # the next iterate, computed before the current one may become the kept best
            if norm == "linf":
                rate = st["alpha"]
                if "lo" in st:
                    lo, hi = st["lo"], st["hi"]
                elif t == 0:  # the lazy box: a first step no longer than eps stays in the ball
                    lo, hi, rate = space.lo, space.hi, st["alpha0"]
                else:  # the box of the ball and the bounds, for the steps after the first
                    lo = st["lo"] = torch.sub(st["x0"], st["e"][:, None]).clamp_(min=space.lo)
                    hi = st["hi"] = torch.add(st["x0"], st["e"][:, None]).clamp_(max=space.hi)
                # the step goes into the gradient's buffer, which nothing else holds, when it has the step's
                # dtype (a gradient in another dtype than the inputs would round the iterate)
                out = grad if grad.dtype == torch.promote_types(x.dtype, rate.dtype) else None
                # a NaN gradient (of an iterate the model gives NaN) must not make the iterate NaN
                new = torch.addcmul(x, rate, grad.nan_to_num_(nan=0.0).sign_(), value=-1.0, out=out).clamp_(lo, hi)
            else:
                delta = x - x0a
                step = _steepest(torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0), delta, st["lower"],
                                 st["upper"], norm, l1_fraction)
                lo, hi = (st["lower"], st["upper"]) if boxed else (None, None)
                new = project(delta + st["alpha"] * step, st["e"], norm=norm, lower=lo, upper=hi).add_(x0a)
        kept = st["best"]
        if kept is candidate:
            pass  # the first iterate, kept as it is
        elif candidate is not x0a:
            # the candidate's buffer (the current iterate, or its rounded point) becomes the kept best: only
            # the copies that did not improve are copied back into it
            if not cheap_sync:
                torch.where(better[:, None], candidate, kept, out=candidate)
            elif not bool(better.all()):
                worse = torch.nonzero(~better)[:, 0]
                candidate.index_copy_(0, worse, kept.index_select(0, worse))
            st["best"] = candidate
        else:
            st["best"] = torch.where(better[:, None], candidate, kept)
        if new is not None:
            st["x"] = new
        if last:
            break
        if early_stop:
            hits.index_add_(0, st["slot"], ok.float())
            if cheap_sync or t % 8 == 7:
                keep = hits[st["slot"]] == 0
                if not bool(keep.all()):
                    # one read of the mask's indices; every tensor is then gathered without another
                    done, kept_rows = torch.nonzero(~keep)[:, 0], torch.nonzero(keep)[:, 0]
                    write_back(done)
                    st = {name: value.index_select(0, kept_rows) for name, value in st.items()}
                    if st["pos"].numel() == 0:
                        break
    if full:
        write_back(torch.arange(st["pos"].shape[0], device=device))
    else:
        full = st
    best, best_g, best_p, best_s = full["best"], full["best_g"], full["best_p"], full["best_s"]
    evaluations = torch.zeros(space.x0.shape[0], device=device, dtype=torch.float32).index_add_(0, rr, full["evals"])
    # the perturbations of the kept points, exactly inside the ball and the bounds (the points were
    # computed in input space, where rounding may leave them a last bit outside); non-finite inputs never move
    scratch = st.get("lo")  # the box is no longer needed: its buffer takes the perturbations
    scratch = scratch if scratch is not None and scratch.shape == best.shape else None
    delta = torch.sub(best, x0, out=scratch)
    if lower is None:
        # every kept point is an input or was clamped into the feature bounds, so delta lies within them;
        # only a NaN the model ignored could slip through
        length = vector_norm(delta, norm)
        if not _cheap_sync(device) or not bool(torch.isfinite(length).all()):
            delta.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            length = vector_norm(delta, norm)
    else:
        delta.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        torch.minimum(torch.maximum(delta, lower, out=delta), upper, out=delta)
        length = vector_norm(delta, norm)
    over = length > e
    if not _cheap_sync(device) or bool(over.any()):
        if norm == "linf":
            # minimum and maximum: several times faster than clamp_ with per-row bounds
            torch.minimum(torch.maximum(delta, e.neg()[:, None], out=delta), e[:, None], out=delta)
        else:
            delta = delta * torch.where(over, e / length.clamp_min(1e-30), torch.ones_like(length))[:, None]
        length = torch.minimum(length, e) if norm == "linf" else vector_norm(delta, norm)
    best_n = torch.where(best_g < math.inf, length.float(), torch.full_like(best_g, math.inf))
    if restarts == 1:
        return _Run(delta, best_g, best_n, evaluations, best_s, score0, best, bound, best_p)
    # best of the restarts of each row
    out, out_x = delta[:m].clone(), best[:m].clone()
    out_g, out_p, out_n, out_s = best_g[:m].clone(), best_p[:m].clone(), best_n[:m].clone(), best_s[:m].clone()
    for r in range(1, restarts):
        part = slice(r * m, (r + 1) * m)
        better = _better(best_g[part], best_n[part], out_g, out_n, best_p[part], out_p, rtol)
        out[better], out_x[better] = delta[part][better], best[part][better]
        out_g[better], out_n[better], out_s[better] = best_g[part][better], best_n[part][better], best_s[part][better]
        out_p[better] = best_p[part][better]
    return _Run(out, out_g, out_n, evaluations, out_s, score0, out_x, bound, out_p)


def _result(adapter, space, bound, X, delta, *, norm, ids, params, start, evaluations, run=None) -> PerturbationResult:
    """The result for the perturbations ``delta`` (N, D); scores a ``run`` already has are not evaluated again."""
    x_adv = run.x if run is not None and run.x is not None else space.x0 + delta
    if run is not None and run.score0 is not None:
        before = run.score0
    else:
        before, _ = adapter.evaluate(X, bound)
        evaluations = evaluations + 1
    reuse = run is not None and run.score is not None and bool((run.g < math.inf).all())
    if reuse:
        after, g = run.score, run.g
    else:
        after, g = adapter.evaluate(space.unflat(x_adv), bound)
        evaluations = evaluations + 1
    names = []
    if X.ndim == 2 and hasattr(adapter, "names"):
        names = list(adapter.names(X.shape[1]))
    params = {**params, "norm": norm, "device": str(adapter.device), "seconds": time.perf_counter() - start,
              "evaluations": evaluations.cpu()}
    # a non-finite output never counts as reaching the goal, nor does any point of an input whose own score is not finite
    success = ~_select.nonfinite(after, g) & (g <= 0) & torch.isfinite(bound.reference).to(g.device)
    return PerturbationResult(
        x_adv=space.unflat(x_adv), delta=space.unflat(delta), norm=run.norm if reuse else vector_norm(delta, norm),
        score_before=before, score_after=after, success=success, ids=list(ids or []), feature_names=names,
        params=params,
    )


# ----------------------------------------------------------------- public
def pgd(
    adapter,
    X,
    *,
    goal=None,
    eps,
    norm: str = "linf",
    steps: int = 40,
    step_size=None,
    restarts: int = 1,
    random_start: bool = False,
    mask=None,
    seed: int = 0,
    early_stop: bool = True,
    relax_discrete: bool = False,
    l1_fraction: float = 0.01,
    ids=None,
    progress: bool = False,
) -> PerturbationResult:
    """Projected gradient descent on the goal value ``g`` inside an eps-ball and the feature bounds.

    Steps are true steepest-descent steps for the norm: ``sign(grad)`` for L-inf,
    ``grad / ||grad||_2`` for L2, and sparse coordinate steps for L1 (the top
    ``l1_fraction`` of coordinates by ``|grad|`` move, as in sparse L1 descent).
    After each step the perturbation is projected exactly onto the ball
    intersected with the feature bounds (see :func:`project`). The best iterate
    per input is kept (among successes the smallest norm, otherwise the lowest
    goal progress: the score with the goal's sign, which a far threshold does not
    round away; between restarts, values within ``1e-5`` relative go to the
    first), and an input leaves the batch as soon as its goal holds
    (``early_stop``). Iterates whose model output is NaN or infinite are
    never kept and never succeed (a ``ProbekitWarning`` counts them).

    Parameters
    ----------
    adapter : FeatureModel or any adapter over float tensors
    X : torch.Tensor of shape (N, F) or (N, ...)
    goal : Goal, str or BoundGoal, optional
        What to reach (default :func:`probekit.goals.flip`).
    eps : float or torch.Tensor of shape (N,)
        Radius of the ball, one for all inputs or one per input.
    norm : {"linf", "l2", "l1"}
    steps : int
        Gradient steps per restart.
    step_size : float or torch.Tensor of shape (N,), optional
        Default ``2.5 * eps / steps``.
    restarts : int
        Independent runs per input, all in one batch; restarts after the first
        start at a random point of the ball.
    random_start : bool
        Start the first restart at a random point too.
    mask : torch.Tensor of bool, shape (F,) or (N, F), optional
        True where a feature may change.
    seed : int
        Seeds the random starts.
    early_stop : bool
        Stop an input once its goal holds.
    relax_discrete : bool
        Move binary and integer features as if continuous, then round them (and
        re-check norm and bounds) in every evaluated and reported point; by
        default they are frozen.
    l1_fraction : float
        Fraction of coordinates moved per L1 step (at least one), each by a share
        proportional to its ``|grad|``; ``0`` is pure steepest coordinate descent.
        The default (the top 1 %, as in SLIDE) moves faster in high dimension.
    ids : list of str, optional
    progress : bool
        Show a progress bar over steps.

    Returns
    -------
    PerturbationResult

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, goals, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> r = pgd(adapter, torch.zeros(1, 2), goal=goals.decrease(by=100.0), eps=0.5, norm="linf", steps=10)
    >>> float(r.norm[0])
    0.5
    """
    return _pgd(adapter, X, goal=goal, eps=eps, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
                random_start=random_start, mask=mask, seed=seed, early_stop=early_stop, relax_discrete=relax_discrete,
                l1_fraction=l1_fraction, ids=ids, progress=progress, method="pgd")


def _pgd(adapter, X, *, goal, eps, norm, steps, step_size, restarts, random_start, mask, seed, early_stop,
         relax_discrete, l1_fraction, ids, progress, method) -> PerturbationResult:
    start = time.perf_counter()
    norm = _check_norm(norm)
    if steps < 0 or restarts < 1:
        raise ValueError("steps must be >= 0 and restarts >= 1")
    with adapter.session():  # one move of the model for the search and the result's scores
        return _pgd_in_session(adapter, X, start, goal=goal, eps=eps, norm=norm, steps=steps, step_size=step_size,
                               restarts=restarts, random_start=random_start, mask=mask, seed=seed,
                               early_stop=early_stop, relax_discrete=relax_discrete, l1_fraction=l1_fraction,
                               ids=ids, progress=progress, method=method)


def _pgd_in_session(adapter, X, start, *, goal, eps, norm, steps, step_size, restarts, random_start, mask, seed, early_stop,
                    relax_discrete, l1_fraction, ids, progress, method) -> PerturbationResult:
    X = _as_inputs(adapter, X)
    space = _space(adapter, X, mask, relax_discrete)
    if restarts == 1 and not random_start and not isinstance(goal, BoundGoal) and not _own_gradient(adapter):
        bound = _goals.parse(goal)  # bound to the outputs of the first gradient pass, which starts at X
    else:
        bound = _bind(adapter, goal, X)
    n = X.shape[0]
    eps_rows = _eps_rows(eps, n, adapter.device)
    # random starts only: a run from the inputs draws nothing
    generator = torch.Generator().manual_seed(seed) if restarts > 1 or random_start else None
    skipped = _select.Skipped()
    run = _pgd_core(adapter, space, bound, None, eps_rows, norm=norm, steps=steps, step_size=step_size,
                    restarts=restarts, random_start=random_start, early_stop=early_stop, l1_fraction=l1_fraction,
                    generator=generator, progress=progress, skipped=skipped)
    bound = run.bound or bound
    skipped.warn(stacklevel=4)
    _select.warn_inputs(~torch.isfinite(bound.reference), "they are reported as not reaching the goal", stacklevel=4)
    params = {"method": method, "goal": str(bound.goal), "eps": eps_rows.cpu(), "steps": steps, "step_size": step_size,
              "restarts": restarts, "random_start": random_start, "seed": seed, "early_stop": early_stop,
              "relax_discrete": relax_discrete}
    return _result(adapter, space, bound, X, run.delta, norm=norm, ids=ids, params=params, start=start,
                   evaluations=run.evaluations, run=run)


def fgsm(adapter, X, *, goal=None, eps, norm: str = "linf", mask=None, relax_discrete: bool = False, ids=None) -> PerturbationResult:
    """One steepest-descent step of size ``eps`` (fast gradient sign method and its L2 / L1 forms).

    The step is projected onto the ball and the feature bounds like :func:`pgd`;
    as everywhere, the better of the input and the stepped point is reported.

    Parameters
    ----------
    adapter : FeatureModel or any adapter over float tensors
    X : torch.Tensor of shape (N, F) or (N, ...)
    goal : Goal, str or BoundGoal, optional
    eps : float or torch.Tensor of shape (N,)
    norm : {"linf", "l2", "l1"}
    mask : torch.Tensor of bool, shape (F,) or (N, F), optional
    relax_discrete : bool

    Returns
    -------
    PerturbationResult

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, goals, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> fgsm(adapter, torch.zeros(1, 2), goal=goals.decrease(by=100.0), eps=0.1).norm
    tensor([0.1000])
    """
    return _pgd(adapter, X, goal=goal, eps=eps, norm=norm, steps=1, step_size=eps, restarts=1, random_start=False,
                mask=mask, seed=0, early_stop=False, relax_discrete=relax_discrete, l1_fraction=0.0, ids=ids,
                progress=False, method="fgsm")


def _first_order_radius(adapter, space, bound, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """``g`` and the linearised distance to the goal, ``max(g, 0) / ||grad g||_dual`` (N,)."""
    g, grad = adapter.gradient(space.unflat(space.x0), lambda y, r: bound(y, r))
    grad = torch.where((space.lower < 0) | (space.upper > 0), grad.reshape(space.x0.shape), torch.zeros_like(space.x0))
    dual = torch.linalg.vector_norm(torch.nan_to_num(grad), ord=DUAL_ORDER[norm], dim=1)
    return g, g.clamp_min(0) / dual.clamp_min(1e-12)


def min_perturbation(
    adapter,
    X,
    *,
    goal=None,
    norm: str = "linf",
    eps_max=None,
    steps: int = 40,
    search_steps: int = 10,
    restarts: int = 1,
    mask=None,
    relax_discrete: bool = False,
    l1_fraction: float = 0.0,
    seed: int = 0,
    ids=None,
    progress: bool = False,
) -> PerturbationResult:
    """The smallest perturbation per input (not per batch) that reaches the goal.

    Per-input bisection over eps, with one batched PGD run per bisection step in
    which every unresolved input has its own eps; the upper end drops to the norm
    of each success found. Finally the best perturbation of each input is shrunk
    along its own direction (bisection on a scale factor of its continuous part)
    while the goal still holds. Inputs that never reach the goal within
    ``eps_max`` get ``success=False`` and their best attempt.

    Parameters
    ----------
    adapter : FeatureModel or any adapter over float tensors
    X : torch.Tensor of shape (N, F) or (N, ...)
    goal : Goal, str or BoundGoal, optional
    norm : {"linf", "l2", "l1"}
    eps_max : float or torch.Tensor of shape (N,), optional
        Largest radius tried. Default: from the first-order distance to the goal,
        doubled per input (up to 12 times) until PGD succeeds.
    steps : int
        PGD steps per run.
    search_steps : int
        Bisection steps over eps (and over the final scale).
    restarts, mask, relax_discrete, seed
        As in :func:`pgd`.
    l1_fraction : float
        As in :func:`pgd`; the default 0 (one coordinate per step, the exact L1
        steepest descent) finds the sparse minimal L1 perturbations most precisely.

    Returns
    -------
    PerturbationResult
        ``norm`` is the size of the perturbation found; ``params["eps_lower"]`` the
        largest eps at which PGD failed.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, goals, outputs
    >>> model = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[3.0, 4.0]]))
    >>> adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    >>> r = min_perturbation(adapter, torch.zeros(1, 2), goal=goals.decrease(by=5.0), norm="l2")
    >>> round(float(r.norm[0]), 2)
    1.0
    """
    start = time.perf_counter()
    norm = _check_norm(norm)
    X = _as_inputs(adapter, X)
    device = adapter.device
    space = _space(adapter, X, mask, relax_discrete)
    bound = _bind(adapter, goal, X)
    n = X.shape[0]
    generator = torch.Generator().manual_seed(seed)
    options = dict(norm=norm, steps=steps, step_size=None, restarts=restarts, random_start=False, early_stop=True,
                   l1_fraction=l1_fraction, generator=generator)
    g0, radius = _first_order_radius(adapter, space, bound, norm)
    defined = torch.isfinite(bound.reference).to(device) & torch.isfinite(g0)
    g0 = torch.where(defined, g0, math.inf)
    evaluations = torch.full((n,), 1.0, device=device, dtype=torch.float32)
    best = torch.zeros_like(space.x0)
    best_g, best_n = g0.float().clone(), torch.zeros(n, device=device, dtype=torch.float32)
    best_p = torch.full((n,), math.inf, device=device, dtype=torch.float32)  # any run beats the input: it starts there
    success = best_g <= 0
    lo = torch.zeros(n, device=device, dtype=torch.float32)
    hi = torch.zeros(n, device=device, dtype=torch.float32)
    skipped = _select.Skipped()
    rtol = _select.tie_rtol(getattr(adapter, "dtype", None))

    def attempt(rows, eps):
        nonlocal evaluations
        with adapter.session():
            run = _pgd_core(adapter, space, bound, rows, eps, **options, skipped=skipped)
        evaluations = evaluations + run.evaluations
        better = _better(run.g, run.norm, best_g[rows], torch.where(success[rows], best_n[rows], math.inf),
                         run.p, best_p[rows], rtol)
        sel = rows[better]
        best[sel], best_g[sel], best_n[sel] = run.delta[better], run.g[better], run.norm[better]
        best_p[sel] = run.p[better]
        ok = run.g <= 0
        success[rows[ok]] = True
        return ok, run.norm

    # upper end of the bracket
    pending = torch.nonzero(~success & defined)[:, 0]
    if eps_max is not None:
        hi[:] = _eps_rows(eps_max, n, device)
        if pending.numel():
            ok, found = attempt(pending, hi[pending])
            lo[pending[~ok]] = hi[pending[~ok]]
    else:
        guess = torch.where(torch.isfinite(radius) & (radius > 0), radius * 1.5, torch.ones_like(radius))
        hi[:] = guess
        for _ in range(13):
            if pending.numel() == 0:
                break
            ok, found = attempt(pending, hi[pending])
            lo[pending[~ok]] = hi[pending[~ok]]
            failed = pending[~ok]
            hi[failed] = hi[failed] * 2
            pending = failed
        hi[pending] = hi[pending] / 2  # never succeeded: report the largest eps tried
    hi = torch.where(success, torch.minimum(hi, best_n), hi)
    # per-input bisection, all inputs in one batch with their own eps
    iterator = range(search_steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="min_perturbation")
    for _ in iterator:
        rows = torch.nonzero(success & (g0 > 0) & (hi - lo > 1e-6 * hi.clamp_min(1e-12)))[:, 0]
        if rows.numel() == 0:
            break
        mid = 0.5 * (lo[rows] + hi[rows])
        ok, found = attempt(rows, mid)
        hi[rows[ok]] = torch.minimum(mid[ok], found[ok])
        lo[rows[~ok]] = mid[~ok]
    best = _shrink(adapter, space, bound, best, success & (g0 > 0), norm, search_steps * 2, evaluations)
    skipped.warn(stacklevel=2)
    _select.warn_inputs(~torch.isfinite(bound.reference), "they are reported as not reaching the goal", stacklevel=2)
    params = {"method": "min_perturbation", "goal": str(bound.goal), "eps_max": None if eps_max is None else eps_max,
              "eps_lower": lo.cpu(), "steps": steps, "search_steps": search_steps, "restarts": restarts, "seed": seed,
              "relax_discrete": relax_discrete}
    return _result(adapter, space, bound, X, best, norm=norm, ids=ids, params=params, start=start,
                   evaluations=evaluations)


def _shrink(adapter, space, bound, delta, rows_ok, norm, iters, evaluations):
    """Scale the continuous part of each successful ``delta`` down as far as the goal still holds."""
    rows = torch.nonzero(rows_ok)[:, 0]
    if rows.numel() == 0 or iters <= 0:
        return delta
    d = delta[rows]
    fixed = torch.where(space.discrete, d, torch.zeros_like(d))
    moving = d - fixed
    a = torch.zeros(rows.numel(), device=d.device, dtype=torch.float32)  # fails (or untested)
    b = torch.ones(rows.numel(), device=d.device, dtype=torch.float32)  # succeeds
    for _ in range(iters):
        t = 0.5 * (a + b)
        score, g = adapter.evaluate(space.unflat(space.x0[rows] + fixed + t[:, None] * moving), bound, rows=rows)
        evaluations.index_add_(0, rows, torch.ones_like(t))
        ok = ~_select.nonfinite(score, g) & (g <= 0)
        b, a = torch.where(ok, t, b), torch.where(ok, a, t)
    out = delta.clone()
    out[rows] = fixed + b[:, None] * moving
    return out


def _sphere(n, free, eps, norm, generator) -> torch.Tensor:
    """Uniform draws on the ``norm`` sphere of radius ``eps`` (n,) over the free coordinates (n, D).

    Drawn on the CPU generator, so a seed gives the same draws on every device.
    """
    device = free.device
    free, eps = free.cpu(), eps.cpu()
    d = free.shape[1]
    zero = torch.zeros(n, d, dtype=torch.float32)
    if norm == "linf":
        u = torch.rand(n, d, generator=generator, dtype=torch.float32) * 2 - 1
        draw = torch.rand(n, d, generator=generator, dtype=torch.float32)
        pick = torch.where(free, draw, torch.full_like(u, -1.0)).argmax(dim=1)
        face = (torch.randint(0, 2, (n,), generator=generator) * 2 - 1).float()
        u[torch.arange(n), pick] = face
        unit = torch.where(free, u, zero)
    elif norm == "l2":
        g = torch.where(free, torch.randn(n, d, generator=generator, dtype=torch.float32), zero)
        unit = g / vector_norm(g, "l2").clamp_min(1e-30)[:, None]
    else:
        draw = torch.rand(n, d, generator=generator, dtype=torch.float32)
        e = torch.where(free, -torch.log(draw.clamp_min(1e-30)), zero)
        signs = torch.randint(0, 2, (n, d), generator=generator) * 2 - 1
        unit = signs * e / e.sum(dim=1, keepdim=True).clamp_min(1e-30)
    return (unit * eps[:, None]).to(device)


_DRAW_BUDGET = 2**24  # perturbation entries held at once by the random draws


def _random_points(space, eps, norm, n_draws, seeds):
    """Blocks of ``(rows, delta)``: input-major draws on the sphere, clipped to the bounds.

    Row ``i`` draws from a generator of its own, seeded with ``seeds[i]``, so its
    draws do not depend on the other rows. Inputs are taken a block at a time so
    that a block holds at most ``_DRAW_BUDGET`` entries; the draws are made on
    the CPU and moved to the device once per block.
    """
    n, d = space.x0.shape
    per_block = max(1, _DRAW_BUDGET // max(1, n_draws * d))
    for start in range(0, n, per_block):
        stop = min(n, start + per_block)
        rows = torch.arange(start, stop, device=space.x0.device).repeat_interleave(n_draws)
        free = ((space.lower[start:stop] < 0) | (space.upper[start:stop] > 0)).cpu()
        radius = eps[start:stop].cpu()
        delta = torch.cat([
            _sphere(n_draws, free[j].expand(n_draws, d), radius[j].expand(n_draws), norm,
                    torch.Generator().manual_seed(int(seeds[start + j])))
            for j in range(stop - start)
        ]).to(space.x0.device)
        yield rows, torch.minimum(torch.maximum(delta, space.lower[rows]), space.upper[rows])


def _random_goal_values(adapter, space, bound, eps, norm, n_draws, seeds):
    """Scores, goal values and norms (each (N, n_draws)) of random draws on the sphere of radius ``eps`` (N,).

    ``seeds`` (N,) seeds each row's draws (see :func:`_random_points`).
    """
    parts = []
    for rows, delta in _random_points(space, eps, norm, n_draws, seeds):
        scores, g = adapter.evaluate(space.unflat(space.x0[rows] + delta), bound, rows=rows)
        parts.append(torch.stack([scores, g, vector_norm(delta, norm)], dim=1))
    n = space.x0.shape[0]
    both = torch.cat(parts) if parts else torch.zeros(0, 3, device=space.x0.device, dtype=torch.float32)
    return both[:, 0].reshape(n, n_draws), both[:, 1].reshape(n, n_draws), both[:, 2].reshape(n, n_draws)


def random_perturbation(adapter, X, *, norm: str = "linf", eps, n_draws: int = 100, seed: int = 0, mask=None,
                        ids=None) -> BaselineResult:
    """Score changes under random perturbations of norm ``eps``: the null baseline for :func:`pgd`.

    Each draw is uniform on the sphere ``||delta|| = eps`` over the features that
    may change (continuous features not masked out), then clipped to the feature
    bounds; clipping can make a draw smaller than ``eps`` near a bound (the
    realised norms are in ``params["norms"]``). Each input draws from a seed of its
    own (``seed`` and the input's values), so its baseline is the same alone, in a
    batch or in a chunk. All draws are evaluated in batches.

    Parameters
    ----------
    adapter : FeatureModel or any adapter over float tensors
    X : torch.Tensor of shape (N, F) or (N, ...)
    norm : {"linf", "l2", "l1"}
    eps : float or torch.Tensor of shape (N,)
    n_draws : int
    seed : int
    mask : torch.Tensor of bool, shape (F,) or (N, F), optional

    Returns
    -------
    BaselineResult
        ``deltas`` (N, n_draws): score after minus score before; NaN where a
        draw's score (or the input's own) is not finite.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=outputs.value(0), device="cpu")
    >>> random_perturbation(adapter, torch.zeros(2, 3), norm="l2", eps=0.1, n_draws=8).deltas.shape
    torch.Size([2, 8])
    """
    start = time.perf_counter()
    norm = _check_norm(norm)
    X = _as_inputs(adapter, X)
    space = _space(adapter, X, mask, relax_discrete=False)
    n = X.shape[0]
    eps_rows = _eps_rows(eps, n, adapter.device)
    bound = adapter.bind(_goals.below(0.0), X)  # only the scores are used
    before, _ = adapter.evaluate(X, bound)
    after, _, norms = _random_goal_values(adapter, space, bound, eps_rows, norm, n_draws, input_seeds(X, seed))
    deltas = _skip_nonfinite(after - before[:, None], after, before, torch.ones(n, dtype=torch.bool, device=X.device),
                             stacklevel=2)
    params = {"eps": eps_rows.cpu(), "n_draws": n_draws, "seed": seed, "device": str(adapter.device),
              "seconds": time.perf_counter() - start, "norms": norms.cpu()}
    if isinstance(eps, (int, float)):
        k = float(eps)
    else:  # one radius for all inputs (a 0-d or one-element tensor or array), or one per input (list, array, tensor)
        given = torch.as_tensor(eps).reshape(-1)
        k = float(given[0]) if given.numel() == 1 else eps_rows.cpu()
    return BaselineResult(deltas=deltas, k=k, kind=norm, ids=list(ids or []), params=params)


__all__ = ["fgsm", "pgd", "min_perturbation", "random_perturbation", "project", "project_l1_ball", "vector_norm"]
