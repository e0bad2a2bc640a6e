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

import math

import numpy as np
import pandas as pd

from . import html
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

    def draw(self, id, *, fmt: str = "svg", size=(360, 260), weights: str = "importance"):
        """Draw molecule ``id`` with atoms coloured by ``weights`` (``"importance"`` or ``"flip_weight"``)."""
        from ..chem import draw_atoms

        mol = self.mol(id)
        if mol is None:
            raise ValueError(f"no molecule drawing for input {id!r}")
        atoms = self.atoms()
        w = atoms[atoms["id"] == str(id)].sort_values("atom")[weights].to_numpy(dtype=float)
        return draw_atoms(mol, w, fmt=fmt, size=size, legend=str(id))


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


def edit_label(feature, old, new) -> str:
    """One edit of one feature, written so that name, old and new value cannot run together.

    Examples
    --------
    >>> edit_label("morgan2_4170", 0, 1), edit_label("MolWt", 342.14, 196.0)
    ('morgan2_4170: 0->1', 'MolWt: 342.1->196')
    """
    return f"{feature}: {_value(old)}->{_value(new)}"


def _value(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.4g}"


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _good(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["error"].isna()]


def overview_section(report, *, figures, max_inputs) -> str:
    summary, params = report.summary(), report.params
    good = _good(summary)
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
            f"{_fmt(float(good['flip_ratio'].median()))} against {params.get('baseline_draws')} random flip sets of "
            "the same size drawn from the same bits."
        )
    if params.get("n_continuous") and len(good):
        ok = good["perturbation_success"].fillna(False).astype(bool)
        lines.append(
            f"Continuous features ({params.get('norm')}): goal reached for {int(ok.sum())} of {len(good)} molecules; "
            f"median minimal norm {_fmt(float(good['perturbation_norm'].median()))}; median ratio "
            f"{_fmt(float(good['perturbation_ratio'].median()))} against random perturbations of the same norm."
        )
        lines.append(_plausibility_line(good, params))
    columns = [c for c in summary.columns if summary[c].notna().any() or c == "error"]
    body = "".join(html.note(line) for line in lines)
    return html.section("Summary", body + html.table_html(summary[columns], max_rows=100))


def _plausibility_line(good: pd.DataFrame, params: dict) -> str:
    """How many minimal perturbations a real molecule could have, and how that was judged."""
    judged = good["perturbation_plausible"].dropna() if "perturbation_plausible" in good else pd.Series(dtype=bool)
    if judged.empty:
        return "Plausibility of the perturbed descriptors not judged (no reference set of two or more molecules)."
    return (
        f"{int(judged.astype(bool).sum())} of {len(judged)} minimal perturbations are plausible: every descriptor within "
        f"the range of the {params.get('reference')} ({params.get('n_reference')} molecules) and the perturbed point "
        f"no farther from a real molecule (nearest_reference, RMS distance in standard deviations) than "
        f"{_fmt(params.get('reference_distance'))}, the distance within which 95% of those molecules have a neighbour. "
        f"The others: {IMPLAUSIBLE}."
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


def molecules_section(report, *, figures, max_inputs) -> str:
    good = _good(report.summary())
    if good.empty:
        return ""
    if good["flip_p_value"].notna().any():
        good = good.sort_values(["flip_p_value", "flip_ratio"], ascending=[True, False], kind="stable")
    shown = good.head(max_inputs)
    edits = report.edits()
    frame = report.to_frame()
    parts = []
    if len(shown) < len(good):
        parts.append(html.note(f"Views of {len(shown)} of {len(good)} molecules (smallest bit-flip p-values first)."))
    has_drawings = not report.table("molecules").empty
    for row in shown.itertuples(index=False):
        id = str(row.id)
        mine = edits[edits["id"] == id] if not edits.empty else edits
        flip_text = "; ".join(_flip_text(e) for e in mine.itertuples()) or "none"
        lines = [f"{row.smiles or ''} score {_fmt(row.score)}; most important features: {row.top_features}."]
        if row.n_flips is not pd.NA and row.n_flips is not None:
            lines.append(
                f"Minimal bit flips: {flip_text} ({'goal reached' if row.flips_success else 'goal not reached'}"
                f"{', proved minimal' if row.flips_proved_minimal else ''}; score -> {_fmt(row.score_after_flips)}); "
                f"{_fmt(row.flip_ratio)}x the mean random change, z = {_fmt(row.flip_z)}, p = {_fmt(row.flip_p_value)}."
            )
        if row.perturbation_norm is not None and not pd.isna(row.perturbation_norm):
            carried = frame[(frame["id"] == id) & (frame["share"] >= SHARE)].sort_values("share", ascending=False)
            carry = ", ".join(edit_label(r.feature, r.value, r.new_value) for r in carried.itertuples()) or "none"
            lines.append(
                f"Minimal continuous perturbation: norm {_fmt(row.perturbation_norm)} carried by {carry} "
                f"({'goal reached' if row.perturbation_success else 'goal not reached'}; score -> "
                f"{_fmt(row.score_after_perturbation)}); {_fmt(row.perturbation_ratio)}x random, p = {_fmt(row.perturbation_p_value)}."
                + _molecule_plausibility(row)
            )
        body = "".join(html.note(line) for line in lines)
        if has_drawings:
            try:
                views = [report.draw(id)]
                caption = "Atoms coloured by importance: red raises the score, blue lowers it"
                atoms = report.atoms()
                if atoms[(atoms["id"] == id)]["in_flip"].any():
                    views.append(report.draw(id, weights="flip_weight"))
                    caption += "; right: atoms of the bits removed by the minimal flips"
                body += "".join(f'<div class="probekit-molecule" style="display:inline-block">{v[v.find("<svg"):]}</div>'
                                for v in views)  # fmt: skip
                body += html.note(caption + ".")
            except (ValueError, ImportError) as error:
                body += html.note(f"no drawing: {error}")
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
    if plausible is None or plausible is pd.NA:
        return ""
    nearest = f"nearest real molecule {row.perturbation_nearest_smiles} at distance {_fmt(row.perturbation_nearest_reference)}"
    if plausible:
        return f" A real molecule lies this close ({nearest})."
    return f" Implausible: {IMPLAUSIBLE} ({nearest})."


def edits_section(report, *, figures, max_inputs) -> str:
    edits, pert = report.edits(), report.table("perturbation")
    parts = []
    if not edits.empty:
        mode = report.params.get("flips", "off")
        text = (f"flips={mode}: {FLIP_MODES.get(mode, mode)}. Each row is one flip of a molecule's minimal set, "
                "in the order the search applied them, with the score after it.")  # fmt: skip
        parts.append(html.section("Minimal bit flips", html.note(text) + html.table_html(edits, max_rows=200)))
    if not pert.empty:
        text = (
            "in_range: the new value lies within the reference set's range; plausible: the perturbed point (all "
            "non-binary features together) lies as near a real molecule as reference molecules lie to each other "
            f"(nearest_reference, RMS distance in standard deviations). A row with plausible False is {IMPLAUSIBLE}."
        )
        parts.append(html.section("Minimal continuous perturbations", html.note(text) + html.table_html(pert, max_rows=200)))
    return "\n".join(parts)


def errors_section(report, *, figures, max_inputs) -> str:
    summary = report.summary()
    bad = summary[summary["error"].notna()][["id", "error"]]
    return "" if bad.empty else html.section("Records with errors", html.table_html(bad, max_rows=None))


def parameters_section(report, *, figures, max_inputs) -> str:
    return html.section("Parameters", html.params_html(report.params))


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
for _order, _fn in enumerate((overview_section, features_section, molecules_section, edits_section, errors_section,
                              parameters_section)):  # fmt: skip
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
    good = _good(summary)
    lines = []
    goal = report.params.get("goal")
    if "flips_success" in good and good["flips_success"].notna().any():
        ok = good["flips_success"].fillna(False).astype(bool)
        how = {"off": "removing substructures (bit flips 1->0)", "on": "adding substructures (bit flips 0->1)"}
        lines.append(
            f"{goal} reached by {how.get(report.params.get('flips'), 'bit flips')} for {int(ok.sum())}/{len(good)} "
            f"molecules (median {_fmt(float(good['flip_ratio'].median()))}x the mean random flip set)"
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
            f"(median norm {_fmt(float(good['perturbation_norm'].median()))}{near})"
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


__all__ = ["MoleculeReport", "edit_label", "feature_ranking", "headline", "plot_attribution", "plot_atoms"]
