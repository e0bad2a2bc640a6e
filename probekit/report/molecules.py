"""Rendering molecule and feature reports: tables, drawings, figures and HTML sections.

:class:`MoleculeReport` is what :func:`probekit.probe` returns for a
:class:`~probekit.FeatureModel` (built by :mod:`probekit.probe.molecules`). This
module only renders the tables it is given: the page sections and figures of
kind ``"features"``, the molecule drawings, the set-wide feature ranking and the
headline lines a chemist reads first.

Examples
--------
>>> SensitivityReport.plot_kinds("features")
['atoms', 'attribution']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import html
from ..results import edit_label
from .sensitivity import SensitivityReport, register_report_class

FRAME_COLUMNS = [
    "id", "feature", "index", "kind", "value", "ref", "attribution", "importance", "rank", "critical",
    "flipped", "flip_to", "delta", "new_value", "share", "substructure",
]  # fmt: skip
ATOM_COLUMNS = ["id", "atom", "element", "importance", "rank", "flip_weight", "in_flip", "critical"]
EDIT_COLUMNS = [
    "id", "step", "edit", "change", "feature", "index", "old", "new", "atoms", "substructure", "smarts", "source",
    "score_after",
]  # fmt: skip
PERTURBATION_COLUMNS = [
    "id", "feature", "index", "change", "value", "delta", "new_value", "share", "range_fraction", "in_range",
    "plausible", "nearest_reference",
]  # fmt: skip
FEATURE_COLUMNS = [
    "feature", "index", "kind", "mean_abs_attribution", "mean_attribution", "n_present", "n_in_flips",
    "frac_in_flips", "n_in_perturbation", "frac_in_perturbation", "n_critical", "flip_ratio", "substructure", "rank",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "id", "smiles", "score", "goal", "n_flips", "flips", "flips_success", "flips_proved_minimal", "score_after_flips",
    "flip_delta", "flip_random_k", "flip_random_mean", "flip_ratio", "flip_z", "flip_p_value", "perturbation_norm",
    "perturbation", "perturbation_success", "score_after_perturbation", "perturbation_delta", "perturbation_random_mean",
    "perturbation_ratio", "perturbation_z", "perturbation_p_value", "perturbation_plausible",
    "perturbation_nearest_reference", "perturbation_nearest_smiles", "top_features", "attribution_method", "n_critical",
    "error",
]  # fmt: skip
# A feature "carries" a minimal continuous perturbation when it holds at least this share of it.
SHARE = 0.1
#: What each ``flips`` mode of :func:`probekit.probe.molecules.probe_features` lets a search do.
FLIP_MODES = {
    "off": "only bits the molecule has are switched off, so each flip removes one of its own substructures, "
           "shown with its atoms",
    "on": "only bits the molecule lacks are switched on, so each flip adds a substructure it does not have, shown as "
          "the bit's most common environment in the reference set (or else in the molecules probed)",
    "both": "any bit may flip either way; removed substructures are shown with their atoms, added ones as the "
            "bit's most common environment in the reference set (or else in the molecules probed)",
}  # fmt: skip
#: What each column of the summary table means, shown on its header in the HTML report.
SUMMARY_DESCRIPTIONS = {
    "score": "the selected output of the unedited molecule",
    "n_flips": "bits flipped by the search (the best set found when the goal was not reached)",
    "flips": "the flipped bits, as feature: old->new",
    "flips_success": "the bit flips reach the goal",
    "flips_proved_minimal": "no smaller set of bit flips reaches the goal",
    "score_after_flips": "the score after the bit flips",
    "flip_delta": "score change of the bit flips",
    "flip_random_k": "bits flipped per random draw",
    "flip_random_mean": "mean score change of random flip sets of the same size",
    "flip_ratio": "|score change of the bit flips| / mean |score change of random flip sets|",
    "flip_z": "(bit-flip change - random mean) / random std, in the direction the bit flips moved the score",
    "flip_p_value": "empirical p-value of the bit flips against the random flip sets, at least 1 / (draws + 1)",
    "perturbation_norm": "norm of the smallest perturbation of the continuous features found",
    "perturbation": "the perturbed features, as feature: old->new, largest change first",
    "perturbation_success": "the perturbation reaches the goal",
    "score_after_perturbation": "the score after the perturbation",
    "perturbation_delta": "score change of the perturbation",
    "perturbation_random_mean": "mean score change of random perturbations of the same norm",
    "perturbation_ratio": "|score change of the perturbation| / mean |score change of random perturbations|",
    "perturbation_z": "(perturbation change - random mean) / random std, in the direction it moved the score",
    "perturbation_p_value": "empirical p-value of the perturbation against the random ones, at least 1 / (draws + 1)",
    "perturbation_plausible": "every perturbed descriptor within the reference set's range and the point as near a "
                              "real molecule as reference molecules lie to each other",
    "perturbation_nearest_reference": "RMS distance, in standard deviations, from the perturbed point to the nearest "
                                      "real molecule",
    "perturbation_nearest_smiles": "the nearest real molecule to the perturbed point",
    "top_features": "the three features with the largest |attribution|",
    "attribution_method": "how the attributions were computed for this molecule",
    "n_critical": "features in the bit flips or the perturbation where the goal was reached, or with top |attribution|",
}  # fmt: skip
#: How to read a minimal continuous perturbation that no nearby real molecule has.
IMPLAUSIBLE = "a change no nearby real molecule has: read it as a direction of sensitivity, not a molecule to make"


class MoleculeReport(SensitivityReport):
    """A :class:`SensitivityReport` of kind ``"features"`` with molecule-specific views.

    Tables: ``frame`` (one row per molecule and feature), ``summary`` (one row per
    molecule, bad records included), ``atoms``, ``edits`` (minimal bit flips),
    ``perturbation`` (minimal continuous perturbation), ``features`` (ranking
    across the set) and ``molecules`` (each molecule's mol block, so drawings keep
    the atom numbering of ``atoms``).
    """

    @classmethod
    def merged_tables(cls, tables: dict) -> dict:
        """The tables of reports on disjoint molecules, joined row by row, with the set's ranking recomputed.

        ``features`` ranks features across all the molecules, so it is computed again from
        the joined ``frame`` and ``summary`` (see :func:`probekit.probe.chunks.merge_reports`).
        """
        summary = tables["summary"]
        return {**tables, "features": feature_ranking(tables["frame"], summary[summary["error"].isna()])}

    def atoms(self) -> pd.DataFrame:
        """One row per molecule and atom: id, atom, element, importance, rank, flip_weight, in_flip, critical."""
        return self.table("atoms")

    def features(self) -> pd.DataFrame:
        """Feature ranking across the set, most important first (see :func:`probekit.probe.molecules.probe_features`)."""
        return self.table("features")

    def perturbation(self) -> pd.DataFrame:
        """The minimal continuous perturbation of each molecule: one row per changed feature."""
        return self.table("perturbation")

    def mol(self, id):
        """The RDKit molecule of input ``id``, atoms numbered as in :meth:`atoms` (None without one)."""
        from rdkit import Chem

        table = self.table("molecules")
        if table.empty or str(id) not in set(table["id"].astype(str)):
            return None
        block = table.set_index("id").loc[str(id), "molblock"]
        return Chem.MolFromMolBlock(block) if isinstance(block, str) and block else None

    def draw(self, id, *, fmt: str = "svg", size=(360, 260), weights: str = "importance", legend: str | None = None):
        """Draw molecule ``id`` with atoms coloured by ``weights`` (``"importance"`` or ``"flip_weight"``).

        ``legend`` is the caption under the drawing (default: the id).
        """
        from ..chem import draw_atoms

        mol = self.mol(id)
        if mol is None:
            raise ValueError(f"no molecule drawing for input {id!r}")
        atoms = self.atoms()
        w = atoms[atoms["id"] == str(id)].sort_values("atom")[weights].to_numpy(dtype=float)
        return draw_atoms(mol, w, fmt=fmt, size=size, legend=str(id) if legend is None else legend)


register_report_class("features", MoleculeReport)


# ------------------------------------------------------------------- inputs


def feature_ranking(frame: pd.DataFrame, summary_good: pd.DataFrame) -> pd.DataFrame:
    """Features ranked across the molecules of ``frame`` by mean |attribution|, then by how often they are flipped.

    ``summary_good`` holds the summary rows of the molecules without errors.
    """
    if frame.empty:
        return pd.DataFrame(columns=FEATURE_COLUMNS)
    ratio = summary_good.set_index("id")["flip_ratio"]
    reached = set(summary_good.loc[summary_good["perturbation_success"].fillna(False).astype(bool), "id"])
    frame = frame.assign(
        abs_attr=frame["importance"],
        present=frame["value"] != 0,
        carried=(frame["share"] >= SHARE) & frame["id"].isin(reached),
        ratio_if_flipped=np.where(frame["flipped"], frame["id"].map(ratio), np.nan),
    )
    groups = frame.groupby(["index"], sort=True)
    n = frame["id"].nunique()
    table = pd.DataFrame(
        {
            "feature": groups["feature"].first(),
            "index": groups["index"].first(),
            "kind": groups["kind"].first(),
            "mean_abs_attribution": groups["abs_attr"].mean(),
            "mean_attribution": groups["attribution"].mean(),
            "n_present": groups["present"].sum().astype(int),
            "n_in_flips": groups["flipped"].sum().astype(int),
            "frac_in_flips": groups["flipped"].sum() / max(n, 1),
            "n_in_perturbation": groups["carried"].sum().astype(int),
            "frac_in_perturbation": groups["carried"].sum() / max(n, 1),
            "n_critical": groups["critical"].sum().astype(int),
            "flip_ratio": groups["ratio_if_flipped"].mean(),
            "substructure": groups["substructure"].agg(lambda s: s.dropna().mode().iloc[0] if s.notna().any() else None),
        }
    ).reset_index(drop=True)
    table = table.sort_values(["mean_abs_attribution", "n_in_flips"], ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table[FEATURE_COLUMNS].reset_index(drop=True)


def overview_section(report, *, figures, max_inputs) -> str:
    summary, params = report.summary(), report.params
    good = html.good_rows(summary)
    lines = [
        f"{len(summary)} molecules ({len(summary) - len(good)} with errors); score: {params.get('output')}; "
        f"goal: {params.get('goal')}; featurizer: {params.get('featurizer')}; attribution: {params.get('attribution')}."
    ]
    if params.get("attribution") == "auto" and "attribution_method" in good:
        n_other = int((good["attribution_method"] == "shapley_sampling").sum())
        lines.append(
            "Attribution auto: integrated gradients from the zero baseline (every bit absent)"
            + (f", except {n_other} molecules whose gradients do not add up to their score change, ranked by Shapley "
               "values sampled from the same baseline." if n_other else ".")
        )  # fmt: skip
    if params.get("n_binary") and len(good):
        ok = good["flips_success"].fillna(False).astype(bool)
        mode = params.get("flips", "off")
        lines.append(
            f"Bit flips, at most {params.get('max_flips')}, flips={mode}: {FLIP_MODES.get(mode, mode)}. Goal reached "
            f"for {int(ok.sum())} of {len(good)} molecules; median adversarial-vs-random ratio "
            f"{html.fmt_number(float(good['flip_ratio'].median()))} against {params.get('baseline_draws')} random "
            "flip sets of the same size drawn from the same bits."
        )
    if params.get("n_continuous") and len(good):
        ok = good["perturbation_success"].fillna(False).astype(bool)
        lines.append(
            f"Continuous features ({params.get('norm')}): goal reached for {int(ok.sum())} of {len(good)} molecules; "
            f"median norm of the perturbations found {html.fmt_number(float(good['perturbation_norm'].median()))}; "
            f"median ratio {html.fmt_number(float(good['perturbation_ratio'].median()))} against random perturbations "
            "of the same norm."
        )
        lines.append(_plausibility_line(good, params))
    draws = params.get("baseline_draws")
    if draws and (params.get("n_binary") or params.get("n_continuous")) and len(good):
        lines.append(f"The smallest p-value {draws} random draws can give is {1 / (draws + 1):.3g}.")
    lines.append("Rest the pointer on a column name for its meaning.")
    table = html.drop_empty_columns(summary, keep=("error",))
    if "goal" in table and table["goal"].dropna().nunique() <= 1:
        table = table.drop(columns="goal")  # the same for every molecule: stated above
    body = "".join(html.note(line) for line in lines)
    return html.section("Summary", body + html.table_html(table, max_rows=100, descriptions=SUMMARY_DESCRIPTIONS))


def _plausibility_line(good: pd.DataFrame, params: dict) -> str:
    """How many minimal perturbations a real molecule could have, and how that was judged."""
    judged = good["perturbation_plausible"].dropna() if "perturbation_plausible" in good else pd.Series(dtype=bool)
    if judged.empty:
        return "Plausibility of the perturbed descriptors not judged (no reference set of two or more molecules)."
    return (
        f"{int(judged.astype(bool).sum())} of {len(judged)} perturbations found are plausible: every descriptor within "
        f"the range of the {params.get('reference')} ({params.get('n_reference')} molecules) and the perturbed point "
        f"no farther from a real molecule (nearest_reference, RMS distance in standard deviations) than "
        f"{html.fmt_number(params.get('reference_distance'))}, the distance within which 95% of those molecules have "
        f"a neighbour. The others: {IMPLAUSIBLE}."
    )


def features_section(report, *, figures, max_inputs) -> str:
    table = report.table("features")
    if table.empty:
        return ""
    text = (
        "Features ranked across the set by mean |attribution|; n_in_flips / n_in_perturbation count the molecules "
        "whose minimal bit flips / minimal continuous perturbation use the feature; flip_ratio is the mean "
        "adversarial-vs-random ratio of those molecules; substructure is the bit's most common environment."
    )
    return html.section("Feature ranking", html.note(text) + html.table_html(table, max_rows=30))


def _reading_order(good: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The molecules in the order their views are shown, and that order in words.

    Molecules whose goal was reached (by bit flips or a continuous perturbation) come
    first, then by increasing p-value and decreasing ratio: those of the bit flips, or
    of the continuous perturbation when no molecule has bit flips.
    """
    reached = good["flips_success"].fillna(False).astype(bool) | good["perturbation_success"].fillna(False).astype(bool)
    kind, what = ("flip", "bit-flip") if good["flip_p_value"].notna().any() else ("perturbation", "perturbation")
    ordered = html.strongest_first(good, found=reached, p_value=f"{kind}_p_value", ratio=f"{kind}_ratio")
    return ordered, f"molecules whose goal was reached first, then by increasing {what} p-value and decreasing ratio"


def _score_change(before, after) -> str:
    return f"score {html.fmt_number(before)} -> {html.fmt_number(after)}"


def _flips_line(row, flip_text: str, max_flips) -> str:
    """What the bit flips of one molecule found, named for what was shown: minimal, reaching the goal, or closest."""
    stats = (f"{html.fmt_number(row.flip_ratio)}x the mean random change, z = {html.fmt_number(row.flip_z)}, "
             f"p = {html.fmt_number(row.flip_p_value)}.")  # fmt: skip
    change = _score_change(row.score, row.score_after_flips)
    if not row.flips_success:
        reach = f"Closest to the goal in at most {max_flips} bit flips (goal not reached)"
        return f"{reach}: {flip_text} ({change}); {stats}"
    if row.flips_proved_minimal:
        return f"Minimal bit flips: {flip_text} (goal reached, proved minimal; {change}); {stats}"
    return f"Bit flips reaching the goal: {flip_text} (not proved minimal; {change}); {stats}"


def _perturbation_line(row, carry: str) -> str:
    """What the continuous perturbation of one molecule found, and whether a real molecule could have it."""
    what = "Minimal continuous perturbation" if row.perturbation_success else (
        "Continuous perturbation closest to the goal (goal not reached)")  # fmt: skip
    return (
        f"{what}: norm {html.fmt_number(row.perturbation_norm)} carried by {carry} "
        f"({_score_change(row.score, row.score_after_perturbation)}); "
        f"{html.fmt_number(row.perturbation_ratio)}x random, p = {html.fmt_number(row.perturbation_p_value)}."
        + _molecule_plausibility(row)
    )


def _molecule_lines(row, edits: pd.DataFrame, frame: pd.DataFrame, max_flips) -> list[str]:
    """The text of one molecule's view: its SMILES and score, then what its bit flips and perturbation found."""
    id = str(row.id)
    smiles = f"SMILES {row.smiles}; " if isinstance(row.smiles, str) and row.smiles else ""
    lines = [f"{smiles}score {html.fmt_number(row.score)}; most important features: {row.top_features}."]
    if not html.is_missing(row.n_flips):
        mine = edits[edits["id"] == id] if not edits.empty else edits
        flip_text = "; ".join(_flip_text(e) for e in mine.itertuples()) or "none"
        lines.append(_flips_line(row, flip_text, max_flips))
    if not html.is_missing(row.perturbation_norm):
        carried = frame[(frame["id"] == id) & (frame["share"] >= SHARE)].sort_values("share", ascending=False)
        carry = ", ".join(edit_label(r.feature, r.value, r.new_value) for r in carried.itertuples()) or "none"
        lines.append(_perturbation_line(row, carry))
    return lines


def _drawings(report, id: str) -> str:
    """The molecule coloured by atom importance and, when the flips remove bits, by the atoms of those bits."""
    try:
        views = [report.draw(id, legend=f"{id}: atom importance")]
        caption = "Atoms coloured by importance: red raises the score, blue lowers it."
        atoms = report.atoms()
        if atoms[atoms["id"] == id]["in_flip"].any():
            views.append(report.draw(id, weights="flip_weight", legend=f"{id}: atoms of the flipped bits"))
            caption = ("Left: atoms coloured by importance (red raises the score, blue lowers it); right: the atoms of "
                       "the bits the flips above remove.")  # fmt: skip
    except (ValueError, ImportError) as error:
        return html.note(f"no drawing: {error}")
    body = "".join(f'<div class="probekit-molecule" style="display:inline-block">{v[v.find("<svg"):]}</div>'
                   for v in views)  # fmt: skip
    return body + html.note(caption)


def molecules_section(report, *, figures, max_inputs) -> str:
    good = html.good_rows(report.summary())
    if good.empty:
        return ""
    good, order = _reading_order(good)
    shown = good.head(max_inputs)
    edits, frame = report.edits(), report.to_frame()
    shown_of = f"Views of {len(shown)} of {len(good)} molecules; order" if len(shown) < len(good) else "Order"
    parts = [html.note(f"{shown_of}: {order}.")]
    has_drawings = not report.table("molecules").empty
    for row in shown.itertuples(index=False):
        id = str(row.id)
        lines = _molecule_lines(row, edits, frame, report.params.get("max_flips", "?"))
        body = "".join(html.note(line) for line in lines)
        if has_drawings:
            body += _drawings(report, id)
        if figures:
            fig, ax = html.new_figure(7, 2.6)
            plot_attribution(report, id, ax)
            body += html.figure_html(fig, alt=f"{id} attributions")
        parts.append(html.section(id, body, level=3, anchor=f"input-{id}"))
    return html.section("Molecules", "\n".join(parts))


def _flip_text(e) -> str:
    """One flip of the minimal set, with the substructure it removes (at its atoms) or adds."""
    label, removed = edit_label(e.feature, e.old, e.new), float(e.old) > float(e.new)
    if not isinstance(e.substructure, str):
        return label + ("" if removed else " (adds a substructure no molecule at hand has)")
    if removed:
        return f"{label} (removes {e.substructure} at atoms {e.atoms})"
    return f"{label} (adds {e.substructure}, the bit's most common environment in the {getattr(e, 'source', None)})"


def _molecule_plausibility(row) -> str:
    plausible = getattr(row, "perturbation_plausible", None)
    if html.is_missing(plausible):
        return ""
    distance = html.fmt_number(row.perturbation_nearest_reference)
    nearest = f"nearest real molecule {row.perturbation_nearest_smiles} at distance {distance}"
    if plausible:
        return f" A real molecule lies this close ({nearest})."
    return f" Implausible: {IMPLAUSIBLE} ({nearest})."


def edits_section(report, *, figures, max_inputs) -> str:
    edits, pert = report.edits(), report.table("perturbation")
    parts = []
    if not edits.empty:
        mode = report.params.get("flips", "off")
        text = (f"flips={mode}: {FLIP_MODES.get(mode, mode)}. Each row is one flip of the set found for a molecule "
                "(its closest attempt where the goal was not reached: see flips_success in the summary), in the order "
                "the search applied them, with the score after it.")  # fmt: skip
        # a bit switched on has no atoms in the molecule: a dash, not an empty cell
        edits = edits.assign(atoms=edits["atoms"].where(edits["atoms"].astype(str).str.strip() != "", None))
        parts.append(html.section("Bit flips", html.note(text) + html.table_html(edits, max_rows=200)))
    if not pert.empty:
        text = (
            "Each row is one feature changed by the perturbation found for a molecule (its closest attempt where the "
            "goal was not reached: see perturbation_success in the summary). "
            "in_range: the new value lies within the reference set's range; plausible: the perturbed point (all "
            "non-binary features together) lies as near a real molecule as reference molecules lie to each other "
            f"(nearest_reference, RMS distance in standard deviations). A row with plausible False is {IMPLAUSIBLE}."
        )
        parts.append(html.section("Continuous perturbations", html.note(text) + html.table_html(pert, max_rows=200)))
    return "\n".join(parts)


def plot_attribution(report, id, ax, *, top: int = 15):
    """Horizontal bars of the ``top`` largest |attributions| of one molecule (critical features dark)."""
    frame = report.to_frame()
    rows = frame[frame["id"] == str(id)].sort_values("rank").head(top).iloc[::-1]
    colours = ["#b2182b" if a > 0 else "#2166ac" for a in rows["attribution"]]
    alphas = [1.0 if c else 0.45 for c in rows["critical"]]
    labels = [f"{f}  {s}" if isinstance(s, str) else str(f) for f, s in zip(rows["feature"], rows["substructure"])]
    bars = ax.barh(range(len(rows)), rows["attribution"], color=colours)
    for bar, alpha in zip(bars, alphas):
        bar.set_alpha(alpha)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(f"attribution ({report.params.get('attribution')})")
    ax.set_title(f"{id}: top features (critical ones solid)", fontsize=9)
    return ax


def plot_atoms(report, id, ax, *, weights: str = "importance"):
    """The molecule drawn with atoms coloured by importance, as an image on ``ax``."""
    import io

    import matplotlib.image as mpimg

    png = report.draw(id, fmt="png", size=(420, 300), weights=weights)
    ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
    ax.set_axis_off()
    return ax


SensitivityReport.register_plot("features", "attribution", plot_attribution)
SensitivityReport.register_plot("features", "atoms", plot_atoms)
for _order, _fn in enumerate((overview_section, features_section, molecules_section, edits_section,
                              html.errors_section, html.parameters_section)):  # fmt: skip
    SensitivityReport.register_section("features", _fn, order=10 * (_order + 1))


def headline(report) -> list[str]:
    """A few lines a chemist reads first: goals reached, ratios, the features that matter most.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"id": ["a"], "error": [None], "flips_success": [True], "flip_ratio": [4.0],
    ...                   "perturbation_success": [None]})
    >>> r = MoleculeReport("features", {"frame": pd.DataFrame(columns=FRAME_COLUMNS), "summary": s}, {"goal": "decrease:1.0"})
    >>> headline(r)[0]
    'decrease:1.0 reached by bit flips for 1/1 molecules (median 4x the mean random flip set)'
    """
    summary = report.summary()
    good = html.good_rows(summary)
    lines = []
    goal = report.params.get("goal")
    if "flips_success" in good and good["flips_success"].notna().any():
        ok = good["flips_success"].fillna(False).astype(bool)
        how = {"off": "removing substructures (bit flips 1->0)", "on": "adding substructures (bit flips 0->1)"}
        lines.append(
            f"{goal} reached by {how.get(report.params.get('flips'), 'bit flips')} for {int(ok.sum())}/{len(good)} "
            f"molecules (median {html.fmt_number(float(good['flip_ratio'].median()))}x the mean random flip set)"
        )
        common = _most_common_edit(report)
        if common:
            lines.append(common)
    if "perturbation_success" in good and good["perturbation_success"].notna().any():
        ok = good["perturbation_success"].fillna(False).astype(bool)
        judged = good["perturbation_plausible"].dropna() if "perturbation_plausible" in good else pd.Series(dtype=bool)
        near = f"; {int(judged.astype(bool).sum())}/{len(judged)} near a real molecule" if len(judged) else ""
        lines.append(
            f"{goal} reached by perturbing continuous features for {int(ok.sum())}/{len(good)} molecules "
            f"(median norm {html.fmt_number(float(good['perturbation_norm'].median()))}{near})"
        )
    features = report.table("features")
    if not features.empty:
        top = features.head(5)
        names = ", ".join(f"{r.feature}" + (f" [{r.substructure}]" if isinstance(r.substructure, str) else "") for r in top.itertuples())
        lines.append(f"top features by mean |attribution|: {names}")
    if len(good) < len(summary):
        lines.append(f"{len(summary) - len(good)} records with errors (see the report)")
    return lines


def _most_common_edit(report) -> str:
    """The flip found in the most molecules' minimal sets, e.g. ``most common flip: morgan2_4170: 1->0 [C(F)(F)F] in 4/9 molecules``."""
    edits = report.table("edits") if "edits" in report.table_names else pd.DataFrame()
    if edits.empty or "edit" not in edits:
        return ""
    counts = edits.groupby("edit")["id"].nunique().sort_values(ascending=False, kind="stable")
    top = counts.index[0]
    if counts.iloc[0] < 2:
        return ""
    sub = edits.loc[edits["edit"] == top, "substructure"].dropna()
    named = f" [{sub.mode().iloc[0]}]" if len(sub) else ""
    n = report.summary()["error"].isna().sum()
    return f"most common flip: {top}{named} in {int(counts.iloc[0])}/{n} molecules"


__all__ = ["MoleculeReport", "feature_ranking", "headline", "plot_attribution", "plot_atoms"]
