"""Certified training: IBP and CROWN-IBP losses with the usual eps and mixing schedules.

The bounds come from :mod:`probekit.certify` itself (the traced graph, its
perturbation sets and its interval and CROWN passes), run with gradients on so
that the worst case over the set can be trained down. For class labels the
bounded quantities are the margins ``logit[y] - logit[j]``; the robust loss is
the cross-entropy of the worst-case logits ``-lower(margin)`` (Gowal et al.,
2018); for float targets it is the largest squared error over the output's box.
CROWN-IBP (Zhang et al., 2020) mixes ``beta * CROWN-IBP + (1 - beta) * IBP``
with beta falling from 1 to 0 as eps grows.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> adapter = FeatureModel(model, output=outputs.logit(1), device="cpu")
>>> lower, upper = worst_case_bounds(adapter, torch.zeros(3, 2), torch.tensor([0, 1, 1]), eps=0.1)
>>> lower.shape, bool((lower <= upper).all())
(torch.Size([3, 2]), True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..certify.crown import crown_rows
from ..certify.graph import trace
from ..certify.ibp import ibp_rows, prepare
from ..certify.spec import Spec
from .loop import Step, forward, ramp

METHODS = ("ibp", "crown-ibp", "crown")


def _label_spec(y_raw: torch.Tensor, labels: torch.Tensor) -> Spec:
    """Rows ``C y + d`` (N, S, Y) that the robust loss reads: margins for classes, the outputs for targets."""
    n = y_raw.shape[0]
    Y = y_raw[0].numel()
    dev, dt = y_raw.device, y_raw.dtype
    eye = torch.eye(Y, device=dev, dtype=dt)
    if labels.is_floating_point():
        return Spec(eye[None].expand(n, Y, Y), torch.zeros(n, Y, device=dev, dtype=dt))
    labels = labels.long().to(dev)
    if Y == 1:
        sign = (2 * labels - 1).to(dt)
        return Spec(sign[:, None, None] * eye[None], torch.zeros(n, 1, device=dev, dtype=dt))
    if bool(((labels < 0) | (labels >= Y)).any()):
        raise ValueError(f"labels must lie in [0, {Y - 1}] for a model with {Y} outputs")
    return Spec(eye[labels][:, None, :] - eye[None], torch.zeros(n, Y, device=dev, dtype=dt))


def worst_case_bounds(adapter, X, y, *, eps=None, k=None, norm: str = "linf", method: str = "ibp", beta: float = 1.0,
                      graph=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable bounds, over a perturbation set, of what a robust loss reads.

    Parameters
    ----------
    adapter : FeatureModel or SequenceModel
    X : torch.Tensor of shape (N, ...)
    y : torch.Tensor of shape (N,) or (N, T)
        Class labels (integers) or float targets.
    eps : float, optional
        Radius of the ball in ``norm`` (intersected with the inputs' valid range).
    k : int, optional
        Instead of ``eps``: the sequences within ``k`` substitutions (or ``k`` bit flips).
    norm : {"linf", "l2", "l1"}
    method : {"ibp", "crown-ibp", "crown"}
        ``"crown-ibp"`` returns ``beta * CROWN-IBP + (1 - beta) * IBP`` (the lower
        bound, and the upper bound alike).
    beta : float
    graph : Graph, optional
        The model traced by :func:`probekit.certify.trace`, to save tracing it again.

    Returns
    -------
    lower, upper : torch.Tensor of shape (N, S)
        For class labels and C output columns, bounds of ``logit[y] - logit[j]``
        (S = C; 0 at ``j = y``); for one output column and 0/1 labels, of the
        score's signed distance to 0, ``(2y - 1) * logit`` (S = 1); for float
        targets, of the T outputs.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 1), output=outputs.value(0), device="cpu")
    >>> lower, upper = worst_case_bounds(adapter, torch.zeros(1, 2), torch.tensor([0.0]), eps=0.0)
    >>> bool(torch.allclose(lower, upper))
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if eps is not None and not float(eps) >= 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    X = (X if isinstance(X, torch.Tensor) else adapter.encode(X)).to(adapter.device, adapter.dtype)
    y = torch.as_tensor(y).to(adapter.device)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{X.shape[0]} inputs but {y.shape[0]} labels or targets")
    problem = prepare(adapter, X, eps=eps, k=k, norm=norm, goal=None, graph=graph)
    spec = _label_spec(problem.y, y)
    if method == "ibp" or (method == "crown-ibp" and beta <= 0):
        return ibp_rows(problem, spec)
    lo_c, hi_c = crown_rows(problem, spec, intermediate="ibp" if method == "crown-ibp" else "crown")
    if method == "crown" or beta >= 1:
        return lo_c, hi_c
    lo_i, hi_i = ibp_rows(problem, spec)
    return beta * lo_c + (1 - beta) * lo_i, beta * hi_c + (1 - beta) * hi_i


def robust_loss(lower: torch.Tensor, upper: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example loss (N,) of the worst case within the bounds of :func:`worst_case_bounds`.

    Cross-entropy of the worst-case logits ``-lower`` for class labels; the
    logistic loss of ``lower`` for one output column; the largest squared error
    ``max((upper - y)^2, (y - lower)^2)`` for float targets.

    Examples
    --------
    >>> robust_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([0]))
    tensor([0.3133])
    """
    if y.is_floating_point():
        t = y.reshape(y.shape[0], -1).to(lower)
        return torch.maximum((upper - t).square(), (t - lower).square()).mean(1)
    if lower.shape[1] == 1:
        return F.softplus(-lower[:, 0])
    return F.cross_entropy(-lower, y.long(), reduction="none")


def certified_share(lower: torch.Tensor, y: torch.Tensor) -> float:
    """Share of inputs whose call provably stays on the label: every margin's lower bound above 0.

    Examples
    --------
    >>> certified_share(torch.tensor([[0.0, 1.0], [0.0, -1.0]]), torch.tensor([0, 0]))
    0.5
    """
    if y.is_floating_point():
        return float("nan")
    own = torch.zeros_like(lower, dtype=torch.bool)
    if lower.shape[1] > 1:
        own[torch.arange(lower.shape[0], device=lower.device), y.long()] = True
    return float(((lower > 0) | own).all(1).float().mean())


def certified(
    eps=None,
    *,
    k: int | None = None,
    norm: str = "linf",
    method: str = "ibp",
    warmup: float = 0.0,
    ramp_share: float = 0.5,
    kappa: tuple = (1.0, 0.5),
):
    """Certified training objective: ``kappa * loss(clean) + (1 - kappa) * robust_loss(bounds)``.

    The schedules follow Gowal et al. (2018) and Zhang et al. (2020): after a
    clean ``warmup``, eps grows linearly from 0 over ``ramp_share`` of the run while
    kappa falls from ``kappa[0]`` to ``kappa[1]`` and (for CROWN-IBP) beta from 1 to 0.
    With ``k`` (substitutions or bit flips), the set is fixed after the warm-up and
    only kappa ramps.

    Parameters
    ----------
    eps : float, optional
        Final radius of the ball in ``norm``.
    k : int, optional
        Instead of ``eps``: substitutions per sequence (one-hot DNA) or bit flips.
    norm : {"linf", "l2", "l1"}
    method : {"ibp", "crown-ibp", "crown"}
    warmup : float
        Share of the run trained on the clean loss only.
    ramp_share : float
        Share of the run over which eps, kappa and beta move to their final values.
    kappa : (float, float)
        Weight of the clean loss at the start and at the end of the ramp.

    Returns
    -------
    callable
        An objective for :func:`probekit.train.fit`; metrics ``eps`` (or ``k``),
        ``kappa``, ``robust_loss`` and ``certified`` (share of the batch certified
        at the current set).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> from probekit.train import fit
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> adapter = FeatureModel(model, output=outputs.logit(1), device="cpu")
    >>> X, y = torch.randn(32, 2), torch.randint(0, 2, (32,))
    >>> trained, history = fit(adapter, (X, y), objective=certified(0.1, method="crown-ibp"), epochs=2)
    >>> sorted(c for c in history.columns if c in ("certified", "eps", "kappa"))
    ['certified', 'eps', 'kappa']
    """
    if (eps is None) == (k is None):
        raise ValueError("give exactly one of eps= (a norm ball) or k= (substitutions / bit flips)")
    if eps is not None and not float(eps) >= 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    graphs: dict = {}

    def objective(adapter, x, y, step: Step):
        t = ramp(step.progress, begin=warmup, until=warmup + ramp_share)
        kap = kappa[0] + t * (kappa[1] - kappa[0])
        clean = step.loss(forward(adapter, x), y).mean()
        size = {"eps": float(eps) * t} if eps is not None else {"k": k}
        metrics = {**size, "kappa": kap}
        if step.progress < warmup or (eps is not None and t == 0):
            return clean, {**metrics, "robust_loss": float("nan"), "certified": float("nan")}
        key = (id(adapter.model), tuple(x.shape[1:]))
        if key not in graphs:
            graphs[key] = trace(adapter, x[:1].to(adapter.dtype))
        lower, upper = worst_case_bounds(adapter, x, y, norm=norm, method=method, beta=1.0 - t, graph=graphs[key],
                                         **({"eps": size["eps"]} if eps is not None else {"k": k}))
        robust = robust_loss(lower, upper, y).mean()
        return kap * clean + (1 - kap) * robust, {**metrics, "robust_loss": float(robust.detach()),
                                                   "certified": certified_share(lower.detach(), y)}

    return objective


__all__ = ["certified", "worst_case_bounds", "robust_loss", "certified_share"]
