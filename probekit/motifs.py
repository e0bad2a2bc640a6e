"""Motif annotation: JASPAR matrices (through pyjaspar, offline) and log-odds PWM scans.

A :class:`Motif` is a position frequency matrix with a name and a JASPAR id.
:func:`scan` scores every motif at every offset of a sequence on both strands
in one batched convolution; :func:`annotate_regions` reports the best matches
that overlap each critical region of a :class:`~probekit.report.SensitivityReport`.

Examples
--------
>>> m = Motif.from_consensus("CACGTA", name="toy")
>>> hits = scan("GGTACGTGGG", [m], min_rel_score=0.99)
>>> hits[["name", "offset", "strand", "match"]].values.tolist()
[['toy', 2, '-', 'TACGTG']]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .encode.dna import one_hot

_BASES = "ACGT"
_HIT_COLUMNS = ["name", "matrix_id", "score", "rel_score", "p_value", "offset", "end", "strand", "match"]
_P_STEP = 0.05  # bits per bin of the exact score distribution


@dataclass(frozen=True, eq=False)
class Motif:
    """A position frequency matrix.

    Attributes
    ----------
    name : str
    matrix_id : str
        JASPAR id such as ``"MA0139.1"`` (empty for user motifs).
    counts : numpy.ndarray of shape (4, K)
        Counts (or frequencies) of A, C, G, T at each of the K motif positions.
    """

    name: str
    matrix_id: str
    counts: np.ndarray = field(repr=False)

    @property
    def length(self) -> int:
        return int(self.counts.shape[1])

    @property
    def consensus(self) -> str:
        return "".join(_BASES[i] for i in self.counts.argmax(axis=0))

    def log_odds(self, *, pseudocount: float = 0.8, background=(0.25, 0.25, 0.25, 0.25)) -> np.ndarray:
        """Log2-odds matrix (4, K) against ``background``, with ``pseudocount`` spread by background."""
        bg = np.asarray(background, dtype=np.float64)[:, None]
        counts = np.asarray(self.counts, dtype=np.float64)
        freq = (counts + pseudocount * bg) / (counts.sum(axis=0, keepdims=True) + pseudocount)
        return np.log2(freq / bg)

    @classmethod
    def from_consensus(cls, consensus: str, *, name: str | None = None, matrix_id: str = "") -> "Motif":
        """A motif whose counts are a one-hot of ``consensus`` (20 observations per position)."""
        counts = one_hot([consensus.upper()])[0].numpy().astype(np.float64) * 20.0
        return cls(name or consensus, matrix_id, counts)

    @classmethod
    def from_biopython(cls, motif) -> "Motif":
        """Convert a ``Bio.motifs`` motif (as pyjaspar returns) to a :class:`Motif`."""
        counts = np.array([list(motif.counts[b]) for b in _BASES], dtype=np.float64)
        return cls(str(motif.name), str(getattr(motif, "matrix_id", "") or ""), counts)


def _jaspar_db(release):
    try:
        from pyjaspar import jaspardb
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('JASPAR motifs need pyjaspar: pip install "probekit[motifs]"') from error
    return jaspardb(release=release) if release else jaspardb()


@functools.lru_cache(maxsize=8)
def _fetch(collection: str, tax_group: str | None, matrix_ids: tuple | None, release: str | None) -> tuple:
    db = _jaspar_db(release)
    if matrix_ids:
        found = []
        for matrix_id in matrix_ids:
            motif = db.fetch_motif_by_id(matrix_id)
            if motif is None:
                raise ValueError(f"JASPAR has no matrix {matrix_id!r}")
            found.append(motif)
    else:
        found = db.fetch_motifs(collection=collection, tax_group=[tax_group] if tax_group else None)
    return tuple(Motif.from_biopython(m) for m in found)


def jaspar_motifs(
    collection: str = "CORE", tax_group: str | None = "vertebrates", *, matrix_ids=None, release=None
) -> list[Motif]:
    """JASPAR matrices from pyjaspar's bundled database (no network), cached per process.

    Parameters
    ----------
    collection : str
        JASPAR collection, ``"CORE"`` by default.
    tax_group : str or None
        Taxonomic group such as ``"vertebrates"``, ``"plants"``, ``"insects"``; None for all.
    matrix_ids : list of str, optional
        Fetch exactly these matrices (e.g. ``["MA0139.1"]``) instead of a collection.
    release : str, optional
        JASPAR release (pyjaspar's newest by default).

    Returns
    -------
    list of Motif

    Examples
    --------
    >>> [m.name for m in jaspar_motifs(matrix_ids=["MA0139.1"])]
    ['CTCF']
    """
    ids = tuple(matrix_ids) if matrix_ids else None
    return list(_fetch(collection, tax_group, ids, release))


def _as_motifs(motifs) -> list[Motif]:
    out = []
    for m in motifs:
        if isinstance(m, Motif):
            out.append(m)
        elif isinstance(m, str):
            out.append(Motif.from_consensus(m))
        else:
            out.append(Motif.from_biopython(m))
    if not out:
        raise ValueError("scan needs at least one motif")
    return out


def _grid(counts: np.ndarray, pseudocount: float) -> np.ndarray:
    """Log-odds rounded to whole steps of _P_STEP bits (int64, shape (4, K))."""
    return np.round(Motif("", "", counts).log_odds(pseudocount=pseudocount) / _P_STEP).astype(np.int64)


@functools.lru_cache(maxsize=4096)
def _score_tail(key: bytes, shape: tuple, pseudocount: float) -> tuple[int, np.ndarray]:
    """Exact tail P(grid score >= s) of a motif under a uniform background.

    Scores are taken on the grid of :func:`_grid` (as FIMO does), and the
    distribution of their sum over independent columns is built by convolving one
    column at a time. Returns the lowest grid score and the tail from it upwards.
    """
    grid = _grid(np.frombuffer(key, dtype=np.float64).reshape(shape), pseudocount)
    dist = np.ones(1)
    low = 0
    for column in grid.T:
        cmin = int(column.min())
        new = np.zeros(len(dist) + int(column.max()) - cmin)
        for value in column:
            shift = int(value) - cmin
            new[shift : shift + len(dist)] += 0.25 * dist
        dist, low = new, low + cmin
    return low, np.minimum(np.cumsum(dist[::-1])[::-1], 1.0)


class _Scanner:
    """Stacked log-odds of many motifs, built once and reused for every sequence."""

    def __init__(self, motifs: list[Motif], pseudocount: float):
        self.motifs = motifs
        kmax = max(m.length for m in motifs)
        W = torch.zeros(len(motifs), 4, kmax, dtype=torch.float64)
        W_rc = torch.zeros_like(W)
        G, G_rc = torch.zeros_like(W), torch.zeros_like(W)  # grid scores, for exact p-values
        for i, m in enumerate(motifs):
            grid = torch.from_numpy(_grid(np.asarray(m.counts, dtype=np.float64), pseudocount).astype(np.float64))
            G[i, :, : m.length] = grid
            G_rc[i, :, : m.length] = grid.flip(0).flip(1)
            lo = torch.from_numpy(m.log_odds(pseudocount=pseudocount))
            W[i, :, : m.length] = lo
            # Reverse strand: W_rc[b, i] = W[complement(b), K-1-i]; ACGT reversed is its complement.
            W_rc[i, :, : m.length] = lo.flip(0).flip(1)
        self.W, self.W_rc = W, W_rc
        self.G, self.G_rc = G, G_rc
        self.lengths = torch.tensor([m.length for m in motifs])
        self.best = W.max(dim=1).values.sum(dim=1)
        self.worst = W.min(dim=1).values.sum(dim=1)
        tails = [_score_tail(np.asarray(m.counts, dtype=np.float64).tobytes(), m.counts.shape, pseudocount) for m in motifs]
        self.tail_low = np.array([t[0] for t in tails])
        self.tails = np.zeros((len(motifs), max(len(t[1]) for t in tails) + 1))
        for i, (_, tail) in enumerate(tails):
            self.tails[i, : len(tail)] = tail

    def p_values(self, motif_index: np.ndarray, grid_scores: np.ndarray) -> np.ndarray:
        """P(a random uniform-background site has a grid score at least ``grid_scores``), per hit."""
        j = np.round(grid_scores).astype(np.int64) - self.tail_low[motif_index]
        j = np.clip(j, 0, self.tails.shape[1] - 1)
        return self.tails[motif_index, j]

    @staticmethod
    def _grid_scores(X: torch.Tensor, G: torch.Tensor, mi: torch.Tensor, oi: torch.Tensor) -> np.ndarray:
        """Grid scores of the kept hits only (a gather of windows, not a full scan)."""
        k = G.shape[2]
        windows = X[0].unfold(1, k, 1)  # (4, L', k)
        return (windows[:, oi].permute(1, 0, 2) * G[mi]).sum(dim=(1, 2)).numpy()

    def __call__(self, sequence: str, *, min_rel_score: float, top: int | None) -> pd.DataFrame:
        seq = sequence.upper()
        L = len(seq)
        if L == 0:
            return pd.DataFrame(columns=_HIT_COLUMNS)
        kmax = self.W.shape[2]
        X = torch.nn.functional.pad(one_hot([seq]).to(torch.float64), (0, kmax - 1))  # short motifs reach the end
        valid = torch.arange(L)[None, :] + self.lengths[:, None] <= L
        span = (self.best - self.worst).clamp_min(1e-12)[:, None]
        frames = []
        for strand, W, G in (("+", self.W, self.G), ("-", self.W_rc, self.G_rc)):
            scores = torch.nn.functional.conv1d(X, W)[0, :, :L]  # (M, L)
            rel = (scores - self.worst[:, None]) / span
            mi, oi = torch.nonzero(valid & (rel >= min_rel_score - 1e-9), as_tuple=True)
            if len(mi) == 0:
                continue
            frames.append(
                pd.DataFrame(
                    {
                        "name": [self.motifs[i].name for i in mi.tolist()],
                        "matrix_id": [self.motifs[i].matrix_id for i in mi.tolist()],
                        "score": scores[mi, oi].numpy(),
                        "rel_score": rel[mi, oi].clamp(0, 1).numpy(),
                        "p_value": self.p_values(mi.numpy(), self._grid_scores(X, G, mi, oi)),
                        "offset": oi.numpy(),
                        "end": (oi + self.lengths[mi]).numpy(),
                        "strand": strand,
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=_HIT_COLUMNS)
        hits = pd.concat(frames, ignore_index=True)
        hits["match"] = [seq[o:e] for o, e in zip(hits["offset"], hits["end"])]
        hits = hits.sort_values(["p_value", "score", "offset"], ascending=[True, False, True], kind="stable")
        if top is not None:
            hits = hits.head(top)
        return hits.reset_index(drop=True)[_HIT_COLUMNS]


def scan(
    sequence: str,
    motifs,
    *,
    min_rel_score: float = 0.8,
    top: int | None = None,
    pseudocount: float = 0.8,
) -> pd.DataFrame:
    """Log-odds PWM scan of ``sequence`` with every motif, on both strands.

    The score of a motif at an offset is the sum of its log2-odds against a
    uniform background; ``rel_score`` rescales it to [0, 1] between the motif's
    worst and best possible scores; ``p_value`` is the probability that a random
    site (uniform background) scores at least as high, from the motif's exact score
    distribution (on a grid of 0.05 bits, as FIMO computes it). Hits are ranked by
    ``p_value``, which compares motifs of different lengths fairly: a perfect
    6-mer (p = 4^-6) ranks below a good 15-mer. A hit on the ``"-"`` strand at
    ``offset`` means the reverse complement of ``sequence[offset:offset + K]``
    matches. ``N`` bases score 0.

    Parameters
    ----------
    sequence : str
    motifs : list of Motif, Bio.motifs motifs or consensus strings
    min_rel_score : float
        Keep hits with ``rel_score`` at least this.
    top : int, optional
        Keep only the ``top`` best hits (by p_value, then score).
    pseudocount : float

    Returns
    -------
    pandas.DataFrame with columns name, matrix_id, score, rel_score, p_value, offset, end, strand,
    match, sorted best (smallest p_value) first.

    Examples
    --------
    >>> scan("AAAATGACTCAAAA", ["TGACTCA"], top=1)[["offset", "strand", "rel_score"]].values.tolist()
    [[4, '+', 1.0]]
    """
    return _Scanner(_as_motifs(motifs), pseudocount)(sequence, min_rel_score=min_rel_score, top=top)


def annotate_regions(
    regions: pd.DataFrame, sequences, *, motifs, top: int = 3, min_rel_score: float = 0.8, pseudocount: float = 0.8
) -> pd.DataFrame:
    """Best motif matches overlapping each region.

    Parameters
    ----------
    regions : pandas.DataFrame
        One row per region with ``id``, ``region``, ``start``, ``end`` (end exclusive),
        as :meth:`SensitivityReport.regions` gives.
    sequences : dict of str -> str
        The sequence of each input id.
    motifs : list of Motif
        E.g. :func:`jaspar_motifs`.
    top : int
        Matches kept per region.
    min_rel_score : float

    Returns
    -------
    pandas.DataFrame with one row per match, best (smallest p_value) first: id, region,
    match_rank, name, matrix_id, score, rel_score, p_value, offset (in the input sequence),
    end, strand, match

    Examples
    --------
    >>> regions = pd.DataFrame({"id": ["s"], "region": [1], "start": [5], "end": [9]})
    >>> annotate_regions(regions, {"s": "AAAATGACTCAAAA"}, motifs=["TGACTCA"], top=1)[["name", "offset"]].values.tolist()
    [['TGACTCA', 4]]
    """
    motifs = _as_motifs(motifs)
    scanner = _Scanner(motifs, pseudocount)
    flank = max(m.length for m in motifs) - 1
    rows = []
    for region in regions.itertuples(index=False):
        seq = sequences[region.id]
        lo = max(0, int(region.start) - flank)
        hi = min(len(seq), int(region.end) + flank)
        hits = scanner(seq[lo:hi], min_rel_score=min_rel_score, top=None)
        if hits.empty:
            continue
        hits["offset"] += lo
        hits["end"] += lo
        overlap = (hits["offset"] < int(region.end)) & (hits["end"] > int(region.start))
        hits = hits[overlap].head(top).reset_index(drop=True)
        for rank, hit in enumerate(hits.itertuples(index=False), start=1):
            rows.append({"id": region.id, "region": region.region, "match_rank": rank, **hit._asdict()})
    columns = ["id", "region", "match_rank"] + _HIT_COLUMNS
    return pd.DataFrame(rows, columns=columns)


__all__ = ["Motif", "jaspar_motifs", "scan", "annotate_regions"]
