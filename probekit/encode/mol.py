"""Molecular featurizers that remember where each feature came from.

Every featurizer has ``names``, ``kinds`` (``"continuous"``, ``"binary"`` or
``"integer"``, one per feature) and ``bounds`` (lower, upper tensors of shape
(F,)), and two ways to turn molecules into features:

- ``transform(molecules) -> tensor (N, F)``: for model inputs; raises a clear
  error naming every record that cannot be featurized.
- ``featurize(molecules) -> (tensor (N, F), Provenance)``: for reports; bad
  records keep their row (filled with NaN) and their error, and for fingerprints
  the provenance says which atoms and environment set each bit.

Molecules may be given as SMILES strings, RDKit molecules, or the DataFrame of
:func:`probekit.read_molecules`.

Examples
--------
>>> fp = Morgan(radius=1, n_bits=64)
>>> X, prov = fp.featurize(["CCO", "not a smiles"])
>>> X.shape, prov.errors[1] is not None
(torch.Size([2, 64]), True)
>>> env = prov.environments(0, int(X[0].nonzero()[0]))
>>> sorted(env[0])
['atoms', 'bonds', 'center', 'radius', 'smarts', 'smiles']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

KINDS = ("continuous", "binary", "integer")
#: Occurrences of a fingerprint bit kept from the reference set to name the substructure it stands for.
MAX_OCCURRENCES = 50


# --------------------------------------------------------------- molecule input
def molecule_frame(inputs) -> pd.DataFrame:
    """Normalise molecules to the DataFrame of :func:`probekit.read_molecules` (id, smiles, mol, error).

    Ids are made unique (:func:`probekit.io.unique_ids`, with a warning naming
    the renamed records), and errors already in a DataFrame then name the final id.

    Parameters
    ----------
    inputs : str, list of str, rdkit.Chem.Mol, list of Mol, dict or DataFrame

    Examples
    --------
    >>> molecule_frame(["CCO"])[["id", "smiles"]].values.tolist()
    [['mol0', 'CCO']]
    """
    from rdkit import Chem

    from ..io import read_molecules, renamed_error, unique_ids

    if isinstance(inputs, pd.DataFrame) and "mol" in inputs.columns:
        frame = inputs.copy()
        if "id" not in frame.columns:
            frame["id"] = [f"mol{i}" for i in range(len(frame))]
        old = [str(i) for i in frame["id"]]
        frame["id"] = unique_ids(old)
        if "error" not in frame.columns:
            frame["error"] = None
        if "smiles" not in frame.columns:
            frame["smiles"] = [Chem.MolToSmiles(m) if m is not None else "" for m in frame["mol"]]
        # a table read back from disk has NaN, not None, where there is no error
        errors = [
            renamed_error(e, o, i) if isinstance(e, str) and e
            else (None if isinstance(m, Chem.Mol) else f"record {i!r}: no molecule")
            for o, i, m, e in zip(old, frame["id"], frame["mol"], frame["error"])
        ]  # fmt: skip
        frame["error"] = pd.Series(errors, index=frame.index, dtype=object)
        return frame.reset_index(drop=True)
    if isinstance(inputs, Chem.Mol):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(m, Chem.Mol) for m in inputs):
        return pd.DataFrame(
            {
                "id": [f"mol{i}" for i in range(len(inputs))],
                "smiles": [Chem.MolToSmiles(m) for m in inputs],
                "mol": list(inputs),
                "error": [None] * len(inputs),
            }
        )
    return read_molecules(inputs)


def _as_bounds(lower, upper, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    lower = torch.as_tensor(lower, dtype=torch.float32).expand(n).clone()
    upper = torch.as_tensor(upper, dtype=torch.float32).expand(n).clone()
    return lower, upper


# ------------------------------------------------------------------ provenance
@dataclass(frozen=True)
class Provenance:
    """Where each row and feature of a featurized batch came from.

    Attributes
    ----------
    ids, smiles : list of str
    mols : list of rdkit.Chem.Mol or None
        None where the record could not be read or featurized.
    errors : list of str or None
        The reason a row is unusable, naming the record.
    info : list of dict
        Per molecule, what each featurizer recorded (for Morgan fingerprints the
        bit -> ((center atom, radius), ...) map).
    featurizer : object
        The featurizer that produced the features (it expands ``info`` into atoms).
    """

    ids: list
    smiles: list
    mols: list
    errors: list
    info: list
    featurizer: object = field(repr=False, default=None)

    @property
    def ok(self) -> np.ndarray:
        """Bool (N,): rows that featurized cleanly."""
        return np.array([e is None for e in self.errors], dtype=bool)

    def environments(self, i: int, feature: int) -> list[dict]:
        """Atom environments of ``feature`` in molecule ``i`` (empty where it has none).

        Each environment is a dict with ``center``, ``radius``, ``atoms``, ``bonds``,
        ``smiles`` and ``smarts``.
        """
        mol = self.mols[i]
        if mol is None or self.featurizer is None:
            return []
        return self.featurizer.environments(mol, int(feature), info=self.info[i])

    def frame(self, features=None) -> pd.DataFrame:
        """One row per molecule, feature and environment: id, feature, center, radius, atoms, smiles, smarts.

        Parameters
        ----------
        features : iterable of int, optional
            Feature indices to list; default every feature with recorded environments.
        """
        rows = []
        names = self.featurizer.names if self.featurizer is not None else None
        for i, mol in enumerate(self.mols):
            if mol is None:
                continue
            wanted = features if features is not None else sorted(self.featurizer.recorded(self.info[i]))
            for j in wanted:
                for env in self.environments(i, j):
                    rows.append({"id": self.ids[i], "feature": names[j] if names else j, "index": int(j), **env})
        columns = ["id", "feature", "index", "center", "radius", "atoms", "bonds", "smiles", "smarts"]
        return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Reference:
    """The molecules a featurizer was fitted on (:meth:`Featurizer.fit`): what real molecules look like.

    Attributes
    ----------
    smiles : list of str, length n
        Canonical SMILES of the reference molecules that featurized cleanly.
    index : torch.Tensor of shape (k,), long
        The non-binary features (continuous and integer) kept.
    features : torch.Tensor of shape (n, k)
        Their values in each reference molecule.

    Examples
    --------
    >>> ref = Descriptors(["MolWt", "TPSA"]).fit(["CCO", "c1ccccc1O"]).reference
    >>> ref.smiles, ref.features.shape
    (['CCO', 'Oc1ccccc1'], torch.Size([2, 2]))
    """

    smiles: list
    index: torch.Tensor
    features: torch.Tensor


def _reference(X: torch.Tensor, prov: Provenance, kinds) -> tuple[Reference, list]:
    """The reference of the clean rows of a featurized set, and each kept row's canonical atom order."""
    from rdkit import Chem

    rows = np.flatnonzero(prov.ok)
    if len(rows) == 0:
        raise ValueError("no molecule of the reference set could be featurized")
    smiles, orders = [], []
    for i in rows:
        mol = prov.mols[i]
        if mol is None:  # feature rows without a molecule (a Matrix)
            smiles.append(prov.smiles[i] if prov.smiles else "")
            orders.append(None)
            continue
        smiles.append(Chem.MolToSmiles(mol))
        # atom a of the molecule is atom order.index(a) of the SMILES read back
        orders.append({int(a): k for k, a in enumerate(mol.GetPropsAsDict(True, True)["_smilesAtomOutputOrder"])})
    index = torch.tensor([j for j, k in enumerate(kinds) if k != "binary"], dtype=torch.long)
    features = X[torch.from_numpy(rows)][:, index].clone()
    return Reference(smiles, index, features), orders


# ------------------------------------------------------------------ base class
class Featurizer:
    """Common behaviour: subclasses define :meth:`_compute` (one molecule -> values, info)."""

    names: list
    kinds: list

    def __init__(self):
        self._bounds = None
        self.reference: Reference | None = None

    @property
    def n_features(self) -> int:
        """Number of features F."""
        return len(self.names)

    @property
    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bound of each feature, tensors of shape (F,)."""
        if self._bounds is not None:
            return self._bounds[0].clone(), self._bounds[1].clone()
        lower = [0.0 if k in ("binary", "integer") else -float("inf") for k in self.kinds]
        upper = [1.0 if k == "binary" else float("inf") for k in self.kinds]
        return torch.tensor(lower), torch.tensor(upper)

    def fit(self, molecules) -> "Featurizer":
        """Learn from a reference set (e.g. the training molecules) what real molecules look like; returns self.

        - bounds: the min and max of every non-binary feature over the set (binary features keep [0, 1]);
        - :attr:`reference`: the set's SMILES and non-binary feature values, against which
          :func:`probekit.probe.molecules.probe_features` judges whether a perturbed point is
          near a real molecule;
        - for fingerprints, where each bit occurs, so that :meth:`describe` can name the
          substructure a bit stands for in molecules that lack it.

        Examples
        --------
        >>> fp = Morgan(radius=1, n_bits=64).fit(["CCO", "CCN", "c1ccccc1O"])
        >>> len(fp.reference.smiles), fp.reference.features.shape
        (3, torch.Size([3, 0]))
        """
        X, prov = self.featurize(molecules)
        return self._fit_rows(X, prov)

    def fit_digest(self) -> str | None:
        """A short digest of what :meth:`fit` learnt (bounds and reference molecules); None before a fit.

        Two featurizers with the same settings fitted on the same molecules have the
        same digest, in any process: it keys saved results that depend on the fit.

        Examples
        --------
        >>> fp = Morgan(radius=1, n_bits=64)
        >>> fp.fit_digest() is None
        True
        >>> Morgan(radius=1, n_bits=64).fit(["CCO"]).fit_digest() == fp.fit(["CCO"]).fit_digest() != fp.fit(["CCN"]).fit_digest()
        True
        """
        if self.reference is None:
            return None
        import hashlib
        import json

        lower, upper = self.bounds
        text = json.dumps([repr(self), list(self.names), lower.tolist(), upper.tolist(), list(self.reference.smiles)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _fit_rows(self, X: torch.Tensor, prov: Provenance) -> "Featurizer":
        reference, orders = _reference(X, prov, self.kinds)
        X = X[torch.from_numpy(prov.ok)]
        lower, upper = self.bounds
        binary = torch.tensor([k == "binary" for k in self.kinds])
        lower = torch.where(binary, lower, X.min(dim=0).values)
        upper = torch.where(binary, upper, X.max(dim=0).values)
        self._bounds = (lower, upper)
        self.reference = reference
        self._record_occurrences([info for info, ok in zip(prov.info, prov.ok) if ok], orders)
        return self

    def _record_occurrences(self, infos: list, orders: list) -> None:
        """Fingerprints keep where each bit occurs in the reference set; other featurizers keep nothing."""

    def describe(self, feature: int) -> dict | None:
        """The substructure feature ``feature`` stands for, known without a molecule that has it; None here.

        Fingerprints override this (:meth:`Morgan.describe`, :meth:`MACCS.describe`).
        """
        return None

    def _compute(self, mol) -> tuple[np.ndarray, dict]:
        """Values and provenance of one molecule; featurizers built from others override ``featurize`` instead."""
        raise TypeError(f"{type(self).__name__} does not featurize one molecule at a time; call featurize()")

    def environments(self, mol, feature: int, *, info=None) -> list[dict]:
        """Atom environments of ``feature`` in ``mol``; none for features without a substructure."""
        return []

    def recorded(self, info) -> set:
        """Features whose environments were recorded in one molecule's ``info``."""
        features = set()
        for value in (info or {}).values():
            if isinstance(value, dict):
                features |= set(value)
        return features

    def featurize(self, molecules) -> tuple[torch.Tensor, Provenance]:
        """Features of every record, keeping bad ones as NaN rows with an error.

        Parameters
        ----------
        molecules : str, list of str, Mol, list of Mol or DataFrame

        Returns
        -------
        X : torch.Tensor of shape (N, F), float32, NaN in error rows
        provenance : Provenance
        """
        frame = molecule_frame(molecules)
        n, f = len(frame), self.n_features
        X = np.full((n, f), np.nan, dtype=np.float32)
        mols, errors, infos = [], [], []
        for i, (record, mol, error) in enumerate(zip(frame["id"], frame["mol"], frame["error"])):
            info = {}
            if error is None and mol is not None:
                try:
                    values, info = self._compute(mol)
                    values = np.asarray(values, dtype=np.float64)
                    bad = ~np.isfinite(values)
                    if bad.any():
                        shown = ", ".join(repr(self.names[j]) for j in np.nonzero(bad)[0][:5])
                        raise ValueError(f"feature {shown} is not finite")
                    X[i] = values
                except Exception as exc:  # noqa: BLE001 - any featurization failure becomes an error row
                    error = f"record {record!r}: featurization failed: {exc}"
            elif error is None:
                error = f"record {record!r}: no molecule"
            mols.append(mol if error is None else None)
            errors.append(error)
            infos.append(info if error is None else {})
        prov = Provenance(list(map(str, frame["id"])), list(frame["smiles"]), mols, errors, infos, self)
        return torch.from_numpy(X), prov

    def transform(self, molecules) -> torch.Tensor:
        """Features (N, F) of valid molecules; raises ``ValueError`` naming every record that fails."""
        X, prov = self.featurize(molecules)
        bad = [e for e in prov.errors if e is not None]
        if bad:
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise ValueError("cannot featurize: " + "; ".join(bad[:5]) + more)
        return X

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_features={self.n_features})"


# ------------------------------------------------------------------ featurizers
class Morgan(Featurizer):
    """Morgan (ECFP-like) fingerprint that records which atoms set each bit.

    Parameters
    ----------
    radius : int
        Largest environment radius (2 gives ECFP4).
    n_bits : int
        Fingerprint length F.
    counts : bool
        Count how often each bit is set (kind ``"integer"``) instead of bits (``"binary"``).

    Examples
    --------
    >>> fp = Morgan(radius=2, n_bits=1024)
    >>> fp.transform(["CCO", "c1ccccc1"]).shape
    torch.Size([2, 1024])
    >>> fp.names[:2], fp.kinds[0]
    (['morgan2_0', 'morgan2_1'], 'binary')
    """

    def __init__(self, radius: int = 2, n_bits: int = 2048, *, counts: bool = False):
        super().__init__()
        if radius < 0 or n_bits < 1:
            raise ValueError(f"Morgan needs radius >= 0 and n_bits >= 1; got {radius}, {n_bits}")
        self.radius, self.n_bits, self.counts = int(radius), int(n_bits), bool(counts)
        self.names = [f"morgan{self.radius}_{j}" for j in range(self.n_bits)]
        self.kinds = ["integer" if counts else "binary"] * self.n_bits
        self._generator = None

    def _gen(self):
        if self._generator is None:
            from rdkit.Chem import rdFingerprintGenerator

            self._generator = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
        return self._generator

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_generator"] = None
        return state

    def _compute(self, mol):
        from rdkit.Chem import rdFingerprintGenerator

        extra = rdFingerprintGenerator.AdditionalOutput()
        extra.AllocateBitInfoMap()
        gen = self._gen()
        if self.counts:
            values = gen.GetCountFingerprintAsNumPy(mol, additionalOutput=extra)
        else:
            values = gen.GetFingerprintAsNumPy(mol, additionalOutput=extra)
        bit_info = {int(b): tuple((int(a), int(r)) for a, r in envs) for b, envs in extra.GetBitInfoMap().items()}
        return values, {"morgan": bit_info}

    def environments(self, mol, feature: int, *, info=None) -> list[dict]:
        """Every (center atom, radius) environment that sets bit ``feature`` in ``mol``."""
        if info is None:
            _, info = self._compute(mol)
        return [atom_environment(mol, center, radius) for center, radius in info.get("morgan", {}).get(int(feature), ())]

    def _record_occurrences(self, infos: list, orders: list) -> None:
        occurrences: dict = {}
        for row, (info, order) in enumerate(zip(infos, orders)):
            for bit, envs in (info or {}).get("morgan", {}).items():
                kept = occurrences.setdefault(int(bit), [])
                for center, radius in envs:
                    if len(kept) < MAX_OCCURRENCES:
                        kept.append((row, order[int(center)], int(radius)))
        self._occurrences = occurrences
        self._described = {}

    def describe(self, feature: int) -> dict | None:
        """The substructure bit ``feature`` stands for in the reference set (:meth:`fit`).

        Hashed bits can stand for several environments; this is the most common one
        among the bit's first :data:`MAX_OCCURRENCES` occurrences in the reference set.

        Returns
        -------
        dict or None
            ``smiles``, ``smarts``, ``count`` (occurrences with that environment),
            ``total`` (occurrences looked at), ``n_environments`` (distinct
            environments among them) and ``source`` (``"reference set"``); None
            before :meth:`fit` or when no reference molecule has the bit.

        Examples
        --------
        >>> from rdkit import Chem
        >>> fp = Morgan(radius=1, n_bits=2048).fit(["Clc1ccccc1", "CCO"])
        >>> mol = Chem.MolFromSmiles("Clc1ccccc1")
        >>> bit = next(b for b in range(2048) if [e["atoms"] for e in fp.environments(mol, b)] == [(0, 1)])
        >>> fp.describe(bit)["smiles"], fp.describe(bit)["source"]
        ('Clc', 'reference set')
        """
        occurrences = getattr(self, "_occurrences", {}).get(int(feature))
        if not occurrences or self.reference is None:
            return None
        if int(feature) not in self._described:
            self._described[int(feature)] = _most_common_environment(self.reference.smiles, occurrences)
        return dict(self._described[int(feature)])

    def __repr__(self) -> str:
        return f"Morgan(radius={self.radius}, n_bits={self.n_bits}, counts={self.counts})"


def _most_common_environment(smiles: list, occurrences: list) -> dict:
    """The most common environment SMILES (and its SMARTS) among (row, center, radius) occurrences."""
    from collections import Counter

    from rdkit import Chem

    mols, counts, smarts = {}, Counter(), {}
    for row, center, radius in occurrences:
        if row not in mols:
            mols[row] = Chem.MolFromSmiles(smiles[row])
        env = atom_environment(mols[row], center, radius)
        counts[env["smiles"]] += 1
        smarts.setdefault(env["smiles"], env["smarts"])
    text, count = counts.most_common(1)[0]
    return {"smiles": text, "smarts": smarts[text], "count": count, "total": len(occurrences),
            "n_environments": len(counts), "source": "reference set"}  # fmt: skip


def atom_environment(mol, center: int, radius: int) -> dict:
    """Atoms, bonds, SMILES and SMARTS of the radius-``radius`` environment around atom ``center``.

    Examples
    --------
    >>> from rdkit import Chem
    >>> atom_environment(Chem.MolFromSmiles("CCO"), 2, 1)["atoms"]
    (1, 2)
    """
    from rdkit import Chem, rdBase

    bonds = tuple(int(b) for b in Chem.FindAtomEnvironmentOfRadiusN(mol, radius, center)) if radius > 0 else ()
    atoms = {center}
    for b in bonds:
        bond = mol.GetBondWithIdx(b)
        atoms.update((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
    atoms = tuple(sorted(atoms))
    kwargs = {"atomsToUse": list(atoms)}
    if bonds:
        kwargs["bondsToUse"] = list(bonds)
    try:  # rooted at the center reads naturally ("OC" for the O of ethanol)
        with rdBase.BlockLogs():  # a failed root logs a C++ stack trace before it raises
            smiles = Chem.MolFragmentToSmiles(mol, rootedAtAtom=center, **kwargs)
    except RuntimeError:  # RDKit roots SMILES only in single-fragment molecules (not in salts)
        smiles = Chem.MolFragmentToSmiles(mol, **kwargs)
    smarts = Chem.MolFragmentToSmarts(mol, **kwargs)
    return {"center": int(center), "radius": int(radius), "atoms": atoms, "bonds": bonds, "smiles": smiles, "smarts": smarts}


class MACCS(Featurizer):
    """The 166 MACCS structural keys (167 bits, bit 0 unused); atoms of a key from its SMARTS matches.

    A key with a count in RDKit's definition (``MACCSkeys.smartsPatts``, e.g. key
    141, more than two ``[CH3]``) is set only when its SMARTS matches more often
    than that; a set key's environments are all its matches. The keys without a
    SMARTS stand for the aromatic rings (key 125, more than one), the fragments
    (key 166, more than one) and the isotope-labelled atoms (key 1). A key that
    is not set has no environments.

    Examples
    --------
    >>> MACCS().transform(["CCO"]).shape
    torch.Size([1, 167])
    >>> fp = MACCS()
    >>> from rdkit import Chem
    >>> [len(fp.environments(Chem.MolFromSmiles(s), 141)) for s in ("CCO", "CC(C)C")]
    [0, 3]
    """

    def __init__(self):
        super().__init__()
        self.names = [f"maccs_{j}" for j in range(167)]
        self.kinds = ["binary"] * 167

    def _compute(self, mol):
        from rdkit.Chem import MACCSkeys

        fp = MACCSkeys.GenMACCSKeys(mol)
        return np.array(list(fp), dtype=np.float32), {"maccs": {int(j): () for j in fp.GetOnBits()}}

    def describe(self, feature: int) -> dict | None:
        """Key ``feature``'s definition: its SMARTS (and how many matches set it), or what the key counts.

        Examples
        --------
        >>> MACCS().describe(141)["smarts"], MACCS().describe(141)["count"]
        ('[CH3]', 2)
        """
        from rdkit.Chem import MACCSkeys

        smarts, count = MACCSkeys.smartsPatts.get(int(feature), ("?", 0))
        if smarts == "?":
            words = {125: "aromatic rings (more than one)", 166: "fragments (more than one)", 1: "isotopes"}
            text = words.get(int(feature))
            return None if text is None else {"smiles": None, "smarts": None, "text": text, "source": "key definition"}
        return {"smiles": None, "smarts": smarts, "count": int(count), "source": "key definition"}

    def environments(self, mol, feature: int, *, info=None) -> list[dict]:
        """One environment per SMARTS match of key ``feature`` (per ring, fragment or isotope for
        the keys without a SMARTS); none when the key is not set in ``mol``."""
        key = int(feature)
        if not info or "maccs" not in info:
            _, info = self._compute(mol)
        if key not in info["maccs"]:
            return []
        return [_fragment_environment(mol, atoms, smarts) for atoms, smarts in _maccs_matches(mol, key)]


@lru_cache(maxsize=None)
def _maccs_pattern(smarts: str):
    from rdkit import Chem

    return Chem.MolFromSmarts(smarts)


def _maccs_matches(mol, key: int) -> list[tuple[tuple, str | None]]:
    """(atoms, SMARTS) of each occurrence of MACCS key ``key`` in ``mol``, whether or not the key is set."""
    from rdkit import Chem
    from rdkit.Chem import MACCSkeys

    smarts, _ = MACCSkeys.smartsPatts.get(key, ("?", 0))
    if smarts != "?":
        return [(tuple(int(a) for a in match), smarts) for match in mol.GetSubstructMatches(_maccs_pattern(smarts))]
    if key == 125:  # aromatic rings, as RDKit counts them: bond rings whose bonds are all aromatic
        rings = [r for r in mol.GetRingInfo().BondRings() if all(mol.GetBondWithIdx(b).GetIsAromatic() for b in r)]
        return [(tuple(sorted({a for b in r for a in _bond_atoms(mol, b)})), None) for r in rings]
    if key == 166:  # fragments
        return [(tuple(frag), None) for frag in Chem.GetMolFrags(mol)]
    if key == 1:  # isotopes
        return [((a.GetIdx(),), None) for a in mol.GetAtoms() if a.GetIsotope()]
    return []


def _bond_atoms(mol, bond: int) -> tuple[int, int]:
    b = mol.GetBondWithIdx(bond)
    return b.GetBeginAtomIdx(), b.GetEndAtomIdx()


def _fragment_environment(mol, atoms, smarts=None) -> dict:
    """Environment dict of a set of atoms (every bond between them): SMILES, and SMARTS unless given."""
    from rdkit import Chem

    center = int(atoms[0])
    atoms = tuple(sorted(int(a) for a in atoms))
    inside = set(atoms)
    bonds = tuple(b.GetIdx() for b in mol.GetBonds() if b.GetBeginAtomIdx() in inside and b.GetEndAtomIdx() in inside)
    smiles = Chem.MolFragmentToSmiles(mol, atomsToUse=list(atoms))
    smarts = smarts or Chem.MolFragmentToSmarts(mol, atomsToUse=list(atoms))
    return {"center": center, "radius": None, "atoms": atoms, "bonds": bonds, "smiles": smiles, "smarts": smarts}


_INTEGER_DESCRIPTORS = {"HeavyAtomCount", "NHOHCount", "NOCount", "RingCount", "NumValenceElectrons", "NumRadicalElectrons"}


class Descriptors(Featurizer):
    """Named RDKit 2D descriptors; bounds from a reference set with :meth:`fit`.

    Parameters
    ----------
    names : list of str, optional
        Names from ``rdkit.Chem.Descriptors.descList``; default all of them.

    Examples
    --------
    >>> d = Descriptors(["MolWt", "TPSA", "NumHDonors"]).fit(["CCO", "c1ccccc1O"])
    >>> d.kinds
    ['continuous', 'continuous', 'integer']
    >>> [round(float(b), 2) for b in d.bounds[1]]
    [94.11, 20.23, 1.0]
    """

    def __init__(self, names=None):
        super().__init__()
        from rdkit.Chem import Descriptors as rd

        available = dict(rd.descList)
        names = list(available) if names is None else list(names)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"unknown RDKit descriptors {unknown[:5]}; see rdkit.Chem.Descriptors.descList")
        self.names = names
        self.kinds = [
            "integer" if (n.startswith(("Num", "fr_")) or n in _INTEGER_DESCRIPTORS) else "continuous" for n in names
        ]

    def _compute(self, mol):
        from rdkit.Chem import Descriptors as rd

        functions = dict(rd.descList)
        values = []
        for name in self.names:
            try:
                values.append(float(functions[name](mol)))
            except Exception as exc:  # noqa: BLE001
                raise ValueError(f"descriptor {name!r} failed: {exc}") from exc
        return np.array(values), {}

    def __repr__(self) -> str:
        return f"Descriptors({len(self.names)} descriptors)"


class Matrix(Featurizer):
    """User-supplied features: a DataFrame, array or tensor with named columns.

    Parameters
    ----------
    names : list of str
        Feature names (DataFrame columns to read).
    kinds : str or list of str
        ``"continuous"``, ``"binary"`` or ``"integer"``, one for all or one per feature.
    bounds : (lower, upper), optional
        Floats or tensors of shape (F,); default [0, 1] for binary, unbounded otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> m = Matrix(["a", "b"], kinds=["continuous", "binary"])
    >>> m.transform(pd.DataFrame({"a": [0.5], "b": [1], "id": ["x"]})).tolist()
    [[0.5, 1.0]]
    """

    def __init__(self, names, kinds="continuous", bounds=None):
        super().__init__()
        self.names = list(names)
        self.kinds = [kinds] * len(self.names) if isinstance(kinds, str) else list(kinds)
        if len(self.kinds) != len(self.names):
            raise ValueError(f"{len(self.kinds)} kinds for {len(self.names)} features")
        for k in set(self.kinds):
            if k not in KINDS:
                raise ValueError(f"feature kind must be one of {KINDS}, got {k!r}")
        if bounds is not None:
            self._bounds = _as_bounds(bounds[0], bounds[1], len(self.names))

    def featurize(self, molecules) -> tuple[torch.Tensor, Provenance]:
        """Rows of a DataFrame (columns ``names``), array or tensor; rows with NaN become errors."""
        if isinstance(molecules, pd.DataFrame):
            missing = [c for c in self.names if c not in molecules.columns]
            if missing:
                raise ValueError(f"DataFrame lacks feature columns {missing[:5]}")
            from ..io import unique_ids

            X = torch.from_numpy(molecules[self.names].to_numpy(dtype=np.float32, copy=True))
            ids = unique_ids(molecules["id"]) if "id" in molecules.columns else None
            smiles = list(molecules["smiles"]) if "smiles" in molecules.columns else None
            mols = list(molecules["mol"]) if "mol" in molecules.columns else None
        else:
            if isinstance(molecules, torch.Tensor):
                molecules = molecules.detach().cpu()
            X = torch.as_tensor(np.asarray(molecules, dtype=np.float32))
            ids = smiles = mols = None
        if X.ndim != 2 or X.shape[1] != len(self.names):
            raise ValueError(f"expected features of shape (N, {len(self.names)}); got {tuple(X.shape)}")
        n = X.shape[0]
        ids = ids or [f"x{i}" for i in range(n)]
        errors = [None] * n
        for i in torch.nonzero(~torch.isfinite(X).all(dim=1)).flatten().tolist():
            j = int(torch.nonzero(~torch.isfinite(X[i]))[0])
            errors[i] = f"record {ids[i]!r}: feature {self.names[j]!r} is not finite"
        return X, Provenance(ids, smiles or [""] * n, mols or [None] * n, errors, [{} for _ in range(n)], self)


class Concat(Featurizer):
    """Several featurizers side by side: names, kinds, bounds and environments concatenated.

    Examples
    --------
    >>> both = Concat(Morgan(radius=1, n_bits=32), Descriptors(["MolLogP"]))
    >>> both.transform(["CCO"]).shape, both.kinds[-1]
    (torch.Size([1, 33]), 'continuous')
    """

    def __init__(self, *featurizers):
        super().__init__()
        if not featurizers:
            raise ValueError("Concat needs at least one featurizer")
        self.featurizers = list(featurizers)
        self.offsets = np.cumsum([0] + [f.n_features for f in self.featurizers]).tolist()

    @property
    def names(self):
        names = [n for f in self.featurizers for n in f.names]
        if len(set(names)) < len(names):
            names = [f"{i}:{n}" for i, f in enumerate(self.featurizers) for n in f.names]
        return names

    @property
    def kinds(self):
        return [k for f in self.featurizers for k in f.kinds]

    @property
    def bounds(self):
        parts = [f.bounds for f in self.featurizers]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def fit(self, molecules) -> "Concat":
        """Fit every part (but user-supplied :class:`Matrix` features) on the same reference set; returns self.

        See :meth:`Featurizer.fit`: non-binary parts take their bounds from the set,
        fingerprint parts record where their bits occur, and :attr:`reference` holds
        the set's non-binary features in this featurizer's numbering.
        """
        X, prov = self.featurize(molecules)
        reference, _ = _reference(X, prov, self.kinds)
        for p, (part, start) in enumerate(zip(self.featurizers, self.offsets)):
            if isinstance(part, Matrix):
                continue
            infos = [info[p] if info else {} for info in prov.info]
            part._fit_rows(X[:, start : start + part.n_features], Provenance(prov.ids, prov.smiles, prov.mols, prov.errors, infos, part))
        self.reference = reference
        return self

    def describe(self, feature: int) -> dict | None:
        """What feature ``feature`` stands for, from the part it belongs to (see :meth:`Featurizer.describe`)."""
        part = int(np.searchsorted(self.offsets, feature, side="right")) - 1
        return self.featurizers[part].describe(int(feature) - self.offsets[part])

    def featurize(self, molecules):
        frame = molecule_frame(molecules)
        parts = [f.featurize(frame) for f in self.featurizers]
        X = torch.cat([p[0] for p in parts], dim=1)
        first = parts[0][1]
        errors = [next((p[1].errors[i] for p in parts if p[1].errors[i] is not None), None) for i in range(len(frame))]
        mols = [m if e is None else None for m, e in zip(frame["mol"], errors)]
        infos = [[p[1].info[i] for p in parts] for i in range(len(frame))]
        return X, Provenance(first.ids, first.smiles, mols, errors, infos, self)

    def recorded(self, info) -> set:
        return {o + j for o, f, sub in zip(self.offsets, self.featurizers, info or []) for j in f.recorded(sub)}

    def environments(self, mol, feature: int, *, info=None) -> list[dict]:
        part = int(np.searchsorted(self.offsets, feature, side="right")) - 1
        sub_info = info[part] if info is not None else None
        return self.featurizers[part].environments(mol, feature - self.offsets[part], info=sub_info)

    def __repr__(self) -> str:
        return "Concat(" + ", ".join(map(repr, self.featurizers)) + ")"


def parse_featurizer(spec: str) -> Featurizer:
    """Build a featurizer from a command-line spec.

    ``"morgan"``, ``"morgan:RADIUS:NBITS"``, ``"morgan-counts:2:2048"``,
    ``"descriptors"``, ``"descriptors:MolWt,TPSA"``, ``"maccs"``; several joined with ``+``.

    Examples
    --------
    >>> parse_featurizer("morgan:2:1024+maccs").n_features
    1191
    """
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if len(parts) > 1:
        return Concat(*(parse_featurizer(p) for p in parts))
    name, *args = spec.strip().split(":")
    name = name.lower()
    try:
        if name in ("morgan", "ecfp", "morgan-counts"):
            radius = int(args[0]) if args else 2
            n_bits = int(args[1]) if len(args) > 1 else 2048
            return Morgan(radius, n_bits, counts=name == "morgan-counts")
        if name == "descriptors":
            return Descriptors(args[0].split(",") if args else None)
        if name == "maccs":
            return MACCS()
    except (ValueError, IndexError) as error:
        raise ValueError(f"bad featurizer spec {spec!r}: {error}") from error
    raise ValueError(f"unknown featurizer {spec!r}; use morgan:RADIUS:NBITS, morgan-counts:R:N, descriptors or maccs")


__all__ = ["Morgan", "Descriptors", "MACCS", "Concat", "Matrix", "Featurizer", "Provenance", "Reference",
           "atom_environment", "molecule_frame", "parse_featurizer"]
