"""Results of motif discovery and of motif experiments.

:class:`DiscoveryResult` holds the patterns TF-MoDISco found (one contribution
and one probability matrix per pattern, each (4, K)) and every seqlet, the
place in an input sequence where a pattern was seen. :class:`MotifEffects`
holds the score changes of a motif experiment (insertion or ablation) next to
the changes of the random edits of the same size it is compared with.
:class:`SpacingResult` holds the effects of two motifs over a grid of distances
and orientations.

Examples
--------
>>> import torch
>>> effects = MotifEffects(
...     effects=torch.tensor([[2.0, 2.2, 1.8]]), random=torch.tensor([[0.1, -0.2, 0.0, 0.3]]),
...     labels=["TGACTCA"], kind="insertion",
... )
>>> effects.to_frame()[["motif", "effect", "p_value"]].round(3).values.tolist()
[['TGACTCA', 2.0, 0.2]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..motifs import Motif
from ..results import BaselineResult, Result, _nan_stats

BASES = "ACGT"
PATTERN_COLUMNS = [
    "pattern", "sign", "n_seqlets", "consensus", "core_start", "core_end", "length", "contribution",
]  # fmt: skip
SEQLET_COLUMNS = ["id", "start", "end", "strand", "pattern", "site", "error"]
EFFECT_STATS = ["effect", "effect_std", "n", "random_mean", "random_std", "ratio", "z", "p_value"]


def consensus(ppm) -> str:
    """The most likely base at each column of a (4, K) matrix.

    Examples
    --------
    >>> consensus(torch.eye(4))
    'ACGT'
    """
    return "".join(BASES[i] for i in torch.as_tensor(ppm).argmax(dim=0).tolist())


@dataclass(frozen=True)
class DiscoveryResult(Result):
    """Patterns found by TF-MoDISco and where their seqlets sit.

    Attributes
    ----------
    names : list of str
        ``"pos_0"``, ``"pos_1"``, ... for patterns that raise the score, ``"neg_0"``, ... for those that lower it.
    signs : list of int
        +1 or -1 per pattern.
    ppms : list of torch.Tensor of shape (4, K)
        Base probabilities at each column of each pattern (its seqlets' mean one-hot).
    contributions : list of torch.Tensor of shape (4, K)
        Mean contribution of the observed bases (the contribution weight matrix).
    hypothetical : list of torch.Tensor of shape (4, K)
        Mean hypothetical contributions.
    cores : list of [int, int]
        Columns ``start:end`` of each pattern that carry its contribution: the
        columns whose total absolute contribution is at least ``trim`` (0.3) of
        the largest, and those between them.
    seqlets : dict of lists
        ``pattern`` (index into ``names``), ``sequence`` (index into ``ids``),
        ``start``, ``end`` (the whole pattern's span in the sequence, end
        exclusive) and ``strand`` of every seqlet.
    ids : list of str
        The sequences searched.
    errors : dict
        Sequences left out, id -> why.
    length : int
        Length of the sequences searched.
    params : dict
    """

    names: list
    signs: list
    ppms: list
    contributions: list
    hypothetical: list
    cores: list
    seqlets: dict
    ids: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    length: int = 0
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def _repr_items(self) -> list[str]:
        return [
            f"n={len(self.ids)}",
            f"length={self.length}",
            f"patterns={len(self.names)}",
            f"seqlets={len(self.seqlets.get('pattern', []))}",
            f"errors={len(self.errors)}",
        ]

    def n_seqlets(self) -> np.ndarray:
        """Seqlets of each pattern, (n_patterns,)."""
        return np.bincount(np.asarray(self.seqlets.get("pattern", []), dtype=np.int64), minlength=len(self.names))

    def core(self, pattern, *, matrix: str = "ppm") -> torch.Tensor:
        """The core columns (4, K) of one pattern's ``"ppm"``, ``"contribution"`` or ``"hypothetical"`` matrix."""
        i = self._index(pattern)
        source = {"ppm": self.ppms, "contribution": self.contributions, "hypothetical": self.hypothetical}
        if matrix not in source:
            raise ValueError(f"matrix must be 'ppm', 'contribution' or 'hypothetical', got {matrix!r}")
        start, end = self.cores[i]
        return source[matrix][i][:, start:end]

    def consensus(self, pattern) -> str:
        """The core consensus of one pattern (by name or index)."""
        return consensus(self.core(pattern))

    def motif(self, pattern) -> Motif:
        """One pattern's core as a :class:`probekit.motifs.Motif` (counts: probabilities times seqlets)."""
        i = self._index(pattern)
        counts = self.core(i).double().numpy() * max(int(self.n_seqlets()[i]), 1)
        return Motif(self.names[i], "", counts)

    def _index(self, pattern) -> int:
        if isinstance(pattern, str):
            if pattern not in self.names:
                raise KeyError(f"no pattern {pattern!r}; the patterns are {self.names}")
            return self.names.index(pattern)
        i = int(pattern)
        if not -len(self.names) <= i < len(self.names):
            raise IndexError(f"pattern {i} out of range for {len(self.names)} patterns")
        return i % len(self.names)

    def to_frame(self) -> pd.DataFrame:
        """One row per pattern: pattern, sign, n_seqlets, consensus (of the core), core_start, core_end,
        length (of the whole pattern), contribution (summed over the core's observed bases)."""
        counts = self.n_seqlets()
        rows = []
        for i, name in enumerate(self.names):
            start, end = self.cores[i]
            rows.append(
                {
                    "pattern": name,
                    "sign": int(self.signs[i]),
                    "n_seqlets": int(counts[i]),
                    "consensus": self.consensus(i),
                    "core_start": int(start),
                    "core_end": int(end),
                    "length": int(self.ppms[i].shape[1]),
                    "contribution": float(self.core(i, matrix="contribution").sum()),
                }
            )
        return pd.DataFrame(rows, columns=PATTERN_COLUMNS)

    def seqlet_table(self, *, core: bool = True, sequences=None) -> pd.DataFrame:
        """Every seqlet: id, start, end (0-based, end exclusive), strand, pattern, site.

        With ``core=True`` the span is the pattern's core (:attr:`cores`) as it
        sits in the sequence, so it joins with the positions and regions of
        :func:`probekit.probe`; otherwise the whole pattern's span. ``site`` is the
        span's bases read on the seqlet's strand when ``sequences`` (the id ->
        sequence mapping, or the list searched) is given, else empty. Sequences left
        out (:attr:`errors`) follow as rows with an ``error``.
        """
        s = self.seqlets
        pattern = np.asarray(s.get("pattern", []), dtype=np.int64)
        start = np.asarray(s.get("start", []), dtype=np.int64)
        end = np.asarray(s.get("end", []), dtype=np.int64)
        strand = np.asarray(s.get("strand", []), dtype=object)
        if core and len(pattern):
            cores = np.asarray(self.cores, dtype=np.int64).reshape(-1, 2)[pattern]
            forward = strand == "+"
            start, end = (
                np.where(forward, start + cores[:, 0], end - cores[:, 1]),
                np.where(forward, start + cores[:, 1], end - cores[:, 0]),
            )
        ids = [self.ids[i] for i in s.get("sequence", [])]
        frame = pd.DataFrame(
            {
                "id": pd.Series(ids, dtype=object),
                "start": start,
                "end": end,
                "strand": strand,
                "pattern": [self.names[i] for i in pattern],
            }
        )
        frame["site"] = _sites(frame, sequences, self.ids)
        frame = frame.sort_values(["id", "start", "pattern"], kind="stable").reset_index(drop=True)
        frame["error"] = pd.Series([None] * len(frame), dtype=object)
        if self.errors:
            bad = pd.DataFrame({"id": list(self.errors), "error": _column(self.errors.values())})
            frame = pd.concat([frame, bad], ignore_index=True)
            frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
        return frame

    def summary(self) -> pd.DataFrame:
        """The pattern table (:meth:`to_frame`)."""
        return self.to_frame()

    def plot(self, pattern, ax=None, *, matrix: str = "contribution", core: bool = False):
        """Sequence logo of one pattern's ``"contribution"``, ``"hypothetical"`` or ``"ppm"`` matrix (logomaker).

        The probability matrix is drawn in bits (information content); the core
        columns are shaded when the whole pattern is drawn. Returns the axes.
        """
        from ..report.discovery import pattern_logo

        return pattern_logo(self, pattern, ax, matrix=matrix, core=core)


def _sites(frame: pd.DataFrame, sequences, ids: list) -> list:
    if sequences is None or not len(frame):
        return [""] * len(frame)
    lookup = dict(sequences) if isinstance(sequences, dict) else dict(zip(ids, list(sequences)))
    complement = str.maketrans("ACGTNacgtn", "TGCANtgcan")
    out = []
    for row in frame.itertuples(index=False):
        site = lookup[row.id][max(row.start, 0) : row.end].upper()
        out.append(site if row.strand == "+" else site.translate(complement)[::-1])
    return out


@dataclass(frozen=True)
class MotifEffects(Result):
    """Score changes of a motif experiment and of the random edits of the same size it is compared with.

    Attributes
    ----------
    effects : torch.Tensor of shape (M, D)
        Score change of each of the M experiments (a motif inserted, or an
        instance ablated) in each of its D placements (NaN where a placement
        could not be made).
    random : torch.Tensor of shape (M, R)
        Mean score change of each of R random edits of the same size at the
        same places (random k-mers inserted, or random windows ablated).
    labels : list of str
        What each row is (the motif, or the instance).
    kind : str
        ``"insertion"`` or ``"ablation"``.
    rows : dict of lists
        Further columns of the table, one value per row (``site``, ``id``, ``start``, ``error``...).
    params : dict
    """

    effects: torch.Tensor
    random: torch.Tensor
    labels: list
    kind: str = "insertion"
    rows: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def _repr_items(self) -> list[str]:
        m, d = self.effects.shape
        return [f"n={m}", f"kind={self.kind!r}", f"placements={d}", f"random={self.random.shape[1]}"]

    def to_frame(self) -> pd.DataFrame:
        """One row per experiment: motif, the columns of :attr:`rows`, effect (mean over placements),
        effect_std, n (placements made), random_mean, random_std, ratio (|effect| / mean |random|),
        z, p_value (empirical, one-sided in the effect's direction)."""
        mean, std, count = _nan_stats(self.effects)
        stats = BaselineResult(deltas=self.random, k=self.effects.shape[1], kind=self.kind).compare(mean)
        frame = pd.DataFrame({"motif": list(self.labels)})
        for name, values in self.rows.items():
            frame[name] = _column(values)
        frame["effect"] = mean.numpy()
        frame["effect_std"] = std.numpy()
        frame["n"] = count.numpy()
        for name in ("random_mean", "random_std", "ratio", "z", "p_value"):
            frame[name] = stats[name].to_numpy()
        return frame


def _column(values) -> pd.Series:
    """A table column; text with missing values stays object dtype, so a missing value reads None."""
    values = list(values)
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
    return pd.Series(values, dtype=None if numeric and values else object)


@dataclass(frozen=True)
class SpacingResult(Result):
    """Effects of two motifs inserted together over a grid of distances and orientations.

    Attributes
    ----------
    distances : torch.Tensor of shape (G,)
        Gap in bases between the end of the first motif and the start of the second.
    orientations : list of str
        The G orientation pairs, such as ``"+/+"`` or ``"+/-"``.
    pair : torch.Tensor of shape (G, B)
        Score change of both motifs inserted, in each of B backgrounds.
    first, second : torch.Tensor of shape (G, B)
        Score change of each motif inserted alone at the same place.
    motifs : list of str
        The two motifs' sites.
    params : dict
    """

    distances: torch.Tensor
    orientations: list
    pair: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    motifs: list
    params: dict = field(default_factory=dict)

    def _repr_items(self) -> list[str]:
        return [f"n={len(self.orientations)}", f"motifs={self.motifs}", f"backgrounds={self.pair.shape[1]}"]

    def to_frame(self) -> pd.DataFrame:
        """One row per distance and orientation pair: distance, orientation, pair, first, second (means over
        backgrounds), excess (pair - first - second, the cooperativity), excess_std, excess_p
        (two-sided sign-flip p-value of the mean excess over backgrounds: exact up to 12 backgrounds)."""
        excess = self.pair - self.first - self.second
        mean, std, _ = _nan_stats(excess)
        return pd.DataFrame(
            {
                "distance": self.distances.numpy(),
                "orientation": list(self.orientations),
                "pair": _nan_stats(self.pair)[0].numpy(),
                "first": _nan_stats(self.first)[0].numpy(),
                "second": _nan_stats(self.second)[0].numpy(),
                "excess": mean.numpy(),
                "excess_std": std.numpy(),
                "excess_p": _sign_flip_p(excess, seed=int(self.params.get("seed", 0))),
            }
        )

    def plot(self, ax=None, *, value: str = "excess"):
        """Heatmap of ``value`` (``"excess"`` or ``"pair"``) by orientation (rows) and distance (columns)."""
        from ..report.discovery import spacing_heatmap

        return spacing_heatmap(self, ax, value=value)


def _sign_flip_p(values: torch.Tensor, *, seed: int = 0, n_draws: int = 1999) -> np.ndarray:
    """Two-sided p-value of each row's mean (G, B) under random sign flips of its values.

    Exact (every sign pattern) up to 12 values per row; otherwise from ``n_draws`` seeded random flips.
    """
    x = torch.nan_to_num(values.double(), nan=0.0)
    n = x.shape[1]
    if n <= 12:
        codes = torch.arange(2**n)[:, None]
        signs = ((codes >> torch.arange(n)) & 1).double() * 2 - 1  # (2^n, B)
        drawn = (x[None] * signs[:, None]).mean(dim=2).abs()
        observed = x.mean(dim=1).abs()
        return ((drawn >= observed - 1e-12).sum(dim=0) / 2**n).numpy()
    g = torch.Generator().manual_seed(seed)
    observed = x.mean(dim=1).abs()
    signs = torch.randint(0, 2, (n_draws, *x.shape), generator=g).double() * 2 - 1
    drawn = (signs * x).mean(dim=2).abs()
    return ((1 + (drawn >= observed - 1e-12).sum(dim=0)) / (1 + n_draws)).numpy()


__all__ = ["DiscoveryResult", "MotifEffects", "SpacingResult", "consensus", "PATTERN_COLUMNS", "SEQLET_COLUMNS"]
