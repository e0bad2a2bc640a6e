"""Probing feature and molecule models: which features and atoms hold a prediction up.

:func:`probe_features` is what :func:`probekit.probe` runs for a
:class:`~probekit.FeatureModel`. Per molecule (or feature vector) it finds

- the attribution of every feature (captum, through :mod:`probekit.attr`) and its rank;
- the smallest perturbation of the continuous features that reaches the goal
  (:func:`probekit.search.continuous.min_perturbation`) and which features carry it;
- the fewest flips of binary features (fingerprint bits) that reach the goal
  (:func:`probekit.search.discrete.bit_flips`), with the substructure each
  flipped Morgan bit stands for in that molecule;
- random baselines of the same size (random bit flips; random perturbations of
  the same norm) and the adversarial-vs-random ratio, z and empirical p-value;
- per atom, an importance: attributions of the fingerprint bits spread over the
  atoms of their environments (:func:`probekit.chem.atom_importance`), drawn on the
  molecule with RDKit in the HTML and notebook views.

Across the set, :meth:`MoleculeReport.features` ranks features by mean
|attribution| and by how often they appear in minimal perturbations.

It also holds the ``probekit mol`` and ``probekit demo mol`` commands
(:func:`add_mol_arguments`, :func:`run_mol_cli`, :func:`run_mol_demo`).

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, goals, outputs
>>> from probekit.encode.mol import Morgan
>>> fp = Morgan(radius=1, n_bits=64)
>>> model = torch.nn.Linear(64, 1)
>>> adapter = FeatureModel(model, featurizer=fp, output=outputs.value(0), device="cpu")
>>> report = probe_features(adapter, ["CCO", "c1ccccc1O", "oops("], goal=goals.decrease(by=0.1), baseline_draws=20)
>>> report.summary()["error"].notna().tolist()
[False, False, True]
>>> sorted(report.atoms()["id"].unique())
['mol0', 'mol1']
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import torch

from .. import goals as goals_module
from . import html
from .sensitivity import SensitivityReport, register_report_class

FRAME_COLUMNS = [
    "id", "feature", "index", "kind", "value", "ref", "attribution", "importance", "rank", "critical",
    "flipped", "flip_to", "delta", "new_value", "share", "substructure",
]  # fmt: skip
ATOM_COLUMNS = ["id", "atom", "element", "importance", "rank", "flip_weight", "in_flip", "critical"]
EDIT_COLUMNS = ["id", "step", "feature", "index", "old", "new", "atoms", "substructure", "smarts", "score_after"]
PERTURBATION_COLUMNS = ["id", "feature", "index", "value", "delta", "new_value", "share", "range_fraction"]
FEATURE_COLUMNS = [
    "feature", "index", "kind", "mean_abs_attribution", "mean_attribution", "n_present", "n_in_flips",
    "frac_in_flips", "n_in_perturbation", "frac_in_perturbation", "n_critical", "flip_ratio", "substructure", "rank",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "id", "smiles", "score", "goal", "n_flips", "flips_success", "flips_proved_minimal", "score_after_flips",
    "flip_delta", "flip_random_k", "flip_random_mean", "flip_ratio", "flip_z", "flip_p_value", "perturbation_norm",
    "perturbation_success", "score_after_perturbation", "perturbation_delta", "perturbation_random_mean",
    "perturbation_ratio", "perturbation_z", "perturbation_p_value", "top_features", "n_critical", "error",
]  # fmt: skip
# A feature "carries" a minimal continuous perturbation when it holds at least this share of it.
SHARE = 0.1


class MoleculeReport(SensitivityReport):
    """A :class:`SensitivityReport` of kind ``"features"`` with molecule-specific views.

    Tables: ``frame`` (one row per molecule and feature), ``summary`` (one row per
    molecule, bad records included), ``atoms``, ``edits`` (minimal bit flips),
    ``perturbation`` (minimal continuous perturbation), ``features`` (ranking
    across the set) and ``molecules`` (each molecule's mol block, so drawings keep
    the atom numbering of ``atoms``).
    """

    @classmethod
    def merged_tables(cls, tables: dict) -> dict:
        """The tables of reports on disjoint molecules, joined row by row, with the set's ranking recomputed.

        ``features`` ranks features across all the molecules, so it is computed again from
        the joined ``frame`` and ``summary`` (see :func:`probekit.cli.merge_reports`).
        """
        summary = tables["summary"]
        return {**tables, "features": _feature_ranking(tables["frame"], summary[summary["error"].isna()])}

    def atoms(self) -> pd.DataFrame:
        """One row per molecule and atom: id, atom, element, importance, rank, flip_weight, in_flip, critical."""
        return self.table("atoms")

    def features(self) -> pd.DataFrame:
        """Feature ranking across the set, most important first (see :func:`probe_features`)."""
        return self.table("features")

    def perturbation(self) -> pd.DataFrame:
        """The minimal continuous perturbation of each molecule: one row per changed feature."""
        return self.table("perturbation")

    def mol(self, id):
        """The RDKit molecule of input ``id``, atoms numbered as in :meth:`atoms` (None without one)."""
        from rdkit import Chem

        table = self.table("molecules")
        if table.empty or str(id) not in set(table["id"].astype(str)):
            return None
        block = table.set_index("id").loc[str(id), "molblock"]
        return Chem.MolFromMolBlock(block) if isinstance(block, str) and block else None

    def draw(self, id, *, fmt: str = "svg", size=(360, 260), weights: str = "importance"):
        """Draw molecule ``id`` with atoms coloured by ``weights`` (``"importance"`` or ``"flip_weight"``)."""
        from ..chem import draw_atoms

        mol = self.mol(id)
        if mol is None:
            raise ValueError(f"no molecule drawing for input {id!r}")
        atoms = self.atoms()
        w = atoms[atoms["id"] == str(id)].sort_values("atom")[weights].to_numpy(dtype=float)
        return draw_atoms(mol, w, fmt=fmt, size=size, legend=str(id))


register_report_class("features", MoleculeReport)


# ------------------------------------------------------------------- inputs


def _records(adapter, inputs):
    """Features of every record plus provenance; bad records keep a NaN row and an error."""
    from ..encode.mol import Matrix, Provenance

    featurizer = getattr(adapter, "featurizer", None)
    if featurizer is not None and not isinstance(inputs, (torch.Tensor, np.ndarray)):
        return featurizer.featurize(inputs)
    if isinstance(inputs, pd.DataFrame) and adapter.feature_names:
        return Matrix(adapter.feature_names, adapter._kinds).featurize(inputs)
    from ..io import unique_ids

    X = adapter.encode(inputs).detach().cpu().float()
    n = X.shape[0]
    ids = unique_ids(inputs["id"]) if isinstance(inputs, pd.DataFrame) and "id" in inputs else [f"x{i}" for i in range(n)]
    errors = [None if torch.isfinite(X[i]).all() else f"record {ids[i]!r}: a feature is not finite" for i in range(n)]
    return X, Provenance(ids, [""] * n, [None] * n, errors, [{} for _ in range(n)], None)


def _default_goal(adapter, goal):
    if goal is not None:
        return goals_module.parse(goal)
    return goals_module.flip() if adapter.output.classes else goals_module.decrease(1.0)


# ----------------------------------------------------------------- searches
def _baseline_flips(adapter, X, ks, adv, *, n_draws, seed, features) -> dict:
    """Random bit flips of each input, as many as ``ks`` (N,): one batched baseline per distinct count.

    Each input draws from its own seed, so its baseline does not depend on the other inputs.
    """
    from ..search.baseline import random_bit_flips

    n = X.shape[0]
    out = {name: np.full(n, np.nan) for name in ("random_mean", "ratio", "z", "p_value")}
    for k in torch.unique(ks).tolist():
        if k < 1:  # nothing to flip: no baseline
            continue
        rows = torch.nonzero(ks == k).flatten()
        index = rows.to(X.device)
        base = random_bit_flips(adapter, X[index], k=int(k), n_draws=n_draws, seed=seed, features=features[index])
        compared = base.compare(adv[rows])
        for name in out:
            out[name][rows.numpy()] = compared[name].to_numpy(dtype=np.float64)
    return out


def _flippable(X: torch.Tensor, binary: torch.Tensor, flips: str) -> torch.Tensor:
    """(N, F) bool: binary features that may flip; ``"off"`` only bits that are set, ``"on"`` only unset ones."""
    mask = binary.to(X.device)[None, :].expand(X.shape[0], -1)
    if flips == "off":
        return mask & (X > 0.5)
    if flips == "on":
        return mask & (X <= 0.5)
    if flips != "both":
        raise ValueError(f"flips must be 'both', 'off' or 'on'; got {flips!r}")
    return mask


def _run_flips(adapter, X, ids, *, goal, binary, flips, max_flips, method, n_draws, seed, progress):
    from ..search.discrete import bit_flips

    allowed = _flippable(X, binary, flips)
    res = bit_flips(adapter, X, goal=goal, max_flips=max_flips, method=method, features=allowed, ids=ids, progress=progress)
    adv = (res.score_after - res.score_before).cpu()
    # as many random flips as the flip set found (the best one when the goal was not reached; max_flips without one)
    ks = torch.where(res.n_edits > 0, res.n_edits, torch.full_like(res.n_edits, max_flips)).clamp_min(1).cpu()
    ks = torch.minimum(ks, allowed.sum(dim=1).cpu())  # never more random flips than flippable bits
    stats = _baseline_flips(adapter, X, ks, adv, n_draws=n_draws, seed=seed, features=allowed)
    stats["random_k"] = ks.numpy()
    return res, stats


def _run_perturbation(adapter, X, ids, *, goal, norm, n_draws, seed, progress):
    from .._warnings import ProbekitWarning
    from ..search.continuous import min_perturbation, random_perturbation

    res = min_perturbation(adapter, X, goal=goal, norm=norm, seed=seed, ids=ids, progress=progress)
    adv = (res.score_after - res.score_before).cpu()
    eps = torch.nan_to_num(res.norm.float(), nan=0.0).clamp_min(0).to(adapter.device)
    with warnings.catch_warnings():
        # min_perturbation has named the inputs outside the bounds already
        warnings.filterwarnings("ignore", message=r".*outside the feature bounds", category=ProbekitWarning)
        base = random_perturbation(adapter, X, norm=norm, eps=eps, n_draws=n_draws, seed=seed)
    compared = base.compare(adv)
    stats = {name: compared[name].to_numpy(dtype=float) for name in ("random_mean", "ratio", "z", "p_value")}
    return res, stats


def _attribution(adapter, X, ids, method, kwargs) -> torch.Tensor:
    from ..attr import attribute

    return attribute(adapter, X, method=method, ids=ids, **(kwargs or {})).values.detach().cpu().float()


# ------------------------------------------------------------------- tables
def _rank(values: np.ndarray) -> np.ndarray:
    """1 for the largest value in each row; ties share the order of appearance."""
    order = np.argsort(-values, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(values.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, values.shape[1] + 1)[None, :]
    return ranks


def _critical(importance, flipped, share, flips_ok, pert_ok, alpha) -> np.ndarray:
    """Features in the minimal flip set or carrying >= SHARE of the minimal perturbation (when the goal
    was reached), or with |attribution| in the top ``alpha`` fraction of the input's non-zero ones."""
    crit = (flipped & flips_ok[:, None]) | ((share >= SHARE) & pert_ok[:, None])
    for i in range(importance.shape[0]):
        nz = importance[i][importance[i] > 0]
        if nz.size:
            crit[i] |= importance[i] >= np.quantile(nz, 1 - alpha)
    return crit


def _substructures(prov, rows, features) -> dict:
    """(row, feature) -> SMILES of the feature's environments in that molecule, for the given pairs."""
    out = {}
    for i, j in zip(rows, features):
        envs = prov.environments(int(i), int(j))
        if envs:
            out[(int(i), int(j))] = ".".join(dict.fromkeys(e["smiles"] for e in envs))
    return out


def _frame(ids, names, kinds, X, attr, ranks, crit, flipped, flip_to, delta, share, subs) -> pd.DataFrame:
    n, f = X.shape
    ii = np.repeat(np.arange(n), f)
    jj = np.tile(np.arange(f), n)
    frame = pd.DataFrame(
        {
            "id": np.array(ids, dtype=object)[ii],
            "feature": np.array(names, dtype=object)[jj],
            "index": jj,
            "kind": np.array(kinds, dtype=object)[jj],
            "value": X.reshape(-1),
            "ref": X.reshape(-1),  # the unedited value: the column every report kind shares
            "attribution": attr.reshape(-1),
            "importance": np.abs(attr).reshape(-1),
            "rank": ranks.reshape(-1),
            "critical": crit.reshape(-1),
            "flipped": flipped.reshape(-1),
            "flip_to": np.where(flipped, flip_to, np.nan).reshape(-1),
            "delta": delta.reshape(-1),
            "new_value": (X + delta).reshape(-1),
            "share": share.reshape(-1),
        }
    )
    sub = np.full(n * f, None, dtype=object)
    for (i, j), text in subs.items():
        sub[i * f + j] = text
    frame["substructure"] = sub
    return frame[FRAME_COLUMNS]


def _atoms_table(ids, prov, good_rows, attr, flipped, crit) -> tuple[pd.DataFrame, pd.DataFrame]:
    from rdkit import Chem

    from ..chem import atom_importance

    atom_rows, blocks = [], []
    featurizer = prov.featurizer
    for k, i in enumerate(good_rows):
        mol = prov.mols[i]
        if mol is None or featurizer is None:
            continue
        info = prov.info[i]
        imp = atom_importance(mol, attr[k], featurizer, info=info)
        flip_w = atom_importance(mol, flipped[k].astype(float), featurizer, info=info)
        crit_w = atom_importance(mol, crit[k].astype(float), featurizer, info=info)
        order = np.argsort(-np.abs(imp), kind="stable")
        rank = np.empty(len(imp), dtype=np.int64)
        rank[order] = np.arange(1, len(imp) + 1)
        for a in range(mol.GetNumAtoms()):
            atom_rows.append(
                {"id": ids[k], "atom": a, "element": mol.GetAtomWithIdx(a).GetSymbol(), "importance": float(imp[a]),
                 "rank": int(rank[a]), "flip_weight": float(flip_w[a]), "in_flip": bool(flip_w[a] > 0),
                 "critical": bool(crit_w[a] > 0)}
            )  # fmt: skip
        blocks.append({"id": ids[k], "molblock": Chem.MolToMolBlock(mol)})
    return pd.DataFrame(atom_rows, columns=ATOM_COLUMNS), pd.DataFrame(blocks, columns=["id", "molblock"])


def _edits_table(ids, prov, good_rows, flips, name_index, evaluate_after) -> pd.DataFrame:
    rows = []
    if flips is None:
        return pd.DataFrame(columns=EDIT_COLUMNS)
    for k, edits in enumerate(flips.edits):
        i = good_rows[k]
        for step, (name, old, new) in enumerate(edits):
            j = name_index[name]
            envs = prov.environments(i, j) if float(old) > float(new) else []
            rows.append(
                {"id": ids[k], "step": step + 1, "feature": name, "index": j, "old": old, "new": new,
                 "atoms": " ".join(str(a) for a in sorted({a for e in envs for a in e["atoms"]})),
                 "substructure": ".".join(dict.fromkeys(e["smiles"] for e in envs)) or None,
                 "smarts": ".".join(dict.fromkeys(e["smarts"] for e in envs)) or None,
                 "score_after": evaluate_after.get((k, step), np.nan)}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=EDIT_COLUMNS)


def _flip_trajectory(adapter, X, flips, name_index) -> dict:
    """Score after each prefix of each minimal flip set, in one batch: (row, step) -> score."""
    owner, steps, cands = [], [], []
    for k, edits in enumerate(flips.edits):
        x = X[k].clone()
        for step, (name, _, new) in enumerate(edits):
            x = x.clone()
            x[name_index[name]] = float(new)
            owner.append(k)
            steps.append(step)
            cands.append(x)
    if not cands:
        return {}
    scores = adapter.score(torch.stack(cands)).cpu().tolist()
    return {(k, s): v for k, s, v in zip(owner, steps, scores)}


def _feature_ranking(frame: pd.DataFrame, summary_good: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=FEATURE_COLUMNS)
    ratio = summary_good.set_index("id")["flip_ratio"]
    reached = set(summary_good.loc[summary_good["perturbation_success"].fillna(False).astype(bool), "id"])
    frame = frame.assign(
        abs_attr=frame["importance"],
        present=frame["value"] != 0,
        carried=(frame["share"] >= SHARE) & frame["id"].isin(reached),
        ratio_if_flipped=np.where(frame["flipped"], frame["id"].map(ratio), np.nan),
    )
    groups = frame.groupby(["index"], sort=True)
    n = frame["id"].nunique()
    table = pd.DataFrame(
        {
            "feature": groups["feature"].first(),
            "index": groups["index"].first(),
            "kind": groups["kind"].first(),
            "mean_abs_attribution": groups["abs_attr"].mean(),
            "mean_attribution": groups["attribution"].mean(),
            "n_present": groups["present"].sum().astype(int),
            "n_in_flips": groups["flipped"].sum().astype(int),
            "frac_in_flips": groups["flipped"].sum() / max(n, 1),
            "n_in_perturbation": groups["carried"].sum().astype(int),
            "frac_in_perturbation": groups["carried"].sum() / max(n, 1),
            "n_critical": groups["critical"].sum().astype(int),
            "flip_ratio": groups["ratio_if_flipped"].mean(),
            "substructure": groups["substructure"].agg(lambda s: s.dropna().mode().iloc[0] if s.notna().any() else None),
        }
    ).reset_index(drop=True)
    table = table.sort_values(["mean_abs_attribution", "n_in_flips"], ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table[FEATURE_COLUMNS].reset_index(drop=True)


# -------------------------------------------------------------------- probe
def _max_flips(max_flips, max_edits) -> int:
    """The one flip budget from ``max_flips`` and its alias ``max_edits``: 3 without either."""
    if max_flips is not None and max_edits is not None and int(max_flips) != int(max_edits):
        raise ValueError(
            f"max_flips={max_flips} and max_edits={max_edits} disagree; they are the same setting for feature "
            "models (the most bit flips searched): give one"
        )
    chosen = max_flips if max_flips is not None else max_edits
    return 3 if chosen is None else int(chosen)


def probe_features(
    adapter,
    inputs,
    *,
    goal=None,
    max_flips: int | None = None,
    max_edits: int | None = None,
    flips: str = "both",
    norm: str = "linf",
    baseline_draws: int = 200,
    attribution: str | None = "integrated_gradients",
    attribution_kwargs: dict | None = None,
    method: str = "auto",
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> MoleculeReport:
    """Probe a feature or molecule model: attributions, minimal flips and perturbations, atoms.

    For the inputs that featurize cleanly (batched on ``adapter.device``):

    1. ``attribution`` of the score to every feature (captum, via :func:`probekit.attr.attribute`);
       ``importance`` = |attribution|, ``rank`` 1 for the most important feature of a molecule;
    2. if there are binary features: the fewest flips reaching ``goal``
       (:func:`probekit.search.discrete.bit_flips`), each re-scored step by step, and
       ``baseline_draws`` random flip sets of the same size (``max_flips`` where the
       goal was not reached): ``flip_ratio`` (|adversarial change| / mean |random
       change|), ``flip_z`` and the empirical ``flip_p_value``;
    3. if there are continuous features: the smallest perturbation of them reaching
       ``goal`` in ``norm`` (:func:`probekit.search.continuous.min_perturbation`;
       binary and integer features stay fixed), each feature's ``share`` of it
       (|delta_j| / sum |delta|), and random perturbations of the same norm;
    4. ``critical`` features: in the minimal flip set, or carrying at least 10% of
       the minimal perturbation (where the goal was reached), or with |attribution|
       in the top ``alpha`` fraction of the molecule's non-zero attributions;
    5. per atom (with a fingerprint featurizer): attributions spread over the atoms
       of each bit's environments (:func:`probekit.chem.atom_importance`), the
       atoms of the flipped bits, and the atoms of critical bits.

    Records that cannot be read or featurized become rows of ``summary()`` with
    their ``error``; the rest goes on.

    Parameters
    ----------
    adapter : FeatureModel
    inputs : SMILES list, molecule file path, read_molecules DataFrame, feature DataFrame or tensor (N, F)
    goal : Goal or str, optional
        Default: ``decrease:1.0`` for value outputs, ``flip`` for class outputs.
    max_flips : int, optional
        Most bit flips searched; default 3.
    max_edits : int, optional
        The same setting under the name :func:`probekit.probe` uses for DNA models:
        give either one; both with different values raise ``ValueError``.
    flips : {"both", "off", "on"}
        Which bits may flip: any binary feature, only bits the molecule has (removing
        its own substructures; the random baseline draws from the same bits), or only
        bits it lacks.
    norm : {"linf", "l2", "l1"}
        Norm of the continuous perturbation, in the features' own units.
    baseline_draws : int
        Random flip sets / perturbations per molecule.
    attribution : str
        A method of :mod:`probekit.attr` (``"integrated_gradients"``, ``"saliency"``,
        ``"input_x_gradient"``, ``"feature_ablation"``, ``"shapley_sampling"``).
    attribution_kwargs : dict, optional
        Passed to the attribution method (e.g. ``{"baseline": "mean"}``).
    method : str
        Bit-flip search method (see :func:`probekit.search.discrete.bit_flips`).
    alpha : float
        Fraction of the top attributions counted as critical.
    seed : int
        Seed of the random baselines. Each input draws from a seed made of this one and
        its features, so its baseline does not depend on the other inputs probed with it.
    progress : bool

    Returns
    -------
    MoleculeReport
        A :class:`SensitivityReport` of kind ``"features"``: ``to_frame()`` one row per
        molecule and feature (id, feature, index, kind, value, ref (= value, the column
        shared with DNA reports), attribution, importance, rank, critical, flipped,
        flip_to, delta, new_value, share, substructure);
        ``atoms()``, ``edits()``, ``perturbation()``, ``features()``, ``summary()``.
    """
    t0 = time.perf_counter()
    max_flips = _max_flips(max_flips, max_edits)
    if max_flips < 1:
        raise ValueError(f"max_flips must be at least 1, got {max_flips}")
    if baseline_draws < 1:
        raise ValueError(f"baseline_draws must be at least 1, got {baseline_draws}")
    if flips not in ("both", "off", "on"):
        raise ValueError(f"flips must be 'both', 'off' or 'on'; got {flips!r}")
    attribution = attribution or "integrated_gradients"
    goal = _default_goal(adapter, goal)
    X_all, prov = _records(adapter, inputs)
    n_all, n_features = X_all.shape
    names, kinds = adapter.names(n_features), adapter.kinds(n_features)
    name_index = {name: j for j, name in enumerate(names)}
    good_rows = [i for i in range(n_all) if prov.errors[i] is None]
    ids = [prov.ids[i] for i in good_rows]
    X = X_all[good_rows].to(adapter.device)
    n = len(good_rows)
    binary = torch.tensor([k == "binary" for k in kinds])
    continuous = torch.tensor([k == "continuous" for k in kinds])

    flip_res = pert = None
    flip_stats, pert_stats = {}, {}
    with adapter.session():
        if n:
            scores = adapter.score(X).cpu()
            attr = _attribution(adapter, X, ids, attribution, attribution_kwargs).numpy()
            if bool(binary.any()):
                flip_res, flip_stats = _run_flips(adapter, X, ids, goal=goal, binary=binary, flips=flips, max_flips=max_flips,
                                               method=method, n_draws=baseline_draws, seed=seed, progress=progress)
            if bool(continuous.any()):
                pert, pert_stats = _run_perturbation(adapter, X, ids, goal=goal, norm=norm, n_draws=baseline_draws,
                                                     seed=seed, progress=progress)
            trajectory = _flip_trajectory(adapter, X, flip_res, name_index) if flip_res is not None else {}
        else:
            scores, attr, trajectory = torch.zeros(0), np.zeros((0, n_features)), {}

    Xn = X.detach().cpu().numpy()
    flipped = np.zeros((n, n_features), dtype=bool)
    flip_to = np.zeros((n, n_features))
    if flip_res is not None:
        for k, edits in enumerate(flip_res.edits):
            for name, _, new in edits:
                flipped[k, name_index[name]] = True
                flip_to[k, name_index[name]] = float(new)
    delta = np.zeros((n, n_features))
    if pert is not None:
        delta = pert.delta.reshape(n, n_features).numpy().astype(np.float64)
    total = np.abs(delta).sum(axis=1, keepdims=True)
    share = np.divide(np.abs(delta), total, out=np.zeros_like(delta), where=total > 0)
    flips_ok = flip_res.success.numpy().astype(bool) if flip_res is not None else np.zeros(n, dtype=bool)
    pert_ok = pert.success.numpy().astype(bool) if pert is not None else np.zeros(n, dtype=bool)
    importance = np.abs(attr)
    ranks = _rank(importance) if n else np.zeros((0, n_features), dtype=np.int64)
    crit = _critical(importance, flipped, share, flips_ok, pert_ok, alpha)

    # substructures of the bits a molecule has set or counts (and of flipped bits), for the tables
    discrete = np.array([k in ("binary", "integer") for k in kinds])
    present = (Xn > 0) & discrete[None, :]
    kk, jj = np.nonzero(present | flipped)
    subs_k = _substructures(prov, [good_rows[k] for k in kk], jj)
    subs = {(good_rows.index(i), j): v for (i, j), v in subs_k.items()}
    frame = _frame(ids, names, kinds, Xn, attr, ranks, crit, flipped, flip_to, delta, share, subs)
    atoms, molecules = _atoms_table(ids, prov, good_rows, attr, flipped, crit)
    edits = _edits_table(ids, prov, good_rows, flip_res, name_index, trajectory)
    lower, upper = (b.detach().cpu().numpy().astype(np.float64) for b in adapter.bounds(n_features))
    pert_table = _perturbation_table(ids, names, Xn, delta, share, upper - lower)
    summary = _summary(prov, good_rows, ids, names, goal, scores, attr, flip_res, flip_stats, pert, pert_stats, crit)
    features = _feature_ranking(frame, summary[summary["error"].isna()])
    params = {
        "goal": str(goal), "output": adapter.output.name, "max_flips": max_flips, "flips": flips, "norm": norm,
        "baseline_draws": baseline_draws, "attribution": attribution, "method": method, "alpha": alpha,
        "share": SHARE, "seed": seed, "device": str(adapter.device), "n_features": n_features,
        "n_binary": int(binary.sum()), "n_continuous": int(continuous.sum()),
        "featurizer": repr(getattr(adapter, "featurizer", None)), "batch_size": adapter.batch_size,
        "seconds": round(time.perf_counter() - t0, 3),
    }  # fmt: skip
    tables = {"frame": frame, "summary": summary, "atoms": atoms, "edits": edits, "perturbation": pert_table,
              "features": features, "molecules": molecules}  # fmt: skip
    return MoleculeReport("features", tables, params)


def _perturbation_table(ids, names, X, delta, share, width) -> pd.DataFrame:
    """One row per changed feature; ``range_fraction`` is |delta| over the feature's valid range (NaN if unbounded)."""
    kk, jj = np.nonzero(delta != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(np.isfinite(width[jj]) & (width[jj] > 0), np.abs(delta[kk, jj]) / width[jj], np.nan)
    return pd.DataFrame(
        {"id": np.array(ids, dtype=object)[kk] if len(kk) else [], "feature": np.array(names, dtype=object)[jj] if len(jj) else [],
         "index": jj, "value": X[kk, jj], "delta": delta[kk, jj], "new_value": X[kk, jj] + delta[kk, jj],
         "share": share[kk, jj], "range_fraction": fraction},
        columns=PERTURBATION_COLUMNS,
    )  # fmt: skip


def _summary(prov, good_rows, ids, names, goal, scores, attr, flips, fs, pert, ps, crit) -> pd.DataFrame:
    rows = []
    k_of = {i: k for k, i in enumerate(good_rows)}
    for i, record in enumerate(prov.ids):
        row = {c: None for c in SUMMARY_COLUMNS}
        row.update({"id": record, "smiles": prov.smiles[i] if prov.smiles else None, "goal": str(goal), "error": prov.errors[i]})
        k = k_of.get(i)
        if k is not None:
            top = np.argsort(-np.abs(attr[k]), kind="stable")[:3]
            row.update({"score": float(scores[k]), "top_features": ", ".join(names[j] for j in top),
                        "n_critical": int(crit[k].sum())})  # fmt: skip
            if flips is not None:
                row.update(
                    {"n_flips": int(flips.n_edits[k]), "flips_success": bool(flips.success[k]),
                     "flips_proved_minimal": bool(flips.proved_minimal[k]), "score_after_flips": float(flips.score_after[k]),
                     "flip_delta": float(flips.score_after[k] - flips.score_before[k]), "flip_random_k": int(fs["random_k"][k]),
                     "flip_random_mean": fs["random_mean"][k], "flip_ratio": fs["ratio"][k], "flip_z": fs["z"][k],
                     "flip_p_value": fs["p_value"][k]}
                )  # fmt: skip
            if pert is not None:
                row.update(
                    {"perturbation_norm": float(pert.norm[k]), "perturbation_success": bool(pert.success[k]),
                     "score_after_perturbation": float(pert.score_after[k]),
                     "perturbation_delta": float(pert.score_after[k] - pert.score_before[k]),
                     "perturbation_random_mean": ps["random_mean"][k], "perturbation_ratio": ps["ratio"][k],
                     "perturbation_z": ps["z"][k], "perturbation_p_value": ps["p_value"][k]}
                )  # fmt: skip
        rows.append(row)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for column in ("score", "score_after_flips", "flip_delta", "flip_random_mean", "flip_ratio", "flip_z", "flip_p_value",
                   "perturbation_norm", "score_after_perturbation", "perturbation_delta", "perturbation_random_mean",
                   "perturbation_ratio", "perturbation_z", "perturbation_p_value"):  # fmt: skip
        summary[column] = pd.to_numeric(summary[column], errors="coerce").astype("float64")
    for column in ("n_flips", "flip_random_k", "n_critical"):
        summary[column] = pd.array(summary[column].tolist(), dtype="Int64")
    for column in ("flips_success", "flips_proved_minimal", "perturbation_success"):
        summary[column] = pd.array(summary[column].tolist(), dtype="boolean")
    summary["error"] = summary["error"].astype(object).where(summary["error"].notna(), None)
    return summary


# ------------------------------------------------------------ HTML and plots
def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _good(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["error"].isna()]


def overview_section(report, *, figures, max_inputs) -> str:
    summary, params = report.summary(), report.params
    good = _good(summary)
    lines = [
        f"{len(summary)} molecules ({len(summary) - len(good)} with errors); score: {params.get('output')}; "
        f"goal: {params.get('goal')}; featurizer: {params.get('featurizer')}; attribution: {params.get('attribution')}."
    ]
    if params.get("n_binary") and len(good):
        ok = good["flips_success"].fillna(False).astype(bool)
        lines.append(
            f"Bit flips (at most {params.get('max_flips')}): goal reached for {int(ok.sum())} of {len(good)} molecules; "
            f"median adversarial-vs-random ratio {_fmt(float(good['flip_ratio'].median()))} against "
            f"{params.get('baseline_draws')} random flip sets of the same size."
        )
    if params.get("n_continuous") and len(good):
        ok = good["perturbation_success"].fillna(False).astype(bool)
        lines.append(
            f"Continuous features ({params.get('norm')}): goal reached for {int(ok.sum())} of {len(good)} molecules; "
            f"median minimal norm {_fmt(float(good['perturbation_norm'].median()))}; median ratio "
            f"{_fmt(float(good['perturbation_ratio'].median()))} against random perturbations of the same norm."
        )
    columns = [c for c in summary.columns if summary[c].notna().any() or c == "error"]
    body = "".join(html.note(line) for line in lines)
    return html.section("Summary", body + html.table_html(summary[columns], max_rows=100))


def features_section(report, *, figures, max_inputs) -> str:
    table = report.table("features")
    if table.empty:
        return ""
    text = (
        "Features ranked across the set by mean |attribution|; n_in_flips / n_in_perturbation count the molecules "
        "whose minimal bit flips / minimal continuous perturbation use the feature; flip_ratio is the mean "
        "adversarial-vs-random ratio of those molecules; substructure is the bit's most common environment."
    )
    return html.section("Feature ranking", html.note(text) + html.table_html(table, max_rows=30))


def molecules_section(report, *, figures, max_inputs) -> str:
    good = _good(report.summary())
    if good.empty:
        return ""
    if good["flip_p_value"].notna().any():
        good = good.sort_values(["flip_p_value", "flip_ratio"], ascending=[True, False], kind="stable")
    shown = good.head(max_inputs)
    edits = report.edits()
    frame = report.to_frame()
    parts = []
    if len(shown) < len(good):
        parts.append(html.note(f"Views of {len(shown)} of {len(good)} molecules (smallest bit-flip p-values first)."))
    has_drawings = not report.table("molecules").empty
    for row in shown.itertuples(index=False):
        id = str(row.id)
        mine = edits[edits["id"] == id] if not edits.empty else edits
        flip_text = "; ".join(
            f"{e.feature} {e.old}->{e.new}" + (f" ({e.substructure} at atoms {e.atoms})" if isinstance(e.substructure, str) else "")
            for e in mine.itertuples()
        ) or "none"
        lines = [f"{row.smiles or ''} score {_fmt(row.score)}; most important features: {row.top_features}."]
        if row.n_flips is not pd.NA and row.n_flips is not None:
            lines.append(
                f"Minimal bit flips: {flip_text} ({'goal reached' if row.flips_success else 'goal not reached'}"
                f"{', proved minimal' if row.flips_proved_minimal else ''}; score -> {_fmt(row.score_after_flips)}); "
                f"{_fmt(row.flip_ratio)}x the mean random change, z = {_fmt(row.flip_z)}, p = {_fmt(row.flip_p_value)}."
            )
        if row.perturbation_norm is not None and not pd.isna(row.perturbation_norm):
            carried = frame[(frame["id"] == id) & (frame["share"] >= SHARE)].sort_values("share", ascending=False)
            carry = ", ".join(f"{r.feature} {r.delta:+.3g}" for r in carried.itertuples()) or "none"
            lines.append(
                f"Minimal continuous perturbation: norm {_fmt(row.perturbation_norm)} carried by {carry} "
                f"({'goal reached' if row.perturbation_success else 'goal not reached'}; score -> "
                f"{_fmt(row.score_after_perturbation)}); {_fmt(row.perturbation_ratio)}x random, p = {_fmt(row.perturbation_p_value)}."
            )
        body = "".join(html.note(line) for line in lines)
        if has_drawings:
            try:
                views = [report.draw(id)]
                caption = "Atoms coloured by importance: red raises the score, blue lowers it"
                atoms = report.atoms()
                if atoms[(atoms["id"] == id)]["in_flip"].any():
                    views.append(report.draw(id, weights="flip_weight"))
                    caption += "; right: atoms of the bits removed by the minimal flips"
                body += "".join(f'<div class="probekit-molecule" style="display:inline-block">{v[v.find("<svg"):]}</div>'
                                for v in views)  # fmt: skip
                body += html.note(caption + ".")
            except (ValueError, ImportError) as error:
                body += html.note(f"no drawing: {error}")
        if figures:
            fig, ax = html.new_figure(7, 2.6)
            plot_attribution(report, id, ax)
            body += html.figure_html(fig, alt=f"{id} attributions")
        parts.append(html.section(id, body, level=3, anchor=f"input-{id}"))
    return html.section("Molecules", "\n".join(parts))


def edits_section(report, *, figures, max_inputs) -> str:
    edits, pert = report.edits(), report.table("perturbation")
    parts = []
    if not edits.empty:
        parts.append(html.section("Minimal bit flips", html.table_html(edits, max_rows=200)))
    if not pert.empty:
        parts.append(html.section("Minimal continuous perturbations", html.table_html(pert, max_rows=200)))
    return "\n".join(parts)


def errors_section(report, *, figures, max_inputs) -> str:
    summary = report.summary()
    bad = summary[summary["error"].notna()][["id", "error"]]
    return "" if bad.empty else html.section("Records with errors", html.table_html(bad, max_rows=None))


def parameters_section(report, *, figures, max_inputs) -> str:
    return html.section("Parameters", html.params_html(report.params))


def plot_attribution(report, id, ax, *, top: int = 15):
    """Horizontal bars of the ``top`` largest |attributions| of one molecule (critical features dark)."""
    frame = report.to_frame()
    rows = frame[frame["id"] == str(id)].sort_values("rank").head(top).iloc[::-1]
    colours = ["#b2182b" if a > 0 else "#2166ac" for a in rows["attribution"]]
    alphas = [1.0 if c else 0.45 for c in rows["critical"]]
    labels = [f"{f}  {s}" if isinstance(s, str) else str(f) for f, s in zip(rows["feature"], rows["substructure"])]
    bars = ax.barh(range(len(rows)), rows["attribution"], color=colours)
    for bar, alpha in zip(bars, alphas):
        bar.set_alpha(alpha)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(f"attribution ({report.params.get('attribution')})")
    ax.set_title(f"{id}: top features (critical ones solid)", fontsize=9)
    return ax


def plot_atoms(report, id, ax, *, weights: str = "importance"):
    """The molecule drawn with atoms coloured by importance, as an image on ``ax``."""
    import io

    import matplotlib.image as mpimg

    png = report.draw(id, fmt="png", size=(420, 300), weights=weights)
    ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
    ax.set_axis_off()
    return ax


SensitivityReport.register_plot("features", "attribution", plot_attribution)
SensitivityReport.register_plot("features", "atoms", plot_atoms)
for _order, _fn in enumerate((overview_section, features_section, molecules_section, edits_section, errors_section,
                              parameters_section)):  # fmt: skip
    SensitivityReport.register_section("features", _fn, order=10 * (_order + 1))


__all__ = ["probe_features", "MoleculeReport", "plot_attribution", "plot_atoms"]


# ------------------------------------------------------------------- command line
def add_mol_arguments(parser) -> None:
    """Arguments of ``probekit mol``."""
    from pathlib import Path

    from ..cli import add_autocast_argument, add_chunk_arguments

    parser.add_argument("--model", required=True, type=Path, help="TorchScript file or state_dict (.pt)")
    parser.add_argument("--arch", help="architecture of a state_dict, as module:Class")
    parser.add_argument("--trust", action="store_true", help="allow unpickling a whole model (runs code from the file)")
    parser.add_argument("--molecules", required=True, type=Path, help=".smi, .csv, .tsv or .sdf file of molecules")
    parser.add_argument("--smiles-col", help="SMILES column of a CSV/TSV (default: a column named like 'smiles')")
    parser.add_argument("--id-col", help="id column of a CSV/TSV or SD property (default: 'id'/'name' or the SDF title)")
    parser.add_argument("--standardize", action="store_true", help="keep the largest fragment and neutralise charges")
    parser.add_argument("--featurizer", default="morgan:2:2048",
                        help="morgan:RADIUS:NBITS, morgan-counts:R:N, descriptors[:A,B], maccs; join with + "
                             "(default morgan:2:2048)")  # fmt: skip
    parser.add_argument("--output", default="value:0", help="scalar to probe: value:I, logit:I, prob:I, margin:I (default value:0)")
    parser.add_argument("--goal", default="decrease:1.0", help="decrease:D, increase:D, below:T, above:T, flip or target:C")
    add_mol_probe_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="HTML report to write")
    parser.add_argument("--table", type=Path, help="also write the per-molecule, per-feature table as CSV")
    parser.add_argument("--atoms-table", type=Path, help="also write the per-atom table as CSV")
    parser.add_argument("--max-figures", type=int, default=20,
                        help="molecules that get their own drawings and figures in the report, smallest bit-flip "
                             "p-values first (default 20)")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    add_autocast_argument(parser)
    add_chunk_arguments(parser, "molecules")


def add_mol_probe_arguments(parser) -> None:
    """Probe settings of ``probekit mol`` (``probekit demo mol`` reads the same names when present)."""
    parser.add_argument("--max-flips", "--max-edits", dest="max_flips", type=int, default=3,
                        help="largest set of bit flips searched (default 3)")  # fmt: skip
    parser.add_argument("--flips", choices=("both", "off", "on"), default="both",
                        help="bits that may flip: any, only bits the molecule has, only bits it lacks (default both)")  # fmt: skip
    parser.add_argument("--norm", choices=("linf", "l2", "l1"), default="linf", help="norm of continuous perturbations")
    parser.add_argument("--attribution", default="integrated_gradients",
                        help="integrated_gradients, saliency, input_x_gradient, feature_ablation or shapley_sampling")  # fmt: skip
    parser.add_argument("--method", default="auto", help="bit-flip search: auto, exhaustive, greedy, beam or gradient")
    parser.add_argument("--baseline-draws", type=int, default=200, help="random flip sets per molecule (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baselines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _cli_error(message: str):
    from ..cli import CLIError

    return CLIError(message)


def _write_outputs(report, args, out, log, *, title: str, started: float) -> None:
    report.to_html(out, title=title, max_inputs=args.max_figures)
    log(f"wrote {out} ({len(report)} molecules, {time.perf_counter() - started:.1f} s)")
    for attr, table in (("table", report.to_frame), ("atoms_table", report.atoms)):
        path = getattr(args, attr, None)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            table().to_csv(path, index=False)
            log(f"wrote {path}")


def headline(report) -> list[str]:
    """A few lines a chemist reads first: goals reached, ratios, the features that matter most.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"id": ["a"], "error": [None], "flips_success": [True], "flip_ratio": [4.0],
    ...                   "perturbation_success": [None]})
    >>> r = MoleculeReport("features", {"frame": pd.DataFrame(columns=FRAME_COLUMNS), "summary": s}, {"goal": "decrease:1.0"})
    >>> headline(r)[0]
    'decrease:1.0 reached by bit flips for 1/1 molecules (median 4x the mean random flip set)'
    """
    summary = report.summary()
    good = _good(summary)
    lines = []
    goal = report.params.get("goal")
    if "flips_success" in good and good["flips_success"].notna().any():
        ok = good["flips_success"].fillna(False).astype(bool)
        lines.append(
            f"{goal} reached by bit flips for {int(ok.sum())}/{len(good)} molecules "
            f"(median {_fmt(float(good['flip_ratio'].median()))}x the mean random flip set)"
        )
    if "perturbation_success" in good and good["perturbation_success"].notna().any():
        ok = good["perturbation_success"].fillna(False).astype(bool)
        lines.append(
            f"{goal} reached by perturbing continuous features for {int(ok.sum())}/{len(good)} molecules "
            f"(median norm {_fmt(float(good['perturbation_norm'].median()))})"
        )
    features = report.table("features")
    if not features.empty:
        top = features.head(5)
        names = ", ".join(f"{r.feature}" + (f" [{r.substructure}]" if isinstance(r.substructure, str) else "") for r in top.itertuples())
        lines.append(f"top features by mean |attribution|: {names}")
    if len(good) < len(summary):
        lines.append(f"{len(summary) - len(good)} records with errors (see the report)")
    return lines


def _mol_settings(model_digest: str, featurizer, goal, output: str, options: dict) -> dict:
    """What identifies a molecule probe's results: the model, the featurizer with its bounds, the probe options."""
    from ..cli import _hash

    lower, upper = featurizer.bounds
    return {
        "model": model_digest, "featurizer": repr(featurizer), "features": _hash(list(featurizer.names)),
        "bounds": _hash([lower.tolist(), upper.tolist()]),  # fitted on the molecules probed, so they can change
        "output": output, "goal": str(goal), **options,
    }  # fmt: skip


def _probe_molecules(adapter, records, *, goal, options: dict, settings: dict, args, out, log):
    """:func:`probe_features` chunk by chunk through :func:`probekit.cli.probe_resumably` (saved under <out>.partial/)."""

    def probe_chunk(part):
        return probe_features(adapter, part, goal=goal, progress=False, **options)

    from ..cli import probe_resumably

    return probe_resumably(adapter, records, settings=settings, args=args, out=out, log=log, probe_chunk=probe_chunk,
                           key_columns=("id", "smiles"), unit="mol")  # fmt: skip


def run_mol_cli(args, *, log=print) -> int:
    """``probekit mol``: probe a molecule model on a file of molecules; returns the exit code.

    Molecules are probed ``--chunk-size`` at a time; each finished chunk is saved
    under ``<out>.partial/`` and reused by a rerun with the same settings (see
    :func:`probekit.cli.probe_in_chunks`). Argument and file problems raise
    ``probekit.cli.CLIError`` (one line, exit code 2).
    """
    from ..adapters import FeatureModel
    from ..cli import _file_digest, _load_model, drop_partial, log_autocast, parse_goal, parse_output
    from ..encode.mol import parse_featurizer
    from ..io import read_molecules

    for name in ("max_flips", "baseline_draws", "chunk_size"):
        if getattr(args, name) < 1:
            raise _cli_error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        raise _cli_error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_figures < 0:
        raise _cli_error(f"--max-figures must be at least 0, got {args.max_figures}")
    goal, output = parse_goal(args.goal), parse_output(args.output)
    try:
        featurizer = parse_featurizer(args.featurizer)
    except ValueError as error:
        raise _cli_error(str(error)) from None
    if not args.molecules.exists():
        raise _cli_error(f"molecule file not found: {args.molecules}")
    try:
        records = read_molecules(args.molecules, smiles_col=args.smiles_col, id_col=args.id_col, standardize=args.standardize)
    except ValueError as error:
        raise _cli_error(str(error)) from None
    for message in records.loc[records["error"].notna(), "error"]:
        log(f"skipping: {message}")
    if any(k != "binary" for k in featurizer.kinds):
        valid = records[records["error"].isna()]
        if len(valid):
            featurizer.fit(valid)  # continuous features stay within the range of the molecules probed
            log(f"bounds of the non-binary features taken from the {len(valid)} valid molecules (bits keep [0, 1])")
    model = _load_model(args.model, args.arch, args.trust)
    options = dict(max_flips=args.max_flips, flips=args.flips, norm=args.norm, baseline_draws=args.baseline_draws,
                   attribution=args.attribution, method=args.method, seed=args.seed)  # fmt: skip
    settings = _mol_settings(_file_digest(args.model), featurizer, goal, args.output,
                             {**options, "arch": args.arch, "standardize": bool(args.standardize),
                              "autocast": getattr(args, "autocast", None)})  # fmt: skip
    started = time.perf_counter()
    try:
        adapter = FeatureModel(model, featurizer=featurizer, output=output, device=args.device,
                               batch_size=args.batch_size or "auto", autocast=getattr(args, "autocast", None))  # fmt: skip
        report = _probe_molecules(adapter, records, goal=goal, options=options, settings=settings, args=args,
                                  out=args.out, log=log)  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise _cli_error(str(error).splitlines()[0]) from None
    _write_outputs(report, args, args.out, log, title=f"probekit: {args.molecules.name}", started=started)
    drop_partial(args.out, args)
    for line in headline(report):
        log(line)
    log_autocast(adapter, log)
    return 0


def _arg(args, name: str, default):
    """``args.name``, or ``default`` where the namespace lacks it or holds None (0 and "" are kept)."""
    value = getattr(args, name, None)
    return default if value is None else value


def run_mol_demo(args, *, log=print) -> int:
    """``probekit demo mol``: the bundled affinity model, its held-out R^2 / RMSE, then a probe of held-out compounds.

    Reads ``args.out`` (folder) and, when present: ``args.device``, ``args.batch_size``
    (inputs per forward pass, default 1024), ``args.autocast``, ``args.output`` (the
    score to probe, default ``value:0``, the predicted pIC50; an output the
    one-output model does not have is refused), ``args.goal`` (default
    ``decrease:1.0``), ``args.max_flips`` / ``args.max_edits``, ``args.method``,
    ``args.flips``, ``args.norm``, ``args.attribution``, ``args.baseline_draws``,
    ``args.seed``, ``args.n_molecules``, ``args.max_figures``, ``args.no_progress``,
    ``args.chunk_size`` (default 16) and ``args.keep_partial``: compounds are probed in
    chunks saved under ``mol_demo_report.html.partial/``, as by ``probekit mol``.
    ``args.motifs`` is refused: motifs apply to DNA models only.

    Argument problems raise ``probekit.cli.CLIError`` (one line, exit code 2).
    """
    import argparse
    from pathlib import Path

    from ..cli import _file_digest, drop_partial, log_autocast, parse_goal, parse_output
    from ..mol_demo import load_mol_demo, mol_demo_paths

    if getattr(args, "motifs", False):
        raise _cli_error("--motifs applies to DNA models only; the molecule demo has no motifs to annotate")
    goal = parse_goal(_arg(args, "goal", "decrease:1.0"))
    output_spec = _arg(args, "output", "value:0")
    output = parse_output(output_spec)
    max_flips = int(_arg(args, "max_flips", _arg(args, "max_edits", 3)))
    batch_size = int(_arg(args, "batch_size", 1024))
    baseline_draws = int(_arg(args, "baseline_draws", 200))
    n_molecules = int(_arg(args, "n_molecules", 12))
    chunk_size = int(_arg(args, "chunk_size", 16))
    for flag, value in (("--max-edits", max_flips), ("--batch-size", batch_size), ("--baseline-draws", baseline_draws),
                        ("--chunk-size", chunk_size)):  # fmt: skip
        if value < 1:
            raise _cli_error(f"{flag} must be at least 1, got {value}")
    try:
        demo = load_mol_demo(device=_arg(args, "device", None), batch_size=batch_size)
    except FileNotFoundError as error:
        raise _cli_error(str(error)) from None
    m = demo.metrics
    log(
        f"affinity model (CHEMBL2321810 pIC50, {m['n_train']} training compounds): held-out R^2 = {m['test_r2']:.3f}, "
        f"RMSE = {m['test_rmse']:.3f} pIC50 units on {m['n_test']} compounds"
    )
    heldout = demo.test.head(n_molecules)
    adapter = demo.adapter.replace(output=output)
    if getattr(args, "autocast", None):
        adapter = adapter.replace(autocast=args.autocast)
    try:  # an output index past the model's one output fails here, before any work
        adapter.score(heldout["smiles"].tolist()[:1])
    except (IndexError, ValueError) as error:
        raise _cli_error(
            f"--output {output_spec} does not apply to the affinity model, whose one output is the predicted pIC50 "
            f"(use value:0): {str(error).splitlines()[0]}"
        ) from None
    out_dir = Path(_arg(args, "out", "probekit-demo"))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "mol_demo_report.html"
    method = _arg(args, "method", "auto")
    log(f"probing {len(heldout)} held-out compounds: {output.name}, goal {goal}, at most {max_flips} bit flips ({method})")
    options = dict(max_flips=max_flips, flips=_arg(args, "flips", "both"), norm=_arg(args, "norm", "linf"),
                   attribution=_arg(args, "attribution", None), method=method, baseline_draws=baseline_draws,
                   seed=int(_arg(args, "seed", 0)))  # fmt: skip
    settings = _mol_settings(_file_digest(mol_demo_paths()["weights"]), demo.featurizer, goal, output_spec,
                             {**options, "autocast": getattr(args, "autocast", None)})  # fmt: skip
    chunking = argparse.Namespace(chunk_size=chunk_size, no_progress=bool(getattr(args, "no_progress", False)),
                                  keep_partial=bool(getattr(args, "keep_partial", False)))  # fmt: skip
    try:
        report = _probe_molecules(adapter, heldout, goal=goal, options=options, settings=settings, args=chunking,
                                  out=out, log=log)  # fmt: skip
    except ValueError as error:
        raise _cli_error(str(error).splitlines()[0]) from None
    report.to_html(out, title="probekit: affinity demo (CHEMBL2321810)", max_inputs=int(_arg(args, "max_figures", 20)))
    report.to_frame().to_csv(out_dir / "mol_demo_features.csv", index=False)
    report.atoms().to_csv(out_dir / "mol_demo_atoms.csv", index=False)
    report.features().to_csv(out_dir / "mol_demo_ranking.csv", index=False)
    drop_partial(out, chunking)
    log(f"wrote {out} and the feature, atom and ranking tables")
    for line in headline(report):
        log(line)
    log_autocast(adapter, log)
    return 0


__all__ += ["add_mol_arguments", "add_mol_probe_arguments", "run_mol_cli", "run_mol_demo", "headline"]
