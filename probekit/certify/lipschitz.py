"""Lipschitz constants: a global upper bound and a local lower bound.

The global bound walks the traced graph and multiplies per-layer operator
norms (sums of them at residual additions and concatenations): exact singular
values for Linear layers, the Fourier bound for Conv1d and Conv2d (the largest
singular value of the kernel's transfer matrix over the frequencies of a
circular convolution long enough to hold the zero-padded one), for other linear
maps the exact spectral norm of their matrix where it is small enough to write
out and the Hoelder bound ``sqrt(||J||_1 ||J||_inf)`` otherwise, exact row and
column sums for the L-inf and L1 norms, and the largest slope of each activation
(``max(1, slope)`` for LeakyReLU, ``max(1, alpha)`` for ELU, 1/4 for Sigmoid,
1 for the others). The local bound is the largest dual norm of the score's
gradient found by a short random search around given inputs: the true constant
lies between the two.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
>>> adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
>>> r = lipschitz(adapter, X=torch.randn(4, 3))
>>> bool((r.lower <= r.upper).all())
True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from .._device import model_device
from .._warnings import warn
from ..results import Result
from ._checks import input_reasons, nonfinite_rows, warn_refused
from .graph import Graph, UnsupportedOperation, trace
from .ibp import _drop_final_shift, abs_radius
from .spec import output_spec

_DUAL = {"l2": 2.0, "linf": 1.0, "l1": float("inf")}
_JUMP = 1e-8  # the largest relative drop of Softplus taken as rounding (2e-9 at its default threshold of 20)
_EXPLICIT = 2**20  # entries of the largest linear map written out as a matrix for its exact norm


@dataclass(frozen=True)
class LipschitzResult(Result):
    """Global upper and local lower bounds of a Lipschitz constant.

    Attributes
    ----------
    upper : float
        Guaranteed: ``|f(x) - f(x')| <= upper * ||x - x'||`` for all inputs.
    lower : torch.Tensor of shape (N,) or None
        Largest gradient dual norm found around each input (a lower bound).
    norm : str
    layers : list of (str, float)
        Each operation's factor in the global bound.
    reasons : list of str
        Per input, ``""`` or why its ``lower`` is NaN (the model returned NaN or inf on it).
    """

    upper: float
    lower: torch.Tensor | None
    norm: str = "l2"
    layers: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per input: id, local lower bound, global upper bound, ratio, reason."""
        if self.lower is None:
            return pd.DataFrame({"layer": [a for a, _ in self.layers], "factor": [b for _, b in self.layers]})
        n = len(self.lower)
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(n)],
                "norm": self.norm,
                "local_lower": self.lower.numpy(),
                "global_upper": self.upper,
                "ratio": (self.upper / self.lower.clamp(min=1e-30)).numpy(),
                "reason": self.reasons or [""] * n,
            }
        )


def _conv1d_norm(weight: torch.Tensor, length: int, padding: int, dilation: int, groups: int) -> float:
    """Upper bound of a zero-padded Conv1d's spectral norm by its circular embedding."""
    return _conv_norm(weight, (length,), (padding,), (dilation,), groups)


def _conv_norm(weight: torch.Tensor, sizes, paddings, dilations, groups: int) -> float:
    """Upper bound of a zero-padded convolution's spectral norm by its circular embedding.

    The zero-padded convolution (at any stride) is a block of a circular convolution
    on a grid long enough that no window wraps around; the norm of that one is the
    largest singular value of the kernel's transfer matrix over the grid's frequencies.
    """
    out_c, in_per = weight.shape[:2]
    taps = weight.shape[2:]
    spans = [(k - 1) * d + 1 for k, d in zip(taps, dilations)]
    grid = [n + 2 * p + s for n, p, s in zip(sizes, paddings, spans)]
    kernel = torch.zeros((out_c, in_per, *spans), dtype=torch.float64, device=weight.device)
    kernel[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilations)] = weight.detach().double()
    dims = tuple(range(2, 2 + len(taps)))
    spectrum = torch.fft.fftn(kernel, s=grid, dim=dims).flatten(2).permute(2, 0, 1)  # (M, out, in_per)
    blocks = spectrum.reshape(spectrum.shape[0], groups, out_c // groups, in_per)
    return float(torch.linalg.matrix_norm(blocks, ord=2).max())


def _linear_parts(bound, op, i: int, shapes):
    """J_i v (the op's linear part in input ``i``) and its transpose, per input."""
    ref = bound.env[op.inputs[0]]
    zeros = [torch.zeros((1,) + s, dtype=ref.dtype, device=ref.device) for s in shapes]

    def forward(v):
        vals = list(zeros)
        vals[i] = v
        return bound.apply(op, *vals) - bound.apply(op, *zeros)

    def transpose(u):
        with torch.enable_grad():
            _, vjp = torch.func.vjp(forward, zeros[i])
        return vjp(u)[0]

    return forward, transpose


def _explicit_norm(forward, transpose, in_shape, out_shape, like: torch.Tensor) -> float | None:
    """Exact spectral norm of a linear map small enough to write out as a matrix (else None).

    ``like`` gives the dtype and device of the map's inputs.
    """
    m, k = math.prod(in_shape), math.prod(out_shape)
    if m * k > _EXPLICIT:
        return None
    try:
        if m <= k:  # the matrix from its columns J e_j, or from its rows J^T e_j
            eye = torch.eye(m, dtype=like.dtype, device=like.device).reshape((m, 1) + tuple(in_shape))
            J = torch.func.vmap(forward)(eye).reshape(m, k)
        else:
            eye = torch.eye(k, dtype=like.dtype, device=like.device).reshape((k, 1) + tuple(out_shape))
            J = torch.func.vmap(transpose)(eye).reshape(k, m)
    except (RuntimeError, NotImplementedError):  # an operation without a batching rule: the caller bounds it otherwise
        return None
    return float(torch.linalg.matrix_norm(J.double(), ord=2))


def _operator_norm(bound, op, i: int, shapes, norm: str) -> float:
    """Upper bound of the norm of ``op``'s linear part in its input ``i`` (the induced norm ``norm``)."""
    graph = bound.graph
    forward, transpose = _linear_parts(bound, op, i, shapes)
    module = graph.modules.get(op.node.target) if op.node.op == "call_module" else None
    if norm in ("linf", "l1"):
        radii = [torch.zeros((1,) + s).to(bound.env[op.inputs[0]]) for s in shapes]
        center = forward(radii[i])
        with torch.enable_grad():
            v = torch.ones_like(radii[i]).requires_grad_(norm == "l1")
            radii[i] = v
            rows = abs_radius(bound, op, radii, center)  # |J_i| 1: the row sums of |J_i|
            if norm == "linf":
                return float(rows.detach().max())
            (cols,) = torch.autograd.grad(rows.sum(), v)  # 1^T |J_i|: its column sums
        return float(cols.max())
    if isinstance(module, nn.Linear):
        return float(torch.linalg.matrix_norm(module.weight.detach().double(), ord=2))
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and isinstance(module.padding, tuple) and module.padding_mode == "zeros":
        spatial = shapes[i][1:]
        return _conv_norm(module.weight, spatial, module.padding, module.dilation, module.groups)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        scale = (module.running_var + module.eps).rsqrt()
        if module.weight is not None:
            scale = scale * module.weight
        return float(scale.abs().max())
    # other linear maps: the exact norm when the matrix is small, and always the Hoelder bound
    holder = math.sqrt(_operator_norm(bound, op, i, shapes, "l1") * _operator_norm(bound, op, i, shapes, "linf"))
    exact = _explicit_norm(forward, transpose, shapes[i], graph.op(op.name).shape, bound.env[op.inputs[0]])
    return holder if exact is None else min(holder, exact)


def _window_multiplicity(op) -> int:
    idx = op.window.cpu()
    valid = idx[idx >= 0]
    return int(torch.bincount(valid).max()) if valid.numel() else 1


def global_bound(graph: Graph, bound, *, norm: str, spec=None) -> tuple[float, list]:
    """Upper bound of the Lipschitz constant of the graph's output (and of ``spec`` of it)."""
    const = {}
    layers = []
    for op in graph.ops:
        if op.kind == "input":
            const[op.name] = 1.0
            continue
        if op.kind == "alias":
            const[op.name] = const[op.inputs[0]]
            continue
        if op.kind == "shift":
            raise UnsupportedOperation(f"{op.label}: no Lipschitz bound of the whole log-probability output")
        if op.kind == "act":
            if math.isinf(op.slope):
                raise ValueError(f"{op.label} has no global Lipschitz constant")
            if op.slack * op.param > _JUMP:  # Softplus: log(1 + exp(-threshold)), whatever its beta
                raise UnsupportedOperation(
                    f"{op.label} jumps by {op.slack:.3g} where it switches to the identity (at beta * x = threshold), "
                    "so it has no global Lipschitz constant; raise its threshold (the default is 20)"
                )
            factor = op.slope
            const[op.name] = factor * const[op.inputs[0]]
        elif op.kind == "max":
            m = _window_multiplicity(op)
            factor = {"linf": 1.0, "l2": math.sqrt(m), "l1": float(m)}[norm]
            const[op.name] = factor * const[op.inputs[0]]
        else:
            shapes = [graph.op(name).shape for name in op.inputs]
            factors = [_operator_norm(bound, op, i, shapes, norm) for i in range(len(op.inputs))]
            factor = max(factors)
            const[op.name] = sum(f * const[name] for f, name in zip(factors, op.inputs))
        layers.append((op.label, factor))
    total = const[graph.output]
    if spec is not None:
        q = _DUAL[norm]
        rows = torch.linalg.vector_norm(spec.C[0], ord=q, dim=-1).max()
        factor = float(rows)
        if spec.reduce == "softmax":
            factor = 0.5  # |grad of a softmax probability| <= 1/2 in the L1, L2 and L-inf norms
        if spec.post == "sigmoid":
            factor *= 0.25
        if spec.a is not None:
            factor *= float(spec.a.abs().max())
        layers.append(("output selection", factor))
        total *= factor
    return total, layers


def _local_lower(adapter, X, *, norm, radius, n_samples, rounds, seed, whole_output) -> torch.Tensor:
    q = _DUAL[norm]
    gen = torch.Generator().manual_seed(seed)
    n = X.shape[0]

    def dual_norms(points, rows):
        if whole_output:
            y = adapter.predict(points[:1])
            best = torch.zeros(points.shape[0], device=points.device)
            for j in range(y[0].numel()):
                fn = lambda out, r, j=j: out.reshape(out.shape[0], -1)[:, j]  # noqa: E731
                _, grad = adapter.gradient(points, fn)
                best = torch.maximum(best, torch.linalg.vector_norm(grad.flatten(1), ord=q, dim=1))
            return best
        _, grad = adapter.gradient(points)
        return torch.linalg.vector_norm(grad.flatten(1), ord=q, dim=1)

    rows = torch.arange(n, device=X.device)
    best = dual_norms(X, rows)
    centres = X.clone()
    r = radius
    for _ in range(rounds):
        noise = torch.randn((n * n_samples,) + tuple(X.shape[1:]), generator=gen, dtype=torch.float32).to(X)
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, *[1] * (X.ndim - 1)) * r
        pts = centres.repeat_interleave(n_samples, 0) + noise
        vals = dual_norms(pts, rows.repeat_interleave(n_samples)).view(n, n_samples)
        top, arg = vals.max(1)
        better = top > best
        best = torch.where(better, top, best)
        cand = pts.view((n, n_samples) + tuple(X.shape[1:]))[torch.arange(n, device=X.device), arg]
        centres = torch.where(better.view(-1, *[1] * (X.ndim - 1)), cand, centres)
        r = r / 2
    return best


def lipschitz(
    adapter_or_model,
    *,
    norm: str = "l2",
    X=None,
    input_shape=None,
    radius: float = 0.1,
    n_samples: int = 32,
    rounds: int = 3,
    seed: int = 0,
) -> LipschitzResult:
    """Global upper bound and local lower bounds of the Lipschitz constant.

    Parameters
    ----------
    adapter_or_model : SequenceModel, FeatureModel or torch.nn.Module
        For an adapter, the constant of its score; for a bare module, of its whole
        output vector in the same norm.
    norm : {"l2", "linf", "l1"}
        The norm of input changes (and of output vectors for a bare module).
    X : torch.Tensor of shape (N, ...), optional
        Inputs around which to search for the local lower bound; they also give the
        input shape (otherwise pass ``input_shape``).
    input_shape : tuple, optional
        Shape of one input when no ``X`` is given.
    radius : float
        Initial L2 radius of the random search around each input; halved each round.
    n_samples, rounds, seed : int

    Returns
    -------
    LipschitzResult

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
    >>> round(lipschitz(layer, input_shape=(2,)).upper, 4)
    3.0
    """
    start = time.perf_counter()
    if norm not in _DUAL:
        raise ValueError(f"norm must be 'l2', 'linf' or 'l1', got {norm!r}")
    whole = isinstance(adapter_or_model, nn.Module)
    if whole:
        from ..adapters import FeatureModel, SequenceModel

        shape = tuple(X.shape[1:]) if X is not None else tuple(input_shape or ())
        if not shape:
            raise ValueError("pass X= or input_shape= with a bare model")
        first = lambda y: y.reshape(y.shape[0], -1)[:, 0]  # noqa: E731 - any selection; the whole output is bounded
        if len(shape) == 2 and shape[0] == 4:
            adapter = SequenceModel(adapter_or_model, output=first, device=model_device(adapter_or_model))
        else:
            adapter = FeatureModel(adapter_or_model, output=first, device=model_device(adapter_or_model))
    else:
        adapter = adapter_or_model
    if X is None:
        if input_shape is None:
            raise ValueError("pass X= (inputs) or input_shape= (the shape of one input)")
        probe = torch.zeros((1,) + tuple(input_shape), device=adapter.device, dtype=adapter.dtype)
    else:
        probe = adapter._as_input(X).to(adapter.dtype)
    with adapter.session(), torch.no_grad():
        graph = trace(adapter, probe[:1])
        bound = graph.bind(probe[:1])
        spec = None if whole else output_spec(adapter.output, bound.value(graph.output))
        if spec is not None:
            _drop_final_shift(graph, spec)
        upper, layers = global_bound(graph, bound, norm=norm, spec=spec)
    if math.isnan(upper):
        warn("the global Lipschitz bound came out NaN (does the model hold NaN weights?): reported as inf, no bound")
        upper = math.inf
    lower, reasons = None, []
    if X is not None:
        reasons = _reasons(adapter, probe, whole)
        lower = _local_lower(adapter, probe, norm=norm, radius=radius, n_samples=n_samples, rounds=rounds, seed=seed, whole_output=whole)
        refused = torch.tensor([bool(r) for r in reasons], dtype=torch.bool, device=lower.device)
        lower = torch.where(refused, math.nan, lower)
        warn_refused(reasons, outcome="their local lower bounds are NaN")
    return LipschitzResult(
        upper=float(upper),
        lower=lower,
        norm=norm,
        layers=layers,
        reasons=reasons,
        params={"seconds": time.perf_counter() - start, "radius": radius, "n_samples": n_samples, "rounds": rounds, "seed": seed},
    )


def _outputs(adapter, X: torch.Tensor, whole_output: bool) -> torch.Tensor:
    """(N, K) the outputs a constant is about at ``X`` (the score, or the whole output), and a NaN
    where the raw output holds one anywhere."""
    y = adapter.predict(X)
    flat = y.reshape(y.shape[0], -1)
    used = flat if whole_output else adapter.output(y).reshape(-1, 1).to(flat.dtype)
    nan_anywhere = torch.where(torch.isnan(flat).any(1), math.nan, 0.0).to(flat.dtype)
    return torch.cat([used, nan_anywhere[:, None]], 1)


def _reasons(adapter, X: torch.Tensor, whole_output: bool) -> list:
    """Per input, ``""`` or why nothing is claimed about it: the model returned NaN or inf on it."""
    return input_reasons(_outputs(adapter, X, whole_output))


def error_bound(adapter, X, *, input_error: float, norm: str = "l2", method: str = "both") -> torch.Tensor:
    """Guaranteed worst-case change of the score when each input is off by at most ``input_error``.

    ``"lipschitz"`` gives ``L * input_error`` with the global bound ``L``;
    ``"crown"`` the largest distance from the score to its CROWN bounds over the
    ball; ``"both"`` (default) the smaller of the two, per input.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...)
    input_error : float
        Radius of the measurement error in ``norm``.
    norm : {"l2", "linf", "l1"}
    method : {"both", "lipschitz", "crown"}

    Returns
    -------
    torch.Tensor of shape (N,)
        NaN where the model returns NaN or inf on the input (with a warning): nothing
        bounds how far such an output moves.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=outputs.value(0), device="cpu")
    >>> error_bound(adapter, torch.zeros(2, 3), input_error=0.1).shape
    torch.Size([2])
    """
    if method not in ("both", "lipschitz", "crown"):
        raise ValueError(f"method must be 'both', 'lipschitz' or 'crown', got {method!r}")
    X = adapter._as_input(X).to(adapter.dtype)
    n = X.shape[0]
    with adapter.session():
        values = _outputs(adapter, X, False)
    bad = nonfinite_rows(values).cpu()
    good = torch.nonzero(~bad)[:, 0]
    out = torch.full((n,), float("inf"))
    if method in ("both", "lipschitz"):
        out = torch.minimum(out, torch.full((n,), lipschitz(adapter, norm=norm, input_shape=tuple(X.shape[1:])).upper * input_error))
    if method in ("both", "crown") and len(good):
        from .crown import crown

        Xg = X[good.to(X.device)]
        b = crown(adapter, Xg, eps=input_error, norm=norm)
        s = values[good.to(values.device), 0].cpu()
        out[good] = torch.minimum(out[good], torch.maximum(b.upper - s, s - b.lower))
    warn_refused(input_reasons(values), outcome="their error bounds are NaN")
    return torch.where(bad, math.nan, out)


__all__ = ["lipschitz", "error_bound", "LipschitzResult"]
