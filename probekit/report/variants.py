"""Rendering the variant report: delta along the genome, a table of the strongest variants, and their windows.

Examples
--------
>>> import pandas as pd
>>> positions = pd.DataFrame({"chrom": ["chr1", "chr2"], "pos": [5, 9], "delta": [0.5, -1.0], "error": [None, None]})
>>> offsets = chromosome_offsets(positions)
>>> offsets
{'chr1': 0, 'chr2': 5}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .html import figure_html, new_figure, note, page, params_html, section, table_html

TOP_COLUMNS = (
    "id", "chrom", "pos", "ref", "alt", "kind", "ref_score", "alt_score", "delta", "context_percentile", "p_value",
    "in_critical_region", "motif_ref", "motif_ref_p", "motif_alt", "motif_alt_p", "motif_delta", "motif_change",
)  # fmt: skip
DESCRIPTIONS = {
    "delta": "ALT score minus REF score",
    "context_percentile": "percentile of |delta| among the changes of its REF window",
    "p_value": "share of changes of the REF window moving the score at least as much",
    "in_critical_region": "the SNV lies in a critical region of its REF window's ISM",
    "motif_ref": "best JASPAR match over the variant in REF",
    "motif_alt": "best JASPAR match over the variant in ALT",
    "motif_delta": "change of the REF match's score, bits",
    "motif_change": "loss: the REF site no longer passes the p-value; gain: a new site",
}


def chromosome_offsets(positions: pd.DataFrame) -> dict:
    """Where each chromosome starts on one concatenated axis, in order of first appearance (by its largest position)."""
    offsets, start = {}, 0
    for chrom, group in positions.groupby("chrom", sort=False):
        offsets[chrom] = start
        start += int(pd.to_numeric(group["pos"]).max())
    return offsets


def plot_genome(positions: pd.DataFrame, ax, *, top: pd.DataFrame | None = None):
    """Delta of every scored variant along the genome (chromosomes side by side), the top ones ringed."""
    scored = positions[positions["error"].isna() & positions["delta"].notna()]
    if scored.empty:
        ax.text(0.5, 0.5, "no scored variant", ha="center", va="center", transform=ax.transAxes)
        return ax
    offsets = chromosome_offsets(scored)
    colours = ("#1f4e79", "#7aa6c2")
    ticks = []
    for k, (chrom, group) in enumerate(scored.groupby("chrom", sort=False)):
        x = offsets[chrom] + pd.to_numeric(group["pos"]).to_numpy()
        ax.scatter(x, group["delta"].to_numpy(dtype=float), s=6, color=colours[k % 2], linewidths=0, rasterized=True)
        ticks.append((offsets[chrom] + (x.max() - offsets[chrom]) / 2, chrom))
    if top is not None and len(top):
        inside = top[top["chrom"].isin(offsets)]
        x = [offsets[c] + int(p) for c, p in zip(inside["chrom"], inside["pos"])]
        ax.scatter(x, inside["delta"].to_numpy(dtype=float), s=40, facecolors="none", edgecolors="#c0392b", linewidths=1.2)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xticks([t for t, _ in ticks])
    ax.set_xticklabels([c for _, c in ticks])
    ax.set_ylabel("delta (ALT - REF)")
    ax.set_title(f"{len(scored)} scored variants along the genome")
    return ax


def plot_window(entry: dict, ax, *, title: str, zoom: int = 40, cmap: str = "RdBu_r"):
    """Heatmap of the ISM of a variant's REF window around it, the variant's REF bases outlined."""
    from matplotlib.patches import Rectangle

    effects, window, offset = entry["effects"], entry["window"], entry["offset"]
    length = effects.shape[0]
    lo, hi = max(0, offset - zoom), min(length, offset + max(entry["ref_length"], 1) + zoom)
    M = effects[lo:hi].T
    lim = float(np.nanmax(np.abs(M))) if M.size else 1.0
    lim = lim if lim > 0 else 1.0
    start = entry["window_start"] + 1  # genome coordinates, 1-based
    extent = (start + lo - 0.5, start + hi - 0.5, 3.5, -0.5)
    image = ax.imshow(M, aspect="auto", cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest", extent=extent)
    for j, base in enumerate("ACGT"):
        x = [start + i for i in range(lo, hi) if window[i] == base]
        ax.scatter(x, [j] * len(x), s=6, c="k", linewidths=0)
    corner = (start + offset - 0.5, -0.5)
    ax.add_patch(Rectangle(corner, max(entry["ref_length"], 1), 4, fill=False, edgecolor="#c0392b", lw=1.6))
    ax.set_yticks(range(4))
    ax.set_yticklabels(list("ACGT"))
    ax.set_xlabel("genome position")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="effect")
    return ax


def _describe(row) -> str:
    parts = [f"delta {row['delta']:.3g}"]
    if "p_value" in row and pd.notna(row["p_value"]):
        parts.append(f"p = {row['p_value']:.3g} against {row.get('context') or 'its window'}")
    if "motif_ref" in row and isinstance(row["motif_ref"], str):
        parts.append(f"REF best match {row['motif_ref']} (p = {row['motif_ref_p']:.2g}), ALT {row['motif_alt']} "
                     f"(p = {row['motif_alt_p']:.2g}), score change {row['motif_delta']:.3g} bits")  # fmt: skip
        if row.get("motif_change"):
            parts.append(f"motif {row['motif_change']}")
    return "; ".join(parts)


def variants_body(report, *, zoom: int = 40) -> str:
    """The report's sections as HTML (without the page around them)."""
    positions = report.positions
    n, errors = len(positions), int(positions["error"].notna().sum()) if len(positions) else 0
    lines = [note(f"{n - errors} of {n} variants scored ({errors} errors).")]
    if "motif_change" in report.top.columns:
        losses = int((report.top["motif_change"].fillna("").str.contains("loss")).sum())
        lines.append(note(f"{losses} of the {len(report.top)} strongest variants break a motif site."))
    fig, ax = new_figure(10, 3)
    plot_genome(positions, ax, top=report.top)
    body = section("Summary", "".join(lines) + figure_html(fig, alt="delta along the genome"))
    shown = report.top[[c for c in TOP_COLUMNS if c in report.top.columns]]
    body += section("Strongest variants", table_html(shown, max_rows=None, descriptions=DESCRIPTIONS))
    figures = []
    for _, row in report.top.iterrows():
        entry = report.ism.get(str(row["id"]))
        text = note(f"{row['id']}: {_describe(row)}")
        if entry is None:
            figures.append(text)
            continue
        fig, ax = new_figure(10, 1.9)
        plot_window(entry, ax, title=f"{row['id']}: effect of each substitution around the variant", zoom=zoom)
        figures.append(text + figure_html(fig, alt=f"ISM around {row['id']}"))
    if figures:
        body += section("Windows of the strongest variants", "\n".join(figures))
    errors_table = positions[positions["error"].notna()] if len(positions) else positions
    if len(errors_table):
        body += section("Variants with errors", table_html(errors_table[["chrom", "pos", "error"]], max_rows=100))
    if report.params:
        body += section("Parameters", params_html(report.params))
    return body


def variants_page(report, *, zoom: int = 40) -> str:
    """The whole report as a self-contained HTML page."""
    return page("probekit variant effects", variants_body(report, zoom=zoom))


__all__ = ["variants_page", "variants_body", "plot_genome", "plot_window", "chromosome_offsets"]
