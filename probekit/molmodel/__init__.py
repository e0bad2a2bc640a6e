"""Molecule models as chemists have them: graph networks, black-box predictors and fingerprint pipelines.

:class:`MoleculeModel` wraps any model that scores molecules (a callable over
SMILES or RDKit molecules, a Chemprop v2 MPNN, a graph network with its
featurizer, a scikit-learn estimator behind a fingerprint).

Examples
--------
>>> import torch
>>> from probekit.molmodel import MoleculeModel
>>> adapter = MoleculeModel(lambda smiles: torch.ones(len(smiles)), kind="smiles", device="cpu")
>>> adapter.score_molecules(["CCO", "c1ccccc1"])[0]
tensor([1., 1.], dtype=torch.float64)
"""

from .adapter import MoleculeModel

__all__ = ["MoleculeModel"]
