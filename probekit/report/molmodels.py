"""The report of a molecule model: atom and fragment importance drawn on each molecule, and its counterfactuals.

:class:`MoleculeModelReport` is what :func:`probekit.probe.molmodels.probe_molecule_model`
returns (kind ``"molecule_model"``): a :class:`~probekit.report.sensitivity.SensitivityReport`
whose HTML shows, per molecule, its drawing with atoms coloured by importance, its
strongest fragments with their SMARTS, and the counterfactual molecules drawn side by
side with the atoms that changed highlighted.

Examples
--------
>>> import pandas as pd
>>> summary = pd.DataFrame({"id": ["m"], "smiles": ["CCO"], "score": [1.0], "success": [True], "n_edits": [1],
...                         "similarity": [0.5], "delta": [-1.0], "p_value": [0.02], "error": [None]})
>>> headline(MoleculeModelReport("molecule_model", {"frame": pd.DataFrame(), "summary": summary}, {"goal": "decrease:1.0"}))
'1 of 1 molecules reached decrease:1.0 with a real molecule (median 1 edits, median similarity 0.5); 1 with p < 0.05 against random edits.'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .html import escape, note, section, table_html
from .sensitivity import SensitivityReport, register_report_class

KIND = "molecule_model"


class MoleculeModelReport(SensitivityReport):
    """A :class:`SensitivityReport` of kind ``"molecule_model"``.

    Tables: ``summary`` (one row per molecule), ``frame`` and ``atoms`` (one row per molecule
    and atom), ``fragments`` (one row per molecule and fragment), ``counterfactuals`` (ranked
    counterfactual molecules of each input).
    """

    def atoms(self) -> pd.DataFrame:
        """One row per molecule and atom: importance, ratio, p-value against random atoms, rank, critical."""
        return self.table("atoms")

    def fragments(self) -> pd.DataFrame:
        """One row per molecule and fragment: SMARTS, atoms, importance, ratio, p-value, rank."""
        return self.table("fragments") if "fragments" in self.table_names else pd.DataFrame()

    def counterfactuals(self) -> pd.DataFrame:
        """The counterfactual molecules of each input, best first: edits, similarity, scores, p-value."""
        return self.table("counterfactuals") if "counterfactuals" in self.table_names else pd.DataFrame()

    def draw(self, id, *, size=(360, 260)) -> str:
        """SVG of molecule ``id`` with its atoms coloured by importance."""
        from rdkit import Chem

        from ..molmodel.draw import draw_weights

        atoms = self.atoms()
        rows = atoms[atoms["id"].astype(str) == str(id)].sort_values("atom")
        if rows.empty or not isinstance(rows["smiles"].iloc[0], str):
            raise ValueError(f"no atoms to draw for input {id!r}")
        mol = Chem.MolFromSmiles(rows["smiles"].iloc[0])
        return draw_weights(mol, rows["importance"].to_numpy(dtype=float), size=size, legend=str(id))


register_report_class(KIND, MoleculeModelReport)


def headline(report) -> str:
    """One sentence: how many molecules reached the goal with a real molecule, at what similarity, how significant."""
    summary = report.summary()
    good = summary[summary["error"].isna()]
    goal = report.params.get("goal", "the goal")
    if "success" not in good or good["success"].isna().all():
        return f"{len(good)} of {len(summary)} molecules scored."
    won = good[good["success"].fillna(False).astype(bool)]
    text = f"{len(won)} of {len(summary)} molecules reached {goal} with a real molecule"
    if len(won):
        text += (f" (median {float(won['n_edits'].median()):.3g} edits, median similarity "
                 f"{float(won['similarity'].median()):.2g})")  # fmt: skip
        text += f"; {int((won['p_value'] < 0.05).sum())} with p < 0.05 against random edits."
    else:
        text += "."
    return text


def changed_atoms(original: str, changed: str) -> list[int]:
    """Atoms of ``changed`` outside its largest common substructure with ``original`` (RDKit FMCS).

    Examples
    --------
    >>> changed_atoms("Oc1ccccc1", "Nc1ccccc1")
    [0]
    """
    from rdkit import Chem
    from rdkit.Chem import rdFMCS

    a, b = Chem.MolFromSmiles(original), Chem.MolFromSmiles(changed)
    if a is None or b is None:
        return []
    mcs = rdFMCS.FindMCS([a, b], timeout=2, ringMatchesRingOnly=True, completeRingsOnly=True,
                         atomCompare=rdFMCS.AtomCompare.CompareElements)  # fmt: skip
    if not mcs.numAtoms:
        return list(range(b.GetNumAtoms()))
    match = b.GetSubstructMatch(Chem.MolFromSmarts(mcs.smartsString))
    return sorted(set(range(b.GetNumAtoms())) - set(match))


def _pair_svg(original: str, changed: str, legends: tuple[str, str], size=(300, 220)) -> str:
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(original), Chem.MolFromSmiles(changed)]
    highlight = [[], changed_atoms(original, changed)]
    return Draw.MolsToGridImage(mols, molsPerRow=2, subImgSize=size, legends=list(legends), highlightAtomLists=highlight,
                                useSVG=True)  # fmt: skip


def overview_section(report, *, figures, max_inputs) -> str:
    summary = report.summary()
    shown = summary.drop(columns=[c for c in ("smiles",) if c in summary])
    return section("Overview", note(headline(report)) + table_html(shown, max_rows=200))


def molecules_section(report, *, figures, max_inputs) -> str:
    if not figures:
        return ""
    summary = report.summary()
    good = summary[summary["error"].isna()]
    order = np.lexsort((good["p_value"].fillna(1.0).to_numpy(), ~good["success"].fillna(False).astype(bool).to_numpy()))
    fragments, counterfactuals = report.fragments(), report.counterfactuals()
    blocks = []
    for _, row in good.iloc[order[:max_inputs]].iterrows():
        mid = str(row["id"])
        parts = [f"<h3>{escape(mid)}</h3>"]
        try:
            parts.append(f'<div class="probekit-figure">{report.draw(mid)}</div>')
        except ValueError:
            pass
        if len(fragments):
            mine = fragments[(fragments["id"].astype(str) == mid) & fragments["error"].isna()].sort_values("rank").head(3)
            if len(mine):
                parts.append(table_html(mine[["fragment_smiles", "smarts", "size", "importance", "ratio", "p_value"]],
                                        max_rows=None, caption="strongest fragments"))  # fmt: skip
        if len(counterfactuals):
            mine = counterfactuals[(counterfactuals["id"].astype(str) == mid) & counterfactuals["counterfactual"].notna()]
            for _, cf in mine.sort_values("rank").head(2).iterrows():
                legends = (f"{mid}: {row['score']:.3g}", f"{cf['score_after']:.3g} (similarity {cf['similarity']:.2f})")
                parts.append(note(f"{cf['edits']}: delta {cf['delta']:.3g}, {cf['n_edits']} edit(s), p = {cf['p_value']:.3g}"))
                parts.append(f'<div class="probekit-figure">{_pair_svg(str(row["smiles"]), cf["counterfactual"], legends)}</div>')
        blocks.append("\n".join(parts))
    return section("Molecules", "\n".join(blocks)) if blocks else ""


def errors_section(report, *, figures, max_inputs) -> str:
    from .html import errors_section as shared

    return shared(report, figures=figures, max_inputs=max_inputs)


def parameters_section(report, *, figures, max_inputs) -> str:
    from .html import parameters_section as shared

    return shared(report, figures=figures, max_inputs=max_inputs)


for _order, _fn in ((10, overview_section), (30, molecules_section), (90, errors_section), (100, parameters_section)):
    SensitivityReport.register_section(KIND, _fn, order=_order)


__all__ = ["MoleculeModelReport", "headline", "changed_atoms"]
