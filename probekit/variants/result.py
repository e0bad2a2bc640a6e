"""The result of scoring variants: one row per variant, error rows kept in order.

Examples
--------
>>> import torch, tempfile, os
>>> nan = float("nan")
>>> result = VariantResult(
...     ref_score=torch.tensor([1.0, nan]), alt_score=torch.tensor([0.25, nan]), delta=torch.tensor([-0.75, nan]),
...     context_rank=torch.tensor([1.0, nan]), context_percentile=torch.tensor([100.0, nan]),
...     p_value=torch.tensor([0.01, nan]), ids=["rs1", "rs2"],
...     variants={"chrom": ["chr1", "chr1"], "pos": [5, 9], "ref": ["A", "C"], "alt": ["G", "<DEL>"],
...               "kind": ["SNV", None], "error": [None, "chr1:9 C><DEL>: symbolic"]})
>>> result
VariantResult(n=2, errors=1/2, kinds={'SNV': 1}, delta=[-0.75, nan])
>>> path = os.path.join(tempfile.mkdtemp(), "v.pt")
>>> result.save(path)
>>> VariantResult.load(path).summary()[["id", "delta", "error"]].values.tolist()
[['rs1', -0.75, None], ['rs2', nan, 'chr1:9 C><DEL>: symbolic']]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..results import Result, _meta, _values

# Per-variant columns held in ``VariantResult.variants``, in the order ``to_frame`` shows them.
VARIANT_FIELDS = (
    "chrom", "pos", "ref", "alt", "kind", "n_bases", "record", "genome_chrom", "window_start", "padded", "context",
    "note", "error",
)  # fmt: skip
# Extra columns that hold text or True/False/None; every other extra column is a number.
OBJECT_EXTRA_COLUMNS = frozenset({"motif_ref", "motif_alt", "motif_change", "in_critical_region"})
SUMMARY_COLUMNS = ("id", "chrom", "pos", "ref", "alt", "kind", "ref_score", "alt_score", "delta", "p_value", "error")


@dataclass(frozen=True)
class VariantResult(Result):
    """Scores of the REF and ALT windows of each variant, and how the change compares with others.

    Attributes
    ----------
    ref_score, alt_score : torch.Tensor of shape (N,), float64
        The adapter's selected score of the REF and the ALT window; NaN for error rows.
    delta : torch.Tensor of shape (N,), float64
        ``alt_score - ref_score`` (for SNVs scored by saturation mutagenesis, the ISM effect itself).
    context_rank : torch.Tensor of shape (N,), float64
        1 + how many changes of the context set (see ``variants["context"]``) move the score
        strictly more than ``|delta|``; 1 means no change of the set moves it more.
    context_percentile : torch.Tensor of shape (N,), float64
        Percentage of the context set, the variant counted in it, with ``|change| <= |delta|``.
    p_value : torch.Tensor of shape (N,), float64
        ``(1 + #changes of the set with |change| >= |delta|) / (1 + #changes)``; NaN without a context.
    ids : list of str
    variants : dict of str to list
        Per-variant columns (:data:`VARIANT_FIELDS`): the variant, ``kind``, ``n_bases``,
        ``record``, ``genome_chrom``, ``window_start``, ``padded``, ``context`` (what the
        variant was compared with), ``note`` and ``error``.
    extra : dict of str to list
        Further per-variant columns, shown after ``p_value``: ``in_critical_region``
        (with context: whether an SNV falls in a critical region of its REF window's
        ISM, as :func:`probekit.probe` defines them; None for other kinds), ``log2_fc``, the
        ``ref:``/``alt:``/``delta:`` columns of further outputs, and the motif
        gain/loss columns (``motif_ref`` ... ``motif_change``), when asked for.
    params : dict
        ``length``, ``offset``, ``context``, ``n_draws``, ``seed``, ``output``, ``device``, ``seconds``
        and the settings of the extra columns.
    """

    ref_score: torch.Tensor
    alt_score: torch.Tensor
    delta: torch.Tensor
    context_rank: torch.Tensor
    context_percentile: torch.Tensor
    p_value: torch.Tensor
    ids: list = field(default_factory=list)
    variants: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    params: dict = _meta()

    def _column(self, name: str) -> list:
        n = self.delta.shape[0]
        return list(self.variants.get(name, [None] * n))

    def _repr_items(self) -> list[str]:
        n = self.delta.shape[0]
        errors = sum(isinstance(e, str) for e in self._column("error"))
        kinds = dict(Counter(k for k in self._column("kind") if k))
        return [f"n={n}", f"errors={errors}/{n}", f"kinds={kinds}", f"delta={_values(self.delta)}"]

    def to_frame(self) -> pd.DataFrame:
        """One row per variant, in input order: the variant, its windows' scores, delta, context, extra columns,
        note and error."""
        frame = pd.DataFrame({"id": list(self.ids) or [f"v{i}" for i in range(self.delta.shape[0])]})
        for name in VARIANT_FIELDS[:10]:
            frame[name] = self._column(name)
        frame["ref_score"] = self.ref_score.numpy()
        frame["alt_score"] = self.alt_score.numpy()
        frame["delta"] = self.delta.numpy()
        frame["context"] = self._column("context")
        frame["context_rank"] = self.context_rank.numpy()
        frame["context_percentile"] = self.context_percentile.numpy()
        frame["p_value"] = self.p_value.numpy()
        for name, values in self.extra.items():
            if name in OBJECT_EXTRA_COLUMNS:
                frame[name] = pd.Series(list(values), dtype=object)
            else:
                frame[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        frame["note"] = self._column("note")
        frame["error"] = self._column("error")
        for name in ("pos", "n_bases", "record", "window_start"):
            frame[name] = pd.array([None if v is None or v != v else int(v) for v in frame[name]], dtype="Int64")
        frame["padded"] = np.array([bool(v) for v in frame["padded"]], dtype=bool)
        for name in ("chrom", "ref", "alt", "kind", "genome_chrom", "context", "note", "error"):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
        return frame

    def summary(self) -> pd.DataFrame:
        """One row per variant: the variant, its kind, both scores, delta, p-value, motif change (when scanned) and error."""
        columns = list(SUMMARY_COLUMNS)
        if "motif_change" in self.extra:
            columns[-1:-1] = ["motif_ref", "motif_change"]
        return self.to_frame()[columns]


__all__ = ["VariantResult", "VARIANT_FIELDS"]
