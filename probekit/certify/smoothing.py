"""Randomized smoothing (Cohen, Rosenfeld and Kolter, 2019).

The smoothed classifier returns the class the base model predicts most often
under Gaussian noise. :func:`smoothing` certifies it exactly as in Cohen et
al.'s CERTIFY: a selection draw of ``n0`` noisy copies picks the top class, an
independent estimation draw of ``n`` copies counts it, a one-sided
Clopper-Pearson bound gives ``p_lower`` (the exact beta quantile), the
prediction abstains (-1) when ``p_lower < 1/2``, and otherwise the prediction
cannot change within the L2 radius ``sigma * Phi^-1(p_lower)``.

With anisotropic noise (a per-feature sigma, or a covariance ``S`` such as
:func:`correlated_covariance`), the certificate is the ellipsoid
``d^T S^-1 d < Phi^-1(p_lower)^2``: its semi-axes are ``Phi^-1(p_lower) *
sqrt(eigenvalues of S)`` (``SmoothingResult.axes``), the smallest of them is
``radius``, and ``params["volume_radius"]`` is the radius of the ball of the
same volume.

:class:`Smoothed` wraps an adapter into another adapter whose output is the
smoothed class frequencies, so every search and report runs on it unchanged.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> model = torch.nn.Linear(2, 2)
>>> adapter = FeatureModel(model, output=outputs.logit(0), device="cpu")
>>> r = smoothing(adapter, torch.zeros(3, 2), sigma=0.5, n0=20, n=200)
>>> r.radius.shape
torch.Size([3])
"""

from __future__ import annotations

import math
import time

import torch

from ..adapters import Adapter
from ..goals import parse
from ..outputs import _class_axis, logit
from ..results import SmoothingResult
from ._checks import input_reasons, warn_refused


def correlated_covariance(length: int, *, sigma: float, scale: float, channels: int = 4, jitter: float = 1e-6) -> torch.Tensor:
    """Covariance of low-frequency noise along a sequence, for inputs of shape (channels, length).

    Noise at positions ``i`` and ``j`` of one channel has correlation
    ``exp(-(i - j)^2 / (2 scale^2))``; channels are independent.

    Parameters
    ----------
    length : int
    sigma : float
        Standard deviation of each entry.
    scale : float
        Correlation length in positions.
    channels : int
    jitter : float
        Added to the diagonal (relative to ``sigma^2``) so the matrix is positive definite.

    Returns
    -------
    torch.Tensor of shape (channels * length, channels * length)
        In the order of ``x.reshape(-1)`` for ``x`` of shape (channels, length).

    Examples
    --------
    >>> correlated_covariance(5, sigma=0.5, scale=2.0).shape
    torch.Size([20, 20])
    """
    pos = torch.arange(length, dtype=torch.float64)
    kernel = torch.exp(-((pos[:, None] - pos[None]) ** 2) / (2 * scale**2))
    kernel = kernel + jitter * torch.eye(length, dtype=torch.float64)
    return (sigma**2 * torch.kron(torch.eye(channels, dtype=torch.float64), kernel)).float()


class _Noise:
    """Gaussian noise of one shape: isotropic, per-entry sigma, or a full covariance."""

    def __init__(self, shape, sigma=None, covariance=None, device="cpu"):
        self.shape = tuple(shape)
        self.device = torch.device(device)
        numel = math.prod(self.shape)
        self.basis = None
        if covariance is not None:
            cov = torch.as_tensor(covariance, dtype=torch.float64)
            if cov.shape != (numel, numel):
                raise ValueError(f"covariance must have shape ({numel}, {numel}) for inputs of shape {self.shape}")
            if not torch.allclose(cov, cov.T, atol=1e-8):
                raise ValueError("covariance must be symmetric")
            evals, evecs = torch.linalg.eigh(cov)
            if evals.min() <= 0:
                raise ValueError(f"covariance must be positive definite (smallest eigenvalue {float(evals.min()):.3g})")
            self.scales = evals.sqrt().float().to(self.device)
            self.basis = evecs.float().to(self.device)
            self.isotropic = False
        else:
            if sigma is None:
                raise ValueError("give sigma= (a float or one value per input entry) or covariance=")
            s = torch.as_tensor(sigma, dtype=torch.float32)
            if s.ndim == 0:
                if s <= 0:
                    raise ValueError(f"sigma must be positive, got {float(s)}")
                self.isotropic = True
                self.sigma = float(s)
                self.scales = torch.full((numel,), float(s), dtype=torch.float32, device=self.device)
            else:
                if s.numel() != numel:
                    raise ValueError(f"sigma has {s.numel()} values for inputs of shape {self.shape}")
                if (s <= 0).any():
                    raise ValueError("every sigma must be positive")
                self.isotropic = False
                self.scales = s.reshape(-1).to(self.device)

    def sample(self, m: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(m, self.scales.numel(), generator=generator, device=self.device, dtype=self.scales.dtype)
        z = z * self.scales
        if self.basis is not None:
            z = z @ self.basis.T
        return z.reshape((m,) + self.shape)


def _class_fn(adapter, bound):
    """Raw output -> class index: argmax of a class output, else the goal's (or threshold's) side."""
    output = adapter.output

    def classes(y, rows):
        if output.classes and y.ndim <= 2 and _class_axis(y).shape[1] > 1:
            return _class_axis(y).argmax(1)
        if bound is not None:
            return (bound(y, rows) > 0).long()
        return (output(y) > output.threshold).long()

    return classes


def _n_classes(adapter, y0) -> int:
    output = adapter.output
    if output.classes and y0.ndim <= 2 and _class_axis(y0).shape[1] > 1:
        return _class_axis(y0).shape[1]
    return 2


def _deciding(adapter, bound, y: torch.Tensor) -> torch.Tensor:
    """The values a class is read from (M, ...): the class outputs, the goal's ``g`` or the score."""
    output = adapter.output
    if output.classes and y.ndim <= 2 and _class_axis(y).shape[1] > 1:
        return _class_axis(y)
    return bound(y) if bound is not None else output(y)


def _evidence(adapter, bound, y: torch.Tensor) -> torch.Tensor:
    """(M, K): the values a class is read from, and a NaN where the raw output holds one anywhere."""
    flat = y.reshape(y.shape[0], -1)
    nan_anywhere = torch.where(torch.isnan(flat).any(1), float("nan"), 0.0).to(flat.dtype)
    return torch.cat([_deciding(adapter, bound, y).reshape(y.shape[0], -1).to(flat.dtype), nan_anywhere[:, None]], 1)


def _nonfinite_fn(adapter, bound):
    """Raw output -> (M,) bool: a NaN anywhere, or a NaN or inf where the class is read."""
    return lambda y, rows=None: ~torch.isfinite(_evidence(adapter, bound, y)).all(1)


def _counts(adapter, X, noise: _Noise, m: int, n_classes: int, classes, generator, batch_size: int, bad=None):
    """Class counts (N, n_classes) of ``m`` noisy copies of each input, and how many (N,) were non-finite.

    A copy the model gives NaN or inf (``bad(y)``) counts for no class.
    """
    n = X.shape[0]
    counts = torch.zeros(n, n_classes, device=X.device)
    broken = torch.zeros(n, dtype=torch.long, device=X.device)
    per = max(1, batch_size // max(n, 1))
    done = 0
    rows_all = torch.arange(n, device=X.device)
    while done < m:
        c = min(per, m - done)
        eps = noise.sample(n * c, generator).to(X.dtype)
        noisy = X.repeat_interleave(c, 0) + eps
        rows = rows_all.repeat_interleave(c)
        both = adapter.map(noisy, lambda y, r: torch.stack([classes(y, r), bad(y, r).long()], 1), rows=rows)
        cls, skip = both[:, 0], both[:, 1].bool()
        counts.index_put_((rows, cls), (~skip).to(counts.dtype), accumulate=True)
        broken.index_add_(0, rows, skip.long())
        done += c
    return counts, broken


def _reasons(own: torch.Tensor, broken: torch.Tensor, draws: int) -> list:
    """Per input, ``""`` or why it abstains: the model returned NaN or inf on it (``own`` (N, K), the
    values its class is read from) or on ``broken`` (N,) of its ``draws`` noisy copies."""
    out = []
    for mine, k in zip(input_reasons(own), broken.tolist()):
        if mine:
            out.append(mine)
        elif k:
            out.append(f"the model returned NaN or inf on {k} of its {draws} noisy copies, which count for no class")
        else:
            out.append("")
    return out


def _lower_confidence(k: torch.Tensor, n: int, alpha: float) -> torch.Tensor:
    """One-sided (1 - alpha) Clopper-Pearson lower bound: the beta quantile."""
    from scipy.stats import beta

    k = k.cpu().double().numpy()
    out = beta.ppf(alpha, k, n - k + 1)
    out[k == 0] = 0.0
    return torch.from_numpy(out).float()


def smoothing(
    adapter,
    X,
    *,
    sigma=None,
    n0: int = 100,
    n: int = 10000,
    alpha: float = 0.001,
    batch_size: int | None = None,
    seed: int = 0,
    goal=None,
    covariance=None,
    ids=None,
) -> SmoothingResult:
    """Certify the Gaussian-smoothed classifier around each input (Cohen et al., 2019).

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    X : torch.Tensor of shape (N, ...), or inputs the adapter can encode
    sigma : float or torch.Tensor
        Noise standard deviation: one value, or one per input entry (shape of one input).
    n0, n : int
        Sizes of the selection and the estimation draws.
    alpha : float
        The certificate fails with probability at most ``alpha`` per input.
    batch_size : int, optional
        Noisy copies per forward pass (default: the adapter's batch size).
    seed : int
        Seeds a generator on the adapter's device, so the noise is drawn where it is used:
        the same seed gives the same draws (and certificates) on the same device type,
        but not across CPU and GPU.
    goal : Goal, optional
        For a single-score output, classes are the goal's side (1 = ``g > 0``, the goal
        not reached); without a goal, the side of the output's threshold. Class
        outputs use the argmax of the full output.
    covariance : torch.Tensor of shape (F, F), optional
        Full noise covariance over the flattened input, instead of ``sigma``.
    ids : list of str, optional

    Returns
    -------
    SmoothingResult
        ``prediction`` (-1 = abstain), ``p_lower``, ``radius`` (L2; for anisotropic
        noise the smallest semi-axis), ``axes`` (N, F) for anisotropic noise, and in
        ``params``: ``volume_radius`` (N,), ``counts`` (N,), ``error`` (N,) and
        ``directions`` (F, F) for a full covariance (semi-axis ``j`` lies along column ``j``).
        An input on which the model returns NaN or inf, itself or on any noisy copy,
        abstains with ``p_lower`` NaN and its ``error`` says why (a NaN is no vote for
        any class, and no vote against one either).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(2, 2), output=0, device="cpu")
    >>> smoothing(adapter, torch.zeros(1, 2), sigma=0.25, n0=10, n=100).prediction.shape
    torch.Size([1])
    """
    start = time.perf_counter()
    X = adapter._as_input(X).to(adapter.dtype)
    noise = _Noise(X.shape[1:], sigma, covariance, adapter.device)
    generator = torch.Generator(device=adapter.device).manual_seed(seed)
    with adapter.session():
        y0 = adapter.predict(X)  # also settles an automatic batch size before the noise is chunked
        batch_size = batch_size or adapter.batch_size * 8
        bound = parse(goal).bind(adapter.output, y0).to(adapter.device) if goal is not None else None
        classes = _class_fn(adapter, bound)
        bad = _nonfinite_fn(adapter, bound)
        c = _n_classes(adapter, y0)
        counts0, broken0 = _counts(adapter, X, noise, n0, c, classes, generator, batch_size, bad)
        top = counts0.argmax(1)
        counts, broken = _counts(adapter, X, noise, n, c, classes, generator, batch_size, bad)
        errors = _reasons(_evidence(adapter, bound, y0), broken0 + broken, n0 + n)
    refused = torch.tensor([bool(e) for e in errors], dtype=torch.bool)
    n_top = counts.gather(1, top[:, None])[:, 0]
    p_lower = _lower_confidence(n_top, n, alpha)
    p_lower = torch.where(refused, float("nan"), p_lower)
    certified = (p_lower >= 0.5) & ~refused
    from scipy.stats import norm

    z = torch.from_numpy(norm.ppf(p_lower.double().clamp(max=1 - 1e-16).numpy())).float()
    z = torch.where(certified, z, torch.zeros_like(z))
    prediction = torch.where(certified, top.cpu(), torch.full_like(top.cpu(), -1))
    scales = noise.scales.cpu()
    params = {
        "sigma": sigma if sigma is None or isinstance(sigma, (int, float)) else torch.as_tensor(sigma),
        "n0": n0,
        "n": n,
        "alpha": alpha,
        "seed": seed,
        "goal": None if goal is None else str(parse(goal)),
        "counts": n_top.cpu(),
        "error": errors,
        "device": str(adapter.device),
        "output": adapter.output.name,
    }
    if noise.isotropic:
        radius = noise.sigma * z
        axes = None
        params["volume_radius"] = radius
    else:
        axes = z[:, None] * scales[None]
        radius = z * scales.min()
        params["volume_radius"] = z * scales.log().mean().exp()
        if noise.basis is not None:
            params["directions"] = noise.basis.cpu()
    params["seconds"] = time.perf_counter() - start
    warn_refused(errors, ids=ids, outcome="they abstain (prediction -1, p_lower NaN)")
    return SmoothingResult(prediction=prediction, p_lower=p_lower, radius=radius, axes=axes, ids=list(ids or []), params=params)


class _SmoothedModel:
    """The callable a :class:`Smoothed` adapter holds (it only names the base model)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, x):  # pragma: no cover - Smoothed computes its output itself
        raise RuntimeError("call the Smoothed adapter, not its model")


class Smoothed(Adapter):
    """An adapter for the Gaussian-smoothed version of another adapter's model.

    Its raw output is the class frequencies (N, C) of the base model under ``n``
    noisy copies of each input (the same noise for every input and call, so the
    output is deterministic); its score is the smoothed probability of the base
    output's class (or of class 1, "goal not reached", for a single score). Every
    search, certificate and report runs on it unchanged; :meth:`gradient` is the
    Monte-Carlo gradient of the smoothed output.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    sigma : float or torch.Tensor
        As in :func:`smoothing`.
    n : int
        Noisy copies per input.
    seed : int
        Seeds a generator on the adapter's device, as in :func:`smoothing`: the same seed
        gives the same noise on the same device type, not across CPU and GPU.
    covariance : torch.Tensor, optional
    output : Output, optional
        Which frequency to score (default the base output's class).

    Notes
    -----
    The noise is drawn once per input shape and device, and reused.
    :meth:`replace` gives a copy with its own noise; a new ``device`` or ``dtype``
    applies to the base adapter too.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> base = FeatureModel(torch.nn.Linear(2, 2), output=1, device="cpu")
    >>> smooth = Smoothed(base, sigma=0.5, n=64)
    >>> smooth.predict(torch.zeros(2, 2)).sum(1)
    tensor([1., 1.])
    """

    def __init__(self, adapter, sigma=None, n: int = 1000, seed: int = 0, *, covariance=None, output=None, batch_size=None):
        base_out = adapter.output
        if output is None:
            index = base_out.index if base_out.classes and base_out.index is not None else 1
            output = logit(index)
        super().__init__(_SmoothedModel(adapter), output=output, batch_size=batch_size or adapter.batch_size,
                         device=adapter.device, dtype=adapter.dtype)
        self.base = adapter
        self.sigma, self.n, self.seed, self.covariance = sigma, int(n), int(seed), covariance
        self._noise_cache = {}

    def __getattr__(self, name):
        # attributes of the base adapter (alphabet, kinds, bounds, names...) read through
        if name.startswith("_") or name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def encode(self, inputs):
        return self.base.encode(inputs)

    def replace(self, **changes) -> "Smoothed":
        """A copy with some settings changed; ``device=`` and ``dtype=`` move the base adapter too.

        The copy draws its own noise (its cache starts empty), so a new ``sigma``, ``n``,
        ``seed``, device or dtype never reuses noise drawn for the old settings.

        Examples
        --------
        >>> import torch
        >>> from probekit import FeatureModel
        >>> smooth = Smoothed(FeatureModel(torch.nn.Linear(2, 2), output=1, device="cpu"), sigma=0.5, n=8)
        >>> smooth.replace(sigma=1.0).sigma
        1.0
        """
        new = super().replace(**changes)
        moved = {key: changes[key] for key in ("device", "dtype") if key in changes}
        if moved:
            new.base = new.base.replace(**moved)
        new.model = _SmoothedModel(new.base)
        new._noise_cache = {}
        for cached in ("_classes", "_n_cls"):  # they describe the old base adapter
            new.__dict__.pop(cached, None)
        return new

    def _cache_key(self, kind: str, shape) -> tuple:
        # the draws are float32 whatever the dtype (cast where used), so the device is the only other key
        return (kind, tuple(shape), self.device)

    def _whitened(self, shape) -> torch.Tensor:
        """``S^-1 eps`` for the cached noise (n, F): the score function of the Gaussian."""
        key = self._cache_key("white", shape)
        if key not in self._noise_cache:
            noise = _Noise(shape, self.sigma, self.covariance, self.device)
            eps = self._noise(shape).reshape(self.n, -1)
            if noise.basis is not None:
                white = ((eps @ noise.basis) / noise.scales**2) @ noise.basis.T
            else:
                white = eps / noise.scales**2
            self._noise_cache[key] = white
        return self._noise_cache[key]

    def gradient(self, X, fn=None, *, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Value and Monte-Carlo input gradient of ``fn(frequencies, rows)`` (default: the score).

        Uses the Gaussian identity ``grad E[f(x + e)] = E[f(x + e) S^-1 e]`` on the
        same noise as the output, so gradient searches run on the smoothed model.
        """
        X = self._as_input(X).to(self.dtype)
        n = X.shape[0]
        rows = torch.arange(n, device=self.device) if rows is None else rows.to(self.device)
        fn = fn or (lambda y, r: self.output(y))
        shape = tuple(X.shape[1:])
        white = self._whitened(shape).to(X.dtype)
        eps = self._noise(shape).to(X.dtype)
        base = self.base
        values, grads = [], []
        with base.session(), torch.no_grad():
            if "_classes" not in self.__dict__:
                self._raw(X[:1])
            per = max(1, 8192 // self.n)
            for s in range(0, n, per):
                xb = X[s : s + per]
                b = xb.shape[0]
                noisy = (xb[:, None] + eps[None]).reshape((b * self.n,) + shape)
                hot = torch.nn.functional.one_hot(base.map(noisy, self._classes), self._n_cls)
                hot = hot.to(X.dtype).reshape(b, self.n, -1)
                freq = hot.mean(1)
                jac = torch.einsum("bnc,nf->bcf", hot, white) / self.n
                with torch.enable_grad():
                    f = freq.clone().requires_grad_(True)
                    v = fn(f, rows[s : s + per])
                    (dv,) = torch.autograd.grad(v.sum(), f)
                values.append(v.detach())
                grads.append(torch.einsum("bc,bcf->bf", dv, jac).reshape((b,) + shape))
        if not values:
            return torch.zeros(0, device=self.device), torch.zeros_like(X)
        return torch.cat(values), torch.cat(grads)

    def _noise(self, shape) -> torch.Tensor:
        """The noise (n, *shape) added to every input of this shape, on :attr:`device`."""
        key = self._cache_key("noise", shape)
        if key not in self._noise_cache:
            noise = _Noise(shape, self.sigma, self.covariance, self.device)
            generator = torch.Generator(device=self.device).manual_seed(self.seed)
            self._noise_cache[key] = noise.sample(self.n, generator)
        return self._noise_cache[key]

    def _raw(self, X: torch.Tensor) -> torch.Tensor:
        base = self.base
        eps = self._noise(X.shape[1:]).to(X.dtype)
        parts = []
        with base.session(), torch.no_grad():
            if "_classes" not in self.__dict__:
                self._classes = _class_fn(base, None)
                self._n_cls = _n_classes(base, base.predict(X[:1]))
            per = max(1, 8192 // self.n)  # inputs per chunk of noisy copies
            for s in range(0, X.shape[0], per):
                xb = X[s : s + per]
                b = xb.shape[0]
                noisy = (xb[:, None] + eps[None]).reshape((b * self.n,) + tuple(X.shape[1:]))
                cls = base.map(noisy, self._classes)
                freq = torch.zeros(b * self.n, self._n_cls, device=X.device)
                freq[torch.arange(b * self.n, device=X.device), cls] = 1.0
                parts.append(freq.reshape(b, self.n, self._n_cls).mean(1))
        if not parts:
            return torch.zeros(0, self._n_cls if "_n_cls" in self.__dict__ else 2, device=X.device)
        return torch.cat(parts)


__all__ = ["smoothing", "Smoothed", "correlated_covariance"]
