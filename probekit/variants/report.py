"""The variant report: the strongest variants, each with its window's ISM around it, and delta along the genome.

:func:`variant_report` takes scored variants (a :class:`~probekit.variants.VariantResult`
or its table), picks the ``top`` with the largest ``|delta|``, runs the exact
saturation mutagenesis of their REF windows (``top`` windows: cheap next to the
scoring itself), and returns a :class:`VariantReport` that renders to HTML
(:meth:`VariantReport.to_html`, or inline in a notebook).

Examples
--------
>>> import os, tempfile
>>> import pandas as pd
>>> from probekit import SequenceModel
>>> from probekit.testing import MotifCounter
>>> from probekit.variants import score_variants
>>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
>>> _ = open(path, "w").write(">chr1\\nTTTTTTGATATCTTTTTTTTTTTTTT\\n")
>>> adapter = SequenceModel(MotifCounter("GATATC"), output=0, device="cpu")
>>> variants = pd.DataFrame({"chrom": ["chr1"] * 2, "pos": [8, 20], "ref": ["A", "T"], "alt": ["C", "A"]})
>>> result = score_variants(adapter, variants, path, length=12)
>>> report = variant_report(adapter, result, path, length=12, top=1)
>>> report.top["id"].tolist(), report.ism["chr1:8:A>C"]["effects"].shape
(['chr1:8:A>C'], (12, 4))
>>> "<html" in report.to_html()
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import VARIANT_COLUMNS


def strongest(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` scored rows (no error) with the largest ``|delta|``, ties in table order.

    Examples
    --------
    >>> strongest(pd.DataFrame({"delta": [0.1, -2.0, 1.0], "error": [None, None, "bad"]}), 1)["delta"].tolist()
    [-2.0]
    """
    scored = frame[frame["error"].isna() & frame["delta"].notna()]
    order = np.argsort(-scored["delta"].abs().to_numpy(), kind="stable")
    return scored.iloc[order[:n]].reset_index(drop=True)


@dataclass
class VariantReport:
    """The strongest variants with their windows' ISM, and every variant's delta along the genome.

    Attributes
    ----------
    top : pandas.DataFrame
        The strongest variants' rows of the scored table.
    ism : dict of str to dict
        Per top variant id: ``effects`` (L, 4) ISM of its REF window, ``window`` (the
        REF window), ``offset`` (where REF starts in it), ``ref_length``, and
        ``window_start`` (0-based genome position of the window's first base).
    positions : pandas.DataFrame
        ``chrom``, ``pos``, ``delta``, ``error`` of every variant, for the genome plot.
    params : dict
        The scoring settings, shown at the end.
    """

    top: pd.DataFrame
    ism: dict = field(default_factory=dict)
    positions: pd.DataFrame = field(default_factory=pd.DataFrame)
    params: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per variant of the genome plot: chrom, pos, delta, error."""
        return self.positions

    def to_html(self, path=None, *, zoom: int = 40) -> str:
        """The report as one self-contained HTML page; written to ``path`` when given."""
        from ..report.variants import variants_page

        text = variants_page(self, zoom=zoom)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def _repr_html_(self) -> str:
        from ..report.html import fragment
        from ..report.variants import variants_body

        return fragment(variants_body(self, zoom=40))


def variant_report(
    adapter,
    scores,
    genome,
    *,
    length: int,
    offset: int | None = None,
    top: int = 10,
    positions: pd.DataFrame | None = None,
    params: dict | None = None,
    chrom_aliases: dict | None = None,
) -> VariantReport:
    """Build the report of the ``top`` strongest variants of ``scores``.

    Parameters
    ----------
    adapter : SequenceModel
        The model that scored them (the ISM of each top window is run with it).
    scores : VariantResult or pandas.DataFrame
        Scored variants, or the strongest rows of a larger table.
    genome : Genome, str or Path
    length : int
    offset : int, optional
        As given to :func:`~probekit.variants.score_variants`.
    top : int
        How many variants get a figure.
    positions : pandas.DataFrame, optional
        ``chrom``, ``pos``, ``delta``, ``error`` of all variants (default: the rows of ``scores``).
    params : dict, optional
        Settings to show; default the result's own.
    chrom_aliases : dict, optional
        As for :func:`~probekit.variants.score_variants`, when ``genome`` is a path.

    Returns
    -------
    VariantReport
    """
    from ..search.discrete import saturation_mutagenesis
    from .genome import Genome
    from .windows import resolve_offset, variant_windows

    offset = resolve_offset(length, offset)
    frame = scores.to_frame() if hasattr(scores, "to_frame") else scores
    if params is None:
        params = dict(getattr(scores, "params", {}) or {})
    best = strongest(frame, top)
    positions = frame[["chrom", "pos", "delta", "error"]] if positions is None else positions
    ism = {}
    if len(best):
        opened = None
        if isinstance(genome, (str, os.PathLike)):
            genome = opened = Genome(genome, chrom_aliases=chrom_aliases)
        try:
            rows = best[VARIANT_COLUMNS].assign(error=None)
            windows = variant_windows(rows, genome, length=length, offset=offset)
        finally:
            if opened is not None:
                opened.close()
        usable = windows["error"].isna().to_numpy()
        if usable.any():
            sequences = list(windows.loc[usable, "ref_window"])
            scan = saturation_mutagenesis(adapter, adapter.encode(sequences))
            effects = scan.effects.double().numpy()
            for k, i in enumerate(np.flatnonzero(usable)):
                ism[str(best["id"].iat[i])] = {
                    "effects": effects[k], "window": sequences[k], "offset": offset, "ref_length": len(best["ref"].iat[i]),
                    "window_start": int(windows["window_start"].iat[i]),
                }  # fmt: skip
    return VariantReport(top=best, ism=ism, positions=positions.reset_index(drop=True), params=params)


__all__ = ["variant_report", "VariantReport", "strongest"]
