"""Motif discovery across a set of sequences: hypothetical contributions, then TF-MoDISco.

:func:`hypothetical_contributions` gives, for every position and base, the
contribution that base would make there: from in-silico saturation mutagenesis
(each substitution's score change, centred on the mean of the four bases at the
position) or from DeepLIFT-SHAP with dinucleotide-shuffled references
(:func:`probekit.attr.deeplift_shap`). :func:`discover` hands them, with the
one-hot sequences, to TF-MoDISco (the ``modisco-lite`` package), which cuts
high-contribution windows (seqlets) out of every sequence, clusters them and
aggregates each cluster into a pattern.

Examples
--------
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
>>> hyp = hypothetical_contributions(adapter, ["ACGTACGTAC", "TTTTACGTAA"])
>>> hyp.shape
torch.Size([2, 4, 10])
>>> bool(hyp.sum(dim=1).abs().max() < 1e-5)  # centred at every position
True
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import torch

from .._warnings import warn
from ..encode.dna import one_hot
from .results import DiscoveryResult

CONTRIBUTIONS = ("ism", "deeplift_shap")
#: Share of the largest column contribution a pattern's column needs to belong to its core.
TRIM = 0.3


def _need(module: str):
    """Import an optional dependency of discovery, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = {"modiscolite": "modisco-lite", "memelite": "memelite"}.get(module.split(".")[0], module)
        raise ImportError(f'motif discovery needs {package}: pip install "probekit[discovery]"') from error


def sequence_records(sequences, *, alphabet: str = "ACGT", ids=None) -> tuple[list, list, dict]:
    """The usable sequences of one length, and why the others were left out.

    Parameters
    ----------
    sequences : str, list of str, dict, DataFrame, FASTA path or torch.Tensor (N, 4, L)
        As :func:`probekit.io.sequence_frame` reads them.
    alphabet : str
    ids : list of str, optional

    Returns
    -------
    ids : list of str
    kept : list of str
        Valid sequences of the most common length among the valid ones.
    errors : dict
        id -> message for each sequence left out (invalid, or of another length).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     ids, kept, errors = sequence_records(["ACGT", "ACGTA", "TTTT"])
    >>> ids, errors
    (['seq0', 'seq2'], {'seq1': 'record seq1 has length 5; the others have length 4'})
    """
    from ..io import sequence_frame

    frame = sequence_frame(sequences, alphabet=alphabet, ids=ids)
    errors = {str(i): str(e) for i, e in zip(frame["id"], frame["error"]) if isinstance(e, str) and e}
    good = frame[~frame["id"].isin(list(errors))]
    if len(good):
        length = Counter(len(s) for s in good["sequence"]).most_common(1)[0][0]
        other = good["sequence"].str.len() != length
        for i, s in zip(good.loc[other, "id"], good.loc[other, "sequence"]):
            errors[str(i)] = f"record {i} has length {len(s)}; the others have length {length}"
        good = good[~other]
    if errors:
        warn(f"{len(errors)} of {len(frame)} sequences left out (see the error rows): {next(iter(errors.values()))}")
    return [str(i) for i in good["id"]], [s.upper() for s in good["sequence"]], errors


def hypothetical_contributions(
    adapter, X, *, contributions="ism", n_references: int = 20, seed: int = 0, progress: bool = False
) -> torch.Tensor:
    """Hypothetical contributions (N, 4, L) of every base at every position.

    Parameters
    ----------
    adapter : SequenceModel
    X : list of str or torch.Tensor of shape (N, 4, L)
        Sequences of one length.
    contributions : {"ism", "deeplift_shap"}, Attribution or array of shape (N, 4, L)
        ``"ism"``: the score change of each substitution
        (:func:`probekit.search.saturation_mutagenesis`) minus the mean change
        of the four bases at that position, so the observed base's value is the
        mean drop of the score when it is mutated (exact, one forward pass per
        substitution). ``"deeplift_shap"``: :func:`probekit.attr.deeplift_shap`
        with ``form="hypothetical"`` and ``n_references`` dinucleotide shuffles
        of each sequence (a backward pass per reference). An
        :class:`~probekit.attr.Attribution` of hypothetical form, or an array,
        is taken as it is.
    n_references, seed : int
        DeepLIFT-SHAP's references per sequence and their seed.
    progress : bool

    Returns
    -------
    torch.Tensor of shape (N, 4, L) on the CPU

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> hypothetical_contributions(adapter, ["ACGTACGTAC"], contributions="deeplift_shap", n_references=2).shape
    torch.Size([1, 4, 10])
    """
    if isinstance(contributions, str):
        if contributions == "ism":
            from ..search.discrete import saturation_mutagenesis

            effects = saturation_mutagenesis(adapter, X, progress=progress).effects  # (N, L, 4)
            effects = torch.nan_to_num(effects, nan=0.0)
            return (effects - effects.mean(dim=2, keepdim=True)).transpose(1, 2).contiguous().cpu()
        if contributions == "deeplift_shap":
            from ..attr import deeplift_shap

            result = deeplift_shap(adapter, X, n_references=n_references, seed=seed, form="hypothetical", progress=progress)
            return result.values.detach().cpu()
        raise ValueError(f"contributions must be 'ism', 'deeplift_shap', an Attribution or an array, got {contributions!r}")
    form = getattr(contributions, "form", "hypothetical")
    if form != "hypothetical":
        raise ValueError(
            "discovery needs hypothetical contributions (every base at every position); compute the attribution "
            "with form='hypothetical'"
        )
    values = contributions if isinstance(contributions, (torch.Tensor, np.ndarray)) else getattr(contributions, "values", contributions)
    return torch.as_tensor(np.asarray(values, dtype=np.float32) if not isinstance(values, torch.Tensor) else values).float().cpu()


def discover(
    adapter,
    sequences,
    *,
    contributions="ism",
    ids=None,
    window: int = 20,
    flank: int = 5,
    max_seqlets: int = 20000,
    min_seqlets: int | None = None,
    n_leiden_runs: int = 10,
    target_fdr: float = 0.05,
    trim: float = TRIM,
    min_sequences: int = 20,
    n_references: int = 20,
    seed: int = 0,
    progress: bool = False,
    **modisco_options,
) -> DiscoveryResult:
    """Find the motifs a model has learned across a set of sequences, with TF-MoDISco.

    The hypothetical contributions of every base
    (:func:`hypothetical_contributions`) and the one-hot sequences go to
    ``modiscolite.tfmodisco.TFMoDISco``: windows of ``window`` bases whose
    contribution is beyond what a null of the same sequences gives at
    ``target_fdr`` become seqlets (with ``flank`` bases each side), seqlets of
    each sign are clustered by similarity, and each cluster is aligned into a
    pattern. Each pattern's core is the run of columns whose total absolute
    contribution is at least ``trim`` times its largest.

    Parameters
    ----------
    adapter : SequenceModel
    sequences : list of str, dict, DataFrame (``id``, ``sequence``), FASTA path or torch.Tensor (N, 4, L)
        Sequences of one length. Invalid records and those of another length
        than the most common are left out, with an error row each
        (:attr:`DiscoveryResult.errors`) and a ``ProbekitWarning``.
    contributions : {"ism", "deeplift_shap"}, Attribution or array of shape (N, 4, L)
        See :func:`hypothetical_contributions`; a given array must match the kept sequences.
    ids : list of str, optional
    window, flank : int
        Seqlet core width and the flank added each side (TF-MoDISco's
        ``sliding_window_size`` and ``flank_size``); the window is shortened to
        fit short sequences.
    max_seqlets : int
        Seqlets clustered per sign at most.
    min_seqlets : int, optional
        Fewest seqlets of a sign to cluster them (TF-MoDISco's
        ``min_metacluster_size``); default 100, or a tenth of the sequences
        when that is less (at least 10).
    n_leiden_runs : int
        Leiden clusterings, each with another seed, of which the best is kept.
    target_fdr : float
        False discovery rate of seqlet calling.
    trim : float
        Share of the largest column contribution that marks a pattern's core.
    min_sequences : int
        Fewer usable sequences raise ``ValueError``.
    n_references, seed : int
        For ``contributions="deeplift_shap"``.
    progress : bool
        Progress bar of the contribution step.
    **modisco_options
        Any other argument of ``TFMoDISco`` (e.g. ``trim_to_window_size``, ``final_min_cluster_size``).

    Returns
    -------
    DiscoveryResult
        One pattern per row of ``.to_frame()``; ``.seqlet_table()`` has every seqlet.

    Raises
    ------
    ValueError
        Fewer than ``min_sequences`` usable sequences, or contributions of another shape.
    ImportError
        modisco-lite is not installed (``pip install "probekit[discovery]"``).

    Examples
    --------
    >>> import torch
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> discover(adapter, ["ACGTACGTAC"] * 3)
    Traceback (most recent call last):
    ...
    ValueError: discovery needs at least 20 sequences of one length; got 3
    """
    t0 = time.perf_counter()
    ids, kept, errors = sequence_records(sequences, alphabet=adapter.alphabet, ids=ids)
    if len(kept) < min_sequences:
        raise ValueError(f"discovery needs at least {min_sequences} sequences of one length; got {len(kept)}")
    X = one_hot(kept, alphabet=adapter.alphabet)
    length = X.shape[2]
    hyp = hypothetical_contributions(
        adapter, X, contributions=contributions, n_references=n_references, seed=seed, progress=progress
    )
    if tuple(hyp.shape) != tuple(X.shape):
        raise ValueError(f"contributions of shape {tuple(hyp.shape)} for sequences of shape {tuple(X.shape)}")
    tfmodisco = _need("modiscolite.tfmodisco")
    window = max(4, min(int(window), length - 2 * int(flank) - 1))
    if min_seqlets is None:
        min_seqlets = max(10, min(100, len(kept) // 10))
    options = {
        "sliding_window_size": window,
        "flank_size": int(flank),
        "target_seqlet_fdr": target_fdr,
        "max_seqlets_per_metacluster": int(max_seqlets),
        "min_metacluster_size": int(min_seqlets),
        "n_leiden_runs": int(n_leiden_runs),
        "trim_to_window_size": window,
        "initial_flank_to_add": int(flank),
        "final_min_cluster_size": max(5, min(20, int(min_seqlets) // 2)),
        **modisco_options,
    }
    one = X.transpose(1, 2).numpy().astype(np.float32).copy()
    hypothetical = hyp.transpose(1, 2).numpy().astype(np.float32).copy()
    hypothetical[~np.isfinite(hypothetical)] = 0.0
    t1 = time.perf_counter()
    if np.any(one * hypothetical):
        if "nearest_neighbors_to_compute" not in options:
            options["nearest_neighbors_to_compute"] = _neighbours(one, hypothetical, options)
        try:
            positive, negative = tfmodisco.TFMoDISco(one, hypothetical, **options)
        except ValueError as error:
            if "NaN" not in str(error):
                raise
            raise ValueError(
                "TF-MoDISco could not score its clusters (NaN in its merge step): typically too few seqlets, or "
                "seqlets that are all alike; try more sequences, a smaller window= or nearest_neighbors_to_compute="
            ) from error
    else:
        positive, negative = None, None  # the model ignores every base: nothing to find
    fields = _patterns(positive, negative, length, trim)
    if not fields["names"]:
        warn("TF-MoDISco found no pattern: too few seqlets stood out from the null, or none clustered")
    params = {
        "contributions": contributions if isinstance(contributions, str) else "given",
        "trim": trim,
        "seed": seed,
        "device": str(adapter.device),
        "output": adapter.output.name,
        "seconds_contributions": t1 - t0,
        "seconds": time.perf_counter() - t0,
        **{k: v for k, v in options.items() if isinstance(v, (int, float, str, bool))},
    }
    return DiscoveryResult(**fields, ids=ids, errors=errors, length=length, params=params)


def _neighbours(one: np.ndarray, hypothetical: np.ndarray, options: dict) -> int:
    """Nearest neighbours TF-MoDISco compares each seqlet with: 500, or half the seqlets of the smaller sign.

    Asking for about as many neighbours as there are seqlets gives NaN affinities
    in its clustering; seqlets are called here as TF-MoDISco calls them to count them.
    """
    from modiscolite import extract_seqlets

    window, flank = options["sliding_window_size"], options["flank_size"]
    contrib = (one * hypothetical).sum(axis=2)
    coords, threshold = extract_seqlets.extract_seqlets(
        attribution_scores=contrib,
        window_size=window,
        flank=flank,
        suppress=int(0.5 * window) + flank,
        target_fdr=options["target_seqlet_fdr"],
        min_passing_windows_frac=options.get("min_passing_windows_frac", 0.03),
        max_passing_windows_frac=options.get("max_passing_windows_frac", 0.2),
        weak_threshold_for_counting_sign=options.get("weak_threshold_for_counting_sign", 0.8),
    )
    counts = {1: 0, -1: 0}
    for c in coords:
        side = int(0.5 * (c.end - c.start - window))
        total = contrib[c.example_idx, c.start + side : c.end - side].sum()
        if abs(total) > threshold:
            counts[1 if total > 0 else -1] += 1
    usable = [n for n in counts.values() if n > options["min_metacluster_size"]]
    return int(max(2, min([500] + [n // 2 for n in usable])))


def _patterns(positive, negative, length: int, trim: float) -> dict:
    """The fields of a DiscoveryResult from TF-MoDISco's positive and negative patterns."""
    out = {k: [] for k in ("names", "signs", "ppms", "contributions", "hypothetical", "cores")}
    seqlets = {k: [] for k in ("pattern", "sequence", "start", "end", "strand")}
    for prefix, sign, patterns in (("pos", 1, positive), ("neg", -1, negative)):
        for j, pattern in enumerate(patterns or []):
            index = len(out["names"])
            out["names"].append(f"{prefix}_{j}")
            out["signs"].append(sign)
            cwm = torch.as_tensor(np.asarray(pattern.contrib_scores, dtype=np.float32)).T.contiguous()
            out["ppms"].append(torch.as_tensor(np.asarray(pattern.sequence, dtype=np.float32)).T.contiguous())
            out["contributions"].append(cwm)
            out["hypothetical"].append(torch.as_tensor(np.asarray(pattern.hypothetical_contribs, dtype=np.float32)).T.contiguous())
            out["cores"].append(core_columns(cwm, trim=trim))
            for seqlet in pattern.seqlets:
                seqlets["pattern"].append(index)
                seqlets["sequence"].append(int(seqlet.example_idx))
                seqlets["start"].append(max(int(seqlet.start), 0))
                seqlets["end"].append(min(int(seqlet.end), length))
                seqlets["strand"].append("-" if seqlet.is_revcomp else "+")
    out["seqlets"] = seqlets
    return out


def core_columns(cwm, *, trim: float = TRIM) -> list:
    """``[start, end]`` of the columns of a (4, K) contribution matrix with at least ``trim`` of its largest column's total |contribution|.

    Examples
    --------
    >>> core_columns(torch.tensor([[0.0, 1.0, 0.1, 0.5, 0.0]] * 4))
    [1, 4]
    """
    score = torch.as_tensor(cwm).abs().sum(dim=0)
    if score.numel() == 0 or not bool(score.max() > 0):
        return [0, int(score.numel())]
    passing = torch.nonzero(score >= trim * score.max()).flatten()
    return [int(passing.min()), int(passing.max()) + 1]


__all__ = ["discover", "hypothetical_contributions", "sequence_records", "core_columns", "CONTRIBUTIONS", "TRIM"]
