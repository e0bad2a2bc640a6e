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


def read_after_write(module_of: Callable[[str], object], graph: fx.Graph) -> fx.Node | None:
    """The first in-place operation whose written input is read by another operation too, or None."""
    for node in graph.nodes:
        written = written_input(module_of, node)
        if written is not None and len(written.users) > 1:
            return node
    return None
