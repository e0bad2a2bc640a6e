"""Load molecule models from their own file formats, executing code from a file only when trusted.

- ``kind="chemprop"``: a Chemprop v2 model file (``chemprop train`` output, ``.pt``
  or ``.ckpt``) through chemprop's own loader. That loader unpickles Python
  objects from the file, which can run code, so it needs ``trust=True``.
- ``kind="torchscript"``: a TorchScript model (``torch.jit.save``), called as
  ``model(x, edge_index, edge_attr, batch)`` on the featurizer's graphs
  (:func:`probekit.molmodel.graph.featurize_graphs` by default), or on the
  features (N, F) of a probekit featurizer such as ``Morgan``. TorchScript runs
  no Python code from the file: no trust needed.
- ``kind="sklearn"``: a pickled or joblib-dumped scikit-learn estimator with the
  probekit featurizer it was trained on; unpickling can run code, so it needs ``trust=True``.

Examples
--------
>>> import os, tempfile, torch
>>> from probekit.molmodel.graph import GraphNet
>>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
>>> torch.jit.save(torch.jit.script(GraphNet(hidden=8, depth=1)), path)
>>> adapter = load_molecule_model(path, kind="torchscript", device="cpu")
>>> adapter.kind, adapter.score_molecules(["CCO"])[0].shape
('graph', torch.Size([1]))
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..loading import is_torchscript
from .adapter import MoleculeModel, import_chemprop

LOADER_KINDS = ("chemprop", "torchscript", "sklearn")


def _untrusted(path: Path, what: str) -> ValueError:
    return ValueError(
        f"{path} is {what}; loading it unpickles Python objects from the file, which can run code from it. "
        "Pass trust=True (--trust on the command line) only for a file you made yourself or got from a source you trust."
    )


def _load_chemprop(path: Path, trust: bool):
    if not trust:
        raise _untrusted(path, "a Chemprop model file, which chemprop reads with torch.load(weights_only=False)")
    utils = import_chemprop("chemprop.models.utils")
    try:
        return utils.load_model(path).eval()
    except (KeyError, AttributeError, RuntimeError) as error:
        raise ValueError(f"{path} cannot be read as a Chemprop v2 model: {error}") from error


def _load_sklearn(path: Path, trust: bool):
    if not trust:
        raise _untrusted(path, "a pickled scikit-learn model")
    try:
        import joblib
    except ImportError as error:
        raise ImportError(f'scikit-learn models need scikit-learn ({error}): pip install "probekit[molecules]"') from error
    estimator = joblib.load(path)
    if not hasattr(estimator, "predict"):
        raise ValueError(f"{path} holds a {type(estimator).__name__}, which has no predict method")
    return estimator


def load_molecule_model(
    path, *, kind: str, trust: bool = False, featurizer=None, output=0, batch_size: int = 256, device=None
) -> MoleculeModel:
    """Load a molecule model file and wrap it in a :class:`MoleculeModel`.

    Parameters
    ----------
    path : str or Path
    kind : {"chemprop", "torchscript", "sklearn"}
        The file's format (see the module's description).
    trust : bool
        Allow unpickling (Chemprop and scikit-learn files), which can execute code
        from the file. Only for files you made yourself.
    featurizer : object, optional
        Chemprop: its molecule featurizer (default ``SimpleMoleculeMolGraphFeaturizer()``);
        TorchScript: a callable from molecules to the model's graphs (default
        :func:`probekit.molmodel.graph.featurize_graphs`) or a probekit featurizer; scikit-learn: the probekit
        featurizer the estimator was trained on (required, e.g. ``Morgan(radius=2, n_bits=2048)``).
        A probekit featurizer may be given by its spec, such as ``"morgan:2:2048"``
        (:func:`probekit.encode.mol.parse_featurizer`).
    output, batch_size, device
        As for :class:`MoleculeModel`.

    Returns
    -------
    MoleculeModel

    Raises
    ------
    ValueError
        For a file that needs ``trust=True`` without it, or that is not of ``kind``.
    ImportError
        Naming the extra to install when chemprop or scikit-learn is missing.
    """
    path = Path(path)
    if kind not in LOADER_KINDS:
        raise ValueError(f"kind must be one of {LOADER_KINDS}, got {kind!r}")
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if isinstance(featurizer, str):
        from ..encode.mol import parse_featurizer

        featurizer = parse_featurizer(featurizer)
    settings = {"output": output, "batch_size": batch_size, "device": device}
    if kind == "chemprop":
        return MoleculeModel(_load_chemprop(path, trust), kind="chemprop", featurizer=featurizer, **settings)
    if kind == "torchscript":
        if not is_torchscript(path):
            raise ValueError(f"{path} is not a TorchScript file (torch.jit.save); for a Chemprop file use kind='chemprop'")
        from .graph import featurize_graphs

        module = torch.jit.load(str(path), map_location="cpu").eval()
        as_features = hasattr(featurizer, "transform")
        return MoleculeModel(module, kind="features" if as_features else "graph", featurizer=featurizer or featurize_graphs, **settings)
    if featurizer is None:
        raise ValueError(
            "a scikit-learn model needs featurizer=, the probekit featurizer it was trained on, "
            "e.g. probekit.encode.mol.Morgan(radius=2, n_bits=2048)"
        )
    return MoleculeModel(_load_sklearn(path, trust), kind="sklearn", featurizer=featurizer, **settings)


__all__ = ["load_molecule_model", "LOADER_KINDS"]
