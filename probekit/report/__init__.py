"""Reports: tidy tables, figures and self-contained HTML of what a model relies on.

:class:`SensitivityReport` is what :func:`probekit.probe` returns. Its figures
(:mod:`probekit.report.plots`) and page sections (:mod:`probekit.report.html`)
are registered per report kind, so new kinds plug in without changing it.
Importing this package does not import matplotlib.

Examples
--------
>>> from probekit.report import SensitivityReport
>>> SensitivityReport.plot_kinds("dna")
['ism', 'logo', 'trajectory']
"""

from . import html
from .sensitivity import SensitivityReport
from .tables import critical_mask, find_regions, null_threshold, position_importance, rank_desc

__all__ = [
    "SensitivityReport", "html", "position_importance", "null_threshold", "critical_mask", "find_regions", "rank_desc",
]  # fmt: skip
