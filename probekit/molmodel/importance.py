"""Which atoms and fragments hold a molecule's predicted score up, each against a random baseline.

Three measures, all through a :class:`probekit.molmodel.MoleculeModel`:

- :func:`atom_importance`: the score of the molecule minus its score with one atom
  masked (``method="occlusion"``), or the integrated-gradient attribution of the
  atom's features (``method="gradient"``, for graph models whose atom and bond
  features the adapter can reach: Chemprop and graph kinds).
- :func:`fragment_importance`: the same with each BRICS or RECAP fragment masked.
- :func:`fragment_shapley`: Shapley values of the fragments, exact over all
  orders when there are few fragments and sampled over random orders otherwise;
  they sum to the molecule's score minus its score with every fragment masked.

An atom is masked, for graph models, by setting its features to zero
(``mask="features"``); for other models it becomes a dummy atom ``*`` that keeps
the skeleton (``mask="dummy"``), or is deleted, with hydrogens filling the
valences of its neighbours (``mask="remove"``, falling back to a dummy atom where
the rest cannot be sanitised). Every importance is compared with masking random
atoms (single atoms for atoms; random connected atom sets of the fragment's size
for fragments): ``ratio`` is how many times larger it is than the random mean,
``p_value`` the empirical one-sided p-value (:class:`probekit.results.BaselineResult`).
All masked molecules of a call go to the model in batches.

Examples
--------
>>> import torch
>>> from rdkit import Chem
>>> from probekit import outputs
>>> from probekit.molmodel import MoleculeModel
>>> phenol = Chem.MolFromSmarts("[OX2H]c")
>>> def n_phenols(mols):
...     return torch.tensor([float(len(m.GetSubstructMatches(phenol))) for m in mols])
>>> adapter = MoleculeModel(n_phenols, kind="mols", output=outputs.value(0), device="cpu")
>>> result = atom_importance(adapter, ["Cc1ccc(O)cc1"], n_random=50)
>>> frame = result.to_frame()
>>> frame[frame["importance"] > 0][["atom", "element", "importance"]].values.tolist()
[[4, 'C', 1.0], [5, 'O', 1.0]]
"""

from __future__ import annotations

import itertools
import math
import time
import zlib

import numpy as np
import pandas as pd
import torch

from .._warnings import warn
from ..probe.baseline import compared_stats
from ..results import BaselineResult
from .adapter import _records
from .results import AtomImportance, FragmentImportance, smiles_in_atom_order

MASKS = ("auto", "features", "dummy", "remove")
SCHEMES = ("brics", "recap")
#: Orders of the fragments evaluated exactly (all of them) when there are at most this many.
MAX_EXACT_ORDERS = 5040


# ------------------------------------------------------------------ masking
def _mask_kind(adapter, mask: str) -> str:
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    graph = adapter.feature_names() is not None
    if mask == "auto":
        return "features" if graph else "dummy"
    if mask == "features" and not graph:
        raise ValueError(f"mask='features' needs a graph model (kind 'chemprop' or 'graph'), not kind {adapter.kind!r}")
    return mask


def _sanitized(mol):
    from rdkit import Chem, rdBase

    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 - any RDKit failure means the edit gives no molecule
        return None
    return mol.GetMol()


def _with_dummies(mol, atoms):
    from rdkit import Chem

    edited = Chem.RWMol(mol)
    for a in atoms:
        atom = edited.GetAtomWithIdx(int(a))
        atom.SetAtomicNum(0)
        atom.SetFormalCharge(0)
        atom.SetIsotope(0)
        atom.SetNumExplicitHs(0)
        atom.SetNoImplicit(True)
    return _sanitized(edited)


def mask_atoms(mol, atoms, *, how: str = "dummy"):
    """``mol`` with ``atoms`` masked by an edit of the molecule: a new, sanitised RDKit molecule.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    atoms : iterable of int
        Atom indices.
    how : {"dummy", "remove"}
        ``"dummy"``: each atom becomes a dummy atom ``*`` (no charge, no hydrogens);
        bonds and the rest stay. ``"remove"``: the atoms are deleted and their
        neighbours' valences filled with hydrogens (the rest may fall apart into
        pieces, which stay); where that cannot be sanitised (an atom of an aromatic
        ring) or leaves nothing, the atoms become dummies instead.

    Returns
    -------
    rdkit.Chem.Mol or None
        None when even the dummy version cannot be sanitised.

    Examples
    --------
    >>> from rdkit import Chem
    >>> mol = Chem.MolFromSmiles("c1ccccc1O")
    >>> Chem.MolToSmiles(mask_atoms(mol, [6], how="remove")), Chem.MolToSmiles(mask_atoms(mol, [6]))
    ('c1ccccc1', '*c1ccccc1')
    >>> Chem.MolToSmiles(mask_atoms(mol, [0], how="remove"))
    'Oc1*cccc1'
    """
    from rdkit import Chem

    if how not in ("dummy", "remove"):
        raise ValueError(f"how must be 'dummy' or 'remove', got {how!r}")
    atoms = sorted({int(a) for a in atoms}, reverse=True)
    if how == "remove" and len(atoms) < mol.GetNumAtoms():
        edited = Chem.RWMol(mol)
        for a in atoms:
            for neighbour in edited.GetAtomWithIdx(a).GetNeighbors():
                if neighbour.GetFormalCharge() == 0 and not neighbour.GetIsAromatic():
                    neighbour.SetNoImplicit(False)
        for a in atoms:
            edited.RemoveAtom(a)
        removed = _sanitized(edited)
        if removed is not None:
            return removed
    return _with_dummies(mol, atoms)


def _masked_scores(adapter, mols: list, masks: list, how: str, bond_masks=None) -> torch.Tensor:
    """Scores (M,) of molecules ``mols`` with the atoms ``masks`` (and, for features, bonds) masked; NaN where that gives no score."""
    if not mols:
        return torch.zeros(0, dtype=torch.float64)
    if how == "features":
        scores, problems = adapter.score_masked(mols, masks, bond_masks=bond_masks)
    else:
        scores, problems = adapter.score_molecules([mask_atoms(m, a, how=how) for m, a in zip(mols, masks)])
    failed = [p for p in problems if p is not None]
    if failed:
        warn(
            f"{len(failed)} of {len(mols)} masked molecules have no score (their importance is NaN); "
            f"the first: {failed[0]}"
        )
    return scores


# --------------------------------------------------------------- molecules
class _Context:
    """Ids, SMILES, molecules, reference scores and errors of the molecules of one call."""

    def __init__(self, adapter, molecules):
        records = _records(molecules)
        if isinstance(molecules, pd.DataFrame) and "id" in molecules.columns:
            self.ids = [str(i) for i in molecules["id"]]
        else:
            self.ids = [f"mol{i}" for i in range(len(records))]
        self.mols, _ = adapter.parse(molecules)
        self.reference, problems = adapter.score_molecules(molecules)
        self.errors = [p if p is None or p.startswith("record ") else f"record {i}: {p}" for i, p in enumerate(problems)]
        self.smiles = [
            r.strip() if isinstance(r, str) else smiles_in_atom_order(m) if m is not None else ("" if r is None else str(r))
            for m, r in zip(self.mols, records)
        ]  # fmt: skip
        self.good = [i for i, e in enumerate(self.errors) if e is None]

    def rng(self, i: int, seed: int) -> np.random.Generator:
        """A generator for molecule ``i`` that depends on the seed and the molecule, not on its place in the call."""
        from rdkit import Chem

        return np.random.default_rng([int(seed), zlib.crc32(Chem.MolToSmiles(self.mols[i]).encode())])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 for the largest value (NaN last), ties in index order."""
    order = np.argsort(-np.where(np.isnan(values), -np.inf, values), kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def _stats(deltas: list, values: np.ndarray) -> dict:
    """Ratio and p-value of each importance (T,) against its random draws (T rows of n_random)."""
    if len(values) == 0:
        return {"ratio": np.zeros(0), "p_value": np.zeros(0)}
    baseline = BaselineResult(deltas=torch.as_tensor(np.asarray(deltas, dtype=np.float64)), k=1, kind="masked atoms")
    return compared_stats(baseline, torch.as_tensor(values))


def _params(adapter, start: float, calls: int, **params) -> dict:
    return {**params, "output": adapter.output.name, "device": str(adapter.device), "kind": adapter.kind,
            "model_calls": adapter.n_calls - calls, "seconds": time.perf_counter() - start}  # fmt: skip


# ------------------------------------------------------------------ atoms
def _float_atom_features(adapter, mol) -> bool:
    """Whether the graph model's atom features of ``mol`` are floating point (so that gradients exist)."""
    graphs = adapter._graphs([mol])
    return bool(getattr(graphs, adapter.feature_names()[0]).is_floating_point())


def _resolve_method(adapter, method: str) -> str:
    if method not in ("auto", "occlusion", "gradient"):
        raise ValueError(f"method must be 'auto', 'occlusion' or 'gradient', got {method!r}")
    if method == "auto":
        return "gradient" if adapter.feature_names() is not None else "occlusion"
    if method == "gradient" and adapter.feature_names() is None:
        raise ValueError(
            f"method='gradient' needs a model differentiable in atom features (kind 'chemprop' or 'graph'), "
            f"not kind {adapter.kind!r}; use method='occlusion'"
        )
    return method


def integrated_gradients(adapter, molecules, *, n_steps: int = 50) -> list[tuple[np.ndarray, np.ndarray]]:
    """Integrated gradients of a graph model's score over each molecule's atom and bond features.

    captum's ``IntegratedGradients`` from all-zero features to the molecule's own,
    summed over the features of each atom and over the features of both directed
    edges of each bond. Molecules share model calls: each call holds up to about
    ``adapter.batch_size`` molecule copies.

    Parameters
    ----------
    adapter : MoleculeModel
        Of kind ``"chemprop"`` or ``"graph"``.
    molecules : list of rdkit.Chem.Mol
    n_steps : int
        Steps of the path integral.

    Returns
    -------
    list of (atoms, bonds)
        Per molecule, ``atoms`` (n_atoms,) and ``bonds`` (n_bonds,) numpy arrays; together
        they sum to about the score minus the score with all features zero.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.molmodel import MoleculeModel
    >>> from probekit.molmodel.graph import featurize_graphs
    >>> def n_oxygens(x, edge_index, edge_attr, batch):
    ...     return torch.zeros(int(batch.max()) + 1).index_add(0, batch, x[:, 2])
    >>> adapter = MoleculeModel(n_oxygens, kind="graph", featurizer=featurize_graphs, device="cpu")
    >>> [(a.round(6).tolist(), b.tolist()) for a, b in integrated_gradients(adapter, [Chem.MolFromSmiles("OCC")], n_steps=8)]
    [([1.0, 0.0, 0.0], [0.0, 0.0])]
    """
    from captum.attr import IntegratedGradients

    mols, out = list(molecules), []
    per_call = max(1, adapter.batch_size // max(1, n_steps))
    for first in range(0, len(mols), per_call):
        chunk = mols[first : first + per_call]
        atoms, bonds, edges, score = adapter.graph_score_fn(chunk)
        with adapter.session(), torch.enable_grad():
            a, b = IntegratedGradients(score).attribute(
                (atoms[None], bonds[None]), baselines=(torch.zeros_like(atoms)[None], torch.zeros_like(bonds)[None]),
                n_steps=n_steps, internal_batch_size=max(1, adapter.batch_size // len(chunk)),
            )  # fmt: skip
        out += _per_molecule(chunk, a[0].sum(dim=-1), b[0].sum(dim=-1), edges)
    return out


def _per_molecule(mols: list, atom_values: torch.Tensor, edge_values: torch.Tensor, edges: torch.Tensor) -> list:
    """Atom values (A,) and directed-edge values (E,) of molecules batched together, split into (atoms, bonds) per molecule."""
    starts = np.cumsum([0] + [m.GetNumAtoms() for m in mols])
    atom_values = atom_values.detach().double().cpu().numpy()
    out = [(atom_values[starts[k] : starts[k + 1]], np.zeros(m.GetNumBonds())) for k, m in enumerate(mols)]
    for (u, v), value in zip(edges.T.tolist(), edge_values.detach().double().cpu().tolist()):
        k = int(np.searchsorted(starts, u, side="right")) - 1
        bond = mols[k].GetBondBetweenAtoms(int(u - starts[k]), int(v - starts[k]))
        if bond is not None:
            out[k][1][bond.GetIdx()] += value
    return out


def _occlusion(adapter, ctx: _Context, how: str, n_steps: int) -> tuple[dict, list]:
    """Per good molecule the score change of masking each atom (n_atoms,), and (molecule, bond, change) rows for bonds."""
    pairs = [(i, (a,), ()) for i in ctx.good for a in range(ctx.mols[i].GetNumAtoms())]
    n_atoms = len(pairs)
    if how == "features":
        pairs += [(i, (), (b,)) for i in ctx.good for b in range(ctx.mols[i].GetNumBonds())]
    scores = _masked_scores(adapter, [ctx.mols[i] for i, _, _ in pairs], [a for _, a, _ in pairs], how, [b for _, _, b in pairs])
    effects = np.array([float(ctx.reference[i]) for i, _, _ in pairs]) - scores.numpy()
    start_of = np.cumsum([0] + [ctx.mols[i].GetNumAtoms() for i in ctx.good])
    values = {i: effects[start_of[k] : start_of[k + 1]] for k, i in enumerate(ctx.good)}
    return values, [(i, b[0], float(e)) for (i, _, b), e in zip(pairs[n_atoms:], effects[n_atoms:])]


def _gradients(adapter, ctx: _Context, how: str, n_steps: int) -> tuple[dict, list]:
    """Per good molecule the integrated gradients of its atoms (n_atoms,), and (molecule, bond, attribution) rows."""
    values, bond_rows = {}, []
    for i, (atoms, bonds) in zip(ctx.good, integrated_gradients(adapter, [ctx.mols[i] for i in ctx.good], n_steps=n_steps)):
        values[i] = atoms
        bond_rows += [(i, b, float(v)) for b, v in enumerate(bonds)]
    return values, bond_rows


def atom_importance(
    adapter, molecules, *, method: str = "auto", mask: str = "auto", n_random: int = 200, n_steps: int = 50, seed: int = 0
) -> AtomImportance:
    """How much each atom holds each molecule's score up, against random atoms of the same molecule.

    Parameters
    ----------
    adapter : MoleculeModel
    molecules : str, rdkit.Chem.Mol, list of them, or DataFrame (N records)
    method : {"auto", "occlusion", "gradient"}
        ``"occlusion"``: score minus the score with the atom masked (one masked molecule
        per atom, all scored in batches); with feature masking, each bond's features
        are masked the same way, giving bond rows. ``"gradient"``: integrated gradients over the
        atom's features (:func:`integrated_gradients`), with bond attributions too.
        ``"auto"``: gradient for graph models, occlusion for the others.
    mask : {"auto", "features", "dummy", "remove"}
        How occlusion masks an atom (see :func:`mask_atoms`); ``"auto"`` zeroes a graph
        model's atom features and makes a dummy atom for other models.
    n_random : int
        Random atoms of the same molecule drawn as each atom's baseline.
    n_steps : int
        Steps of the integrated-gradient path.
    seed : int
        Seeds the random draws (per molecule, whatever its place in the call).

    Returns
    -------
    AtomImportance
        ``to_frame()``: one row per molecule and atom (id, smiles, atom, element,
        importance, ratio, p_value, rank, method); invalid molecules and molecules the
        model cannot score become error rows.

    Examples
    --------
    >>> from probekit import outputs
    >>> from probekit.molmodel import MoleculeModel
    >>> def n_nitrogens(smiles):
    ...     return torch.tensor([float(s.count("N") + s.count("n")) for s in smiles])
    >>> adapter = MoleculeModel(n_nitrogens, kind="smiles", output=outputs.value(0), device="cpu")
    >>> result = atom_importance(adapter, ["CCN", "C1CC"], n_random=20)
    >>> result.to_frame()[["id", "atom", "importance", "rank"]].values.tolist()[:3]
    [['mol0', 0, 0.0, 2], ['mol0', 1, 0.0, 3], ['mol0', 2, 1.0, 1]]
    >>> result.errors[1].startswith("record 1 'C1CC': not a valid SMILES")
    True
    """
    start, calls = time.perf_counter(), adapter.n_calls
    requested = method
    method = _resolve_method(adapter, method)
    how = _mask_kind(adapter, mask)
    ctx = _Context(adapter, molecules)
    if method == "gradient" and ctx.good and not _float_atom_features(adapter, ctx.mols[ctx.good[0]]):
        if requested == "gradient":
            raise ValueError("method='gradient' needs floating-point atom features; this featurizer gives integer "
                             "codes (as PyTorch Geometric's from_rdmol does): use method='occlusion'")  # fmt: skip
        method = "occlusion"  # integer atom codes have no gradient: mask them instead
    values, bond_rows = (_occlusion if method == "occlusion" else _gradients)(adapter, ctx, how, n_steps)
    molecule, atom, element, importance, draws, ranks = [], [], [], [], [], []
    for i in ctx.good:
        v = values[i]
        rng = ctx.rng(i, seed)
        molecule += [i] * len(v)
        atom += list(range(len(v)))
        element += [a.GetSymbol() for a in ctx.mols[i].GetAtoms()]
        importance += v.tolist()
        draws += list(v[rng.integers(len(v), size=(len(v), n_random))])
        ranks += _ranks(v).tolist()
    importance = np.asarray(importance, dtype=np.float64)
    stats = _stats(draws, importance)
    return AtomImportance(
        ids=ctx.ids, smiles=ctx.smiles, reference=ctx.reference, errors=ctx.errors,
        molecule=torch.tensor(molecule, dtype=torch.long), atom=torch.tensor(atom, dtype=torch.long), element=element,
        importance=torch.from_numpy(importance), ratio=torch.tensor(stats["ratio"]),
        p_value=torch.tensor(stats["p_value"]), rank=torch.tensor(ranks, dtype=torch.long), method=method,
        bond_molecule=torch.tensor([r[0] for r in bond_rows], dtype=torch.long),
        bond=torch.tensor([r[1] for r in bond_rows], dtype=torch.long),
        bond_importance=torch.tensor([r[2] for r in bond_rows], dtype=torch.float64),
        params=_params(adapter, start, calls, mask=how if method == "occlusion" else "none", n_random=n_random,
                       n_steps=n_steps if method == "gradient" else 0, seed=seed),
    )  # fmt: skip


# ------------------------------------------------------------------ fragments
def _recap_bonds(mol) -> set:
    """Bonds RDKit's RECAP reactions cut: bonds of a reaction's match whose atoms end in different products."""
    from rdkit.Chem import Recap

    cut = set()
    for reaction in Recap.reactions:
        template = reaction.GetReactantTemplate(0)
        groups = {}
        for p, product in enumerate(reaction.GetProducts()):
            groups.update({a.GetAtomMapNum(): p for a in product.GetAtoms() if a.GetAtomMapNum()})
        side = [groups.get(a.GetAtomMapNum(), -1 - a.GetIdx()) for a in template.GetAtoms()]
        for match in mol.GetSubstructMatches(template):
            for bond in template.GetBonds():
                i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
                if side[i] != side[j]:
                    cut.add(mol.GetBondBetweenAtoms(match[i], match[j]).GetIdx())
    return cut


def fragments(mol, *, scheme: str = "brics") -> list[tuple[int, ...]]:
    """The atoms of each fragment of ``mol`` after cutting the bonds BRICS or RECAP cuts (RDKit's rules).

    Parameters
    ----------
    mol : rdkit.Chem.Mol
    scheme : {"brics", "recap"}

    Returns
    -------
    list of tuple of int
        Atom indices of each fragment, in order of their first atom; the whole
        molecule when no bond is cut.

    Examples
    --------
    >>> from rdkit import Chem
    >>> mol = Chem.MolFromSmiles("CC(=O)NCc1ccccc1")
    >>> fragments(mol)
    [(0, 1, 2), (3,), (4,), (5, 6, 7, 8, 9, 10)]
    >>> fragments(mol, scheme="recap")
    [(0, 1, 2), (3, 4, 5, 6, 7, 8, 9, 10)]
    """
    from rdkit import Chem
    from rdkit.Chem import BRICS

    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "brics":
        bonds = {mol.GetBondBetweenAtoms(a, b).GetIdx() for (a, b), _ in BRICS.FindBRICSBonds(mol)}
    else:
        bonds = _recap_bonds(mol)
    if not bonds:
        return [tuple(range(mol.GetNumAtoms()))]
    pieces = Chem.FragmentOnBonds(mol, sorted(bonds), addDummies=False)
    return sorted((tuple(sorted(g)) for g in Chem.GetMolFrags(pieces, sanitizeFrags=False)), key=min)


def _random_connected(neighbours: list, size: int, rng: np.random.Generator) -> tuple[int, ...]:
    """A random connected set of ``size`` atoms, grown from a random atom one random neighbour at a time."""
    n = len(neighbours)
    chosen = {int(rng.integers(n))}
    while len(chosen) < size:
        frontier = sorted({b for a in chosen for b in neighbours[a]} - chosen) or sorted(set(range(n)) - chosen)
        chosen.add(frontier[int(rng.integers(len(frontier)))])
    return tuple(sorted(chosen))


class _Fragments:
    """The fragments of the good molecules of a call, and random connected atom sets of their sizes."""

    def __init__(self, ctx: _Context, scheme: str, n_random: int, seed: int):
        self.ctx, self.scheme = ctx, scheme
        self.of = {i: fragments(ctx.mols[i], scheme=scheme) for i in ctx.good}
        self.random = {}
        for i in ctx.good:
            mol = ctx.mols[i]
            neighbours = [[b.GetIdx() for b in a.GetNeighbors()] for a in mol.GetAtoms()]
            rng = ctx.rng(i, seed)
            for size in sorted({len(f) for f in self.of[i]}):
                self.random[i, size] = [_random_connected(neighbours, size, rng) for _ in range(n_random)]

    def candidates(self) -> list:
        """(molecule, atoms) of every random set, in a fixed order."""
        return [(key[0], atoms) for key in sorted(self.random) for atoms in self.random[key]]

    def result(self, adapter, values: dict, random_effects: dict, *, method: str, empty, start, calls, **params):
        """The :class:`FragmentImportance` of per-molecule fragment values."""
        from rdkit import Chem

        ctx = self.ctx
        molecule, index, atoms, smarts, smiles, importance, draws, ranks = [], [], [], [], [], [], [], []
        for i in ctx.good:
            frags, v = self.of[i], np.asarray(values[i], dtype=np.float64)
            molecule += [i] * len(frags)
            index += list(range(len(frags)))
            atoms += [list(f) for f in frags]
            smarts += [Chem.MolFragmentToSmarts(ctx.mols[i], atomsToUse=list(f)) for f in frags]
            smiles += [Chem.MolFragmentToSmiles(ctx.mols[i], atomsToUse=list(f)) for f in frags]
            importance += v.tolist()
            draws += [random_effects[i, len(f)] for f in frags]
            ranks += _ranks(v).tolist()
        importance = np.asarray(importance, dtype=np.float64)
        stats = _stats(draws, importance)
        return FragmentImportance(
            ids=ctx.ids, smiles=ctx.smiles, reference=ctx.reference, errors=ctx.errors,
            molecule=torch.tensor(molecule, dtype=torch.long), fragment=torch.tensor(index, dtype=torch.long),
            atoms=atoms, smarts=smarts, fragment_smiles=smiles, importance=torch.from_numpy(importance),
            ratio=torch.tensor(stats["ratio"]), p_value=torch.tensor(stats["p_value"]),
            rank=torch.tensor(ranks, dtype=torch.long), method=method, scheme=self.scheme,
            empty=torch.as_tensor(empty, dtype=torch.float64), params=_params(adapter, start, calls, **params),
        )  # fmt: skip


def _score_with_random(adapter, ctx: _Context, frags: _Fragments, own: list, how: str) -> tuple[np.ndarray, dict]:
    """Scores of the masked molecules ``own`` ((molecule, atoms) pairs) and the random-set effects, in one batched run."""
    extra = frags.candidates()
    pairs = own + extra
    scores = _masked_scores(adapter, [ctx.mols[i] for i, _ in pairs], [a for _, a in pairs], how).numpy()
    random_effects = {key: [] for key in frags.random}
    for (i, atoms), score in zip(extra, scores[len(own) :]):
        random_effects[i, len(atoms)].append(float(ctx.reference[i]) - score)
    return scores[: len(own)], random_effects


def fragment_importance(
    adapter, molecules, *, scheme: str = "brics", mask: str = "auto", n_random: int = 64, seed: int = 0
) -> FragmentImportance:
    """How much each BRICS or RECAP fragment holds each molecule's score up, by masking it.

    Parameters
    ----------
    adapter : MoleculeModel
    molecules : str, rdkit.Chem.Mol, list of them, or DataFrame (N records)
    scheme : {"brics", "recap"}
        Which bonds cut the molecule into fragments (:func:`fragments`).
    mask : {"auto", "features", "dummy", "remove"}
        How the fragment's atoms are masked (see :func:`atom_importance`).
    n_random : int
        Random connected atom sets of each fragment's size masked as its baseline.
    seed : int

    Returns
    -------
    FragmentImportance
        ``importance`` is the score minus the score with the fragment masked.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.molmodel.adapter import MoleculeModel
    >>> ester = Chem.MolFromSmarts("C(=O)O[#6]")
    >>> adapter = MoleculeModel(lambda ms: torch.tensor([float(m.HasSubstructMatch(ester)) for m in ms]),
    ...                         kind="mols", output=lambda y: y[:, 0], device="cpu")
    >>> result = fragment_importance(adapter, ["CC(=O)Oc1ccccc1"], n_random=16)
    >>> result.to_frame()[["fragment_smiles", "importance"]].values.tolist()
    [['CC=O', 1.0], ['O', 1.0], ['c1ccccc1', 1.0]]
    """
    start, calls = time.perf_counter(), adapter.n_calls
    how = _mask_kind(adapter, mask)
    ctx = _Context(adapter, molecules)
    frags = _Fragments(ctx, scheme, n_random, seed)
    own = [(i, f) for i in ctx.good for f in frags.of[i]]
    scores, random_effects = _score_with_random(adapter, ctx, frags, own, how)
    values, k = {}, 0
    for i in ctx.good:
        n = len(frags.of[i])
        values[i] = float(ctx.reference[i]) - scores[k : k + n]
        k += n
    return frags.result(adapter, values, random_effects, method="occlusion", empty=torch.full((len(ctx.ids),), math.nan),
                        start=start, calls=calls, mask=how, n_random=n_random, seed=seed)  # fmt: skip


def _orders(n: int, n_samples: int, rng: np.random.Generator) -> tuple[list, bool]:
    """All orders of ``n`` fragments when there are at most ``n_samples`` of them, else ``n_samples`` random ones."""
    if math.factorial(n) <= min(n_samples, MAX_EXACT_ORDERS):
        return [list(p) for p in itertools.permutations(range(n))], True
    return [rng.permutation(n).tolist() for _ in range(n_samples)], False


def fragment_shapley(
    adapter, molecules, *, scheme: str = "brics", mask: str = "auto", n_samples: int = 64, n_random: int = 64, seed: int = 0
) -> FragmentImportance:
    """Shapley values of each molecule's fragments: their share of the score over coalitions of fragments.

    The value of a coalition is the score with every fragment outside it masked.
    Each fragment's Shapley value is the mean over orders of the fragments of what
    adding it changes; it is exact (all orders) when the orders number at most
    ``n_samples``, else the mean over ``n_samples`` random orders. Over every order
    the values sum to the score minus the score with all fragments masked
    (``empty``), exactly, sampled or not.

    Parameters
    ----------
    adapter : MoleculeModel
    molecules : str, rdkit.Chem.Mol, list of them, or DataFrame (N records)
    scheme : {"brics", "recap"}
    mask : {"auto", "features", "dummy", "remove"}
    n_samples : int
        Orders of the fragments sampled per molecule (all of them when fewer exist).
    n_random : int
        Baseline draws: random connected atom sets of each fragment size, masked.
    seed : int
        Seeds the orders and the baseline draws.

    Returns
    -------
    FragmentImportance
        ``importance`` holds the Shapley values, ``empty`` the all-masked score,
        ``params["exact"]`` whether each molecule's values used every order.

    Examples
    --------
    >>> from probekit import outputs
    >>> from probekit.molmodel import MoleculeModel
    >>> adapter = MoleculeModel(lambda ms: torch.tensor([float(sum(a.GetAtomicNum() == 8 for a in m.GetAtoms())) for m in ms]),
    ...                         kind="mols", output=outputs.value(0), device="cpu")
    >>> result = fragment_shapley(adapter, ["CC(=O)Oc1ccccc1"], n_random=8)
    >>> result.importance.tolist(), float(result.reference[0] - result.empty[0])
    ([1.0, 1.0, 0.0], 2.0)
    """
    start, calls = time.perf_counter(), adapter.n_calls
    how = _mask_kind(adapter, mask)
    ctx = _Context(adapter, molecules)
    frags = _Fragments(ctx, scheme, n_random, seed)
    plans, own, exact = {}, [], []
    for i in ctx.good:
        parts = frags.of[i]
        orders, is_exact = _orders(len(parts), n_samples, ctx.rng(i, seed + 1))
        exact.append(is_exact)
        coalitions = {frozenset(order[:k]): None for order in orders for k in range(len(parts) + 1)}
        for c, coalition in enumerate(coalitions):
            coalitions[coalition] = len(own)
            own.append((i, tuple(a for f, atoms in enumerate(parts) if f not in coalition for a in atoms)))
        plans[i] = (orders, coalitions)
    scores, random_effects = _score_with_random(adapter, ctx, frags, own, how)
    values, empty = {}, torch.full((len(ctx.ids),), math.nan, dtype=torch.float64)
    for i, (orders, coalitions) in plans.items():
        phi = np.zeros(len(frags.of[i]))
        for order in orders:
            for k, f in enumerate(order):
                phi[f] += scores[coalitions[frozenset(order[: k + 1])]] - scores[coalitions[frozenset(order[:k])]]
        values[i] = phi / len(orders)
        empty[i] = float(scores[coalitions[frozenset()]])
    return frags.result(adapter, values, random_effects, method="shapley", empty=empty, start=start, calls=calls,
                        mask=how, n_samples=n_samples, n_random=n_random, seed=seed, exact=exact)  # fmt: skip


__all__ = ["atom_importance", "fragment_importance", "fragment_shapley", "fragments", "integrated_gradients", "mask_atoms", "MASKS", "SCHEMES"]
