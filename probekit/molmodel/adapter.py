"""An adapter for models that score molecules: graph networks, black-box predictors, fingerprint pipelines.

:class:`MoleculeModel` is the one place that calls such a model. It takes
SMILES strings or RDKit molecules, turns them into what the model takes (the
SMILES or molecules themselves, a Chemprop ``BatchMolGraph``, a user's graph
batch, or fingerprint features for a scikit-learn estimator), calls the model in
batches without gradients, and gives invalid molecules and molecules the model
cannot score a NaN row and a one-line problem, while the rest of the batch is scored.

Examples
--------
>>> from rdkit import Chem
>>> def n_oxygens(smiles):
...     return [sum(a.GetSymbol() == "O" for a in Chem.MolFromSmiles(s).GetAtoms()) for s in smiles]
>>> adapter = MoleculeModel(n_oxygens, kind="smiles", device="cpu")
>>> scores, problems = adapter.score_molecules(["CCO", "C1CC", "OCCO"])
>>> scores
tensor([1., nan, 2.], dtype=torch.float64)
>>> problems[1]
"record 1 'C1CC': not a valid SMILES (unclosed ring)"
"""

from __future__ import annotations

import importlib
import re
import sys

import numpy as np
import pandas as pd
import torch

from .._device import map_batches
from ..adapters import (
    Adapter,
    ModelCallError,
    ModelOutputError,
    _check_output,
    _nan_rows,
    _nonfinite_word,
    describe_failure,
)
from ..goals import BoundGoal, Goal

KINDS = ("smiles", "mols", "chemprop", "graph", "features", "sklearn")
_DEFAULT_BATCH = 256
#: Chemprop graphs kept within one call, for molecules that come back masked in other ways.
GRAPH_CACHE = 4096


class MoleculeBatch(list):
    """A list of RDKit molecules that slices like a tensor's first axis (``shape``, slices stay batches).

    ``masks``, when given, holds per molecule a pair (atom indices, bond indices)
    whose features a graph model sees as zeros (masking).
    """

    def __init__(self, mols=(), masks=None):
        super().__init__(mols)
        self.masks = None if masks is None else list(masks)

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __getitem__(self, key):
        item = list.__getitem__(self, key)
        if not isinstance(key, slice):
            return item
        return MoleculeBatch(item, None if self.masks is None else self.masks[key])


def _is_chemprop(model) -> bool:
    models = sys.modules.get("chemprop.models")  # an MPNN exists only once chemprop is imported
    return models is not None and isinstance(model, models.MPNN)


def _resolve_kind(model, kind: str, featurizer) -> str:
    if kind != "auto":
        if kind not in KINDS:
            raise ValueError(f"kind must be 'auto' or one of {KINDS}; got {kind!r}")
        return kind
    if _is_chemprop(model):
        return "chemprop"
    if not isinstance(model, torch.nn.Module) and hasattr(model, "predict") and not callable(model):
        return "sklearn"
    if isinstance(model, torch.nn.Module) and featurizer is not None:
        return "features" if hasattr(featurizer, "transform") else "graph"
    if callable(model):
        return "smiles"
    raise TypeError(
        f"cannot tell how to call a {type(model).__name__}: pass kind='smiles', 'mols', 'chemprop', 'graph' or 'sklearn'"
    )


def _record_problem(index: int, text, reason: str) -> str:
    return f"record {index} {text!r}: {reason}"


def _parse_one(index: int, item):
    """One record as an RDKit molecule, or None and its problem."""
    from rdkit import Chem

    from ..io import _parse_smiles

    if isinstance(item, Chem.Mol):
        if item.GetNumAtoms() == 0:
            return None, f"record {index}: empty molecule"
        return item, None
    if item is None or (isinstance(item, float) and item != item):
        return None, f"record {index}: no molecule"
    if not isinstance(item, str):
        return None, f"record {index}: expected a SMILES string or an RDKit Mol, got {type(item).__name__}"
    row = _parse_smiles(str(index), item, False)
    if row["error"] is None:
        return row["mol"], None
    reason = re.sub(r"^SMILES Parse Error: | for input: '.*'$", "", row["error"].split(": ", 1)[-1])
    if reason == "empty SMILES":
        return None, f"record {index}: empty SMILES"
    return None, _record_problem(index, item, f"not a valid SMILES ({reason})")


def _records(molecules) -> list:
    """The records of ``molecules``: one SMILES string or Mol, a list of them, or a read_molecules DataFrame."""
    from rdkit import Chem

    if isinstance(molecules, (str, Chem.Mol)):
        return [molecules]
    if isinstance(molecules, pd.DataFrame):
        if "mol" in molecules.columns:
            return list(molecules["mol"])
        if "smiles" in molecules.columns:
            return list(molecules["smiles"])
        raise ValueError("a DataFrame of molecules needs a 'mol' or 'smiles' column")
    return list(molecules)


def _as_output_tensor(y) -> torch.Tensor:
    """A model's answer (tensor, array or list) as a tensor."""
    if isinstance(y, torch.Tensor):
        return y
    if isinstance(y, (np.ndarray, list)):
        return torch.as_tensor(np.asarray(y, dtype=np.float64))
    return y  # _check_output names what it is


def _to_device(batch, device: torch.device):
    """A featurizer's batch on ``device``: tensors, tuples of them, or objects with a ``to`` method."""
    if hasattr(batch, "to"):
        moved = batch.to(device)
        return batch if moved is None else moved  # chemprop's BatchMolGraph moves in place
    if isinstance(batch, tuple):
        return tuple(_to_device(b, device) for b in batch)
    return batch


def _with(graphs, name: str, value: torch.Tensor):
    """``graphs`` with its attribute ``name`` set to ``value`` (a named tuple is copied, other batches changed)."""
    if hasattr(graphs, "_replace"):
        return graphs._replace(**{name: value})
    setattr(graphs, name, value)
    return graphs


class MoleculeModel(Adapter):
    """Wrap a model that scores molecules.

    Parameters
    ----------
    model : callable, chemprop MPNN, torch.nn.Module or scikit-learn estimator
        What ``kind`` says it is.
    kind : {"auto", "smiles", "mols", "chemprop", "graph", "sklearn"}
        ``"smiles"``: a callable from a list of SMILES (RDKit's canonical SMILES of
        each molecule) to a tensor or array (N,) or (N, n_out).
        ``"mols"``: the same from a list of RDKit molecules.
        ``"chemprop"``: a Chemprop v2 ``MPNN``, called on a ``BatchMolGraph``.
        ``"graph"``: a ``torch.nn.Module`` called on ``featurizer(mols)``: a tuple
        (such as :class:`probekit.molmodel.graph.GraphBatch`) is unpacked into the
        call, ``model(x, edge_index, edge_attr, batch)``; anything else (a PyTorch
        Geometric batch, a tensor) is passed as it is.
        ``"features"``: a ``torch.nn.Module`` over ``featurizer.transform(mols)``, a
        float tensor (N, F) (such as a :class:`probekit.FeatureModel`'s model and featurizer).
        ``"sklearn"``: an estimator whose ``predict_proba`` (classifiers) or
        ``predict`` takes ``featurizer.transform(mols)`` as a NumPy array.
        ``"auto"`` picks chemprop for an MPNN, sklearn for an object with ``predict``
        that is not callable, features for a module given a probekit featurizer
        (one with ``transform``), graph for a module given another featurizer, else smiles.
    featurizer : object, optional
        For ``"graph"``, a callable from a list of molecules to the model's input;
        for ``"features"`` and ``"sklearn"``, a probekit featurizer (e.g.
        :class:`probekit.encode.mol.Morgan` with the settings the model was trained on); for ``"chemprop"``, a
        chemprop molecule featurizer (default ``SimpleMoleculeMolGraphFeaturizer()``).
    output : Output, int or callable
        Which scalar to read from the model's output (see :mod:`probekit.outputs`).
    batch_size : int
        Molecules per model call.
    device : str or torch.device, optional
        ``None`` picks CUDA when available; torch models and their inputs go there.

    Attributes
    ----------
    device : torch.device
    n_calls : int
        Molecules the model has been asked to score so far (all calls together, retries
        of a batch the model raised on included; the one-off rerun of a few molecules
        that checks the model is deterministic is not counted).

    Examples
    --------
    >>> import torch
    >>> from probekit import outputs
    >>> adapter = MoleculeModel(lambda smiles: torch.tensor([len(s) for s in smiles]), kind="smiles",
    ...                         output=outputs.value(0), device="cpu")
    >>> adapter.predict_molecules(["CCO", "CCCC"])
    tensor([[3.],
            [4.]], dtype=torch.float64)
    >>> adapter.n_calls
    2
    """

    def __init__(self, model, *, kind: str = "auto", featurizer=None, output=0, batch_size: int = _DEFAULT_BATCH, device=None):
        kind = _resolve_kind(model, kind, featurizer)
        if kind in ("sklearn", "features") and featurizer is None:
            raise ValueError(
                f"kind={kind!r} needs featurizer=, e.g. probekit.encode.mol.Morgan(radius=2, n_bits=2048) "
                "with the settings the model was trained on"
            )
        if kind == "graph" and featurizer is None:
            raise ValueError("kind='graph' needs featurizer=, a callable from a list of RDKit molecules to the model's input")
        caller = model if callable(model) else self._forward_molecules
        super().__init__(caller, output=output, batch_size=batch_size, device=device)
        self.model = model
        self.kind = kind
        self.featurizer = featurizer
        self.n_calls = 0
        self._auto_batch = False

    def replace(self, **changes) -> "MoleculeModel":
        """A copy with some settings changed (``output=``, ``batch_size=``, ``featurizer=``, ``kind=``...).

        Examples
        --------
        >>> adapter = MoleculeModel(len, kind="smiles", device="cpu")
        >>> adapter.replace(kind="mols").kind
        'mols'
        """
        new = super().replace(**changes)
        if "kind" in changes or "model" in changes:
            new.kind = _resolve_kind(new.model, changes.get("kind", "auto" if "model" in changes else new.kind), new.featurizer)
        return new

    # ------------------------------------------------------------ parsing
    def parse(self, molecules) -> tuple[list, list]:
        """Molecules as RDKit ``Mol`` objects, with the problem of each record that is none.

        Parameters
        ----------
        molecules : str, rdkit.Chem.Mol, list of them, or DataFrame
            A DataFrame needs a ``mol`` or ``smiles`` column; its ``error`` column, where
            there is one (as :func:`probekit.read_molecules` gives), is kept.

        Returns
        -------
        mols : list of (rdkit.Chem.Mol or None), length N
        problems : list of (str or None), length N
            ``None`` for a good record, else one line naming it:
            ``"record 3 'C1CC': not a valid SMILES (unclosed ring)"``.

        Examples
        --------
        >>> mols, problems = MoleculeModel(len, kind="smiles", device="cpu").parse(["c1ccccc1O", "", 7])
        >>> mols[0].GetNumAtoms(), problems
        (7, [None, 'record 1: empty SMILES', 'record 2: expected a SMILES string or an RDKit Mol, got int'])
        """
        parsed = [_parse_one(i, item) for i, item in enumerate(_records(molecules))]
        if isinstance(molecules, pd.DataFrame) and "error" in molecules.columns:
            given = [(None, e) if isinstance(e, str) and e else None for e in molecules["error"]]
            parsed = [g or p for g, p in zip(given, parsed)]
        return [m for m, _ in parsed], [p for _, p in parsed]

    def encode(self, inputs) -> MoleculeBatch:
        """Molecules as a :class:`MoleculeBatch`; raises ``ValueError`` naming every record that is not a molecule."""
        if isinstance(inputs, MoleculeBatch):
            return inputs
        mols, problems = self.parse(inputs)
        bad = [p for p in problems if p is not None]
        if bad:
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise ValueError("invalid molecules: " + "; ".join(bad[:5]) + more)
        return MoleculeBatch(mols)

    def _as_input(self, X) -> MoleculeBatch:
        return self.encode(X)

    def resolve_batch_size(self, X) -> int:
        """The batch size (fixed for molecule models)."""
        return self.batch_size

    # ------------------------------------------------------------ forward
    def _model_input(self, mols: list):
        """What the model takes for ``mols``, on :attr:`device` where it is a tensor."""
        from rdkit import Chem

        if self.kind == "smiles":
            return [Chem.MolToSmiles(m) for m in mols]
        if self.kind == "mols":
            return list(mols)
        if self.kind in ("chemprop", "graph"):
            graphs = self._graphs(mols)
            masks = getattr(mols, "masks", None)
            return graphs if masks is None else self._masked(graphs, mols, masks)
        features = self.featurizer.transform(list(mols))
        return features.to(self.device, self.dtype) if self.kind == "features" else features.cpu().numpy()

    def _graphs(self, mols: list):
        if self.kind == "chemprop":
            BatchMolGraph = import_chemprop("chemprop.data").BatchMolGraph
            return _to_device(BatchMolGraph([self._mol_graph(m) for m in mols]), self.device)
        return _to_device(self.featurizer(list(mols)), self.device)

    def _mol_graph(self, mol):
        """Chemprop's graph of ``mol``, made once per molecule object within a call (masking repeats molecules)."""
        cache = self.__dict__.setdefault("_graph_cache", {})
        hit = cache.get(id(mol))
        if hit is None or hit[0] is not mol:
            if self.__dict__.get("_graph_featurizer") is None:
                self._graph_featurizer = self.featurizer or _chemprop_featurizer()
            hit = cache[id(mol)] = (mol, self._graph_featurizer(mol))
            if len(cache) > GRAPH_CACHE:
                cache.pop(next(iter(cache)))
        return hit[1]

    def _fresh_graphs(self) -> None:
        """Forget the graphs of earlier calls (their molecules may have changed since)."""
        self.__dict__["_graph_cache"] = {}
        self.__dict__["_graph_featurizer"] = None

    def feature_names(self) -> tuple[str, str] | None:
        """Names of the atom and bond feature tensors of the model's input, or None when it has none.

        ``("V", "E")`` for Chemprop's ``BatchMolGraph``; ``("x", "edge_attr")`` for a
        graph featurizer whose batches have those attributes (a :class:`probekit.molmodel.graph.GraphBatch`
        or a PyTorch Geometric batch). Atom masking and gradient attributions need them.
        """
        if self.kind == "chemprop":
            return ("V", "E")
        if self.kind == "graph":
            return ("x", "edge_attr")
        return None

    def _masked(self, graphs, mols: list, masks: list):
        """``graphs`` with the feature rows of the masked atoms and bonds of each molecule set to zero."""
        names = self.feature_names()
        if names is None:
            raise TypeError(f"masking needs a graph model (kind 'chemprop' or 'graph'), not kind {self.kind!r}")
        starts = np.cumsum([0] + [m.GetNumAtoms() for m in mols])
        atoms = [int(starts[i]) + a for i, (mask, _) in enumerate(masks) for a in mask]
        ends = {
            (int(starts[i]) + u, int(starts[i]) + v)
            for i, (_, bonds) in enumerate(masks) for b in bonds
            for bond in [mols[i].GetBondWithIdx(int(b))]
            for u, v in [(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()), (bond.GetEndAtomIdx(), bond.GetBeginAtomIdx())]
        }  # fmt: skip
        edges = [k for k, pair in enumerate(map(tuple, graphs.edge_index.T.tolist())) if pair in ends] if ends else []
        for name, rows in zip(names, (atoms, edges)):
            x = getattr(graphs, name)
            keep = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
            keep[torch.as_tensor(rows, dtype=torch.long, device=x.device)] = 0
            graphs = _with(graphs, name, x * keep)
        return graphs

    def graph_score_fn(self, mols):
        """Atom and bond features of molecules and a differentiable score of copies of them with other features.

        For gradient attributions (captum): the function takes atom features
        (S, A, F_atom) and bond features (S, E, F_bond) of all the molecules
        together, builds S copies of their graphs carrying them, and returns per
        copy the sum of the molecules' scores (S,). The molecules' graphs are
        disjoint, so the gradient at an atom is that of its own molecule's score.
        Call it inside :meth:`session`. Each call counts S times the molecules in :attr:`n_calls`.

        Parameters
        ----------
        mols : list of rdkit.Chem.Mol, length k

        Returns
        -------
        atoms : torch.Tensor of shape (A, F_atom)
            Atom features, molecule after molecule.
        bonds : torch.Tensor of shape (E, F_bond)
            One row per directed edge of the model's graph.
        edges : torch.Tensor of shape (2, E)
            The atoms (numbered across the molecules) each edge joins.
        score : callable
            ``(S, A, F_atom), (S, E, F_bond) -> (S,)``; both inputs take part in its
            autograd graph even where the model ignores one (its gradient is then zero).
        """
        names = self.feature_names()
        if names is None:
            raise TypeError(f"gradient attributions need a graph model (kind 'chemprop' or 'graph'), not kind {self.kind!r}")
        mols = list(mols)
        self._fresh_graphs()
        graphs = self._graphs(mols)
        atoms, bonds = getattr(graphs, names[0]), getattr(graphs, names[1])

        def score(xs: torch.Tensor, es: torch.Tensor) -> torch.Tensor:
            copies = self._graphs(mols * xs.shape[0])
            copies = _with(copies, names[0], xs.reshape(-1, atoms.shape[1]).to(atoms.dtype))
            copies = _with(copies, names[1], es.reshape(-1, bonds.shape[1]).to(bonds.dtype))
            n = xs.shape[0] * len(mols)
            self.n_calls += n
            y = _as_output_tensor(self._forward_molecules(copies))
            _check_output(y, n)
            unused = 0.0 * (xs.reshape(xs.shape[0], -1).sum(1) + es.reshape(es.shape[0], -1).sum(1))
            return self.output(y if y.ndim > 1 else y[:, None]).reshape(xs.shape[0], len(mols)).sum(1) + unused.to(y.dtype)

        return atoms.detach(), bonds.detach(), graphs.edge_index.detach(), score

    def _forward_molecules(self, inputs):
        if self.kind == "sklearn":
            method = getattr(self.model, "predict_proba", None) or self.model.predict
            return method(inputs)
        if isinstance(inputs, tuple):
            return self.model(*inputs)
        return self.model(inputs)

    def _raw(self, X: MoleculeBatch) -> torch.Tensor:
        self.n_calls += len(X)
        y = _as_output_tensor(self._forward_molecules(self._model_input(X)))
        _check_output(y, len(X))
        y = y.to(self.device)
        if y.ndim == 1:
            y = y[:, None]
        return y.float() if y.dtype in (torch.float16, torch.bfloat16) else y

    def _check_determinism(self, X, y) -> None:
        calls = self.n_calls
        try:
            super()._check_determinism(X, y)
        finally:
            self.n_calls = calls  # the one-off rerun is probekit's check, not scoring

    def _empty_output(self, X) -> torch.Tensor:
        return torch.zeros(0, 1, device=self.device)

    def gradient(self, X, fn=None, *, rows=None):
        """Molecules have no input gradient; see :func:`probekit.molmodel.atom_importance` for attributions."""
        raise TypeError(
            "a molecule model has no gradient with respect to its input; use "
            "probekit.molmodel.atom_importance(adapter, molecules, method='gradient') for atom attributions"
        )

    # --------------------------------------------------- molecules in, rows out
    def _raw_rows(self, X: MoleculeBatch, start: int, stop: int, problems: list) -> list:
        """Pieces ``(start, raw output)`` of rows ``start:stop``, halving a batch the model raises on until the bad rows are found."""
        pieces, pending = [], [(start, stop)]
        while pending:
            low, high = pending.pop()
            try:
                y = self._call(X[low:high])
            except ModelOutputError:
                raise
            except ModelCallError as error:
                if high - low > 1:
                    pending += [((low + high) // 2, high), (low, (low + high) // 2)]
                else:
                    problems[low] = describe_failure(error)
                continue
            if self.deterministic is None:
                self._check_determinism(X[low:high], y)
            pieces.append((low, y))
        return pieces

    def _outputs(self, molecules, masks=None) -> tuple[torch.Tensor, list]:
        """Raw outputs (N, ...) on :attr:`device`, NaN rows where a record is invalid or the model raised, and the problems."""
        self._fresh_graphs()
        mols, problems = self.parse(molecules)
        valid = [i for i, m in enumerate(mols) if m is not None]
        X = MoleculeBatch((mols[i] for i in valid), None if masks is None else [masks[i] for i in valid])
        model_problems: list = [None] * len(X)

        def run(start: int, stop: int):
            return self._raw_rows(X, start, stop, model_problems)

        with self.session(), torch.no_grad():
            parts = [piece for batch in map_batches(run, len(X), self.batch_size, on_backoff=self._on_backoff) for piece in batch]
        shaped = [y for _, y in parts]
        tail = tuple(shaped[0].shape[1:]) if shaped else (1,)
        dtype = shaped[0].dtype if shaped and shaped[0].is_floating_point() else torch.float64
        raw = torch.full((len(mols), *tail), float("nan"), dtype=dtype, device=self.device)
        index = torch.as_tensor(valid, dtype=torch.long)
        for start, y in parts:
            raw[index[start : start + y.shape[0]].to(self.device)] = y.to(dtype)
        for j, problem in zip(valid, model_problems):
            problems[j] = problem
        return raw, problems

    def predict_molecules(self, molecules) -> torch.Tensor:
        """Raw model outputs of every molecule, batched.

        Parameters
        ----------
        molecules : str, rdkit.Chem.Mol, list of them, or DataFrame

        Returns
        -------
        torch.Tensor of shape (N, n_out), float64, on the CPU
            NaN rows where a record is not a valid molecule or the model raised on it.
        """
        return self._outputs(molecules)[0].double().cpu()

    def score_molecules(self, molecules) -> tuple[torch.Tensor, list]:
        """The selected score of every molecule, and the problem of each one that has none.

        Parameters
        ----------
        molecules : str, rdkit.Chem.Mol, list of them, or DataFrame

        Returns
        -------
        scores : torch.Tensor of shape (N,), float64, on the CPU
            NaN for records with a problem.
        problems : list of (str or None), length N
            ``None`` for a good record, else one line: an invalid molecule named by
            its record, the model's own exception (``"the model raised ValueError: ..."``),
            or ``"the model returned NaN"``.

        Raises
        ------
        ModelOutputError
            When the model's output is malformed for every batch (not one row per molecule).
        """
        return self._scores(*self._outputs(molecules))

    def _scores(self, raw: torch.Tensor, problems: list) -> tuple[torch.Tensor, list]:
        scores = self.output(raw)
        bad = ~torch.isfinite(scores) | _nan_rows(raw)
        for i in torch.nonzero(bad.cpu()).flatten().tolist():
            if problems[i] is None:
                value = float(scores[i]) if not torch.isfinite(scores[i]) else float("nan")
                problems[i] = f"the model returned {_nonfinite_word(value)}"
        return scores.masked_fill(bad, float("nan")).double().cpu(), problems

    def score_masked(self, molecules, masks, *, bond_masks=None) -> tuple[torch.Tensor, list]:
        """Scores of molecules whose listed atoms and bonds a graph model sees with all features zero.

        Parameters
        ----------
        molecules : list of str or rdkit.Chem.Mol, length M
        masks : list of tuple of int, length M
            Atom indices to mask in each molecule (an empty tuple masks nothing).
        bond_masks : list of tuple of int, length M, optional
            Bond indices whose features (both directed edges) to mask.

        Returns
        -------
        scores : torch.Tensor of shape (M,), float64, on the CPU
        problems : list of (str or None), length M

        Examples
        --------
        >>> import torch
        >>> from probekit.molmodel.graph import featurize_graphs
        >>> def n_oxygens(x, edge_index, edge_attr, batch):
        ...     return torch.zeros(int(batch.max()) + 1).index_add(0, batch, x[:, 2])
        >>> adapter = MoleculeModel(n_oxygens, kind="graph", featurizer=featurize_graphs, device="cpu")
        >>> adapter.score_masked(["OCCO", "OCCO"], [(), (0,)])[0]
        tensor([2., 1.], dtype=torch.float64)
        """
        n = len(_records(molecules))
        bond_masks = [()] * n if bond_masks is None else bond_masks
        if len(masks) != n or len(bond_masks) != n:
            raise ValueError(f"{len(masks)} atom masks and {len(bond_masks)} bond masks for {n} molecules")
        return self._scores(*self._outputs(molecules, [(tuple(a), tuple(b)) for a, b in zip(masks, bond_masks)]))

    def bind(self, goal: Goal, molecules) -> BoundGoal:
        """Bind ``goal`` to the raw outputs of ``molecules`` (the unedited references, N of them)."""
        return goal.bind(self.output, self.predict_molecules(molecules))

    def evaluate_molecules(self, molecules, goal: BoundGoal, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and goal values ``g`` (success where ``g <= 0``) of candidate molecules.

        Parameters
        ----------
        molecules : list of str or rdkit.Chem.Mol, length M
            Candidates.
        goal : BoundGoal
            From :meth:`bind` on the original inputs.
        rows : torch.Tensor of shape (M,)
            Which original input each candidate belongs to.

        Returns
        -------
        scores, g : torch.Tensor of shape (M,), float64, on the CPU
            ``g = +inf`` for an invalid candidate, one the model raised on, or one
            whose score or goal value is not finite; its score is NaN.

        Examples
        --------
        >>> import torch
        >>> from probekit import goals, outputs
        >>> adapter = MoleculeModel(lambda s: torch.tensor([float(len(x)) for x in s]), kind="smiles",
        ...                         output=outputs.value(0), device="cpu")
        >>> bound = adapter.bind(goals.decrease(by=2.0), ["CCCCO"])
        >>> adapter.evaluate_molecules(["CCO", "CCCO", "C1C"], bound, torch.tensor([0, 0, 0]))
        (tensor([3., 4., nan], dtype=torch.float64), tensor([0., 1., inf], dtype=torch.float64))
        """
        raw, problems = self._outputs(molecules)
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        if rows.shape[0] != raw.shape[0]:
            raise ValueError(f"{raw.shape[0]} candidates but {rows.shape[0]} rows")
        goal = goal.to(self.device)
        scores = self.output(raw).double()
        g = goal(raw, rows.to(self.device)).double()
        failed = torch.tensor([p is not None for p in problems], dtype=torch.bool, device=self.device)
        bad = failed | ~(torch.isfinite(scores) & torch.isfinite(g)) | _nan_rows(raw)
        return scores.masked_fill(failed, float("nan")).cpu(), g.masked_fill(bad, float("inf")).cpu()


def import_chemprop(module: str = "chemprop"):
    """Import a chemprop module, or raise ``ImportError`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f'Chemprop models need chemprop ({error}): pip install "probekit[chemprop]"') from error


def _chemprop_featurizer():
    return import_chemprop("chemprop.featurizers").SimpleMoleculeMolGraphFeaturizer()


__all__ = ["MoleculeModel", "MoleculeBatch", "KINDS"]
