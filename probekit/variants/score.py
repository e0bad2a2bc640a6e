"""Scoring variants: the model's score of each REF and ALT window, their difference, and its context.

Every score is the adapter's selected output (``adapter.score``), so a model
wrapped with ``strands="both"`` is scored on both strands. Windows are built by
:func:`~probekit.variants.variant_windows`; variants whose windows are the same
window share one reference pass.

How each variant is scored, with ``context=True`` (the default):

* SNVs go through exact saturation mutagenesis of their REF window
  (:func:`probekit.search.saturation_mutagenesis`, incremental where the model
  allows): the ALT score is the reference score plus the ISM effect at the
  variant's position and base. The same scan gives every single substitution of
  the window, against which ``|delta|`` is ranked (``context`` says
  ``all 3L' single substitutions of the REF window``, L' its positions that are not N).
* MNVs, insertions, deletions and indels are scored by a forward pass of their
  ALT window and compared with ``n_draws`` random substitutions of the same
  number of bases (``n_bases``) in the REF window
  (:func:`probekit.search.random_substitutions`).

With ``context=False`` no ranking is computed: SNVs get their REF and ALT
scores from one pass of the REF window and a local recomputation around the
variant (the incremental engine of saturation mutagenesis, where the model
allows), the other variants from one forward pass of each distinct window.

The context columns count the variant in its set: ``context_rank`` is
``1 + #(|change| > |delta|)``, ``context_percentile`` is
``100 * (1 + #(|change| <= |delta|)) / (1 + n)`` and ``p_value`` is
``(1 + #(|change| >= |delta|)) / (1 + n)``, over the ``n`` other changes of the
set; changes within a relative ``1e-5`` of ``|delta|`` count as equal to it.

Records the model cannot score (it raises on a window, or returns NaN or
infinity) become error rows in the model's own words; the others are scored.

Examples
--------
>>> import os, tempfile
>>> import pandas as pd
>>> from probekit import SequenceModel
>>> from probekit.testing import MotifCounter
>>> from probekit.variants import Genome
>>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
>>> _ = open(path, "w").write(">chr1\\nTTTTTTGATATCTTTTTTTT\\n")
>>> adapter = SequenceModel(MotifCounter("GATATC"), output=0, device="cpu")
>>> variants = pd.DataFrame({"chrom": ["chr1"] * 3, "pos": [8, 2, 9], "ref": ["A", "T", "T"], "alt": ["C", "A", "TG"]})
>>> result = score_variants(adapter, variants, Genome(path), length=12)
>>> result.to_frame()[["kind", "ref_score", "alt_score", "delta"]].values.tolist()
[['SNV', 1.0, 0.0, -1.0], ['SNV', 0.0, 0.0, 0.0], ['insertion', 1.0, 0.0, -1.0]]
>>> result.to_frame()["context"][0]
'all 36 single substitutions of the REF window'
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pandas as pd
import torch

from ..adapters import ModelCallError, ModelOutputError, describe_failure
from ..results import TIE_RTOL
from .io import VARIANT_COLUMNS, iter_variants, variant_label
from .result import VARIANT_FIELDS, VariantResult
from .windows import allele_change, resolve_offset, variant_windows

NUMBER_COLUMNS = ("ref_score", "alt_score", "delta", "context_rank", "context_percentile", "p_value")


def context_stats(abs_delta: np.ndarray, changes: np.ndarray, *, counted: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank, percentile and empirical p-value of ``|delta|`` among the sizes of other changes.

    Parameters
    ----------
    abs_delta : numpy.ndarray of shape (M,)
        ``|delta|`` of M variants that share one context set.
    changes : numpy.ndarray of shape (C,)
        ``|change|`` of the set's changes; NaN ones are left out.
    counted : bool
        The set already holds each variant's own change (a single substitution
        among all of its window's): it is then left out once, so that each
        variant is counted in the set exactly once.

    Returns
    -------
    rank, percentile, p_value : numpy.ndarray of shape (M,), float64
        ``1 + #(c > |d|)``, ``100 (1 + #(c <= |d|)) / (1 + n)`` and
        ``(1 + #(c >= |d|)) / (1 + n)`` over the ``n`` other changes, a change
        within ``1e-5 |d|`` of ``|d|`` counting as equal; NaN where ``n`` is 0.

    Examples
    --------
    >>> rank, percentile, p = context_stats(np.array([2.0, 0.5]), np.array([0.1, 1.0, 3.0]))
    >>> rank.tolist(), percentile.tolist(), p.tolist()
    ([2.0, 3.0], [75.0, 50.0], [0.5, 0.75])
    """
    abs_delta = np.asarray(abs_delta, dtype=np.float64)
    changes = np.sort(np.asarray(changes, dtype=np.float64)[~np.isnan(changes)])
    tolerance = TIE_RTOL * abs_delta
    greater = changes.size - np.searchsorted(changes, abs_delta + tolerance, side="right")
    at_most = np.searchsorted(changes, abs_delta + tolerance, side="right")
    at_least = changes.size - np.searchsorted(changes, abs_delta - tolerance, side="left")
    n = changes.size
    if counted:
        at_most, at_least, n = at_most - 1, at_least - 1, n - 1
    rank = (1 + greater).astype(np.float64)
    percentile = 100.0 * (1 + at_most) / (1 + n)
    p_value = (1 + at_least) / (1 + n)
    empty = (n <= 0) | np.isnan(abs_delta)
    return tuple(np.where(empty, math.nan, x) for x in (rank, percentile, p_value))


def _unique(values: list) -> tuple[list, np.ndarray]:
    """Distinct values in first-seen order and the index of each value among them."""
    index: dict = {}
    inverse = np.array([index.setdefault(v, len(index)) for v in values], dtype=np.int64)
    return list(index), inverse


class _Chunk:
    """The per-variant columns of one chunk of windows, filled in as the passes finish."""

    def __init__(self, windows: pd.DataFrame):
        self.windows = windows
        n = len(windows)
        self.numbers = {name: np.full(n, math.nan) for name in NUMBER_COLUMNS}
        self.extra: dict[str, np.ndarray | list] = {}  # further columns, in the order they are shown
        self.context: list = [None] * n
        self.error: list = list(windows["error"])
        self.labels = [variant_label(c, p if p is not pd.NA else None, r, a)
                       for c, p, r, a in zip(windows["chrom"], windows["pos"], windows["ref"], windows["alt"])]  # fmt: skip

    def fail(self, rows, message: str) -> None:
        for i in rows:
            self.error[i] = f"{self.labels[i]}: {message}"
            for name in NUMBER_COLUMNS:
                self.numbers[name][i] = math.nan
            for values in self.extra.values():
                values[i] = math.nan if isinstance(values, np.ndarray) else None
            self.context[i] = None

    def good(self) -> np.ndarray:
        return np.array([e is None for e in self.error], dtype=bool)


def _screen(adapter, sequences: list[str]) -> tuple[np.ndarray, list]:
    """Scores (float64) and problems of distinct windows, one forward pass each."""
    scores, problems = adapter.screen(adapter.encode(sequences))
    return scores.detach().double().cpu().numpy(), problems


def _score_refs(adapter, chunk: _Chunk, rows: np.ndarray) -> None:
    windows = list(chunk.windows["ref_window"].iloc[rows])
    distinct, inverse = _unique(windows)
    scores, problems = _screen(adapter, distinct)
    chunk.numbers["ref_score"][rows] = scores[inverse]
    for u, problem in enumerate(problems):
        if problem is not None:
            chunk.fail(rows[inverse == u], f"the model cannot score the REF window: {problem}")


def _ism_sites(adapter, chunk: _Chunk, rows: np.ndarray, offset: int, length: int) -> dict[int, tuple[int, int]]:
    """Rows that saturation mutagenesis scores: SNVs of two bases of the alphabet; row -> (position, base index)."""
    alphabet = adapter.alphabet
    refs, alts = chunk.windows["ref"].tolist(), chunk.windows["alt"].tolist()
    sites = {}
    for i in rows:
        ref, alt = refs[i], alts[i]
        change = allele_change(ref, alt)
        if change.kind != "SNV" or offset + change.start >= length:
            continue
        if ref[change.start] in alphabet and alt[change.start] in alphabet:
            sites[int(i)] = (offset + change.start, alphabet.index(alt[change.start]))
    return sites


def _ism(adapter, windows: list[str], *, progress: bool) -> list:
    """Saturation mutagenesis of each window: per window ``(effects (L, A), ref_index (L,))``, or None where the
    model raised on one of its mutants (a batch that raises is retried window by window)."""
    from ..search.discrete import saturation_mutagenesis

    try:
        ism = saturation_mutagenesis(adapter, adapter.encode(windows), progress=progress)
    except ModelOutputError:
        raise
    except ModelCallError:
        if len(windows) == 1:
            return [None]
        return [scan for window in windows for scan in _ism(adapter, [window], progress=False)]
    effects = ism.effects.double().numpy()
    ref_index = torch.as_tensor(ism.params["ref_index"]).numpy()
    return list(zip(effects, ref_index))


def critical_positions(effects: np.ndarray, ref_index: np.ndarray, *, alpha: float = 0.05, max_gap: int = 2,
                       min_length: int = 3) -> np.ndarray:
    """Positions of a window that lie in a critical region, as :func:`probekit.probe` defines them.

    A position is critical when its importance (largest ``|effect|`` over its
    substitutions) reaches both the ``1 - alpha`` quantile of all single-substitution
    effects of the window and the window's outlier floor; critical positions are
    merged into regions across gaps of ``max_gap`` and widened to half their peak.

    Parameters
    ----------
    effects : numpy.ndarray of shape (L, A)
        ISM effects of the window.
    ref_index : numpy.ndarray of shape (L,)
        Reference base index of each position (-1 at N).

    Returns
    -------
    numpy.ndarray of shape (L,), bool

    Examples
    --------
    >>> effects = np.zeros((30, 4)); effects[10:14, 1:] = -5.0; effects[:, 1:] += 0.01 * np.arange(30)[:, None] % 0.07
    >>> np.flatnonzero(critical_positions(effects, np.zeros(30, dtype=int))).tolist()
    [10, 11, 12, 13]
    """
    from ..report.tables import critical_mask, find_regions, null_threshold, outlier_floor, position_importance

    E = torch.from_numpy(np.nan_to_num(np.asarray(effects, dtype=np.float64)))[None]
    ref = torch.from_numpy(np.asarray(ref_index))
    alternatives = (torch.arange(E.shape[2])[None, :] != ref[:, None]) & (ref >= 0)[:, None]
    importance = position_importance(E)
    threshold = torch.maximum(null_threshold(E, alternatives[None], alpha=alpha), outlier_floor(importance, alpha=alpha))
    mask = critical_mask(importance, threshold)[0]
    out = np.zeros(E.shape[1], dtype=bool)
    for start, end in find_regions(mask, max_gap=max_gap, min_length=min_length, importance=importance[0]):
        out[start:end] = True
    return out


def _score_snvs_by_ism(adapter, chunk: _Chunk, sites: dict, *, progress: bool) -> list[int]:
    """ALT scores and context of SNVs from the ISM of their REF windows; returns the rows left to forward passes."""
    rows = np.array(sorted(sites), dtype=np.int64)
    distinct, inverse = _unique(list(chunk.windows["ref_window"].iloc[rows]))
    left = []
    for u, scan in enumerate(_ism(adapter, distinct, progress=progress)):
        members = rows[inverse == u]
        if scan is None:  # a mutant the model raises on: forward passes name each variant's own problem
            left.extend(members.tolist())
            continue
        effects, ref_index = scan
        own = np.array([effects[sites[i][0], sites[i][1]] for i in members])
        scored = members[~np.isnan(own)]
        left.extend(members[np.isnan(own)].tolist())  # no finite score: forward passes say why in the model's words
        if scored.size == 0:
            continue
        delta = own[~np.isnan(own)]
        chunk.numbers["delta"][scored] = delta
        chunk.numbers["alt_score"][scored] = chunk.numbers["ref_score"][scored] + delta
        mutated = (ref_index[:, None] >= 0) & (np.arange(effects.shape[1]) != ref_index[:, None])
        changes = np.abs(effects[mutated])
        rank, percentile, p = context_stats(np.abs(delta), changes, counted=True)
        chunk.numbers["context_rank"][scored] = rank
        chunk.numbers["context_percentile"][scored] = percentile
        chunk.numbers["p_value"][scored] = p
        text = f"all {int((~np.isnan(changes)).sum())} single substitutions of the REF window"
        critical = critical_positions(effects, ref_index)
        for i in scored:
            chunk.context[i] = text
            chunk.extra["in_critical_region"][i] = bool(critical[sites[i][0]])
    return left


def _score_snvs_locally(adapter, chunk: _Chunk, sites: dict) -> np.ndarray:
    """REF and ALT scores of SNVs from one pass per REF window plus a local recomputation around each variant.

    The incremental engine scores every base at the variant's position from the
    REF window's cached activations; only the layers' outputs that the position
    reaches are recomputed. Returns the rows it scored (none when the model cannot
    be analysed, when it raises, or for rows with a non-finite score: forward passes
    then score them and name any problem).
    """
    from ..search.incremental import incremental_single_substitutions

    rows = np.array(sorted(sites), dtype=np.int64)
    positions = np.array([sites[i][0] for i in rows], dtype=np.int64)
    done = []
    for position in np.unique(positions):
        members = rows[positions == position]
        distinct, inverse = _unique(list(chunk.windows["ref_window"].iloc[members]))
        X = adapter.encode(distinct)
        try:
            values = incremental_single_substitutions(adapter, X, [int(position)], lambda y, r: adapter.output(y))
        except ModelOutputError:
            raise
        except ModelCallError:
            return np.array(done, dtype=np.int64)
        if values is None:
            return np.array(done, dtype=np.int64)
        values = values[:, 0].detach().double().cpu().numpy()  # (U, 4)
        ref_index = X[:, :, int(position)].argmax(dim=1).cpu().numpy()
        ref_score = values[inverse, ref_index[inverse]]
        alt_score = values[inverse, [sites[i][1] for i in members]]
        finite = np.isfinite(ref_score) & np.isfinite(alt_score)
        kept = members[finite]
        chunk.numbers["ref_score"][kept] = ref_score[finite]
        chunk.numbers["alt_score"][kept] = alt_score[finite]
        chunk.numbers["delta"][kept] = alt_score[finite] - ref_score[finite]
        done.extend(kept.tolist())
    return np.array(done, dtype=np.int64)


def _score_alts(adapter, chunk: _Chunk, rows: np.ndarray) -> np.ndarray:
    """ALT scores and deltas by forward passes; returns the rows the model scored."""
    distinct, inverse = _unique(list(chunk.windows["alt_window"].iloc[rows]))
    scores, problems = _screen(adapter, distinct)
    chunk.numbers["alt_score"][rows] = scores[inverse]
    chunk.numbers["delta"][rows] = scores[inverse] - chunk.numbers["ref_score"][rows]
    bad = np.array([problems[u] is not None for u in inverse], dtype=bool)
    for u, problem in enumerate(problems):
        if problem is not None:
            chunk.fail(rows[inverse == u], f"the model cannot score the ALT window: {problem}")
    return rows[~bad]


def _random_context(adapter, chunk: _Chunk, rows: np.ndarray, *, n_draws: int, seed: int, progress: bool) -> None:
    """Compare each variant with random substitutions of its ``n_bases`` in its REF window."""
    from ..search.baseline import random_substitutions

    ks = chunk.windows["n_bases"].iloc[rows].astype(int).to_numpy()
    for k in np.unique(ks):
        members = rows[ks == k]
        distinct, inverse = _unique(list(chunk.windows["ref_window"].iloc[members]))
        names = [chunk.windows["id"].iat[members[np.argmax(inverse == u)]] for u in range(len(distinct))]
        try:
            null = random_substitutions(adapter, adapter.encode(distinct), k=int(k), n_draws=n_draws, seed=seed, ids=names,
                                        progress=progress)  # fmt: skip
        except ModelOutputError:
            raise
        except ModelCallError as error:
            text = f"none: the model raised on a random {k}-base substitution of the REF window ({describe_failure(error)})"
            for i in members:
                chunk.context[i] = text
            continue
        deltas = null.deltas.double().abs().numpy()
        for u in range(len(distinct)):
            group = members[inverse == u]
            valid = int((~np.isnan(deltas[u])).sum())
            if valid == 0:
                text = f"none: no random {k}-base substitution of the REF window could be scored"
            else:
                text = f"{valid} random {k}-base substitution{'s' if valid != 1 else ''} of the REF window"
            rank, percentile, p = context_stats(np.abs(chunk.numbers["delta"][group]), deltas[u])
            chunk.numbers["context_rank"][group] = rank
            chunk.numbers["context_percentile"][group] = percentile
            chunk.numbers["p_value"][group] = p
            for i in group:
                chunk.context[i] = text


def log2_fold_change(ref: np.ndarray, alt: np.ndarray, pseudocount: float) -> np.ndarray:
    """``log2((alt + pseudocount) / (ref + pseudocount))``, NaN where a score is negative (not a count).

    Examples
    --------
    >>> log2_fold_change(np.array([3.0, 1.0, -1.0]), np.array([7.0, 0.0, 2.0]), 1.0).tolist()
    [1.0, -1.0, nan]
    """
    ref, alt = np.asarray(ref, dtype=np.float64), np.asarray(alt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log2((alt + pseudocount) / (ref + pseudocount))
    return np.where((ref < 0) | (alt < 0), math.nan, out)


def _add_outputs(adapter, chunk: _Chunk, rows: np.ndarray, outputs: list, *, log_fold_change: bool, pseudocount: float) -> None:
    """REF, ALT and delta columns of each further output, from one raw pass per distinct window."""
    n = len(chunk.windows)
    raws = {}
    for side in ("ref", "alt"):
        distinct, inverse = _unique(list(chunk.windows[f"{side}_window"].iloc[rows]))
        try:
            raw = adapter.predict(adapter.encode(distinct)) if distinct else None
        except ModelOutputError:
            raise
        except ModelCallError:  # the scores say which windows fail; these columns stay NaN
            raw = None
        raws[side] = (raw, inverse)
    for output in outputs:
        values = {}
        for side, (raw, inverse) in raws.items():
            column = np.full(n, math.nan)
            if raw is not None:
                column[rows] = output(raw).detach().double().cpu().numpy()[inverse]
            values[side] = column
        chunk.extra[f"ref:{output.name}"] = values["ref"]
        chunk.extra[f"alt:{output.name}"] = values["alt"]
        chunk.extra[f"delta:{output.name}"] = values["alt"] - values["ref"]
        if log_fold_change:
            chunk.extra[f"log2_fc:{output.name}"] = log2_fold_change(values["ref"], values["alt"], pseudocount)


def _add_motifs(chunk: _Chunk, motif_list: list, offset: int, p_threshold: float) -> None:
    """Motif gain/loss columns (:func:`~probekit.variants.motifs.motif_changes`) of the rows with windows."""
    from .motifs import MOTIF_COLUMNS, changed_spans, motif_changes

    n = len(chunk.windows)
    for name in MOTIF_COLUMNS:
        chunk.extra[name] = np.full(n, math.nan) if name.endswith(("_p", "_delta")) else [None] * n
    rows = np.flatnonzero(chunk.good())
    if rows.size == 0:
        return
    w = chunk.windows.iloc[rows]
    spans = [changed_spans(r, a, offset) for r, a in zip(w["ref"], w["alt"])]
    table = motif_changes(list(w["ref_window"]), list(w["alt_window"]), ref_spans=[s[0] for s in spans],
                          alt_spans=[s[1] for s in spans], motifs=motif_list, p_threshold=p_threshold)  # fmt: skip
    for name in MOTIF_COLUMNS:
        values = chunk.extra[name]
        for i, value in zip(rows, table[name]):
            values[i] = value


def _score_chunk(adapter, windows: pd.DataFrame, *, offset, length, context, n_draws, seed, progress, annotations) -> _Chunk:
    chunk = _Chunk(windows)
    if context:
        chunk.extra["in_critical_region"] = [None] * len(windows)
    rows = np.flatnonzero(chunk.good())
    local = np.zeros(0, dtype=np.int64)
    if not context and rows.size:
        sites = _ism_sites(adapter, chunk, rows, offset, length)
        local = _score_snvs_locally(adapter, chunk, sites) if sites else local
        rows = np.setdiff1d(rows, local)
    if rows.size:
        _score_refs(adapter, chunk, rows)
    rows = np.setdiff1d(np.flatnonzero(chunk.good()), local)
    explicit = rows
    if context and rows.size:
        sites = _ism_sites(adapter, chunk, rows, offset, length)
        left = _score_snvs_by_ism(adapter, chunk, sites, progress=progress) if sites else []
        explicit = np.array(sorted(set(rows.tolist()) - set(sites) | set(left)), dtype=np.int64)
    if explicit.size:
        scored = _score_alts(adapter, chunk, explicit)
        if context and scored.size:
            _random_context(adapter, chunk, scored, n_draws=n_draws, seed=seed, progress=progress)
    if annotations["log_fold_change"]:
        chunk.extra["log2_fc"] = log2_fold_change(chunk.numbers["ref_score"], chunk.numbers["alt_score"],
                                                  annotations["pseudocount"])  # fmt: skip
    if annotations["outputs"]:
        _add_outputs(adapter, chunk, np.flatnonzero(chunk.good()), annotations["outputs"],
                     log_fold_change=annotations["log_fold_change"], pseudocount=annotations["pseudocount"])  # fmt: skip
    if annotations["motifs"]:
        _add_motifs(chunk, annotations["motifs"], offset, annotations["motif_p"])
    return chunk


def _chunks(variants, chunk_size: int):
    if isinstance(variants, pd.DataFrame) and set(VARIANT_COLUMNS) <= set(variants.columns):
        for start in range(0, len(variants), chunk_size):
            yield variants.iloc[start : start + chunk_size].reset_index(drop=True)
        return
    yield from iter_variants(variants, chunk_size=chunk_size)


def _progress(iterable, progress: bool, total=None):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="variants", unit="chunk", total=total, leave=False)


def score_variants(
    adapter,
    variants,
    genome,
    *,
    length: int,
    offset: int | None = None,
    context: bool = True,
    n_draws: int = 100,
    seed: int = 0,
    chunk_size: int = 1024,
    motifs=False,
    motif_p: float = 1e-5,
    outputs=None,
    log_fold_change: bool = False,
    pseudocount: float = 1.0,
    chrom_aliases: dict | None = None,
    progress: bool = False,
) -> VariantResult:
    """Score each variant's REF and ALT windows with the model: ``delta = alt - ref`` and how it ranks.

    Parameters
    ----------
    adapter : SequenceModel
        Its selected score is compared; ``strands="both"`` averages both strands.
    variants : pandas.DataFrame, str or Path
        Rows of :func:`~probekit.variants.read_variants`, a variant table, or a
        VCF/BCF or table path (read chunk by chunk, never whole).
    genome : Genome, str or Path
        The reference genome (a path is opened, and closed at the end).
    length : int
        The model's input length L.
    offset : int, optional
        Window position of each variant's first REF base; default ``length // 2``.
    context : bool
        Rank each change among the single substitutions (SNVs, by saturation
        mutagenesis) or among ``n_draws`` random substitutions of as many bases
        (other variants) of its REF window. Without it, only forward passes of
        the two windows are run.
    n_draws : int
        Random substitutions per REF window for the context of MNVs and indels.
    seed : int
        Seed of the random substitutions (the same draws on any device).
    chunk_size : int
        Variants whose windows are built and scored together (memory grows with it).
    motifs : bool or list of Motif
        Add the motif gain/loss columns of :func:`~probekit.variants.motifs.motif_changes`
        (``motif_ref``, ``motif_ref_p``, ``motif_alt``, ``motif_alt_p``, ``motif_delta``,
        ``motif_change``): True scans JASPAR CORE vertebrates (``probekit[motifs]``),
        or give the matrices (e.g. ``jaspar_motifs(matrix_ids=[...])``).
    motif_p : float
        p-value at or below which a match counts as a site, for ``motif_change``.
    outputs : list of output specs, optional
        Further outputs of a multi-output model (class indices, :mod:`probekit.outputs`
        selectors): columns ``ref:<name>``, ``alt:<name>`` and ``delta:<name>`` each,
        from one forward pass of each distinct window.
    log_fold_change : bool
        Add ``log2_fc`` (and ``log2_fc:<name>`` for each further output):
        ``log2((alt + pseudocount) / (ref + pseudocount))``, for count-like outputs;
        NaN where a score is negative.
    pseudocount : float
        Added to both scores in the log-fold-change.
    chrom_aliases : dict, optional
        Variant chromosome name -> the genome's (e.g. ``{"MT": "chrM"}``), used when ``genome``
        is a path (a :class:`Genome` takes them itself).
    progress : bool
        Progress bars over chunks and scans.

    Returns
    -------
    VariantResult
        One row per variant, in input order; error rows (unreadable records,
        REF not matching the genome, windows the model cannot score) keep NaN scores.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
    >>> _ = open(path, "w").write(">chr1\\nACGTTGCAACGTACGTTGCA\\n")
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu", strands="both")
    >>> variants = pd.DataFrame({"chrom": ["chr1", "chr1"], "pos": [10, 10], "ref": ["C", "G"], "alt": ["T", "A"]})
    >>> result = score_variants(adapter, variants, path, length=10)
    >>> result.summary()["error"].tolist()
    [None, "chr1:10 G>A: REF G does not match the genome's C at chr1:10"]
    >>> float(result.p_value[0]) <= 1.0
    True
    """
    t0 = time.perf_counter()
    offset = resolve_offset(length, offset)
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    annotations = {"motifs": _motif_list(motifs), "motif_p": float(motif_p), "log_fold_change": bool(log_fold_change),
                   "pseudocount": float(pseudocount), "outputs": _output_list(outputs)}  # fmt: skip
    opened = None
    if isinstance(genome, (str, os.PathLike)):
        from .genome import Genome

        genome = opened = Genome(genome, chrom_aliases=chrom_aliases)
    elif chrom_aliases:
        raise ValueError("chrom_aliases= applies to a genome path; give them to Genome(path, chrom_aliases=...) instead")
    try:
        total = math.ceil(len(variants) / chunk_size) if isinstance(variants, pd.DataFrame) else None
        parts = []
        inner = progress and total == 1  # one chunk: its scans show progress; several: one bar over chunks
        with adapter.session():
            for part in _progress(_chunks(variants, chunk_size), progress and not inner, total):
                windows = variant_windows(part, genome, length=length, offset=offset)
                chunk = _score_chunk(adapter, windows, offset=offset, length=length, context=context, n_draws=n_draws,
                                     seed=seed, progress=inner, annotations=annotations)  # fmt: skip
                chunk.windows = windows.drop(columns=["ref_window", "alt_window"])  # the strings are no longer needed
                parts.append(chunk)
    finally:
        if opened is not None:
            opened.close()
    return _result(parts, adapter, length=length, offset=offset, context=context, n_draws=n_draws, seed=seed,
                   genome=str(genome.path), motifs=len(annotations["motifs"]), motif_p=float(motif_p),
                   outputs=[o.name for o in annotations["outputs"]], log_fold_change=bool(log_fold_change),
                   pseudocount=float(pseudocount), seconds=time.perf_counter() - t0)  # fmt: skip


def _motif_list(motifs) -> list:
    if motifs is False or motifs is None:
        return []
    if motifs is True:
        from ..motifs import jaspar_motifs

        return jaspar_motifs()
    from ..motifs import _as_motifs

    return _as_motifs(list(motifs))


def _output_list(outputs) -> list:
    from ..outputs import as_output

    if outputs is None:
        return []
    if isinstance(outputs, (int, str)) or callable(outputs):
        outputs = [outputs]
    return [as_output(o) for o in outputs]


def _plain(value):
    """A table cell as a plain Python value (None for missing), storable in a result."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def _result(parts: list[_Chunk], adapter, **params) -> VariantResult:
    numbers = {name: np.concatenate([p.numbers[name] for p in parts]) if parts else np.zeros(0) for name in NUMBER_COLUMNS}
    columns: dict[str, list] = {name: [] for name in VARIANT_FIELDS}
    extra: dict[str, list] = {}
    for part in parts:
        for name in part.extra:
            extra.setdefault(name, [])
    ids: list = []
    for part in parts:
        w = part.windows
        ids.extend(str(i) for i in w["id"])
        for name in VARIANT_FIELDS:
            if name == "context":
                columns[name].extend(part.context)
            elif name == "error":
                columns[name].extend(part.error)
            else:
                columns[name].extend(_plain(v) for v in w[name])
        for name, values in extra.items():
            values.extend(_plain(v) for v in part.extra.get(name, [None] * len(w)))
    return VariantResult(
        **{name: torch.from_numpy(values) for name, values in numbers.items()},
        ids=ids,
        variants=columns,
        extra=extra,
        params={**params, "output": adapter.output.name, "device": str(adapter.device)},
    )


__all__ = ["score_variants", "context_stats", "log2_fold_change"]
