"""The bundled graph demo: a message-passing network probekit trains on the molecule demo's measured pIC50 values.

The data and the split are those of :mod:`probekit.mol_demo`: the 1,017
CHEMBL2321810 compounds RDKit ships in its Contrib directory, read in place, cut
80/20 by :func:`probekit.mol_demo.split` with seed 0, so the held-out compounds
are the MLP demo's. :func:`train_mol_graph_demo` fits a
:class:`probekit.molmodel.GraphNet` on the atom and bond features of
:func:`probekit.molmodel.featurize_graphs`, on one CPU thread, seeded, in under
two minutes (about 50 s of CPU time); ``data/train_mol_graph_demo.py`` writes the weights to
``data/mol_graph_demo.pt`` (a state_dict with its architecture name, never a
pickle) and the split, predictions and metrics to ``data/mol_graph_demo.json``.
:func:`load_mol_graph_demo` returns the model wrapped in a
:class:`probekit.molmodel.MoleculeModel`, ready to probe.

Examples
--------
>>> adapter = load_mol_graph_demo(device="cpu")
>>> adapter.kind, round(mol_graph_demo_info()["test_r2"], 1) >= 0.5
('graph', True)
>>> heldout = mol_graph_demo_heldout()
>>> len(heldout), adapter.score_molecules(heldout["smiles"].tolist()[:3])[0].shape
(203, torch.Size([3]))
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
GRAPH_DEMO_ARCH = "probekit.molmodel.graph:GraphNet"
#: The seed of the 80/20 split: the molecule demo's, whatever seed the training uses.
SPLIT_SEED = 0


def mol_graph_demo_paths(data_dir=None) -> dict:
    """Paths of the shipped graph demo files (weights and split/metrics), and of the shared held-out table.

    Examples
    --------
    >>> sorted(mol_graph_demo_paths())
    ['heldout', 'info', 'weights']
    """
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    return {"weights": root / "mol_graph_demo.pt", "info": root / "mol_graph_demo.json",
            "heldout": DATA_DIR / "mol_demo_heldout.csv"}  # fmt: skip


def collate_graphs(graphs) -> "GraphBatch":  # noqa: F821 - probekit.molmodel.graph.GraphBatch
    """One :class:`~probekit.molmodel.graph.GraphBatch` from the graphs of single molecules, in order.

    Parameters
    ----------
    graphs : list of GraphBatch, length G
        Each from :func:`probekit.molmodel.featurize_graphs` of one molecule.

    Returns
    -------
    GraphBatch
        The same as featurizing the G molecules together.

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.molmodel import featurize_graphs
    >>> mols = [Chem.MolFromSmiles(s) for s in ("CCO", "c1ccccc1N")]
    >>> together = featurize_graphs(mols)
    >>> all(torch.equal(a, b) for a, b in zip(collate_graphs([featurize_graphs([m]) for m in mols]), together))
    True
    """
    from .molmodel.graph import GraphBatch

    sizes = torch.tensor([g.x.shape[0] for g in graphs], dtype=torch.long)
    offsets = torch.cumsum(sizes, 0) - sizes
    return GraphBatch(
        x=torch.cat([g.x for g in graphs]),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets)], dim=1),
        edge_attr=torch.cat([g.edge_attr for g in graphs]),
        batch=torch.repeat_interleave(torch.arange(len(graphs)), sizes),
    )


def _predict(model, graphs: list) -> np.ndarray:
    with torch.no_grad():
        return model(*collate_graphs(graphs)).squeeze(1).double().numpy()


def train_mol_graph_demo(
    seed: int = 0,
    epochs: int = 100,
    *,
    hidden: int = 64,
    depth: int = 3,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
):
    """Train a :class:`~probekit.molmodel.GraphNet` on the molecule demo's training compounds, on one CPU thread.

    Mean squared error on pIC50, AdamW with a cosine learning-rate schedule,
    seeded initialisation and mini-batch order; the output bias starts at the
    training mean. The same seed gives the same weights on one machine.

    Parameters
    ----------
    seed : int
        Seeds the initial weights and the order of the mini-batches (the split is always :data:`SPLIT_SEED`'s).
    epochs : int
    hidden, depth : int
        Width of the atom states and message-passing steps of the network.
    batch_size : int
        Molecules per gradient step.
    lr, weight_decay : float

    Returns
    -------
    model : GraphNet in eval mode
    info : dict
        ``arch``, ``arch_kwargs``, ``train_ids``, ``test_ids``, ``test_predictions``,
        ``train_r2``, ``train_rmse``, ``test_r2``, ``test_rmse``, ``n_train``, ``n_test``,
        ``seed``, ``epochs``, ``seconds``.

    Examples
    --------
    >>> model, info = train_mol_graph_demo(0, 0, hidden=8, depth=1)  # no epochs: the untrained network's metrics
    >>> info["n_train"], info["n_test"], info["test_ids"] == mol_graph_demo_info()["test_ids"]
    (814, 203, True)
    """
    from .mol_demo import load_chembl_affinities, regression_metrics, split
    from .molmodel.graph import GraphNet, featurize_graphs

    start = time.perf_counter()
    train, test = split(load_chembl_affinities(), seed=SPLIT_SEED)
    train_graphs = [featurize_graphs([m]) for m in train["mol"]]
    test_graphs = [featurize_graphs([m]) for m in test["mol"]]
    y = torch.tensor(train["pIC50"].to_numpy(), dtype=torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small graphs: one thread is fast enough and fixes the order of reductions
    try:
        torch.manual_seed(seed)
        model = GraphNet(hidden, depth=depth).float()
        with torch.no_grad():
            model.head[-1].bias.fill_(float(y.mean()))
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(epochs, 1))
        order = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            for rows in torch.randperm(len(y), generator=order).split(batch_size):
                optimiser.zero_grad()
                predicted = model(*collate_graphs([train_graphs[r] for r in rows.tolist()])).squeeze(1)
                ((predicted - y[rows]) ** 2).mean().backward()
                optimiser.step()
            schedule.step()
        model.eval()
        pred_train, pred_test = _predict(model, train_graphs), _predict(model, test_graphs)
    finally:
        torch.set_num_threads(threads)
    fit, held = regression_metrics(train["pIC50"], pred_train), regression_metrics(test["pIC50"], pred_test)
    info = {
        "arch": GRAPH_DEMO_ARCH, "arch_kwargs": {"hidden": hidden, "depth": depth},
        "train_r2": fit["r2"], "train_rmse": fit["rmse"], "test_r2": held["r2"], "test_rmse": held["rmse"],
        "n_train": len(train), "n_test": len(test), "seed": seed, "split_seed": SPLIT_SEED, "epochs": epochs,
        "seconds": time.perf_counter() - start, "train_ids": train["id"].tolist(), "test_ids": test["id"].tolist(),
        "test_predictions": pred_test.tolist(),
    }  # fmt: skip
    return model, info


def save_mol_graph_demo(model, info: dict, *, data_dir=None) -> dict:
    """Write the weights (state_dict, architecture name and its arguments) and the split, predictions and metrics.

    Parameters
    ----------
    model : GraphNet
    info : dict
        From :func:`train_mol_graph_demo`.
    data_dir : str or Path, optional
        Folder to write to (default the package's ``data/``).

    Returns
    -------
    dict
        Paths of the files written (``weights``, ``info``).

    Examples
    --------
    >>> import tempfile
    >>> from probekit.molmodel import GraphNet
    >>> info = {"arch_kwargs": {"hidden": 4, "depth": 1}, "seconds": 1.234, "test_predictions": [6.54321]}
    >>> paths = save_mol_graph_demo(GraphNet(4, depth=1), info, data_dir=tempfile.mkdtemp())
    >>> json.loads(paths["info"].read_text())["test_predictions"]
    [6.5432]
    """
    paths = mol_graph_demo_paths(data_dir)
    paths["weights"].parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "arch": GRAPH_DEMO_ARCH, "arch_kwargs": dict(info["arch_kwargs"])},
               paths["weights"])  # fmt: skip
    meta = {k: v for k, v in info.items() if k != "train_ids"}
    meta["seconds"] = round(float(meta["seconds"]), 1)
    meta["test_predictions"] = [round(float(p), 4) for p in meta["test_predictions"]]
    paths["info"].write_text(json.dumps(meta, indent=1) + "\n")
    return {"weights": paths["weights"], "info": paths["info"]}


def mol_graph_demo_info(*, data_dir=None) -> dict:
    """The shipped graph demo's record: architecture, split, held-out predictions and metrics.

    Examples
    --------
    >>> info = mol_graph_demo_info()
    >>> info["n_train"], info["n_test"], len(info["test_ids"]) == len(info["test_predictions"])
    (814, 203, True)
    """
    path = mol_graph_demo_paths(data_dir)["info"]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run python data/train_mol_graph_demo.py")
    return json.loads(path.read_text())


def load_mol_graph_demo(*, device=None, batch_size: int = 256, data_dir=None):
    """The shipped graph model wrapped in a :class:`~probekit.molmodel.MoleculeModel` (``kind="graph"``).

    The weights are read with ``torch.load(weights_only=True)`` into a
    :class:`~probekit.molmodel.GraphNet` built from the recorded arguments; the
    adapter featurizes molecules with :func:`~probekit.molmodel.featurize_graphs`
    and scores them as predicted pIC50 (``outputs.value(0)``).

    Parameters
    ----------
    device : str or torch.device, optional
        ``None``: CUDA when available.
    batch_size : int
        Molecules per model call.
    data_dir : str or Path, optional
        Folder holding ``mol_graph_demo.pt`` and ``mol_graph_demo.json``.

    Returns
    -------
    MoleculeModel

    Examples
    --------
    >>> adapter = load_mol_graph_demo(device="cpu")
    >>> scores, problems = adapter.score_molecules(["CCO", "C1CC"])
    >>> bool(scores[0] > 0), problems[1]
    (True, "record 1 'C1CC': not a valid SMILES (unclosed ring)")
    """
    from . import outputs
    from .loading import load_model
    from .molmodel import MoleculeModel
    from .molmodel.graph import featurize_graphs

    paths = mol_graph_demo_paths(data_dir)
    if not paths["weights"].exists():
        raise FileNotFoundError(f"{paths['weights']} not found; run python data/train_mol_graph_demo.py")
    info = mol_graph_demo_info(data_dir=data_dir)
    model = load_model(paths["weights"], arch=info["arch"], arch_kwargs=info["arch_kwargs"]).float()
    return MoleculeModel(model, kind="graph", featurizer=featurize_graphs, output=outputs.value(0),
                         batch_size=batch_size, device=device)  # fmt: skip


def mol_graph_demo_heldout(*, data_dir=None) -> pd.DataFrame:
    """The held-out compounds (the molecule demo's), with their measured pIC50 and the graph model's prediction.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``smiles``, ``mol``, ``error``, ``pIC50``, ``predicted`` (203 rows).

    Examples
    --------
    >>> heldout = mol_graph_demo_heldout()
    >>> heldout.columns.tolist(), bool(heldout["error"].isna().all())
    (['id', 'smiles', 'mol', 'error', 'pIC50', 'predicted'], True)
    """
    from .io import read_molecules

    info = mol_graph_demo_info(data_dir=data_dir)
    table = pd.read_csv(mol_graph_demo_paths(data_dir)["heldout"], dtype={"id": str}).set_index("id").loc[info["test_ids"]]
    frame = read_molecules(table.reset_index(), smiles_col="smiles", id_col="id")
    frame["pIC50"] = table["pIC50"].to_numpy()
    frame["predicted"] = np.asarray(info["test_predictions"], dtype=float)
    return frame


__all__ = ["train_mol_graph_demo", "save_mol_graph_demo", "load_mol_graph_demo", "mol_graph_demo_info",
           "mol_graph_demo_heldout", "mol_graph_demo_paths", "collate_graphs", "GRAPH_DEMO_ARCH", "SPLIT_SEED"]  # fmt: skip
