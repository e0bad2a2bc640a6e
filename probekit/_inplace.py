"""In-place operations in a traced graph: which input an operation writes into.

Both the incremental mutagenesis engine and the bound propagation keep cached
activations; an operation such as ``nn.ReLU(inplace=True)``, ``x.relu_()`` or
``x += y`` would overwrite them, so they run it on a copy of what it writes.

Examples
--------
>>> import torch
>>> from torch import fx, nn
>>> gm = fx.symbolic_trace(nn.Sequential(nn.Linear(2, 2), nn.ReLU(inplace=True)))
>>> [written_input(gm.get_submodule, node).name for node in gm.graph.nodes if written_input(gm.get_submodule, node)]
['_0']
"""

from __future__ import annotations

import inspect
import operator
from typing import Callable

from torch import fx

_IN_PLACE_OPERATORS = (operator.iadd, operator.isub, operator.imul, operator.itruediv)
_IN_PLACE_METHODS = frozenset(f"__i{name}__" for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift", "matmul"))


def written_input(module_of: Callable[[str], object], node: fx.Node) -> fx.Node | None:
    """The input node that ``node`` writes into in place, or None.

    Parameters
    ----------
    module_of : callable
        The submodule for a ``call_module`` target name.
    node : torch.fx.Node
    """
    if node.op not in ("call_module", "call_method", "call_function") or not node.args:
        return None
    if not isinstance(node.args[0], fx.Node):
        return None
    if node.op == "call_module":
        written = getattr(module_of(node.target), "inplace", False) is True
    elif node.op == "call_method":
        target = node.target if isinstance(node.target, str) else ""
        # x.relu_(), and x.__iadd__(y) written out (an augmented assignment traces as operator.iadd)
        written = (target.endswith("_") and not target.startswith("_")) or target in _IN_PLACE_METHODS
    else:
        name = getattr(node.target, "__name__", "")
        written = node.target in _IN_PLACE_OPERATORS or (name.endswith("_") and not name.startswith("_"))
        if not written:
            try:
                written = inspect.signature(node.target).bind(*node.args, **node.kwargs).arguments.get("inplace") is True
            except (TypeError, ValueError):
                written = False
    return node.args[0] if written else None


# operations whose result may be their input itself or a view of it: a write into the result writes there too
_ALIAS_MODULE_NAMES = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                                 "FeatureAlphaDropout", "Identity", "Flatten", "Unflatten"})
_ALIAS_METHODS = frozenset({"contiguous", "float", "double", "half", "bfloat16", "to", "type", "type_as", "view",
                            "view_as", "reshape", "reshape_as", "transpose", "permute", "flatten", "unflatten",
                            "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "select", "t", "detach",
                            "unfold", "movedim", "swapaxes", "chunk", "split", "unbind"})
_ALIAS_FUNCTIONS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                              "feature_alpha_dropout", "reshape", "transpose", "permute", "flatten", "unflatten",
                              "squeeze", "unsqueeze", "narrow", "select", "t", "detach", "movedim", "swapaxes",
                              "chunk", "split", "unbind", "getitem", "identity"})


def _may_alias(module_of: Callable[[str], object], node: fx.Node) -> bool:
    """Whether the result of ``node`` may share memory with its first input."""
    if not node.args or not isinstance(node.args[0], fx.Node):
        return False
    if node.op == "call_module":
        return type(module_of(node.target)).__name__ in _ALIAS_MODULE_NAMES
    if node.op == "call_method":
        return node.target in _ALIAS_METHODS
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") in _ALIAS_FUNCTIONS
    return False


def read_after_write(module_of: Callable[[str], object], graph: fx.Graph) -> fx.Node | None:
    """The first in-place operation whose written tensor is read by another operation too, or None.

    The written tensor may be the result of operations that return their input or a view of it
    (dropout in eval, ``contiguous``, a transpose or a slice): a read of any of those inputs counts.
    """
    for node in graph.nodes:
        source = written_input(module_of, node)
        while source is not None:
            if len(source.users) > 1:
                return node
            source = source.args[0] if _may_alias(module_of, source) else None
    return None
