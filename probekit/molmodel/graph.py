"""A small molecular graph featurizer and message-passing network in plain torch.

:func:`featurize_graphs` turns RDKit molecules into a :class:`GraphBatch` with
the attribute names PyTorch Geometric uses (``x``, ``edge_index``, ``edge_attr``,
``batch``), and :class:`GraphNet` is a message-passing network over it. They
serve as a reference graph model for :class:`probekit.molmodel.MoleculeModel`
(``kind="graph"``) and show the featurizer contract that atom masking and
gradient attributions rely on: atom features in ``x`` (one row per atom, in the
molecule's atom order, molecules one after another), bond features in
``edge_attr`` (one row per directed edge of ``edge_index``) and the molecule of
each atom in ``batch``.

Examples
--------
>>> import torch
>>> from rdkit import Chem
>>> batch = featurize_graphs([Chem.MolFromSmiles("CCO"), Chem.MolFromSmiles("c1ccccc1")])
>>> batch.x.shape, batch.edge_index.shape, batch.batch.tolist()
(torch.Size([9, 16]), torch.Size([2, 16]), [0, 0, 0, 1, 1, 1, 1, 1, 1])
>>> _ = torch.manual_seed(0)
>>> GraphNet()(*batch).shape
torch.Size([2, 1])
"""

from __future__ import annotations

from typing import NamedTuple

import torch

#: Elements with their own one-hot column; any other element sets the last column.
ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P")
#: Bond types with their own one-hot column.
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
N_ATOM_FEATURES = len(ELEMENTS) + 1 + 6
N_BOND_FEATURES = len(BOND_TYPES) + 2


class GraphBatch(NamedTuple):
    """Molecular graphs batched together, in PyTorch Geometric's layout.

    A tuple, so that a model is called as ``model(x, edge_index, edge_attr, batch)``
    (TorchScript models included).

    Attributes
    ----------
    x : torch.Tensor of shape (A, F_atom)
        Atom features of all A atoms, molecule after molecule.
    edge_index : torch.Tensor of shape (2, E), long
        Directed edges (source, target); each bond gives two consecutive edges.
    edge_attr : torch.Tensor of shape (E, F_bond)
        Bond features of each directed edge.
    batch : torch.Tensor of shape (A,), long
        The molecule each atom belongs to.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    batch: torch.Tensor

    def to(self, device) -> "GraphBatch":
        """The same graphs on ``device``."""
        return GraphBatch(*(t.to(device) for t in self))


def _atom_features(atom) -> list[float]:
    symbol = atom.GetSymbol()
    element = [float(symbol == e) for e in ELEMENTS] + [float(symbol not in ELEMENTS)]
    return element + [
        float(atom.GetIsAromatic()),
        float(atom.IsInRing()),
        atom.GetDegree() / 4.0,
        atom.GetTotalNumHs() / 3.0,
        float(atom.GetFormalCharge()),
        float(atom.GetHybridization().name == "SP3"),
    ]


def _bond_features(bond) -> list[float]:
    kind = bond.GetBondType().name
    return [float(kind == t) for t in BOND_TYPES] + [float(bond.GetIsConjugated()), float(bond.IsInRing())]


def featurize_graphs(mols) -> GraphBatch:
    """Atom and bond features of RDKit molecules as one :class:`GraphBatch`.

    Parameters
    ----------
    mols : list of rdkit.Chem.Mol, length G

    Returns
    -------
    GraphBatch
        ``x`` (A, 16), ``edge_index`` (2, E), ``edge_attr`` (E, 6), ``batch`` (A,).

    Examples
    --------
    >>> from rdkit import Chem
    >>> featurize_graphs([Chem.MolFromSmiles("CO")]).edge_index.tolist()
    [[0, 1], [1, 0]]
    """
    xs, edges, bonds, owner = [], [], [], []
    offset = 0
    for g, mol in enumerate(mols):
        xs += [_atom_features(a) for a in mol.GetAtoms()]
        owner += [g] * mol.GetNumAtoms()
        for bond in mol.GetBonds():
            i, j = bond.GetBeginAtomIdx() + offset, bond.GetEndAtomIdx() + offset
            edges += [(i, j), (j, i)]
            bonds += [_bond_features(bond)] * 2
        offset += mol.GetNumAtoms()
    return GraphBatch(
        x=torch.tensor(xs, dtype=torch.float32).reshape(-1, N_ATOM_FEATURES),
        edge_index=torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T.contiguous(),
        edge_attr=torch.tensor(bonds, dtype=torch.float32).reshape(-1, N_BOND_FEATURES),
        batch=torch.tensor(owner, dtype=torch.long),
    )


class GraphNet(torch.nn.Module):
    """Message passing over the tensors of a :class:`GraphBatch`, summed per molecule, then a small MLP.

    Takes ``(x, edge_index, edge_attr, batch)`` and returns (G, n_out); it can be
    compiled with ``torch.jit.script``.

    Parameters
    ----------
    hidden : int
        Width of the atom states.
    depth : int
        Message-passing steps.
    n_out : int
        Outputs per molecule.

    Examples
    --------
    >>> from rdkit import Chem
    >>> net = GraphNet(hidden=8, depth=2, n_out=3)
    >>> net(*featurize_graphs([Chem.MolFromSmiles("CCN")])).shape
    torch.Size([1, 3])
    """

    def __init__(self, hidden: int = 32, *, depth: int = 3, n_out: int = 1):
        super().__init__()
        self.embed = torch.nn.Linear(N_ATOM_FEATURES, hidden)
        self.message = torch.nn.ModuleList(torch.nn.Linear(hidden + N_BOND_FEATURES, hidden) for _ in range(depth))
        self.update = torch.nn.ModuleList(torch.nn.Linear(2 * hidden, hidden) for _ in range(depth))
        self.head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(x))
        source, target = edge_index[0], edge_index[1]
        for message, update in zip(self.message, self.update):
            m = torch.relu(message(torch.cat([h[source], edge_attr], dim=1)))
            incoming = torch.zeros_like(h).index_add(0, target, m)
            h = torch.relu(update(torch.cat([h, incoming], dim=1)))
        n_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
        pooled = torch.zeros(n_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add(0, batch, h)
        return self.head(pooled)


__all__ = ["GraphBatch", "featurize_graphs", "GraphNet", "ELEMENTS", "BOND_TYPES", "N_ATOM_FEATURES", "N_BOND_FEATURES"]
