"""Null baselines: score changes of random substitutions and random bit flips.

The draws are made on a seeded CPU generator and then moved to
``adapter.device``, so a seed gives the same draws on any device and with any
batch size. All draws of all inputs are scored in lazily built batches.

Examples
--------
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=0, device="cpu")
>>> null = random_substitutions(adapter, ["ACGTACGTAC"], k=2, n_draws=20, seed=1)
>>> null.deltas.shape, null.params["sites"].shape
(torch.Size([1, 20]), torch.Size([1, 20, 2]))
"""

from __future__ import annotations

import hashlib

import time

import torch

from .._warnings import warn
from ..results import BaselineResult
from ._select import Skipped, warn_inputs
from .discrete import _bit_space, _dna_space, _evaluate_sets, _ids, _Space

_KEY_BUDGET = 2**22  # random keys drawn at once when choosing sites


def input_seeds(X: torch.Tensor, seed: int) -> list[int]:
    """One seed per input (first axis of ``X``), from ``seed`` and the input's own values.

    Random draws made with these seeds depend only on the input and ``seed``, not on
    which other inputs share the call (one call or many chunks give the same draws).

    Examples
    --------
    >>> X = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> a, b, c = input_seeds(X, 0)
    >>> a == c, a == b
    (True, False)
    """
    rows = X.detach().reshape(X.shape[0], -1).cpu().float().numpy()
    head = str(int(seed)).encode() + b":"
    return [int.from_bytes(hashlib.sha256(head + row.tobytes()).digest()[:7], "little") for row in rows]


def _draw(space: _Space, k: int, n_draws: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``k`` distinct editable sites per draw and a random other value at each, on the CPU.

    Each input draws from its own generator (:func:`input_seeds`). Returns sites and
    values (N, n_draws, k) and a (N,) bool of inputs with enough sites.
    """
    mask = space.mask.cpu()
    current = space.current(space.X).cpu()
    n, s = mask.shape
    a = space.n_values
    enough = mask.sum(dim=1) >= k
    sites = torch.zeros(n, n_draws, k, dtype=torch.long)
    values = torch.zeros(n, n_draws, k, dtype=torch.long)
    step = max(1, _KEY_BUDGET // max(s, 1))
    for i, own_seed in enumerate(input_seeds(space.X, seed)):
        generator = torch.Generator().manual_seed(own_seed)
        for start in range(0, n_draws, step):
            stop = min(n_draws, start + step)
            keys = torch.rand(stop - start, s, generator=generator)
            keys = torch.where(mask[i], keys, 2.0)  # protected sites sort last
            sites[i, start:stop] = keys.topk(k, dim=1, largest=False).indices
        value_keys = torch.rand(n_draws, k, a, generator=generator)
        here = current[i][sites[i]]
        value_keys = torch.where(torch.arange(a) == here[..., None], -1.0, value_keys)  # never the current value
        values[i] = value_keys.argmax(dim=2)
    return sites, values, enough


def _random_edits(adapter, space: _Space, X, *, k, n_draws, seed, kind, ids, progress, names=None) -> BaselineResult:
    start = time.perf_counter()
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    if not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    n = space.X.shape[0]
    id_list = _ids(X, ids, n)
    sites, values, enough = _draw(space, k, n_draws, seed)
    for i in (~enough).nonzero().squeeze(1).tolist():
        name = id_list[i] if id_list else f"input {i}"
        warn(f"{name}: fewer than {k} editable sites; its random deltas are NaN")
    device = space.X.device
    owner = torch.arange(n, device=device).repeat_interleave(n_draws)
    flat_sites = sites.reshape(n * n_draws, k).to(device)
    flat_values = values.reshape(n * n_draws, k).to(device)
    with adapter.session():
        before = adapter.score(space.X)
        score, _, _ = _evaluate_sets(adapter, space, None, space.X, owner, owner, flat_sites, flat_values, progress=progress)
    deltas = (score - before[owner]).reshape(n, n_draws)
    deltas[~enough.to(device)] = float("nan")
    deltas = _skip_nonfinite(deltas, score.reshape(n, n_draws), before, enough.to(device), stacklevel=3)
    params = {
        "seed": int(seed),
        "sites": sites,
        "values": values,
        "score_before": before,
        "output": adapter.output.name,
        "device": str(device),
        "seconds": time.perf_counter() - start,
    }
    if names is not None:
        params["feature_names"] = list(names)
    return BaselineResult(deltas=deltas, k=k, kind=kind, ids=id_list, params=params)


def _skip_nonfinite(deltas: torch.Tensor, after: torch.Tensor, before: torch.Tensor, drawn: torch.Tensor, *,
                    stacklevel: int) -> torch.Tensor:
    """``deltas`` (N, D) with NaN where a draw's score ``after`` (N, D) or the input's ``before`` (N,) is not finite.

    Warns once with the count of non-finite draws among the ``drawn`` (N,) inputs,
    and names the inputs whose own score is not finite (``stacklevel`` as in
    :func:`~probekit.search._select.warn_inputs`).
    """
    skipped = Skipped()
    skipped.add(~torch.isfinite(after), drawn[:, None].expand_as(after))
    skipped.warn("their deltas are NaN", stacklevel=stacklevel + 1)
    warn_inputs(~torch.isfinite(before), "their deltas are NaN", stacklevel=stacklevel + 1)
    return torch.where(torch.isfinite(deltas), deltas, float("nan"))


def random_substitutions(
    adapter, X, *, k: int, n_draws: int = 100, seed: int = 0, positions=None, ids=None, progress: bool = False
) -> BaselineResult:
    """Score changes of ``k`` random substitutions: the null distribution for adversarial edits.

    Each draw picks ``k`` distinct editable positions uniformly and gives each a
    uniformly random base other than the reference.

    Parameters
    ----------
    adapter : SequenceModel
    X : torch.Tensor of shape (N, 4, L), or anything ``adapter.encode`` takes
    k : int
        Substitutions per draw.
    n_draws : int
        Draws per input.
    seed : int
        Same seed, same draws, on any device; each input's draws depend only on the
        seed and the input, not on the other inputs of the call.
    positions : bool mask (L,) or (N, L), list of positions or slice, optional
        Positions that may be edited; N positions never are.
    ids : list of str, optional
    progress : bool

    Returns
    -------
    BaselineResult
        ``deltas`` (N, n_draws): score after minus score before; NaN for an input
        with fewer than ``k`` editable positions, and for draws (or inputs) whose
        score is not finite. ``params["sites"]`` and
        ``params["values"]`` (N, n_draws, k) hold each draw's positions and base indices.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import MotifCounter
    >>> adapter = SequenceModel(MotifCounter("ACGT"), output=0, device="cpu")
    >>> null = random_substitutions(adapter, ["ACGTACGTAC"], k=1, n_draws=50)
    >>> bool((null.deltas <= 0).all())
    True
    """
    space = _dna_space(adapter, X, positions)
    return _random_edits(adapter, space, X, k=k, n_draws=n_draws, seed=seed, kind="substitutions", ids=ids, progress=progress)


def random_bit_flips(
    adapter, X, *, k: int, n_draws: int = 100, seed: int = 0, features=None, ids=None, progress: bool = False
) -> BaselineResult:
    """Score changes of ``k`` random flips of binary features per draw.

    Parameters
    ----------
    adapter : FeatureModel
    X : torch.Tensor of shape (N, F), or anything ``adapter.encode`` takes
    k : int
        Flips per draw, at distinct features.
    n_draws : int
    seed : int
    features : bool mask (F,) or (N, F), list of indices or names, or slice, optional
        Flippable features; default every feature of kind ``"binary"``.
    ids : list of str, optional
    progress : bool

    Returns
    -------
    BaselineResult
        ``deltas`` (N, n_draws); ``params["sites"]`` (N, n_draws, k) the flipped feature indices.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> adapter = FeatureModel(torch.nn.Linear(6, 1), output=outputs.value(0), kinds="binary", device="cpu")
    >>> random_bit_flips(adapter, torch.ones(2, 6), k=2, n_draws=10).deltas.shape
    torch.Size([2, 10])
    """
    space, names = _bit_space(adapter, X, features)
    return _random_edits(
        adapter, space, X, k=k, n_draws=n_draws, seed=seed, kind="bit_flips", ids=ids, progress=progress, names=names
    )


__all__ = ["random_bit_flips", "random_substitutions"]
