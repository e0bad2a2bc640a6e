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
  atoms of their environments (:func:`probekit.chem.atom_importance`).

The tables it builds are rendered by :mod:`probekit.report.molecules`.

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

import time
import warnings

import numpy as np
import pandas as pd
import torch

from .. import goals as goals_module
from .._warnings import warn
from ..report.molecules import (
    ATOM_COLUMNS,
    EDIT_COLUMNS,
    FRAME_COLUMNS,
    PERTURBATION_COLUMNS,
    SHARE,
    SUMMARY_COLUMNS,
    MoleculeReport,
    feature_ranking,
)
from ..report.tables import rank_desc
from ..results import edit_label
from .baseline import compare_by_size, compared_stats


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
    from ..search.baseline import random_bit_flips
    from ..search.discrete import bit_flips

    allowed = _flippable(X, binary, flips)
    res = bit_flips(adapter, X, goal=goal, max_flips=max_flips, method=method, features=allowed, ids=ids, progress=progress)
    adv = (res.score_after - res.score_before).cpu()
    # as many random flips as the flip set found (the best one when the goal was not reached; max_flips without one)
    ks = torch.where(res.n_edits > 0, res.n_edits, torch.full_like(res.n_edits, max_flips)).clamp_min(1).cpu()
    ks = torch.minimum(ks, allowed.sum(dim=1).cpu())  # never more random flips than flippable bits
    stats = compare_by_size(
        lambda rows, k: random_bit_flips(
            adapter, X[rows.to(X.device)], k=k, n_draws=n_draws, seed=seed, features=allowed[rows.to(X.device)]
        ),
        ks, adv,
    )  # fmt: skip
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
    return res, compared_stats(base, adv)


# Integrated gradients whose sum misses f(x) - f(0) by more than this fraction are not trusted ("auto").
COMPLETENESS_TOLERANCE = 0.1


def _attribution(adapter, X, ids, method, kwargs) -> tuple[torch.Tensor, list]:
    """(N, F) attributions and the method that gave each row's.

    ``"auto"``: integrated gradients from the zero baseline (every bit absent), checked
    row by row against their completeness (they must add up to f(x) - f(0)); rows that
    miss it by more than :data:`COMPLETENESS_TOLERANCE`, or all rows when the model
    gives no gradient, get Shapley values sampled from the same baseline instead. Like
    integrated gradients, and unlike removing one bit at a time, these share the effect
    of a group that several bits encode among those bits, and they need no gradient.
    """
    from ..attr import attribute

    n = X.shape[0]
    if method != "auto":
        values = attribute(adapter, X, method=method, ids=ids, **(kwargs or {})).values
        return values.detach().cpu().float(), [method] * n
    try:
        ig = attribute(adapter, X, method="integrated_gradients", ids=ids, **(kwargs or {}))
    except RuntimeError as error:  # no gradient path (thresholds, lookups, a model outside torch)
        warn(f"integrated gradients failed ({str(error).splitlines()[0]}); atoms and features are ranked by "
             "Shapley values sampled from the zero baseline instead")  # fmt: skip
        return _shapley(adapter, X, ids), ["shapley_sampling"] * n
    values = ig.values.detach().cpu().float()
    delta = ig.delta.detach().cpu().float()
    total = (values.sum(dim=1) + delta).abs()  # |f(x) - f(0)|
    bad = delta.abs() > COMPLETENESS_TOLERANCE * torch.maximum(total, values.abs().sum(dim=1)).clamp_min(1e-6)
    methods = ["integrated_gradients"] * n
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten()
        values[rows] = _shapley(adapter, X[rows.to(X.device)], [ids[int(k)] for k in rows])
        for k in rows.tolist():
            methods[k] = "shapley_sampling"
        warn(f"integrated gradients do not add up to the score change from the zero baseline for {len(rows)} of {n} "
             f"inputs (e.g. {ids[int(rows[0])]!r}: the model's gradients do not describe it); those are ranked by "
             "Shapley values sampled from the zero baseline")  # fmt: skip
    return values, methods


def _shapley(adapter, X, ids) -> torch.Tensor:
    from ..attr import shapley_sampling

    return shapley_sampling(adapter, X, ids=ids).values.detach().cpu().float()


# ------------------------------------------------------------------- tables
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
        rank = rank_desc(torch.from_numpy(np.abs(imp))).numpy()
        for a in range(mol.GetNumAtoms()):
            atom_rows.append(
                {"id": ids[k], "atom": a, "element": mol.GetAtomWithIdx(a).GetSymbol(), "importance": float(imp[a]),
                 "rank": int(rank[a]), "flip_weight": float(flip_w[a]), "in_flip": bool(flip_w[a] > 0),
                 "critical": bool(crit_w[a] > 0)}
            )  # fmt: skip
        blocks.append({"id": ids[k], "molblock": Chem.MolToMolBlock(mol)})
    return pd.DataFrame(atom_rows, columns=ATOM_COLUMNS), pd.DataFrame(blocks, columns=["id", "molblock"])


def _edits_table(ids, prov, good_rows, flips, name_index, evaluate_after, added) -> pd.DataFrame:
    """One row per flipped bit; ``added`` (bit -> description) names the bits switched on."""
    rows = []
    if flips is None:
        return pd.DataFrame(columns=EDIT_COLUMNS)
    for k, edits in enumerate(flips.edits):
        i = good_rows[k]
        for step, (name, old, new) in enumerate(edits):
            j = name_index[name]
            removed = float(old) > float(new)
            envs = prov.environments(i, j) if removed else []
            named = {} if removed else added.get(j, {})
            rows.append(
                {"id": ids[k], "step": step + 1, "edit": edit_label(name, old, new),
                 "change": "removed" if removed else "added", "feature": name, "index": j, "old": old, "new": new,
                 "atoms": " ".join(str(a) for a in sorted({a for e in envs for a in e["atoms"]})),
                 "substructure": ".".join(dict.fromkeys(e["smiles"] for e in envs)) or named.get("smiles"),
                 "smarts": ".".join(dict.fromkeys(e["smarts"] for e in envs)) or named.get("smarts"),
                 "source": "this molecule" if envs else named.get("source"),
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
    flips: str = "off",
    norm: str = "linf",
    baseline_draws: int = 200,
    attribution: str | None = "auto",
    attribution_kwargs: dict | None = None,
    method: str = "auto",
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> MoleculeReport:
    """Probe a feature or molecule model: attributions, minimal flips and perturbations, atoms.

    For the inputs that featurize cleanly and that the model can score (batched on
    ``adapter.device``):

    1. ``attribution`` of the score to every feature (captum, via :func:`probekit.attr.attribute`);
       ``importance`` = |attribution|, ``rank`` 1 for the most important feature of a molecule;
    2. if there are binary features: the fewest flips reaching ``goal``
       (:func:`probekit.search.discrete.bit_flips`), each re-scored step by step, and
       ``baseline_draws`` random flip sets of the same size (``max_flips`` where the
       goal was not reached): ``flip_ratio`` (|adversarial change| / mean |random
       change|), ``flip_z`` and the empirical ``flip_p_value``. By default only bits
       the molecule has may flip (``flips="off"``): the answer is which of its own
       substructures, removed, move the prediction;
    3. if there are continuous features: the smallest perturbation of them reaching
       ``goal`` in ``norm`` (:func:`probekit.search.continuous.min_perturbation`;
       binary and integer features stay fixed), each feature's ``share`` of it
       (|delta_j| / sum |delta|), random perturbations of the same norm, and whether
       the perturbed point is ``plausible``: inside the reference set's range and no
       farther from a real molecule than reference molecules lie from each other;
    4. ``critical`` features: in the minimal flip set, or carrying at least 10% of
       the minimal perturbation (where the goal was reached), or with |attribution|
       in the top ``alpha`` fraction of the molecule's non-zero attributions;
    5. per atom (with a fingerprint featurizer): attributions spread over the atoms
       of each bit's environments (:func:`probekit.chem.atom_importance`), the
       atoms of the flipped bits, and the atoms of critical bits.

    Records that cannot be read or featurized, and molecules whose score the model
    cannot give (it raises on them, or returns NaN or infinity:
    :meth:`~probekit.adapters.Adapter.screen`), become rows of ``summary()`` with
    their ``error``, in the model's own words; the rest goes on.

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
    flips : {"off", "on", "both"}
        Which bits may flip. ``"off"`` (default): only bits the molecule has, so each
        flip removes one of its own substructures (shown with its atoms);
        ``"on"``: only bits it lacks, so each flip adds a substructure it does not
        have (shown as the bit's most common environment in the featurizer's
        reference set, see :meth:`~probekit.encode.mol.Featurizer.fit`, or else in
        the molecules probed); ``"both"``: either. The random baseline draws from
        the same bits.
    norm : {"linf", "l2", "l1"}
        Norm of the continuous perturbation, in the features' own units.
    baseline_draws : int
        Random flip sets / perturbations per molecule.
    attribution : str
        ``"auto"`` (default): integrated gradients from the zero baseline (every bit
        absent), except for molecules where they do not add up to the score change
        from that baseline (a model without useful gradients: thresholds, lookups,
        trees), which get Shapley values sampled from the same baseline
        (``"shapley_sampling"``, 25 feature orders); the summary's ``attribution_method``
        says which. Or a method of :mod:`probekit.attr` (``"integrated_gradients"``,
        ``"saliency"``, ``"input_x_gradient"``, ``"feature_ablation"``, ``"shapley_sampling"``).
    attribution_kwargs : dict, optional
        Passed to the attribution method (e.g. ``{"n_steps": 100}``).
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
        raise ValueError(f"flips must be 'off', 'on' or 'both'; got {flips!r}")
    attribution = attribution or "auto"
    goal = _default_goal(adapter, goal)
    X_all, prov = _records(adapter, inputs)
    n_all, n_features = X_all.shape
    names, kinds = adapter.names(n_features), adapter.kinds(n_features)
    name_index = {name: j for j, name in enumerate(names)}
    errors, screened = _screen(adapter, X_all, prov)
    good_rows = [i for i in range(n_all) if errors[i] is None]
    ids = [prov.ids[i] for i in good_rows]
    X = X_all[good_rows].to(adapter.device)
    n = len(good_rows)
    binary = torch.tensor([k == "binary" for k in kinds])
    continuous = torch.tensor([k == "continuous" for k in kinds])

    flip_res = pert = None
    flip_stats, pert_stats = {}, {}
    methods = []
    with adapter.session():
        if n:
            scores = screened[good_rows]
            attr, methods = _attribution(adapter, X, ids, attribution, attribution_kwargs)
            attr = attr.numpy()
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
    ranks = rank_desc(torch.from_numpy(importance)).numpy() if n else np.zeros((0, n_features), dtype=np.int64)
    crit = _critical(importance, flipped, share, flips_ok, pert_ok, alpha)

    # substructures of the bits a molecule has set or counts (and of flipped bits), for the tables
    discrete = np.array([k in ("binary", "integer") for k in kinds])
    present = (Xn > 0) & discrete[None, :]
    kk, jj = np.nonzero(present | flipped)
    subs_k = _substructures(prov, [good_rows[k] for k in kk], jj)
    subs = {(good_rows.index(i), j): v for (i, j), v in subs_k.items()}
    added = _added_bits(prov, good_rows, flipped, flip_to, Xn)
    for (k, j) in zip(*np.nonzero(flipped & (flip_to > Xn))):
        if j in added:
            subs[(int(k), int(j))] = added[j]["smiles"] or added[j].get("smarts")
    frame = _frame(ids, names, kinds, Xn, attr, ranks, crit, flipped, flip_to, delta, share, subs)
    atoms, molecules = _atoms_table(ids, prov, good_rows, attr, flipped, crit)
    edits = _edits_table(ids, prov, good_rows, flip_res, name_index, trajectory, added)
    lower, upper = (b.detach().cpu().numpy().astype(np.float64) for b in adapter.bounds(n_features))
    featurizer = getattr(adapter, "featurizer", None)
    smiles = [prov.smiles[i] if prov.smiles else None for i in good_rows]
    plausible = _plausibility(Xn, delta, kinds, getattr(featurizer, "reference", None), smiles)
    pert_table = _perturbation_table(ids, names, kinds, Xn, delta, share, upper - lower, plausible)
    summary = _summary(prov, errors, good_rows, ids, names, kinds, goal, scores, attr, methods, flip_res, flip_stats,
                       pert, pert_stats, crit, plausible, Xn, delta)  # fmt: skip
    features = feature_ranking(frame, summary[summary["error"].isna()])
    params = {
        "goal": str(goal), "output": adapter.output.name, "max_flips": max_flips, "flips": flips, "norm": norm,
        "baseline_draws": baseline_draws, "attribution": attribution, "method": method, "alpha": alpha,
        "share": SHARE, "seed": seed, "device": str(adapter.device), "n_features": n_features,
        "n_binary": int(binary.sum()), "n_continuous": int(continuous.sum()),
        "featurizer": repr(featurizer), "batch_size": adapter.batch_size,
        "reference": plausible["source"], "n_reference": plausible["n_reference"],
        "reference_distance": plausible["threshold"], "seconds": round(time.perf_counter() - t0, 3),
    }  # fmt: skip
    tables = {"frame": frame, "summary": summary, "atoms": atoms, "edits": edits, "perturbation": pert_table,
              "features": features, "molecules": molecules}  # fmt: skip
    return MoleculeReport("features", tables, params)


def _screen(adapter, X_all: torch.Tensor, prov) -> tuple[list, torch.Tensor]:
    """Errors and scores (N,) of every record: featurization errors, then the model's own problems with the rest.

    A molecule on which the model raises, or whose score is NaN or infinite, gets an error
    naming it and quoting the model (:meth:`~probekit.adapters.Adapter.screen`).
    """
    errors = list(prov.errors)
    scores = torch.full((len(errors),), float("nan"))
    rows = [i for i in range(len(errors)) if errors[i] is None]
    if rows:
        screened, problems = adapter.screen(X_all[rows].to(adapter.device))
        scores[rows] = screened.detach().cpu().float()
        for i, problem in zip(rows, problems):
            if problem is not None:
                errors[i] = f"record {prov.ids[i]!r}: {problem}"
    return errors, scores


def _added_bits(prov, good_rows, flipped, flip_to, X) -> dict:
    """bit -> what it stands for, for every bit a minimal flip set switches on (see :func:`probekit.chem.bit_substructures`)."""
    from ..chem import bit_substructures

    bits = sorted({int(j) for j in np.nonzero(flipped & (flip_to > X))[1]})
    if not bits or prov.featurizer is None:
        return {}
    return bit_substructures(prov.featurizer, bits, provenance=prov)


# Perturbed points no farther from a real molecule than this quantile of the reference molecules'
# distances to their nearest neighbours are plausible; at most THRESHOLD_SAMPLE molecules measure it.
NEIGHBOUR_QUANTILE = 0.95
THRESHOLD_SAMPLE = 2000


def _plausibility(X, delta, kinds, reference, smiles) -> dict:
    """Is each molecule's perturbed point one a real molecule could have?

    Over the non-binary features (the perturbed ones and the integer ones held fixed),
    in units of each feature's standard deviation over the reference set, as the
    root-mean-square difference: the distance to the nearest reference molecule
    (or to the input itself, a real molecule too). Plausible when every feature
    lies within the reference set's range and that distance is at most
    :data:`NEIGHBOUR_QUANTILE` of the reference molecules' own nearest-neighbour
    distances. The reference is the featurizer's fitted set, else the molecules probed.
    """
    n, f = X.shape
    cols = np.array([j for j, k in enumerate(kinds) if k != "binary"], dtype=np.int64)
    out = {"plausible": np.full(n, None, dtype=object), "nearest": np.full(n, np.nan), "nearest_smiles": [None] * n,
           "in_range": np.ones((n, f), dtype=bool), "threshold": None, "source": None, "n_reference": None}  # fmt: skip
    moved = (delta[:, cols] != 0).any(axis=1) if len(cols) else np.zeros(n, dtype=bool)
    if not moved.any():
        return out
    if reference is not None and reference.index.tolist() == cols.tolist() and len(reference.smiles):
        R, ref_smiles, source = reference.features.double().numpy(), list(reference.smiles), "reference set"
    else:
        R, ref_smiles, source = X[:, cols].astype(np.float64), list(smiles), "molecules probed"
    lo, hi = R.min(axis=0), R.max(axis=0)
    new = X[:, cols] + delta[:, cols]
    tol = 1e-6 * np.maximum(hi - lo, 1.0)
    out["in_range"][:, cols] = (new >= lo - tol) & (new <= hi + tol)
    scale = R.std(axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    Z = torch.from_numpy(R / scale)
    rows = np.flatnonzero(moved)
    query = torch.from_numpy(new[rows] / scale)
    d_ref, nearest = _nearest(query, Z)
    d_self = ((query - torch.from_numpy(X[rows][:, cols] / scale)) ** 2).mean(dim=1).sqrt()
    threshold = _neighbour_distance(Z)
    out.update(source=source, n_reference=len(ref_smiles), threshold=threshold)
    for r, k in enumerate(rows):
        own = bool(d_self[r] < d_ref[r])
        out["nearest"][k] = float(min(d_self[r], d_ref[r]))
        out["nearest_smiles"][k] = smiles[k] if own else ref_smiles[int(nearest[r])]
        if threshold is not None:
            out["plausible"][k] = bool(out["in_range"][k, cols].all() and out["nearest"][k] <= threshold)
    return out


def _nearest(query: torch.Tensor, Z: torch.Tensor, block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS distance of each query row to its nearest row of ``Z``, and that row's index."""
    k = max(Z.shape[1], 1)
    dist, index = [], []
    for a in range(0, query.shape[0], block):
        d = torch.cdist(query[a : a + block], Z) / k**0.5
        best = d.min(dim=1)
        dist.append(best.values)
        index.append(best.indices)
    return torch.cat(dist), torch.cat(index)


def _neighbour_distance(Z: torch.Tensor) -> float | None:
    """The :data:`NEIGHBOUR_QUANTILE` of reference molecules' RMS distances to their nearest other one."""
    m = Z.shape[0]
    if m < 2:
        return None
    sample = np.unique(np.linspace(0, m - 1, min(m, THRESHOLD_SAMPLE)).round().astype(np.int64))
    k = max(Z.shape[1], 1)
    gaps = []
    for a in range(0, len(sample), 1024):
        rows = torch.from_numpy(sample[a : a + 1024])
        d = torch.cdist(Z[rows], Z) / k**0.5
        d[torch.arange(len(rows)), rows] = float("inf")  # not its own neighbour
        gaps.append(d.min(dim=1).values)
    return float(torch.quantile(torch.cat(gaps), NEIGHBOUR_QUANTILE))


def _perturbation_table(ids, names, kinds, X, delta, share, width, plausible) -> pd.DataFrame:
    """One row per changed feature; ``range_fraction`` is |delta| over the feature's valid range (NaN if unbounded)."""
    kk, jj = np.nonzero(delta != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(np.isfinite(width[jj]) & (width[jj] > 0), np.abs(delta[kk, jj]) / width[jj], np.nan)
    new = X[kk, jj] + delta[kk, jj]
    return pd.DataFrame(
        {"id": np.array(ids, dtype=object)[kk] if len(kk) else [], "feature": np.array(names, dtype=object)[jj] if len(jj) else [],
         "index": jj, "change": [edit_label(names[j], X[k, j], v) for k, j, v in zip(kk, jj, new)],
         "value": X[kk, jj], "delta": delta[kk, jj], "new_value": new, "share": share[kk, jj], "range_fraction": fraction,
         "in_range": plausible["in_range"][kk, jj],
         "plausible": pd.array(list(plausible["plausible"][kk]), dtype="boolean"),
         "nearest_reference": plausible["nearest"][kk]},
        columns=PERTURBATION_COLUMNS,
    )  # fmt: skip


def _summary(prov, errors, good_rows, ids, names, kinds, goal, scores, attr, methods, flips, fs, pert, ps, crit,
             plausible, X, delta) -> pd.DataFrame:  # fmt: skip
    rows = []
    k_of = {i: k for k, i in enumerate(good_rows)}
    for i, record in enumerate(prov.ids):
        row = {c: None for c in SUMMARY_COLUMNS}
        row.update({"id": record, "smiles": prov.smiles[i] if prov.smiles else None, "goal": str(goal), "error": errors[i]})
        k = k_of.get(i)
        if k is not None:
            top = np.argsort(-np.abs(attr[k]), kind="stable")[:3]
            row.update({"score": float(scores[k]), "top_features": ", ".join(names[j] for j in top),
                        "n_critical": int(crit[k].sum()), "attribution_method": methods[k]})  # fmt: skip
            if flips is not None:
                row.update(
                    {"n_flips": int(flips.n_edits[k]), "flips": "; ".join(edit_label(*e) for e in flips.edits[k]) or None,
                     "flips_success": bool(flips.success[k]),
                     "flips_proved_minimal": bool(flips.proved_minimal[k]), "score_after_flips": float(flips.score_after[k]),
                     "flip_delta": float(flips.score_after[k] - flips.score_before[k]), "flip_random_k": int(fs["random_k"][k]),
                     "flip_random_mean": fs["random_mean"][k], "flip_ratio": fs["ratio"][k], "flip_z": fs["z"][k],
                     "flip_p_value": fs["p_value"][k]}
                )  # fmt: skip
            if pert is not None:
                changed = np.flatnonzero(delta[k] != 0)
                changed = changed[np.argsort(-np.abs(delta[k, changed]), kind="stable")]
                row.update(
                    {"perturbation_norm": float(pert.norm[k]), "perturbation_success": bool(pert.success[k]),
                     "perturbation": "; ".join(edit_label(names[j], X[k, j], X[k, j] + delta[k, j]) for j in changed) or None,
                     "score_after_perturbation": float(pert.score_after[k]),
                     "perturbation_delta": float(pert.score_after[k] - pert.score_before[k]),
                     "perturbation_random_mean": ps["random_mean"][k], "perturbation_ratio": ps["ratio"][k],
                     "perturbation_z": ps["z"][k], "perturbation_p_value": ps["p_value"][k],
                     "perturbation_plausible": plausible["plausible"][k],
                     "perturbation_nearest_reference": plausible["nearest"][k],
                     "perturbation_nearest_smiles": plausible["nearest_smiles"][k]}
                )  # fmt: skip
        rows.append(row)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for column in ("score", "score_after_flips", "flip_delta", "flip_random_mean", "flip_ratio", "flip_z", "flip_p_value",
                   "perturbation_norm", "score_after_perturbation", "perturbation_delta", "perturbation_random_mean",
                   "perturbation_ratio", "perturbation_z", "perturbation_p_value",
                   "perturbation_nearest_reference"):  # fmt: skip
        summary[column] = pd.to_numeric(summary[column], errors="coerce").astype("float64")
    for column in ("n_flips", "flip_random_k", "n_critical"):
        summary[column] = pd.array(summary[column].tolist(), dtype="Int64")
    for column in ("flips_success", "flips_proved_minimal", "perturbation_success", "perturbation_plausible"):
        summary[column] = pd.array(summary[column].tolist(), dtype="boolean")
    for column in ("error", "flips", "perturbation", "perturbation_nearest_smiles", "attribution_method"):
        summary[column] = summary[column].astype(object).where(summary[column].notna(), None)
    return summary


# ------------------------------------------------------------ HTML and plots


__all__ = ["probe_features"]
