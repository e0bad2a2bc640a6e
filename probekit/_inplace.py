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
        written = isinstance(node.target, str) and node.target.endswith("_") and not node.target.startswith("_")
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
