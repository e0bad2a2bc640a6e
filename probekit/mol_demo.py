"""The bundled molecule demo: an affinity model probekit trains on measured pIC50 values.

The data are real measurements that RDKit ships with its Contrib directory
(``FreeWilson/data/CHEMBL2321810.smi`` and ``CHEMBL2321810_act.csv``: 1,017
compounds with pIC50 values from one ChEMBL assay). They are read in place from
``rdkit.RDConfig.RDContribDir`` and never copied into the repository.

:func:`train_mol_demo` splits them with a fixed seed, fits :class:`AffinityMLP`
(a small MLP over Morgan bits plus a few RDKit descriptors) on the CPU in
seconds, and ``data/mol_demo_train.py`` writes the weights to
``data/mol_demo.pt`` (a state_dict with its architecture name, never a pickle).
:func:`load_mol_demo` returns a ready :class:`probekit.FeatureModel` and the
held-out compounds.

Examples
--------
>>> demo = load_mol_demo(device="cpu")
>>> round(demo.metrics["test_r2"], 2) > 0.3
True
>>> demo.adapter.score(demo.test["smiles"].tolist()[:3]).shape
torch.Size([3])
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_ARCH = "probekit.mol_demo:AffinityMLP"
RADIUS, N_BITS = 2, 2048
#: Continuous RDKit descriptors appended to the fingerprint.
DESCRIPTORS = ("MolLogP", "TPSA", "MolWt", "FractionCSP3")


def demo_featurizer():
    """The demo's featurizer: Morgan radius 2, 2048 bits, then :data:`DESCRIPTORS`.

    Examples
    --------
    >>> demo_featurizer().n_features
    2052
    """
    from .encode.mol import Concat, Descriptors, Morgan

    return Concat(Morgan(RADIUS, N_BITS), Descriptors(list(DESCRIPTORS)))


class AffinityMLP(nn.Module):
    """Small MLP predicting pIC50 from Morgan bits and a few descriptors.

    The descriptors are standardised inside the model (buffers ``mean`` and
    ``std``), so the model takes raw features and perturbations are in the
    descriptors' own units.

    Parameters
    ----------
    n_bits : int
        Fingerprint bits at the start of the input.
    n_descriptors : int
        Raw descriptors after the bits.
    hidden : int
        Width of the two hidden layers.
    dropout : float

    Examples
    --------
    >>> AffinityMLP()(torch.zeros(2, 2052)).shape
    torch.Size([2, 1])
    """

    def __init__(self, n_bits: int = N_BITS, n_descriptors: int = len(DESCRIPTORS), hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        self.n_bits = n_bits
        f32 = {"dtype": torch.float32}  # the shipped weights are float32, whatever the default dtype
        self.register_buffer("mean", torch.zeros(n_descriptors, **f32))
        self.register_buffer("std", torch.ones(n_descriptors, **f32))
        self.register_buffer("offset", torch.zeros(1, **f32))
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(n_bits + n_descriptors, hidden, **f32),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2, **f32),
            nn.ReLU(),
            nn.Linear(hidden // 2, 1, **f32),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bits, desc = x[:, : self.n_bits], x[:, self.n_bits :]
        desc = (desc - self.mean) / self.std
        return self.net(torch.cat([bits, desc], dim=1)) + self.offset


def chembl_paths() -> dict:
    """Where RDKit keeps the CHEMBL2321810 SMILES and activities (read in place)."""
    from rdkit import RDConfig

    root = Path(os.path.join(RDConfig.RDContribDir, "FreeWilson", "data"))
    return {"smiles": root / "CHEMBL2321810.smi", "activity": root / "CHEMBL2321810_act.csv"}


def load_chembl_affinities() -> pd.DataFrame:
    """The 1,017 CHEMBL2321810 compounds: ``id``, ``smiles``, ``mol``, ``error``, ``pIC50``.

    Examples
    --------
    >>> frame = load_chembl_affinities()
    >>> len(frame), int(frame["error"].notna().sum()), round(float(frame["pIC50"].mean()), 2)
    (1017, 0, 6.55)
    """
    from .io import read_molecules

    paths = chembl_paths()
    for path in paths.values():
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; the molecule demo needs an RDKit installation with its Contrib data")
    frame = read_molecules(paths["smiles"])
    activity = pd.read_csv(paths["activity"], dtype={"Name": str})
    values = dict(zip(activity["Name"].astype(str), activity["Act"].astype(float)))
    frame["pIC50"] = [values.get(i, np.nan) for i in frame["id"]]
    return frame


def split(frame: pd.DataFrame, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded random train / held-out split of the valid, measured compounds."""
    usable = frame[frame["error"].isna() & frame["pIC50"].notna()].reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(usable))
    n_test = int(round(test_fraction * len(usable)))
    test = usable.iloc[np.sort(order[:n_test])].reset_index(drop=True)
    train = usable.iloc[np.sort(order[n_test:])].reset_index(drop=True)
    return train, test


def regression_metrics(y_true, y_pred) -> dict:
    """R^2 and RMSE."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    residual = ((y_true - y_pred) ** 2).sum()
    total = ((y_true - y_true.mean()) ** 2).sum()
    return {"r2": float(1 - residual / total), "rmse": float(np.sqrt(residual / len(y_true)))}


def _fit(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int, batch_size: int, lr: float,
         weight_decay: float) -> nn.Module:  # fmt: skip
    """Mean squared error, AdamW, seeded mini-batches on one CPU thread; returns the model in eval mode."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster and fixes the order of reductions
    model.train()
    try:
        for _ in range(epochs):
            for batch in torch.randperm(len(y), generator=generator).split(batch_size):
                optimiser.zero_grad()
                loss = ((model(X[batch]).squeeze(1) - y[batch]) ** 2).mean()
                loss.backward()
                optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def train_mol_demo(
    *, seed: int = 0, epochs: int = 60, batch_size: int = 128, hidden: int = 128, lr: float = 2e-3, weight_decay: float = 1e-4
):
    """Train :class:`AffinityMLP` on the seeded training split, on the CPU.

    Returns
    -------
    model : AffinityMLP in eval mode
    info : dict
        ``train_ids``, ``test_ids``, ``descriptor_bounds`` (lower, upper lists), metrics
        (``train_r2``, ``train_rmse``, ``test_r2``, ``test_rmse``), ``seconds``.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    frame = load_chembl_affinities()
    train, test = split(frame, seed=seed)
    featurizer = demo_featurizer().fit(train)
    X_train, X_test = featurizer.transform(train), featurizer.transform(test)
    y_train = torch.tensor(train["pIC50"].to_numpy(), dtype=torch.float32)
    model = AffinityMLP(hidden=hidden)
    desc = X_train[:, N_BITS:]
    with torch.no_grad():
        model.mean.copy_(desc.mean(dim=0))
        model.std.copy_(desc.std(dim=0).clamp_min(1e-6))
        model.offset.fill_(float(y_train.mean()))
    _fit(model, X_train, y_train, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay)
    with torch.no_grad():
        pred_train = model(X_train).squeeze(1).numpy()
        pred_test = model(X_test).squeeze(1).numpy()
    tr, te = regression_metrics(train["pIC50"], pred_train), regression_metrics(test["pIC50"], pred_test)
    lower, upper = featurizer.featurizers[1].bounds
    info = {
        "train_ids": train["id"].tolist(),
        "test_ids": test["id"].tolist(),
        "descriptors": list(DESCRIPTORS),
        "descriptor_bounds": [lower.tolist(), upper.tolist()],
        "train_r2": tr["r2"],
        "train_rmse": tr["rmse"],
        "test_r2": te["r2"],
        "test_rmse": te["rmse"],
        "n_train": len(train),
        "n_test": len(test),
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "test_predictions": pred_test.tolist(),
    }
    return model, info


def mol_demo_paths(data_dir=None) -> dict:
    """Paths of the shipped demo files."""
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    return {"weights": root / "mol_demo.pt", "info": root / "mol_demo.json", "heldout": root / "mol_demo_heldout.csv"}


def save_mol_demo(model: AffinityMLP, info: dict, *, data_dir=None) -> dict:
    """Write the weights (state_dict + arch name), the split, bounds and metrics, and the held-out table."""
    paths = mol_demo_paths(data_dir)
    torch.save({"state_dict": model.state_dict(), "arch": DEMO_ARCH}, paths["weights"])
    meta = {k: v for k, v in info.items() if k not in ("test_predictions", "train_ids", "test_ids")}
    meta["seconds"] = round(meta["seconds"], 2)
    paths["info"].write_text(json.dumps(meta, indent=1) + "\n")
    frame = load_chembl_affinities().set_index("id").loc[info["test_ids"]].reset_index()
    heldout = pd.DataFrame(
        {"id": frame["id"], "smiles": frame["smiles"], "pIC50": frame["pIC50"], "predicted": np.round(info["test_predictions"], 4)}
    )
    heldout.to_csv(paths["heldout"], index=False)
    return paths


def planted_rule_set(group: str = "C(F)(F)F", *, n: int = 200, effect: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """Real ChEMBL compounds with a planted structure-activity rule whose atoms are known.

    ``n`` compounds of CHEMBL2321810 (:func:`load_chembl_affinities`), half carrying
    the substructure ``group`` (as many as there are) and half not, drawn with ``seed``.
    Their affinity follows a noise-free rule: ``6 + 0.2 x aromatic rings + 0.02 x heavy
    atoms + effect`` when the group is present. A model trained on it should rely on
    the group's atoms; :func:`planted_atom_recovery` measures whether a report says so.

    Parameters
    ----------
    group : str
        SMARTS of the planted group (e.g. ``"C(F)(F)F"``, ``"c[Cl]"``, ``"C#N"``).
    n : int
    effect : float
        What the group adds to the affinity.
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``id``, ``smiles``, ``mol``, ``error``, ``affinity``, ``has_group`` and
        ``group_atoms`` (the atoms of every match of the group; empty without one).

    Examples
    --------
    >>> frame = planted_rule_set(n=40)
    >>> int(frame["has_group"].sum()), sorted(frame["group_atoms"][frame["has_group"]].iloc[0])[:1] != []
    (20, True)
    """
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    pattern = Chem.MolFromSmarts(group)
    if pattern is None:
        raise ValueError(f"cannot parse the SMARTS {group!r}")
    frame = load_chembl_affinities()
    frame = frame[frame["error"].isna()].reset_index(drop=True)
    has = np.array([m.HasSubstructMatch(pattern) for m in frame["mol"]])
    rng = np.random.default_rng(seed)
    with_group, without = np.flatnonzero(has), np.flatnonzero(~has)
    k = min(len(with_group), n // 2)
    rows = np.sort(np.concatenate([rng.choice(with_group, k, replace=False), rng.choice(without, n - k, replace=False)]))
    frame = frame.iloc[rows].reset_index(drop=True)[["id", "smiles", "mol", "error"]]
    mols = frame["mol"]
    frame["has_group"] = has[rows]
    frame["group_atoms"] = [tuple(sorted({a for match in m.GetSubstructMatches(pattern) for a in match})) for m in mols]
    base = np.array([6 + 0.2 * rdMolDescriptors.CalcNumAromaticRings(m) + 0.02 * m.GetNumHeavyAtoms() for m in mols])
    frame["affinity"] = base + effect * frame["has_group"].to_numpy()
    return frame


def train_planted_model(frame: pd.DataFrame, featurizer, *, seed: int = 0, epochs: int = 60, hidden: int = 64) -> nn.Module:
    """An :class:`AffinityMLP` (no descriptors) fitted to ``frame["affinity"]`` on the CPU, seeded.

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`planted_rule_set`.
    featurizer : Morgan
        Fingerprint the model reads.

    Examples
    --------
    >>> from probekit.encode.mol import Morgan
    >>> model = train_planted_model(planted_rule_set(n=20), Morgan(2, 256), epochs=2)
    >>> model(torch.zeros(1, 256)).shape
    torch.Size([1, 1])
    """
    torch.manual_seed(seed)
    X = featurizer.transform(frame)
    y = torch.tensor(frame["affinity"].to_numpy(), dtype=torch.float32)
    model = AffinityMLP(n_bits=X.shape[1], n_descriptors=0, hidden=hidden)
    with torch.no_grad():
        model.offset.fill_(float(y.mean()))
    return _fit(model, X, y, seed=seed, epochs=epochs, batch_size=32, lr=2e-3, weight_decay=1e-4)


def planted_atom_recovery(report, frame: pd.DataFrame) -> pd.DataFrame:
    """Whether each probed molecule carrying the planted group has its top-ranked atom in the group.

    Parameters
    ----------
    report : MoleculeReport
        A probe of (some of) the molecules of ``frame``, with the same ids.
    frame : pandas.DataFrame
        From :func:`planted_rule_set`.

    Returns
    -------
    pandas.DataFrame
        One row per probed molecule with the group: ``id``, ``top_atom`` (rank 1 in
        ``report.atoms()``), ``in_group`` (bool) and ``group_rank`` (best rank of a group
        atom). The mean of ``in_group`` is the recovery.
    """
    atoms = report.atoms()
    groups = dict(zip(frame["id"].astype(str), frame["group_atoms"]))
    rows = []
    for id, mine in atoms.groupby("id", sort=False):
        group = set(groups.get(str(id), ()))
        if not group:
            continue
        top = int(mine.loc[mine["rank"].idxmin(), "atom"])
        rows.append({"id": id, "top_atom": top, "in_group": top in group,
                     "group_rank": int(mine.loc[mine["atom"].isin(group), "rank"].min())})  # fmt: skip
    return pd.DataFrame(rows, columns=["id", "top_atom", "in_group", "group_rank"])


@dataclass
class MolDemo:
    """The loaded demo: model, adapter, featurizer, held-out compounds and metrics."""

    model: nn.Module
    adapter: object
    featurizer: object
    test: pd.DataFrame
    metrics: dict = field(default_factory=dict)


def load_mol_demo(*, device=None, batch_size: int = 1024, data_dir=None) -> MolDemo:
    """Load the shipped affinity model as a :class:`probekit.FeatureModel` with its held-out compounds.

    Parameters
    ----------
    device : str or torch.device, optional
        Device of the adapter (``None``: CUDA when available).
    batch_size : int
        Inputs per forward pass of the adapter.

    The featurizer is fitted on the training compounds (read in place from RDKit's
    Contrib data), so reports judge perturbed descriptors against them and name
    the bits a flip adds by their environments there; the descriptor bounds are
    the shipped ones.

    Returns
    -------
    MolDemo
        ``adapter`` scores SMILES (predicted pIC50); ``test`` is the held-out set
        (``id``, ``smiles``, ``mol``, ``error``, ``pIC50``); ``metrics`` has the held-out
        ``test_r2`` and ``test_rmse``.
    """
    from . import outputs
    from .adapters import FeatureModel
    from .io import read_molecules
    from .loading import load_model

    paths = mol_demo_paths(data_dir)
    if not paths["weights"].exists():
        raise FileNotFoundError(f"{paths['weights']} not found; run python data/mol_demo_train.py")
    model = load_model(paths["weights"], arch=DEMO_ARCH)
    meta = json.loads(paths["info"].read_text())
    heldout = pd.read_csv(paths["heldout"], dtype={"id": str})
    featurizer = demo_featurizer()
    try:  # the training compounds are the reference set: real molecules' descriptors, what each bit stands for
        frame = load_chembl_affinities()
        featurizer.fit(frame[~frame["id"].isin(set(heldout["id"]))])
    except FileNotFoundError:
        pass  # an RDKit without its Contrib data: perturbations are judged against the molecules probed
    featurizer.featurizers[1]._bounds = tuple(torch.tensor(b, dtype=torch.float32) for b in meta["descriptor_bounds"])
    test = read_molecules(heldout, smiles_col="smiles", id_col="id")
    test["pIC50"] = heldout["pIC50"].to_numpy()
    # a small MLP: large batches keep the many candidate evaluations of a search cheap on the CPU
    adapter = FeatureModel(model, featurizer=featurizer, output=outputs.value(0), device=device, batch_size=batch_size)
    metrics = {k: meta[k] for k in ("test_r2", "test_rmse", "train_r2", "train_rmse", "n_train", "n_test")}
    return MolDemo(model=model, adapter=adapter, featurizer=featurizer, test=test, metrics=metrics)


__all__ = ["AffinityMLP", "demo_featurizer", "load_chembl_affinities", "train_mol_demo", "save_mol_demo",
           "load_mol_demo", "MolDemo", "regression_metrics", "chembl_paths", "planted_rule_set", "train_planted_model",
           "planted_atom_recovery"]
