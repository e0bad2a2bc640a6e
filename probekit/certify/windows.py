"""CROWN boxes of 1-D convolutional layers through their receptive windows.

The CROWN box of one neuron of a convolution stack depends only on the entries
of the layers below that the neuron sees: a window some tens of positions wide,
not the whole sequence. For a chain of one-input 1-D layers from the input to
the layer (``Conv1d``, ``BatchNorm1d``, ``MaxPool1d``, element-wise activations,
dropout) the backward pass of each neuron runs over its own window: the same
bounds as the dense pass, for a fraction of its work (about the window's width
over the sequence's length). Tensors here are (S, N, P, C, W): S rows (two per
channel, for the lower and the upper bound), N inputs, P positions of the
layer (one window each), C channels and W window positions.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel
>>> from probekit.certify.ibp import prepare, intervals
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 5), torch.nn.ReLU(), torch.nn.Conv1d(8, 8, 3), torch.nn.ReLU())
>>> adapter = SequenceModel(model, output=lambda y: y.sum((1, 2)), device="cpu")
>>> problem = prepare(adapter, ["ACGTACGTACGTAC"], eps=0.1)
>>> boxes = intervals(problem)
>>> lo, hi = windowed_bounds(problem, "model_2", boxes)
>>> bool((lo <= hi).all()) and tuple(lo.shape)
(1, 8, 8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .spec import Box, Hamming, LpBall, _k_smallest

_BUDGET = 2**24  # floats of one (S, N, P, C, W) tensor at the widest step


@dataclass
class Step:
    """One layer of a chain: how a window of its output maps to a window of its input.

    A window starting at ``start`` of width ``width`` at the output reads inputs
    from ``start * stride - pad``, ``(width - 1) * stride + span`` wide.
    """

    op: object
    kind: str  # conv, bn, act, max or alias
    module: object
    stride: int
    pad: int
    span: int
    length: int  # output positions
    in_length: int


def _one(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def _step(problem, op) -> Step | None:
    graph = problem.graph
    parent = graph.op(op.inputs[0]) if len(op.inputs) == 1 else None
    if parent is None or len(op.shape) != 2 or len(parent.shape) != 2:
        return None
    module = graph.modules.get(op.node.target) if op.node.op == "call_module" else None
    lengths = dict(length=op.shape[1], in_length=parent.shape[1])
    if op.kind in ("alias", "act") and op.shape == parent.shape:
        return Step(op, op.kind, None, 1, 0, 1, **lengths)
    if op.kind == "linear" and isinstance(module, nn.Conv1d):
        if module.padding_mode != "zeros":
            return None
        span = (module.kernel_size[0] - 1) * module.dilation[0] + 1
        # "same" pads (span - 1) // 2 on the left, the rest on the right (where windows are cut anyway)
        pad = {"valid": 0, "same": (span - 1) // 2}.get(module.padding) if isinstance(module.padding, str) else module.padding[0]
        return Step(op, "conv", module, module.stride[0], pad, span, **lengths)
    if op.kind == "linear" and op.signed == "bn_module" and isinstance(module, nn.BatchNorm1d):
        return Step(op, "bn", module, 1, 0, 1, **lengths)
    if op.kind == "max" and isinstance(module, nn.MaxPool1d) and _channel_local(op, parent):
        kernel, dilation = _one(module.kernel_size), _one(module.dilation)
        stride = _one(module.stride if module.stride is not None else module.kernel_size)
        return Step(op, "max", module, stride, _one(module.padding), (kernel - 1) * dilation + 1, **lengths)
    return None


def _channel_local(op, parent) -> bool:
    """Whether every window of a max op stays in its own channel (as max pooling's do)."""
    length, in_length = op.shape[1], parent.shape[1]
    idx = op.window
    out_channel = torch.arange(idx.shape[0], device=idx.device)[:, None] // length
    return bool(((idx < 0) | (idx // in_length == out_channel)).all())


def plan(problem, name: str) -> list | None:
    """The chain of :class:`Step` from the input to ``name`` (input side first), or None when there is none."""
    graph = problem.graph
    if type(problem.pset) not in (Box, LpBall, Hamming) or len(graph.ops[0].shape) != 2:
        return None
    steps = []
    op = graph.op(name)
    while op.kind != "input":
        step = _step(problem, op)
        if step is None:
            return None
        steps.append(step)
        op = graph.op(op.inputs[0])
    return steps[::-1] if op is graph.ops[0] and steps else None


def _widths(steps: list) -> list:
    """Window width at the output of each step, and at the input (first), for one output position."""
    widths = [1]
    for step in reversed(steps):
        widths.append((widths[-1] - 1) * step.stride + step.span)
    return widths[::-1]


def work(problem, steps: list) -> int:
    """Entries per input touched by the windowed CROWN box of the chain's last layer."""
    graph = problem.graph
    sizes = [graph.ops[0].shape[0]] + [s.op.shape[0] for s in steps]
    per_row = sum(c * w for c, w in zip(sizes, _widths(steps)))
    return 2 * int(math.prod(steps[-1].op.shape)) * per_row


@dataclass
class Starts:
    """Where the P windows start at one layer: ``first + p * step``."""

    first: int
    step: int
    count: int

    def down(self, stride: int, pad: int) -> "Starts":
        """The starts of the windows these read at the layer below."""
        return Starts(self.first * stride - pad, self.step * stride, self.count)

    def inside(self, width: int, length: int) -> bool:
        return self.first >= 0 and self.first + self.step * (self.count - 1) + width <= length

    def tensor(self, device) -> torch.Tensor:
        return self.first + self.step * torch.arange(self.count, device=device)


def _windows(t: torch.Tensor, starts: Starts, width: int, fill=0.0) -> torch.Tensor:
    """Windows (N, P, C, W) of ``t`` (N, C, L), a view where they stay inside; ``fill`` outside [0, L)."""
    length = t.shape[-1]
    left = max(0, -starts.first)
    right = max(0, starts.first + starts.step * (starts.count - 1) + width - length)
    if left or right:
        t = F.pad(t, (left, right), value=fill)
    t = t[..., starts.first + left :]
    return t.unfold(-1, width, starts.step)[:, :, : starts.count].permute(0, 2, 1, 3)


def _masked(A: torch.Tensor, starts: Starts, length: int) -> torch.Tensor:
    """A (S, N, P, C, W) with the window positions outside [0, length) set to 0."""
    w = A.shape[-1]
    if starts.inside(w, length):
        return A
    pos = starts.tensor(A.device)[:, None] + torch.arange(w, device=A.device)
    return A * ((pos >= 0) & (pos < length))[:, None, :].to(A.dtype)


def _prepare(problem, steps: list, bounds: dict) -> list:
    """Per step, what its backward pass reads, computed once over the whole sequence."""
    from .crown import relax

    out = []
    for step in steps:
        lower, upper = bounds[step.op.inputs[0]]
        if step.kind == "act":
            out.append(relax(problem.bound, step.op, lower, upper))
        elif step.kind == "max":
            out.append(_max_choice(step, lower, upper))
        elif step.kind == "bn":
            m = step.module
            scale = (m.running_var + m.eps).rsqrt()
            scale = scale * m.weight if m.weight is not None else scale
            shift = -m.running_mean * scale + (m.bias if m.bias is not None else 0.0)
            out.append((scale.to(lower.dtype), shift.to(lower.dtype)))
        else:
            out.append(None)
    return out


def _max_choice(step: Step, lower: torch.Tensor, upper: torch.Tensor):
    """For each output of a max: the input position it is bounded by, whether that is exact, and the top."""
    n = lower.shape[0]
    idx = step.op.window.to(lower.device)
    pad = idx < 0
    gidx = idx.clamp(min=0)
    wl = lower.reshape(n, -1)[:, gidx].masked_fill(pad, -math.inf)
    wu = upper.reshape(n, -1)[:, gidx].masked_fill(pad, -math.inf)
    j = wl.argmax(-1)
    sel = gidx[torch.arange(idx.shape[0], device=idx.device)[None], j]
    l_sel = wl.gather(-1, j[..., None])[..., 0]
    top = wu.max(-1).values
    others = wu.scatter(-1, j[..., None], -math.inf).max(-1).values
    shape = (n,) + tuple(step.op.shape)
    return (sel % step.in_length).reshape(shape), (l_sel >= others).reshape(shape), top.reshape(shape)


def _backward_step(step: Step, pre, A: torch.Tensor, starts: Starts, total: torch.Tensor):
    """One layer of the backward pass over windows: A at its output -> A at its input (and its starts)."""
    s, n, p, c, w = A.shape
    A = _masked(A, starts, step.length)
    if step.kind == "alias":
        return A, starts, total
    if step.kind == "act":
        lw, lb, uw, ub = (_windows(t, starts, w) for t in pre)
        up = A >= 0
        total = total + (A * torch.where(up, lb, ub)).sum((3, 4))
        return A * torch.where(up, lw, uw), starts, total
    if step.kind == "bn":
        scale, shift = pre
        total = total + A.sum(-1) @ shift
        return A * scale[:, None], starts, total
    below = starts.down(step.stride, step.pad)
    if step.kind == "conv":
        m = step.module
        if m.bias is not None:
            total = total + A.sum(-1) @ m.bias.to(A.dtype)
        flat = F.conv_transpose1d(A.reshape(s * n * p, c, w), m.weight.to(A.dtype), stride=step.stride,
                                  dilation=m.dilation[0], groups=m.groups)
        return flat.reshape(s, n, p, flat.shape[1], flat.shape[2]), below, total
    # max: the upper side keeps the chosen input where it dominates its window, else the window's top
    sel, exact, top = pre
    sel_w = _windows(sel, starts, w)
    exact_w = _windows(exact, starts, w, fill=True)
    top_w = _windows(top, starts, w)
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    total = total + torch.where(exact_w | (neg == 0), 0.0, neg * top_w).sum((3, 4))
    width_in = (w - 1) * step.stride + step.span
    rel = (sel_w - below.tensor(A.device)[None, :, None, None]).clamp(0, width_in - 1)
    A_in = torch.zeros(s, n, p, c, width_in, dtype=A.dtype, device=A.device)
    A_in.scatter_add_(-1, rel[None].expand(s, -1, -1, -1, -1), pos + neg * exact_w)
    return A_in, below, total


def _concretize(pset, A: torch.Tensor, starts: Starts) -> torch.Tensor:
    """Minimum over the set of ``sum(A * x)`` for A over input windows: (S, N, P, C, W) -> (S, N, P)."""
    s, n, p, c, w = A.shape
    A = _masked(A, starts, pset.lower.shape[-1])
    if isinstance(pset, Hamming):
        x0 = _windows(pset.x0, starts, w)
        editable = _windows(pset.editable[:, None], starts, w, fill=False)[:, :, 0]  # (N, P, W)
        ref = (A * x0).sum(3)
        alt = A.masked_fill(x0.bool(), math.inf).min(3).values
        gains = (alt - ref).clamp(max=0).masked_fill(~editable, 0.0)  # (S, N, P, W)
        best = _k_smallest(gains.reshape(s, n * p, w), pset.k.repeat_interleave(p), pset.kmax).reshape(s, n, p)
        return ref.sum(-1) + best
    center = _windows((pset.lower + pset.upper) / 2, starts, w)
    radius = _windows((pset.upper - pset.lower) / 2, starts, w)
    box = (A * center).sum((3, 4)) - (A.abs() * radius).sum((3, 4))
    if isinstance(pset, LpBall):
        x0 = _windows(pset.x0, starts, w)
        q = {2.0: 2.0, 1.0: math.inf}[pset.p]
        norms = torch.linalg.vector_norm(A.reshape(s, n, p, -1), ord=q, dim=-1)
        ball = (A * x0).sum((3, 4)) - pset.eps.to(A.dtype)[None, :, None] * norms
        return torch.maximum(ball, box)
    return box


def windowed_bounds(problem, name: str, bounds: dict, steps: list | None = None):
    """CROWN box (lower, upper), each (N, C, L), of the chain's last layer ``name``; None without a chain."""
    steps = plan(problem, name) if steps is None else steps
    if steps is None:
        return None
    c, length = steps[-1].op.shape
    n = problem.bound.n
    ref = problem.bound.value(name)
    pre = _prepare(problem, steps, bounds)
    sizes = [problem.graph.ops[0].shape[0]] + [st.op.shape[0] for st in steps]
    widest = max(ch * wd for ch, wd in zip(sizes, _widths(steps)))
    chunk = max(1, _BUDGET // (2 * c * n * widest))
    eye = torch.eye(c, dtype=ref.dtype, device=ref.device)
    rows = torch.cat([eye, -eye])[:, None, None, :, None]  # (2C, 1, 1, C, 1)
    lo = torch.empty((n, c, length), dtype=ref.dtype, device=ref.device)
    hi = torch.empty_like(lo)
    for p0 in range(0, length, chunk):
        starts = Starts(p0, 1, min(length, p0 + chunk) - p0)
        A = rows.expand(-1, n, starts.count, -1, -1)
        total = torch.zeros(2 * c, n, starts.count, dtype=ref.dtype, device=ref.device)
        for step, data in zip(reversed(steps), reversed(pre)):
            A, starts, total = _backward_step(step, data, A, starts, total)
        total = total + _concretize(problem.pset, A, starts)
        lo[:, :, p0 : p0 + total.shape[2]] = total[:c].permute(1, 0, 2)
        hi[:, :, p0 : p0 + total.shape[2]] = -total[c:].permute(1, 0, 2)
    return lo, hi


__all__ = ["windowed_bounds", "plan", "work", "Step"]
