"""Results of importance on the molecule: per atom (and bond), and per fragment.

Both hold flat per-item tensors (one entry per atom, bond or fragment of every
molecule, with the molecule each belongs to), so that molecules of any size
share one frozen result that saves and loads like every probekit result.

Examples
--------
>>> import torch
>>> result = AtomImportance(
...     ids=["mol0"], smiles=["CO"], reference=torch.tensor([1.0]), errors=[None],
...     molecule=torch.tensor([0, 0]), atom=torch.tensor([0, 1]), element=["C", "O"],
...     importance=torch.tensor([0.25, 0.75]), ratio=torch.tensor([0.2, 1.8]),
...     p_value=torch.tensor([0.9, 0.1]), rank=torch.tensor([2, 1]), method="occlusion")
>>> result.to_frame()[["atom", "element", "importance", "rank"]].values.tolist()
[[0, 'C', 0.25, 2], [1, 'O', 0.75, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..results import Result, _count, _values


def smiles_in_atom_order(mol) -> str:
    """A SMILES string of ``mol`` whose parse numbers the atoms as ``mol`` does.

    Written without atom maps where RDKit's own order of writing keeps the atom
    indices, with atom maps (index + 1) otherwise; :func:`mol_in_atom_order` reads both.

    Examples
    --------
    >>> from rdkit import Chem
    >>> smiles_in_atom_order(Chem.MolFromSmiles("OCC"))
    'OCC'
    >>> mol = Chem.RenumberAtoms(Chem.MolFromSmiles("OCC"), [1, 0, 2])
    >>> [a.GetSymbol() for a in mol_in_atom_order(smiles_in_atom_order(mol)).GetAtoms()]
    ['C', 'O', 'C']
    """
    from rdkit import Chem

    text = Chem.MolToSmiles(mol, canonical=False)
    if list(mol.GetPropsAsDict(True, True).get("_smilesAtomOutputOrder", [])) == list(range(mol.GetNumAtoms())):
        return text
    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return Chem.MolToSmiles(mapped, canonical=False)


def mol_in_atom_order(smiles: str):
    """The molecule of a SMILES string from :func:`smiles_in_atom_order` (or any SMILES), atoms in their original order."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None or not any(a.GetAtomMapNum() for a in mol.GetAtoms()):
        return mol
    order = sorted(range(mol.GetNumAtoms()), key=lambda i: mol.GetAtomWithIdx(i).GetAtomMapNum())
    mol = Chem.RenumberAtoms(mol, order)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    return mol


def _empty(dtype=torch.float64):
    return field(default_factory=lambda: torch.zeros(0, dtype=dtype))


def _rows(result, items: dict, base_columns: dict) -> pd.DataFrame:
    """One row per item (``items`` columns, first axis T), plus one error row per molecule without items, in molecule order."""
    molecules = result.molecule.numpy()
    frame = pd.DataFrame({"id": [result.ids[i] for i in molecules], "smiles": [result.smiles[i] for i in molecules], **items})
    frame["method"] = result.method
    frame["error"] = None
    frame["_molecule"] = molecules
    missing = sorted(set(range(len(result.ids))) - set(molecules.tolist()))
    if missing:
        errors = pd.DataFrame(
            [{"id": result.ids[i], "smiles": result.smiles[i], **base_columns, "method": result.method,
              "error": result.errors[i], "_molecule": i} for i in missing]
        )  # fmt: skip
        frame = pd.concat([frame, errors], ignore_index=True) if len(frame) else errors
    return frame.sort_values("_molecule", kind="stable").drop(columns="_molecule").reset_index(drop=True)


def _top(result, names: list, values: torch.Tensor) -> tuple[list, list]:
    """Per molecule, the name and value of its top-ranked item (None and NaN where it has none)."""
    top_name, top_value = [None] * len(result.ids), [float("nan")] * len(result.ids)
    for k in torch.nonzero(result.rank == 1).flatten().tolist():
        i = int(result.molecule[k])
        top_name[i], top_value[i] = names[k], float(values[k])
    return top_name, top_value


@dataclass(frozen=True)
class AtomImportance(Result):
    """How much each atom (and, for gradients, each bond) holds a molecule's score up.

    Shapes use N molecules, T atoms of all molecules together and B bonds.

    Attributes
    ----------
    ids : list of str, length N
    smiles : list of str, length N
        Each molecule as given (a SMILES string), or written so that its parse keeps the
        atom indices of the table (an RDKit molecule); :meth:`mol` parses it.
    reference : torch.Tensor of shape (N,)
        Score of each unedited molecule (NaN where it has an error).
    errors : list of (str or None), length N
    molecule, atom : torch.Tensor of shape (T,), long
        Molecule and atom index of each atom row.
    element : list of str, length T
    importance : torch.Tensor of shape (T,)
        Score of the molecule minus its score with the atom masked (occlusion),
        or the atom's integrated-gradient attribution (gradient): positive where the
        atom raises the score.
    ratio, p_value : torch.Tensor of shape (T,)
        |importance| over the mean |importance| of random atoms of the same molecule,
        and the empirical one-sided p-value of that comparison.
    rank : torch.Tensor of shape (T,), long
        1 for the atom with the largest importance in its molecule.
    method : str
        ``"occlusion"`` or ``"gradient"``.
    bond_molecule, bond, bond_importance : torch.Tensor of shape (B,)
        Bond importance where the method gives it: integrated gradients over bond
        features, or masking a graph model's bond features (occlusion with
        ``mask="features"``); empty otherwise.
    params : dict
        Masking, seed, random draws, model calls, seconds.
    """

    ids: list
    smiles: list
    reference: torch.Tensor
    errors: list
    molecule: torch.Tensor
    atom: torch.Tensor
    element: list
    importance: torch.Tensor
    ratio: torch.Tensor
    p_value: torch.Tensor
    rank: torch.Tensor
    method: str = "occlusion"
    bond_molecule: torch.Tensor = _empty(torch.long)
    bond: torch.Tensor = _empty(torch.long)
    bond_importance: torch.Tensor = _empty()
    params: dict = field(default_factory=dict)

    def _repr_items(self) -> list[str]:
        ok = torch.tensor([e is None for e in self.errors], dtype=torch.bool)
        return [f"n={len(self.ids)}", f"ok={_count(ok)}", f"atoms={len(self.atom)}", f"method={self.method!r}", f"importance={_values(self.importance)}"]

    def mol(self, i: int):
        """The RDKit molecule ``i``, with the atom indices of the table (None for an error row)."""
        return mol_in_atom_order(self.smiles[i]) if self.errors[i] is None else None

    def atom_weights(self, i: int) -> np.ndarray:
        """Importance of each atom of molecule ``i``: shape (n_atoms,), for drawing."""
        rows = self.molecule == i
        out = np.full(int(rows.sum()), np.nan)
        out[self.atom[rows].numpy()] = self.importance[rows].numpy()
        return out

    def bond_weights(self, i: int) -> np.ndarray | None:
        """Importance of each bond of molecule ``i`` (shape (n_bonds,)), or None when the method gives none."""
        rows = self.bond_molecule == i
        if not bool(rows.any()):
            return None
        out = np.zeros(int(self.bond[rows].max()) + 1)
        out[self.bond[rows].numpy()] = self.bond_importance[rows].numpy()
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per molecule and atom: id, smiles, atom, element, importance, ratio, p_value, rank, method, error.

        A molecule with an error has one row with its error and no atom.
        """
        items = {
            "atom": self.atom.numpy(),
            "element": list(self.element),
            "importance": self.importance.numpy(),
            "ratio": self.ratio.numpy(),
            "p_value": self.p_value.numpy(),
            "rank": self.rank.numpy(),
        }
        return _rows(self, items, {"atom": None, "element": None, "importance": np.nan, "ratio": np.nan, "p_value": np.nan, "rank": None})

    def summary(self) -> pd.DataFrame:
        """One row per molecule: id, smiles, reference score, top atom and its importance, ratio and p-value, error."""
        labels = [f"{e}{a}" for e, a in zip(self.element, self.atom.tolist())]
        top, value = _top(self, labels, self.importance)
        first = {int(self.molecule[k]): k for k in torch.nonzero(self.rank == 1).flatten().tolist()}
        pick = lambda t: [float(t[first[i]]) if i in first else float("nan") for i in range(len(self.ids))]  # noqa: E731
        return pd.DataFrame(
            {
                "id": self.ids,
                "smiles": self.smiles,
                "reference": self.reference.numpy(),
                "top_atom": top,
                "importance": value,
                "ratio": pick(self.ratio),
                "p_value": pick(self.p_value),
                "method": self.method,
                "error": self.errors,
            }
        )


@dataclass(frozen=True)
class FragmentImportance(Result):
    """How much each fragment (BRICS or RECAP) holds a molecule's score up.

    Shapes use N molecules and T fragments of all molecules together.

    Attributes
    ----------
    ids, smiles : list of str, length N
        As for :class:`AtomImportance`.
    reference : torch.Tensor of shape (N,)
    errors : list of (str or None), length N
    molecule, fragment : torch.Tensor of shape (T,), long
        Molecule and fragment index of each fragment row.
    atoms : list of list of int, length T
        Atom indices of each fragment.
    smarts, fragment_smiles : list of str, length T
        The fragment as SMARTS and SMILES (RDKit's own fragment writers).
    importance : torch.Tensor of shape (T,)
        Score of the molecule minus its score with the fragment masked (occlusion),
        or the fragment's Shapley value (shapley): positive where it raises the score.
    ratio, p_value : torch.Tensor of shape (T,)
        Compared with masking random connected atom sets of the fragment's size in the
        same molecule.
    rank : torch.Tensor of shape (T,), long
    method : str
        ``"occlusion"`` or ``"shapley"``.
    scheme : str
        ``"brics"`` or ``"recap"``.
    empty : torch.Tensor of shape (N,)
        Score with every fragment masked (Shapley values sum to ``reference - empty``);
        NaN for occlusion.
    params : dict
    """

    ids: list
    smiles: list
    reference: torch.Tensor
    errors: list
    molecule: torch.Tensor
    fragment: torch.Tensor
    atoms: list
    smarts: list
    fragment_smiles: list
    importance: torch.Tensor
    ratio: torch.Tensor
    p_value: torch.Tensor
    rank: torch.Tensor
    method: str = "occlusion"
    scheme: str = "brics"
    empty: torch.Tensor = _empty()
    params: dict = field(default_factory=dict)

    def _repr_items(self) -> list[str]:
        ok = torch.tensor([e is None for e in self.errors], dtype=torch.bool)
        return [
            f"n={len(self.ids)}", f"ok={_count(ok)}", f"fragments={len(self.fragment)}", f"method={self.method!r}",
            f"scheme={self.scheme!r}", f"importance={_values(self.importance)}",
        ]  # fmt: skip

    def mol(self, i: int):
        """The RDKit molecule ``i``, with the atom indices of the table (None for an error row)."""
        return mol_in_atom_order(self.smiles[i]) if self.errors[i] is None else None

    def atom_weights(self, i: int) -> np.ndarray:
        """Each atom of molecule ``i`` weighted by the importance of its fragment: shape (n_atoms,)."""
        mol = self.mol(i)
        out = np.zeros(mol.GetNumAtoms() if mol is not None else 0)
        for k in torch.nonzero(self.molecule == i).flatten().tolist():
            out[list(self.atoms[k])] = float(self.importance[k])
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per molecule and fragment: id, smiles, fragment, smarts, fragment_smiles, atoms, size, importance, ratio, p_value, rank, method, error."""
        items = {
            "fragment": self.fragment.numpy(),
            "smarts": list(self.smarts),
            "fragment_smiles": list(self.fragment_smiles),
            "atoms": [tuple(a) for a in self.atoms],
            "size": [len(a) for a in self.atoms],
            "importance": self.importance.numpy(),
            "ratio": self.ratio.numpy(),
            "p_value": self.p_value.numpy(),
            "rank": self.rank.numpy(),
        }
        empty = {k: None for k in ("fragment", "smarts", "fragment_smiles", "atoms", "size", "rank")}
        return _rows(self, items, {**empty, "importance": np.nan, "ratio": np.nan, "p_value": np.nan})

    def summary(self) -> pd.DataFrame:
        """One row per molecule: id, smiles, reference score, top fragment (SMARTS) and its importance, error."""
        top, value = _top(self, list(self.smarts), self.importance)
        return pd.DataFrame(
            {
                "id": self.ids,
                "smiles": self.smiles,
                "reference": self.reference.numpy(),
                "top_fragment": top,
                "importance": value,
                "n_fragments": np.bincount(self.molecule.numpy(), minlength=len(self.ids)),
                "method": self.method,
                "error": self.errors,
            }
        )


__all__ = ["AtomImportance", "FragmentImportance", "smiles_in_atom_order", "mol_in_atom_order"]
