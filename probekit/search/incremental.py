"""Exact incremental in-silico mutagenesis for models with local early layers.

A single substitution at position ``p`` changes only a window of each early
convolutional layer: the window grows with each kernel (by ``(k - 1) * d``),
shrinks with each pooling, and is the union of both branches at a residual
addition. This module traces the model with :mod:`torch.fx`, finds its local
prefix (convolutions, pooling, elementwise activations, BatchNorm and Dropout
in eval, residual additions, per-position linear maps), caches the activations
of the unedited sequences, and for a batch of mutants recomputes only the
window of each layer before running the rest of the network (dense layers,
global pooling, attention) in full on the spliced activations. A global max
over positions is read from running maxima of the reference plus the window,
without the full activation.

Stride-1 convolutions are updated through their linearity: the new window is
the cached window plus the convolution of the change of its input; where the
window is small that convolution is one banded matrix product (for the first
convolution on one-hot input, a column swap of the kernel). Pooling and strided
convolutions recompute their output window from the spliced input window,
reading only the cached rows around the change. The result equals per-mutant
forward passes up to floating-point rounding.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
>>> X = adapter.encode(["ACGTACGTACGTACGT"])
>>> scores = incremental_single_substitutions(adapter, X, torch.arange(16), lambda y, rows: y[:, 1])
>>> scores.shape
torch.Size([1, 16, 4])
"""

from __future__ import annotations

import math
import operator
import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from .._device import has_forward_hooks, map_batches
from .._inplace import read_after_write, written_input
from .._warnings import warn
from ..encode.dna import complement_order

# --------------------------------------------------------------------------- op tables

_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LogSigmoid, nn.Tanhshrink, nn.Identity, nn.Dropout, nn.AlphaDropout, nn.Dropout1d,
)
_ELEMENTWISE_FUNCTIONS = {
    torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.softplus, F.softsign, F.hardtanh, F.hardswish,
    F.hardsigmoid, F.logsigmoid, torch.exp, torch.abs, torch.neg, operator.neg, torch.square, torch.sqrt,
    torch.log1p, torch.clamp, torch.clip, F.dropout, F.alpha_dropout, F.dropout1d,
}
_ELEMENTWISE_METHODS = {
    "relu", "sigmoid", "tanh", "exp", "abs", "neg", "square", "sqrt", "log1p", "clamp", "clip",
    "clamp_min", "clamp_max", "contiguous", "float",
}
_BINARY_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
    torch.div, torch.maximum, torch.minimum,
}
_BINARY_METHODS = {"add", "sub", "mul", "div"}
_DROPOUT_FUNCTIONS = {F.dropout, F.alpha_dropout, F.dropout1d}


@dataclass
class _Local:
    """Static description of a local tensor: layout, size and the window each position changes."""

    kind: str  # "input", "unary", "binary", "delta_conv", "recompute"
    pos_axis: int  # 2: model tensor is (N, C, L); 1: it is (N, L, C)
    channels: int
    length: int
    width: int  # window width W
    starts: torch.Tensor  # (L_input,) window start for a substitution at each input position
    params: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- tracing

# per model: the state it was traced in, and its graph (None: it cannot be traced)
_GRAPHS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, fx.Graph | None]]" = weakref.WeakKeyDictionary()
_MODULE_INTERNALS = frozenset(nn.Module().__dict__)  # parameters, buffers, hooks, submodules, training flag
_SHORT = 64  # sequences up to this length are compared by value, longer ones by identity


def _frozen(value):
    """A hashable stand-in for an attribute's value that changes when the value does."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value), value._version)
    if isinstance(value, (tuple, list)) and len(value) <= _SHORT:
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, (tuple, list, dict, set)):
        return (type(value).__name__, id(value), len(value))
    return ("object", id(value))


def _traced_state(model: nn.Module) -> tuple:
    """What a trace froze in: each submodule's type, forward and plain attributes (flags, sizes, constants).

    Tracing runs Python control flow once, so a trace is stale when any of these changes (a notebook
    user switching ``model.reverse_complement = True``, say); parameters and buffers are read at run time.
    """
    return tuple(
        (name, type(module), _frozen(module.__dict__.get("forward", type(module).forward)),
         tuple((key, _frozen(value)) for key, value in module.__dict__.items() if key not in _MODULE_INTERNALS))
        for name, module in model.named_modules()
    )


def _trace(model: nn.Module) -> fx.Graph | None:
    if isinstance(model, torch.jit.ScriptModule):
        return None  # compiled code: no Python forward to trace
    try:
        state = _traced_state(model)
    except Exception:  # noqa: BLE001 - a module whose state cannot be read cannot be analysed either
        return None
    cached = _GRAPHS.get(model)
    if cached is not None and cached[0] == state:
        return cached[1]
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "cannot analyse"
        graph = None
    _GRAPHS[model] = (state, graph)
    return graph


def _fetch(model: nn.Module, target: str):
    obj = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _depends(node: fx.Node, dependent: set) -> bool:
    found = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n in dependent))
    return any(found)


def _input_nodes(node: fx.Node) -> list[fx.Node]:
    nodes: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), nodes.append)
    return nodes


def _run_node(model: nn.Module, node: fx.Node, env: dict):
    """Execute one graph node with arguments looked up in ``env``."""
    if node.op not in ("get_attr", "call_module", "call_function", "call_method"):
        raise RuntimeError(f"cannot run graph node {node.op}")
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
    if args and isinstance(args[0], torch.Tensor) and written_input(lambda t: _fetch(model, t), node) is not None:
        args = (args[0].clone(),) + tuple(args[1:])  # an in-place operation must not overwrite a cached reference
    return _call(model, node, args, kwargs)


# --------------------------------------------------------------------------- analysis helpers

def _bind(args, kwargs, names, defaults):
    values = dict(defaults)
    values.update(zip(names, args))
    values.update(kwargs)
    return values


def _single(value):
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError
        return int(value[0])
    return int(value)


def _conv_params(node: fx.Node, model, consts: dict) -> dict | None:
    """Weight, bias and geometry of a Conv1d module or F.conv1d call; None if unsupported."""
    if node.op == "call_module":
        conv = _fetch(model, node.target)
        if conv.padding_mode != "zeros":
            return None
        weight, bias = conv.weight, conv.bias
        stride, padding, dilation, groups = conv.stride, conv.padding, conv.dilation, conv.groups
    else:
        names = ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]
        defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        b = _bind(node.args, node.kwargs, names, defaults)
        for key in ("weight", "bias", "stride", "padding", "dilation", "groups"):
            if isinstance(b[key], fx.Node):
                if b[key] not in consts:
                    return None
                b[key] = consts[b[key]]
        weight, bias = b["weight"], b["bias"]
        stride, padding, dilation, groups = b["stride"], b["padding"], b["dilation"], b["groups"]
    try:
        k, d, s = weight.shape[-1], _single(dilation), _single(stride)
        if isinstance(padding, str):
            if padding == "valid":
                pad = 0
            elif padding == "same":
                pad = d * (k - 1) // 2
            else:
                return None
        else:
            pad = _single(padding)
    except (ValueError, TypeError, AttributeError):
        return None
    return {"weight": weight, "bias": bias, "k": k, "d": d, "stride": s, "pad": pad, "groups": int(groups)}


def _pool_params(node: fx.Node, model) -> dict | None:
    """Geometry of a max/avg pooling module or functional call; None if unsupported."""
    if node.op == "call_module":
        pool = _fetch(model, node.target)
        kind = "max" if isinstance(pool, nn.MaxPool1d) else "avg"
        k, s, pad = pool.kernel_size, pool.stride, pool.padding
        d = getattr(pool, "dilation", 1)
        if pool.ceil_mode or getattr(pool, "return_indices", False):
            return None
        if kind == "avg" and not pool.count_include_pad and _single(pad) > 0:
            return None
    else:
        kind = "max" if node.target is F.max_pool1d else "avg"
        if kind == "max":
            names = ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"]
            defaults = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False}
        else:
            names = ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"]
            defaults = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "count_include_pad": True}
        b = _bind(node.args, node.kwargs, names, defaults)
        if any(isinstance(v, fx.Node) for k_, v in b.items() if k_ != "input"):
            return None
        if b["ceil_mode"] or b.get("return_indices") or (kind == "avg" and not b["count_include_pad"] and b["padding"]):
            return None
        k, s, pad, d = b["kernel_size"], b["stride"], b["padding"], b["dilation"]
    try:
        k = _single(k)
        s = k if s is None or (isinstance(s, (tuple, list)) and len(s) == 0) else _single(s)
        pad, d = _single(pad), _single(d)
    except (ValueError, TypeError):
        return None
    return {"kind": kind, "k": k, "d": d, "stride": s, "pad": pad}


def _const_is_positionless(value, pos_axis: int) -> bool:
    """True when a constant operand does not vary along the position axis or the batch axis."""
    if not isinstance(value, torch.Tensor):
        return isinstance(value, (int, float, bool))
    if value.ndim > 3:
        return False
    shape = (1,) * (3 - value.ndim) + tuple(value.shape)
    return shape[pos_axis] == 1 and shape[0] == 1


def _layout_swap(node: fx.Node) -> bool:
    """True for transpose(1, 2) / permute(0, 2, 1) style calls on a 3-D tensor."""
    args = list(node.args[1:]) + list(node.kwargs.values())
    if node.op == "call_method" and node.target == "transpose" or node.target is torch.transpose:
        if len(args) != 2 or not all(isinstance(a, int) for a in args):
            return False
        return {a % 3 for a in args} == {1, 2}
    if node.op == "call_method" and node.target == "permute" or node.target is torch.permute:
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        return all(isinstance(a, int) for a in dims) and [a % 3 for a in dims] == [0, 2, 1]
    return False


def _position_crop(node: fx.Node, first: fx.Node, src: _Local, env: dict) -> tuple[int, int] | None:
    """``(start, stop)`` when ``node`` keeps a contiguous range of positions of an (N, C, L) tensor, else None.

    ``h[:, :, a:b]``, ``h[..., a:b]`` and ``h.narrow(2, a, n)`` / ``torch.narrow(h, 2, a, n)``; the ends
    may be computed from shapes (their traced values are the reference's, which every mutant shares).
    """
    if src.pos_axis != 2 or not node.args or node.args[0] is not first or node.kwargs:
        return None
    args = fx.node.map_arg(node.args[1:], lambda n: env.get(n, n))
    if node.op == "call_function" and node.target is operator.getitem:
        index = args[0]
        if not isinstance(index, tuple):
            return None
        if len(index) == 2 and index[0] is Ellipsis:
            index = (slice(None), slice(None), index[1])
        if len(index) != 3 or index[0] != slice(None) or index[1] != slice(None) or not isinstance(index[2], slice):
            return None
        cut = index[2]
        if not all(v is None or isinstance(v, int) for v in (cut.start, cut.stop, cut.step)):
            return None
        start, stop, step = cut.indices(src.length)
        return (start, stop) if step == 1 and stop > start else None
    narrow = (node.op == "call_method" and node.target == "narrow") or (
        node.op == "call_function" and node.target is torch.narrow)
    if narrow and len(args) == 3 and all(isinstance(v, int) for v in args):
        dim, start, size = args
        if dim in (2, -1) and size > 0:
            start = start + src.length if start < 0 else start
            return (start, start + size) if 0 <= start and start + size <= src.length else None
    return None


def _clamp_window(lo: torch.Tensor, hi: torch.Tensor, length: int) -> tuple[int, torch.Tensor]:
    """Fixed-width window covering [lo, hi] (inclusive) inside [0, length) for every position."""
    width = int(min(int((hi - lo).max()) + 1, length))
    starts = lo.clamp(0, length - width) if width < length else torch.zeros_like(lo)
    return width, starts


# --------------------------------------------------------------------------- the plan

@dataclass
class _Plan:
    graph: fx.Graph
    placeholder: fx.Node
    local: dict  # node -> _Local
    consts: dict  # node -> value
    frontier: set
    suffix: set  # nodes run in full on spliced activations
    reductions: dict = field(default_factory=dict)  # node -> (source, form, keepdim): max over positions


_SHAPE_ARITHMETIC = (operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod, operator.neg)


def _is_shape_constant(node: fx.Node, env: dict, consts: dict) -> bool:
    """Whether ``node`` is a size along a non-batch axis, or arithmetic on such sizes.

    Every mutant has the reference's channels and length, so such values (a crop's ends computed
    from shapes, say) are constants of the scan; the batch size is not, and stops this.
    """
    def non_batch(index, ndim) -> bool:
        return isinstance(index, int) and index % max(ndim, 1) != 0

    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return bool(node.users) and all(
            u.op == "call_function" and u.target is operator.getitem and u.args[0] is node
            and non_batch(u.args[1], len(env[node])) for u in node.users)
    if node.op == "call_function" and node.target is operator.getitem and isinstance(env[node], int):
        return node.args[0] in consts and isinstance(env[node.args[0]], torch.Size)
    if node.op == "call_method" and node.target == "size" and len(node.args) == 2 and not node.kwargs:
        return non_batch(node.args[1], env[node.args[0]].ndim) and isinstance(env[node], int)
    if node.op == "call_function" and node.target in _SHAPE_ARITHMETIC and isinstance(env[node], int):
        return all(a in consts for a in node.args if isinstance(a, fx.Node))
    return False


def _analyse(model, graph: fx.Graph, x_model: torch.Tensor, pos_axis: int):
    """Reference pass over ``x_model`` and static analysis; returns (plan, env) or None."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return None
    (placeholder,) = placeholders
    if read_after_write(lambda target: _fetch(model, target), graph) is not None:
        return None  # another reader would see an in-place write: full passes keep the model's own semantics
    length = x_model.shape[pos_axis]
    env: dict = {placeholder: x_model}
    dependent = {placeholder}
    consts: dict = {}
    local: dict = {
        placeholder: _Local("input", pos_axis, x_model.shape[3 - pos_axis], length, 1, torch.arange(length))
    }
    output_node = None
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            output_node = node
            continue
        env[node] = _run_node(model, node, env)
        if not _depends(node, dependent) or _is_shape_constant(node, env, consts):
            consts[node] = env[node]
            continue
        dependent.add(node)
        info = _local_info(model, node, env, local, consts)
        if info is not None:
            local[node] = info
    if output_node is None or not isinstance(env[output_node.args[0]], torch.Tensor):
        return None
    env[output_node] = env[output_node.args[0]]
    if not any(i.kind in ("delta_conv", "recompute") or i.params.get("compute") for i in local.values()):
        return None
    suffix = {n for n in graph.nodes if n in dependent and n not in local and n.op != "placeholder"}
    reductions = {}
    for node in suffix:
        found = _max_reduction(model, node, local, consts)
        if found is not None:
            reductions[node] = found
    frontier = {n for n in local if any(u not in local and u not in reductions for u in n.users)}
    return _Plan(graph, placeholder, local, consts, frontier, suffix, reductions), env


def _max_reduction(model, node: fx.Node, local: dict, consts: dict):
    """(source, form, keepdim) when ``node`` is a max over the position axis of one local tensor.

    Such a maximum is read from prefix and suffix maxima of the reference plus the
    window, without building the full activation; it is exact.
    """
    inputs = [n for n in _input_nodes(node) if n not in consts]
    if len(inputs) != 1 or inputs[0] not in local or not node.args or node.args[0] is not inputs[0]:
        return None
    src = inputs[0]
    pos_axis = local[src].pos_axis
    if node.op == "call_module":
        module = _fetch(model, node.target)
        if isinstance(module, nn.AdaptiveMaxPool1d) and module.output_size in (1, (1,)) and pos_axis == 2:
            if not module.return_indices and len(node.args) == 1:
                return src, "tensor", True
        return None
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", None)
    if node.op == "call_function" and node.target not in (torch.max, torch.amax):
        return None
    if name not in ("max", "amax"):
        return None
    rest = list(node.args[1:])
    kwargs = dict(node.kwargs)
    dim = kwargs.pop("dim", rest.pop(0) if rest else None)
    keepdim = kwargs.pop("keepdim", rest.pop(0) if rest else False)
    if kwargs or rest or isinstance(dim, fx.Node) or isinstance(keepdim, fx.Node):
        return None
    if isinstance(dim, (tuple, list)):
        if len(dim) != 1:
            return None
        dim = dim[0]
    if not isinstance(dim, int) or dim % 3 != pos_axis or not isinstance(keepdim, bool):
        return None
    if name == "max":
        ok = all(
            (u.op == "call_function" and u.target is getattr and u.args[1] == "values")
            or (u.op == "call_function" and u.target is operator.getitem and u.args[1] == 0)
            for u in node.users
        )
        return (src, "values", keepdim) if ok else None
    return src, "tensor", keepdim


def _local_info(model, node: fx.Node, env: dict, local: dict, consts: dict) -> _Local | None:
    """Static window description of ``node`` if it is a local op of local inputs, else None."""
    value = env[node]
    inputs = [n for n in _input_nodes(node) if n not in consts]
    if not inputs or any(n not in local for n in inputs):
        return None
    if not isinstance(value, torch.Tensor) or value.ndim != 3 or not value.is_floating_point():
        return None
    first = inputs[0]
    src = local[first]

    def same_as_input(pos_axis=None) -> _Local | None:
        pos_axis = src.pos_axis if pos_axis is None else pos_axis
        channels, length = value.shape[3 - pos_axis], value.shape[pos_axis]
        if length != src.length or channels != src.channels:
            return None
        return _Local("unary", pos_axis, channels, length, src.width, src.starts)

    def with_constant() -> _Local | None:
        others = [a for a in list(node.args) + list(node.kwargs.values()) if a is not first]
        others = [consts.get(a, a) if isinstance(a, fx.Node) else a for a in others]
        if len(others) > 1 and not (node.target in (torch.add, torch.sub) and len(others) == 2):
            return None
        return same_as_input() if _const_is_positionless(others[0], src.pos_axis) else None

    def elementwise() -> _Local | None:
        # other tensor operands (a clamp's bounds, say) must not vary along positions or the batch
        for a in list(node.args) + list(node.kwargs.values()):
            if a is first:
                continue
            if isinstance(a, fx.Node) and a not in consts:
                return None
            a = consts.get(a, a) if isinstance(a, fx.Node) else a
            if isinstance(a, torch.Tensor) and not _const_is_positionless(a, src.pos_axis):
                return None
        return same_as_input()

    batch_ok = value.shape[0] == env[first].shape[0]
    if not batch_ok:
        return None

    if len(inputs) == 1:
        target = node.target
        if _layout_swap(node):
            return same_as_input(pos_axis=3 - src.pos_axis)
        crop = _position_crop(node, first, src, env)
        if crop is not None:
            start, stop = crop
            if value.shape[2] != stop - start or value.shape[1] != src.channels:
                return None
            # a window of the input, read as it is: a "recompute" of kernel 1 whose padding is -start
            params = {"kind": "crop", "k": 1, "d": 1, "stride": 1, "pad": -start}
            return _recompute_info(params, src, value)
        if node.op == "call_module":
            module = _fetch(model, target)
            if isinstance(module, _ELEMENTWISE_MODULES):
                if isinstance(module, nn.PReLU) and module.num_parameters > 1 and src.pos_axis != 2:
                    return None
                return same_as_input()
            if isinstance(module, nn.BatchNorm1d):
                if module.training or module.running_mean is None or src.pos_axis != 2:
                    return None
                return same_as_input()
            if isinstance(module, (nn.Linear, nn.LayerNorm)) and src.pos_axis == 1:
                if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) != 1:
                    return None
                return _Local("unary", 1, value.shape[2], src.length, src.width, src.starts, {"compute": True})
            if isinstance(module, nn.Conv1d) and src.pos_axis == 2:
                return _conv_info(node, model, consts, src, value)
            if isinstance(module, (nn.MaxPool1d, nn.AvgPool1d)) and src.pos_axis == 2:
                params = _pool_params(node, model)
                return None if params is None else _recompute_info(params, src, value)
            return None
        if node.op == "call_function":
            if target in _BINARY_FUNCTIONS:
                return with_constant()
            if node.args and node.args[0] is not first:
                return None
            if target in _DROPOUT_FUNCTIONS:
                training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
                return None if training else same_as_input()
            if target in _ELEMENTWISE_FUNCTIONS:
                return elementwise()
            if target is F.conv1d and src.pos_axis == 2:
                return _conv_info(node, model, consts, src, value)
            if target in (F.max_pool1d, F.avg_pool1d) and src.pos_axis == 2:
                params = _pool_params(node, model)
                return None if params is None else _recompute_info(params, src, value)
            if target in (F.linear, F.layer_norm) and src.pos_axis == 1:
                return _Local("unary", 1, value.shape[2], src.length, src.width, src.starts, {"compute": True})
            return None
        if node.op == "call_method":
            if target in _ELEMENTWISE_METHODS:
                return elementwise()
            if target in _BINARY_METHODS and node.args[0] is first:
                return with_constant()
        return None

    # two local operands: residual additions and gating
    if len(inputs) != 2:
        return None
    is_binary = (node.op == "call_function" and node.target in _BINARY_FUNCTIONS) or (
        node.op == "call_method" and node.target in _BINARY_METHODS
    )
    if not is_binary:
        return None
    a, b = (local[n] for n in inputs)
    if a.pos_axis != b.pos_axis or env[inputs[0]].shape != value.shape or env[inputs[1]].shape != value.shape:
        return None
    lo = torch.minimum(a.starts, b.starts)
    hi = torch.maximum(a.starts + a.width, b.starts + b.width) - 1
    width, starts = _clamp_window(lo, hi, a.length)
    return _Local("binary", a.pos_axis, a.channels, a.length, width, starts, {"operands": inputs})


def _conv_info(node, model, consts, src: _Local, value) -> _Local | None:
    params = _conv_params(node, model, consts)
    if params is None:
        return None
    if params["stride"] != 1:
        return _recompute_info({**params, "kind": "conv"}, src, value)
    k, d, pad = params["k"], params["d"], params["pad"]
    length = value.shape[2]
    unclamped = src.starts + pad - (k - 1) * d
    full = src.width + (k - 1) * d
    width = min(full, length)
    starts = unclamped.clamp(0, length - width) if width < length else torch.zeros_like(unclamped)
    shift = starts - unclamped  # where the output window begins inside the full contribution
    params = {**params, "full": full, "shift": shift}
    return _Local("delta_conv", 2, value.shape[1], length, width, starts, params)


def _recompute_info(params: dict, src: _Local, value) -> _Local | None:
    k, d, stride, pad = params["k"], params["d"], params["stride"], params["pad"]
    length = value.shape[2]
    lo = torch.div(src.starts + pad - (k - 1) * d + stride - 1, stride, rounding_mode="floor")
    hi = torch.div(src.starts + src.width - 1 + pad, stride, rounding_mode="floor")
    lo, hi = lo.clamp(0, length - 1), hi.clamp(0, length - 1)
    if int((hi - lo).max()) < 0:
        return None  # the layer reads no position a substitution changes (only padding): no window to recompute
    width, starts = _clamp_window(lo, hi, length)
    params = {**params, "q0": starts * stride - pad, "read": (width - 1) * stride + (k - 1) * d + 1}
    return _Local("recompute", 2, value.shape[1], length, width, starts, params)


# --------------------------------------------------------------------------- runtime

class _Reference:
    """Cached reference activations of one strand and fast reads of their windows."""

    def __init__(self, plan: _Plan, env: dict, *, in_place: bool = False):
        self.plan = plan
        self.env = env
        self.in_place = in_place  # few positions scanned: read windows where they are, never copy whole activations
        self.canonical = {}  # node -> (N, C, L)
        for node, info in plan.local.items():
            v = env[node]
            self.canonical[node] = v if info.pos_axis == 2 else v.transpose(1, 2)
        self._flat: dict = {}
        self._ranges: dict = {}
        self._running_max: dict = {}

    def running_max(self, node):
        """Prefix and suffix maxima over positions, (N * (L + 1), C) each, in channel-last rows.

        Row ``i`` of an input holds the maximum over positions ``< i`` (prefix) or ``>= i``
        (suffix), with -inf for an empty range.
        """
        entry = self._running_max.get(node)
        if entry is None:
            ref = self.canonical[node].transpose(1, 2)  # (N, L, C)
            n, length, c = ref.shape
            fill = torch.full((n, 1, c), -math.inf, dtype=ref.dtype, device=ref.device)
            prefix = torch.cat([fill, ref.cummax(dim=1).values], dim=1)
            suffix = torch.cat([ref.flip(1).cummax(dim=1).values.flip(1), fill], dim=1)
            entry = (prefix.reshape(-1, c).contiguous(), suffix.reshape(-1, c).contiguous(), length + 1)
            self._running_max[node] = entry
        return entry

    def outside_max(self, node, rows, starts, width: int) -> torch.Tensor:
        """Maximum of ``node`` over the positions outside ``starts .. starts + width - 1`` of each row: (M, C).

        A scan of a few positions has one or two distinct window starts: the maxima on
        either side of each are then taken directly, which reads each activation once,
        instead of building the running maxima over every position.
        """
        distinct = torch.unique(starts)
        if not self.in_place or distinct.numel() > 2:
            prefix, suffix, stride = self.running_max(node)
            return torch.maximum(prefix.index_select(0, rows * stride + starts),
                                 suffix.index_select(0, rows * stride + starts + width))  # fmt: skip
        ref = self.canonical[node]
        length = ref.shape[2]
        out = ref.new_empty(rows.shape[0], ref.shape[1])
        for start in distinct.tolist():
            low = ref.new_full(ref.shape[:2], -math.inf)
            left = ref[:, :, :start].amax(dim=2) if start > 0 else low
            right = ref[:, :, start + width :].amax(dim=2) if start + width < length else low
            pick = starts == start
            out[pick] = torch.maximum(left, right).index_select(0, rows[pick])
        return out

    def arange(self, width: int, device) -> torch.Tensor:
        r = self._ranges.get(width)
        if r is None:
            r = self._ranges[width] = torch.arange(width, device=device)
        return r

    def flat(self, node, pads=(0, 0), pad_value=0.0):
        """(N * L', C) reference rows of ``node``, padded by ``pads`` with ``pad_value``; L' and the left pad."""
        left, right = pads
        key = (node, left, right, pad_value)
        entry = self._flat.get(key)
        if entry is None:
            ref = self.canonical[node]
            if left or right:
                ref = F.pad(ref, (left, right), value=pad_value)
            # one row per position, so that a window is a run of consecutive rows
            entry = (ref.transpose(1, 2).reshape(-1, ref.shape[1]).contiguous(), ref.shape[2], left)
            self._flat[key] = entry
        return entry

    def rows_at(self, node, rows, positions, pads=(0, 0), pad_value=0.0) -> torch.Tensor:
        """Reference values of ``node`` at ``positions`` (M, K) of inputs ``rows`` (M,): (M * K, C), channel-last.

        ``pads`` (left, right) must cover every position read outside [0, L); they read ``pad_value``.
        """
        ref = self.canonical[node]
        channels, length = ref.shape[1], ref.shape[2]
        if self.in_place:
            # a handful of positions per input: gathering the few reads costs less than first copying
            # the whole activation into rows (which a scan of many positions reuses); same values
            inside = (positions >= 0) & (positions < length)
            values = ref.transpose(1, 2)[rows[:, None].expand_as(positions), positions.clamp(0, length - 1)]
            if not bool(inside.all()):
                values = values.masked_fill(~inside[..., None], pad_value)
            return values.reshape(-1, channels)
        flat, padded_length, left = self.flat(node, pads, pad_value)
        return flat.index_select(0, ((rows * padded_length + left)[:, None] + positions).reshape(-1))

    def windows(self, node, rows, q0, width, pads=(0, 0), pad_value=0.0) -> torch.Tensor:
        """Reference values of ``node`` at q0 .. q0 + width - 1 for each row: (M, C, width).

        ``pads`` (left, right) must cover every position read outside [0, L); they are
        filled with ``pad_value``.
        """
        values = self.rows_at(node, rows, q0[:, None] + self.arange(width, q0.device), pads, pad_value)
        return values.view(rows.shape[0], width, -1).transpose(1, 2)


def _pads(q0: torch.Tensor, width: int, length: int) -> tuple[int, int]:
    if q0.numel() == 0:
        return 0, 0
    return max(0, -int(q0.min())), max(0, int(q0.max()) + width - length)


def _transpose_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Conv1d weight (Cout, Cin/g, k) as a flipped conv_transpose1d weight (Cin, Cout/g, k)."""
    c_out, c_in_g, k = weight.shape
    w = weight.reshape(groups, c_out // groups, c_in_g, k).transpose(1, 2).reshape(groups * c_in_g, c_out // groups, k)
    return w.flip(-1).contiguous()


def _window_matrix(weight_t: torch.Tensor, width: int, params: dict) -> torch.Tensor | None:
    """The transposed convolution of a (Cin, width) window as one (width * Cin, out_width * Cout) matrix, or None.

    Rows are position-major (position, then channel), like the columns: a window of
    one column (the first layer on one-hot input) becomes a column swap. The matrix
    holds every tap at every shift, zeros elsewhere, so it costs ``out_width / k`` times
    the multiply-adds of the convolution; on small windows a matrix product is still
    faster than a transposed convolution, so it is used while that factor and the
    matrix stay small.
    """
    c_in, c_out, k = weight_t.shape
    d = params["d"]
    out_width = width + (k - 1) * d
    if params["groups"] != 1 or out_width > 1.75 * k or width * c_in * out_width * c_out > 2**23:
        return None
    matrix = weight_t.new_zeros(width, c_in, out_width, c_out)
    taps = weight_t.permute(0, 2, 1)  # (Cin, k, Cout)
    for j in range(width):
        matrix[j, :, j : j + (k - 1) * d + 1 : d] = taps
    return matrix.reshape(width * c_in, out_width * c_out)


_MATRICES: dict = {}  # (weight id, weight version, width, dilation, groups) -> (weight, window matrix)


def _cached_window_matrix(weight: torch.Tensor, weight_t: torch.Tensor, width: int, params: dict):
    """:func:`_window_matrix`, built once per layer weight (as long as the weight is unchanged) and window width."""
    key = (id(weight), weight._version, weight.device, weight.dtype, width, params["d"], params["groups"])
    hit = _MATRICES.get(key)
    if hit is not None and hit[0] is weight:
        return hit[1]
    matrix = _window_matrix(weight_t, width, params)
    if len(_MATRICES) > 64:
        _MATRICES.clear()
    _MATRICES[key] = (weight, matrix)
    return matrix


class _Engine:
    """Runs batches of mutants through a plan: windows of the local prefix, then the rest in full."""

    def __init__(self, model, plan: _Plan, ref: _Reference):
        self.model, self.plan, self.ref = model, plan, ref
        self.weights: dict = {}
        self.matrices: dict = {}  # delta_conv nodes whose change is one matrix product (see _window_matrix)
        self.aligned: dict = {}  # binary node -> operands whose window is the output window
        self.read_pads: dict = {}  # recompute node -> padding its input reads need
        self.covered: dict = {}  # recompute node -> (L,) bool: the input window lies inside the read range
        self.shifted: dict = {}  # delta_conv node -> whether its window ever starts off the contribution
        for node, info in plan.local.items():
            if info.kind == "delta_conv":
                self.weights[node] = _transpose_weight(info.params["weight"], info.params["groups"])
                matrix = _cached_window_matrix(info.params["weight"], self.weights[node],
                                               plan.local[self._source(node)].width, info.params)  # fmt: skip
                if matrix is not None:
                    self.matrices[node] = matrix
                self.shifted[node] = info.width != info.params["full"]  # True: every window needs the shift
            elif info.kind == "binary":
                self.aligned[node] = {
                    n for n in info.params["operands"]
                    if plan.local[n].width == info.width and torch.equal(plan.local[n].starts, info.starts)
                }
            elif info.kind == "recompute":
                src = self._source(node)
                self.read_pads[node] = _pads(info.params["q0"], info.params["read"], plan.local[src].length)
                rel = plan.local[src].starts - info.params["q0"]
                self.covered[node] = (rel >= 0) & (rel + plan.local[src].width <= info.params["read"])
        self.device_tables = {
            node: {key: v.to(ref.canonical[plan.placeholder].device) for key, v in _tables(info).items()}
            for node, info in plan.local.items()
        }

    def edges(self) -> torch.Tensor:
        """(L,) bool on the CPU: positions whose windows are clamped at a sequence end somewhere.

        Also the positions where a pooling or strided layer reads a range that does not
        hold the whole changed window of its input.
        """
        length = self.plan.local[self.plan.placeholder].length
        edge = torch.zeros(length, dtype=torch.bool)
        for node, info in self.plan.local.items():
            if info.kind == "delta_conv":
                edge |= info.params["shift"] != 0
            elif info.kind == "recompute":
                edge |= ~self.covered[node]
        return edge

    def _source(self, node):
        (src,) = {n for n in _input_nodes(node) if n not in self.plan.consts}
        return src

    def _spliced(self, node, rows, starts_in, win, q0, width, pads, pad_value, covered=False):
        """Mutant values of local ``node`` at q0 .. q0 + width - 1: (M, C, width), a channel-last view.

        The reference rows are read, then the window's columns are copied over the ones
        they replace; columns of the window outside the read range go to spare rows.
        ``covered`` promises that every window lies inside the range: then only the
        reference rows around the window are read.
        """
        info = self.plan.local[node]
        m, channels = rows.shape[0], win.shape[1]
        dtype, device = self.ref.canonical[node].dtype, self.ref.canonical[node].device
        if covered:
            buffer = torch.empty(m * width, channels, dtype=dtype, device=device)
            row = torch.arange(m, device=q0.device)[:, None] * width
            offset = (starts_in - q0)[:, None]
            if width > info.width:
                j = self.ref.arange(width - info.width, q0.device)
                around = j + info.width * (j >= offset)  # (M, width - W_in): the positions off the window
                reads = self.ref.rows_at(node, rows, q0[:, None] + around, pads, pad_value)
                buffer.index_copy_(0, (row + around).reshape(-1), reads)
            dest = (row + offset + self.ref.arange(info.width, q0.device)).reshape(-1)
            buffer.index_copy_(0, dest, win.transpose(1, 2).reshape(-1, channels))
            return buffer.view(m, width, channels).transpose(1, 2)
        ar = self.ref.arange(width, q0.device)
        buffer = torch.empty(m * (width + info.width), channels, dtype=dtype, device=device)
        buffer[: m * width] = self.ref.rows_at(node, rows, q0[:, None] + ar, pads, pad_value)
        rel = (starts_in - q0)[:, None] + self.ref.arange(info.width, q0.device)  # (M, W_in)
        inside = (rel >= 0) & (rel < width)
        row = torch.arange(m, device=q0.device)[:, None]
        spare = m * width + row * info.width + self.ref.arange(info.width, q0.device)
        dest = torch.where(inside, row * width + rel, spare)
        buffer.index_copy_(0, dest.reshape(-1), win.transpose(1, 2).reshape(-1, channels))
        return buffer[: m * width].view(m, width, channels).transpose(1, 2)

    def run(self, rows: torch.Tensor, positions: torch.Tensor, columns: torch.Tensor, *, edge: bool = True):
        """Raw outputs of mutants: input ``rows[i]`` with column ``columns[i]`` (M, C) at ``positions[i]``.

        ``edge=False`` promises that no position is an edge position (see :meth:`edges`).
        """
        self._edge = edge
        plan, ref, model = self.plan, self.ref, self.model
        wins: dict = {}
        starts: dict = {}
        env = dict(plan.consts)
        materialized: dict = {}

        def full(node):
            if node not in materialized:
                info = plan.local[node]
                base = ref.canonical[node][rows]
                index = starts[node][:, None] + ref.arange(info.width, rows.device)
                base.scatter_(2, index[:, None, :].expand(-1, info.channels, -1), wins[node])
                materialized[node] = base if info.pos_axis == 2 else base.transpose(1, 2)
            return materialized[node]

        def value_of(node):
            return env[node] if node in env else full(node)

        for node in plan.graph.nodes:
            info = plan.local.get(node)
            if info is None:
                if node in plan.reductions:
                    env[node] = self._max_over_positions(node, rows, starts, wins)
                elif node in plan.suffix:
                    env[node] = _call(model, node, fx.node.map_arg(node.args, value_of),
                                      fx.node.map_arg(node.kwargs, value_of))
                elif node.op == "output":
                    return value_of(node.args[0])
                continue
            tables = self.device_tables[node]
            s = tables["starts"][positions]
            starts[node] = s
            if info.kind == "input":
                wins[node] = columns[:, :, None].to(ref.canonical[node].dtype)
            elif info.kind == "binary":
                values = {}
                for n in info.params["operands"]:
                    v = wins[n] if n in self.aligned[node] else self._spliced(
                        n, rows, starts[n], wins[n], s, info.width, (0, 0), 0.0
                    )
                    values[n] = v if info.pos_axis == 2 else v.transpose(1, 2)
                out = _call(model, node, fx.node.map_arg(node.args, lambda n: values.get(n, env.get(n))),
                            fx.node.map_arg(node.kwargs, lambda n: values.get(n, env.get(n))))
                wins[node] = out if info.pos_axis == 2 else out.transpose(1, 2)
            elif info.kind == "unary":
                src = self._source(node)
                x = wins[src] if plan.local[src].pos_axis == 2 else wins[src].transpose(1, 2)
                out = _call(model, node, fx.node.map_arg(node.args, lambda n: x if n is src else env[n]),
                            fx.node.map_arg(node.kwargs, lambda n: x if n is src else env[n]))
                wins[node] = out if info.pos_axis == 2 else out.transpose(1, 2)
            elif info.kind == "delta_conv":
                wins[node] = self._delta_conv(node, info, rows, positions, starts, wins, s)
            else:
                wins[node] = self._recompute(node, info, rows, positions, starts, wins)
        raise RuntimeError("graph has no output")

    def _max_over_positions(self, node, rows, starts, wins):
        src, form, keepdim = self.plan.reductions[node]
        info = self.plan.local[src]
        outside = self.ref.outside_max(src, rows, starts[src], info.width)
        values = torch.maximum(outside, wins[src].amax(dim=2))  # (M, C)
        if keepdim:
            values = values.unsqueeze(info.pos_axis)
        return _MaxResult(values, None) if form == "values" else values

    def _delta_conv(self, node, info, rows, positions, starts, wins, s):
        """New window = reference window + convolution of the change of the input window."""
        p = info.params
        src = self._source(node)
        src_info = self.plan.local[src]
        delta = wins[src] - self.ref.windows(src, rows, starts[src], src_info.width)
        if node in self.matrices:
            # position-major rows in and out: the product is channel-last, like the windows it is added to
            m = delta.shape[0]
            flat = delta.transpose(1, 2).reshape(m, -1)
            if not (self.shifted[node] or self._edge):
                # aligned windows: the product accumulates straight into the reference windows
                out = self.ref.windows(node, rows, s, info.width).transpose(1, 2)  # (M, width, C), contiguous
                out.view(m, -1).addmm_(flat, self.matrices[node])
                return out.transpose(1, 2)
            contrib = (flat @ self.matrices[node]).view(m, -1, self.weights[node].shape[1]).transpose(1, 2)
        else:
            contrib = F.conv_transpose1d(delta, self.weights[node], dilation=p["d"], groups=p["groups"])
        if self.shifted[node] or self._edge:
            index = self.device_tables[node]["shift"][positions][:, None] + self.ref.arange(info.width, rows.device)
            valid = (index >= 0) & (index < p["full"])
            gathered = contrib.gather(2, index.clamp(0, p["full"] - 1)[:, None, :].expand(-1, contrib.shape[1], -1))
            contrib = gathered * valid[:, None, :].to(gathered.dtype)
        # windows are channel-last in memory; adding tensors of mixed layouts is several times slower
        contrib = contrib.transpose(1, 2).contiguous().transpose(1, 2)
        return self.ref.windows(node, rows, s, info.width) + contrib

    def _recompute(self, node, info, rows, positions, starts, wins):
        """Pooling and strided convolution: recompute the output window from the spliced input."""
        p = info.params
        src = self._source(node)
        pad_value = -math.inf if p["kind"] == "max" else 0.0
        q0 = self.device_tables[node]["q0"][positions]
        x = self._spliced(src, rows, starts[src], wins[src], q0, p["read"], self.read_pads[node], pad_value,
                          covered=not self._edge)
        if p["kind"] == "crop":
            return x
        if p["kind"] == "conv":
            return F.conv1d(x, p["weight"], p["bias"], stride=p["stride"], dilation=p["d"], groups=p["groups"])
        if p["kind"] == "max":
            if p["stride"] == p["k"] and p["d"] == 1 and p["read"] % p["k"] == 0:
                # non-overlapping windows: a max over a reshaped channel-last view, exact like max_pool1d
                m, channels = x.shape[0], x.shape[1]
                return x.transpose(1, 2).reshape(m, p["read"] // p["k"], p["k"], channels).amax(2).transpose(1, 2)
            return F.max_pool1d(x, p["k"], p["stride"], 0, p["d"])
        return F.avg_pool1d(x, p["k"], p["stride"], 0)


class _MaxResult(tuple):
    """Stands in for torch.return_types.max when only ``.values`` is read."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]


def _tables(info: _Local) -> dict:
    tables = {"starts": info.starts}
    for key in ("shift", "q0"):
        if key in info.params:
            tables[key] = info.params[key]
    return tables


def _call(model, node, args, kwargs):
    if node.op == "get_attr":
        return _fetch(model, node.target)
    if node.op == "call_module":
        return _fetch(model, node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    self_obj, *rest = args
    return getattr(self_obj, node.target)(*rest, **kwargs)


# --------------------------------------------------------------------------- public entry point

def _chunk_size(plan: _Plan, device: torch.device) -> int:
    """Mutants per chunk from a rough per-mutant memory estimate."""
    per_mutant = 0
    for node, info in plan.local.items():
        per_mutant += info.channels * (info.width + info.params.get("read", 0))
        if node in plan.frontier:
            per_mutant += 3 * info.channels * info.length
    # large chunks: few, large operations; on the CPU half as large as would fit was measured faster on every
    # architecture of the benchmarks (fresh memory is slow to touch), a quarter slower on some
    budget = 2**27 if device.type == "cuda" else 2**24
    return int(max(16, min(16384, budget // max(per_mutant, 1))))


def incremental_single_substitutions(
    adapter, X: torch.Tensor, positions, fn: Callable, *, skip: torch.Tensor | None = None, progress: bool = False
) -> torch.Tensor | None:
    """Score of every single substitution by windowed recomputation, or None if the model cannot be analysed.

    Parameters
    ----------
    adapter : SequenceModel
        The wrapped model; its layout, strands and dtype are respected.
    X : torch.Tensor of shape (N, 4, L)
        Reference sequences (canonical layout).
    positions : sequence of int or torch.Tensor of shape (P,)
        Positions to substitute.
    fn : callable
        ``fn(raw_output, rows) -> (M, *)`` applied to the raw output of each mutant; ``rows`` says which
        input each mutant came from.
    skip : torch.Tensor of shape (N, P), bool, optional
        Input-position pairs not to scan; they get the unedited input's value.
    progress : bool
        Show a progress bar over sequences.

    Returns
    -------
    torch.Tensor of shape (N, P, 4, *) on ``adapter.device``, or None
        ``fn`` of the mutant with base ``b`` at ``positions[j]`` (the unedited input's value where ``b``
        is the reference base, and at skipped pairs; at N columns every base is scanned); None when the model is not a traceable ``torch.nn.Module`` with a local
        first layer, or runs under autocast. Callers then fall back to full forward passes.

    Examples
    --------
    >>> import torch
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=0, device="cpu")
    >>> X = adapter.encode(["ACGTTGCAACGT"])
    >>> incremental_single_substitutions(adapter, X, [0, 5], lambda y, rows: y[:, 0]).shape
    torch.Size([1, 2, 4])
    """
    model = adapter.model
    if not isinstance(model, nn.Module) or not hasattr(adapter, "layout") or X.ndim != 3:
        return None
    if getattr(adapter, "autocast", None) is not None:
        warn(f"ISM runs full forward passes under autocast={adapter.autocast!r}; without autocast the exact "
             "incremental engine is usually several times faster")  # fmt: skip
        return None
    if has_forward_hooks(model):
        # the engine skips calls a hook could change: full passes keep the hooks' effect
        warn("the model has forward hooks, which the incremental ISM engine would bypass, so ISM runs full "
             "forward passes (often ten times slower); remove the hooks for fast scans")  # fmt: skip
        return None
    graph = _trace(model)
    if graph is None:
        return None
    device = adapter.device
    X = X.to(device)
    positions = torch.as_tensor(positions, dtype=torch.long, device=device).reshape(-1)
    n, c, length = X.shape
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= length):
        raise ValueError(f"positions must lie in [0, {length}); got {positions.min().item()}..{positions.max().item()}")
    skip = None if skip is None else skip.to(device=device, dtype=torch.bool).reshape(n, positions.numel())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="ISM", unit="seq")
    blocks, first = [], 0
    block = min(n, _FIRST_BLOCK)
    try:
        with adapter.session(), torch.no_grad(), torch.autocast(device.type, enabled=False):
            # the cached activations of a block of sequences stay in memory while its mutants run: blocks
            # sized from the first one keep that memory bounded however many sequences come
            while first < n or not blocks:
                stop = min(n, first + block)
                scanned = _scan_block(adapter, model, graph, X[first:stop], first, positions, fn,
                                      None if skip is None else skip[first:stop])  # fmt: skip
                if scanned is None:
                    return None
                result, cached_bytes = scanned
                blocks.append(result)
                if bar is not None:
                    bar.update(stop - first)
                per_sequence = max(cached_bytes // max(stop - first, 1), 1)
                block = int(max(1, min(n, _block_budget(device) // per_sequence)))
                first = stop
    finally:
        if bar is not None:
            bar.close()
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


_FIRST_BLOCK = 16  # sequences analysed first, to measure what one sequence's cached activations take


def _block_budget(device: torch.device) -> int:
    """Bytes of cached reference activations per block of sequences."""
    return 2**31 if device.type == "cuda" else 2**28


def _scan_block(adapter, model, graph, X, offset, positions, fn, skip):
    """Every single substitution of the sequences ``X`` (n, 4, L), rows ``offset`` on in ``fn``'s numbering.

    Returns the values (n, P, 4, *) and the bytes the block's cached activations took, or None when the
    model cannot be analysed.
    """
    device = adapter.device
    n, c, length = X.shape
    pos_axis = 2 if adapter.layout == "NCL" else 1
    strands = getattr(adapter, "strands", "forward")
    Xd = X.to(adapter.dtype)
    views = [(Xd, None)]
    if strands == "both":
        order = complement_order(adapter.alphabet)
        views.append((Xd[:, order].flip(-1), order))
    engines = []
    ref_raw = None
    cached_bytes = 0
    for view, _ in views:
        x_model = view if pos_axis == 2 else view.transpose(1, 2)
        try:
            analysed = _analyse(model, graph, x_model, pos_axis)
        except Exception:  # noqa: BLE001 - an unexpected graph is a fallback, not an error
            return None
        if analysed is None:
            return None
        plan, env = analysed
        cached_bytes += sum(v.numel() * v.element_size() for v in env.values() if isinstance(v, torch.Tensor))
        raw = env[_output(plan.graph)]
        raw = raw.float() if raw.dtype in (torch.float16, torch.bfloat16) else raw
        ref_raw = raw if ref_raw is None else 0.5 * (ref_raw + raw)
        engines.append(_Engine(model, plan, _Reference(plan, env, in_place=4 * positions.numel() <= length)))

    ref_values = fn(ref_raw, torch.arange(offset, offset + n, device=device))
    rest = tuple(ref_values.shape[1:])
    result = ref_values[:, None, None].expand(n, positions.numel(), c, *rest).clone()
    eye = torch.eye(c, device=device, dtype=Xd.dtype)
    columns_ref = Xd[:, :, positions].permute(0, 2, 1)  # (N, P, C)
    is_ref = (columns_ref[:, :, None, :] == eye).all(-1)  # (N, P, 4)
    if skip is not None:
        is_ref |= skip[:, :, None]
    # interior mutants first, so that most chunks skip the re-alignment of clamped windows
    edge = torch.zeros(length, dtype=torch.bool)
    for engine, (_, order) in zip(engines, views):
        edge |= engine.edges() if order is None else engine.edges().flip(0)
    edge_of_column = edge.to(device)[positions]
    mutants = torch.nonzero(~is_ref)  # (M, 3): row, column, base
    mutants = mutants[torch.argsort(edge_of_column[mutants[:, 1]].to(torch.uint8), stable=True)]
    n_interior = int((~edge_of_column[mutants[:, 1]]).sum())
    rows_i, cols_j, base_b = mutants.unbind(1)
    chunk = min(_chunk_size(e.plan, device) for e in engines)
    flat = result.view(-1, *rest)
    complement = torch.as_tensor(views[1][1], device=device) if strands == "both" else None

    def run(start: int, stop: int) -> torch.Tensor:
        r, j, b = rows_i[start:stop], cols_j[start:stop], base_b[start:stop]
        p = positions[j]
        at_edge = stop > n_interior
        raw = None
        for engine, (_, order) in zip(engines, views):
            if order is None:
                out = engine.run(r, p, eye[b], edge=at_edge)
            else:
                out = engine.run(r, length - 1 - p, eye[complement[b]], edge=at_edge)
            out = out.float() if out.dtype in (torch.float16, torch.bfloat16) else out
            raw = out if raw is None else 0.5 * (raw + out)
        return fn(raw, r + offset).to(flat.dtype)

    # CUDA out-of-memory halves the chunk and goes on
    parts = map_batches(run, rows_i.numel(), chunk, on_backoff=getattr(adapter, "_on_backoff", None))
    if parts:
        flat[(rows_i * positions.numel() + cols_j) * c + base_b] = torch.cat(parts)
    return result, cached_bytes


def _output(graph: fx.Graph) -> fx.Node:
    return next(n for n in graph.nodes if n.op == "output")


__all__ = ["incremental_single_substitutions"]
