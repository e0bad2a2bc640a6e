"""Probing a molecule model (graph network, black box, fingerprint estimator) on its molecules.

:func:`probe_molecule_model` answers a chemist's two questions for each molecule:
which atoms and fragments hold the prediction up (atom importance, by integrated
gradients for graph models or occlusion for the others, and BRICS fragment
importance, each against random atoms or fragments of the same size), and what is
the most similar real molecule that reaches the goal (seeded counterfactual search
over SELFIES, matched-pair and atom edits, against random edits of the same number).
It returns a :class:`~probekit.report.molmodels.MoleculeModelReport`.

Examples
--------
>>> import torch
>>> from rdkit import Chem
>>> from probekit import goals
>>> from probekit.molmodel import MoleculeModel
>>> phenol = Chem.MolFromSmarts("[OX2H]c")
>>> def count_phenols(mols):
...     return torch.tensor([float(len(m.GetSubstructMatches(phenol))) for m in mols])
>>> adapter = MoleculeModel(count_phenols, kind="mols")
>>> report = probe_molecule_model(adapter, ["Oc1ccc(CC(=O)O)cc1"], goal=goals.decrease(by=1.0), n_random=20)
>>> report.summary()[["id", "success", "n_edits"]].values.tolist()
[['mol0', True, 1]]
>>> report.atoms().sort_values("rank")["element"].iloc[0]
'O'
"""

from __future__ import annotations

import time

import pandas as pd

from .. import goals as goals_module

SUMMARY_COLUMNS = (
    "id", "smiles", "score", "top_atom", "atom_method", "top_fragment", "counterfactual", "edits", "n_edits",
    "similarity", "score_after", "delta", "success", "ratio", "p_value", "evaluations", "error",
)  # fmt: skip


def _join_summary(atoms: pd.DataFrame, fragments: pd.DataFrame | None, counterfactuals: pd.DataFrame | None) -> pd.DataFrame:
    summary = atoms.rename(columns={"reference": "score", "method": "atom_method"})[
        ["id", "smiles", "score", "top_atom", "atom_method", "error"]
    ].copy()
    summary["top_fragment"] = None
    if fragments is not None and len(fragments):
        best = fragments[fragments["error"].isna() & (fragments["rank"] == 1)].drop_duplicates("id")
        summary["top_fragment"] = summary["id"].map(dict(zip(best["id"], best["fragment_smiles"])))
    columns = ["counterfactual", "edits", "n_edits", "similarity", "score_after", "delta", "success", "ratio", "p_value",
               "evaluations"]  # fmt: skip
    if counterfactuals is not None:
        best = counterfactuals.set_index("id")
        for name in columns:
            summary[name] = summary["id"].map(best[name]) if name in best else None
        errors = best["error"]
        summary["error"] = [e if isinstance(e, str) else errors.get(i) for i, e in zip(summary["id"], summary["error"])]
    else:
        for name in columns:
            summary[name] = None
    summary["error"] = summary["error"].where(summary["error"].notna(), None)
    return summary[list(SUMMARY_COLUMNS)]


def probe_molecule_model(
    adapter,
    molecules,
    *,
    goal=None,
    atoms: bool = True,
    fragments: bool = True,
    counterfactuals: bool = True,
    max_edits: int = 3,
    n_random: int = 100,
    scheme: str = "brics",
    seed: int = 0,
    progress: bool = False,
):
    """Atom importance, fragment importance and counterfactual molecules of each molecule, in one report.

    Parameters
    ----------
    adapter : MoleculeModel
    molecules : SMILES, RDKit molecules, list of them, or a DataFrame from :func:`probekit.read_molecules`
    goal : Goal or str, optional
        What a counterfactual must reach; default ``decrease:1.0``.
    atoms, fragments, counterfactuals : bool
        Which analyses to run (atom importance always runs: it gives each molecule's score).
    max_edits : int
        Most single edits in a counterfactual.
    n_random : int
        Random atoms, fragments and edit paths drawn for each baseline.
    scheme : {"brics", "recap"}
        How fragments are cut.
    seed : int
        Seed of every random draw: the same molecules and numbers on any machine and batch size.
    progress : bool

    Returns
    -------
    MoleculeModelReport
        Tables ``summary`` (one row per molecule, bad records included with their
        ``error``), ``frame`` / ``atoms`` (one row per molecule and atom: importance,
        ratio and p-value against random atoms, rank, critical), ``fragments`` and
        ``counterfactuals`` (up to three per molecule, ranked).
    """
    from ..molmodel.importance import atom_importance, fragment_importance
    from ..report.molmodels import MoleculeModelReport
    from ..search.counterfactual import counterfactual_molecules

    t0 = time.perf_counter()
    goal = goals_module.parse(goal) if goal is not None else goals_module.decrease(by=1.0)
    atom_result = atom_importance(adapter, molecules, n_random=n_random, seed=seed)
    atom_frame = atom_result.to_frame()
    atom_frame["critical"] = atom_frame["p_value"].le(0.05) & atom_frame["importance"].gt(0)
    fragment_frame = None
    if fragments:
        fragment_frame = fragment_importance(adapter, molecules, scheme=scheme, n_random=n_random, seed=seed).to_frame()
        fragment_frame["atoms"] = [None if a is None else ",".join(map(str, a)) for a in fragment_frame["atoms"]]
    counterfactual_result = None
    if counterfactuals:
        counterfactual_result = counterfactual_molecules(adapter, molecules, goal=goal, max_edits=max_edits,
                                                         n_random=n_random, seed=seed, progress=progress)  # fmt: skip
    summary = _join_summary(atom_result.summary(), fragment_frame,
                            None if counterfactual_result is None else counterfactual_result.summary())  # fmt: skip
    tables = {"frame": atom_frame, "summary": summary, "atoms": atom_frame}
    if fragment_frame is not None:
        tables["fragments"] = fragment_frame
    if counterfactual_result is not None:
        tables["counterfactuals"] = counterfactual_result.to_frame()
    params = {
        "goal": str(goal), "model_kind": adapter.kind, "output": adapter.output.name, "atom_method": atom_result.params.get("method"),
        "max_edits": max_edits, "n_random": n_random, "scheme": scheme, "seed": seed, "n_inputs": len(summary),
        "n_errors": int(summary["error"].notna().sum()), "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    return MoleculeModelReport("molecule_model", tables, params)


__all__ = ["probe_molecule_model"]
