"""Attributions through captum, taking an adapter.

Each function hands captum the adapter's differentiable score
(:meth:`Adapter.score_fn`) as the forward function, inside ``adapter.session()``,
in batches of ``adapter.batch_size`` inputs on ``adapter.device``, and returns an
:class:`Attribution`.

Definitions for DNA (one-hot ``X`` of shape (N, 4, L))
------------------------------------------------------
Every gradient method is read as *multipliers* ``M`` (N, 4, L) and a reference
``r`` (N, 4, L): captum's attribution is ``M * (X - r)``.

======================  ==============================  ========================
method                  multipliers ``M``               reference ``r``
======================  ==============================  ========================
saliency                gradient (absolute by default)  none (see below)
input_x_gradient        gradient at ``X``               zeros (1/4 if centred)
integrated_gradients    path-averaged gradient          the baseline
deeplift_shap           DeepLIFT multipliers            each shuffled reference
======================  ==============================  ========================

``form="hypothetical"`` gives, for every position ``l`` and base ``b``, the
contribution base ``b`` would make if it sat at ``l``, by the standard
DeepLIFT/SHAP projection::

    hypothetical[b, l] = sum_c M[c, l] * (onehot(b)[c] - r[c, l])
                       = M[b, l] - sum_c M[c, l] * r[c, l]

averaged over the references for DeepLIFT-SHAP. With the zero reference of
input x gradient this is the gradient itself; with its uniform reference of 1/4
(``center=True``) it is the gradient minus its mean over the four bases. For
saliency, ``hypothetical[b, l] = M[b, l]``.

``X`` is taken to be one-hot: an ``N`` position (all-zero column) gets no
attribution in either form.

``form="observed"`` keeps only the observed base: ``values = X * hypothetical``,
so each position carries the sum over channels of captum's attribution
(``sum_c M * (X - r)``) on its observed base; for input x gradient this is
exactly captum's ``InputXGradient``. ``per_position`` (N, L) is that sum in both
forms, and for DeepLIFT-SHAP and integrated gradients
``per_position.sum(1) = f(X) - mean f(r)`` up to the reported ``delta``.

Ablation methods (``feature_ablation``, ``shapley_sampling``) treat each DNA
position as one feature, replaced by the baseline (default: ``N``, all zeros);
they have no hypothetical form.

For features (N, F) the values are captum's attributions, one per feature.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
>>> result = input_x_gradient(adapter, ["ACGTACGTAC", "TTTTACGTAA"])
>>> result.values.shape, result.per_position.shape
(torch.Size([2, 4, 10]), torch.Size([2, 10]))
>>> result.to_frame().columns.tolist()[:4]
['id', 'position', 'ref', 'attribution']
"""

from __future__ import annotations

import copy
import operator
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import outputs
from ._device import map_batches
from ._warnings import warn
from .adapters import SequenceModel
from .encode.dna import reverse_complement
from .encode.shuffle import dinucleotide_shuffle
from .results import Result

FORMS = ("observed", "hypothetical")


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Attribution(Result):
    """Attributions of the adapter's selected score to each input element.

    Attributes
    ----------
    values : torch.Tensor of the shape of the inputs, (N, 4, L) or (N, F)
        Observed-base or hypothetical attributions for DNA (see :mod:`probekit.attr`);
        one value per feature for feature inputs.
    method : str
    form : {"observed", "hypothetical"}
    per_position : torch.Tensor of shape (N, L) or None
        DNA: attribution of the observed base at each position. None for features.
    inputs : torch.Tensor of the shape of the inputs
        The inputs attributed (for the ``ref`` and ``value`` columns of tables).
    delta : torch.Tensor of shape (N,) or None
        Summation error ``f(X) - mean f(r) - sum(attribution)`` for integrated
        gradients and DeepLIFT-SHAP; None for other methods.
    feature_names : list of str
    alphabet : str
    ids : list of str
    params : dict
        Method parameters, output name, device and seconds.
    """

    values: torch.Tensor
    method: str
    form: str = "observed"
    per_position: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    delta: torch.Tensor | None = None
    feature_names: list = field(default_factory=list)
    alphabet: str = "ACGT"
    ids: list = field(default_factory=list)
    params: dict = field(default_factory=dict)

    @property
    def is_sequence(self) -> bool:
        """True for DNA attributions (N, 4, L)."""
        return self.per_position is not None

    def _ids(self) -> list:
        prefix = "seq" if self.is_sequence else "x"
        return list(self.ids) or [f"{prefix}{i}" for i in range(self.values.shape[0])]

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per input and position (DNA) or feature.

        DNA columns: ``id``, ``position``, ``ref``, ``attribution`` (the observed
        base's attribution) and one column per base of ``values``. Feature
        columns: ``id``, ``feature``, ``value``, ``attribution``.
        """
        ids = np.array(self._ids(), dtype=object)
        n = self.values.shape[0]
        if self.is_sequence:
            length = self.values.shape[2]
            letters = np.array(list(self.alphabet) + ["N"])
            X = self.inputs
            if X is not None:
                ref = letters[X.argmax(dim=1).masked_fill(X.sum(dim=1) == 0, len(self.alphabet)).numpy().ravel()]
            else:
                ref = None
            frame = pd.DataFrame(
                {
                    "id": np.repeat(ids, length),
                    "position": np.tile(np.arange(length), n),
                    "ref": ref,
                    "attribution": self.per_position.reshape(-1).numpy(),
                }
            )
            for c, letter in enumerate(self.alphabet):
                frame[letter] = self.values[:, c].reshape(-1).numpy()
            return frame
        n_features = self.values.shape[1]
        names = self.feature_names or [f"f{j}" for j in range(n_features)]
        return pd.DataFrame(
            {
                "id": np.repeat(ids, n_features),
                "feature": np.tile(np.array(names, dtype=object), n),
                "value": self.inputs.reshape(-1).numpy() if self.inputs is not None else np.nan,
                "attribution": self.values.reshape(-1).numpy(),
            }
        )

    def summary(self) -> pd.DataFrame:
        """One row per input: total attribution, largest |attribution| and where, ``delta``."""
        scores = self.per_position if self.is_sequence else self.values
        top = scores.abs().argmax(dim=1).numpy()
        if not self.is_sequence:
            top = np.array(self.feature_names or [f"f{j}" for j in range(scores.shape[1])], dtype=object)[top]
        frame = pd.DataFrame(
            {
                "id": self._ids(),
                "method": self.method,
                "total": scores.sum(dim=1).numpy(),
                "max_abs": scores.abs().max(dim=1).values.numpy(),
                "top_position" if self.is_sequence else "top_feature": top,
            }
        )
        if self.delta is not None:
            frame["delta"] = self.delta.numpy()
        return frame


# --------------------------------------------------------------------------- helpers
def _inputs(adapter, X, ids) -> tuple[torch.Tensor, list]:
    """Encoded inputs on the adapter's device, and their ids (given, from a DataFrame, or none)."""
    if ids is None and isinstance(X, pd.DataFrame) and "id" in X.columns:
        ids = X["id"]
    encoded = adapter.encode(X).detach().to(adapter.device, torch.float32)
    if encoded.shape[0] == 0:
        raise ValueError("no inputs to attribute")
    ids = [str(i) for i in ids] if ids is not None else []
    if ids and len(ids) != encoded.shape[0]:
        raise ValueError(f"{len(ids)} ids for {encoded.shape[0]} inputs")
    return encoded, ids


def _is_dna(adapter) -> bool:
    return isinstance(adapter, SequenceModel)


def _check_form(adapter, form: str, method: str) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be 'observed' or 'hypothetical', got {form!r}")
    if form == "hypothetical" and not _is_dna(adapter):
        raise ValueError("form='hypothetical' applies to one-hot DNA only; feature attributions have one form")
    if form == "hypothetical" and method in ("feature_ablation", "shapley_sampling"):
        raise ValueError(f"{method} has no hypothetical form; use form='observed'")


def _batched(adapter, n: int, fn, *, size: int | None = None, progress: bool = False, desc: str = "") -> torch.Tensor:
    """``fn(start, stop)`` over ``range(n)`` in batches (halved on CUDA out-of-memory), concatenated."""
    from tqdm.auto import tqdm

    size = size or adapter.batch_size
    with tqdm(total=n, desc=desc, disable=not progress) as bar:

        def step(a: int, b: int) -> torch.Tensor:
            out = fn(a, b)
            bar.update(b - a)
            return out

        parts = map_batches(step, n, size, on_backoff=getattr(adapter, "_on_backoff", None))
    return torch.cat(parts)


def _baseline(spec, X: torch.Tensor, dna: bool) -> torch.Tensor:
    """Reference tensor of the shape of ``X`` from "zeros", "mean" or a tensor."""
    if isinstance(spec, str):
        if spec == "zeros":
            return torch.zeros_like(X)
        if spec == "mean":
            if dna:
                # Base composition of the inputs, the same at every position.
                freq = X.mean(dim=(0, 2))
                return freq[None, :, None].expand_as(X).clone()
            return X.mean(dim=0, keepdim=True).expand_as(X).clone()
        raise ValueError(f"baseline must be 'zeros', 'mean' or a tensor, got {spec!r}")
    if isinstance(spec, (int, float)):
        return torch.full_like(X, float(spec))
    base = torch.as_tensor(spec, dtype=X.dtype, device=X.device)
    try:
        return base.expand_as(X).clone()
    except RuntimeError:
        shapes = f"{tuple(base.shape)} does not broadcast to inputs {tuple(X.shape)}"
        raise ValueError(f"baseline of shape {shapes}") from None


def _params(adapter, start: float, **params) -> dict:
    seconds = time.perf_counter() - start
    return {**params, "output": adapter.output.name, "device": str(adapter.device), "seconds": seconds}


def _from_multipliers(adapter, X, M, r, **kw) -> Attribution:
    """The result from multipliers ``M`` and reference ``r`` (None: no reference; see the module docstring)."""
    if _is_dna(adapter):
        hypothetical = M if r is None else M - (M * r).sum(dim=1, keepdim=True)
        return _dna_result(adapter, X, hypothetical, **kw)
    kw.pop("form")
    return _feature_result(adapter, X, M if r is None else M * (X - r), **kw)


def _feature_result(adapter, X, values, *, method, ids, params, delta=None) -> Attribution:
    names = adapter.names(X.shape[1])
    return Attribution(values=values, method=method, inputs=X, delta=delta, feature_names=names, ids=ids, params=params)


def _dna_result(adapter, X, hypothetical, *, method, form, ids, params, delta=None) -> Attribution:
    observed = X * hypothetical
    return Attribution(
        values=observed if form == "observed" else hypothetical,
        method=method,
        form=form,
        per_position=observed.sum(dim=1),
        inputs=X,
        delta=delta,
        alphabet=adapter.alphabet,
        ids=ids,
        params=params,
    )


def _gradients(adapter, X, captum_cls, **kwargs) -> torch.Tensor:
    def run(a: int, b: int) -> torch.Tensor:
        explainer = captum_cls(adapter.score_fn)
        return explainer.attribute(X[a:b].clone().requires_grad_(True), **kwargs).detach()

    with adapter.session(), torch.enable_grad():
        return _batched(adapter, X.shape[0], run)


# --------------------------------------------------------------------------- gradient methods
def saliency(adapter, X, *, form: str = "observed", abs: bool = True, ids=None) -> Attribution:  # noqa: A002
    """Gradient of the score with respect to the input (captum ``Saliency``).

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, 4, L) or (N, F), or inputs the adapter can encode
        Sequences (strings, a DataFrame with ``sequence`` and ``id``), molecules
        with a featurizer, or tensors.
    form : {"observed", "hypothetical"}
        DNA only: the gradient at the observed base, or at every base.
    abs : bool
        Absolute value of the gradient, as captum does by default.
    ids : list of str, optional

    Returns
    -------
    Attribution

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, device="cpu")
    >>> saliency(adapter, torch.ones(2, 3)).values.shape
    torch.Size([2, 3])
    """
    from captum.attr import Saliency

    _check_form(adapter, form, "saliency")
    start = time.perf_counter()
    X, ids = _inputs(adapter, X, ids)
    M = _gradients(adapter, X, Saliency, abs=abs)
    params = _params(adapter, start, abs=abs)
    return _from_multipliers(adapter, X, M, None, method="saliency", form=form, ids=ids, params=params)


def input_x_gradient(adapter, X, *, form: str = "observed", center: bool = False, ids=None) -> Attribution:
    """Gradient times input (captum ``InputXGradient``); the hypothetical form is the gradient.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, 4, L) or (N, F), or inputs the adapter can encode
        Sequences (strings, a DataFrame with ``sequence`` and ``id``), molecules
        with a featurizer, or tensors.
    form : {"observed", "hypothetical"}
        DNA only: gradient times input at the observed base, or the gradient at every
        base (the hypothetical contribution with the zero reference).
    center : bool
        DNA only: use the uniform reference 1/4 instead of zeros, so that
        ``hypothetical[b] = grad[b] - mean over bases of grad`` (the gradient
        correction of Majdandzic et al., 2023, which removes the gradient component
        that leaves the one-hot simplex). The observed form is then no longer
        captum's ``InputXGradient`` but its centred version.
    ids : list of str, optional

    Returns
    -------
    Attribution

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, device="cpu")
    >>> input_x_gradient(adapter, torch.ones(2, 3)).values.shape
    torch.Size([2, 3])
    """
    from captum.attr import InputXGradient, Saliency

    _check_form(adapter, form, "input_x_gradient")
    start = time.perf_counter()
    X, ids = _inputs(adapter, X, ids)
    if _is_dna(adapter):  # the gradient is needed at every base for the hypothetical form
        M = _gradients(adapter, X, Saliency, abs=False)
        kw = {"method": "input_x_gradient", "ids": ids, "params": _params(adapter, start, center=center)}
        reference = torch.full_like(X, 1.0 / X.shape[1]) if center else torch.zeros_like(X)
        return _from_multipliers(adapter, X, M, reference, form=form, **kw)
    if center:
        raise ValueError("center=True applies to one-hot DNA only")
    values = _gradients(adapter, X, InputXGradient)
    return _feature_result(adapter, X, values, method="input_x_gradient", ids=ids, params=_params(adapter, start))


def integrated_gradients(
    adapter,
    X,
    *,
    baseline="zeros",
    n_steps: int = 50,
    method: str = "gausslegendre",
    form: str = "observed",
    ids=None,
    progress: bool = False,
) -> Attribution:
    """Integrated gradients from a baseline (captum ``IntegratedGradients``).

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, 4, L) or (N, F), or inputs the adapter can encode
        Sequences (strings, a DataFrame with ``sequence`` and ``id``), molecules
        with a featurizer, or tensors.
    baseline : {"zeros", "mean"} or torch.Tensor
        ``"zeros"``; ``"mean"``: feature means of ``X`` (for DNA, the base
        composition of ``X`` at every position); or a tensor broadcastable to ``X``.
    n_steps : int
        Points on the path; captum evaluates them ``adapter.batch_size`` rows at a time.
    method : str
        captum's quadrature rule.
    form : {"observed", "hypothetical"}
        DNA only; see :mod:`probekit.attr`.
    ids : list of str, optional
    progress : bool
        Show a progress bar over inputs.

    Returns
    -------
    Attribution
        ``delta`` is ``f(X) - f(baseline) - sum(attributions)`` (quadrature error).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, device="cpu")
    >>> r = integrated_gradients(adapter, torch.ones(2, 3), n_steps=8)
    >>> bool(r.delta.abs().max() < 1e-4)
    True
    """
    from captum.attr import IntegratedGradients

    _check_form(adapter, form, "integrated_gradients")
    start = time.perf_counter()
    X, ids = _inputs(adapter, X, ids)
    r = _baseline(baseline, X, _is_dna(adapter))

    def run(a: int, b: int) -> torch.Tensor:
        ig = IntegratedGradients(adapter.score_fn, multiply_by_inputs=False)
        xb = X[a:b].clone().requires_grad_(True)
        # internal_batch_size: path points are evaluated batch_size rows at a time.
        rows = max(b - a, adapter.batch_size)
        return ig.attribute(xb, baselines=r[a:b], n_steps=n_steps, method=method, internal_batch_size=rows).detach()

    with adapter.session(), torch.enable_grad():
        M = _batched(adapter, X.shape[0], run, progress=progress, desc="integrated gradients")
    delta = _delta(adapter, X, r[:, None], M * (X - r))
    name = baseline if isinstance(baseline, str) else "tensor"
    params = _params(adapter, start, baseline=name, n_steps=n_steps, method=method)
    kw = {"method": "integrated_gradients", "form": form, "ids": ids, "params": params, "delta": delta}
    return _from_multipliers(adapter, X, M, r, **kw)


def _delta(adapter, X, refs, attributions) -> torch.Tensor:
    """``f(X) - mean_r f(ref_r) - sum(attributions)`` per input; ``refs`` (N, R, ...)."""
    n, R = refs.shape[:2]
    fx = adapter.score(X)
    fr = adapter.score(refs.reshape(n * R, *refs.shape[2:])).reshape(n, R).mean(dim=1)
    return (fx - fr - attributions.reshape(n, -1).sum(dim=1)).detach()


# --------------------------------------------------------------------------- DeepLIFT
_FACTORIES = {
    "relu": lambda a, k: nn.ReLU(inplace=bool(_arg(a, k, 1, "inplace", False))),
    "sigmoid": lambda a, k: nn.Sigmoid(),
    "tanh": lambda a, k: nn.Tanh(),
    "softmax": lambda a, k: nn.Softmax(dim=_arg(a, k, 1, "dim", None)),
    "elu": lambda a, k: nn.ELU(_arg(a, k, 1, "alpha", 1.0), inplace=bool(_arg(a, k, 2, "inplace", False))),
    "leaky_relu": lambda a, k: nn.LeakyReLU(
        _arg(a, k, 1, "negative_slope", 0.01), bool(_arg(a, k, 2, "inplace", False))
    ),
    "softplus": lambda a, k: nn.Softplus(_arg(a, k, 1, "beta", 1.0), _arg(a, k, 2, "threshold", 20.0)),
}
_FUNCTIONS = {
    torch.relu: "relu",
    F.relu: "relu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.softmax: "softmax",
    F.softmax: "softmax",
    F.elu: "elu",
    F.leaky_relu: "leaky_relu",
    F.softplus: "softplus",
}
_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax"}
_RULE_MODULES = (
    nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softmax,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
)


class _MaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` with an exact DeepLIFT rule of its own (see :func:`_maxpool1d_rule`)."""


def _maxpool1d_rule(module, inputs, outputs, grad_input, grad_output, eps: float = 1e-10):
    """DeepLIFT max-pool rule that sums exactly.

    As captum's rule, the change of each pooled output is routed to the positions
    that won the max in the input and in the reference; unlike captum 0.9 it
    accumulates (overlapping windows can share a winner) and falls back to each
    example's own gradient, not the first example's, where the input does not change.
    """
    with torch.no_grad():
        x, x_ref = inputs.chunk(2)
        out, out_ref = outputs.chunk(2)
        delta_in = torch.cat(2 * [x - x_ref])
        cross = torch.max(out, out_ref)
        delta_out = torch.cat([cross - out_ref, out - cross])
        _, index = F.max_pool1d(
            inputs, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode, True
        )
        routed = torch.zeros_like(inputs).scatter_add_(-1, index, grad_output * delta_out)
        routed = torch.cat(2 * [sum(routed.chunk(2))])
        small = delta_in.abs() < eps
        return torch.where(small, grad_input, routed / torch.where(small, torch.ones_like(delta_in), delta_in))


def _register_maxpool_rule() -> bool:
    """Give :class:`_MaxPool1d` its rule in captum's table (a class only probekit uses)."""
    try:
        from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR
    except ImportError:  # pragma: no cover - captum moved its table: keep captum's own rule
        return False
    SUPPORTED_NON_LINEAR[_MaxPool1d] = _maxpool1d_rule
    return True


def _exact_maxpool(module: nn.MaxPool1d) -> nn.Module:
    if module.return_indices or not _register_maxpool_rule():
        return copy.deepcopy(module)
    return _MaxPool1d(module.kernel_size, module.stride, module.padding, module.dilation, False, module.ceil_mode)


def _arg(args, kwargs, i, name, default):
    return args[i] if len(args) > i else kwargs.get(name, default)


def deeplift_ready(model, *, example: torch.Tensor | None = None):
    """A copy of ``model`` whose nonlinearities are modules captum's DeepLIFT gives its rule to.

    captum applies the DeepLIFT rescale rule only to ``nn.ReLU``, ``nn.Sigmoid``...
    modules, each called once. The model is traced with ``torch.fx``; functional
    calls (``torch.relu(x)``, ``F.relu(x)``, ``x.relu()``, sigmoid, tanh,
    softmax, elu, leaky_relu, softplus) become fresh modules, and every
    nonlinear module call gets its own copy, so reused modules and two-strand
    averaging work. Nonlinear modules that follow each other directly (a ReLU
    feeding a max pool) are kept apart by a copy, which captum needs to get
    their multipliers right. Given an ``example`` input, global max pooling over the
    last axis of a 3-D tensor (``h.max(dim=-1).values``, ``torch.amax(h, -1)``)
    becomes ``nn.MaxPool1d`` over the whole length, which has captum's max rule.
    The user's model is never changed: weights are shared, modules holding
    nonlinearities are not. If tracing fails the model is returned as it is,
    with a :class:`ProbekitWarning`.

    Parameters
    ----------
    model : torch.nn.Module or callable
    example : torch.Tensor, optional
        An input in the model's layout, on its device, used to learn the
        lengths that global max pooling runs over.

    Returns
    -------
    torch.fx.GraphModule, or ``model`` itself when it cannot be traced
        Computes the same outputs as ``model``. Its ``nn.MaxPool1d`` modules are
        replaced by a subclass whose DeepLIFT rule accumulates over overlapping
        windows and falls back to each example's own gradient (captum 0.9's rule
        drops shared winners and reuses the first example's gradient).

    Examples
    --------
    >>> from probekit.testing import ToyConv
    >>> ready = deeplift_ready(ToyConv())
    >>> any(isinstance(m, torch.nn.ReLU) for m in ready.modules())
    True
    """

    def record(gm):
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(gm).propagate(example)

    return _prepare(model, record if example is not None else None)


class _ShapeRecorder(nn.Module):
    """Runs a traced model through ``ShapeProp``, so the adapter's forward path records its shapes."""

    def __init__(self, gm):
        super().__init__()
        self.gm = gm

    def forward(self, x):
        from torch.fx.passes.shape_prop import ShapeProp

        return ShapeProp(self.gm).propagate(x)


def _prepare(model, record_shapes=None):
    """:func:`deeplift_ready`, with ``record_shapes(gm)`` annotating tensor shapes on the traced graph."""
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure falls back with a warning
        warn(
            f"DeepLIFT: torch.fx could not trace the model ({type(error).__name__}: {error}); functional "
            "nonlinearities (torch.relu, F.relu, x.relu()) in its forward get no DeepLIFT rule, so attributions "
            "may not sum to the change in output. Use nn.ReLU-style modules to avoid this."
        )
        return model
    graph = gm.graph
    if record_shapes is not None:
        try:
            record_shapes(gm)
        except Exception:  # noqa: BLE001 - without shapes, global max pooling keeps its gradient
            pass
    count = _replace_global_max(gm)
    for node in list(graph.nodes):
        name = None
        if node.op == "call_function" and node.target in _FUNCTIONS:
            name = _FUNCTIONS[node.target]
        elif node.op == "call_method" and node.target in _METHODS:
            name = _METHODS[node.target]
        if name is not None:
            extra = list(node.args[1:]) + list(node.kwargs.values())
            if any(isinstance(v, torch.fx.Node) for v in extra) or node.kwargs.get("dtype") is not None:
                continue  # arguments only known at run time: leave the call as it is
            if name == "softmax" and _arg(node.args, node.kwargs, 1, "dim", None) is None:
                continue
            module = _FACTORIES[name](node.args, node.kwargs)
        elif node.op == "call_module" and isinstance(gm.get_submodule(node.target), _RULE_MODULES):
            module = gm.get_submodule(node.target)
            module = _exact_maxpool(module) if type(module) is nn.MaxPool1d else copy.deepcopy(module)
        else:
            continue
        target = f"_deeplift_{name or 'module'}_{count}"
        count += 1
        gm.add_submodule(target, module)
        with graph.inserting_before(node):
            new = graph.call_module(target, (node.args[0],))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    _separate_rule_modules(gm)
    graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm


def _is_rule_call(gm, node) -> bool:
    return node.op == "call_module" and isinstance(gm.get_submodule(node.target), _RULE_MODULES)


def _separate_rule_modules(gm) -> None:
    """Put a copy between two rule modules that follow each other directly.

    When one hooked nonlinearity feeds the next without an operation in between
    (``nn.ReLU`` then ``nn.MaxPool1d``), captum's backward hooks share one tensor
    and the multipliers come out wrong (summation fails); a ``clone`` keeps them apart.
    """
    graph = gm.graph
    for node in list(graph.nodes):
        if not _is_rule_call(gm, node) or not isinstance(node.args[0], torch.fx.Node):
            continue
        source = node.args[0]
        if _is_rule_call(gm, source):
            with graph.inserting_before(node):
                copied = graph.call_method("clone", (source,))
            node.replace_input_with(source, copied)


def _global_max_length(node) -> int | None:
    """Length L when ``node`` takes the max over the last axis of a (N, C, L) tensor, else None."""
    is_max = (node.op == "call_method" and node.target in ("max", "amax")) or (
        node.op == "call_function" and node.target in (torch.max, torch.amax)
    )
    if not is_max or not node.args or not isinstance(node.args[0], torch.fx.Node):
        return None
    meta = node.args[0].meta.get("tensor_meta")
    dim = _arg(node.args, node.kwargs, 1, "dim", None)
    if meta is None or len(meta.shape) != 3 or dim not in (-1, 2, (-1,), (2,), [-1], [2]):
        return None
    if _arg(node.args, node.kwargs, 2, "keepdim", False) is not False:
        return None
    return int(meta.shape[2])


def _replace_global_max(gm) -> int:
    """Turn global max pooling over the last axis into ``nn.MaxPool1d`` modules; returns how many."""
    graph = gm.graph
    count = 0
    for node in list(graph.nodes):
        length = _global_max_length(node)
        if length is None:
            continue
        returns_pair = node.target in ("max", torch.max)
        users = list(node.users)
        if returns_pair and not all(_takes_values(u) for u in users):
            continue  # the indices are used: leave it
        target = f"_deeplift_maxpool_{count}"
        count += 1
        gm.add_submodule(target, nn.MaxPool1d(kernel_size=length))  # made exact by the loop that follows
        with graph.inserting_before(node):
            pooled = graph.call_module(target, (node.args[0],))
            squeezed = graph.call_method("squeeze", (pooled, -1))
        for user in users if returns_pair else [node]:
            user.replace_all_uses_with(squeezed)
        for user in users if returns_pair else []:
            graph.erase_node(user)
        graph.erase_node(node)
    return count


def _takes_values(node) -> bool:
    """True when ``node`` reads the values of a ``max(dim=...)`` result (``.values`` or ``[0]``)."""
    if node.op != "call_function" or len(node.args) != 2:
        return False
    return (node.target is getattr and node.args[1] == "values") or (
        node.target is operator.getitem and node.args[1] == 0
    )


class _BothStrands(nn.Module):
    """Average of two traced copies over a sequence and its reverse complement (canonical NCL input)."""

    def __init__(self, forward_net, reverse_net, *, layout: str, alphabet: str):
        super().__init__()
        self.forward_net = forward_net
        self.reverse_net = reverse_net
        self.layout = layout
        self.alphabet = alphabet

    def _layout(self, x):
        return x.transpose(1, 2) if self.layout == "NLC" else x

    def forward(self, x):
        rc = reverse_complement(x, alphabet=self.alphabet)
        return 0.5 * (self.forward_net(self._layout(x)) + self.reverse_net(self._layout(rc)))


class _Scored(nn.Module):
    """The adapter's score as a module, so captum can hook the model's nonlinearities."""

    def __init__(self, adapter):
        super().__init__()
        self.net = adapter.model if isinstance(adapter.model, nn.Module) else None
        self.adapter = adapter

    def forward(self, x):
        return self.adapter.score_fn(x)


def _both_strands(adapter) -> bool:
    """True when the adapter averages both strands."""
    return getattr(adapter, "strands", "forward") == "both"


class _ProbHead(nn.Module):
    """``outputs.prob(i)`` as modules after the model: softmax over columns, or sigmoid of a single logit."""

    def __init__(self, net, index: int):
        super().__init__()
        self.net = net
        self.index = index
        self.softmax = nn.Softmax(dim=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.net(x)
        y = y[:, None] if y.ndim == 1 else y
        if y.shape[1] == 1:
            return self.sigmoid(y)
        return self.softmax(y)[:, self.index : self.index + 1]


def _deeplift_adapter(adapter, X):
    """A copy of the adapter whose model carries every nonlinearity as a module of its own."""
    changes = {}

    def record(gm):  # one input through the adapter's own forward path
        adapter.replace(model=_ShapeRecorder(gm)).predict(X[:1])

    with adapter.session():
        ready = [_prepare(adapter.model, record) for _ in range(2 if _both_strands(adapter) else 1)]
    if len(ready) == 2:
        net = _BothStrands(*ready, layout=adapter.layout, alphabet=adapter.alphabet)
        changes.update(strands="forward", layout="NCL")
    else:
        net = ready[0]
    if adapter.output.name.startswith("prob[") and adapter.output.index is not None:
        # The probability's softmax/sigmoid gets its DeepLIFT rule too.
        net = _ProbHead(net, adapter.output.index)
        changes["output"] = outputs.value(0)
    return adapter.replace(model=net, **changes)


def _record_seed(seed: int, x: torch.Tensor) -> list[int]:
    """The seed of one input's shuffles: ``seed`` and a digest of the input's values."""
    import hashlib

    digest = hashlib.blake2b(x.detach().to("cpu", torch.float32).contiguous().numpy().tobytes(), digest_size=16)
    return [int(seed), *np.frombuffer(digest.digest(), dtype=np.uint32).tolist()]


def shuffled_references(X: torch.Tensor, *, n: int, seed: int = 0, alphabet: str = "ACGT") -> torch.Tensor:
    """The default DeepLIFT-SHAP references of DNA: ``n`` dinucleotide shuffles of each input.

    Each input's shuffles are drawn from a generator seeded by ``seed`` and the
    input itself, so an input gets the same references whatever the other
    inputs, their order, the batch or the shard it is in.

    Parameters
    ----------
    X : torch.Tensor of shape (N, 4, L)
        One-hot inputs.
    n : int
        Shuffles per input.
    seed : int
    alphabet : str

    Returns
    -------
    torch.Tensor of shape (N, n, 4, L)
        On the device and with the dtype of ``X``.

    Examples
    --------
    >>> from probekit.encode import one_hot
    >>> X = one_hot(["ACGTTGCAAC", "GGATCCATGA"])
    >>> both = shuffled_references(X, n=3, seed=1)
    >>> both.shape, bool(both[1].equal(shuffled_references(X[1:], n=3, seed=1)[0]))
    (torch.Size([2, 3, 4, 10]), True)
    """
    if X.shape[0] == 0:
        return X.new_zeros(0, n, *X.shape[1:])
    return torch.stack([dinucleotide_shuffle(x, n=n, seed=_record_seed(seed, x), alphabet=alphabet) for x in X])


def _references(adapter, X, references, n_references: int, seed: int) -> torch.Tensor:
    """References (N, R, ...) on the adapter's device."""
    n = X.shape[0]
    if references is None:
        if _is_dna(adapter):
            return shuffled_references(X, n=n_references, seed=seed, alphabet=adapter.alphabet)
        # Background drawn from the inputs themselves.
        g = torch.Generator().manual_seed(seed)
        pick = torch.randint(0, n, (n_references,), generator=g).to(X.device)
        return X[pick][None].expand(n, *X[pick].shape)
    refs = torch.as_tensor(references, dtype=X.dtype).to(X.device)
    if refs.ndim == X.ndim:  # (R, ...) shared by every input
        refs = refs[None].expand(n, *refs.shape)
    if refs.ndim != X.ndim + 1 or refs.shape[0] != n or refs.shape[2:] != X.shape[1:]:
        shape = ", ".join(map(str, X.shape[1:]))
        raise ValueError(f"references must have shape (R, {shape}) or (N, R, {shape}); got {tuple(refs.shape)}")
    return refs


def deeplift_shap(
    adapter,
    X,
    *,
    references=None,
    n_references: int = 20,
    seed: int = 0,
    form: str = "observed",
    ids=None,
    progress: bool = False,
) -> Attribution:
    """DeepLIFT (rescale rule) averaged over references: DeepLIFT-SHAP through captum ``DeepLift``.

    Each input is paired with each of its references; captum's ``DeepLift``
    gives the multipliers of every pair, and the attributions are averaged over
    the references.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, 4, L) or (N, F), or inputs the adapter can encode
        Sequences (strings, a DataFrame with ``sequence`` and ``id``), molecules
        with a featurizer, or tensors.
    references : torch.Tensor of shape (R, ...) or (N, R, ...), optional
        References shared by all inputs, or per input. Default for DNA:
        ``n_references`` dinucleotide shuffles of each input, seeded by ``seed``
        and the input itself (:func:`shuffled_references`), so an input gets the
        same references in any batch or shard; for features:
        ``n_references`` rows drawn from ``X``.
    n_references : int
    seed : int
        Seed of the shuffles or of the drawn rows.
    form : {"observed", "hypothetical"}
        DNA only; see the module docstring.
    ids : list of str, optional
    progress : bool
        Show a progress bar over input-reference pairs.

    Returns
    -------
    Attribution
        ``delta`` is ``f(X) - mean f(ref) - sum(attributions)``, near zero when
        every nonlinearity got its rule.

    Notes
    -----
    The model is prepared by :func:`deeplift_ready`: functional nonlinearities
    and global max pooling become modules, 1-D max pools get an exact rule, and
    nonlinear modules that follow each other are kept apart. The softmax or
    sigmoid of ``outputs.prob`` gets its rule too; a nonlinearity inside a custom
    output callable is handled by its gradient. captum's softmax rule does not
    sum exactly; ReLU, sigmoid, tanh and max pooling do.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> r = deeplift_shap(adapter, ["ACGTACGTACGTAAGT"], n_references=4, form="hypothetical")
    >>> r.values.shape
    torch.Size([1, 4, 16])
    """
    from captum.attr import DeepLift

    _check_form(adapter, form, "deeplift_shap")
    start = time.perf_counter()
    X, ids = _inputs(adapter, X, ids)
    refs = _references(adapter, X, references, n_references, seed)
    n, R = refs.shape[:2]
    inputs = X[:, None].expand_as(refs).reshape(n * R, *X.shape[1:])
    baselines = refs.reshape(n * R, *X.shape[1:]).contiguous()
    lifted = _deeplift_adapter(adapter, X)
    module = _Scored(lifted)

    def run(a: int, b: int) -> torch.Tensor:
        explainer = DeepLift(module, multiply_by_inputs=False)
        return explainer.attribute(inputs[a:b].clone().requires_grad_(True), baselines=baselines[a:b]).detach()

    with lifted.session(), torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Setting forward, backward hooks.*")
        # captum runs inputs and references in one forward pass: half a batch of pairs fills it.
        size = max(1, adapter.batch_size // 2)
        M = _batched(adapter, n * R, run, size=size, progress=progress, desc="DeepLIFT-SHAP")
        M = M.reshape(n, R, *X.shape[1:])
    params = {"n_references": R, "seed": seed, "references": "default" if references is None else "given"}
    kw = {"method": "deeplift_shap", "ids": ids, "params": _params(adapter, start, **params)}
    if _is_dna(adapter):
        hypothetical = (M - (M * refs).sum(dim=2, keepdim=True)).mean(dim=1)
        delta = _delta(adapter, X, refs, X * hypothetical)
        return _dna_result(adapter, X, hypothetical, form=form, delta=delta, **kw)
    attributions = (M * (X[:, None] - refs)).mean(dim=1)
    return _feature_result(adapter, X, attributions, delta=_delta(adapter, X, refs, attributions), **kw)


# --------------------------------------------------------------------------- perturbation methods
def _ablation(
    adapter, X, captum_cls, *, baseline, method, form, ids, params, progress, seed=None, **kwargs
) -> Attribution:
    _check_form(adapter, form, method)
    start = time.perf_counter()
    X, ids = _inputs(adapter, X, ids)
    dna = _is_dna(adapter)
    r = _baseline(baseline, X, dna)
    mask = None
    if dna:  # one feature per position: all four channels together
        mask = torch.arange(X.shape[2], device=X.device)[None, None].repeat(1, X.shape[1], 1)

    def run(a: int, b: int) -> torch.Tensor:
        # Several perturbed copies of the batch share one forward pass of at most batch_size rows.
        per_eval = max(1, adapter.batch_size // (b - a))
        explainer = captum_cls(adapter.score_fn)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                # the same feature orders for every batch; only the CPU generator (which the orders come from)
                # is seeded, inside the fork that restores it, so no device's random state changes
                torch.random.default_generator.manual_seed(seed)
            return explainer.attribute(
                X[a:b], baselines=r[a:b], feature_mask=mask, perturbations_per_eval=per_eval, **kwargs
            )

    with adapter.session(), torch.no_grad():
        values = _batched(adapter, X.shape[0], run, progress=progress, desc=method).detach()
    params = _params(adapter, start, **params, baseline=baseline if isinstance(baseline, str) else "tensor")
    if dna:  # captum repeats each position's value on its four channels
        return _dna_result(adapter, X, values, method=method, form="observed", ids=ids, params=params)
    return _feature_result(adapter, X, values, method=method, ids=ids, params=params)


def feature_ablation(
    adapter, X, *, baseline="zeros", form: str = "observed", ids=None, progress: bool = False
) -> Attribution:
    """Score change when each feature (or DNA position) is replaced by the baseline (captum ``FeatureAblation``).

    Needs no gradient, so it works on non-differentiable models (trees, lookups).
    Several perturbed copies share one forward pass of at most ``adapter.batch_size`` rows.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, 4, L) or (N, F), or inputs the adapter can encode
        Sequences (strings, a DataFrame with ``sequence`` and ``id``), molecules
        with a featurizer, or tensors.
    baseline : {"zeros", "mean"} or torch.Tensor
        Replacement value; for DNA ``"zeros"`` replaces a whole position by ``N``.
    form : {"observed"}
        Ablation has no hypothetical form.
    ids : list of str, optional
    progress : bool
        Show a progress bar over inputs.

    Returns
    -------
    Attribution

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, device="cpu")
    >>> feature_ablation(adapter, torch.ones(2, 3)).values.shape
    torch.Size([2, 3])
    """
    from captum.attr import FeatureAblation

    return _ablation(
        adapter, X, FeatureAblation, baseline=baseline, method="feature_ablation", form=form, ids=ids, params={},
        progress=progress,
    )


def shapley_sampling(
    adapter,
    X,
    *,
    n_samples: int = 25,
    seed: int = 0,
    baseline="zeros",
    form: str = "observed",
    ids=None,
    progress: bool = False,
) -> Attribution:
    """Shapley values estimated from ``n_samples`` random feature orders (captum ``ShapleyValueSampling``).

    The same ``seed`` gives the same orders for every input and every batch size.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, 4, L) or (N, F), or inputs the adapter can encode
        Sequences (strings, a DataFrame with ``sequence`` and ``id``), molecules
        with a featurizer, or tensors.
    n_samples : int
        Random feature orders.
    seed : int
    baseline : {"zeros", "mean"} or torch.Tensor
        Value a feature (or DNA position) takes while it is "absent".
    form : {"observed"}
    ids : list of str, optional
    progress : bool

    Returns
    -------
    Attribution

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, device="cpu")
    >>> shapley_sampling(adapter, torch.ones(2, 3), n_samples=4).values.shape
    torch.Size([2, 3])
    """
    from captum.attr import ShapleyValueSampling

    return _ablation(
        adapter, X, ShapleyValueSampling, baseline=baseline, method="shapley_sampling", form=form, ids=ids,
        params={"n_samples": n_samples, "seed": seed}, progress=progress, seed=seed, n_samples=n_samples,
    )


METHODS = {
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "integrated_gradients": integrated_gradients,
    "deeplift_shap": deeplift_shap,
    "feature_ablation": feature_ablation,
    "shapley_sampling": shapley_sampling,
}


def attribute(adapter, X, *, method: str = "integrated_gradients", **kwargs) -> Attribution:
    """Run the attribution method named ``method`` (a key of :data:`METHODS`) with ``kwargs``.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor or inputs the adapter can encode
    method : str
        ``"saliency"``, ``"input_x_gradient"``, ``"integrated_gradients"``,
        ``"deeplift_shap"``, ``"feature_ablation"`` or ``"shapley_sampling"``.
    **kwargs
        Keyword arguments of that method.

    Returns
    -------
    Attribution

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> adapter = FeatureModel(torch.nn.Linear(3, 1), output=0, device="cpu")
    >>> attribute(adapter, torch.ones(2, 3), method="saliency").method
    'saliency'
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {sorted(METHODS)}")
    return METHODS[method](adapter, X, **kwargs)


__all__ = [
    "Attribution",
    "attribute",
    "saliency",
    "input_x_gradient",
    "integrated_gradients",
    "deeplift_shap",
    "deeplift_ready",
    "shuffled_references",
    "feature_ablation",
    "shapley_sampling",
    "METHODS",
]
