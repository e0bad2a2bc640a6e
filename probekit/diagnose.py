"""Robustness diagnostics: margins, robustness curves and checks for false robustness.

- :func:`margin`: per input, the first-order distance to the goal, the smallest
  perturbation an attack finds (an upper bound on the true margin) and the
  largest radius certified by IBP/CROWN (a lower bound).
- :func:`robustness_curve`: the fraction of goals not reached against eps, for
  an attack and for random noise of the same norm, with a plot.
- :func:`gradient_masking`: a verdict, with its evidence, on whether a model
  only *looks* robust because its gradients are useless to an attacker.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> from probekit.diagnose import robustness_curve
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<...>
>>> adapter = FeatureModel(torch.nn.Linear(3, 2), output=outputs.margin(1), device="cpu")
>>> curve = robustness_curve(adapter, torch.randn(8, 3), eps=[0.0, 0.5, 1.0], n_random=4, steps=5)
>>> sorted(curve.to_frame()["method"].unique())
['pgd', 'random', 'random (worst of 4)']
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import torch

from . import goals as _goals
from ._warnings import warn
from .goals import BoundGoal
from .search import continuous as _cont
from .search.baseline import input_seeds

# thresholds of the masking verdict (fractions of inputs)
ZERO_GRADIENT_FRACTION = 0.1
RANDOM_BEATS_FRACTION = 0.1
TRANSFER_EXCESS = 0.05


# ------------------------------------------------------------------ helpers
def _ids(ids, n):
    return list(ids) if ids is not None else [f"x{i}" for i in range(n)]


def _label_goal(adapter, X, labels) -> BoundGoal:
    """A bound goal whose ``g <= 0`` means "the model's call differs from ``labels``"."""
    y = adapter.predict(X)
    score = adapter.output(y)
    labels = torch.as_tensor(labels, device=adapter.device).long().reshape(-1)
    if labels.numel() != X.shape[0]:
        raise ValueError(f"{labels.numel()} labels for {X.shape[0]} inputs")
    if y.ndim == 2 and y.shape[1] > 1:
        return BoundGoal(_goals.flip(), adapter.output, score, ref_class=labels, mode="leave_class")
    sign = torch.where(labels > 0, 1.0, -1.0).to(score.dtype)
    return BoundGoal(_goals.flip(), adapter.output, score, sign=sign, mode="cross")


def _goal(adapter, X, goal, labels=None) -> BoundGoal:
    if labels is not None:
        if goal is not None:
            raise ValueError("give either goal= or labels=, not both")
        return _label_goal(adapter, X, labels)
    return _cont._bind(adapter, goal, X)


def _repeat_goal(bound: BoundGoal, idx: torch.Tensor) -> BoundGoal:
    """The bound goal of inputs ``idx`` (M,), so that it can score a replicated batch."""
    pick = lambda t: None if t is None else t[idx.to(t.device)]  # noqa: E731
    return BoundGoal(bound.goal, bound.output, pick(bound.reference), pick(bound.ref_class), pick(bound.sign), bound.mode)


def _input_problems(adapter, X, bound: BoundGoal) -> list:
    """Per input, ``""`` or why it is left out: the model returned NaN or inf on it.

    Looks at the score, the goal's ``g`` and a NaN anywhere in the raw output.
    """
    from .certify._checks import input_reasons

    y = adapter.predict(X)
    flat = y.reshape(y.shape[0], -1)
    score = adapter.output(y).to(flat.dtype)
    nan_anywhere = torch.where(torch.isnan(flat).any(1), math.nan, 0.0).to(flat.dtype)
    return input_reasons(torch.stack([score, bound(y).to(flat.dtype), nan_anywhere], 1))


def _warn_problems(problems: list, ids, outcome: str) -> None:
    from .certify._checks import warn_refused

    warn_refused(problems, ids=ids, outcome=outcome, stacklevel=5)


def _certify_fn(method: str):
    try:
        from . import certify
    except ImportError:  # certify not installed in this build
        return None
    if method == "crown-ibp":
        return functools.partial(certify.crown, intermediate="ibp")
    return getattr(certify, method, None)


def _certified(fn, adapter, X, eps_rows, norm, goal, state) -> torch.Tensor:
    """``certified`` (N,) at a per-input radius ``eps_rows`` (N,).

    One call with the radii as a tensor when the certifier takes per-input radii,
    otherwise one call per distinct radius (remembered in ``state``).
    """
    if state.get("per_input", True):
        try:
            result = fn(adapter, X, eps=eps_rows, norm=norm, goal=goal)
            _note_method(state, result)
            cert = result.certified.to(adapter.device)
            if cert.shape == eps_rows.shape:
                return cert | (eps_rows <= 0)
        except (TypeError, ValueError):
            pass
        state["per_input"] = False
    out = torch.zeros(X.shape[0], dtype=torch.bool, device=adapter.device)
    for value in torch.unique(eps_rows).tolist():
        rows = torch.nonzero(eps_rows == value)[:, 0]
        if value <= 0:
            out[rows] = True
            continue
        result = fn(adapter, X[rows], eps=float(value), norm=norm, goal=goal)
        _note_method(state, result)
        out[rows] = result.certified.to(adapter.device)
    return out


def _note_method(state: dict, result) -> None:
    """Keep the bound method a certifier reports ("crown-ibp" once any call fell back to IBP boxes)."""
    method = getattr(result, "method", None)
    if method is not None and state.get("method") != "crown-ibp":
        state["method"] = method


def _certified_radius(fn, adapter, X, g0, hi, norm, goal, iters, state=None) -> torch.Tensor:
    """Largest eps (N,) at which ``fn`` certifies the goal unreachable, by per-input bisection in [0, hi].

    ``state`` receives the certifier's bound method (``state["method"]``).
    """
    lo = torch.zeros_like(hi)
    active = (g0 > 0) & torch.isfinite(hi) & (hi > 0)
    if not active.any():
        return lo
    state = {} if state is None else state
    rows = torch.nonzero(active)[:, 0]
    # The certifier is called once per bisection step: say each of its warnings once, not every step.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        at_hi = _certified(fn, adapter, X[rows], hi[rows], norm, goal, state)
        lo[rows[at_hi]] = hi[rows[at_hi]]
        up = hi.clone()
        rows = rows[~at_hi]
        for _ in range(iters):
            if rows.numel() == 0:
                break
            mid = 0.5 * (lo[rows] + up[rows])
            ok = _certified(fn, adapter, X[rows], mid, norm, goal, state)
            lo[rows[ok]] = mid[ok]
            up[rows[~ok]] = mid[~ok]
    for message in dict.fromkeys(str(w.message) for w in caught):
        warn(message)
    return lo


# ------------------------------------------------------------------- margin
def margin(
    adapter,
    X,
    *,
    goal=None,
    norm: str = "linf",
    eps_max=None,
    steps: int = 40,
    search_steps: int = 10,
    restarts: int = 1,
    certifier: str | None = "crown",
    mask=None,
    seed: int = 0,
    ids=None,
) -> pd.DataFrame:
    """How far each input is from reaching the goal: estimate, upper and lower bound side by side.

    The true margin (the smallest perturbation in ``norm`` that reaches the goal)
    lies between ``lower`` and ``upper``.

    Parameters
    ----------
    adapter : FeatureModel, SequenceModel or any adapter over float tensors
    X : torch.Tensor of shape (N, ...)
    goal : Goal, str or BoundGoal, optional
        Default :func:`probekit.goals.flip`.
    norm : {"linf", "l2", "l1"}
    eps_max : float, optional
        Largest radius the attack tries (see :func:`probekit.search.continuous.min_perturbation`).
    steps, search_steps, restarts, mask, seed
        Passed to the attack; ``search_steps`` also sets the bisection steps of the certificate.
    certifier : {"crown", "crown-ibp", "ibp", None}
        Which bound gives the lower end (``"crown-ibp"``: CROWN with IBP boxes for
        the intermediate layers, faster and looser); ``None`` (or a build without
        :mod:`probekit.certify`) leaves ``lower`` as NaN.

    Returns
    -------
    pandas.DataFrame
        One row per input: ``id``, ``g`` (goal value at the input), ``first_order``
        (``|g| / ||grad g||_dual``, the dual norm being L1 for L-inf, L2 for L2 and
        L-inf for L1), ``upper`` (norm of the smallest perturbation found that
        reaches the goal, NaN if none), ``attack_success``, ``lower`` (largest
        certified radius), ``norm`` and ``error`` (``""``, or why an input was left
        out: the model returned NaN or inf on it, and its numbers are NaN). The
        ``attrs`` say which ``certifier`` ran and the ``bound_method`` it reported
        (``"crown-ibp"`` when layers too costly for CROWN boxes got IBP boxes).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, goals, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> frame = margin(adapter, torch.zeros(2, 2), goal=goals.decrease(by=0.1), norm="l2", search_steps=4)
    >>> bool((frame["lower"] <= frame["upper"] + 1e-6).all())
    True
    """
    start = time.perf_counter()
    norm = _cont._check_norm(norm)
    X = _cont._as_inputs(adapter, X)
    n = X.shape[0]
    full_bound = _goal(adapter, X, goal)
    problems = _input_problems(adapter, X, full_bound)
    good = torch.tensor([not p for p in problems], dtype=torch.bool, device=adapter.device)
    keep = torch.nonzero(good)[:, 0]
    if mask is not None:
        mask = _cont._mask_rows(mask, X)[keep]
    X, bound = X[keep], _repeat_goal(full_bound, keep)
    fn = _certify_fn(certifier) if certifier is not None else None
    if certifier is not None and fn is None:
        warn(f"probekit.certify.{certifier} is not available; the 'lower' column is left empty")
    state: dict = {}
    g0 = first_order = upper = lower = torch.zeros(0, device=adapter.device)
    success = torch.zeros(0, dtype=torch.bool)
    if len(keep):
        g0, first_order, upper, success, lower = _margin_rows(
            adapter, X, bound, goal, norm=norm, eps_max=eps_max, steps=steps, search_steps=search_steps,
            restarts=restarts, mask=mask, seed=seed, certifier=certifier, fn=fn, state=state,
        )
    frame = pd.DataFrame(
        {
            "id": _ids(ids, n),
            "g": _spread(g0, keep, n),
            "first_order": _spread(first_order, keep, n),
            "upper": _spread(upper, keep, n),
            "attack_success": _spread(success, keep, n, fill=False),
            "lower": _spread(lower, keep, n),
            "norm": norm,
            "error": problems,
        }
    )
    _warn_problems(problems, ids, "their margins are NaN")
    frame.attrs.update({
        "certifier": certifier if fn is not None else None,
        "bound_method": state.get("method"),
        "seconds": time.perf_counter() - start,
    })
    return frame


def _margin_rows(adapter, X, bound, goal, *, norm, eps_max, steps, search_steps, restarts, mask, seed, certifier, fn,
                 state):
    """``g``, first-order distance, attack norm, attack success and certified radius (each (N,)) of inputs
    the model scores finitely."""
    space = _cont._space(adapter, X, mask, relax_discrete=False)
    g0, grad = adapter.gradient(X, lambda y, r: bound(y, r))
    free = (space.lower < 0) | (space.upper > 0)
    flat = torch.where(free, torch.nan_to_num(grad.reshape(space.x0.shape)), torch.zeros_like(space.x0))
    dual = torch.linalg.vector_norm(flat, ord=_cont.DUAL_ORDER[norm], dim=1)
    first_order = torch.where(dual > 0, g0.abs() / dual.clamp_min(1e-30), torch.full_like(g0, math.inf))
    attack = _cont.min_perturbation(adapter, X, goal=bound, norm=norm, eps_max=eps_max, steps=steps,
                                    search_steps=search_steps, restarts=restarts, mask=mask, seed=seed)
    upper = torch.where(attack.success, attack.norm, torch.full_like(attack.norm, math.nan)).to(adapter.device)
    lower = torch.full_like(upper, math.nan)
    if fn is not None:
        if mask is not None:
            warn("certified radii ignore the mask: they bound perturbations of every feature, so they stay sound")
        hi = torch.where(torch.isfinite(upper), upper, _cont._eps_rows(attack.params["eps_lower"], X.shape[0], adapter.device))
        hi = torch.where(hi > 0, hi, first_order.clamp(max=1e6))
        certify_goal = bound.goal if goal is None or isinstance(goal, BoundGoal) else _goals.parse(goal)
        try:
            lower = _certified_radius(fn, adapter, X, g0, hi, norm, certify_goal, search_steps + 4, state)
            lower = torch.where(g0 > 0, lower, torch.zeros_like(lower))
        except Exception as error:  # noqa: BLE001 - the other columns are still worth returning
            warn(f"certify.{certifier} failed on this model ({type(error).__name__}: {error}); 'lower' is left empty")
    return g0, first_order, upper, attack.success, lower


def _spread(values: torch.Tensor, keep: torch.Tensor, n: int, fill=math.nan) -> np.ndarray:
    """Values (M,) of the inputs ``keep`` (M,) placed among ``n``, ``fill`` elsewhere."""
    out = np.full(n, fill, dtype=bool if isinstance(fill, bool) else np.float64)
    out[keep.cpu().numpy()] = values.detach().cpu().numpy()
    return out


# --------------------------------------------------------- robustness curve
@dataclass(frozen=True)
class RobustnessCurve:
    """Fraction of goals not reached against eps, for an attack and for random noise.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per eps and method: ``eps``, ``method``, ``robust`` (fraction of
        inputs whose goal is not reached; for ``"random"`` averaged over the draws),
        ``n`` (inputs counted).
    norm : str
    params : dict
        ``params["error"]`` (one per input) is ``""`` or why an input is left out
        of the curve: the model returned NaN or inf on it.
    """

    frame: pd.DataFrame
    norm: str = "linf"
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The curve as a tidy DataFrame (a copy)."""
        return self.frame.copy()

    def _repr_html_(self) -> str:
        wide = self.frame.pivot(index="eps", columns="method", values="robust")
        return f"<b>Fraction of goals not reached ({self.norm})</b>" + wide.to_html(float_format="{:.3f}".format)

    def plot(self, ax=None):
        """Draw robust fraction against eps, one line per method; returns ``self``."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:  # pragma: no cover - matplotlib is a core dependency
            raise ImportError('plotting needs matplotlib: pip install "probekit[plot]"') from error
        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3.2))
        for method, part in self.frame.groupby("method", sort=False):
            ax.plot(part["eps"], part["robust"], marker="o", label=method)
        ax.set_xlabel(f"eps ({self.norm})")
        ax.set_ylabel("fraction of goals not reached")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(frameon=False)
        self.params["ax"] = ax
        return self


def robustness_curve(
    adapter,
    X,
    *,
    goal=None,
    labels=None,
    eps,
    norm: str = "linf",
    attack="pgd",
    n_random: int = 20,
    steps: int = 40,
    restarts: int = 1,
    mask=None,
    seed: int = 0,
) -> RobustnessCurve:
    """Robust fraction against eps for an attack and, beside it, random noise of the same norm.

    All radii run in one batch: the inputs are replicated once per eps, each copy
    with its own radius. Inputs on which the model returns NaN or inf are left out
    (``params["error"]`` says which, with a warning), and a perturbed input on which
    it does counts as reaching the goal: a NaN is no evidence of robustness.

    Parameters
    ----------
    adapter : FeatureModel, SequenceModel or any adapter over float tensors
    X : torch.Tensor of shape (N, ...)
    goal : Goal, str or BoundGoal, optional
        Default :func:`probekit.goals.flip`.
    labels : torch.Tensor of shape (N,), optional
        True classes instead of a goal: the curve is then robust accuracy (an
        input counts only while the model's call equals its label).
    eps : sequence of float
    norm : {"linf", "l2", "l1"}
    attack : {"pgd", "fgsm"} or callable
        A callable is called as ``attack(adapter, X, goal=bound_goal, eps=eps_rows, norm=norm)``
        and returns a :class:`~probekit.results.PerturbationResult`.
    n_random : int
        Random draws on the sphere of each radius per input.
    steps, restarts, mask, seed
        Passed to the attack and the random draws.

    Returns
    -------
    RobustnessCurve

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> c = robustness_curve(adapter, torch.ones(4, 2), eps=[0.0, 1.0], n_random=3, steps=3)
    >>> c.to_frame().shape
    (6, 4)
    """
    start = time.perf_counter()
    norm = _cont._check_norm(norm)
    X = _cont._as_inputs(adapter, X)
    n = X.shape[0]
    bound = _goal(adapter, X, goal, labels)
    radii = [float(e) for e in eps]
    if any(e < 0 for e in radii):
        raise ValueError("eps values must be non-negative")
    if not callable(attack) and attack not in ("pgd", "fgsm"):
        raise ValueError(f"attack must be 'pgd', 'fgsm' or a callable; got {attack!r}")
    device = adapter.device
    problems = _input_problems(adapter, X, bound)
    keep = torch.nonzero(torch.tensor([not p for p in problems], dtype=torch.bool))[:, 0].to(device)
    if mask is not None:
        mask = _cont._mask_rows(mask, X)[keep]
    X, bound = X[keep], _repeat_goal(bound, keep)
    n = X.shape[0]
    name = getattr(attack, "__name__", "attack") if callable(attack) else attack
    attacked, held = torch.zeros(len(radii), 0), torch.zeros(len(radii), 0, max(n_random, 1))
    if n:
        attacked, held = _curve_rows(adapter, X, bound, radii, norm=norm, attack=attack, n_random=n_random,
                                     steps=steps, restarts=restarts, mask=mask, seed=seed)
    frame = pd.concat(
        [
            pd.DataFrame({"eps": radii, "method": name, "robust": attacked.mean(dim=1).cpu().numpy(), "n": n}),
            pd.DataFrame({"eps": radii, "method": "random", "robust": held.mean(dim=(1, 2)).cpu().numpy(), "n": n}),
            pd.DataFrame({"eps": radii, "method": f"random (worst of {n_random})",
                          "robust": held.amin(dim=2).mean(dim=1).cpu().numpy(), "n": n}),
        ],
        ignore_index=True,
    )
    _warn_problems(problems, None, "they are left out of the curve")
    params = {"goal": str(bound.goal), "attack": name, "n_random": n_random, "steps": steps, "seed": seed,
              "labels": labels is not None, "device": str(device), "error": problems,
              "seconds": time.perf_counter() - start}
    return RobustnessCurve(frame=frame, norm=norm, params=params)


def _curve_rows(adapter, X, bound, radii, *, norm, attack, n_random, steps, restarts, mask, seed):
    """Which goals the attack (len(radii), N) and the random draws (len(radii), N, n_random) leave
    unreached, as floats.

    A candidate the model gives NaN or inf proves nothing: its goal counts as reached.
    """
    n = X.shape[0]
    device = adapter.device
    rep = torch.arange(n, device=device).repeat(len(radii))
    eps_rows = torch.tensor(radii, device=device).repeat_interleave(n)
    Xr, goal_r = X[rep], _repeat_goal(bound, rep)
    mask_r = None if mask is None else mask[rep]
    if callable(attack):
        result = attack(adapter, Xr, goal=goal_r, eps=eps_rows, norm=norm)
    elif attack == "pgd":
        result = _cont.pgd(adapter, Xr, goal=goal_r, eps=eps_rows, norm=norm, steps=steps, restarts=restarts,
                           mask=mask_r, seed=seed)
    else:
        result = _cont.fgsm(adapter, Xr, goal=goal_r, eps=eps_rows, norm=norm, mask=mask_r)
    _, g_adv = adapter.evaluate(result.x_adv.to(device), goal_r)
    unreached = ~result.success.to(device) & torch.isfinite(g_adv)
    attacked = unreached.reshape(len(radii), n).float()
    space = _cont._space(adapter, Xr, mask_r, relax_discrete=False)
    # an input's draws come from its own seed: the same directions at every radius
    _, g, _ = _cont._random_goal_values(adapter, space, goal_r, eps_rows, norm, n_random, input_seeds(Xr, seed))
    held = ((g > 0) & torch.isfinite(g)).reshape(len(radii), n, n_random).float()
    return attacked, held


# ---------------------------------------------------------- gradient masking
@dataclass(frozen=True)
class MaskingVerdict:
    """Whether a model looks robust only because its gradients mislead attacks.

    Attributes
    ----------
    flagged : bool
    reasons : list of str
        One sentence per failed check.
    evidence : dict
        The numbers behind each check, and ``"per_input"``: a DataFrame with one
        row per input.
    """

    flagged: bool
    reasons: list
    evidence: dict

    def to_frame(self) -> pd.DataFrame:
        """Per-input evidence: white-box, random-search and transfer results."""
        return self.evidence["per_input"].copy()

    def __repr__(self) -> str:
        head = "gradient masking suspected" if self.flagged else "no sign of gradient masking"
        return "\n".join([f"MaskingVerdict: {head}"] + [f"  - {r}" for r in self.reasons])

    def _repr_html_(self) -> str:
        import html

        head = "gradient masking suspected" if self.flagged else "no sign of gradient masking"
        items = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        numbers = {k: v for k, v in self.evidence.items() if k != "per_input"}
        table = pd.Series(numbers, name="value").to_frame().to_html()
        return f"<b>{head}</b><ul>{items}</ul>{table}"


class _Surrogate(torch.nn.Module):
    """A one-hidden-layer MLP over flattened inputs, with its own input standardisation."""

    def __init__(self, shape, n_out, mean, std, width=64):
        super().__init__()
        d = int(np.prod(shape))
        self.register_buffer("mean", mean.reshape(1, d))
        self.register_buffer("std", std.reshape(1, d))
        self.out_shape = None
        self.hidden = torch.nn.Linear(d, width)
        self.head = torch.nn.Linear(width, n_out)

    def features(self, h):
        return torch.nn.functional.silu(self.hidden(h))

    def forward(self, x):
        h = (x.reshape(x.shape[0], -1) - self.mean) / self.std
        y = self.head(self.features(h))
        return y.reshape((x.shape[0],) + self.out_shape) if self.out_shape is not None else y


def distil_surrogate(adapter, X, *, eps, norm: str = "linf", n_samples: int = 1024, train_steps: int = 60,
                     width: int = 128, seed: int = 0):
    """Train a small MLP to mimic the adapter's raw outputs around ``X``.

    Training points are drawn uniformly in the ball of radius ``1.5 * eps`` around
    each input (clipped to the feature bounds) plus the inputs themselves, and
    labelled by the adapter's raw output; the MLP is fitted by mean squared error.
    The model takes inputs in the adapter's model layout, so it can replace the
    adapter's model (``adapter.replace(model=surrogate)``).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(3, 2), output=outputs.margin(1), device="cpu")
    >>> net = distil_surrogate(adapter, torch.zeros(2, 3), eps=0.5, n_samples=64, train_steps=5)
    >>> isinstance(net, torch.nn.Module)
    True
    """
    norm = _cont._check_norm(norm)
    X = _cont._as_inputs(adapter, X)
    device = adapter.device
    n = X.shape[0]
    space = _cont._space(adapter, X, None, relax_discrete=False)
    generator = torch.Generator().manual_seed(seed)
    per = max(1, n_samples // n)
    rows = torch.arange(n, device=device).repeat_interleave(per)
    radius = torch.full((rows.numel(),), 1.5 * float(torch.as_tensor(eps, dtype=torch.float32).max()), device=device)
    delta = _cont._random_in_ball(rows.numel(), space.x0.shape[1], radius, norm, generator, device)
    delta = torch.minimum(torch.maximum(delta, space.lower[rows]), space.upper[rows])
    inputs = torch.cat([space.x0, space.x0[rows] + delta])
    targets = adapter.predict(space.unflat(inputs)).float()
    model_view = adapter._to_model_layout(space.unflat(inputs)) if hasattr(adapter, "_to_model_layout") else space.unflat(inputs)
    flat_model = model_view.reshape(inputs.shape[0], -1).float()  # the surrogate is float32 whatever the default
    mean, std = flat_model.mean(dim=0), flat_model.std(dim=0).clamp_min(1e-3)
    out_flat = targets.reshape(targets.shape[0], -1)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.random.default_generator.manual_seed(seed)  # the CPU generator only: fork_rng restores it
        net = _Surrogate(model_view.shape[1:], out_flat.shape[1], mean, std, width).to(device, torch.float32)
    if targets.ndim > 2 or targets.ndim == 1:
        net.out_shape = tuple(targets.shape[1:])
    h = (flat_model - net.mean) / net.std
    # start from the least-squares output layer on random hidden features, then train everything
    with torch.no_grad():
        phi = torch.cat([net.features(h), torch.ones(h.shape[0], 1, device=device, dtype=h.dtype)], dim=1)
        ridge = 1e-3 * torch.eye(phi.shape[1], device=device, dtype=h.dtype)
        coef = torch.linalg.solve(phi.T @ phi + ridge, phi.T @ out_flat)
        net.head.weight.copy_(coef[:-1].T)
        net.head.bias.copy_(coef[-1])
    y_scale = out_flat.std(dim=0).clamp_min(1e-3)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.enable_grad():
        for _ in range(train_steps):  # full-batch steps: the sample is small
            loss = (((net.head(net.features(h)) - out_flat) / y_scale) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _random_search(adapter, space, bound, eps, norm, n_samples, generator, chunk=8192):
    """Gradient-free attack: the best of ``n_samples`` uniform points in the ball, per input."""
    n, d = space.x0.shape
    best_g = torch.full((n,), math.inf, device=space.x0.device)
    per_chunk = max(1, chunk // max(n, 1))
    done = 0
    while done < n_samples:
        k = min(per_chunk, n_samples - done)
        rows = torch.arange(n, device=space.x0.device).repeat_interleave(k)
        delta = _cont._random_in_ball(rows.numel(), d, eps[rows], norm, generator, space.x0.device)
        delta = _cont.project(delta, eps[rows], norm=norm, lower=space.lower[rows], upper=space.upper[rows])
        _, g = adapter.evaluate(space.unflat(space.x0[rows] + delta), bound, rows=rows)
        g = torch.nan_to_num(g, nan=math.inf).reshape(n, k)
        best_g = torch.minimum(best_g, g.amin(dim=1))
        done += k
    return best_g


def _bad_gradients(adapter, space, bound, eps, norm, generator) -> torch.Tensor:
    """(2N,) bool: goal gradient all zero (over free features) or not finite, at the inputs then at a random
    point of each ball."""
    n = space.x0.shape[0]
    nearby = _cont.project(_cont._random_in_ball(n, space.x0.shape[1], eps, norm, generator, adapter.device),
                           eps, norm=norm, lower=space.lower, upper=space.upper)
    points = torch.cat([space.x0, space.x0 + nearby])
    _, grad = adapter.gradient(space.unflat(points), lambda y, r: bound(y, r),
                               rows=torch.arange(n, device=adapter.device).repeat(2))
    grad = grad.reshape(2 * n, -1)
    free = ((space.lower < 0) | (space.upper > 0)).repeat(2, 1)
    return ~torch.isfinite(grad).all(dim=1) | (torch.where(free, grad, torch.zeros_like(grad)) == 0).all(dim=1)


def _disagreement(adapter, X, n_repeats) -> float:
    """Largest relative difference between ``n_repeats`` forward passes of the same inputs."""
    first = adapter.predict(X).float()
    worst = 0.0
    for _ in range(max(0, n_repeats - 1)):
        again = adapter.predict(X).float()
        worst = max(worst, float(torch.nan_to_num((again - first).abs() / first.abs().clamp_min(1.0), nan=math.inf).max()))
    return worst


def gradient_masking(
    adapter,
    X,
    *,
    goal=None,
    eps,
    norm: str = "linf",
    surrogate=None,
    steps: int = 40,
    restarts: int = 1,
    n_search: int = 256,
    n_repeats: int = 3,
    mask=None,
    seed: int = 0,
    ids=None,
) -> MaskingVerdict:
    """Check whether a model only looks robust because its gradients are useless to an attacker.

    Four checks, each a reason when it fails:

    1. gradients: the fraction of inputs (and of random points in their balls)
       whose goal gradient is all zero or not finite, above 10 %;
    2. gradient-free search: a batched random search (``n_search`` uniform points in
       the ball, best kept) beats white-box PGD (succeeds where PGD fails, or reaches
       a lower ``g`` where both fail) on more than 10 % of inputs;
    3. transfer: PGD run on a surrogate (``surrogate``, or a small MLP distilled from
       the target's outputs around ``X``) and replayed on the target succeeds more
       often than white-box PGD (by more than 5 % of inputs);
    4. stochasticity: ``n_repeats`` forward passes of the same inputs disagree.

    Parameters
    ----------
    adapter : FeatureModel, SequenceModel or any adapter over float tensors
    X : torch.Tensor of shape (N, ...)
    goal : Goal, str or BoundGoal, optional
        Default :func:`probekit.goals.flip`.
    eps : float
        Attack radius in ``norm``.
    norm : {"linf", "l2", "l1"}
    surrogate : torch.nn.Module or callable, optional
        A model with the target's inputs and raw outputs; default: distilled.
    steps, restarts, mask, seed
        For the white-box and transfer PGD.
    n_search : int
        Points per input for the random search.
    n_repeats : int
        Forward passes compared for stochasticity.
    ids : list of str, optional
        Names of the inputs in the per-input evidence.

    Returns
    -------
    MaskingVerdict

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> adapter = FeatureModel(net, output=outputs.margin(1), device="cpu")
    >>> verdict = gradient_masking(adapter, torch.randn(16, 3), eps=0.5, steps=10, n_search=32)
    >>> verdict.flagged
    False
    """
    start = time.perf_counter()
    norm = _cont._check_norm(norm)
    X = _cont._as_inputs(adapter, X)
    n = X.shape[0]
    device = adapter.device
    bound = _goal(adapter, X, goal)
    eps_rows = _cont._eps_rows(eps, n, device)
    space = _cont._space(adapter, X, mask, relax_discrete=False)
    generator = torch.Generator().manual_seed(seed)
    reasons = []

    bad = _bad_gradients(adapter, space, bound, eps_rows, norm, generator)
    bad_at_input, bad_nearby = bad[:n], bad[n:]
    zero_fraction = float(bad.float().mean())
    if zero_fraction > ZERO_GRADIENT_FRACTION:
        reasons.append(
            f"the goal gradient is zero or not finite at {zero_fraction:.0%} of inputs and nearby points: "
            "gradient attacks cannot move (quantised, saturated or non-differentiable model?)"
        )

    # 2. white-box PGD against a gradient-free random search
    white = _cont.pgd(adapter, X, goal=bound, eps=eps_rows, norm=norm, steps=steps, restarts=restarts, mask=mask,
                      seed=seed)
    _, g_white = adapter.evaluate(white.x_adv, bound)
    g_white = torch.nan_to_num(g_white, nan=math.inf)
    g_search = _random_search(adapter, space, bound, eps_rows, norm, n_search, generator)
    s_white, s_search = g_white <= 0, g_search <= 0
    tol = 1e-4 * (1 + g_white.abs())
    beaten = (s_search & ~s_white) | (~s_search & ~s_white & (g_search < g_white - tol))
    beats_fraction = float(beaten.float().mean())
    if beats_fraction > RANDOM_BEATS_FRACTION:
        reasons.append(
            f"a random search without gradients beats white-box PGD on {beats_fraction:.0%} of inputs "
            f"(success {float(s_search.float().mean()):.0%} vs {float(s_white.float().mean()):.0%})"
        )

    # 3. transfer from a surrogate
    distilled = surrogate is None
    if distilled:
        surrogate = distil_surrogate(adapter, X, eps=float(eps_rows.max()), norm=norm, seed=seed)
    proxy = adapter.replace(model=surrogate, dtype=torch.float32, autocast=None)
    transfer = _cont.pgd(proxy, X, goal=bound, eps=eps_rows, norm=norm, steps=steps, restarts=restarts, mask=mask,
                         seed=seed)
    _, g_transfer = adapter.evaluate(transfer.x_adv, bound)
    s_transfer = g_transfer <= 0
    white_rate, transfer_rate = float(s_white.float().mean()), float(s_transfer.float().mean())
    if transfer_rate > white_rate + TRANSFER_EXCESS and int(s_transfer.sum()) > int(s_white.sum()):
        reasons.append(
            f"a transfer attack from a {'distilled ' if distilled else ''}surrogate succeeds on {transfer_rate:.0%} "
            f"of inputs, white-box PGD on only {white_rate:.0%}"
        )

    disagreement = _disagreement(adapter, X, n_repeats)
    if disagreement > 1e-5:
        reasons.append(
            f"repeated forward passes of the same inputs disagree (relative difference up to {disagreement:.3g}): "
            "the model is stochastic, so single-pass attacks and certificates are unreliable"
        )

    per_input = pd.DataFrame(
        {
            "id": _ids(ids, n),
            "g": adapter.evaluate(X, bound)[1].cpu().numpy(),
            "gradient_bad": bad_at_input.cpu().numpy(),
            "gradient_bad_nearby": bad_nearby.cpu().numpy(),
            "g_white_box": g_white.cpu().numpy(),
            "g_random_search": g_search.cpu().numpy(),
            "g_transfer": g_transfer.cpu().numpy(),
            "white_box_success": s_white.cpu().numpy(),
            "random_search_success": s_search.cpu().numpy(),
            "transfer_success": s_transfer.cpu().numpy(),
            "random_beats_gradient": beaten.cpu().numpy(),
        }
    )
    evidence = {
        "zero_or_nonfinite_gradient_fraction": zero_fraction,
        "white_box_success": white_rate,
        "random_search_success": float(s_search.float().mean()),
        "random_beats_fraction": beats_fraction,
        "transfer_success": transfer_rate,
        "surrogate": "distilled" if distilled else "given",
        "max_disagreement": disagreement,
        "eps": float(eps_rows.max()),
        "norm": norm,
        "seconds": time.perf_counter() - start,
        "per_input": per_input,
    }
    return MaskingVerdict(flagged=bool(reasons), reasons=reasons, evidence=evidence)


__all__ = ["margin", "robustness_curve", "RobustnessCurve", "gradient_masking", "MaskingVerdict", "distil_surrogate"]

from .tradeoff import plot_tradeoff, tradeoff  # noqa: E402,F401  (diagnose.tradeoff)
