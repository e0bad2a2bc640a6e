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
REACHED_COLOR = "#4daf4a"
PENDING_COLOR = "#b0b0b0"


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
    ax.set_xlim(lo - 0.5, hi + 0.5)
    if not matrix.to_numpy().any():
        ax.set_ylim(0, 1)
    _integer_ticks(ax)
    ax.set_xlabel("position")
    ax.set_ylabel("importance")
    window = f", positions {lo}-{hi}" if start is not None or end is not None else ""
    # said in the title, not a legend, which would hide peaks in its corner
    ax.set_title(f"{id}: position importance (max |effect|){window}; shaded: critical regions, dotted: null threshold")
    return ax


def plot_trajectory(report, id, ax):
    """Score after each edit of the minimal edit set, one bar per step drawn from the goal line.

    Steps are discrete, so they are bars rather than a line that would suggest
    scores between edits; a bar is green once the goal is reached.
    """
    from matplotlib.patches import Patch

    trajectory = report.table("trajectory")
    steps = trajectory[trajectory["id"] == id].sort_values("step")
    row = _summary_row(report, id)
    goal_score = row.get("goal_score", np.nan)
    if goal_score is not None and np.isfinite(goal_score):
        y, line, ylabel = steps["score"].to_numpy(float), float(goal_score), report.params.get("output", "score")
    else:
        y, line, ylabel = steps["g"].to_numpy(float), 0.0, "goal value g (reached at g <= 0)"
    x = np.arange(len(steps))
    reached = steps["g"].to_numpy(float) <= 0
    colors = np.where(reached, REACHED_COLOR, PENDING_COLOR)
    bars = ax.bar(x, y - line, bottom=line, width=0.5, color=colors)
    ax.bar_label(bars, labels=[html.fmt_number(v) for v in y], fontsize=8, padding=2)
    ax.margins(y=0.3)
    goal = ax.axhline(line, ls="--", color="C3", lw=1.2, label=f"goal: {report.params.get('goal', '')}")
    labels = ["start"] + [f"{int(p)}{r}>{a}" for p, r, a in zip(steps["position"][1:], steps["ref"][1:], steps["alt"][1:])]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if len(labels) > 4 else 0, fontsize=8)
    # as many slots as the search could use, so bars are equally wide in every input's figure
    slots = max(len(x), int(report.params.get("max_edits") or 0) + 1, 2)
    ax.set_xlim(-0.6, slots - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("edits made so far")
    status = "goal reached" if bool(row.get("success", False)) else "goal not reached"
    if bool(row.get("proved_minimal", False)):
        status += ", proved minimal"
    n = len(steps) - 1
    ax.set_title(f"{id}: {n} edit{'' if n == 1 else 's'}, {status}")
    handles = [goal, Patch(color=PENDING_COLOR, label="goal not reached"), Patch(color=REACHED_COLOR, label="goal reached")]
    ax.legend(handles=handles, loc="best", fontsize=8, frameon=False)
    return ax


SensitivityReport.register_plot("dna", "ism", plot_ism)
SensitivityReport.register_plot("dna", "logo", plot_logo)
SensitivityReport.register_plot("dna", "trajectory", plot_trajectory)


# ------------------------------------------------------------------ sections
SUMMARY_DESCRIPTIONS = {
    "score": "the selected output of the unedited sequence",
    "goal_score": "the score at which the goal is reached (none for class goals: read g)",
    "n_edits": "substitutions in the minimal edit set",
    "success": "the minimal edit set reaches the goal",
    "proved_minimal": "no smaller edit set reaches the goal",
    "score_after": "the score after the minimal edits",
    "adversarial_delta": "score change of the minimal edits",
    "random_k": "substitutions per random draw",
    "random_mean": "mean score change of random edits of the same size",
    "random_std": "standard deviation of the random score changes",
    "ratio": "|adversarial change| / mean |random change|",
    "z": "(adversarial - random mean) / random std, in the adversarial direction",
    "p_value": "empirical p-value against the random draws, at least 1 / (draws + 1)",
    "threshold": "null threshold: importance a critical position must reach",
    "n_critical": "positions at or above the threshold",
    "n_regions": "critical regions",
    "top_region": "start-end (end exclusive) of the strongest region",
    "evaluations": "model evaluations spent on the search",
}


def _found(summary: pd.DataFrame) -> pd.Series:
    """True where an input's goal was reached or it has a critical region."""
    success = summary["success"].fillna(False).astype(bool) if "success" in summary else False
    regions = summary["n_regions"].fillna(0).astype(int) > 0 if "n_regions" in summary else False
    return pd.Series(success | regions, index=summary.index)


def _strongest_first(summary: pd.DataFrame) -> pd.DataFrame:
    if "p_value" not in summary:
        return summary
    return html.strongest_first(summary, found=_found(summary), p_value="p_value", ratio="ratio")


def overview_section(report, *, figures, max_inputs) -> str:
    summary = report.summary()
    good = html.good_rows(summary)
    params = report.params
    n_success = int(good["success"].fillna(False).astype(bool).sum()) if "success" in good else 0
    lines = [
        f"{len(summary)} inputs ({len(summary) - len(good)} with errors); score: {params.get('output', 'score')}; "
        f"goal: {params.get('goal', '')}; at most {params.get('max_edits', '?')} substitutions.",
        f"Goal reached for {n_success} of {len(good)} inputs.",
    ]
    if "p_value" in good and len(good):
        draws = params.get("baseline_draws")
        floor = f" (the smallest p-value {draws} draws can give is {html.fmt_number(1 / (draws + 1))})" if draws else ""
        lines.append(
            f"Median adversarial-vs-random ratio {html.fmt_number(float(good['ratio'].median()))}; "
            f"{int((good['p_value'] <= 0.05).sum())} inputs with empirical p <= 0.05 against "
            f"{draws or '?'} random edit sets of the same size{floor}."
        )
    lines.append("Rest the pointer on a column name for its meaning.")
    body = "".join(html.note(line) for line in lines)
    table = html.drop_empty_columns(summary)
    if "goal" in table and table["goal"].dropna().nunique() <= 1:
        table = table.drop(columns="goal")  # the same for every input: stated above
    return html.section(
        "Summary", body + html.table_html(table, max_rows=100, descriptions=SUMMARY_DESCRIPTIONS), anchor="summary"
    )


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
    table = html.drop_empty_columns(regions)
    return html.section("Critical regions", html.note(text) + html.table_html(table, max_rows=100), anchor="regions")


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


def _has_logomaker() -> bool:
    try:
        import logomaker  # noqa: F401
    except ImportError:
        return False
    return True


def _input_text(report, row, edits) -> str:
    edit_text = ", ".join(f"{int(e.position)}{e.ref}>{e.alt}" for e in edits.itertuples()) or "none"
    n_regions = getattr(row, "n_regions", None)
    if html.is_missing(n_regions):
        regions = ""
    elif int(n_regions):
        regions = f"; {int(n_regions)} critical region{'' if n_regions == 1 else 's'} (strongest {row.top_region})"
    else:
        regions = "; no critical region"
    fmt = html.fmt_number
    if html.is_missing(getattr(row, "ratio", None)):
        comparison = "no comparison with random edits"
    else:
        comparison = f"{fmt(float(row.ratio))}x the mean random change, z = {fmt(float(row.z))}, p = {fmt(float(row.p_value))}"
    return (
        f"score {fmt(float(row.score))}; edits {edit_text} "
        f"({'goal reached' if row.success else 'goal not reached'}"
        f"{', proved minimal' if row.proved_minimal else ''}); "
        f"{comparison}{regions}."
    )


def inputs_section(report, *, figures, max_inputs) -> str:
    good = _strongest_first(html.good_rows(report.summary()))
    if good.empty:
        return ""
    shown = good.head(max_inputs)
    order = "inputs whose goal was reached or that have a critical region first, then by p-value and ratio"
    count = f"all {len(good)} inputs" if len(shown) == len(good) else f"the strongest {len(shown)} of {len(good)} inputs"
    parts = [html.note(f"Figures of {count}: {order}.")]
    if len(shown) > 3:
        links = ", ".join(f'<a href="#input-{html.escape(i)}">{html.escape(i)}</a>' for i in shown["id"].astype(str))
        parts.append(f'<p class="probekit-note">Go to: {links}</p>')
    has_logo = figures and _has_logomaker()
    if figures and not has_logo:
        parts.append(html.note('Install logomaker for importance logos: pip install "probekit[plot]"'))
    all_edits = report.edits()
    for row in shown.itertuples(index=False):
        id = str(row.id)
        edits = all_edits[all_edits["id"] == id] if not all_edits.empty else all_edits
        body = html.note(_input_text(report, row, edits))
        if figures:
            names = ["ism"] + (["logo"] if has_logo else []) + ["trajectory"]
            fig, axes = html.new_figure(11, 2.3 * len(names), nrows=len(names))
            axes = np.atleast_1d(axes)
            start, end = _zoom(report, id, int(row.length))
            for name, ax in zip(names, axes):
                kwargs = {"start": start, "end": end} if name == "logo" else {}
                report.plot(name, id=id, ax=ax, **kwargs)
            body += html.figure_html(fig, alt=f"{id} figures")
        parts.append(html.section(id, body, level=3, anchor=f"input-{id}"))
    return html.section("Inputs", "\n".join(parts), anchor="inputs")


def edits_section(report, *, figures, max_inputs) -> str:
    edits = report.edits()
    if edits.empty:
        return ""
    caption = (
        "Each input's minimal edits in the order the search applied them; score and g are the score and the "
        "goal value after the edits up to this one (the goal is reached at g <= 0)."
    )
    return html.section("Minimal edits", html.table_html(edits, max_rows=200, caption=caption), anchor="edits")


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

def headline(report) -> str:
    """One line on a DNA report: sequences probed, errors, goals reached, median ratio to random edits.

    Examples
    --------
    >>> from probekit.report.sensitivity import SensitivityReport
    >>> s = pd.DataFrame({"id": ["a", "b", "c"], "success": [True, False, None], "proved_minimal": [True, False, None],
    ...                   "ratio": [12.0, 3.0, None], "error": [None, None, "record 'c': empty"]})
    >>> headline(SensitivityReport("dna", {"frame": pd.DataFrame(), "summary": s}, {"goal": "flip"}))
    'probed 2 of 3 sequences (1 error); flip reached for 1/2, proved minimal for 1 (median 7.5x stronger than random substitutions of the same number)'
    """
    summary = report.summary()
    good = summary[summary["error"].isna()]
    n_errors = len(summary) - len(good)
    errors = f"{n_errors} error{'s' if n_errors != 1 else ''}"
    line = f"probed {len(good)} of {len(summary)} sequences ({errors})"
    if good.empty:
        return line
    reached = int(good["success"].fillna(False).astype(bool).sum())
    proved = int(good["proved_minimal"].fillna(False).astype(bool).sum())
    ratio = pd.to_numeric(good["ratio"], errors="coerce").median()
    shown = "n/a" if ratio is None or math.isnan(ratio) else f"{ratio:.3g}x"
    return (
        f"{line}; {report.params.get('goal', 'the goal')} reached for {reached}/{len(good)}, proved minimal for "
        f"{proved} (median {shown} stronger than random substitutions of the same number)"
    )


__all__ = ["plot_ism", "plot_logo", "plot_trajectory", "headline"]
