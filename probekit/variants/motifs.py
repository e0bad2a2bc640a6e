"""Motif gain and loss: the best matrix match over each variant in its REF and its ALT window.

For each variant, every matrix is scored (log2-odds, both strands, as
:func:`probekit.motifs.scan`) at every placement that overlaps the bases the
variant changes: the changed REF bases in the REF window, the changed ALT bases
in the ALT window (for an insertion, placements that span the insertion point;
for a deletion, those that span the junction the deletion makes). The best
match of each window is the matrix with the smallest p-value (exact, from the
matrix's score distribution) over those placements. ``motif_delta`` is how much
the REF's best matrix loses (negative) or gains in its best overlapping score
when the ALT is put in, in bits (log-odds summed in steps of 0.05 bit per column,
the grid the p-values are exact on). A variant is a ``loss`` when the REF's best match
passes ``p_threshold`` and the same matrix no longer does in ALT, and a ``gain``
when the ALT's best match passes it and that matrix did not in REF.

Examples
--------
>>> from probekit.motifs import Motif
>>> ctcf_like = Motif.from_consensus("CCGCGAGGGGCA", name="toy")
>>> ref = "TTTTTTCCGCGAGGGGCATTTTTT"
>>> alt = ref[:10] + "TTT" + ref[13:]
>>> table = motif_changes([ref], [alt], ref_spans=[(10, 13)], alt_spans=[(10, 13)], motifs=[ctcf_like])
>>> table[["motif_ref", "motif_change"]].values.tolist()
[['toy', 'loss']]
>>> round(float(table["motif_delta"][0]), 1) < -3
True
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

MOTIF_COLUMNS = ("motif_ref", "motif_ref_p", "motif_alt", "motif_alt_p", "motif_delta", "motif_change")
_CODES = np.full(256, 4, dtype=np.int64)
for _i, _base in enumerate("ACGT"):
    _CODES[ord(_base)] = _CODES[ord(_base.lower())] = _i
_SUB_BATCH = 256  # windows gathered at once: bounds memory at 256 x (sum of K^2 over the matrices)


def _local(windows: list[str], spans: list[tuple[int, int]], kmax: int, width: int) -> np.ndarray:
    """Base codes (B, kmax - 1 + width + kmax - 1) of each window around its span (0-3 ACGT, 4 anything else).

    The span's first base sits at local ``kmax - 1``; bases outside the window read as N.
    """
    size = width + 2 * (kmax - 1)
    codes = np.full((len(windows), size), 4, dtype=np.int64)
    for i, (window, (start, _)) in enumerate(zip(windows, spans)):
        first = start - (kmax - 1)
        raw = np.frombuffer(window.encode("ascii", "replace"), dtype=np.uint8)
        lo, hi = max(first, 0), min(first + size, len(raw))
        if hi > lo:
            codes[i, lo - first : hi - first] = _CODES[raw[lo:hi]]
    return codes


@functools.lru_cache(maxsize=64)
def _placements(lengths: tuple, width: int, kmax: int) -> tuple:
    """Every placement overlapping a span of ``width`` bases at local ``kmax - 1``, longest matrices first.

    A placement of a matrix of length K at local ``o`` overlaps the span ``[s, s + width)``
    when ``s - K < o < s + width`` (for ``width == 0``, an insertion point or a junction:
    ``s - K < o < s``, a placement with bases on both sides). Returns the matrix (P,)
    and start (P,) of each placement, sorted so that the placements a column ``j``
    reaches (``K > j``) come first, how many that is for each column (Kmax,), and the
    order that puts the placements back by matrix.
    """
    s = kmax - 1
    motif = np.array([m for m, k in enumerate(lengths) for _ in range(s - k + 1, s + max(width, 0))], dtype=np.int64)
    start = np.array([o for k in lengths for o in range(s - k + 1, s + max(width, 0))], dtype=np.int64)
    k = np.asarray(lengths, dtype=np.int64)[motif]
    order = np.argsort(-k, kind="stable")
    reached = np.array([(k > j).sum() for j in range(kmax)], dtype=np.int64)
    return motif[order], start[order], reached, np.argsort(order, kind="stable")


def _best_grid(scanner, codes: np.ndarray, width: int) -> np.ndarray:
    """Best grid score per window and matrix over placements that overlap the span, both strands: (B, M).

    The grid score (log-odds in whole steps, as the exact p-values use) is summed
    column by column over only the placements that can touch the span, far fewer
    than a convolution over the whole window would score.
    """
    kmax = int(scanner.W.shape[2])
    n_motifs = len(scanner.motifs)
    motif, start, reached, by_motif = _placements(tuple(scanner.lengths.tolist()), width, kmax)
    first = np.searchsorted(motif[by_motif], np.arange(n_motifs))  # each matrix's first placement, back in order
    best = None
    for _, grid in scanner.stacks.values():  # (M, 5, Kmax): row 4, an N, reads 0
        flat = np.round(grid).astype(np.int32).ravel()
        total = np.zeros((codes.shape[0], motif.size), dtype=np.int32)
        for j, n in enumerate(reached.tolist()):
            if n == 0:
                break
            total[:, :n] += flat.take((motif[:n] * 5 * kmax + j) + codes[:, start[:n] + j] * kmax)
        per_motif = np.maximum.reduceat(total[:, by_motif], first, axis=1)
        best = per_motif if best is None else np.maximum(best, per_motif)
    return best.astype(np.int64)


def _scan_windows(scanner, windows: list[str], spans: list[tuple[int, int]]) -> np.ndarray:
    """Best overlapping grid score per window and matrix: (B, M), int64."""
    kmax = int(scanner.W.shape[2])
    out = np.zeros((len(windows), len(scanner.motifs)), dtype=np.int64)
    widths = np.array([max(e - s, 0) for s, e in spans], dtype=np.int64)
    for width in np.unique(widths):
        rows = np.flatnonzero(widths == width)
        for first in range(0, len(rows), _SUB_BATCH):
            part = rows[first : first + _SUB_BATCH]
            codes = _local([windows[i] for i in part], [spans[i] for i in part], kmax, int(width))
            out[part] = _best_grid(scanner, codes, int(width))
    return out


def _p_values(scanner, grid: np.ndarray) -> np.ndarray:
    """Exact p-value of each (window, matrix) best grid score: (B, M)."""
    lengths = scanner.lengths.numpy()
    n, m = grid.shape
    motif = np.broadcast_to(np.arange(m), (n, m)).reshape(-1)
    p = scanner.tails.p_values(motif, np.zeros(n * m, dtype=np.int64), lengths[motif], grid.reshape(-1))
    return p.reshape(n, m)


def _label(motif) -> str:
    return f"{motif.name} {motif.matrix_id}".strip()


def _best(p: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the best matrix of each row (N,): smallest p, then highest score, then first."""
    return np.lexsort((-score, p), axis=-1)[:, 0]


def changed_spans(ref: str, alt: str, offset: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where the bases a variant changes sit in its REF and ALT windows: ``[start, end)`` in each.

    The alleles are trimmed of the bases they share at the start and end (for
    equal lengths, from the first to the last differing base); an empty span is an
    insertion point (REF) or the junction a deletion leaves (ALT).

    Examples
    --------
    >>> changed_spans("A", "G", 10), changed_spans("ACG", "TCA", 10)
    (((10, 11), (10, 11)), ((10, 13), (10, 13)))
    >>> changed_spans("A", "ATT", 10), changed_spans("CTTA", "CA", 10)
    (((11, 11), (11, 13)), ((11, 13), (11, 11)))
    """
    from .windows import shared_ends

    prefix, suffix = shared_ends(ref, alt)
    start = offset + prefix
    return (start, offset + len(ref) - suffix), (start, offset + len(alt) - suffix)


def motif_changes(
    ref_windows: list[str],
    alt_windows: list[str],
    *,
    ref_spans: list[tuple[int, int]],
    alt_spans: list[tuple[int, int]],
    motifs,
    p_threshold: float = 1e-5,
    pseudocount: float = 0.8,
) -> pd.DataFrame:
    """The best matrix match over each variant in REF and in ALT, and what the variant does to it.

    Parameters
    ----------
    ref_windows, alt_windows : list of str, length N
        The REF and ALT windows (any lengths).
    ref_spans, alt_spans : list of (int, int), length N
        ``[start, end)`` of the changed bases in each window (``start == end``: an
        insertion point in REF, a deletion junction in ALT).
    motifs : list of Motif, Bio.motifs motifs or consensus strings
    p_threshold : float
        A match is a site when its p-value is at most this. With the ~1,000
        matrices of a JASPAR collection, the best match over a variant often
        reaches 1e-4 by chance alone, hence 1e-5 by default.
    pseudocount : float
        Added to the counts before the log-odds, as in :func:`probekit.motifs.scan`.

    Returns
    -------
    pandas.DataFrame with N rows and columns :data:`MOTIF_COLUMNS`
        ``motif_ref``/``motif_alt`` the best matrix ("name matrix_id") in REF/ALT and
        ``motif_ref_p``/``motif_alt_p`` its p-value; ``motif_delta`` the change, in
        bits, of the REF's best matrix's best overlapping score; ``motif_change``
        ``"loss"``, ``"gain"``, ``"loss+gain"`` or ``""``.

    Examples
    --------
    >>> table = motif_changes(["AAAGATAAAA"], ["AAAGCTAAAA"], ref_spans=[(4, 5)], alt_spans=[(4, 5)], motifs=["GATA"])
    >>> table[["motif_ref", "motif_alt", "motif_change"]].values.tolist()
    [['GATA', 'GATA', '']]
    >>> float(table["motif_ref_p"][0]) < float(table["motif_alt_p"][0])
    True
    """
    from ..motifs import _P_STEP, _as_motifs, _Scanner

    n = len(ref_windows)
    if not (len(alt_windows) == len(ref_spans) == len(alt_spans) == n):
        raise ValueError("motif_changes needs as many ALT windows and spans as REF windows")
    scanner = _Scanner(_as_motifs(motifs), pseudocount)
    ref_grid = _scan_windows(scanner, list(ref_windows), list(ref_spans))
    alt_grid = _scan_windows(scanner, list(alt_windows), list(alt_spans))
    ref_p, alt_p = _p_values(scanner, ref_grid), _p_values(scanner, alt_grid)
    ref_score, alt_score = ref_grid * _P_STEP, alt_grid * _P_STEP
    out = {name: [] for name in MOTIF_COLUMNS}
    rows = np.arange(n)
    if n == 0:
        return pd.DataFrame(out, columns=list(MOTIF_COLUMNS))
    best_ref = _best(ref_p, ref_score)
    best_alt = _best(alt_p, alt_score)
    labels = [_label(m) for m in scanner.motifs]
    for i, r, a in zip(rows, best_ref, best_alt):
        changes = []
        if ref_p[i, r] <= p_threshold and alt_p[i, r] > p_threshold:
            changes.append("loss")
        if alt_p[i, a] <= p_threshold and ref_p[i, a] > p_threshold:
            changes.append("gain")
        out["motif_ref"].append(labels[r])
        out["motif_ref_p"].append(float(ref_p[i, r]))
        out["motif_alt"].append(labels[a])
        out["motif_alt_p"].append(float(alt_p[i, a]))
        out["motif_delta"].append(float(alt_score[i, r] - ref_score[i, r]))
        out["motif_change"].append("+".join(changes))
    return pd.DataFrame(out, columns=list(MOTIF_COLUMNS))


__all__ = ["motif_changes", "changed_spans", "MOTIF_COLUMNS"]
