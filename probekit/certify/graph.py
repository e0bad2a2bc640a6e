"""Trace an adapter's model into a graph of operations that bounds can run through.

:func:`trace` turns the model (with the adapter's layout and strand handling)
into a list of :class:`Op` in topological order with ``torch.fx``, or, for
models fx cannot trace (control flow on shapes), with ``torch.export``. Every
operation that depends on the input is classified as

- ``linear``: affine in its input-dependent arguments (Linear, Conv, BatchNorm in
  eval mode, pooling by averages, reshapes, transposes, slicing, concatenation,
  sums, means, additions and subtractions (``alpha=`` included), products with
  constants and true divisions by them);
- ``act``: an element-wise monotone activation of one input-dependent tensor
  (ReLU, LeakyReLU, Sigmoid, Tanh, ELU, Softplus, Hardtanh, ReLU6, clamp, exp),
  with parameters that keep it monotone;
- ``max``: a maximum over windows (max pooling, adaptive max pooling, ``max`` and
  ``amax`` over axes);
- ``alias``: identity (Dropout, Identity, dtype casts, ``.values`` of a max);
- ``shift``: a final ``log_softmax``, which subtracts one value from every
  element of each group it normalises, and so leaves unchanged every linear
  form whose weights sum to zero within each group (allowed only as the last
  operation, under outputs and goals of that kind).

An input-dependent tensor counts as often as it appears among an operation's
arguments (``h + h`` is ``2 h``).

Anything else raises :class:`UnsupportedOperation` naming the operation.
Values that do not depend on the input (parameters, constants) and shape
arithmetic are evaluated once per batch by :meth:`Graph.bind`.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> adapter = FeatureModel(model, output=outputs.logit(0), device="cpu")
>>> [op.kind for op in trace(adapter, torch.zeros(1, 3)).ops]
['input', 'linear', 'act', 'linear']
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .._device import has_forward_hooks
from .._inplace import read_after_write, written_input


class UnsupportedOperation(TypeError):
    """The model uses an operation that bounds cannot run through; the message names it."""


# ---------------------------------------------------------------- op tables
# activations by name; _act turns a name and its parameters into a relaxation shape and a slope
_ACT_MODULES = {
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.ELU: "elu",
    nn.Softplus: "softplus",
    nn.Hardtanh: "hardtanh",
    nn.ReLU6: "hardtanh",
}
_ACT_FUNCTIONS = {
    torch.relu: "relu",
    F.relu: "relu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.leaky_relu: "leaky_relu",
    F.elu: "elu",
    F.softplus: "softplus",
    F.relu6: "relu6",
    F.hardtanh: "hardtanh",
    torch.clamp: "clamp",
    torch.clip: "clamp",
    torch.exp: "exp",
}
_ACT_METHODS = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "clamp": "clamp",
    "clip": "clamp",
    "clamp_min": "clamp",
    "clamp_max": "clamp",
    "exp": "exp",
}
# the shape a relaxation may assume, and the largest slope, of activations without parameters
_ACT_SHAPES = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "relu6": "monotone", "clamp": "monotone", "exp": "convex"}
_ACT_SLOPES = {"relu": 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu6": 1.0, "clamp": 1.0, "exp": float("inf")}
_ALIAS_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_ALIAS_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout}
_ALIAS_METHODS = {"contiguous", "float", "clone", "detach"}

# Linear maps with non-negative weights and no offset: |J| r is the map applied to r.
_STRUCT_MODULES = (nn.Flatten, nn.Unflatten, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
_STRUCT_FUNCTIONS = {
    torch.flatten,
    torch.reshape,
    torch.transpose,
    torch.permute,
    torch.squeeze,
    torch.unsqueeze,
    torch.flip,
    torch.cat,
    torch.concat,
    torch.stack,
    torch.mean,
    torch.sum,
    torch.narrow,
    torch.movedim,
    torch.swapaxes,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    operator.getitem,
}
_STRUCT_METHODS = {
    "view",
    "reshape",
    "flatten",
    "transpose",
    "permute",
    "squeeze",
    "unsqueeze",
    "flip",
    "mean",
    "sum",
    "narrow",
    "movedim",
    "swapaxes",
    "expand",
    "repeat",
    "unflatten",
    "view_as",
    "reshape_as",
    "expand_as",
    "__getitem__",
}
_MAX_FUNCTIONS = {F.max_pool1d: "max_pool1d", F.adaptive_max_pool1d: "adaptive_max_pool1d", torch.max: "max", torch.amax: "amax"}
_MAX_METHODS = {"max": "max", "amax": "amax"}


@dataclass
class Op:
    """One operation of a traced graph.

    Attributes
    ----------
    name : str
        Name of the fx node.
    kind : str
        ``input``, ``linear``, ``act``, ``max`` or ``alias``.
    inputs : list of str
        Names of the input-dependent operations it reads.
    label : str
        Human-readable description used in messages.
    shape : tuple
        Per-input output shape.
    act : str
        For ``act``: ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``elu``, ``softplus``,
        ``convex`` or ``monotone``: the shape its linear relaxation may assume.
    param : float
        Negative slope of LeakyReLU, alpha of ELU, beta of Softplus.
    slope : float
        For ``act``: the largest slope of the activation (``inf`` without one).
    slack : float
        For ``act``: how far the activation may fall below a monotone function of
        its input (the drop of Softplus where it switches to the identity).
    coefs : list of float
        For additions and subtractions: the coefficient of each input (summed over
        the arguments where it appears).
    axis : int
        For ``shift``: the axis it normalises, counting the batch axis.
    """

    name: str
    kind: str
    inputs: list
    label: str
    node: Any = field(repr=False, default=None)
    shape: tuple = ()
    act: str = ""
    param: float = 0.0
    slope: float = 1.0
    slack: float = 0.0
    coefs: list = field(default_factory=list)
    axis: int = -1
    signed: str = ""  # how |J| r is formed for linear ops
    window: Any = field(repr=False, default=None)  # (out_numel, K) flat indices for max ops, -1 = padding


@dataclass
class Graph:
    """A traced model: operations in topological order and how to run them."""

    ops: list
    module: fx.GraphModule = field(repr=False)
    root: Any = field(repr=False, default=None)
    output: str = ""
    modules: dict = field(default_factory=dict, repr=False)

    def op(self, name: str) -> Op:
        return self._by_name[name]

    def __post_init__(self):
        self._by_name = {op.name: op for op in self.ops}

    def bind(self, X: torch.Tensor) -> "Bound":
        """Evaluate constants and shape arithmetic for a batch ``X`` (canonical layout)."""
        env = {}
        for node in self.module.graph.nodes:
            if node.op == "placeholder":
                env[node.name] = X
            elif node.op == "output":
                continue
            else:
                env[node.name] = _run(self, node, lambda n: env[n.name])
        return Bound(self, env)


@dataclass
class Bound:
    """A graph together with the concrete values of one batch (for constants and shapes)."""

    graph: Graph
    env: dict = field(repr=False)

    @property
    def n(self) -> int:
        return self.env[self.graph.ops[0].name].shape[0]

    def value(self, name: str) -> torch.Tensor:
        """The concrete output of an operation on the batch's centre inputs."""
        v = self.env[name]
        return v[0] if isinstance(v, tuple) and v and isinstance(v[0], torch.Tensor) else v

    def apply(self, op: Op, *values: torch.Tensor, absolute: bool = False) -> torch.Tensor:
        """Run ``op`` with its input-dependent arguments replaced by ``values``.

        With ``absolute=True`` every constant tensor argument (and, for products,
        every number) is replaced by its absolute value: for an affine op
        ``f(x) = W x + b`` with constant arguments, ``f_abs(r) - f_abs(0) = |W| r``.
        """
        names = op.inputs
        product = op.signed in ("mul", "div", "matmul")

        def lookup(n):
            if n.name in names:
                return values[names.index(n.name)]
            v = self.env[n.name]
            # integer factors of a product count too; integer tensors elsewhere are indices
            if absolute and isinstance(v, torch.Tensor) and (v.is_floating_point() or (product and v.dtype != torch.bool)):
                return v.abs()
            return v

        out = _run(self.graph, op.node, lookup, numbers_abs=absolute and op.signed in ("mul", "div"))
        if op.kind == "max" and isinstance(out, tuple):
            out = out[0]
        return out


def _run(graph: Graph, node: fx.Node, lookup: Callable, numbers_abs: bool = False) -> Any:
    args = fx.node.map_arg(node.args, lookup)
    kwargs = fx.node.map_arg(node.kwargs, lookup)
    if args and isinstance(args[0], torch.Tensor) and written_input(graph.modules.__getitem__, node) is not None:
        args = (args[0].clone(),) + tuple(args[1:])  # an in-place operation must not overwrite a kept value
    if numbers_abs:
        args = tuple(_abs_number(a) for a in args)
        kwargs = {key: _abs_number(a) for key, a in kwargs.items()}
    if node.op == "get_attr":
        obj = graph.root
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj
    if node.op == "call_module":
        return graph.modules[node.target](*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    raise UnsupportedOperation(f"fx node kind {node.op!r} is not supported")


def _abs_number(a):
    return abs(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else a


# ---------------------------------------------------------------- tracing
class _Wrapped(nn.Module):
    """The model as probekit calls it: canonical input, layout change, optional strand average."""

    def __init__(self, model, transpose: bool, complement: list | None):
        super().__init__()
        self.model = model
        self.transpose = transpose
        self.both = complement is not None
        self.complement = complement

    def forward(self, x):
        y = self.model(x.transpose(1, 2) if self.transpose else x)
        if self.both:
            xr = x[:, self.complement].flip(-1)
            y = 0.5 * (y + self.model(xr.transpose(1, 2) if self.transpose else xr))
        return y


def trace(adapter, X: torch.Tensor) -> Graph:
    """Trace ``adapter.model`` (with its layout and strands) into a :class:`Graph`.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...)
        Example inputs in probekit's canonical layout, on ``adapter.device``; they
        fix the per-input shapes and check every operation.

    Returns
    -------
    Graph

    Raises
    ------
    UnsupportedOperation
        Naming the first operation that bounds cannot run through.
    """
    model = adapter.model
    if not isinstance(model, nn.Module):
        raise UnsupportedOperation(f"bounds need a torch.nn.Module, got {type(model).__name__}")
    if has_forward_hooks(model):
        raise UnsupportedOperation("the model has forward hooks, which bounds cannot see through; remove them first")
    transpose = getattr(adapter, "layout", "NCL") == "NLC"
    complement = None
    if getattr(adapter, "strands", "forward") == "both":
        from ..encode.dna import complement_order

        complement = complement_order(adapter.alphabet)
    wrapped = _Wrapped(model, transpose, complement)
    X = X.to(adapter.dtype)
    try:
        gm = fx.symbolic_trace(wrapped)
        root = wrapped
    except Exception as error:  # noqa: BLE001 - torch.export is tried next
        try:
            gm = _export(wrapped, X)
            root = gm
        except Exception as second:  # noqa: BLE001 - both reasons are reported
            raise UnsupportedOperation(
                f"the model cannot be traced by torch.fx ({type(error).__name__}: {error}) nor exported by "
                f"torch.export ({type(second).__name__}: {str(second).splitlines()[0] if str(second) else ''}); "
                "bounds need a forward without data-dependent control flow"
            ) from error
    graph = Graph([], gm, root=root, modules=dict(root.named_modules()))
    shared = read_after_write(graph.modules.__getitem__, gm.graph)
    if shared is not None:
        raise UnsupportedOperation(
            f"{_label(graph, shared)} writes in place into a value that another operation reads too; "
            "make it out of place for bounds"
        )
    for node in gm.graph.nodes:
        if node.op == "call_method" and node.target in _IN_PLACE_DUNDERS:
            raise UnsupportedOperation(f"{_label(graph, node)} writes in place; make it out of place for bounds")
    _classify(graph, X)
    return graph


_IN_PLACE_DUNDERS = {
    f"__i{name}__"
    for name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift", "rshift")
}


def _export(wrapped: nn.Module, X: torch.Tensor) -> fx.GraphModule:
    """An fx graph of aten operations from torch.export, with a dynamic batch size when possible."""
    try:
        program = torch.export.export(wrapped, (X,), dynamic_shapes={"x": {0: torch.export.Dim.AUTO}}, strict=False)
    except Exception:  # noqa: BLE001 - a fixed batch size still serves one call
        program = torch.export.export(wrapped, (X,), strict=False)
    return program.module()


def _label(graph: Graph, node: fx.Node) -> str:
    if node.op == "call_module":
        return f"{type(graph.modules[node.target]).__name__} ({node.target})"
    if node.op == "call_method":
        return f"method .{node.target}() ({node.name})"
    target = getattr(node.target, "__name__", str(node.target))
    module = getattr(node.target, "__module__", "") or ""
    prefix = "torch." if module.startswith("torch") and not module.startswith("torch.nn") else ""
    if module.startswith("torch.nn.functional"):
        prefix = "F."
    return f"{prefix}{target} ({node.name})"


def _classify(graph: Graph, X: torch.Tensor) -> None:
    gm = graph.module
    env: dict = {}
    variable: set = set()
    ops: list = []
    n = X.shape[0]
    with torch.no_grad():
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                env[node.name] = X
                variable.add(node.name)
                ops.append(Op(node.name, "input", [], "input", node, tuple(X.shape[1:])))
                continue
            if node.op == "output":
                result = node.args[0]
                if isinstance(result, (tuple, list)) and len(result) == 1:  # torch.export flattens outputs
                    result = result[0]
                if not isinstance(result, fx.Node) or result.name not in variable:
                    raise UnsupportedOperation("the model must return one tensor that depends on its input")
                graph.output = result.name
                continue
            env[node.name] = _run(graph, node, lambda m: env[m.name])
            deps = []
            for m in node.all_input_nodes:
                if m.name in variable and m.name not in deps:
                    deps.append(m.name)
            if not deps or not node.users:
                continue
            value = env[node.name]
            op = _make_op(graph, node, deps, env, n)
            if op is None:  # shape arithmetic: evaluated per batch, not bounded
                continue
            variable.add(node.name)
            out = value[0] if op.kind == "max" and isinstance(value, tuple) else value
            if not isinstance(out, torch.Tensor):
                raise UnsupportedOperation(f"{op.label} returns a {type(out).__name__}, not a tensor")
            if out.ndim == 0 or out.shape[0] != n:
                raise UnsupportedOperation(f"{op.label} mixes inputs of a batch (output shape {tuple(out.shape)})")
            if not out.is_floating_point():
                raise UnsupportedOperation(f"{op.label} returns {out.dtype} values; bounds need floating-point values")
            op.shape = tuple(out.shape[1:])
            if op.kind == "max":
                op.window = _window(op, graph, node, env).to(out.device)  # once, not per backward pass
            ops.append(op)
    graph.ops = ops
    graph.__post_init__()


_SHAPE_METHODS = {"size", "dim", "numel"}


def _make_op(graph: Graph, node: fx.Node, deps: list, env: dict, n: int) -> Op | None:
    label = _label(graph, node)
    value = env[node.name]
    target = node.target
    # shape arithmetic on input-dependent tensors
    if node.op == "call_method" and target in _SHAPE_METHODS:
        return None
    if node.op == "call_function" and target is getattr and node.args[1] in ("shape", "dtype", "device", "ndim"):
        return None
    if not isinstance(value, (torch.Tensor, tuple)) or (
        isinstance(value, tuple) and not any(isinstance(v, torch.Tensor) for v in value)
    ):
        return None
    mk = lambda kind, **kw: Op(node.name, kind, deps, label, node, **kw)  # noqa: E731
    ndim = value.ndim if isinstance(value, torch.Tensor) else 0
    if node.op == "call_module":
        module = graph.modules[target]
        t = type(module)
        if t in _ACT_MODULES:
            name = _ACT_MODULES[t]
            return _act(mk, node, deps, label, name, _module_params(module, name))
        if isinstance(module, _ALIAS_MODULES):
            return mk("alias")
        if isinstance(module, _STRUCT_MODULES):
            return mk("linear", signed="struct")
        if isinstance(module, nn.Linear):
            return mk("linear", signed="linear_module")
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return mk("linear", signed="conv_module")
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.training or module.running_var is None:
                raise UnsupportedOperation(f"{label} needs eval mode with running statistics")
            return mk("linear", signed="bn_module")
        if isinstance(module, nn.LogSoftmax):
            return _shift(mk, node, deps, label, module.dim, ndim)
        if isinstance(module, (nn.MaxPool1d, nn.AdaptiveMaxPool1d)):
            if getattr(module, "return_indices", False):
                raise UnsupportedOperation(f"{label} with return_indices=True is not supported")
            return mk("max")
        raise UnsupportedOperation(f"unsupported operation: {label}")
    if node.op == "call_function" and isinstance(target, torch._ops.OpOverload):
        return _make_aten_op(mk, node, deps, label, target, ndim)
    if node.op == "call_function":
        if target in _ACT_FUNCTIONS:
            name = _ACT_FUNCTIONS[target]
            return _act(mk, node, deps, label, name, _call_params(node, name))
        if target in _ALIAS_FUNCTIONS:
            # the functional forms drop at random unless told otherwise (training=True by default)
            if _arg(node, 2, "training", True) and _arg(node, 1, "p", 0.5) != 0:
                raise UnsupportedOperation(f"{label} in training mode (random): pass training=False or self.training")
            return mk("alias")
        if target is getattr and node.args[1] == "values":
            return mk("alias")
        if target is operator.getitem and isinstance(env[node.args[0].name], tuple):
            if node.args[1] != 0:
                raise UnsupportedOperation(f"{label}: only the values of a max are supported, not its indices")
            return mk("alias")
        if target in _MAX_FUNCTIONS:
            return _max_op(mk, node, deps, _MAX_FUNCTIONS[target], label)
        if target in (F.log_softmax, torch.log_softmax):
            return _shift(mk, node, deps, label, _arg(node, 1, "dim", None), ndim)
        if target in _STRUCT_FUNCTIONS:
            return mk("linear", signed="struct")
        if target in _ADDSUB_FUNCTIONS:
            return _addsub(mk, node, deps, label, _ADDSUB_FUNCTIONS[target])
        if target in _PRODUCT_FUNCTIONS:
            return _product(mk, node, deps, label, _PRODUCT_FUNCTIONS[target])
        if target is F.linear:
            return _needs_const_weight(mk, node, deps, label, "linear_fn")
        if target in (F.conv1d, F.conv2d, torch.conv1d, torch.conv2d):
            return _needs_const_weight(mk, node, deps, label, "conv_fn")
        if target is F.batch_norm:
            if _arg(node, 5, "training", False):
                raise UnsupportedOperation(f"{label} in training mode mixes the inputs of a batch")
            return _needs_const_weight(mk, node, deps, label, "bn_fn")
        if target is F.pad:
            return mk("linear", signed="pad")
        raise UnsupportedOperation(f"unsupported operation: {label}")
    if node.op == "call_method":
        if target in _ACT_METHODS:
            return _act(mk, node, deps, label, _ACT_METHODS[target], {})
        if target in _ALIAS_METHODS:
            return mk("alias")
        if target == "to":
            if any(isinstance(a, (str, torch.device)) for a in node.args[1:]):
                raise UnsupportedOperation(f"{label}: models that move tensors between devices are not supported")
            return mk("alias")
        if target in _MAX_METHODS:
            return _max_op(mk, node, deps, _MAX_METHODS[target], label)
        if target == "log_softmax":
            return _shift(mk, node, deps, label, _arg(node, 1, "dim", None), ndim)
        if target in _STRUCT_METHODS:
            return mk("linear", signed="struct")
        if target in ("add", "sub", "neg"):
            return _addsub(mk, node, deps, label, target)
        if target in ("mul", "div", "matmul"):
            return _product(mk, node, deps, label, target)
        raise UnsupportedOperation(f"unsupported operation: {label}")
    raise UnsupportedOperation(f"unsupported operation: {label}")


_ADDSUB_FUNCTIONS = {
    operator.add: "add",
    torch.add: "add",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.neg: "neg",
    torch.neg: "neg",
}
_PRODUCT_FUNCTIONS = {
    operator.mul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    torch.div: "div",
    operator.matmul: "matmul",
    torch.matmul: "matmul",
    torch.mm: "matmul",
}
_ATEN_ACT = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "leaky_relu": "leaky_relu", "elu": "elu",
             "softplus": "softplus", "hardtanh": "hardtanh", "clamp": "clamp", "clamp_min": "clamp",
             "clamp_max": "clamp", "exp": "exp"}
_ATEN_ALIAS = {"dropout", "clone", "contiguous", "alias", "detach", "_to_copy", "lift_fresh_copy"}
_ATEN_STRUCT = {"view", "reshape", "_unsafe_view", "flatten", "transpose", "permute", "cat", "slice", "select",
                "index", "flip", "unsqueeze", "squeeze", "expand", "mean", "sum", "avg_pool1d", "adaptive_avg_pool1d",
                "avg_pool2d", "adaptive_avg_pool2d", "stack", "t", "narrow", "movedim", "repeat", "unflatten"}
_ATEN_MAX = {"max_pool1d": "max_pool1d", "adaptive_max_pool1d": "adaptive_max_pool1d", "max": "max", "amax": "amax"}


def _make_aten_op(mk, node, deps, label, target, ndim) -> Op:
    """Classify an aten operation of a graph from torch.export."""
    name = target._schema.name.split("::")[-1]
    if name in _ATEN_ACT:
        act = _ATEN_ACT[name]
        params = _call_params(node, act)
        if act == "elu":
            params.update(scale=_arg(node, 2, "scale", 1.0), input_scale=_arg(node, 3, "input_scale", 1.0))
        return _act(mk, node, deps, label, act, params)
    if name in _ATEN_ALIAS:
        if name == "dropout" and _arg(node, 2, "train", False):
            raise UnsupportedOperation(f"{label} in training mode")
        return mk("alias")
    if name in _ATEN_MAX:
        return _max_op(mk, node, deps, _ATEN_MAX[name], label)
    if name in _ATEN_STRUCT:
        return mk("linear", signed="struct")
    if name in ("add", "sub", "neg"):
        return _addsub(mk, node, deps, label, name)
    if name in ("mul", "div", "matmul", "mm"):
        return _product(mk, node, deps, label, "matmul" if name == "mm" else name)
    if name == "linear":
        return _needs_const_weight(mk, node, deps, label, "linear_fn")
    if name in ("conv1d", "conv2d"):
        return _needs_const_weight(mk, node, deps, label, "conv_fn")
    if name == "batch_norm":
        if _arg(node, 5, "training", False):
            raise UnsupportedOperation(f"{label} in training mode mixes the inputs of a batch")
        return _needs_const_weight(mk, node, deps, label, "bn_fn")
    if name in ("log_softmax", "_log_softmax"):
        return _shift(mk, node, deps, label, _arg(node, 1, "dim", None), ndim)
    raise UnsupportedOperation(f"unsupported operation: {label}")


def _arg(node: fx.Node, index: int, name: str, default):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _first(node: fx.Node):
    """The tensor an operation works on: its first argument, however it is passed."""
    if node.args:
        return node.args[0]
    return node.kwargs.get("input", node.kwargs.get("self"))


def _uses(node: fx.Node, name: str) -> int:
    """How many times the operation ``name`` appears among ``node``'s arguments."""
    count = 0

    def visit(m):
        nonlocal count
        count += m.name == name
        return m

    fx.node.map_arg((node.args, node.kwargs), visit)
    return count


def _only_input(node: fx.Node, deps: list, label: str, what: str) -> None:
    """Refuse ``node`` unless its first argument is its one input-dependent argument."""
    first = _first(node)
    if len(deps) != 1 or not isinstance(first, fx.Node) or first.name != deps[0] or _uses(node, deps[0]) != 1:
        raise UnsupportedOperation(
            f"unsupported operation: {label} has more than one input-dependent argument; bounds support {what} "
            "whose other arguments are constants"
        )


def _module_params(module: nn.Module, name: str) -> dict:
    keys = {"leaky_relu": ("negative_slope",), "elu": ("alpha",), "softplus": ("beta", "threshold"),
            "hardtanh": ("min_val", "max_val")}.get(name, ())
    return {key: getattr(module, key) for key in keys}


def _call_params(node: fx.Node, name: str) -> dict:
    """Parameters of a functional (or aten) activation, with the defaults of torch."""
    if name == "leaky_relu":
        return {"negative_slope": _arg(node, 1, "negative_slope", 0.01)}
    if name == "elu":
        return {"alpha": _arg(node, 1, "alpha", 1.0)}
    if name == "softplus":
        return {"beta": _arg(node, 1, "beta", 1.0), "threshold": _arg(node, 2, "threshold", 20.0)}
    if name == "hardtanh":
        return {"min_val": _arg(node, 1, "min_val", -1.0), "max_val": _arg(node, 2, "max_val", 1.0)}
    return {}


def _softplus_drop(beta: float, threshold: float) -> float:
    """How far Softplus falls where it switches to the identity (at ``beta * x = threshold``).

    Below the switch it is ``log(1 + exp(beta x)) / beta``, above it ``x``, which lies
    below the smooth curve by at most ``log(1 + exp(-threshold)) / beta``.
    """
    if threshold == float("inf"):
        return 0.0
    return (max(-threshold, 0.0) + math.log1p(math.exp(-abs(threshold)))) / beta


def _act(mk, node, deps, label, name: str, params: dict) -> Op:
    """An activation with parameters that keep it monotone; anything else is refused."""
    _only_input(node, deps, label, "activations")
    values = {}
    for key, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise UnsupportedOperation(f"{label} with {key}={v!r} is not supported; bounds need a number")
        values[key] = float(v)
    if name == "leaky_relu":
        slope = values["negative_slope"]
        if slope < 0 or math.isinf(slope):
            raise UnsupportedOperation(f"{label} with negative_slope={slope:g} is not monotone; bounds need a finite slope >= 0")
        # a slope above 1 makes it concave: only its monotonicity is used then
        return mk("act", act="leaky_relu" if slope <= 1 else "monotone", param=slope, slope=max(1.0, slope))
    if name == "elu":
        alpha = values["alpha"]
        if values.get("scale", 1.0) != 1.0 or values.get("input_scale", 1.0) != 1.0:
            raise UnsupportedOperation(
                f"{label} with scale={values['scale']:g} and input_scale={values['input_scale']:g} is not supported; "
                "bounds need scale=1 and input_scale=1"
            )
        if alpha < 0 or math.isinf(alpha):
            raise UnsupportedOperation(f"{label} with alpha={alpha:g} is not monotone; bounds need a finite alpha >= 0")
        # convex for alpha <= 1 (its slope rises from 0 to alpha, then is 1); monotone beyond
        return mk("act", act="elu" if alpha <= 1 else "monotone", param=alpha, slope=max(1.0, alpha))
    if name == "softplus":
        beta, threshold = values["beta"], values["threshold"]
        if not 0 < beta < float("inf"):
            raise UnsupportedOperation(
                f"{label} with beta={beta:g} is not supported; bounds need a finite beta > 0 (monotone and convex)"
            )
        return mk("act", act="softplus", param=beta, slope=1.0, slack=_softplus_drop(beta, threshold))
    if name == "hardtanh":
        low, high = values["min_val"], values["max_val"]
        if low > high:
            raise UnsupportedOperation(f"{label} with min_val={low:g} > max_val={high:g} is not supported")
        return mk("act", act="monotone", slope=1.0)
    return mk("act", act=_ACT_SHAPES[name], slope=_ACT_SLOPES[name])


def _addsub(mk, node, deps, label, kind: str) -> Op:
    """A sum of input-dependent tensors with a coefficient each (``alpha`` scales the second operand)."""
    extra = set(node.kwargs) - {"input", "self", "other", "alpha"}
    if extra or len(node.args) > 3:
        raise UnsupportedOperation(f"unsupported operation: {label} with arguments {sorted(extra) or node.args[3:]}")
    if kind == "neg":
        operands, coefs = [_first(node)], [-1.0]
    else:
        alpha = _arg(node, 2, "alpha", 1)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise UnsupportedOperation(f"{label} with alpha={alpha!r} is not supported; bounds need a number")
        alpha = float(alpha)
        operands, coefs = [_first(node), _arg(node, 1, "other", None)], [1.0, alpha if kind == "add" else -alpha]
    total: dict = {}
    for operand, c in zip(operands, coefs):
        if isinstance(operand, fx.Node) and operand.name in deps:
            total[operand.name] = total.get(operand.name, 0.0) + c
    if set(total) != set(deps) or sum(_uses(node, d) for d in deps) != sum(
        isinstance(o, fx.Node) and o.name in deps for o in operands
    ):
        raise UnsupportedOperation(f"unsupported operation: {label} with input-dependent arguments it does not add")
    return mk("linear", signed="addsub", coefs=[total[d] for d in deps])


def _shift(mk, node, deps, label, dim, ndim: int) -> Op:
    """A log_softmax: which axis it normalises decides which outputs may follow it."""
    _only_input(node, deps, label, "log_softmax")
    if dim is None:  # the axis torch picks when none is given
        dim = 0 if ndim in (0, 1, 3) else 1
    if not isinstance(dim, int):
        raise UnsupportedOperation(f"{label} with dim={dim!r} is not supported; bounds need one axis")
    axis = dim % ndim
    if axis == 0:
        raise UnsupportedOperation(f"{label} normalises over the batch axis, which mixes the inputs of a batch")
    return mk("shift", axis=axis)


def _product(mk, node, deps, label, kind: str) -> Op:
    if len(deps) != 1 or _uses(node, deps[0]) != 1:
        raise UnsupportedOperation(f"unsupported operation: {label} multiplies two input-dependent tensors")
    if kind == "div":
        first = _first(node)
        if not isinstance(first, fx.Node) or first.name not in deps:
            raise UnsupportedOperation(f"unsupported operation: {label} divides by an input-dependent tensor")
        mode = node.kwargs.get("rounding_mode")
        if mode is not None or len(node.args) > 2:
            raise UnsupportedOperation(
                f"unsupported operation: {label} with rounding_mode={mode!r} rounds its result, which is not linear; "
                "bounds support true division (rounding_mode=None) only"
            )
    return mk("linear", signed=kind)


def _needs_const_weight(mk, node, deps, label, signed) -> Op:
    first = node.args[0] if node.args else node.kwargs.get("input")
    if len(deps) != 1 or not isinstance(first, fx.Node) or first.name != deps[0] or _uses(node, deps[0]) != 1:
        raise UnsupportedOperation(f"unsupported operation: {label} with input-dependent weights")
    return mk("linear", signed=signed)


def _max_op(mk, node, deps, name, label) -> Op:
    if name == "max" and isinstance(_arg(node, 1, "dim", None), fx.Node):
        raise UnsupportedOperation(f"unsupported operation: {label}, an element-wise maximum of two tensors")
    _only_input(node, deps, label, "maxima")
    if name in ("max", "amax"):
        dim = _arg(node, 1, "dim", None)
        if dim is None or (name == "max" and isinstance(dim, fx.Node)):
            raise UnsupportedOperation(f"unsupported operation: {label} without dim= (a maximum over the whole batch)")
    if name in ("max_pool1d", "adaptive_max_pool1d") and node.kwargs.get("return_indices", False):
        raise UnsupportedOperation(f"{label} with return_indices=True is not supported")
    op = mk("max")
    op.param = 0.0
    op.act = name
    return op


def _window(op: Op, graph: Graph, node: fx.Node, env: dict) -> torch.Tensor:
    """Flat input indices (out_numel, K) of each output element's window; -1 marks padding."""
    x = env[node.all_input_nodes[0].name]
    in_shape = tuple(x.shape[1:])
    out_shape = op.shape
    idx = torch.arange(int(torch.tensor(in_shape).prod()) if in_shape else 1).reshape(in_shape)
    name = op.act
    if node.op == "call_module":
        module = graph.modules[node.target]
        if isinstance(module, nn.MaxPool1d):
            name = "max_pool1d"
            params = (module.kernel_size, module.stride, module.padding, module.dilation)
        else:
            name = "adaptive_max_pool1d"
    elif name == "max_pool1d":
        k = _arg(node, 1, "kernel_size", None)
        s = _arg(node, 2, "stride", None)
        params = (k, s if s not in (None, []) else k, _arg(node, 3, "padding", 0), _arg(node, 4, "dilation", 1))
    if name == "max_pool1d":
        k, s, p, d = (v[0] if isinstance(v, (tuple, list)) else v for v in params)
        s = s or k
        length, out_len = in_shape[-1], out_shape[-1]
        starts = torch.arange(out_len) * s - p
        pos = starts[:, None] + torch.arange(k)[None] * d  # (out_len, k)
        valid = (pos >= 0) & (pos < length)
        win = torch.where(valid, idx[..., pos.clamp(0, length - 1)], torch.tensor(-1))  # (..., out_len, k)
        return win.reshape(-1, k)
    if name == "adaptive_max_pool1d":
        length, out_len = in_shape[-1], out_shape[-1]
        starts = [(i * length) // out_len for i in range(out_len)]
        ends = [-(-((i + 1) * length) // out_len) for i in range(out_len)]
        k = max(e - s for s, e in zip(starts, ends))
        pos = torch.full((out_len, k), -1)
        for i, (s, e) in enumerate(zip(starts, ends)):
            pos[i, : e - s] = torch.arange(s, e)
        win = torch.where(pos >= 0, idx[..., pos.clamp(min=0)], torch.tensor(-1))
        return win.reshape(-1, k)
    # max / amax over one or more axes
    dim = _arg(node, 1, "dim", None)
    keepdim = bool(_arg(node, 2, "keepdim", False))
    dims = [dim] if isinstance(dim, int) else list(dim)
    nd = len(in_shape) + 1
    dims = sorted({d % nd for d in dims})
    if 0 in dims:
        raise UnsupportedOperation(f"{op.label} takes a maximum over the batch axis")
    inner = [d - 1 for d in dims]
    rest = [d for d in range(len(in_shape)) if d not in inner]
    win = idx.permute(*rest, *inner).reshape(-1, int(torch.tensor([in_shape[d] for d in inner]).prod()))
    del keepdim  # the output keeps the order of the remaining axes either way
    return win


__all__ = ["trace", "Graph", "Bound", "Op", "UnsupportedOperation"]
