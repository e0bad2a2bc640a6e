"""From features back to chemistry: bit -> substructure, atom importance, highlighted drawings.

Fingerprint bits stand for atom environments; :func:`bit_environments` names
them (atom indices, SMILES and SMARTS), :func:`atom_importance` spreads
per-feature weights (attributions, or how often a bit appears in minimal flips)
over the atoms of each bit's environments, and :func:`draw_atoms` draws a
molecule with its atoms coloured by weight.

Examples
--------
>>> from rdkit import Chem
>>> from probekit.encode.mol import Morgan
>>> mol = Chem.MolFromSmiles("CCO")
>>> fp = Morgan(radius=1, n_bits=2048)
>>> X = fp.transform([mol])[0]
>>> envs = [e for j in X.nonzero().flatten().tolist() for e in bit_environments(mol, j, fp)]
>>> sorted({e["smiles"] for e in envs if e["center"] == 2})
['O', 'OC']
"""

from __future__ import annotations

import numpy as np
import torch


def bit_environments(mol, bit: int, featurizer, *, info=None) -> list[dict]:
    """The substructures that set feature ``bit`` in ``mol``.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    bit : int
        Feature index in ``featurizer``.
    featurizer : Morgan, MACCS or Concat
        Featurizers without substructures (descriptors) give no environments.
    info : dict, optional
        The molecule's recorded provenance (``Provenance.info[i]``), to skip recomputing it.

    Returns
    -------
    list of dict
        One per environment: ``center``, ``radius``, ``atoms`` (tuple of atom indices),
        ``bonds``, ``smiles`` and ``smarts``. Empty when the bit is not set.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.encode.mol import Morgan
    >>> fp = Morgan(radius=0, n_bits=2048)
    >>> mol = Chem.MolFromSmiles("CCO")
    >>> bits = fp.transform([mol])[0].nonzero().flatten().tolist()
    >>> sorted(e["atoms"] for b in bits for e in bit_environments(mol, b, fp))
    [(0,), (1,), (2,)]
    """
    return featurizer.environments(mol, int(bit), info=info)


def atom_importance(mol, weights, featurizer, *, info=None, normalize: bool = False) -> np.ndarray:
    """Spread per-feature weights over the atoms of each feature's environments.

    A feature's weight is shared equally among its environments in ``mol``, and an
    environment's share equally among its atoms; an atom's importance is the sum
    of what it receives. Features without environments (descriptors) add nothing.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    weights : array-like of shape (F,) or dict {feature index: weight}
        Attributions, bit-flip counts or any per-feature score.
    featurizer : object
        The featurizer whose feature indices ``weights`` uses.
    info : dict, optional
        The molecule's recorded provenance.
    normalize : bool
        Divide by the largest absolute value (so the result lies in [-1, 1]).

    Returns
    -------
    numpy.ndarray of shape (n_atoms,)

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.encode.mol import Morgan
    >>> fp = Morgan(radius=1, n_bits=2048)
    >>> mol = Chem.MolFromSmiles("CCO")
    >>> bit = next(b for b in range(2048) if [e["atoms"] for e in bit_environments(mol, b, fp)] == [(2,)])
    >>> atom_importance(mol, {bit: 1.0}, fp).tolist()
    [0.0, 0.0, 1.0]
    """
    n_atoms = mol.GetNumAtoms()
    out = np.zeros(n_atoms, dtype=np.float64)
    if isinstance(weights, dict):
        items = [(int(j), float(w)) for j, w in weights.items() if w]
    else:
        if isinstance(weights, torch.Tensor):
            weights = weights.detach().cpu()
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        items = [(int(j), float(w[j])) for j in np.flatnonzero(w)]
    for j, w in items:
        envs = featurizer.environments(mol, j, info=info)
        for env in envs:
            atoms = list(env["atoms"])
            out[atoms] += w / len(envs) / len(atoms)
    if normalize and np.abs(out).max() > 0:
        out = out / np.abs(out).max()
    return out


def _colour(weight: float, scale: float) -> tuple[float, float, float]:
    """Light to strong red for positive weights, light to strong blue for negative ones."""
    t = 0.0 if scale <= 0 else min(abs(weight) / scale, 1.0)
    fade = 0.85 - 0.65 * t  # never white: a highlighted atom stays visible
    if weight >= 0:
        return (1.0, fade, fade)
    return (fade, fade + 0.1 * (1 - t), 1.0)


def draw_atoms(mol, weights, *, size=(320, 240), fmt: str = "svg", legend: str = "", threshold: float = 0.05):
    """Draw ``mol`` with atoms highlighted by ``weights`` (red positive, blue negative).

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    weights : array-like of shape (n_atoms,)
        Per-atom importance, e.g. from :func:`atom_importance`.
    size : (width, height)
    fmt : {"svg", "png"}
    legend : str
        Caption under the molecule.
    threshold : float
        Atoms whose |weight| is below this fraction of the largest are not highlighted.

    Returns
    -------
    str (SVG text) or bytes (PNG)

    Examples
    --------
    >>> from rdkit import Chem
    >>> svg = draw_atoms(Chem.MolFromSmiles("CCO"), [0.0, 0.2, 1.0])
    >>> svg.lstrip().startswith("<?xml")
    True
    """
    try:
        from rdkit.Chem.Draw import rdMolDraw2D
    except ImportError as error:  # pragma: no cover - rdkit builds without drawing
        raise ImportError('drawing molecules needs RDKit with rdkit.Chem.Draw: pip install "probekit[all]"') from error
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != mol.GetNumAtoms():
        raise ValueError(f"{len(weights)} weights for a molecule with {mol.GetNumAtoms()} atoms")
    scale = float(np.abs(weights).max()) if len(weights) else 0.0
    atoms = [int(i) for i in np.flatnonzero(np.abs(weights) > threshold * scale)] if scale > 0 else []
    colours = {i: _colour(weights[i], scale) for i in atoms}
    radii = {i: 0.3 + 0.25 * min(abs(weights[i]) / scale, 1.0) for i in atoms}
    chosen = set(atoms)
    bonds, bond_colours = [], {}
    for bond in mol.GetBonds():  # bonds between two highlighted atoms take their mean weight
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a in chosen and b in chosen:
            bonds.append(bond.GetIdx())
            bond_colours[bond.GetIdx()] = _colour(0.5 * (weights[a] + weights[b]), scale)
    if fmt == "svg":
        drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    elif fmt == "png":
        drawer = rdMolDraw2D.MolDraw2DCairo(*size)
    else:
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer, mol, legend=legend, highlightAtoms=atoms, highlightAtomColors=colours, highlightAtomRadii=radii,
        highlightBonds=bonds, highlightBondColors=bond_colours,
    )
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def bit_substructures(featurizer, bits, *, provenance=None) -> dict:
    """The substructure each of ``bits`` stands for, whether or not a given molecule has it.

    A bit that a search switches on has no atoms in the molecule; what it means is
    read elsewhere: from the featurizer's reference set when it was fitted
    (:meth:`probekit.encode.mol.Featurizer.describe`: the bit's most common
    environment there, or a MACCS key's SMARTS), else from the molecules of
    ``provenance`` (the bit's most common environment among those that have it).

    Parameters
    ----------
    featurizer : Featurizer
    bits : iterable of int
        Feature indices.
    provenance : Provenance, optional
        Featurized molecules to read environments from when the featurizer cannot name a bit.

    Returns
    -------
    dict
        bit -> ``{"smiles", "smarts", "source", ...}`` for the bits that could be named;
        ``source`` is ``"reference set"``, ``"key definition"`` or ``"molecules probed"``.

    Examples
    --------
    >>> from probekit.encode.mol import Morgan
    >>> fp = Morgan(radius=1, n_bits=2048)
    >>> X, prov = fp.featurize(["CCCl", "CCO"])
    >>> chlorine = [b for b in X[0].nonzero().flatten().tolist() if X[1, b] == 0]
    >>> sorted(d["smiles"] for d in bit_substructures(fp, chlorine, provenance=prov).values())
    ['C(C)Cl', 'Cl', 'ClC']
    """
    from collections import Counter

    from .encode.mol import MAX_OCCURRENCES

    out = {}
    for bit in dict.fromkeys(int(b) for b in bits):
        described = featurizer.describe(bit)
        if described is not None:
            out[bit] = described
            continue
        if provenance is None:
            continue
        counts, smarts, total = Counter(), {}, 0
        for i in range(len(provenance.mols)):
            if provenance.mols[i] is None or bit not in featurizer.recorded(provenance.info[i]):
                continue
            for env in provenance.environments(i, bit):
                counts[env["smiles"]] += 1
                smarts.setdefault(env["smiles"], env["smarts"])
                total += 1
            if total >= MAX_OCCURRENCES:
                break
        if counts:
            text, count = counts.most_common(1)[0]
            out[bit] = {"smiles": text, "smarts": smarts[text], "count": count, "total": total,
                        "n_environments": len(counts), "source": "molecules probed"}  # fmt: skip
    return out


def counterfactual_bits(mol, bits, featurizer, *, info=None) -> list[dict]:
    """Describe flipped fingerprint bits as chemistry: which substructure each removed bit stood for.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    bits : iterable of (feature index, old value, new value)
        Edits such as those of a bit-flip search.

    Returns
    -------
    list of dict
        ``feature``, ``change`` ("removed" or "added"), ``atoms`` (union over the
        bit's environments in ``mol``; empty for added bits) and ``smiles`` of the
        environments.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.encode.mol import Morgan
    >>> fp = Morgan(radius=0, n_bits=2048)
    >>> mol = Chem.MolFromSmiles("CCO")
    >>> bit = next(b for b in range(2048) if [e["atoms"] for e in bit_environments(mol, b, fp)] == [(2,)])
    >>> counterfactual_bits(mol, [(bit, 1, 0)], fp)[0]["atoms"]
    (2,)
    """
    out = []
    for feature, old, new in bits:
        envs = featurizer.environments(mol, int(feature), info=info) if float(old) > float(new) else []
        atoms = tuple(sorted({a for e in envs for a in e["atoms"]}))
        out.append(
            {
                "feature": int(feature),
                "change": "removed" if float(old) > float(new) else "added",
                "atoms": atoms,
                "smiles": ".".join(dict.fromkeys(e["smiles"] for e in envs)),
            }
        )
    return out


def _mutants(mol, atoms, elements) -> list[tuple[str, tuple, object]]:
    """Single-atom edits of ``mol`` that RDKit can sanitize: element swaps and removal of terminal atoms."""
    from rdkit import Chem, rdBase

    periodic = Chem.GetPeriodicTable()
    out = []
    with rdBase.BlockLogs():
        for a in atoms:
            atom = mol.GetAtomWithIdx(a)
            for element in elements:
                number = periodic.GetAtomicNumber(element)
                if number == atom.GetAtomicNum():
                    continue
                rw = Chem.RWMol(mol)
                target = rw.GetAtomWithIdx(a)
                target.SetAtomicNum(number)
                target.SetFormalCharge(0)
                target.SetNumExplicitHs(0)
                target.SetNoImplicit(False)
                out.append((f"atom {a} {atom.GetSymbol()}>{element}", (a,), rw))
            if atom.GetDegree() == 1 and mol.GetNumAtoms() > 1:
                rw = Chem.RWMol(mol)
                neighbour = atom.GetNeighbors()[0].GetIdx()
                rw.GetAtomWithIdx(neighbour).SetNoImplicit(False)
                rw.RemoveAtom(a)
                out.append((f"delete atom {a} ({atom.GetSymbol()})", (a,), rw))
        valid = []
        for edit, touched, rw in out:
            candidate = rw.GetMol()
            try:
                Chem.SanitizeMol(candidate)
            except Exception:  # noqa: BLE001 - an impossible valence or ring: not a molecule
                continue
            if "delete" not in edit:  # no hypervalent swaps (a ring C turned into S(IV) is not a plausible analogue)
                atom = candidate.GetAtomWithIdx(touched[0])
                if atom.GetTotalValence() > periodic.GetDefaultValence(atom.GetAtomicNum()):
                    continue
            valid.append((edit, touched, candidate))
    return valid


def atom_swaps(adapter, mol, *, goal=None, atoms=None, elements=("C", "N", "O", "S", "F", "Cl")):
    """Real molecules one atom edit away, scored by the model: which small change moves the prediction?

    Every heavy atom (or those in ``atoms``) is swapped for each element of
    ``elements`` (keeping the new element at its usual valence, so no
    hypervalent S or N appear), and terminal atoms are also deleted; edits RDKit
    cannot sanitize are dropped and duplicates merged. All candidates are featurized and scored in
    one batch through ``adapter``. The enumeration is deterministic (no seed needed).

    Parameters
    ----------
    adapter : FeatureModel with a featurizer
    mol : rdkit.Chem.Mol or str
    goal : Goal or str, optional
        When given, ``g`` and ``success`` say which candidates reach it.
    atoms : iterable of int, optional
        Atoms that may change, e.g. those of :meth:`MoleculeReport.atoms` marked critical.
    elements : tuple of str

    Returns
    -------
    pandas.DataFrame
        One row per distinct candidate, lowest score first (lowest ``g`` with a goal):
        ``smiles``, ``edit``, ``atoms``, ``score``, ``delta`` (score minus the
        original's) and, with a goal, ``g`` and ``success``.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> from probekit.encode.mol import Descriptors
    >>> adapter = FeatureModel(torch.nn.Identity(), featurizer=Descriptors(["MolWt"]), output=outputs.value(0), device="cpu")
    >>> table = atom_swaps(adapter, "CCO")
    >>> table.iloc[0][["smiles", "edit"]].tolist()
    ['CC', 'delete atom 2 (O)']
    """
    import pandas as pd
    from rdkit import Chem

    from .goals import parse

    if isinstance(mol, str):
        smiles = mol
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            raise ValueError(f"cannot parse SMILES {smiles!r}")
    atoms = range(mol.GetNumAtoms()) if atoms is None else [int(a) for a in atoms]
    reference = Chem.MolToSmiles(mol)
    seen, rows, mols = {reference}, [], []
    for edit, touched, candidate in _mutants(mol, atoms, elements):
        smiles = Chem.MolToSmiles(candidate)
        if smiles in seen:
            continue
        seen.add(smiles)
        rows.append({"smiles": smiles, "edit": edit, "atoms": touched})
        mols.append(candidate)
    columns = ["smiles", "edit", "atoms", "score", "delta"] + (["g", "success"] if goal is not None else [])
    if not mols:
        return pd.DataFrame(columns=columns)
    X0 = adapter.encode([mol])
    X = adapter.encode(mols)
    before = float(adapter.score(X0)[0])
    table = pd.DataFrame(rows)
    if goal is not None:
        bound = adapter.bind(parse(goal), X0)
        scores, g = adapter.evaluate(X, bound, rows=torch.zeros(len(mols), dtype=torch.long))
        table["score"], table["g"] = scores.cpu().numpy(), g.cpu().numpy()
        table["success"] = table["g"] <= 0
    else:
        table["score"] = adapter.score(X).cpu().numpy()
    table["delta"] = table["score"] - before
    order = "g" if goal is not None else "score"
    return table.sort_values(order, kind="stable").reset_index(drop=True)[columns]


__all__ = ["bit_environments", "bit_substructures", "atom_importance", "draw_atoms", "counterfactual_bits",
           "atom_swaps"]
