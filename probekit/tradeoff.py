"""The accuracy-robustness trade-off of several models, measured on the same held-out data.

:func:`tradeoff` puts side by side, for every model, the clean accuracy (or
R^2 and RMSE for regression), the robust accuracy under attacks (PGD or FGSM
within eps, k substitutions for DNA) and the certified accuracy (IBP, CROWN,
exact k-substitution certificates, randomized smoothing) over lists of eps and
k, as one tidy table; :func:`plot_tradeoff` draws it.

An input counts as robust (certified) when the model calls it right and the
attack finds no change within the budget that alters the call (no change
exists). For regression the robust RMSE is that of the farthest predictions the
attack reaches within eps (a lower bound of the worst case) and the certified
RMSE that of the farthest ends of the bounds (an upper bound).

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<...>
>>> adapter = FeatureModel(torch.nn.Linear(2, 2), output=outputs.logit(1), device="cpu")
>>> X, y = torch.randn(20, 2), torch.randint(0, 2, (20,))
>>> table = tradeoff({"linear": adapter}, X, y, eps=[0.0, 0.1], certificates=["ibp"], steps=5)
>>> sorted(table["metric"].unique())
['accuracy', 'certified accuracy', 'robust accuracy']
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from . import goals as _goals

EPS_ATTACKS = ("pgd", "fgsm")
K_ATTACKS = ("substitutions",)
EPS_CERTIFICATES = ("ibp", "crown", "smoothing")
K_CERTIFICATES = ("ibp", "crown", "substitutions")
COLUMNS = ["model", "task", "metric", "method", "budget", "size", "value", "n", "seconds"]


def _named(models) -> dict:
    if isinstance(models, dict):
        return dict(models)
    if isinstance(models, (list, tuple)):
        return {f"model{i}": m for i, m in enumerate(models)}
    return {"model": models}


def _check_budgets(eps, k) -> tuple[list, list]:
    eps = [float(e) for e in eps]
    for e in eps:
        if not (math.isfinite(e) and e >= 0):
            raise ValueError(f"every eps must be finite and non-negative, got {e}")
    k = list(k)
    for v in k:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"every k must be a non-negative int, got {v!r}")
    return eps, [int(v) for v in k]


def _check_methods(given, allowed: tuple, what: str) -> list:
    given = [given] if isinstance(given, str) else list(given)
    wrong = [m for m in given if m not in allowed]
    if wrong:
        raise ValueError(f"unknown {what} {wrong}; choose from {allowed}")
    return given


def model_calls(adapter, X) -> torch.Tensor:
    """The class each input is called (N,): the argmax of a class output, else the side of the score's threshold.

    Examples
    --------
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(lambda x: x, output=outputs.logit(1), device="cpu")
    >>> model_calls(adapter, torch.tensor([[2.0, 1.0], [0.0, 3.0]]))
    tensor([0, 1])
    """
    raw = adapter.predict(X)
    if adapter.output.classes and raw.ndim == 2 and raw.shape[1] > 1:
        return raw.argmax(1)
    return (adapter.output(raw) > adapter.output.threshold).long()


def _share(flags: torch.Tensor, n: int) -> float:
    return float(flags.float().sum()) / n if n else math.nan


def _robust_eps(adapter, X, correct, e, *, attack, norm, steps, restarts, seed):
    from .search.continuous import fgsm, pgd

    robust = correct.clone()
    rows = torch.nonzero(correct)[:, 0]
    if e > 0 and rows.numel():
        if attack == "pgd":
            r = pgd(adapter, X[rows], goal=_goals.flip(), eps=e, norm=norm, steps=steps, restarts=restarts, seed=seed)
        else:
            r = fgsm(adapter, X[rows], goal=_goals.flip(), eps=e, norm=norm)
        robust[rows] = ~r.success.to(robust.device)
    return robust


def _robust_k(adapter, X, correct, k, *, search):
    from .search.discrete import min_substitutions

    robust = correct.clone()
    rows = torch.nonzero(correct)[:, 0]
    if k > 0 and rows.numel():
        r = min_substitutions(adapter, X[rows], goal=_goals.flip(), max_edits=k, method=search)
        robust[rows] = ~r.success.to(robust.device)
    return robust


def _certified(adapter, X, correct, budget: dict, method: str, norm: str):
    from . import certify

    out = torch.zeros_like(correct)
    rows = torch.nonzero(correct)[:, 0]
    if not rows.numel():
        return out
    if method == "substitutions":
        status = certify.substitutions(adapter, X[rows], k=budget["k"]).status
        ok = torch.tensor([s == "certified" for s in status], device=out.device)
    else:
        fn = certify.ibp if method == "ibp" else certify.crown
        extra = {"norm": norm} if "eps" in budget else {}
        ok = fn(adapter, X[rows], goal=_goals.flip(), **budget, **extra).certified.to(out.device)
    out[rows] = ok
    return out


def _rmse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred.double() - y.double()).square().mean().sqrt())


def _worst_error(lo: torch.Tensor, hi: torch.Tensor, y: torch.Tensor) -> float:
    y = y.to(lo)
    return float(torch.maximum((hi - y).abs(), (y - lo).abs()).double().square().mean().sqrt())


def _classification_rows(adapter, X, y, *, eps, k, norm, attacks, certificates, sigma, n_smoothing, steps, restarts,
                         search, seed):
    n = X.shape[0]
    start = time.perf_counter()
    correct = model_calls(adapter, X) == y.to(adapter.device).long()
    rows = [("accuracy", "clean", "", 0.0, _share(correct, n), time.perf_counter() - start)]
    for attack in [a for a in attacks if a in EPS_ATTACKS]:
        for e in eps:
            start = time.perf_counter()
            robust = _robust_eps(adapter, X, correct, e, attack=attack, norm=norm, steps=steps, restarts=restarts, seed=seed)
            rows.append(("robust accuracy", attack, "eps", e, _share(robust, n), time.perf_counter() - start))
    for attack in [a for a in attacks if a in K_ATTACKS]:
        for v in k:
            start = time.perf_counter()
            robust = _robust_k(adapter, X, correct, v, search=search)
            rows.append(("robust accuracy", attack, "k", v, _share(robust, n), time.perf_counter() - start))
    for method in [c for c in certificates if c in ("ibp", "crown")]:
        for e in eps:
            start = time.perf_counter()
            ok = _certified(adapter, X, correct, {"eps": e}, method, norm)
            rows.append(("certified accuracy", method, "eps", e, _share(ok, n), time.perf_counter() - start))
    for method in [c for c in certificates if c in K_CERTIFICATES]:
        for v in k:
            start = time.perf_counter()
            ok = _certified(adapter, X, correct, {"k": v}, method, norm)
            rows.append(("certified accuracy", method, "k", v, _share(ok, n), time.perf_counter() - start))
    if "smoothing" in certificates and eps:
        from .certify import smoothing

        if sigma is None:
            raise ValueError("smoothing certificates need sigma= (the noise's standard deviation)")
        start = time.perf_counter()
        result = smoothing(adapter, X, sigma=sigma, n=n_smoothing, n0=min(100, n_smoothing), seed=seed)
        right = result.prediction.to(correct.device) == y.to(correct.device).long()
        seconds = (time.perf_counter() - start) / len(eps)
        for e in eps:
            ok = right & (result.radius.to(correct.device) >= e)
            rows.append(("certified accuracy", f"smoothing (sigma={sigma:g}, l2)", "eps", e, _share(ok, n), seconds))
    return rows


def _regression_rows(adapter, X, y, *, eps, k, norm, attacks, certificates, steps, restarts, seed):
    from . import certify
    from .search.continuous import pgd

    start = time.perf_counter()
    score = adapter.score(X)
    y = y.to(score.device).reshape(-1).to(score.dtype)
    total = float((y - y.mean()).square().sum())
    r2 = 1 - float((score - y).square().sum()) / total if total > 0 else math.nan
    seconds = time.perf_counter() - start
    rows = [("r2", "clean", "", 0.0, r2, seconds), ("rmse", "clean", "", 0.0, _rmse(score, y), seconds)]
    if "pgd" in attacks or "fgsm" in attacks:
        for e in eps:
            start = time.perf_counter()
            lo, hi = score, score
            if e > 0:
                lo = pgd(adapter, X, goal=_goals.below(-1e30), eps=e, norm=norm, steps=steps, restarts=restarts,
                         seed=seed).score_after.to(score.device)
                hi = pgd(adapter, X, goal=_goals.above(1e30), eps=e, norm=norm, steps=steps, restarts=restarts,
                         seed=seed).score_after.to(score.device)
            rows.append(("robust rmse", "pgd", "eps", e, _worst_error(lo, hi, y), time.perf_counter() - start))
    budgets = [("eps", e) for e in eps] + [("k", v) for v in k]
    for method in [c for c in certificates if c in ("ibp", "crown")]:
        fn = certify.ibp if method == "ibp" else certify.crown
        for kind, size in budgets:
            start = time.perf_counter()
            b = fn(adapter, X, **{kind: size}, **({"norm": norm} if kind == "eps" else {}))
            worst = _worst_error(b.lower.to(score.device), b.upper.to(score.device), y)
            rows.append(("certified rmse", method, kind, size, worst, time.perf_counter() - start))
    return rows


def tradeoff(
    models,
    X,
    y,
    *,
    eps=(),
    k=(),
    norm: str = "linf",
    attacks=("pgd", "substitutions"),
    certificates=("ibp", "crown"),
    sigma: float | None = None,
    n_smoothing: int = 1000,
    task: str = "auto",
    steps: int = 20,
    restarts: int = 1,
    search: str = "auto",
    seed: int = 0,
) -> pd.DataFrame:
    """Clean, robust and certified performance of several models over lists of eps and k, as one table.

    Parameters
    ----------
    models : dict of name -> adapter, a list of adapters, or one adapter
    X : torch.Tensor of shape (N, ...) or inputs the adapters encode
        The same held-out inputs for every model.
    y : torch.Tensor of shape (N,)
        Class labels (0/1 for a single-score output) or float targets.
    eps : list of float
        Radii (in ``norm``) for PGD / FGSM attacks and IBP / CROWN / smoothing certificates.
    k : list of int
        Substitution budgets for k-substitution attacks and certificates (one-hot DNA).
    norm : {"linf", "l2", "l1"}
    attacks : list of {"pgd", "fgsm", "substitutions"}
    certificates : list of {"ibp", "crown", "substitutions", "smoothing"}
        IBP and CROWN run over eps-balls and over k substitutions; ``substitutions``
        is the exact (enumeration / branch-and-bound) k-substitution certificate;
        ``smoothing`` certifies the Gaussian-smoothed classifier at L2 radius eps.
    sigma : float, optional
        Noise of the smoothing certificate.
    n_smoothing : int
        Noise draws per input for smoothing.
    task : {"auto", "classification", "regression"}
        ``auto``: classification for integer labels, regression for float targets.
    steps, restarts : int
        PGD settings.
    search : str
        Method of :func:`probekit.search.min_substitutions` for the k attack.
    seed : int

    Returns
    -------
    pandas.DataFrame
        One row per model, metric, method and budget: ``model``, ``task``,
        ``metric`` (``accuracy``, ``robust accuracy``, ``certified accuracy``; or
        ``r2``, ``rmse``, ``robust rmse``, ``certified rmse``), ``method`` (``clean``,
        the attack or the certificate), ``budget`` (``"eps"``, ``"k"`` or ``""``),
        ``size`` (the eps or k), ``value``, ``n`` (inputs) and ``seconds``.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> seqs = ["ACGTACGTAC", "TTTTACGTAA", "GGGGCCCCAA"]
    >>> t = tradeoff([adapter], adapter.encode(seqs), torch.tensor([1, 0, 1]), k=[1], certificates=["ibp"])
    >>> t[["metric", "method", "budget", "size"]].values.tolist()[1:]
    [['robust accuracy', 'substitutions', 'k', 1.0], ['certified accuracy', 'ibp', 'k', 1.0]]
    """
    eps, k = _check_budgets(eps, k)
    attacks = _check_methods(attacks, EPS_ATTACKS + K_ATTACKS, "attacks")
    certificates = _check_methods(certificates, tuple(dict.fromkeys(EPS_CERTIFICATES + K_CERTIFICATES)), "certificates")
    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    named = _named(models)
    if not named:
        raise ValueError("no models given")
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    kind = task if task != "auto" else ("regression" if y.is_floating_point() else "classification")
    out = []
    for name, adapter in named.items():
        Xa = adapter._as_input(X)
        if Xa.shape[0] != y.shape[0]:
            raise ValueError(f"{Xa.shape[0]} inputs but {y.shape[0]} labels or targets")
        common = {"eps": eps, "k": k, "norm": norm, "attacks": attacks, "certificates": certificates, "steps": steps,
                  "restarts": restarts, "seed": seed}
        if kind == "classification":
            rows = _classification_rows(adapter, Xa, y, sigma=sigma, n_smoothing=n_smoothing, search=search, **common)
        else:
            rows = _regression_rows(adapter, Xa, y, **common)
        for metric, method, budget, size, value, seconds in rows:
            out.append([name, kind, metric, method, budget, size, value, int(Xa.shape[0]), seconds])
    return pd.DataFrame(out, columns=COLUMNS)


def plot_tradeoff(table: pd.DataFrame, *, budget: str | None = None, ax=None):
    """Draw a :func:`tradeoff` table: the metric against eps or k, one line per model and method.

    Clean accuracy (or RMSE) is drawn at size 0 as the start of every curve's model.

    Parameters
    ----------
    table : pandas.DataFrame
        As returned by :func:`tradeoff`.
    budget : {"eps", "k"}, optional
        Which budget to put on the x axis (default: k when the table has it, else eps).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"model": ["a", "a"], "task": "classification", "metric": ["accuracy", "robust accuracy"],
    ...                       "method": ["clean", "pgd"], "budget": ["", "eps"], "size": [0.0, 0.1],
    ...                       "value": [0.9, 0.5], "n": 10, "seconds": 0.0})
    >>> plot_tradeoff(table).get_xlabel()
    'eps'
    """
    import matplotlib.pyplot as plt

    if budget is None:
        budget = "k" if (table["budget"] == "k").any() else "eps"
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    regression = bool((table["task"] == "regression").all())
    clean_metric = "rmse" if regression else "accuracy"
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for i, (name, rows) in enumerate(table.groupby("model", sort=False)):
        colour = colours[i % len(colours)]
        clean = rows[(rows["metric"] == clean_metric) & (rows["method"] == "clean")]
        curves = rows[rows["budget"] == budget]
        for j, (method, part) in enumerate(curves.groupby("method", sort=False)):
            part = part.sort_values("size")
            x, v = part["size"].tolist(), part["value"].tolist()
            if len(clean) and (not x or x[0] > 0):
                x, v = [0] + x, [float(clean["value"].iloc[0])] + v
            ax.plot(x, v, styles[j % len(styles)], marker="o", color=colour, label=f"{name}: {method}")
    ax.set_xlabel(budget)
    ax.set_ylabel("RMSE" if regression else "accuracy (clean, robust or certified)")
    ax.legend(fontsize="small")
    return ax


__all__ = ["tradeoff", "plot_tradeoff", "model_calls"]
