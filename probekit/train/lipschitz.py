"""Lipschitz-constrained models: spectral normalisation and the norm-constrained linear model.

- :func:`spectral_norm`: a copy of a model whose Linear and convolution layers
  are divided by their largest singular value (power iteration, as in
  ``torch.nn.utils.parametrizations.spectral_norm``), times ``scale``.
- :func:`constrained_linear`: least squares with ``||w|| <= L``. For the L2 norm
  the KKT conditions give ``w = (X'X + lam I)^-1 X'y`` with ``lam = 0`` when the
  unconstrained solution already fits, else the one ``lam > 0`` with
  ``||w||_2 = L`` (a root of the secular equation, from one SVD); any norm is
  solved by accelerated projected gradient. The model's output then moves by at
  most ``L * delta`` when its input moves by ``delta`` in the dual norm.
- :func:`track_lipschitz`: a :func:`probekit.train.fit` callback recording the
  global bound of :func:`probekit.certify.lipschitz` and each layer's factor
  after every epoch.

Examples
--------
>>> import torch
>>> X = torch.randn(50, 3, dtype=torch.float64)
>>> y = X @ torch.tensor([3.0, -2.0, 1.0], dtype=torch.float64)
>>> model, info = constrained_linear(X, y, bound=1.0)
>>> round(float(model.weight.detach().norm()), 4), info["active"]
(1.0, True)
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..search.continuous import _check_norm, project

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_DUAL = {"l2": "l2", "l1": "linf", "linf": "l1"}


def spectral_norm(model: nn.Module, *, scale: float = 1.0, n_power_iterations: int = 1) -> nn.Module:
    """A copy of ``model`` with every Linear, Conv1d and Conv2d weight spectrally normalised.

    Each weight (reshaped to a matrix, as torch does) is divided by its largest
    singular value, estimated by power iteration during training, and multiplied
    by ``scale``. For Linear layers this bounds the layer's L2 Lipschitz constant
    by ``scale``; for convolutions the reshaped kernel's norm is a heuristic (the
    exact operator norm is what :func:`probekit.certify.lipschitz` reports).

    Parameters
    ----------
    model : torch.nn.Module
    scale : float
        Target norm per layer (must be positive).
    n_power_iterations : int

    Returns
    -------
    torch.nn.Module
        The copy; the input model is unchanged. Use :func:`strip` before tracing
        it for certificates.

    Examples
    --------
    >>> net = spectral_norm(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)))
    >>> from torch.nn.utils import parametrize
    >>> parametrize.is_parametrized(net[0])
    True
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import spectral_norm as _sn

    out = copy.deepcopy(model)
    for module in list(out.modules()):
        if isinstance(module, LAYERS) and not parametrize.is_parametrized(module, "weight"):
            _sn(module, n_power_iterations=n_power_iterations)
            if scale != 1.0:
                parametrize.register_parametrization(module, "weight", _Scale(scale))
    return out


class _Scale(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = float(scale)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.scale


def strip(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its parametrizations (spectral norms) baked into plain weights.

    Examples
    --------
    >>> from torch.nn.utils import parametrize
    >>> parametrize.is_parametrized(strip(spectral_norm(torch.nn.Linear(2, 2))))
    False
    """
    from torch.nn.utils import parametrize

    out = copy.deepcopy(model)
    out.eval()
    for module in list(out.modules()):
        if not parametrize.is_parametrized(module):
            continue
        # the copy shares its parametrized class with the original: removing a parametrization would strip the
        # original too, so the copy gets its plain class back and the computed tensors as plain parameters
        values = {name: getattr(module, name).detach().clone() for name in module.parametrizations.keys()}
        module.__class__ = module.__class__.__bases__[0]
        del module._modules["parametrizations"]
        for name, value in values.items():
            module.register_parameter(name, nn.Parameter(value))
    return out


def track_lipschitz(*, input_shape, norm: str = "l2"):
    """A :func:`probekit.train.fit` callback: the global Lipschitz bound and each layer's factor, per epoch.

    Parameters
    ----------
    input_shape : tuple
        Shape of one input.
    norm : {"l2", "linf", "l1"}

    Returns
    -------
    callable
        ``callback(model, epoch) -> dict`` with ``lipschitz`` (the bound of the whole
        output, :func:`probekit.certify.lipschitz`) and ``lipschitz[<layer>]`` per layer.

    Examples
    --------
    >>> callback = track_lipschitz(input_shape=(3,))
    >>> layer = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))
    >>> round(callback(layer, 1)["lipschitz"], 4)
    5.0
    """
    from ..certify.lipschitz import lipschitz

    def callback(model, epoch):
        result = lipschitz(strip(model), norm=norm, input_shape=tuple(input_shape))
        row = {"lipschitz": result.upper}
        for label, factor in result.layers:
            if factor != 1.0:
                row[f"lipschitz[{label}]"] = factor
        return row

    return callback


def _as_float64(X, y) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(X).detach().cpu().to(torch.float64)
    y = torch.as_tensor(y).detach().cpu().to(torch.float64).reshape(-1)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, F); got {tuple(X.shape)}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if not (torch.isfinite(X).all() and torch.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    return X, y


def _kkt_l2(Xc: torch.Tensor, yc: torch.Tensor, bound: float) -> tuple[torch.Tensor, float, int]:
    """Least squares with ``||w||_2 <= bound`` from the KKT conditions: the weights, the multiplier and the iterations."""
    if bound <= 0:
        return torch.zeros(Xc.shape[1], dtype=Xc.dtype), math.inf, 0
    U, s, Vh = torch.linalg.svd(Xc, full_matrices=False)
    keep = s > s.max() * max(Xc.shape) * torch.finfo(s.dtype).eps if s.numel() else s > 0
    U, s, Vh = U[:, keep], s[keep], Vh[keep]
    b = U.T @ yc
    sb = s * b

    def weights(lam: float) -> torch.Tensor:
        return Vh.T @ (sb / (s.square() + lam))

    w = weights(0.0)
    if float(w.norm()) <= bound:
        return w, 0.0, 0
    lo, hi = 0.0, float(sb.norm()) / bound  # ||w(lam)|| <= ||s b|| / lam
    iterations = 0
    for iterations in range(1, 400):
        mid = 0.5 * (lo + hi)
        if float(weights(mid).norm()) > bound:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(hi, 1e-300):
            break
    return weights(hi), hi, iterations


def _projected(Xc, yc, bound: float, norm: str, steps: int, tol: float) -> tuple[torch.Tensor, int]:
    """Accelerated projected gradient (FISTA) on ``0.5 ||Xc w - yc||^2`` over ``||w|| <= bound``."""
    lipschitz_grad = float(torch.linalg.matrix_norm(Xc, ord=2)) ** 2 or 1.0
    eta = 1.0 / lipschitz_grad
    radius = torch.tensor([bound], dtype=Xc.dtype)
    w = torch.zeros(Xc.shape[1], dtype=Xc.dtype)
    z, t = w.clone(), 1.0
    iterations = 0
    for iterations in range(1, steps + 1):
        grad = Xc.T @ (Xc @ z - yc)
        w_next = project((z - eta * grad)[None], radius, norm=norm)[0]
        t_next = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        z = w_next + ((t - 1) / t_next) * (w_next - w)
        change = float((w_next - w).norm())
        w, t = w_next, t_next
        if change <= tol * max(1.0, float(w.norm())):
            break
    return w, iterations


def constrained_linear(
    X,
    y,
    *,
    bound: float,
    norm: str = "l2",
    method: str = "kkt",
    fit_intercept: bool = True,
    steps: int = 20000,
    tol: float = 1e-10,
) -> tuple[nn.Linear, dict]:
    """Least-squares linear model ``w . x + b`` with ``||w|| <= bound``, solved exactly.

    Parameters
    ----------
    X : torch.Tensor or array of shape (N, F)
    y : torch.Tensor or array of shape (N,)
    bound : float
        The largest allowed norm of ``w`` (non-negative): the model's Lipschitz
        constant for input changes measured in the dual norm (L2 for L2, L-inf for
        an L1 bound on ``w``, L1 for an L-inf bound).
    norm : {"l2", "l1", "linf"}
        The norm of ``w`` that is bounded.
    method : {"kkt", "projected"}
        ``"kkt"`` (L2 only): the closed form from the KKT conditions, ``w = (X'X +
        lam I)^-1 X'y`` with the multiplier ``lam >= 0`` found from one SVD;
        ``"projected"``: accelerated projected gradient with exact projections onto
        the ball (:func:`probekit.search.continuous.project`).
    fit_intercept : bool
        Fit an unconstrained intercept (on centred data).
    steps : int
        Iterations of projected gradient at most.
    tol : float
        Relative change of ``w`` at which projected gradient stops.

    Returns
    -------
    model : torch.nn.Linear
        F inputs, 1 output, float32, in eval mode.
    info : dict
        ``weight_norm``, ``bound``, ``norm``, ``lipschitz_norm`` (the input norm in
        which ``bound`` is the Lipschitz constant), ``multiplier`` (the KKT
        multiplier of ``0.5 ||X w - y||^2``; NaN for projected gradient), ``active``
        (whether the constraint binds), ``method``, ``iterations`` and the weights
        in float64 (``weight``, ``bias``).

    Examples
    --------
    >>> X = torch.randn(40, 2, dtype=torch.float64)
    >>> y = X @ torch.tensor([2.0, 0.0], dtype=torch.float64)
    >>> a, _ = constrained_linear(X, y, bound=1.0, method="kkt")
    >>> b, _ = constrained_linear(X, y, bound=1.0, method="projected")
    >>> bool(torch.allclose(a.weight, b.weight, atol=1e-5))
    True
    """
    norm = _check_norm(norm)
    if not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound >= 0):
        raise ValueError(f"bound must be a finite non-negative number, got {bound!r}")
    if method not in ("kkt", "projected"):
        raise ValueError(f"method must be 'kkt' or 'projected', got {method!r}")
    if method == "kkt" and norm != "l2":
        raise ValueError(f"the KKT closed form is for the L2 norm; use method='projected' for norm={norm!r}")
    X, y = _as_float64(X, y)
    x_mean = X.mean(0) if fit_intercept else torch.zeros(X.shape[1], dtype=X.dtype)
    y_mean = y.mean() if fit_intercept else torch.zeros((), dtype=y.dtype)
    Xc, yc = X - x_mean, y - y_mean
    if method == "kkt":
        w, multiplier, iterations = _kkt_l2(Xc, yc, float(bound))
    else:
        w, iterations = _projected(Xc, yc, float(bound), norm, steps, tol)
        multiplier = math.nan
    bias = y_mean - x_mean @ w
    model = nn.Linear(X.shape[1], 1, dtype=torch.float32)
    with torch.no_grad():
        model.weight.copy_(w[None].float())
        model.bias.copy_(bias.reshape(1).float())
    order = {"l2": 2.0, "l1": 1.0, "linf": math.inf}[norm]
    weight_norm = float(torch.linalg.vector_norm(w, ord=order))
    info = {
        "weight_norm": weight_norm,
        "bound": float(bound),
        "norm": norm,
        "lipschitz_norm": _DUAL[norm],
        "multiplier": multiplier,
        "active": bool(weight_norm >= float(bound) * (1 - 1e-6)) if bound > 0 else True,
        "method": method,
        "iterations": iterations,
        "weight": w,
        "bias": float(bias),
    }
    return model.eval(), info


__all__ = ["spectral_norm", "strip", "track_lipschitz", "constrained_linear"]
