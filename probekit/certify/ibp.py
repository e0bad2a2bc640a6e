"""Interval bound propagation (IBP) through a traced model.

IBP carries a box ``[lower, upper]`` through every operation: affine maps as
centre and radius (``W c + b`` and ``|W| r``), monotone activations and maxima
at the box's corners. For L2 and L1 balls, and for the sequences within k
substitutions, the first affine layers are bounded exactly (by the dual norm, or
by the k largest per-position changes) before IBP goes on.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
>>> adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
>>> b = ibp(adapter, torch.zeros(2, 3), eps=0.1)
>>> bool((b.lower <= b.upper).all())
True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..goals import parse
from ..results import Bounds
from ._checks import input_reasons, nonfinite_rows, warn_refused
from .graph import Bound, Graph, UnsupportedOperation, trace
from .spec import Box, Spec, goal_spec, make_set, output_spec


@dataclass
class Problem:
    """A traced model, a batch, its perturbation set and the score and goal specifications."""

    graph: Graph
    bound: Bound
    pset: Box
    score: Spec
    goal: Spec
    y: torch.Tensor


def prepare(adapter, X, *, eps=None, k=None, norm="linf", goal=None, graph: Graph | None = None) -> Problem:
    """Trace the adapter and build the perturbation set and specifications for ``X``."""
    X = adapter._as_input(X).to(adapter.dtype)
    if graph is None:
        graph = trace(adapter, X)
    bound = graph.bind(X)
    y = bound.value(graph.output)
    score = output_spec(adapter.output, y)
    bound_goal = parse(goal).bind(adapter.output, y.detach())
    g = goal_spec(bound_goal.to(X.device), score, y[0].numel())
    _drop_final_shift(graph, score, g)
    y = bound.value(graph.output)
    pset = make_set(adapter, X, eps=eps, k=k, norm=norm)
    return Problem(graph, bound, pset, score, g, y)


def _drop_final_shift(graph: Graph, *specs: Spec) -> None:
    """Bound the logits before a final log_softmax when every form cancels its shift.

    log_softmax subtracts one value from all the elements of each group along its
    axis; a linear form is unchanged by it exactly when its weights sum to zero
    within every group.
    """
    last = graph.op(graph.output)
    if last.kind != "shift":
        return
    axis = last.axis - 1  # in the per-input shape
    for spec in specs:
        C = spec.C.reshape(spec.C.shape[:2] + tuple(last.shape))
        scale = 1.0 + float(C.abs().max()) if C.numel() else 1.0
        if C.numel() and C.sum(2 + axis).abs().max() > 1e-6 * scale:
            raise UnsupportedOperation(
                f"{last.label} as the last operation is supported only for outputs and goals that compare "
                f"outputs within each group it normalises (axis {last.axis}; margins, probabilities, class "
                "flips and targets of one group), since it shifts each group by an input-dependent amount; "
                "select such an output or remove it"
            )
    graph.output = last.inputs[0]
    graph.ops = [op for op in graph.ops if op.name != last.name]
    graph.__post_init__()


def bind_problem(problem: Problem, X: torch.Tensor, pset: Box, goal: Spec) -> Problem:
    """The same traced model on another batch (for branch and bound)."""
    bound = problem.graph.bind(X)
    score = problem.score
    n = X.shape[0]
    score = Spec(score.C[:1].expand(n, -1, -1), score.d[:1].expand(n, -1), score.reduce, score.post)
    return Problem(problem.graph, bound, pset, score, goal, bound.value(problem.graph.output))


# ------------------------------------------------------------------ interval pass


def abs_radius(bound: Bound, op, radii, center: torch.Tensor) -> torch.Tensor:
    """``|J| r`` for an affine operation: the radius of its output box."""
    graph = bound.graph
    if op.signed == "linear_module":
        module = graph.modules[op.node.target]
        return torch.nn.functional.linear(radii[0], module.weight.abs())
    if op.signed == "conv_module":
        module = graph.modules[op.node.target]
        return module._conv_forward(radii[0], module.weight.abs(), None)
    if op.signed == "bn_module":
        module = graph.modules[op.node.target]
        scale = (module.running_var + module.eps).rsqrt()
        if module.weight is not None:
            scale = scale * module.weight.abs()
        shape = [1, -1] + [1] * (radii[0].ndim - 2)
        return radii[0] * scale.view(shape)
    if op.signed == "addsub":
        total = torch.zeros_like(center)
        for coef, r in zip(op.coefs, radii):
            total = total + abs(coef) * r
        return total
    zeros = [torch.zeros_like(r) for r in radii]
    return bound.apply(op, *radii, absolute=True) - bound.apply(op, *zeros, absolute=True)


def interval_step(bound: Bound, op, bounds: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Box of ``op``'s output from the boxes of its inputs."""
    if op.kind == "alias":
        return bounds[op.inputs[0]]
    if op.kind in ("act", "max"):
        lo, hi = bounds[op.inputs[0]]
        if op.slack:
            return bound.apply(op, lo) - op.slack, bound.apply(op, hi) + op.slack
        return bound.apply(op, lo), bound.apply(op, hi)
    if op.kind == "linear":
        boxes = [bounds[name] for name in op.inputs]
        centers = [(lo + hi) / 2 for lo, hi in boxes]
        radii = [(hi - lo) / 2 for lo, hi in boxes]
        center = bound.apply(op, *centers)
        radius = abs_radius(bound, op, radii, center)
        return center - radius, center + radius
    raise UnsupportedOperation(f"{op.label} is supported only as the model's last operation")


def affine_prefix(graph: Graph) -> set:
    """Operations that are affine functions of the input (no activation in between)."""
    prefix = set()
    for op in graph.ops:
        if op.kind == "input" or (op.kind in ("linear", "alias") and all(i in prefix for i in op.inputs)):
            prefix.add(op.name)
    return prefix


def consumed_by_nonlinear(graph: Graph) -> set:
    """Operations whose output feeds an activation or a maximum (their bounds matter)."""
    return {op.inputs[0] for op in graph.ops if op.kind in ("act", "max")}


def intervals(problem: Problem, *, tighten=None) -> dict:
    """Boxes of every operation; ``tighten(op, bounds)`` may return a tighter box for an op."""
    bounds: dict = {}
    for op in problem.graph.ops:
        if op.kind == "input":
            box = (problem.pset.lower, problem.pset.upper)
        else:
            box = interval_step(problem.bound, op, bounds)
        if tighten is not None:
            tighter = tighten(op, bounds, box)
            if tighter is not None:
                box = (torch.maximum(box[0], tighter[0]), torch.minimum(box[1], tighter[1]))
        bounds[op.name] = box
    return bounds


def spec_rows_interval(spec: Spec, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of the rows ``C y + d`` from a box of ``y``."""
    n = lo.shape[0]
    lo, hi = lo.reshape(n, -1), hi.reshape(n, -1)
    Cp, Cn = spec.C.clamp(min=0), spec.C.clamp(max=0)
    low = torch.einsum("nsy,ny->ns", Cp, lo) + torch.einsum("nsy,ny->ns", Cn, hi) + spec.d
    high = torch.einsum("nsy,ny->ns", Cp, hi) + torch.einsum("nsy,ny->ns", Cn, lo) + spec.d
    return low, high


def ibp_rows(problem: Problem, spec: Spec) -> tuple[torch.Tensor, torch.Tensor]:
    """IBP bounds of a spec's rows, exact on the affine prefix for non-box sets."""
    graph = problem.graph
    exact_prefix = type(problem.pset) is not Box
    tighten = None
    prefix = affine_prefix(graph) if exact_prefix else set()
    if exact_prefix:
        from .crown import node_bounds

        needed = consumed_by_nonlinear(graph) - {graph.ops[0].name}

        def tighten(op, bounds, box):
            if op.name in prefix and op.name in needed:
                return node_bounds(problem, op.name, bounds)
            return None

    bounds = intervals(problem, tighten=tighten)
    if graph.output in prefix:
        from .crown import spec_bounds

        return spec_bounds(problem, spec, bounds)
    lo, hi = bounds[graph.output]
    return spec_rows_interval(spec, lo, hi)


def _stack(a: Spec, b: Spec) -> Spec:
    return Spec(torch.cat([a.C, b.C], 1), torch.cat([a.d, b.d], 1))


def _read_outputs(problem: Problem) -> torch.Tensor:
    """The raw outputs (N, Y + 1) at the inputs that the score or the goal reads (zero elsewhere), and a
    NaN where the raw output holds one anywhere."""
    y = problem.y.reshape(problem.y.shape[0], -1)
    read = (problem.score.C != 0).any(1) | (problem.goal.C != 0).any(1)
    nan_anywhere = torch.where(torch.isnan(y).any(1), math.nan, 0.0).to(y.dtype)
    return torch.cat([torch.where(read, y, torch.zeros_like(y)), nan_anywhere[:, None]], 1)


def finish(problem: Problem, lo_rows, hi_rows, *, method, eps, norm, k, seconds, adapter, extra=None) -> Bounds:
    """Bounds result from the bounds of the stacked score and goal rows.

    An input where the model's output is NaN or infinite is not certified: its
    bounds are NaN and ``params["error"]`` says what the model returned.
    """
    s = problem.score.C.shape[1]
    # an interval that overflowed (inf - inf) bounds nothing: it becomes the whole line, which is sound
    lo_rows = torch.where(torch.isnan(lo_rows), -math.inf, lo_rows)
    hi_rows = torch.where(torch.isnan(hi_rows), math.inf, hi_rows)
    lower, upper = problem.score.interval(lo_rows[:, :s], hi_rows[:, :s])
    g_lower, g_upper = problem.goal.interval(lo_rows[:, s:], hi_rows[:, s:])
    center = problem.score.evaluate(problem.y)
    # guard against rounding: the centre's own score lies inside its bounds
    lower, upper = torch.minimum(lower, center), torch.maximum(upper, center)
    outputs = _read_outputs(problem)
    errors = input_reasons(outputs)
    bad = nonfinite_rows(outputs).to(lower.device)
    lower, upper, g_lower, g_upper = (torch.where(bad, math.nan, t) for t in (lower, upper, g_lower, g_upper))
    warn_refused(errors, outcome="their bounds are NaN and they are not certified", stacklevel=5)
    return Bounds(
        lower=lower,
        upper=upper,
        certified=(g_lower > 0) & ~bad,
        method=method,
        eps=(eps.tolist() if isinstance(eps, torch.Tensor) and eps.ndim else eps) if k is None else k,
        norm=norm if k is None else problem.pset.kind,
        params={
            "g_lower": g_lower,
            "g_upper": g_upper,
            "error": errors,
            "seconds": seconds,
            "device": str(adapter.device),
            "output": adapter.output.name,
            **(extra or {}),
        },
    )


def ibp(adapter, X, *, eps=None, k=None, norm: str = "linf", goal=None) -> Bounds:
    """Interval bounds of the adapter's score over a perturbation set around each input.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...) or inputs the adapter can encode
    eps : float or torch.Tensor of shape (N,), optional
        Radius of the ball (in ``norm``), one for all inputs or one per input,
        intersected with the valid range of the inputs ([0, 1] for one-hot DNA, the
        feature bounds otherwise).
    k : int, optional
        Instead of ``eps``: the sequences within ``k`` substitutions (one-hot DNA),
        or the vectors within ``k`` bit flips of binary features.
    norm : {"linf", "l2", "l1"}
    goal : Goal, optional
        What must not happen (default :func:`probekit.goals.flip`); ``certified`` is
        True where the goal's ``g`` stays above 0 over the whole set.

    Returns
    -------
    Bounds
        ``lower``, ``upper`` (N,) of the score; ``certified`` (N,); ``params["g_lower"]``
        and ``params["g_upper"]`` bound the goal's ``g``; ``params["error"]`` (N,) is
        ``""`` or why an input is not certified (the model returned NaN or inf on it,
        and its bounds are NaN).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> ibp(adapter, torch.zeros(1, 2), eps=0.0).certified.shape
    torch.Size([1])
    """
    start = time.perf_counter()
    with adapter.session(), torch.no_grad():
        problem = prepare(adapter, X, eps=eps, k=k, norm=norm, goal=goal)
        lo, hi = ibp_rows(problem, _stack(problem.score, problem.goal))
    return finish(problem, lo, hi, method="ibp", eps=eps, norm=norm, k=k, seconds=time.perf_counter() - start, adapter=adapter)


__all__ = ["ibp", "prepare", "intervals", "Problem"]
