"""Molecule models as chemists have them: graph networks, black-box predictors and fingerprint pipelines.

:class:`MoleculeModel` wraps any model that scores molecules (a callable over
SMILES or RDKit molecules, a Chemprop v2 MPNN, a graph network with its
featurizer, a scikit-learn estimator behind a fingerprint);
:func:`load_molecule_model` reads one from its own file format.
:func:`atom_importance`, :func:`fragment_importance` and :func:`fragment_shapley`
say which atoms and fragments hold a prediction up, each against masking random
atoms of the same size; :func:`draw_importance` draws them.

Examples
--------
>>> import torch
>>> from probekit.molmodel import MoleculeModel
>>> adapter = MoleculeModel(lambda smiles: torch.ones(len(smiles)), kind="smiles", device="cpu")
>>> adapter.score_molecules(["CCO", "c1ccccc1"])[0]
tensor([1., 1.], dtype=torch.float64)
"""

from .adapter import MoleculeModel
from .draw import draw_importance, draw_weights
from .graph import GraphBatch, GraphNet, featurize_graphs
from .importance import atom_importance, fragment_importance, fragment_shapley, fragments, integrated_gradients, mask_atoms
from .loaders import load_molecule_model
from .results import AtomImportance, FragmentImportance

__all__ = [
    "MoleculeModel", "load_molecule_model", "atom_importance", "fragment_importance", "fragment_shapley", "fragments",
    "integrated_gradients", "mask_atoms", "AtomImportance", "FragmentImportance", "draw_importance", "draw_weights",
    "GraphBatch", "GraphNet", "featurize_graphs",
]  # fmt: skip
