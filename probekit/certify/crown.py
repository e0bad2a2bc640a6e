"""CROWN: bounds by backward linear relaxation (Zhang et al., 2018).

Starting from the linear forms of the score (or of the goal's margins), CROWN
walks the traced graph backwards, replacing every activation by a linear lower
and upper bound over its input box and every affine operation by its transpose,
until it reaches a linear function of the input. That function is minimised
exactly over the perturbation set: by the dual norm for L-inf, L2 and L1 balls,
and by the k largest per-position changes for substitutions and bit flips.
Intermediate boxes come from CROWN itself (``intermediate="crown"``, tighter)
or from IBP (``"ibp"``, faster: CROWN-IBP); both are intersected with IBP, so
CROWN is never looser than IBP. Affine maps that read an L-inf box directly
keep their interval boxes, which are already exact. The CROWN box of a layer
bounds all its neurons in batched backward passes, two rows per neuron; in a
stack of 1-D convolutions each row runs over the neuron's receptive window
only (:mod:`probekit.certify.windows`). A layer where that work passes a
budget gets its IBP box, and the result says so (``method="crown-ibp"``).

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
>>> adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
>>> from probekit.certify import ibp
>>> X = torch.randn(3, 4)
>>> a, b = ibp(adapter, X, eps=0.01), crown(adapter, X, eps=0.01)
>>> bool(((b.upper - b.lower) <= (a.upper - a.lower) + 1e-6).all())
True
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .._warnings import warn
from ..results import Bounds
from .ibp import (
    Problem,
    _stack,
    affine_prefix,
    consumed_by_nonlinear,
    finish,
    interval_step,
    intervals,
    prepare,
    spec_rows_interval,
)
from .spec import Box, Hamming, LpBall, Spec, _k_smallest
from .windows import plan as window_plan
from .windows import windowed_bounds
from .windows import work as window_work

_CONVEX = {"elu", "softplus", "convex"}
_S_SHAPED = {"sigmoid", "tanh"}
_BUDGET = 2**24  # floats per backward chunk
_MAX_NEURONS = 4096  # by default, wider layers get IBP boxes
_WORK = 2**23  # by default, so does a layer whose CROWN box would touch more entries than this per input


def _numel(shape) -> int:
    return int(math.prod(shape)) if shape else 1


def _row_sums(t: torch.Tensor) -> torch.Tensor:
    """Sum over everything but the first two axes (S, N, *shape) -> (S, N); shape may be ()."""
    return t.reshape(t.shape[0], t.shape[1], -1).sum(-1)


def _deriv(f, t: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        t = t.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(t).sum(), t)
    return grad.detach()


def relax(bound, op, lower: torch.Tensor, upper: torch.Tensor):
    """Linear bounds ``lw x + lb <= f(x) <= uw x + ub`` of an activation on ``[lower, upper]``."""
    l, u = lower, upper
    zero = torch.zeros_like(l)
    if op.act in ("relu", "leaky_relu"):
        alpha = op.param if op.act == "leaky_relu" else 0.0
        unstable = (l < 0) & (u > 0)
        active = l >= 0
        width = (u - l).clamp(min=1e-12)
        one = torch.ones_like(l)  # a tensor operand keeps the bounds' dtype (two numbers would take the default)
        up_slope = torch.where(unstable, (u - alpha * l) / width, torch.where(active, one, alpha))
        up_int = torch.where(unstable, alpha * l - up_slope * l, zero)
        # adaptive lower slope (CROWN): the identity when the positive side is larger
        low_slope = torch.where(unstable, torch.where(u >= -l, one, alpha), torch.where(active, one, alpha))
        return low_slope, zero, up_slope, up_int
    f = lambda v: bound.apply(op, v)  # noqa: E731
    fl, fu = f(l), f(u)
    # op.slack: how far f may fall below the smooth monotone (and convex) curve it follows,
    # so that curve's bounds from f's values, widened by it, bound f
    tol = 1e-6 * (1 + fl.abs() + fu.abs()) + op.slack
    const = (zero, fl - tol, zero, fu + tol)
    if op.act not in _CONVEX | _S_SHAPED:
        return const
    width = u - l
    narrow = width < 1e-6
    m = (l + u) / 2
    fm, dm = f(m), _deriv(f, m)
    chord_s = (fu - fl) / width.clamp(min=1e-6)
    chord = (chord_s, fl - chord_s * l)
    tangent = (dm, fm - dm * m)
    if op.act in _CONVEX:
        low, up = tangent, chord
    else:
        k = torch.minimum(_deriv(f, l), _deriv(f, u))
        mixed_low, mixed_up = (k, fl - k * l), (k, fu - k * u)
        convex, concave = u <= 0, l >= 0
        low = tuple(torch.where(convex, t, torch.where(concave, c, x)) for t, c, x in zip(tangent, chord, mixed_low))
        up = tuple(torch.where(convex, c, torch.where(concave, t, x)) for t, c, x in zip(tangent, chord, mixed_up))
    lw = torch.where(narrow, zero, low[0])
    lb = torch.where(narrow, fl, low[1]) - tol
    uw = torch.where(narrow, zero, up[0])
    ub = torch.where(narrow, fu, up[1]) + tol
    return lw, lb, uw, ub


def _conv_backward(module, a: torch.Tensor, in_shape: tuple):
    """Transpose of a zero-padded Conv1d/Conv2d: a (S, N, C_out, *out) -> (S, N, *in_shape), and the bias term (S, N)."""
    s, n = a.shape[:2]
    flat = a.reshape((s * n,) + tuple(a.shape[2:]))
    transpose = torch.nn.grad.conv1d_input if isinstance(module, torch.nn.Conv1d) else torch.nn.grad.conv2d_input
    grad = transpose((s * n,) + tuple(in_shape), module.weight.to(a.dtype), flat, module.stride, module.padding,
                     module.dilation, module.groups)
    bias = 0.0
    if module.bias is not None:
        bias = a.reshape(s, n, a.shape[2], -1).sum(-1) @ module.bias.to(a.dtype)
    return grad.reshape((s, n) + tuple(in_shape)), bias


def _bn_backward(module, a: torch.Tensor):
    """Transpose of an eval-mode BatchNorm: a per-channel scale, and the bias term (S, N)."""
    scale = (module.running_var + module.eps).rsqrt()
    if module.weight is not None:
        scale = scale * module.weight
    shift = -module.running_mean * scale
    if module.bias is not None:
        shift = shift + module.bias
    view = (-1,) + (1,) * (a.ndim - 3)
    return a * scale.to(a.dtype).view(view), a.reshape(a.shape[0], a.shape[1], a.shape[2], -1).sum(-1) @ shift.to(a.dtype)


def _linear_backward(bound, op, a: torch.Tensor):
    graph = bound.graph
    n = bound.n
    module = graph.modules.get(op.node.target) if op.node.op == "call_module" else None
    if op.signed == "linear_module":
        bias = _row_sums(a * module.bias) if module.bias is not None else 0.0
        return [a @ module.weight], bias
    if op.signed == "conv_module" and module.padding_mode == "zeros" and isinstance(module.padding, tuple):
        grad, bias = _conv_backward(module, a, graph.op(op.inputs[0]).shape)
        return [grad], bias
    if op.signed == "bn_module" and a.ndim >= 3:
        grad, bias = _bn_backward(module, a)
        return [grad], bias
    zeros = [torch.zeros((n,) + graph.op(name).shape, dtype=a.dtype, device=a.device) for name in op.inputs]
    with torch.enable_grad():
        out, vjp_fn = torch.func.vjp(lambda *v: bound.apply(op, *v), *zeros)
    grads = torch.func.vmap(vjp_fn)(a)
    return list(grads), _row_sums(a * out)


def _max_backward(op, a: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor):
    s, n = a.shape[:2]
    idx = op.window.to(a.device)  # already there: graph tracing puts the windows on the inputs' device
    pad = idx < 0
    gidx = idx.clamp(min=0)
    wl = lower.reshape(n, -1)[:, gidx].masked_fill(pad, -float("inf"))
    wu = upper.reshape(n, -1)[:, gidx].masked_fill(pad, -float("inf"))
    j = wl.argmax(-1)  # (N, O)
    sel = gidx[torch.arange(idx.shape[0], device=a.device)[None], j]
    l_sel = wl.gather(-1, j[..., None])[..., 0]
    top = wu.max(-1).values
    others = wu.scatter(-1, j[..., None], -float("inf")).max(-1).values
    exact = l_sel >= others  # one element dominates its window: the max is that element
    af = a.reshape(s, n, -1)
    neg = af.clamp(max=0)
    coef = af.clamp(min=0) + neg * exact
    bias = (neg * torch.where(exact, torch.zeros_like(top), top)).sum(-1)
    a_in = torch.zeros(s, n, lower[0].numel(), dtype=a.dtype, device=a.device)
    a_in.scatter_add_(2, sel[None].expand(s, -1, -1), coef)
    return a_in.reshape((s,) + tuple(lower.shape)), bias


def backward(problem: Problem, start: str, A: torch.Tensor, bounds: dict) -> torch.Tensor:
    """Lower bound of ``sum(A * z_start)`` over the set: A (S, N, *shape) -> (S, N)."""
    graph, bound = problem.graph, problem.bound
    names = [op.name for op in graph.ops]
    pending = {start: A}
    total = torch.zeros(A.shape[:2], dtype=A.dtype, device=A.device)

    def push(name, a):
        pending[name] = pending[name] + a if name in pending else a

    for op in reversed(graph.ops[: names.index(start) + 1]):
        a = pending.pop(op.name, None)
        if a is None:
            continue
        if op.kind == "input":
            total = total + problem.pset.concretize(a)
        elif op.kind == "alias":
            push(op.inputs[0], a)
        elif op.kind == "linear":
            grads, bias = _linear_backward(bound, op, a)
            total = total + bias
            for name, g in zip(op.inputs, grads):
                push(name, g)
        elif op.kind == "act":
            lw, lb, uw, ub = relax(bound, op, *bounds[op.inputs[0]])
            pos, neg = a.clamp(min=0), a.clamp(max=0)
            push(op.inputs[0], pos * lw + neg * uw)
            total = total + _row_sums(pos * lb + neg * ub)
        elif op.kind == "max":
            a_in, bias = _max_backward(op, a, *bounds[op.inputs[0]])
            total = total + bias
            push(op.inputs[0], a_in)
    return total


def _max_numel(problem: Problem, name: str) -> int:
    names = [op.name for op in problem.graph.ops]
    return max(_numel(op.shape) for op in problem.graph.ops[: names.index(name) + 1])


def _conv_on_input(problem: Problem, op):
    """The Conv1d module of ``op`` when it reads the canonical input directly (else None)."""
    graph = problem.graph
    module = graph.modules.get(op.node.target) if op.node.op == "call_module" else None
    if not isinstance(module, torch.nn.Conv1d) or module.groups != 1 or module.padding_mode != "zeros":
        return None
    if not isinstance(module.padding, tuple):
        return None
    chain, name = [], op.inputs[0]
    while name != graph.ops[0].name:
        o = graph.op(name)
        if not (o.kind == "alias" or (o.kind == "linear" and o.signed == "struct" and len(o.inputs) == 1)):
            return None
        chain.append(o)
        name = o.inputs[0]
    x = problem.bound.value(graph.ops[0].name)
    if x.ndim != 3:
        return None
    # the chain must move whole columns (positions) and permute channels: identity, flips, reverse complement
    ids = torch.arange(x[0].numel(), device=x.device, dtype=x.dtype).reshape(x.shape[1:])[None].expand_as(x)
    v = ids
    for o in reversed(chain):
        v = v if o.kind == "alias" else problem.bound.apply(o, v)
    if v.shape != x.shape or not torch.equal(v.sort(1).values.flatten(1).sort(1).values, ids.flatten(1)):
        return None
    source = (v.long() % x.shape[2])[0]  # (A, L) input position of each entry
    if not (source == source[:1]).all():
        return None
    return module, chain, source[0]


def _conv_first_layer(problem: Problem, op, found) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact bounds of a Conv1d on one-hot input over k substitutions (or an Lp ball)."""
    module, chain, source = found
    pset = problem.pset
    y0 = problem.bound.value(op.name)
    W = module.weight.detach().to(y0)
    if isinstance(pset, LpBall):
        q = {2.0: 2.0, 1.0: float("inf")}[pset.p]
        radius = pset.eps[:, None, None] * torch.linalg.vector_norm(W.flatten(1), ord=q, dim=1)[None, :, None]
        return y0 - radius, y0 + radius
    x0 = pset.x0
    for o in reversed(chain):
        x0 = x0 if o.kind == "alias" else problem.bound.apply(o, x0)
    pad, dil, stride = module.padding[0], module.dilation[0], module.stride[0]
    span = (W.shape[2] - 1) * dil + 1
    win = F.pad(x0, (pad, pad)).unfold(-1, span, stride)[..., ::dil]  # (N, A, L', K)
    edit_mask = pset.editable[:, source].to(x0.dtype)
    editable = F.pad(edit_mask, (pad, pad)).unfold(-1, span, stride)[..., ::dil] > 0.5
    if win.shape[2] != y0.shape[-1]:
        return None
    ref = win.argmax(1)  # (N, L', K)
    editable = editable & (win.sum(1) > 0)
    w_ref = torch.einsum("caj,natj->nctj", W, win)
    order = W.sort(dim=1)
    lo1, lo2 = order.values[:, 0], order.values[:, 1]  # (C, K)
    hi1, hi2 = order.values[:, -1], order.values[:, -2]
    arg_lo, arg_hi = order.indices[:, 0], order.indices[:, -1]
    is_lo = ref[:, None] == arg_lo[None, :, None, :]
    is_hi = ref[:, None] == arg_hi[None, :, None, :]
    alt_min = torch.where(is_lo, lo2[None, :, None], lo1[None, :, None])
    alt_max = torch.where(is_hi, hi2[None, :, None], hi1[None, :, None])
    mask = editable[:, None]
    down = ((alt_min - w_ref).clamp(max=0) * mask).flatten(0, 2)  # (N*C*L', K)
    up = ((alt_max - w_ref).clamp(min=0) * mask).flatten(0, 2)
    n, c, length = y0.shape
    k = pset.k.repeat_interleave(c * length)
    lower = y0 + _k_smallest(down[None], k, pset.kmax)[0].view(n, c, length)
    upper = y0 - _k_smallest(-up[None], k, pset.kmax)[0].view(n, c, length)
    return lower, upper


def _reads_input(problem: Problem, op) -> bool:
    """Whether ``op`` reads the input alone, as it is or with its entries rearranged (reshape, permute, flip)."""
    graph = problem.graph
    if len(op.inputs) != 1:
        return False
    chain, name = [], op.inputs[0]
    while name != graph.ops[0].name:
        o = graph.op(name)
        if len(o.inputs) != 1 or not (o.kind == "alias" or (o.kind == "linear" and o.signed == "struct")):
            return False
        chain.append(o)
        name = o.inputs[0]
    if all(o.kind == "alias" for o in chain):
        return True
    x = problem.bound.value(graph.ops[0].name)
    numel = x[0].numel()
    if numel * torch.finfo(x.dtype).eps > 1:  # the entries' numbers below would not all be exact
        return False
    ids = torch.arange(numel, device=x.device, dtype=x.dtype).reshape(x.shape[1:])[None].expand_as(x)
    v = ids
    for o in reversed(chain):
        v = v if o.kind == "alias" else problem.bound.apply(o, v)
    # a rearrangement moves every entry once: no entry dropped, repeated, summed or padded
    return v[0].numel() == numel and torch.equal(v.reshape(x.shape[0], -1).sort(1).values, ids.reshape(x.shape[0], -1))


def interval_is_exact(problem: Problem, op) -> bool:
    """Whether the interval step gives the exact range of ``op``'s every element.

    It does for an affine map of a box read directly (or through aliases and
    rearrangements): over a box, ``c + J x`` ranges exactly over ``c + J x0 +- |J| r``.
    """
    if type(problem.pset) is not Box:
        return False
    while op.kind == "alias":
        op = problem.graph.op(op.inputs[0])
    return op.kind == "input" or (op.kind == "linear" and _reads_input(problem, op))


def _linear_on_ball(problem: Problem, op, bounds: dict):
    """Exact box of a Linear module reading an Lp ball's input: ``W x0 + b +- eps ||W_i||_q``, within its interval box."""
    pset = problem.pset
    module = problem.graph.modules[op.node.target]
    y0 = problem.bound.value(op.name)
    q = {2.0: 2.0, 1.0: float("inf")}[pset.p]
    norms = torch.linalg.vector_norm(module.weight.detach().to(y0), ord=q, dim=1)
    radius = pset.eps.to(y0).view((-1,) + (1,) * (y0.ndim - 1)) * norms
    lo, hi = interval_step(problem.bound, op, bounds)  # the ball meets the valid range: a box of its own
    return torch.maximum(y0 - radius, lo), torch.minimum(y0 + radius, hi)


def node_bounds(problem: Problem, name: str, bounds: dict, *, dense: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """CROWN box of one operation's output (all its elements, in chunks of rows).

    A layer at the end of a chain of 1-D convolutional layers is bounded over each
    neuron's receptive window (:mod:`probekit.certify.windows`): the same box, for
    less work; ``dense=True`` runs the pass over whole tensors instead.
    """
    op = problem.graph.op(name)
    n = problem.bound.n
    if type(problem.pset) is LpBall and op.signed == "linear_module" and _reads_input(problem, op):
        return _linear_on_ball(problem, op, bounds)
    steps = None if dense else window_plan(problem, name)
    costly = steps is None and _numel(op.shape) * _numel(problem.graph.ops[0].shape) * n > 4 * _BUDGET
    # k substitutions: exact and fast; Lp balls: the full kernel's dual norm, looser at the edges
    if (isinstance(problem.pset, Hamming) or (isinstance(problem.pset, LpBall) and costly)) and op.kind == "linear":
        found = _conv_on_input(problem, op)
        if found is not None:
            fast = _conv_first_layer(problem, op, found)
            if fast is not None:
                return fast
    if steps is not None:
        return windowed_bounds(problem, name, bounds, steps)
    n = problem.bound.n
    m = _numel(op.shape)
    chunk = max(1, _BUDGET // (2 * n * _max_numel(problem, name)))
    ref = problem.bound.value(name)
    lows, highs = [], []
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        rows = torch.zeros(e - s, m, dtype=ref.dtype, device=ref.device)  # rows s..e-1 of the identity
        rows.scatter_(1, torch.arange(s, e, device=ref.device)[:, None], 1.0)
        A = torch.cat([rows, -rows])[:, None].expand(-1, n, -1).reshape((2 * (e - s), n) + op.shape)
        low = backward(problem, name, A, bounds)
        lows.append(low[: e - s])
        highs.append(-low[e - s :])
    lo = torch.cat(lows).T.reshape((n,) + op.shape)
    hi = torch.cat(highs).T.reshape((n,) + op.shape)
    return lo, hi


def spec_bounds(problem: Problem, spec: Spec, bounds: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """CROWN bounds (N, S) of the rows ``C y + d`` of a spec."""
    graph = problem.graph
    n, s, _ = spec.C.shape
    shape = graph.op(graph.output).shape
    A = torch.cat([spec.C, -spec.C], 1).permute(1, 0, 2).reshape((2 * s, n) + shape)
    chunk = max(1, _BUDGET // (n * _max_numel(problem, graph.output)))
    lows = [backward(problem, graph.output, A[i : i + chunk], bounds) for i in range(0, 2 * s, chunk)]
    low = torch.cat(lows)
    return low[:s].T + spec.d, -low[s:].T + spec.d


def _sources(graph, names) -> set:
    """The operations whose values ``names`` carry: aliases resolved to what they alias."""
    out = set()
    for name in names:
        while graph.op(name).kind == "alias":
            name = graph.op(name).inputs[0]
        out.add(name)
    return out


def _path_numel(problem: Problem, name: str) -> int:
    """Entries per input that one backward pass from ``name`` walks: the sizes of ``name`` and all it reads."""
    graph = problem.graph
    seen, todo = {name}, [name]
    while todo:
        for parent in graph.op(todo.pop()).inputs:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return sum(_numel(graph.op(n).shape) for n in seen)


def crown_work(problem: Problem, name: str) -> int:
    """Entries per input touched by the CROWN box of ``name``: two rows per neuron, each walking its inputs
    (their receptive windows, for a chain of 1-D convolutional layers)."""
    steps = window_plan(problem, name)
    if steps is not None:
        return window_work(problem, steps)
    return 2 * _numel(problem.graph.op(name).shape) * _path_numel(problem, name)


def intermediate_boxes(problem: Problem, *, intermediate: str = "crown", max_neurons: int | None = None):
    """Boxes of every operation for CROWN, and the layers whose boxes came from IBP instead.

    Only the boxes of layers read by an activation or a maximum matter; those of
    the activations and maxima themselves follow exactly from their inputs' boxes
    (a relaxation of a monotone function is never tighter than its values at the
    box's ends), so only affine layers get CROWN boxes.

    Returns
    -------
    bounds : dict of name -> (lower, upper), each of shape (N, *op.shape)
    boxes : dict of label -> (str, int)
        For each layer whose box matters, how it was found and its width: ``"exact"``
        (an affine map of an L-inf box), ``"crown (windows)"`` (over each neuron's
        receptive window), ``"crown"``, or ``"ibp"`` when its CROWN box would cost too
        much (``intermediate="crown"``) or by request (``"ibp"``).
    """
    if intermediate not in ("crown", "ibp"):
        raise ValueError(f"intermediate must be 'crown' or 'ibp', got {intermediate!r}")
    graph = problem.graph
    needed = _sources(graph, consumed_by_nonlinear(graph)) - {graph.ops[0].name}
    prefix = affine_prefix(graph) if type(problem.pset) is not Box else set()
    boxes = {}

    def affordable(op) -> bool:
        if max_neurons is not None:
            return _numel(op.shape) <= max_neurons
        # the width limit guards the dense pass, whose matrix products the work count leaves out
        windowed = window_plan(problem, op.name) is not None
        return (windowed or _numel(op.shape) <= _MAX_NEURONS) and crown_work(problem, op.name) <= _WORK

    def tighten(op, bounds, box):
        if op.name not in needed or op.kind != "linear":
            return None
        how = "ibp"
        if interval_is_exact(problem, op):
            how = "exact"
        elif op.name in prefix or (intermediate == "crown" and affordable(op)):
            how = "crown (windows)" if window_plan(problem, op.name) is not None else "crown"
        label = op.label if op.label not in boxes else f"{op.label} [{op.name}]"  # a module called twice
        boxes[label] = (how, _numel(op.shape))
        return node_bounds(problem, op.name, bounds) if how.startswith("crown") else None

    return intervals(problem, tighten=tighten), boxes


def _ibp_warning(ibp_layers: list, max_neurons: int | None) -> str:
    """The warning for layers that got IBP boxes: ``ibp_layers`` is a list of (label, width)."""
    label, width = ibp_layers[0]
    widest = max(w for _, w in ibp_layers)
    why = (f"wider than max_neurons={max_neurons}" if max_neurons is not None else
           f"too costly for CROWN boxes (over {_MAX_NEURONS} neurons, or over 2**{_WORK.bit_length() - 1} numbers "
           "per input in their backward passes)")
    return (
        f"CROWN-IBP bounds: {len(ibp_layers)} intermediate layer(s) (first: {label}, {width} neurons) got IBP "
        f"boxes, {why}; pass max_neurons={widest} for CROWN boxes everywhere (tighter, slower)"
    )


def crown_rows(
    problem: Problem,
    spec: Spec,
    *,
    intermediate: str = "crown",
    max_neurons: int | None = None,
    warn_wide: bool = False,
    info: dict | None = None,
):
    """CROWN bounds of a spec's rows, intersected with IBP; -inf and inf where they overflowed to NaN.

    ``info``, when given, receives ``"method"`` ("crown", or "crown-ibp" when
    some intermediate layer got an IBP box), ``"ibp_layers"`` (their labels) and
    ``"boxes"`` (label -> how each box that matters was found, see
    :func:`intermediate_boxes`).
    """
    graph = problem.graph
    bounds, boxes = intermediate_boxes(problem, intermediate=intermediate, max_neurons=max_neurons)
    ibp_layers = [(label, width) for label, (how, width) in boxes.items() if how == "ibp"]
    if ibp_layers and warn_wide and intermediate == "crown":
        warn(_ibp_warning(ibp_layers, max_neurons), stacklevel=4)
    if info is not None:
        info["method"] = "crown-ibp" if ibp_layers else "crown"
        info["ibp_layers"] = [label for label, _ in ibp_layers]
        info["boxes"] = {label: how for label, (how, _) in boxes.items()}
    lo, hi = spec_bounds(problem, spec, bounds)
    ilo, ihi = spec_rows_interval(spec, *bounds[graph.output])
    lo, hi = torch.maximum(lo, ilo), torch.minimum(hi, ihi)
    # a bound that overflowed (inf - inf) bounds nothing: the whole line, never a NaN that compares false
    return torch.where(torch.isnan(lo), -math.inf, lo), torch.where(torch.isnan(hi), math.inf, hi)


def crown(
    adapter,
    X,
    *,
    eps=None,
    k=None,
    norm: str = "linf",
    goal=None,
    intermediate: str = "crown",
    max_neurons: int | None = None,
) -> Bounds:
    """CROWN bounds of the adapter's score over a perturbation set around each input.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...) or inputs the adapter can encode
    eps : float or torch.Tensor of shape (N,), optional
        Radius of the ball in ``norm`` (one per input, or one for all), intersected
        with the inputs' valid range.
    k : int, optional
        Instead of ``eps``: sequences within ``k`` substitutions, or ``k`` bit flips.
    norm : {"linf", "l2", "l1"}
    goal : Goal, optional
        Default :func:`probekit.goals.flip`; for a class output the goal's margins
        ``logit[c0] - logit[j]`` are bounded directly (a tight specification).
    intermediate : {"crown", "ibp"}
        How the boxes of pre-activation layers are found: CROWN, or IBP (CROWN-IBP,
        faster and looser).
    max_neurons : int, optional
        Layers wider than this get IBP boxes even with ``intermediate="crown"``. By
        default a layer gets an IBP box when its CROWN box would touch more than
        ``2**23`` numbers per input (two backward rows per neuron, each as large as
        the layers below it, or as its receptive window in a stack of 1-D
        convolutions), or when it is wider than 4096 and not in such a stack.

    Returns
    -------
    Bounds
        ``method`` is ``"crown"``, or ``"crown-ibp"`` when some intermediate layer got
        an IBP box; ``params["ibp_layers"]`` names those layers, and a
        :class:`~probekit.ProbekitWarning` says so when they were too costly;
        ``params["boxes"]`` says how the box of each layer read by an activation or a
        maximum was found (``"exact"``, ``"crown (windows)"``, ``"crown"``, ``"ibp"``).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> b = crown(adapter, torch.zeros(1, 2), eps=0.5, norm="l2")
    >>> bool(b.upper - b.lower >= 0)
    True
    """
    start = time.perf_counter()
    with adapter.session(), torch.no_grad():
        problem = prepare(adapter, X, eps=eps, k=k, norm=norm, goal=goal)
        info: dict = {}
        lo, hi = crown_rows(
            problem, _stack(problem.score, problem.goal), intermediate=intermediate, max_neurons=max_neurons,
            warn_wide=True, info=info,
        )
    result = finish(
        problem, lo, hi, method=info["method"], eps=eps, norm=norm, k=k, seconds=time.perf_counter() - start,
        adapter=adapter, extra={"intermediate": intermediate, "ibp_layers": info["ibp_layers"], "boxes": info["boxes"]},
    )
    return result


def substitution_bounds(adapter, X, *, k, goal=None, method: str = "crown") -> Bounds:
    """Bounds over the sequences within ``k`` substitutions (or ``k`` bit flips of binary features).

    The first affine layers are bounded exactly by the ``k`` largest per-position
    changes inside each receptive field; ``method`` ("crown" or "ibp") goes on from there.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> substitution_bounds(adapter, ["ACGTACGTAC"], k=1).norm
    'hamming'
    """
    if method == "ibp":
        from .ibp import ibp

        return ibp(adapter, X, k=k, goal=goal)
    return crown(adapter, X, k=k, goal=goal)


__all__ = ["crown", "substitution_bounds", "backward", "relax"]
