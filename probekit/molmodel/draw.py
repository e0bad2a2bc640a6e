"""Molecules drawn by RDKit with their atoms and bonds coloured by importance.

Red atoms and bonds raise the model's score, blue ones lower it; the stronger
the colour, the larger the importance. Fragments are drawn with every atom in
the colour of its fragment's importance, the top fragments named under the
drawing by their SMARTS. The drawings are SVG text, for HTML reports and
notebooks (``IPython.display.SVG``).

Examples
--------
>>> from rdkit import Chem
>>> svg = draw_weights(Chem.MolFromSmiles("c1ccccc1O"), [0, 0, 0, 0, 0, 0.5, 1.0])
>>> svg.lstrip().startswith("<?xml") and "</svg>" in svg
True
"""

from __future__ import annotations

import numpy as np

from ..chem import _colour
from .results import AtomImportance, FragmentImportance


def draw_weights(mol, atom_weights, *, bond_weights=None, size=(400, 300), legend: str = "", threshold: float = 0.05) -> str:
    """Draw ``mol`` with atoms (and bonds) coloured by weight.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    atom_weights : array-like of shape (n_atoms,)
        NaN counts as 0.
    bond_weights : array-like of shape (n_bonds,), optional
        Bond colours; by default a bond between two coloured atoms takes their mean weight.
    size : (width, height)
    legend : str
        Caption under the molecule.
    threshold : float
        Weights below this fraction of the largest |weight| are not coloured.

    Returns
    -------
    str
        SVG text.

    Examples
    --------
    >>> from rdkit import Chem
    >>> mol = Chem.MolFromSmiles("CCO")
    >>> "<svg" in draw_weights(mol, [0.0, 0.2, 1.0], bond_weights=[0.1, 0.6], legend="ethanol")
    True
    """
    from rdkit.Chem.Draw import rdMolDraw2D

    atoms = np.nan_to_num(np.asarray(atom_weights, dtype=np.float64).reshape(-1))
    if len(atoms) != mol.GetNumAtoms():
        raise ValueError(f"{len(atoms)} atom weights for a molecule with {mol.GetNumAtoms()} atoms")
    bonds = None if bond_weights is None else np.nan_to_num(np.asarray(bond_weights, dtype=np.float64).reshape(-1))
    if bonds is not None and len(bonds) != mol.GetNumBonds():
        raise ValueError(f"{len(bonds)} bond weights for a molecule with {mol.GetNumBonds()} bonds")
    if bonds is None:
        bonds = np.array([0.5 * (atoms[b.GetBeginAtomIdx()] + atoms[b.GetEndAtomIdx()]) for b in mol.GetBonds()])
    scale = max(float(np.abs(atoms).max(initial=0.0)), float(np.abs(bonds).max(initial=0.0)))
    lit_atoms = [int(i) for i in np.flatnonzero(np.abs(atoms) > threshold * scale)] if scale > 0 else []
    lit_bonds = [int(i) for i in np.flatnonzero(np.abs(bonds) > threshold * scale)] if scale > 0 else []
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer, mol, legend=legend,
        highlightAtoms=lit_atoms, highlightAtomColors={i: _colour(atoms[i], scale) for i in lit_atoms},
        highlightAtomRadii={i: 0.3 + 0.25 * min(abs(atoms[i]) / scale, 1.0) for i in lit_atoms},
        highlightBonds=lit_bonds, highlightBondColors={i: _colour(bonds[i], scale) for i in lit_bonds},
    )  # fmt: skip
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def draw_importance(result, i: int = 0, *, top: int = 3, size=(400, 300)) -> str:
    """Draw molecule ``i`` of an importance result, coloured by its atoms' or fragments' importance.

    Parameters
    ----------
    result : AtomImportance or FragmentImportance
    i : int
        Which molecule of the result.
    top : int
        Fragments named under the drawing (by SMARTS and importance), the most important first.
    size : (width, height)

    Returns
    -------
    str
        SVG text. Atom importance from gradients colours the bonds by their own attributions.

    Examples
    --------
    >>> import torch
    >>> from probekit.molmodel import MoleculeModel
    >>> from probekit.molmodel.importance import fragment_importance
    >>> adapter = MoleculeModel(lambda ms: torch.tensor([float(m.GetNumAtoms()) for m in ms]), kind="mols", device="cpu")
    >>> svg = draw_importance(fragment_importance(adapter, ["CC(=O)Nc1ccccc1"], n_random=4))
    >>> "<svg" in svg
    True
    """
    mol = result.mol(i)
    if mol is None:
        raise ValueError(f"molecule {i} ({result.ids[i]}) has no importance: {result.errors[i]}")
    if isinstance(result, AtomImportance):
        legend = f"{result.ids[i]}: {result.method}"
        return draw_weights(mol, result.atom_weights(i), bond_weights=result.bond_weights(i), size=size, legend=legend)
    if not isinstance(result, FragmentImportance):
        raise TypeError(f"draw_importance takes an AtomImportance or FragmentImportance, not {type(result).__name__}")
    rows = sorted((k for k in range(len(result.molecule)) if int(result.molecule[k]) == i), key=lambda k: int(result.rank[k]))
    named = "; ".join(f"{result.smarts[k]} {float(result.importance[k]):+.3g}" for k in rows[:top])
    return draw_weights(mol, result.atom_weights(i), size=size, legend=f"{result.ids[i]}: {named}")


__all__ = ["draw_weights", "draw_importance"]
