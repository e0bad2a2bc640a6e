"""Motif annotation: JASPAR matrices (through pyjaspar, offline) and log-odds PWM scans.

A :class:`Motif` is a position frequency matrix with a name, a JASPAR id and
its JASPAR TF class and family. :func:`scan` scores every motif at every offset
of a sequence on both strands in one batched convolution; :func:`annotate_regions`
ranks the matrices that match each critical region of a
:class:`~probekit.report.SensitivityReport` by p-values that do not favour long
matrices, with a q-value over the matrices tried.

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
REGION_MATCH_COLUMNS = [
    "id", "region", "match_rank", "name", "matrix_id", "score", "rel_score", "p_value", "offset", "end", "strand",
    "match", "p_region", "q_value", "n_tied", "tied_with", "coverage", "tf_class", "tf_family", "query_best",
]  # fmt: skip
_P_STEP = 0.05  # bits per bin of the exact score distribution
_UNIFORM = (0.25, 0.25, 0.25, 0.25)


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
    tf_class, tf_family : tuple of str
        JASPAR structural class and family of the factor (empty for user motifs),
        e.g. ``("Basic leucine zipper factors (bZIP)",)`` and ``("Fos-related", "Jun-related")``.
    """

    name: str
    matrix_id: str
    counts: np.ndarray = field(repr=False)
    tf_class: tuple = ()
    tf_family: tuple = ()

    @property
    def length(self) -> int:
        return int(self.counts.shape[1])

    @property
    def consensus(self) -> str:
        return "".join(_BASES[i] for i in self.counts.argmax(axis=0))

    def log_odds(self, *, pseudocount: float = 0.8, background=_UNIFORM) -> np.ndarray:
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
        return cls(
            str(motif.name),
            str(getattr(motif, "matrix_id", "") or ""),
            counts,
            _as_tuple(getattr(motif, "tf_class", None)),
            _as_tuple(getattr(motif, "tf_family", None)),
        )


def _as_tuple(value) -> tuple:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


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
    list of Motif, with JASPAR's TF class and family of each.

    Examples
    --------
    >>> [(m.name, m.tf_class) for m in jaspar_motifs(matrix_ids=["MA0139.1"])]
    [('CTCF', ('C2H2 zinc finger factors',))]
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


def base_composition(sequence: str, *, pseudocount: float = 1.0) -> tuple:
    """Strand-symmetric frequencies of A, C, G, T in ``sequence`` (``N`` ignored), with ``pseudocount`` per base.

    Both strands are scanned, so A and T (and C and G) get their mean frequency:
    a site read on the reverse strand is then as likely as on the forward one.

    Examples
    --------
    >>> base_composition("AAAC", pseudocount=0)
    (0.375, 0.125, 0.125, 0.375)
    """
    seq = sequence.upper()
    counts = np.array([seq.count(b) for b in _BASES], dtype=np.float64) + pseudocount
    return _symmetric(counts)


def _symmetric(frequencies) -> tuple:
    f = np.asarray(frequencies, dtype=np.float64)
    f = (f + f[::-1]) / 2  # ACGT reversed is its complement
    # Rounded so that sequences of nearly one composition share one cached score distribution.
    return tuple(float(x) for x in np.round(f / f.sum(), 3))


def _resolve_background(background, sequence: str) -> tuple:
    if isinstance(background, str):
        if background == "uniform":
            return _UNIFORM
        if background == "sequence":
            return base_composition(sequence)
        raise ValueError(f"background must be 'uniform', 'sequence' or four base frequencies, got {background!r}")
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or not (bg > 0).all():
        raise ValueError(f"background needs four positive frequencies of A, C, G, T, got {background!r}")
    return _symmetric(bg)


def _grid(counts: np.ndarray, pseudocount: float, background=_UNIFORM) -> np.ndarray:
    """Log-odds rounded to whole steps of _P_STEP bits (int64, shape (4, K))."""
    lo = Motif("", "", counts).log_odds(pseudocount=pseudocount, background=background)
    return np.round(lo / _P_STEP).astype(np.int64)


@functools.lru_cache(maxsize=8192)
def _score_tail(key: bytes, shape: tuple, background=_UNIFORM) -> tuple[int, np.ndarray]:
    """Exact tail P(grid score >= s) of a grid matrix (int64 bytes, ``shape`` (4, K)) for a background site.

    Scores are taken on the grid of :func:`_grid` (as FIMO and TFM-Pvalue do), and
    the distribution of their sum over independent columns is built by convolving
    one column at a time (Biopython's ScoreDistribution bins the whole score range
    into a fixed number of points and gives thresholds, not p-values). Returns the
    lowest grid score and the tail from it upwards, with a final 0 for scores above
    the best.
    """
    grid = np.frombuffer(key, dtype=np.int64).reshape(shape)
    dist = np.ones(1)
    low = 0
    for column in grid.T:
        cmin = int(column.min())
        new = np.zeros(len(dist) + int(column.max()) - cmin)
        for value, weight in zip(column, background):
            shift = int(value) - cmin
            new[shift : shift + len(dist)] += weight * dist
        dist, low = new, low + cmin
    return low, np.append(np.minimum(np.cumsum(dist[::-1])[::-1], 1.0), 0.0)


class _Tails:
    """P-values from the score tails of column ranges of many motifs (the tails are cached by :func:`_score_tail`)."""

    def __init__(self, grids: list[np.ndarray], background):
        self.grids = grids
        self.background = background
        self.stride = max(g.shape[1] for g in grids) + 1

    def p_values(self, motif: np.ndarray, a: np.ndarray, b: np.ndarray, grid_scores: np.ndarray) -> np.ndarray:
        """P(a background site scores at least ``grid_scores`` on columns a..b-1 of ``motif``), elementwise."""
        codes = ((np.asarray(motif) * self.stride + a) * self.stride + b).reshape(-1)
        scores = np.round(np.asarray(grid_scores)).astype(np.int64).reshape(-1)
        p = np.empty(len(codes))
        order = np.argsort(codes, kind="stable")
        unique, first = np.unique(codes[order], return_index=True)
        for code, lo, hi in zip(unique.tolist(), first, [*first[1:], len(codes)]):
            m, rest = divmod(code, self.stride * self.stride)
            ca, cb = divmod(rest, self.stride)
            grid = np.ascontiguousarray(self.grids[m][:, ca:cb])
            low, tail = _score_tail(grid.tobytes(), grid.shape, self.background)
            at = order[lo:hi]
            p[at] = tail[np.clip(scores[at] - low, 0, len(tail) - 1)]
        return p.reshape(np.shape(grid_scores))


class _Scanner:
    """Stacked log-odds of many motifs, built once and reused for every sequence."""

    def __init__(self, motifs: list[Motif], pseudocount: float, background=_UNIFORM):
        self.motifs = motifs
        self.background = background
        lengths = [m.length for m in motifs]
        kmax = max(lengths)
        W = torch.zeros(len(motifs), 4, kmax, dtype=torch.float64)
        G = torch.zeros_like(W)  # grid scores, for exact p-values
        for i, m in enumerate(motifs):
            counts = np.asarray(m.counts, dtype=np.float64)
            G[i, :, : m.length] = torch.from_numpy(_grid(counts, pseudocount, background).astype(np.float64))
            W[i, :, : m.length] = torch.from_numpy(m.log_odds(pseudocount=pseudocount, background=background))
        # Reverse strand: W_rc[b, i] = W[complement(b), K-1-i]; ACGT reversed is its complement.
        self.W, self.W_rc = W, _reverse_complement_padded(W, lengths)
        self.G, self.G_rc = G, _reverse_complement_padded(G, lengths)
        self.lengths = torch.tensor(lengths)
        # Row 4 reads as zero: an N base.
        self.stacks = {
            strand: (torch.nn.functional.pad(w, (0, 0, 0, 1)).numpy(), torch.nn.functional.pad(g, (0, 0, 0, 1)).numpy())
            for strand, w, g in (("+", self.W, self.G), ("-", self.W_rc, self.G_rc))
        }
        # Cumulative best and worst column scores, so any column range's bounds are one subtraction.
        self.bounds = {
            strand: tuple(
                np.pad(np.cumsum(f(w, dim=1).numpy(), axis=1), ((0, 0), (1, 0))) for f in (torch.amax, torch.amin)
            )
            for strand, w in (("+", self.W), ("-", self.W_rc))
        }
        self.tails = _Tails([G[i, :, :k].numpy().astype(np.int64) for i, k in enumerate(lengths)], background)

    def placements(self, seq: str) -> list[tuple]:
        """Scores of every whole-motif placement on both strands (a convolution, light on memory).

        Returns one tuple per strand: ``(strand, score, rel_score, grid_score)``, each of shape
        (M, L): M motifs, L offsets of ``seq``; a motif running past the end reads ``N`` there.
        """
        L = len(seq)
        kmax = self.W.shape[2]
        X = torch.nn.functional.pad(one_hot([seq]).to(torch.float64), (0, kmax - 1))  # short motifs reach the end
        best = self.W.max(dim=1).values.sum(dim=1).numpy()[:, None]
        worst = self.W.min(dim=1).values.sum(dim=1).numpy()[:, None]
        out = []
        for strand, W, G in (("+", self.W, self.G), ("-", self.W_rc, self.G_rc)):
            score = torch.nn.functional.conv1d(X, W)[0, :, :L].numpy()
            grid = torch.nn.functional.conv1d(X, G)[0, :, :L].numpy()
            out.append((strand, score, (score - worst) / np.maximum(best - worst, 1e-12), grid))
        return out

    def region_placements(
        self, seq: str, start: int, end: int, motif: np.ndarray, offset: np.ndarray, *, min_rel_score: float
    ) -> dict:
        """Scores of the given placements (motif index, offset: arrays of shape (T,)) on both strands.

        Each placement counts only its columns over ``seq[start:end]``: a motif column
        outside the region says nothing about the region, so it adds neither score nor
        evidence, and the p-value is that of the columns inside, from the distribution of
        those columns alone. Returns strand -> (score, rel_score, p_value), each (T,), with
        p = inf where ``rel_score`` is below ``min_rel_score`` (no match; nor any p-value to compute).
        """
        K = self.lengths.numpy()[motif]
        base = np.array([_BASES.find(c) for c in seq.upper()], dtype=np.int64) % 5  # N: -1 -> 4, a zero row
        a = np.maximum(start - offset, 0)  # counted columns a..b-1, in placement coordinates
        b = np.minimum(end - offset, K)
        # One entry per counted (placement, column), summed back per placement.
        n = b - a
        which = np.repeat(np.arange(len(n)), n)
        column = a[which] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        letter = base[offset[which] + column]
        out = {}
        for strand, (W, G) in self.stacks.items():
            score = np.bincount(which, W[motif[which], letter, column], minlength=len(n))
            grid = np.bincount(which, G[motif[which], letter, column], minlength=len(n))
            best, worst = self.bounds[strand]
            top = best[motif, b] - best[motif, a]
            low = worst[motif, b] - worst[motif, a]
            rel = (score - low) / np.maximum(top - low, 1e-12)
            # The reverse strand reads the motif's columns backwards: placement columns a..b-1 are K-b..K-a-1.
            ca, cb = (a, b) if strand == "+" else (K - b, K - a)
            p = np.full(len(score), np.inf)
            ok = rel >= min_rel_score - 1e-9
            p[ok] = self.tails.p_values(motif[ok], ca[ok], cb[ok], grid[ok])
            out[strand] = (score, rel, p)
        return out

    def __call__(self, sequence: str, *, min_rel_score: float, top: int | None) -> pd.DataFrame:
        seq = sequence.upper()
        L = len(seq)
        if L == 0:
            return pd.DataFrame(columns=_HIT_COLUMNS)
        lengths = self.lengths.numpy()
        valid = np.arange(L)[None, :] + lengths[:, None] <= L
        frames = []
        for strand, scores, rel, grid in self.placements(seq):
            mi, oi = np.nonzero(valid & (rel >= min_rel_score - 1e-9))
            if len(mi) == 0:
                continue
            p = self.tails.p_values(mi, np.zeros_like(mi), lengths[mi], grid[mi, oi])
            frames.append(
                pd.DataFrame(
                    {
                        "name": [self.motifs[i].name for i in mi],
                        "matrix_id": [self.motifs[i].matrix_id for i in mi],
                        "score": scores[mi, oi],
                        "rel_score": np.clip(rel[mi, oi], 0, 1),
                        "p_value": p,
                        "offset": oi,
                        "end": oi + lengths[mi],
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


def _reverse_complement_padded(W: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Reverse complement of each motif's first K columns of a zero-padded stack (M, 4, Kmax)."""
    out = torch.zeros_like(W)
    for i, k in enumerate(lengths):
        out[i, :, :k] = W[i, :, :k].flip(0).flip(1)
    return out


def scan(
    sequence: str,
    motifs,
    *,
    min_rel_score: float = 0.8,
    top: int | None = None,
    pseudocount: float = 0.8,
    background="uniform",
) -> pd.DataFrame:
    """Log-odds PWM scan of ``sequence`` with every motif, on both strands.

    The score of a motif at an offset is the sum of its log2-odds against the
    background; ``rel_score`` rescales it to [0, 1] between the motif's worst and
    best possible scores; ``p_value`` is the probability that one random site
    drawn from the background scores at least as high, from the motif's exact score
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
    background : "uniform", "sequence" or four frequencies of A, C, G, T
        Base frequencies of random sequence, for log-odds and p-values;
        ``"sequence"`` takes them from ``sequence`` itself.

    Returns
    -------
    pandas.DataFrame with columns name, matrix_id, score, rel_score, p_value, offset, end, strand,
    match, sorted best (smallest p_value) first.

    Examples
    --------
    >>> scan("AAAATGACTCAAAA", ["TGACTCA"], top=1)[["offset", "strand", "rel_score"]].values.tolist()
    [[4, '+', 1.0]]
    """
    bg = _resolve_background(background, sequence)
    return _Scanner(_as_motifs(motifs), pseudocount, bg)(sequence, min_rel_score=min_rel_score, top=top)


def _query_items(query) -> set | None:
    if query is None:
        return None
    items = [query] if isinstance(query, str) else list(query)
    if not items:
        raise ValueError("query= got an empty list")
    return {str(q).casefold() for q in items}


def matches_query(motif: Motif, query) -> bool:
    """Whether ``motif`` is one the user asked about.

    A query item names a factor (``"CTCF"``; ``"JUN"`` also matches the dimer
    ``"FOS::JUN"``), a matrix (``"MA0139.2"`` or every version, ``"MA0139"``), or a
    JASPAR TF family or class (``"C4-GATA-related"``, ``"Basic leucine zipper
    factors (bZIP)"``); case is ignored.

    Parameters
    ----------
    motif : Motif
    query : str or list of str

    Examples
    --------
    >>> m = Motif("FOS::JUN", "MA0099.4", np.ones((4, 3)), ("Basic leucine zipper factors (bZIP)",), ("Fos-related",))
    >>> [matches_query(m, q) for q in ("jun", "MA0099", "fos-related", "CTCF")]
    [True, True, True, False]
    """
    items = _query_items(query)
    names = {motif.name.casefold(), *(part.casefold() for part in motif.name.split("::"))}
    ids = {motif.matrix_id.casefold(), motif.matrix_id.split(".")[0].casefold()} - {""}
    groups = {g.casefold() for g in motif.tf_class + motif.tf_family}
    return bool(items & (names | ids | groups))


def _bh(p: np.ndarray) -> np.ndarray:
    from scipy.stats import false_discovery_control

    return false_discovery_control(p, method="bh") if len(p) else p


def region_matches(
    sequence: str,
    start: int,
    end: int,
    *,
    motifs,
    min_overlap: float = 1.0,
    min_rel_score: float = 0.8,
    pseudocount: float = 0.8,
    background="uniform",
) -> pd.DataFrame:
    """Every motif's best match over ``sequence[start:end]``, ranked by a p-value fair to all lengths.

    A placement of a K-long motif is tried when it covers the region or lies
    inside it (``min_overlap=1``; a smaller share lets it reach partly out), and
    only its columns over the region count: a long matrix can neither win on
    flanks the region leaves out nor lose on them. Each motif's best placement has
    the smallest site ``p_value``, the chance that one random site scores as high
    on those columns (exact, from their score distribution). ``p_region``
    corrects it for the n placements tried on both strands (Sidak,
    ``1 - (1 - p)^n``): the chance that random sequence of the region's length
    holds a match this good somewhere. ``q_value`` is the Benjamini-Hochberg
    q-value of ``p_region`` over all the motifs tried (motifs without a match
    count with p = 1), so a match among a thousand JASPAR matrices is judged as
    one of a thousand tests. Ties are broken by the log-odds score, then the
    matrix id; ``n_tied`` and ``tied_with`` give the other motifs with the same
    ``p_region``, which the sequence cannot tell apart from this one.

    Parameters
    ----------
    sequence : str
    start, end : int
        The region, 0-based, end exclusive.
    motifs : list of Motif, Bio.motifs motifs or consensus strings
    min_overlap : float
        Share of the region (or of the motif, if shorter) a placement must cover.
    min_rel_score : float
        Placements scoring lower on their counted columns, relative to the motif's
        best there, are not matches.
    pseudocount : float
    background : "uniform", "sequence" or four frequencies of A, C, G, T
        As in :func:`scan`.

    Returns
    -------
    pandas.DataFrame with one row per motif that has a match, best first: match_rank, name,
    matrix_id, score, rel_score, p_value, offset, end (the whole placement in ``sequence``),
    strand, match, p_region, q_value, n_tied, tied_with, coverage (share of the motif over the
    region), tf_class, tf_family (``"; "``-joined).

    Examples
    --------
    A perfect 12-mer that only touches the region (2 of its 12 bases) is not a match of it:

    >>> seq = "GGCATTACGTTG" + "TGACTCA" + "CCAGTA"
    >>> ranked = region_matches(seq, 12, 19, motifs=["TGACTCA", "GGCATTACGTTG"])
    >>> ranked[["name", "offset", "strand", "coverage"]].values.tolist()
    [['TGACTCA', 12, '+', 1.0]]
    >>> float(ranked["p_value"].iloc[0] * 4**7)  # one perfect 7-mer site in 4^7
    1.0
    """
    if not 0 <= int(start) < int(end) <= len(sequence):
        raise ValueError(f"region {start}-{end} is not inside a sequence of length {len(sequence)}")
    scanner = _Scanner(_as_motifs(motifs), pseudocount, _resolve_background(background, sequence))
    return _rank_region(scanner, sequence, int(start), int(end), min_overlap=min_overlap, min_rel_score=min_rel_score)


def _rank_region(scanner: _Scanner, sequence: str, start: int, end: int, *, min_overlap, min_rel_score) -> pd.DataFrame:
    """:func:`region_matches` with a scanner built once for many regions."""
    motifs = scanner.motifs
    K = scanner.lengths.numpy()
    offsets = np.arange(max(0, start - K.max() + 1), end)
    overlap = np.minimum(offsets[None, :] + K[:, None], end) - np.maximum(offsets[None, :], start)
    need = np.maximum(min_overlap * np.minimum(K, end - start), 1)[:, None]  # at least one base
    tested = (offsets[None, :] + K[:, None] <= len(sequence)) & (overlap >= need - 1e-9)
    n_tests = 2 * tested.sum(axis=1)
    mi, oi = np.nonzero(tested)
    oi = offsets[oi]
    strands = scanner.region_placements(sequence, start, end, mi, oi, min_rel_score=min_rel_score)
    score, rel, p = (np.concatenate([strands["+"][k], strands["-"][k]]) for k in range(3))
    mi, oi = np.tile(mi, 2), np.tile(oi, 2)
    strand = np.repeat(["+", "-"], len(mi) // 2)
    # Each motif's best placement: smallest p-value, then highest score, then leftmost.
    order = np.lexsort((oi, -score, p, mi))
    _, first = np.unique(mi[order], return_index=True)
    best = order[first]
    best = best[np.isfinite(p[best])]  # motifs with a match
    kept = mi[best]
    p_site = np.ones(len(motifs))
    p_site[kept] = p[best]
    p_region = -np.expm1(n_tests * np.log1p(-np.minimum(p_site, 1 - 1e-16)))
    q = np.full(len(motifs), np.nan)
    q[n_tests > 0] = _bh(p_region[n_tests > 0])
    k = K[kept]
    o = oi[best]
    frame = pd.DataFrame(
        {
            "name": [motifs[i].name for i in kept],
            "matrix_id": [motifs[i].matrix_id for i in kept],
            "score": score[best],
            "rel_score": np.clip(rel[best], 0, 1),
            "p_value": p_site[kept],
            "offset": o,
            "end": o + k,
            "strand": strand[best],
            "match": [sequence[x : x + n].upper() for x, n in zip(o, k)],
            "p_region": p_region[kept],
            "q_value": q[kept],
            "coverage": (np.minimum(o + k, end) - np.maximum(o, start)) / k,
            "tf_class": ["; ".join(motifs[i].tf_class) for i in kept],
            "tf_family": ["; ".join(motifs[i].tf_family) for i in kept],
        }
    )
    frame = frame.sort_values(
        ["p_region", "p_value", "score", "matrix_id", "name"], ascending=[True, True, False, True, True], kind="stable"
    ).reset_index(drop=True)
    n_tied, tied_with = _ties(frame["p_region"].to_numpy(), frame["name"].tolist())
    frame.insert(frame.columns.get_loc("coverage"), "n_tied", n_tied)
    frame.insert(frame.columns.get_loc("coverage"), "tied_with", tied_with)
    frame.insert(0, "match_rank", np.arange(1, len(frame) + 1))
    return frame


def _ties(sorted_p: np.ndarray, names: list, *, shown: int = 25) -> tuple[np.ndarray, list]:
    """For ascending p-values: how many others equal each (to a relative 1e-9), and up to ``shown`` of their names."""
    if len(sorted_p) == 0:
        return np.zeros(0, dtype=np.int64), []
    group = np.cumsum(np.r_[True, np.diff(sorted_p) > 1e-9 * sorted_p[1:]]) - 1
    members: dict[int, list] = {}
    for g, name in zip(group.tolist(), names):
        members.setdefault(g, []).append(name)
    tied_with = []
    for g, name in zip(group.tolist(), names):
        others = list(members[g])
        others.remove(name)
        more = f", +{len(others) - shown} more" if len(others) > shown else ""
        tied_with.append(", ".join(others[:shown]) + more)
    return np.bincount(group)[group] - 1, tied_with


def annotate_regions(
    regions: pd.DataFrame,
    sequences,
    *,
    motifs,
    top: int = 3,
    min_rel_score: float = 0.8,
    pseudocount: float = 0.8,
    background="uniform",
    min_overlap: float = 1.0,
    query=None,
) -> pd.DataFrame:
    """The best motif matches of each region, with p-values and q-values.

    Matches are ranked as :func:`region_matches` ranks them (``p_region``: a
    site p-value from the exact score distribution of the motif's columns over
    the region, corrected for the placements tried there), so a long zinc-finger
    matrix does not win by its length; ``q_value`` corrects for the motifs tried.
    With ``query`` (factor names, matrix ids, or JASPAR TF families or classes,
    as :func:`matches_query` reads them), the best match among the asked-for
    motifs is marked ``query_best`` and reported even when it ranks below ``top``.

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
        Placements scoring lower on their columns over the region, relative to the
        motif's best there, are not matches.
    pseudocount : float
    background : "uniform", "sequence" or four frequencies of A, C, G, T
        Random-sequence model of p-values; ``"sequence"`` uses each input's base
        composition (made strand-symmetric).
    min_overlap : float
        Share of the region (or of the motif, if shorter) that a match must cover;
        1 (the default): a match covers the region or lies inside it.
    query : str or list of str, optional
        Factors, matrices or families the user asks about.

    Returns
    -------
    pandas.DataFrame with the columns of :data:`REGION_MATCH_COLUMNS`, one row per match,
    best first within each region (regions in the order given): id, region, match_rank
    (1 = best of all motifs), name, matrix_id, score, rel_score, p_value (one site),
    offset (in the input sequence), end, strand, match, p_region (corrected for the
    placements), q_value (over the motifs), n_tied and tied_with (motifs with the same
    p_region), coverage, tf_class, tf_family, query_best.

    Examples
    --------
    >>> seq = "CCGATAAGGT" + "TGACTCA" + "GGTCA"
    >>> regions = pd.DataFrame({"id": ["s"], "region": [1], "start": [10], "end": [17]})
    >>> table = annotate_regions(
    ...     regions, {"s": seq}, motifs=["TGACTCA", "TGACTAA", "GATAAG"], top=1, min_rel_score=0.5, query="TGACTAA"
    ... )
    >>> table[["match_rank", "name", "offset", "query_best"]].values.tolist()
    [[1, 'TGACTCA', 10, False], [2, 'TGACTAA', 10, True]]
    >>> bool(table.loc[0, "q_value"] < 0.001)
    True
    """
    motifs = _as_motifs(motifs)
    items = _query_items(query)
    asked = {(m.name, m.matrix_id) for m in motifs if items is not None and matches_query(m, items)}
    if items is not None and not asked:
        raise ValueError(f"query {sorted(items)} matches none of the {len(motifs)} motifs")
    scanners = {}
    frames = []
    for region in regions.itertuples(index=False):
        seq = sequences[region.id]
        bg = _resolve_background(background, seq)
        if bg not in scanners:
            scanners[bg] = _Scanner(motifs, pseudocount, bg)
        start, end = int(region.start), int(region.end)
        if not 0 <= start < end <= len(seq):
            raise ValueError(f"region {region.region} of {region.id!r} ({start}-{end}) is not inside its sequence")
        ranked = _rank_region(scanners[bg], seq, start, end, min_overlap=min_overlap, min_rel_score=min_rel_score)
        ranked["query_best"] = False
        wanted = np.flatnonzero([key in asked for key in zip(ranked["name"], ranked["matrix_id"])])
        if len(wanted):
            ranked.loc[wanted[0], "query_best"] = True
        keep = (ranked["match_rank"] <= top) | ranked["query_best"]
        frames.append(ranked[keep].assign(id=region.id, region=region.region))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REGION_MATCH_COLUMNS})
    return pd.concat(frames, ignore_index=True)[REGION_MATCH_COLUMNS]


__all__ = [
    "Motif",
    "jaspar_motifs",
    "scan",
    "region_matches",
    "annotate_regions",
    "matches_query",
    "base_composition",
    "REGION_MATCH_COLUMNS",
]


_DISCOVERY_NAMES = {"discover", "match_jaspar", "insertion_effect", "ablation_effect", "spacing_grid"}


def __getattr__(name):
    # motif discovery and the causal experiments live in probekit.discover; they are reachable from here too
    if name in _DISCOVERY_NAMES:
        import importlib

        return getattr(importlib.import_module("probekit.discover"), name)
    raise AttributeError(f"module 'probekit.motifs' has no attribute {name!r}")
