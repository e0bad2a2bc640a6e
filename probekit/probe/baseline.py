"""The random baseline every probe compares its adversarial change with, once for both domains.

An adversarial edit set of size k is compared with random edit sets of the same
size drawn for the same input (random substitutions for DNA, random bit flips or
random perturbations of the same norm for features): how many times larger the
adversarial score change is than the mean random one (``ratio``), its ``z`` and
the empirical one-sided ``p_value`` (:meth:`probekit.results.BaselineResult.compare`).

Examples
--------
>>> import torch
>>> from probekit.results import BaselineResult
>>> def draw(rows, k):
...     return BaselineResult(deltas=torch.full((len(rows), 4), -0.5), params={"k": k})
>>> stats = compare_by_size(draw, torch.tensor([1, 2, 1]), torch.tensor([-2.0, -1.0, -0.5]))
>>> stats["ratio"].tolist(), stats["random_k"].tolist()
([4.0, 2.0, 1.0], [1, 2, 1])
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

STAT_COLUMNS = ("random_mean", "random_std", "ratio", "z", "p_value")


def compared_stats(baseline, adversarial: torch.Tensor) -> dict[str, np.ndarray]:
    """The comparison columns of ``baseline.compare(adversarial)`` as float64 arrays (N,)."""
    compared = baseline.compare(adversarial)
    return {name: compared[name].to_numpy(dtype=np.float64) for name in STAT_COLUMNS}


def compare_by_size(draw: Callable, ks: torch.Tensor, adversarial: torch.Tensor) -> dict[str, np.ndarray]:
    """Compare each input's adversarial change with random edit sets of its own size, one batched draw per size.

    Parameters
    ----------
    draw : callable
        ``draw(rows, k) -> BaselineResult`` of the inputs ``rows`` (a CPU long
        tensor of input indices) with ``k`` random edits each.
    ks : torch.Tensor of shape (N,)
        Edits per random draw of each input; inputs with ``k < 1`` get no baseline (NaN).
    adversarial : torch.Tensor of shape (N,)
        Score change of each input's adversarial edit set.

    Returns
    -------
    dict
        ``random_mean``, ``random_std``, ``ratio``, ``z``, ``p_value`` (float64, N)
        and ``random_k`` (int64, N).
    """
    ks = ks.cpu()
    adversarial = adversarial.cpu()
    n = ks.shape[0]
    out = {name: np.full(n, np.nan) for name in STAT_COLUMNS}
    for k in torch.unique(ks).tolist():
        if k < 1:
            continue
        rows = torch.nonzero(ks == k).flatten()
        stats = compared_stats(draw(rows, int(k)), adversarial[rows])
        for name in STAT_COLUMNS:
            out[name][rows.numpy()] = stats[name]
    out["random_k"] = ks.numpy().astype(np.int64)
    return out


__all__ = ["compare_by_size", "compared_stats", "STAT_COLUMNS"]
