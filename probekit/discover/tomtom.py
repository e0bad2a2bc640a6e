"""Match patterns to JASPAR with TOMTOM (memelite's implementation), with p-, E- and q-values.

TOMTOM aligns each query matrix with each target matrix at every offset and on
both strands, scores the alignment by the summed column similarity, and gives
the p-value of the best alignment from the distribution of scores of the query's
columns against all the targets' columns. The E-value is the p-value times the
number of targets; the q-value is the Benjamini-Hochberg q-value over all the
targets compared with the query, so a match among a thousand JASPAR matrices is
judged as one of a thousand tests.

Examples
--------
>>> import numpy as np
>>> from probekit.motifs import Motif
>>> targets = [Motif.from_consensus(s, name=s) for s in ("TGACTCA", "GATAAG", "CCGCGAGGGGGCGC", "CACGTG")]
>>> with np.errstate(all="ignore"):
...     table = match_jaspar(["TGAGTCA"], motifs=targets * 8, top=1, min_targets=1)
>>> table[["pattern", "name", "strand"]].values.tolist()
[['TGAGTCA', 'TGACTCA', '-']]
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from ..motifs import Motif, jaspar_motifs
from .patterns import _need
from .results import DiscoveryResult, consensus

MATCH_COLUMNS = [
    "pattern", "match_rank", "matrix_id", "name", "p_value", "e_value", "q_value", "offset", "overlap", "strand",
    "consensus", "target_consensus", "tf_class", "tf_family",
]  # fmt: skip


def _queries(patterns) -> tuple[list, list]:
    """Names and (4, K) probability matrices of the patterns to match."""
    if isinstance(patterns, DiscoveryResult):
        return list(patterns.names), [patterns.core(i).double().numpy() for i in range(len(patterns))]
    if isinstance(patterns, (str, Motif)) or (isinstance(patterns, dict) and not patterns):
        patterns = [patterns]
    items = patterns.items() if isinstance(patterns, dict) else [(None, p) for p in patterns]
    names, matrices = [], []
    for name, p in items:
        motif = Motif.from_consensus(p) if isinstance(p, str) else p
        counts = motif.counts if isinstance(motif, Motif) else torch.as_tensor(motif).double().numpy()
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] == 0:
            raise ValueError(f"a pattern must be a (4, K) matrix, a Motif or a consensus string; got shape {counts.shape}")
        names.append(str(name if name is not None else (motif.name if isinstance(motif, Motif) else consensus(counts))))
        matrices.append(_probabilities(counts))
    return names, matrices


def _probabilities(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=0, keepdims=True)
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), 0.25)


def match_jaspar(
    patterns,
    *,
    collection: str = "CORE",
    tax_group: str | None = "vertebrates",
    motifs=None,
    top: int = 3,
    release: str | None = None,
    min_targets: int = 50,
) -> pd.DataFrame:
    """The best JASPAR matches of each pattern, by TOMTOM p-value, with E- and q-values.

    Parameters
    ----------
    patterns : DiscoveryResult, list of (4, K) arrays, Motifs or consensus strings, or dict name -> those
        Queries; a DiscoveryResult gives each pattern's core probability matrix.
    collection : str
        JASPAR collection (``"CORE"``, ``"UNVALIDATED"``...), read offline through pyjaspar.
    tax_group : str or None
        ``"vertebrates"``, ``"plants"``, ``"insects"``, ``"nematodes"``, ``"fungi"``, ``"urochordates"``; None for all.
    motifs : list of Motif, optional
        Targets to use instead of JASPAR (e.g. :func:`probekit.motifs.jaspar_motifs` of another release).
    top : int
        Matches kept per pattern, best first.
    release : str, optional
        JASPAR release (pyjaspar's newest by default).
    min_targets : int
        Fewer targets raise ``ValueError``: TOMTOM's null comes from the
        targets' columns, and a few targets make its p-values unreliable.

    Returns
    -------
    pandas.DataFrame with the columns of :data:`MATCH_COLUMNS`, one row per pattern and match:
    pattern, match_rank, matrix_id, name, p_value, e_value (p times the targets),
    q_value (Benjamini-Hochberg over the targets), offset and overlap of the best
    alignment, strand (``"-"``: the target's reverse complement matches),
    consensus (the pattern's), target_consensus, tf_class, tf_family.

    Examples
    --------
    >>> table = match_jaspar(["GATAAG"], top=1)  # doctest: +SKIP
    >>> table[["name", "q_value"]]  # doctest: +SKIP
    """
    names, queries = _queries(patterns)
    targets = list(motifs) if motifs is not None else jaspar_motifs(collection, tax_group, release=release)
    if len(targets) < min_targets:
        raise ValueError(f"TOMTOM needs at least {min_targets} target matrices for its null; got {len(targets)}")
    if not queries:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in MATCH_COLUMNS})
    tomtom = _need("memelite.tomtom").tomtom
    target_ppms = [_probabilities(np.asarray(m.counts, dtype=np.float64)) for m in targets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        p, _, offsets, overlaps, strands = tomtom(queries, target_ppms)[:5]
    from scipy.stats import false_discovery_control

    rows = []
    for i, name in enumerate(names):
        row_p = np.nan_to_num(np.asarray(p[i], dtype=np.float64), nan=1.0)
        q = false_discovery_control(np.clip(row_p, 0.0, 1.0), method="bh")
        order = np.lexsort((np.arange(len(row_p)), row_p))[: max(int(top), 0)]
        for rank, j in enumerate(order, start=1):
            target = targets[j]
            rows.append(
                {
                    "pattern": name,
                    "match_rank": rank,
                    "matrix_id": target.matrix_id,
                    "name": target.name,
                    "p_value": float(row_p[j]),
                    "e_value": float(row_p[j] * len(targets)),
                    "q_value": float(q[j]),
                    "offset": int(offsets[i, j]),
                    "overlap": int(overlaps[i, j]),
                    "strand": "-" if int(strands[i, j]) == 1 else "+",
                    "consensus": consensus(queries[i]),
                    "target_consensus": target.consensus,
                    "tf_class": "; ".join(target.tf_class),
                    "tf_family": "; ".join(target.tf_family),
                }
            )
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)


def best_matches(matches: pd.DataFrame) -> pd.DataFrame:
    """The first match of each pattern (``match_rank == 1``), indexed by pattern.

    Examples
    --------
    >>> table = pd.DataFrame({"pattern": ["p", "p"], "match_rank": [1, 2], "name": ["A", "B"]})
    >>> best_matches(table)["name"].tolist()
    ['A']
    """
    return matches[matches["match_rank"] == 1].set_index("pattern")


__all__ = ["match_jaspar", "best_matches", "MATCH_COLUMNS"]
