"""Single edits of a molecule that give other real molecules: SELFIES mutations, matched-pair fragment swaps, atom and bond edits.

Three operators propose the molecules one edit away from a molecule:

* ``"selfies"``: insert, replace or delete one token of the molecule's SELFIES
  string (the ``selfies`` package's robust alphabet, neutral tokens by default),
  as in STONED;
* ``"mmpa"``: cut one acyclic single bond with RDKit's matched-molecular-pair
  fragmenter (``rdMMPA.FragmentMol``) and replace the smaller side by another
  substituent: a fragment of the molecule itself or a common one
  (:data:`COMMON_SUBSTITUENTS`, ``[H]`` included, which removes the side);
* ``"atom"``: change one atom's element among C, N, O, S, F and Cl, change one
  bond's order, or remove one terminal heavy atom.

Every candidate is sanitised by RDKit and written as canonical SMILES that RDKit
reads back; candidates are deduplicated, never the molecule itself, and returned
sorted by SMILES. Sampling draws from a ``numpy.random.Generator`` seeded from
the seed and the molecule's canonical SMILES (:func:`text_seed`), so the same
seed gives the same candidates whatever else is being edited alongside.

Atom and bond numbers in edit descriptions are those of the molecule as given
(for a SMILES, RDKit's parse of it); SELFIES positions count the tokens of the
SELFIES string of its canonical SMILES.

Examples
--------
>>> [c.smiles for c in single_edits("CO", operators=["atom"])]
['C', 'C=O', 'CC', 'CCl', 'CF', 'CN', 'CS', 'NO', 'O', 'OCl', 'OF', 'OO', 'OS']
>>> single_edits("CO", operators=["atom"])[0].edit
'remove O (atom 1)'
>>> len(single_edits("Oc1ccccc1", n=5, seed=0))
5
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

OPERATORS = ("selfies", "mmpa", "atom")
ELEMENTS = ("C", "N", "O", "S", "F", "Cl")
COMMON_SUBSTITUENTS = ("[H]", "F", "Cl", "Br", "C", "O", "N", "C(F)(F)F", "OC", "C#N", "C(=O)O", "N(C)C")
MAX_FRAGMENT_ATOMS = 10  # the largest side an MMP cut replaces, and the largest own fragment reused, in heavy atoms


class Candidate(NamedTuple):
    """One molecule one edit away: its canonical SMILES, the edit as text, and the operator that made it."""

    smiles: str
    edit: str
    operator: str


def text_seed(seed: int, *parts: str) -> int:
    """A 56-bit seed from ``seed`` and texts (SMILES): draws seeded by it depend on nothing else.

    Examples
    --------
    >>> text_seed(0, "CCO") == text_seed(0, "CCO"), text_seed(0, "CCO") == text_seed(1, "CCO")
    (True, False)
    """
    digest = hashlib.sha256("\x1f".join([str(int(seed)), *parts]).encode()).digest()
    return int.from_bytes(digest[:7], "little")


def to_mol(molecule):
    """An RDKit Mol from a SMILES string or a Mol (returned as is); None when RDKit cannot read it."""
    from rdkit import Chem, rdBase

    if isinstance(molecule, Chem.Mol):
        return molecule
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(str(molecule))


def canonical(molecule) -> str | None:
    """Canonical SMILES of a SMILES string or Mol, or None when it is not a valid molecule.

    Examples
    --------
    >>> canonical("OC1=CC=CC=C1"), canonical("C1CC")
    ('Oc1ccccc1', None)
    """
    from rdkit import Chem

    mol = to_mol(molecule)
    return None if mol is None else Chem.MolToSmiles(mol)


def _finish(mol) -> str | None:
    """Canonical SMILES of an edited molecule when RDKit sanitises it, it has no radical and RDKit reads its SMILES back; else None."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(mol)
        except Exception:  # RDKit raises several sanitisation error types; each means "not a molecule"
            return None
        if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
            return None
        smiles = Chem.MolToSmiles(mol)
        back = Chem.MolFromSmiles(smiles) if smiles else None
    return None if back is None else Chem.MolToSmiles(back)


class _Space:
    """The single edits of one operator on one molecule, numbered ``0..size-1`` and built one at a time."""

    operator = ""

    def __init__(self, specs: list):
        self.specs = specs

    @property
    def size(self) -> int:
        return len(self.specs)

    def build(self, j: int) -> tuple[str, str] | None:
        """SMILES and description of edit ``j``, or None when the edit gives no valid molecule."""
        raise NotImplementedError


class _AtomSpace(_Space):
    operator = "atom"

    def __init__(self, mol):
        from rdkit import Chem

        self.mol = mol
        self.kekule = Chem.RWMol(mol)
        Chem.Kekulize(self.kekule, clearAromaticFlags=True)
        specs = []
        for atom in mol.GetAtoms():
            if atom.GetDegree() == 1 and mol.GetNumAtoms() > 1:
                specs.append(("remove", atom.GetIdx(), None))
            specs += [("element", atom.GetIdx(), e) for e in ELEMENTS if e != atom.GetSymbol()]
        for bond in self.kekule.GetBonds():
            order = int(bond.GetBondTypeAsDouble())
            allowed = (1, 2) if bond.IsInRing() else (1, 2, 3)  # a triple bond in a ring is an aryne or a strained ring
            specs += [("bond", bond.GetIdx(), o) for o in allowed if o != order]
        super().__init__(specs)

    def build(self, j):
        from rdkit import Chem

        kind, index, value = self.specs[j]
        rw = Chem.RWMol(self.kekule)
        if kind == "remove":
            atom = rw.GetAtomWithIdx(index)
            text = f"remove {atom.GetSymbol()} (atom {index})"
            neighbour = atom.GetNeighbors()[0].GetIdx()
            _free_hydrogens(rw, neighbour)
            rw.RemoveAtom(index)
        elif kind == "element":
            atom = rw.GetAtomWithIdx(index)
            text = f"replace {atom.GetSymbol()} (atom {index}) with {value}"
            atom.SetAtomicNum(Chem.Atom(value).GetAtomicNum())
            atom.SetFormalCharge(0)
            _free_hydrogens(rw, index)
        else:
            bond = rw.GetBondWithIdx(index)
            names = {1: "single", 2: "double", 3: "triple"}
            a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            old = names[int(bond.GetBondTypeAsDouble())]
            text = f"bond {a}-{b} ({rw.GetAtomWithIdx(a).GetSymbol()}-{rw.GetAtomWithIdx(b).GetSymbol()}) {old} -> {names[value]}"
            bond.SetBondType({1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}[value])
            _free_hydrogens(rw, a)
            _free_hydrogens(rw, b)
        smiles = _finish(rw.GetMol())
        return None if smiles is None else (smiles, text)


def _free_hydrogens(rw, index: int) -> None:
    """Let RDKit recompute the hydrogens of atom ``index`` after an edit next to it."""
    atom = rw.GetAtomWithIdx(index)
    atom.SetNumExplicitHs(0)
    atom.SetNoImplicit(False)


def _selfies():
    """The ``selfies`` module, or an ImportError naming the extra that installs it."""
    try:
        import selfies
    except ImportError:
        raise ImportError(
            'SELFIES edits of counterfactual molecules need selfies: pip install "probekit[molecules]" '
            '(or leave "selfies" out of operators=)'
        ) from None
    return selfies


def neutral_alphabet() -> list[str]:
    """The ``selfies`` package's semantically robust alphabet without charged tokens and boron, sorted.

    Examples
    --------
    >>> "[C]" in neutral_alphabet(), "[N+1]" in neutral_alphabet(), "[B]" in neutral_alphabet()
    (True, False, False)
    """
    robust = _selfies().get_semantic_robust_alphabet()
    return sorted(t for t in robust if "+" not in t and "-" not in t and t.lstrip("[=#") not in ("B]",))


class _SelfiesSpace(_Space):
    operator = "selfies"

    def __init__(self, mol, alphabet):
        from rdkit import Chem

        selfies = _selfies()
        try:
            self.tokens = list(selfies.split_selfies(selfies.encoder(Chem.MolToSmiles(mol))))
        except Exception:  # the encoder refuses some valences and charges; such a molecule has no SELFIES edits
            self.tokens = []
        self.alphabet = list(alphabet)
        n, a = len(self.tokens), len(self.alphabet)
        self.n_insert = (n + 1) * a if n else 0
        self.n_replace = n * a
        super().__init__(range(self.n_insert + self.n_replace + n))

    def build(self, j):
        selfies = _selfies()
        tokens, a = list(self.tokens), len(self.alphabet)
        if j < self.n_insert:
            position, token = divmod(j, a)
            tokens.insert(position, self.alphabet[token])
            text = f"SELFIES insert {self.alphabet[token]} at {position}"
        elif j < self.n_insert + self.n_replace:
            position, token = divmod(j - self.n_insert, a)
            if tokens[position] == self.alphabet[token]:
                return None
            text = f"SELFIES replace {tokens[position]} at {position} with {self.alphabet[token]}"
            tokens[position] = self.alphabet[token]
        else:
            position = j - self.n_insert - self.n_replace
            text = f"SELFIES delete {tokens.pop(position)} at {position}"
        try:
            decoded = selfies.decoder("".join(tokens))
        except Exception:  # a token string the decoder cannot read gives no molecule
            return None
        mol = to_mol(decoded) if decoded else None
        smiles = None if mol is None else _finish(mol)
        return None if smiles is None else (smiles, text)


def _cuts(mol) -> list[tuple]:
    """Single MMP cuts of ``mol``: (constant side with a ``[*:1]``, its attachment atom, replaced side as SMILES).

    A side is listed as the replaced one when it has at most
    :data:`MAX_FRAGMENT_ATOMS` heavy atoms and no more than the side it leaves.
    """
    from rdkit import Chem
    from rdkit.Chem import rdMMPA

    tagged = Chem.Mol(mol)
    for atom in tagged.GetAtoms():
        atom.SetIntProp("_pk_index", atom.GetIdx())
    cuts = []
    for _, chains in rdMMPA.FragmentMol(tagged, maxCuts=1, resultsAsMols=True):
        pieces = Chem.GetMolFrags(chains, asMols=True, sanitizeFrags=False)
        if len(pieces) != 2:
            continue
        for keep, swap in (pieces, pieces[::-1]):
            size = swap.GetNumHeavyAtoms()
            if size > MAX_FRAGMENT_ATOMS or size > keep.GetNumHeavyAtoms():
                continue
            star = next(a for a in keep.GetAtoms() if a.GetAtomicNum() == 0)
            anchor = star.GetNeighbors()[0].GetIntProp("_pk_index")
            cuts.append((keep, anchor, _star_smiles(swap)))
    return cuts


def _star_smiles(fragment) -> str:
    """SMILES of a fragment with its attachment point written ``*``."""
    from rdkit import Chem

    plain = Chem.Mol(fragment)
    for atom in plain.GetAtoms():
        atom.SetAtomMapNum(0)
    return Chem.MolToSmiles(plain)


def substituents(molecule) -> list[str]:
    """The sides the ``"mmpa"`` operator may replace, as attachment-point SMILES (``*`` marks the bond), sorted.

    Examples
    --------
    >>> substituents("Oc1ccc(CC(=O)O)cc1")
    ['*C(=O)O', '*CC(=O)O', '*O']
    """
    mol = to_mol(molecule)
    return [] if mol is None else sorted(side for _, _, side in _cuts(mol))


class _MMPSpace(_Space):
    operator = "mmpa"

    def __init__(self, mol, fragments):
        self.cuts = _cuts(mol)
        own = sorted({side for _, _, side in self.cuts})
        library = sorted(set(own) | {f if "*" in f else f"*{f}" for f in fragments})
        self.library = library
        super().__init__([(c, f) for c in range(len(self.cuts)) for f in range(len(library))])

    def build(self, j):
        from rdkit import Chem, rdBase

        c, f = self.specs[j]
        keep, anchor, old = self.cuts[c]
        new = self.library[f]
        if new == old:
            return None
        with rdBase.BlockLogs():
            piece = Chem.MolFromSmiles(new.replace("*", "[*:1]"), sanitize=False)
            if piece is None:
                return None
            try:
                joined = Chem.RemoveHs(Chem.molzip(keep, piece), sanitize=False)
            except Exception:  # a fragment that cannot be joined at this point gives no molecule
                return None
        smiles = _finish(Chem.RWMol(joined))
        return None if smiles is None else (smiles, f"{old} -> {new} at atom {anchor}")


def _check_operators(operators) -> list[str]:
    """The distinct operators in the order given; ValueError naming any unknown one."""
    unknown = [op for op in operators if op not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown operator(s) {unknown}; use some of {list(OPERATORS)}")
    return list(dict.fromkeys(operators))


def _space(mol, operator: str, *, fragments, alphabet) -> _Space:
    if operator == "selfies":
        return _SelfiesSpace(mol, neutral_alphabet() if alphabet is None else alphabet)
    if operator == "mmpa":
        return _MMPSpace(mol, COMMON_SUBSTITUENTS if fragments is None else fragments)
    return _AtomSpace(mol)


def single_edits(
    molecule, *, operators=OPERATORS, n: int | None = None, seed: int = 0, fragments=None, alphabet=None
) -> list[Candidate]:
    """The distinct molecules one edit away from ``molecule``, all of them or ``n`` drawn at random.

    Parameters
    ----------
    molecule : str or rdkit.Chem.Mol
    operators : sequence of str
        Some of ``"selfies"``, ``"mmpa"``, ``"atom"``.
    n : int, optional
        Draw up to ``n`` distinct candidates: the operators take turns, each
        trying its edits in a random order (seeded by ``seed`` and the molecule's
        canonical SMILES) until it adds one new molecule. None builds every edit.
    seed : int
    fragments : sequence of str, optional
        Substituents the ``"mmpa"`` operator puts in (attachment point ``*``, or
        none for a bond at the first atom); default :data:`COMMON_SUBSTITUENTS`.
        The molecule's own MMP fragments are always added.
    alphabet : sequence of str, optional
        SELFIES tokens to insert and substitute; default :func:`neutral_alphabet`.

    Returns
    -------
    list of Candidate
        Sorted by SMILES; where several edits give one molecule, the one whose
        description sorts first is kept (all edits built) or the one drawn first.

    Examples
    --------
    >>> edits = single_edits("Oc1ccccc1", operators=["atom"])
    >>> "c1ccccc1" in [c.smiles for c in edits]
    True
    >>> single_edits("Oc1ccccc1", n=8, seed=3) == single_edits("Oc1ccccc1", n=8, seed=3)
    True
    """
    mol = to_mol(molecule)
    if mol is None:
        raise ValueError(f"not a valid molecule: {molecule!r}")
    own = canonical(mol)
    spaces = [_space(mol, op, fragments=fragments, alphabet=alphabet) for op in _check_operators(operators)]
    found: dict[str, Candidate] = {}
    if n is None:
        for space in spaces:
            for j in range(space.size):
                built = space.build(j)
                if built is not None and built[0] != own:
                    candidate = Candidate(built[0], built[1], space.operator)
                    if built[0] not in found or (candidate.edit, candidate.operator) < found[built[0]][1:]:
                        found[built[0]] = candidate
        return [found[s] for s in sorted(found)]
    rng = np.random.default_rng(text_seed(seed, own))
    orders = [iter(rng.permutation(space.size).tolist()) for space in spaces]
    active = list(range(len(spaces)))
    while active and len(found) < n:
        for s in list(active):
            if len(found) >= n:
                break
            added = _next_new(spaces[s], orders[s], found, own)
            if not added:
                active.remove(s)
    return [found[s] for s in sorted(found)]


def _next_new(space: _Space, order, found: dict, own: str) -> bool:
    """Build edits of ``space`` in ``order`` until one gives a molecule not in ``found``; False when none is left."""
    for j in order:
        built = space.build(j)
        if built is not None and built[0] != own and built[0] not in found:
            found[built[0]] = Candidate(built[0], built[1], space.operator)
            return True
    return False


def random_edit_paths(
    molecule, k: int, *, n: int, seed: int = 0, operators=OPERATORS, fragments=None, alphabet=None
) -> list[tuple[str, list[str]]]:
    """``n`` random walks of ``k`` single edits from ``molecule``: the random baseline of a counterfactual.

    Each step picks an operator uniformly among those with an edit left, then a
    uniformly random edit of it that gives a valid molecule other than the current one.

    Parameters
    ----------
    molecule : str or rdkit.Chem.Mol
    k : int
        Edits per walk.
    n : int
        Walks.
    seed : int
        The walks depend only on the seed and the molecule's canonical SMILES.
    operators, fragments, alphabet
        As in :func:`single_edits`.

    Returns
    -------
    list of (str, list of str)
        Per walk, the SMILES reached and its edit descriptions (fewer than ``k``
        where a molecule had no valid edit left).

    Examples
    --------
    >>> walks = random_edit_paths("Oc1ccc(CC(=O)O)cc1", 2, n=3, seed=0, operators=["atom"])
    >>> [len(edits) for _, edits in walks]
    [2, 2, 2]
    """
    mol = to_mol(molecule)
    if mol is None:
        raise ValueError(f"not a valid molecule: {molecule!r}")
    operators = _check_operators(operators)
    rng = np.random.default_rng(text_seed(seed, canonical(mol), "walks", str(k)))
    cache: dict[tuple[str, str], _Space] = {}
    walks = []
    for _ in range(n):
        current, smiles, edits = mol, canonical(mol), []
        for _ in range(k):
            step = _random_step(current, smiles, operators, rng, cache, fragments=fragments, alphabet=alphabet)
            if step is None:
                break
            smiles, text = step
            current = to_mol(smiles)
            edits.append(text)
        walks.append((smiles, edits))
    return walks


def _random_step(mol, own: str, operators: list[str], rng, cache: dict, **options) -> tuple[str, str] | None:
    """One uniformly random valid edit of ``mol``: a random operator, then random edits of it until one builds.

    ``cache`` keeps the edit spaces of molecules already visited, keyed by SMILES and operator.
    """
    left = list(operators)
    while left:
        operator = left[int(rng.integers(len(left)))]
        if (own, operator) not in cache:
            cache[own, operator] = _space(mol, operator, **options)
        space = cache[own, operator]
        for j in rng.permutation(space.size).tolist():
            built = space.build(j)
            if built is not None and built[0] != own:
                return built
        left.remove(operator)
    return None


__all__ = [
    "Candidate",
    "COMMON_SUBSTITUENTS",
    "ELEMENTS",
    "OPERATORS",
    "canonical",
    "neutral_alphabet",
    "random_edit_paths",
    "single_edits",
    "substituents",
    "text_seed",
    "to_mol",
]
