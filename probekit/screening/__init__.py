"""Molecule screening: score a library of molecules, from a few to millions, with a feature or molecule model.

- :func:`screen_molecules`: in this process, one table of ``id``, ``smiles``,
  ``score`` (and further outputs) and ``error``;
- :func:`screen_molecules_to_table`: the same, a chunk at a time into a Parquet,
  TSV or CSV table, resumable, with the top-scoring rows and counts in a
  :class:`ScreenOutcome`;
- :func:`iter_molecule_chunks`: the library read lazily, as text, a chunk at a time.

On many machines, ``probekit.scale.run("molecule_screen", ...)`` runs the chunks on
Ray workers and writes the same table.

Examples
--------
>>> import torch
>>> from probekit.molmodel import MoleculeModel
>>> adapter = MoleculeModel(lambda smiles: torch.tensor([float(len(s)) for s in smiles]), kind="smiles", device="cpu")
>>> screen_molecules(adapter, ["CCO", "C1CC"])[["id", "score"]].values.tolist()
[['mol0', 3.0], ['mol1', nan]]
"""

from .read import iter_molecule_chunks
from .score import screen_molecules
from .stream import ScreenOutcome, screen_molecules_to_table

__all__ = ["screen_molecules", "screen_molecules_to_table", "ScreenOutcome", "iter_molecule_chunks"]
