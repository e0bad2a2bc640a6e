"""Active learning: which candidates to measure next, by ensemble disagreement, adversarial fragility, or both.

A candidate is worth measuring when the models disagree on it (their
uncertainty is high) or when a few edits flip its prediction (the model's call
is fragile there). :func:`acquisition` scores every candidate by these
components; :func:`next_batch` returns the best ones, diverse: no two picks
closer than a Hamming distance (DNA) or more similar than a Tanimoto similarity
(molecules), chosen greedily down the ranking (:func:`select_diverse`).

Examples
--------
>>> from probekit import SequenceModel
>>> from probekit.ensemble import Ensemble
>>> from probekit.testing import ToyConv, random_sequences
>>> ensemble = Ensemble([SequenceModel(ToyConv(seed=s), output=1, device="cpu") for s in range(3)])
>>> picks = next_batch(ensemble, random_sequences(12, 16, seed=0), size=3, by="disagreement", min_distance=8)
>>> picks["pick"].tolist()
[1, 2, 3]
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch

from .adapters import FeatureModel, SequenceModel

BY = ("disagreement", "fragility", "combined")


def _candidates(adapter, candidates, ids):
    """Encoded candidates (M, ...), their ids and their text (sequences or SMILES, or None)."""
    texts = None
    if isinstance(candidates, pd.DataFrame):
        if ids is None and "id" in candidates.columns:
            ids = candidates["id"].astype(str).tolist()
        column = next((c for c in ("sequence", "smiles", "input") if c in candidates.columns), None)
        if column is not None:
            texts = candidates[column].astype(str).tolist()
            candidates = texts
    elif isinstance(candidates, str):
        candidates = [candidates]
    if isinstance(candidates, (list, tuple)) and all(isinstance(c, str) for c in candidates):
        texts = list(candidates)
    X = adapter.encode(candidates)
    ids = [str(i) for i in ids] if ids is not None else [f"c{i}" for i in range(X.shape[0])]
    if len(ids) != X.shape[0]:
        raise ValueError(f"{len(ids)} ids for {X.shape[0]} candidates")
    return X, ids, texts


def _minmax(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to [0, 1] (NaN as 0); a constant column is all 0."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    if values.size == 0 or values.max() <= values.min():
        return np.zeros_like(values)
    return (values - values.min()) / (values.max() - values.min())


def _uncertainty(adapter, X, how: str) -> dict:
    from .ensemble import Ensemble

    if not isinstance(adapter, Ensemble):
        raise TypeError(f"disagreement needs an Ensemble of models; got a {type(adapter).__name__}")
    spread = adapter.spread(X).double().cpu().numpy()
    vote = adapter.disagreement(X).double().cpu().numpy()
    if how == "auto":
        how = "vote" if adapter.output.classes or adapter.output.name.startswith(("margin[", "prob[")) else "spread"
    if how not in ("spread", "vote"):
        raise ValueError(f"uncertainty must be 'auto', 'spread' or 'vote', got {how!r}")
    return {"spread": spread, "vote_disagreement": vote, "disagreement": vote if how == "vote" else spread}


def _fragility(adapter, X, *, goal, how, max_edits, method, norm, eps_max, seed) -> dict:
    """Fewest edits (or smallest perturbation) that reach ``goal``, and the fragility it gives."""
    from .search.continuous import min_perturbation
    from .search.discrete import bit_flips, min_substitutions

    binary = isinstance(adapter, FeatureModel) and adapter.kind_mask(X.shape[1], "binary").all()
    if how == "auto":
        how = "edits" if isinstance(adapter, SequenceModel) or binary else "perturbation"
    if how == "edits":
        if isinstance(adapter, SequenceModel):
            result = min_substitutions(adapter, X, goal=goal, max_edits=max_edits, method=method)
        elif isinstance(adapter, FeatureModel):
            result = bit_flips(adapter, X, goal=goal, max_flips=max_edits, method=method)
        else:
            raise TypeError(f"fragility by edits needs a SequenceModel or FeatureModel, got {type(adapter).__name__}")
        n_edits = np.where(result.success.numpy(), result.n_edits.numpy().astype(np.float64), np.nan)
        return {"n_edits": n_edits, "fragility": np.nan_to_num(1.0 / n_edits, nan=0.0)}
    if how == "perturbation":
        result = min_perturbation(adapter, X, goal=goal, norm=norm, eps_max=eps_max, seed=seed)
        size = np.where(result.success.cpu().numpy(), result.norm.double().cpu().numpy(), np.nan)
        with np.errstate(divide="ignore"):
            fragility = np.where(np.isnan(size), 0.0, 1.0 / np.maximum(size, 1e-12))
        return {"min_norm": size, "fragility": fragility}
    raise ValueError(f"fragility must be 'auto', 'edits' or 'perturbation', got {how!r}")


def acquisition(adapter, candidates, *, by: str = "combined", weights=(0.5, 0.5), uncertainty: str = "auto",
                fragility: str = "auto", goal=None, max_edits: int = 3, method: str = "auto", norm: str = "linf",
                eps_max=None, seed: int = 0, ids=None) -> pd.DataFrame:  # fmt: skip
    """Score every candidate for measurement: ensemble disagreement, adversarial fragility, or a weighted sum.

    Components:

    - ``disagreement`` (needs an :class:`~probekit.ensemble.Ensemble`): the vote
      disagreement of the members (:meth:`~probekit.ensemble.Ensemble.disagreement`)
      for a class output (a logit of several, a margin, a probability), else the spread of their scores
      (:meth:`~probekit.ensemble.Ensemble.spread`); both are columns.
    - ``fragility``: ``1 / n_edits`` for the fewest substitutions (DNA) or bit flips
      (binary features) that reach ``goal``
      (:func:`probekit.search.min_substitutions`, :func:`probekit.search.bit_flips`),
      or ``1 / norm`` of the smallest perturbation (:func:`probekit.search.min_perturbation`);
      0 where none was found within the budget.
    - ``acquisition``: the chosen component, or for ``"combined"``
      ``w_d * d + w_f * f`` with each component scaled to [0, 1] over the candidates
      (min to max), so that the weights do not depend on the components' units.

    Parameters
    ----------
    adapter : Ensemble, SequenceModel or FeatureModel
        Any adapter for ``by="fragility"``; an ensemble otherwise.
    candidates : list of str, DataFrame (``id`` and ``sequence`` or ``smiles``) or tensor (M, ...)
    by : {"disagreement", "fragility", "combined"}
    weights : (float, float)
        Weights of disagreement and fragility in ``"combined"``.
    uncertainty : {"auto", "spread", "vote"}
    fragility : {"auto", "edits", "perturbation"}
        ``auto``: edits for DNA and binary features, perturbation otherwise.
    goal : Goal or str, optional
        What counts as flipping the prediction (default :func:`probekit.goals.flip`).
    max_edits : int
        Largest edit set searched.
    method : str
        Method of the substitution search.
    norm : {"linf", "l2", "l1"}
    eps_max : float, optional
        Largest perturbation searched.
    seed : int
    ids : list of str, optional

    Returns
    -------
    pandas.DataFrame
        One row per candidate, best first: ``id``, ``input`` (the sequence or SMILES,
        when given as text), ``score``, the components (``spread``,
        ``vote_disagreement``, ``disagreement``; ``n_edits`` or ``min_norm``,
        ``fragility``), ``acquisition`` and ``rank`` (1 = measure first), and
        ``index`` (the candidate's position in ``candidates``).

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> from probekit.ensemble import Ensemble
    >>> members = [FeatureModel(lambda x, s=s: s * x, output=outputs.value(0), device="cpu") for s in (1.0, 3.0)]
    >>> table = acquisition(Ensemble(members), torch.tensor([[1.0], [-4.0], [0.5]]), by="disagreement")
    >>> table[["index", "spread", "rank"]].values.tolist()
    [[1.0, 4.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.5, 3.0]]
    """
    from . import goals as goals_module

    if by not in BY:
        raise ValueError(f"by must be one of {BY}, got {by!r}")
    weights = tuple(float(w) for w in weights)
    if len(weights) != 2 or min(weights) < 0 or sum(weights) == 0:
        raise ValueError(f"weights must be two non-negative numbers, not both 0; got {weights}")
    X, ids, texts = _candidates(adapter, candidates, ids)
    frame = pd.DataFrame({"index": np.arange(X.shape[0]), "id": ids, "input": texts if texts is not None else None})
    frame["score"] = adapter.score(X).double().cpu().numpy()
    if by in ("disagreement", "combined"):
        for key, value in _uncertainty(adapter, X, uncertainty).items():
            frame[key] = value
    if by in ("fragility", "combined"):
        parts = _fragility(adapter, X, goal=goals_module.parse(goal), how=fragility, max_edits=max_edits,
                           method=method, norm=norm, eps_max=eps_max, seed=seed)  # fmt: skip
        for key, value in parts.items():
            frame[key] = value
    if by == "combined":
        frame["acquisition"] = weights[0] * _minmax(frame["disagreement"]) + weights[1] * _minmax(frame["fragility"])
    else:
        frame["acquisition"] = frame[by].to_numpy(dtype=np.float64)
    order = np.argsort(-np.nan_to_num(frame["acquisition"].to_numpy(), nan=-np.inf), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


def _hamming_to(X: torch.Tensor, i: int) -> np.ndarray:
    """Positions (M,) at which each one-hot sequence differs from sequence ``i``."""
    return (X != X[i : i + 1]).any(dim=1).sum(dim=1).cpu().numpy()


def _bit_tanimoto_to(X: torch.Tensor, i: int) -> np.ndarray:
    """Tanimoto similarity (M,) of binary feature vectors to vector ``i``."""
    a = X > 0.5
    both = (a & a[i : i + 1]).sum(dim=1).double()
    either = (a | a[i : i + 1]).sum(dim=1).double()
    return torch.where(either > 0, both / either.clamp_min(1), torch.ones_like(both)).cpu().numpy()


def select_diverse(inputs, order, *, size: int, min_distance: int | None = None, max_similarity: float | None = None,
                   **tanimoto_options) -> list:  # fmt: skip
    """Greedy diverse picks down a ranking: each candidate is taken unless it is too close to one taken before.

    Parameters
    ----------
    inputs : list of str, or torch.Tensor of shape (M, 4, L) or (M, F)
        DNA sequences of one length (or their one-hot tensor) with ``min_distance``;
        SMILES (or binary fingerprints (M, F)) with ``max_similarity``.
    order : sequence of int
        Candidate indices, best first.
    size : int
        Picks wanted; fewer come back when the rule leaves no more.
    min_distance : int, optional
        Every two DNA picks differ at at least this many positions (Hamming distance).
    max_similarity : float, optional
        Every two molecule picks have a Tanimoto similarity of at most this
        (:func:`probekit.molmodel.similarity.tanimoto` on SMILES, with ``tanimoto_options``;
        on the bits themselves for a binary tensor). Invalid molecules count as dissimilar.

    Returns
    -------
    list of int
        The picked indices, in pick order.

    Examples
    --------
    >>> select_diverse(["AAAA", "AAAT", "TTTT", "TTTA"], [0, 1, 2, 3], size=3, min_distance=2)
    [0, 2]
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if (min_distance is None) == (max_similarity is None):
        if min_distance is None:
            return list(order)[:size]
        raise ValueError("give min_distance (DNA) or max_similarity (molecules), not both")
    closeness = _closeness(inputs, min_distance, max_similarity, tanimoto_options)
    picks, too_close = [], None
    for i in order:
        i = int(i)
        if too_close is not None and too_close[i]:
            continue
        picks.append(i)
        if len(picks) == size:
            break
        near = closeness(i)
        too_close = near if too_close is None else too_close | near
    return picks


def _closeness(inputs, min_distance, max_similarity, tanimoto_options):
    """A function ``i -> bool (M,)``: which candidates are too close to candidate ``i``."""
    if min_distance is not None:
        if isinstance(inputs, torch.Tensor):
            return lambda i: _hamming_to(inputs, i) < int(min_distance)
        lengths = {len(s) for s in inputs}
        if len(lengths) > 1:
            raise ValueError(f"Hamming distances need sequences of one length, got lengths {sorted(lengths)}")
        codes = np.frombuffer("".join(inputs).upper().encode("ascii"), dtype=np.uint8).reshape(len(inputs), -1)
        return lambda i: (codes != codes[i]).sum(axis=1) < int(min_distance)
    if isinstance(inputs, torch.Tensor):
        return lambda i: _bit_tanimoto_to(inputs, i) > float(max_similarity)
    from .molmodel.similarity import tanimoto

    smiles = list(inputs)
    return lambda i: np.nan_to_num(tanimoto(smiles[i], smiles, **tanimoto_options), nan=0.0) > float(max_similarity)


def next_batch(adapter, candidates, *, size: int, by: str = "combined", min_distance: int | None = None,
               max_similarity: float | None = None, ids=None, **options) -> pd.DataFrame:  # fmt: skip
    """The next ``size`` candidates to measure: the best by :func:`acquisition`, diverse by :func:`select_diverse`.

    Parameters
    ----------
    adapter : Ensemble, SequenceModel or FeatureModel
    candidates : list of str, DataFrame or tensor (M, ...)
    size : int
    by : {"disagreement", "fragility", "combined"}
    min_distance : int, optional
        DNA: every two picks differ at at least this many positions.
    max_similarity : float, optional
        Molecules: every two picks have a Tanimoto similarity of at most this.
    ids : list of str, optional
    **options
        Options of :func:`acquisition` (``weights``, ``goal``, ``max_edits``...).

    Returns
    -------
    pandas.DataFrame
        The picked rows of :func:`acquisition`, in pick order, with ``pick`` (1, 2, ...).
        Fewer than ``size`` rows when the diversity rule leaves no more candidates.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> from probekit.ensemble import Ensemble
    >>> members = [FeatureModel(lambda x, s=s: s * x.sum(1, keepdim=True), output=outputs.value(0), device="cpu")
    ...            for s in (1.0, 2.0)]
    >>> bits = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    >>> next_batch(Ensemble(members), bits, size=2, by="disagreement", max_similarity=0.5)["index"].tolist()
    [1, 2]
    """
    table = acquisition(adapter, candidates, by=by, ids=ids, **options)
    if min_distance is not None or max_similarity is not None:
        texts = table.sort_values("index")["input"].tolist()
        inputs = texts if all(isinstance(t, str) for t in texts) else adapter.encode(candidates)
        picks = select_diverse(inputs, table["index"].tolist(), size=size, min_distance=min_distance,
                               max_similarity=max_similarity)  # fmt: skip
    else:
        picks = table["index"].tolist()[:size]
    chosen = table.set_index("index", drop=False).loc[picks].reset_index(drop=True)
    chosen.insert(0, "pick", np.arange(1, len(chosen) + 1))
    return chosen


__all__ = ["acquisition", "next_batch", "select_diverse", "BY"]
