"""Figures and HTML sections of DNA sensitivity reports.

Registered for ``kind="dna"``: the plots ``"ism"`` (heatmap of ISM effects,
bases x positions), ``"logo"`` (importance drawn on the reference bases, with
logomaker) and ``"trajectory"`` (score after each minimal edit, with the goal
line), and the page sections of :meth:`SensitivityReport.to_html`. Matplotlib
and logomaker are imported only inside the functions that draw.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from probekit.report.sensitivity import SensitivityReport
>>> sorted(SensitivityReport.plot_kinds("dna"))
['ism', 'logo', 'trajectory']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import html
from .sensitivity import SensitivityReport

REGION_COLOR = "#f2b134"


def _input_rows(report, id, start=None, end=None) -> pd.DataFrame:
    frame = report.table("frame")
    rows = frame[frame["id"] == id].sort_values("position")
    if start is not None:
        rows = rows[rows["position"] >= start]
    if end is not None:
        rows = rows[rows["position"] < end]
    if rows.empty:
        raise ValueError(f"no positions of input {id!r} in [{start}, {end})")
    return rows


def _input_regions(report, id) -> pd.DataFrame:
    regions = report.regions()
    if regions.empty:
        return regions
    return regions[regions["id"] == id]


def _summary_row(report, id) -> pd.Series:
    summary = report.summary()
    return summary[summary["id"] == id].iloc[0]


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))


def plot_ism(report, id, ax, *, start=None, end=None, cmap: str = "RdBu_r", colorbar: bool = True):
    """Heatmap of the ISM effects of input ``id``: one row per base, one column per position.

    The reference base of each position is marked with a dot (its effect is 0) and
    critical regions are outlined.
    """
    from matplotlib.patches import Rectangle

    rows = _input_rows(report, id, start, end)
    bases = [c[len("effect_") :] for c in rows.columns if c.startswith("effect_")]
    M = rows[[f"effect_{b}" for b in bases]].to_numpy(dtype=float).T
    positions = rows["position"].to_numpy()
    lim = float(np.nanmax(np.abs(M))) if M.size else 0.0
    lim = lim if lim > 0 else 1.0
    extent = (positions[0] - 0.5, positions[-1] + 0.5, len(bases) - 0.5, -0.5)
    im = ax.imshow(M, aspect="auto", cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest", extent=extent)
    ax.set_yticks(range(len(bases)))
    ax.set_yticklabels(bases)
    refs = rows["ref"].to_numpy()
    for j, base in enumerate(bases):
        x = positions[refs == base]
        if len(x):
            ax.scatter(x, np.full(len(x), j), s=4 if len(positions) > 100 else 10, c="k", marker="o", linewidths=0)
    for region in _input_regions(report, id).itertuples():
        if region.end > positions[0] and region.start <= positions[-1]:
            corner = (region.start - 0.5, -0.5)
            ax.add_patch(Rectangle(corner, region.end - region.start, len(bases), fill=False, edgecolor="k", lw=1.2))
    ax.set_xlim(extent[0], extent[1])
    _integer_ticks(ax)
    ax.set_xlabel("position")
    output = report.params.get("output", "score")
    ax.set_title(f"{id}: effect of each substitution on {output}")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="effect")
    return ax


def plot_logo(report, id, ax, *, start=None, end=None, color_scheme: str = "classic"):
    """Logo of position importance: each reference base drawn as tall as its importance."""
    try:
        import logomaker
    except ImportError as error:
        raise ImportError('the logo plot needs logomaker: pip install "probekit[plot]"') from error
    rows = _input_rows(report, id, start, end)
    letters = ["A", "C", "G", "T"]
    matrix = pd.DataFrame(0.0, index=rows["position"].to_numpy(), columns=letters)
    for position, ref, value in zip(rows["position"], rows["ref"], rows["importance"]):
        if ref in letters and np.isfinite(value):
            matrix.loc[position, ref] = float(value)
    matrix.index.name = "pos"
    logomaker.Logo(matrix, ax=ax, color_scheme=color_scheme)
    lo, hi = matrix.index[0], matrix.index[-1]
    for region in _input_regions(report, id).itertuples():
        if region.end > lo and region.start <= hi:
            ax.axvspan(max(region.start, lo) - 0.5, min(region.end, hi + 1) - 0.5, color=REGION_COLOR, alpha=0.25, lw=0)
    threshold = _summary_row(report, id).get("threshold", np.nan)
    if threshold is not None and np.isfinite(threshold):
        ax.axhline(threshold, ls=":", color="0.4", lw=1, label="null threshold")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_xlim(lo - 0.5, hi + 0.5)
    if not matrix.to_numpy().any():
        ax.set_ylim(0, 1)
    _integer_ticks(ax)
    ax.set_xlabel("position")
    ax.set_ylabel("importance")
    ax.set_title(f"{id}: position importance (max |effect|); critical regions shaded")
    return ax


def plot_trajectory(report, id, ax):
    """Score after each edit of the minimal edit set, with the goal line."""
    trajectory = report.table("trajectory")
    steps = trajectory[trajectory["id"] == id].sort_values("step")
    row = _summary_row(report, id)
    goal_score = row.get("goal_score", np.nan)
    if goal_score is not None and np.isfinite(goal_score):
        y, line, ylabel = steps["score"].to_numpy(float), float(goal_score), report.params.get("output", "score")
    else:
        y, line, ylabel = steps["g"].to_numpy(float), 0.0, "goal value g (reached at g <= 0)"
    ax.plot(steps["step"], y, marker="o", color="C0")
    ax.axhline(line, ls="--", color="C3", lw=1.2, label=f"goal: {report.params.get('goal', '')}")
    labels = ["start"] + [f"{int(p)}{r}>{a}" for p, r, a in zip(steps["position"][1:], steps["ref"][1:], steps["alt"][1:])]
    ax.set_xticks(steps["step"].to_numpy())
    ax.set_xticklabels(labels, rotation=30 if len(labels) > 4 else 0, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("edit")
    status = "goal reached" if bool(row.get("success", False)) else "goal not reached"
    if bool(row.get("proved_minimal", False)):
        status += ", proved minimal"
    n = len(steps) - 1
    ax.set_title(f"{id}: {n} edit{'' if n == 1 else 's'}, {status}")
    ax.legend(loc="best", fontsize=8, frameon=False)
    return ax


SensitivityReport.register_plot("dna", "ism", plot_ism)
SensitivityReport.register_plot("dna", "logo", plot_logo)
SensitivityReport.register_plot("dna", "trajectory", plot_trajectory)


# ------------------------------------------------------------------ sections
def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _good(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["error"].isna()] if "error" in summary else summary


def overview_section(report, *, figures, max_inputs) -> str:
    summary = report.summary()
    good = _good(summary)
    params = report.params
    n_success = int(good["success"].astype(bool).sum()) if "success" in good else 0
    lines = [
        f"{len(summary)} inputs ({len(summary) - len(good)} with errors); score: {params.get('output', 'score')}; "
        f"goal: {params.get('goal', '')}; at most {params.get('max_edits', '?')} substitutions.",
        f"Goal reached for {n_success} of {len(good)} inputs.",
    ]
    if "p_value" in good and len(good):
        lines.append(
            f"Median adversarial-vs-random ratio {_fmt(float(good['ratio'].median()))}; "
            f"{int((good['p_value'] <= 0.05).sum())} inputs with empirical p <= 0.05 against "
            f"{params.get('baseline_draws', '?')} random edit sets of the same size."
        )
    body = "".join(html.note(line) for line in lines)
    columns = [c for c in summary.columns if c not in ("error",)] + (["error"] if "error" in summary else [])
    return html.section("Summary", body + html.table_html(summary[columns], max_rows=100))


def regions_section(report, *, figures, max_inputs) -> str:
    regions = report.regions()
    if regions.empty:
        return html.section("Critical regions", html.note("No critical region was found."))
    text = (
        "Contiguous positions whose importance reaches the input's null threshold (the "
        f"{1 - report.params.get('alpha', 0.05):.0%} quantile of the absolute effect of one random substitution), "
        f"merged across gaps of up to {report.params.get('max_gap', '?')} positions, at least "
        f"{report.params.get('min_length', '?')} long; region 1 is the strongest of its input."
    )
    return html.section("Critical regions", html.note(text) + html.table_html(regions, max_rows=100))


def _zoom(report, id, length: int, width: int = 120):
    """Positions to show in a logo of a long input: around its strongest region."""
    if length <= width:
        return None, None
    regions = _input_regions(report, id)
    if not regions.empty:
        center = int((regions.iloc[0]["start"] + regions.iloc[0]["end"]) // 2)
    else:
        rows = _input_rows(report, id)
        center = int(rows.sort_values("rank")["position"].iloc[0])
    start = max(0, min(center - width // 2, length - width))
    return start, start + width


def inputs_section(report, *, figures, max_inputs) -> str:
    good = _good(report.summary())
    if good.empty:
        return ""
    if "p_value" in good:
        good = good.sort_values(["p_value", "ratio"], ascending=[True, False], kind="stable")
    shown = good.head(max_inputs)
    parts = []
    if len(shown) < len(good):
        parts.append(html.note(f"Figures for the {len(shown)} inputs with the smallest p-values of {len(good)}."))
    try:
        import logomaker  # noqa: F401

        has_logo = True
    except ImportError:
        has_logo = False
    for row in shown.itertuples(index=False):
        id = str(row.id)
        edits = report.edits()
        edits = edits[edits["id"] == id] if not edits.empty else edits
        edit_text = ", ".join(f"{int(e.position)}{e.ref}>{e.alt}" for e in edits.itertuples()) or "none"
        text = (
            f"score {_fmt(float(row.score))}; edits {edit_text} "
            f"({'goal reached' if row.success else 'goal not reached'}"
            f"{', proved minimal' if row.proved_minimal else ''}); "
            f"{_fmt(float(row.ratio))}x the mean random change, z = {_fmt(float(row.z))}, p = {_fmt(float(row.p_value))}"
        )
        body = html.note(text)
        if figures:
            names = ["ism"] + (["logo"] if has_logo else []) + ["trajectory"]
            fig, axes = html.new_figure(11, 2.3 * len(names), nrows=len(names))
            axes = np.atleast_1d(axes)
            start, end = _zoom(report, id, int(row.length))
            for name, ax in zip(names, axes):
                kwargs = {"start": start, "end": end} if name == "logo" else {}
                report.plot(name, id=id, ax=ax, **kwargs)
            body += html.figure_html(fig, alt=f"{id} figures")
            if not has_logo:
                body += html.note('Install logomaker for importance logos: pip install "probekit[plot]"')
        parts.append(html.section(id, body, level=3, anchor=f"input-{id}"))
    return html.section("Inputs", "\n".join(parts))


def edits_section(report, *, figures, max_inputs) -> str:
    edits = report.edits()
    if edits.empty:
        return ""
    return html.section("Minimal edits", html.table_html(edits, max_rows=200))


def motifs_section(report, *, figures, max_inputs) -> str:
    motifs = report.table("motifs")
    if motifs.empty:
        return ""
    return html.section("Motif matches (JASPAR)", html.table_html(motifs, max_rows=200))


for _order, _fn in enumerate(
    (overview_section, regions_section, inputs_section, edits_section, motifs_section, html.errors_section,
     html.parameters_section)
):
    SensitivityReport.register_section("dna", _fn, order=10 * (_order + 1))

__all__ = ["plot_ism", "plot_logo", "plot_trajectory"]
