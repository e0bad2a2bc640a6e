"""Counterfactual molecules: the most similar real molecules, fewest edits away, that reach a goal.

:func:`counterfactual_molecules` runs a seeded beam search over real chemical
space. Level ``k`` holds molecules ``k`` single edits away from the input
(SELFIES mutations, matched-pair fragment swaps, atom and bond edits; see
:mod:`probekit.molmodel.mutate`), each sanitised by RDKit. All candidates of all
inputs of a level are scored in one batched adapter call. The search stops for
an input at the first level where some candidate reaches the goal and returns
the most similar of them (Tanimoto on Morgan count fingerprints by default),
ties going to the canonical SMILES that sorts first; otherwise it keeps a beam
of the candidates that make progress and goes one edit further.

Random walks of the same number of edits, at about the same similarity, give
the null distribution of score changes, the ratio and the empirical p-value of
the change found (:meth:`probekit.results.BaselineResult.compare`).

Candidates are drawn from generators seeded by the seed and the molecules' own
canonical SMILES, so the same seed gives the same molecules whatever the batch
size and whichever other inputs share the call.

Examples
--------
>>> from rdkit import Chem
>>> from probekit import goals
>>> from probekit.molmodel import MoleculeModel
>>> phenol = Chem.MolFromSmarts("[OX2H][c]")
>>> def n_phenols(smiles):
...     return [len(Chem.MolFromSmiles(s).GetSubstructMatches(phenol)) for s in smiles]
>>> adapter = MoleculeModel(n_phenols, kind="smiles", device="cpu")
>>> result = counterfactual_molecules(adapter, ["Oc1ccc(CC(=O)O)cc1"], goal=goals.decrease(by=1.0),
...                                   n_candidates=40, n_random=20, operators=["atom", "mmpa"])
>>> result.best, result.n_edits.tolist(), result.success.tolist()
(['Cc1ccc(CC(=O)O)cc1'], [1], [True])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from .. import goals as goals_module
from ..probe.baseline import compare_by_size
from ..results import BaselineResult, Result, _count, _values
from .._warnings import warn
from ._select import tie_rtol
from .discrete import _ids, _progress

_TIE = tie_rtol(torch.float32)  # scores of float32 models and finer tie within this relative tolerance
_WALKS_PER_DRAW = 2  # random walks made per baseline draw kept, to choose those nearest in similarity


class _Path(NamedTuple):
    """A molecule reached by the search: its SMILES, edits, goal value, score and similarity to the input."""

    smiles: str
    edits: tuple
    g: float
    score: float
    similarity: float


@dataclass(frozen=True)
class CounterfactualResult(Result):
    """Counterfactual molecules of N inputs: most similar first, fewest edits away.

    Attributes
    ----------
    smiles : list of str, length N
        Each input as canonical SMILES (its text as given where it is not a molecule).
    counterfactuals : list of list of str
        Per input, up to ``n_results`` distinct molecules that reach the goal,
        most similar first; where none does, the one closest to the goal
        (``success`` False); empty for error rows.
    edits : list of list of list of str
        Per input and counterfactual, the edits from the input, in order. Atom
        numbers of an edit refer to the molecule it was applied to (the input as
        given, then the canonical SMILES of each intermediate).
    similarities, scores, sa_scores : list of list of float
        Per input and counterfactual: similarity to the input, model score, SA score (NaN where unavailable).
    n_edits : torch.Tensor of shape (N,), long
        Edits of the counterfactuals (0 where there is none).
    success : torch.Tensor of shape (N,), bool
    score_before, score_after : torch.Tensor of shape (N,), float64
        Score of the input and of its best counterfactual (NaN where none).
    similarity : torch.Tensor of shape (N,), float64
        Similarity of the best counterfactual to the input.
    evaluations : torch.Tensor of shape (N,), long
        Candidate molecules the model scored for each input's search (the random
        baseline's are in ``params["baseline_evaluations"]``).
    random_deltas : torch.Tensor of shape (N, n_random), float64
        Score changes of random walks of ``n_edits`` edits at about the best
        counterfactual's similarity (NaN where none was drawn).
    ratio, p_value : torch.Tensor of shape (N,), float64
        |change found| / mean |random change|, and the empirical one-sided p-value of the change found.
    errors : list of (str or None), length N
        Why an input was not searched.
    ids : list of str
    params : dict
        Goal, search settings, seed, device, seconds, model calls.
    """

    smiles: list
    counterfactuals: list
    edits: list
    similarities: list
    scores: list
    sa_scores: list
    n_edits: torch.Tensor
    success: torch.Tensor
    score_before: torch.Tensor
    score_after: torch.Tensor
    similarity: torch.Tensor
    evaluations: torch.Tensor
    random_deltas: torch.Tensor
    ratio: torch.Tensor
    p_value: torch.Tensor
    errors: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    params: dict = field(default_factory=dict)

    @property
    def best(self) -> list:
        """The most similar counterfactual of each input (None where there is none)."""
        return [found[0] if found else None for found in self.counterfactuals]

    def _id_list(self) -> list:
        return self.ids or [f"mol{i}" for i in range(len(self.smiles))]

    def _repr_items(self) -> list[str]:
        return [
            f"n={len(self.smiles)}",
            f"success={_count(self.success)}",
            f"n_edits={_values(self.n_edits[self.success])}",
            f"similarity={_values(self.similarity[self.success])}",
            f"errors={sum(e is not None for e in self.errors)}",
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per input and counterfactual (one row without a counterfactual for inputs that have none).

        Columns: id, smiles, rank, counterfactual, edits (text), n_edits,
        similarity, score_before, score_after, delta, success, sa_score, p_value, error.
        """
        rows = []
        for i, name in enumerate(self._id_list()):
            base = {"id": name, "smiles": self.smiles[i], "n_edits": int(self.n_edits[i]),
                    "score_before": float(self.score_before[i])}
            found = self.counterfactuals[i]
            common = {"success": bool(self.success[i]), "p_value": float(self.p_value[i]), "error": self.errors[i]}
            if not found:
                rows.append({**base, "rank": None, "counterfactual": None, "edits": "", "similarity": math.nan,
                             "score_after": math.nan, "delta": math.nan, "sa_score": math.nan, **common})
            for rank, smiles in enumerate(found):
                score = self.scores[i][rank]
                rows.append({**base, "rank": rank, "counterfactual": smiles, "edits": "; ".join(self.edits[i][rank]),
                             "similarity": self.similarities[i][rank], "score_after": score,
                             "delta": score - base["score_before"], "sa_score": self.sa_scores[i][rank], **common})
        columns = ["id", "smiles", "rank", "counterfactual", "edits", "n_edits", "similarity", "score_before",
                   "score_after", "delta", "success", "sa_score", "p_value", "error"]
        return pd.DataFrame(rows, columns=columns)

    def summary(self) -> pd.DataFrame:
        """One row per input: best counterfactual, its edits, similarity, scores, model calls, baseline ratio and p-value."""
        return pd.DataFrame(
            {
                "id": self._id_list(),
                "smiles": self.smiles,
                "counterfactual": self.best,
                "edits": ["; ".join(e[0]) if e else "" for e in self.edits],
                "n_edits": self.n_edits.numpy(),
                "similarity": self.similarity.numpy(),
                "score_before": self.score_before.numpy(),
                "score_after": self.score_after.numpy(),
                "delta": (self.score_after - self.score_before).numpy(),
                "success": self.success.numpy(),
                "evaluations": self.evaluations.numpy(),
                "ratio": self.ratio.numpy(),
                "p_value": self.p_value.numpy(),
                "error": self.errors,
            }
        )

    def baseline(self) -> BaselineResult:
        """The random walks' score changes as a :class:`~probekit.results.BaselineResult`, ``k`` the edits of each input's walks."""
        return BaselineResult(deltas=self.random_deltas, k=self.n_edits.tolist(), kind="molecule_edits",
                              ids=self._id_list(), params={"seed": self.params.get("seed")})


def _check(name: str, value, *, allow_none: bool = False, minimum: int = 1) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


def _level_pool(parents: list, mol0, original: str, seen: set, level: int, *, n_candidates, seed, options, similar,
                min_similarity) -> list:
    """Candidates (smiles, edits, parent g, similarity) of one input at one level, not seen before.

    Each beam molecule gives its share of ``n_candidates`` single edits; those
    less similar to the input than ``min_similarity`` are dropped, and a seeded
    draw keeps ``n_candidates`` of the rest.
    """
    from ..molmodel.mutate import single_edits, text_seed, to_mol

    share = None if n_candidates is None else max(1, math.ceil(n_candidates / len(parents)))
    pool: dict[str, tuple] = {}
    for parent in parents:
        mol = mol0 if not parent.edits else to_mol(parent.smiles)
        for c in single_edits(mol, n=share, seed=seed, **options):
            if c.smiles in seen:
                continue
            edits = parent.edits + (c.edit,)
            if c.smiles not in pool or edits < pool[c.smiles][1]:
                pool[c.smiles] = (c.smiles, edits, parent.g)
    keys = sorted(pool)
    sims = similar(mol0, keys) if keys else []
    kept = [t for t in range(len(keys)) if sims[t] >= min_similarity]
    if n_candidates is not None and len(kept) > n_candidates:
        rng = np.random.default_rng(text_seed(seed, original, "level", str(level)))
        kept = [kept[d] for d in sorted(rng.choice(len(kept), size=n_candidates, replace=False).tolist())]
    return [(*pool[keys[t]], float(sims[t])) for t in kept]


def _closest(paths: list) -> _Path:
    """The path nearest the goal: lowest g (ties within rounding), then most similar, then SMILES."""
    low = min(p.g for p in paths)
    near = [p for p in paths if p.g - low <= _TIE * max(1.0, abs(low), abs(p.g))]
    return min(near, key=lambda p: (-p.similarity, p.smiles))


def _by_similarity(paths: list) -> list:
    return sorted(paths, key=lambda p: (-p.similarity, p.smiles))


def _next_beam(paths: list, parent_g: list, beam_width: int) -> list:
    """The closest path to the goal plus the most similar paths that lower g below their parent's."""
    moving = [p for p, g0 in zip(paths, parent_g) if p.g < g0 - _TIE * max(1.0, abs(g0), abs(p.g))]
    if not moving:
        return []
    first = _closest(moving)
    rest = [p for p in _by_similarity(moving) if p.smiles != first.smiles]
    return [first] + rest[: beam_width - 1]


def _search(scorer, bound, mols, originals, g0, *, max_edits, beam_width, n_candidates, seed, options, similar,
            min_similarity, progress, unscored) -> tuple[dict, dict, dict]:
    """Beam search of every input (positions ``0..M-1`` of ``mols``); returns per input found paths, level, evaluations.

    ``unscored`` (a two-item list) gains the count of candidates without a finite goal value and of all candidates.
    """
    from ..molmodel.mutate import COMMON_SUBSTITUENTS, substituents

    m = len(mols)
    fragments = {j: tuple(options.get("fragments") or COMMON_SUBSTITUENTS) + tuple(substituents(mols[j])) for j in range(m)}
    beams = {j: [_Path(originals[j], (), g0[j], math.nan, 1.0)] for j in range(m) if not g0[j] <= 0}
    seen = {j: {originals[j]} for j in range(m)}
    found: dict[int, list] = {}
    closest: dict[int, _Path] = {}
    evaluations = dict.fromkeys(range(m), 0)
    levels = {}
    for level in _progress(range(1, max_edits + 1), progress, "edits"):
        if not beams:
            break
        pools = {j: _level_pool(beams[j], mols[j], originals[j], seen[j], level, n_candidates=n_candidates, seed=seed,
                                options={**options, "fragments": fragments[j]}, similar=similar,
                                min_similarity=min_similarity) for j in sorted(beams)}
        flat = [(j, entry) for j in sorted(pools) for entry in pools[j]]
        if not flat:
            break
        rows = torch.tensor([j for j, _ in flat], dtype=torch.long)
        scores, g = scorer.evaluate_molecules([entry[0] for _, entry in flat], bound, rows)
        unscored[0] += int((~torch.isfinite(g)).sum())
        unscored[1] += len(flat)
        start = 0
        for j in sorted(pools):
            pool = pools[j]
            stop = start + len(pool)
            paths = [_Path(s, e, float(g[start + t]), float(scores[start + t]), sim)
                     for t, (s, e, _, sim) in enumerate(pool)]
            start = stop
            evaluations[j] += len(pool)
            seen[j].update(p.smiles for p in paths)
            finite = [p for p in paths if math.isfinite(p.g)]
            wins = [p for p in finite if p.g <= 0]
            if finite:
                candidate = _closest(finite)
                if j not in closest or _closest([closest[j], candidate]) is candidate:
                    closest[j], levels[j] = candidate, level
            if wins:
                found[j], levels[j] = wins, level
                del beams[j]
                continue
            moving = [(path, parent_g) for path, (_, _, parent_g, _) in zip(paths, pool) if math.isfinite(path.g)]
            beams[j] = _next_beam([p for p, _ in moving], [g_parent for _, g_parent in moving], beam_width)
            if not beams[j]:
                del beams[j]
    for j, path in closest.items():
        found.setdefault(j, [path])
    return found, levels, evaluations


def _walk_draws(scorer, bound, mols, originals, target_similarity, before, *, n_random, seed, options, similar, store,
                evaluations):
    """``draw(rows, k)`` for :func:`~probekit.probe.baseline.compare_by_size`: random walks of ``k`` edits per input.

    Of ``2 * n_random`` walks from each input, the ``n_random`` distinct molecules
    nearest in similarity to ``target_similarity[j]`` are kept; all inputs of one
    ``k`` are scored in one call. Their score changes go to ``store`` (M, n_random)
    and the molecules scored to ``evaluations`` (M,).
    """
    from ..molmodel.mutate import random_edit_paths

    def draw(rows: torch.Tensor, k: int) -> BaselineResult:
        picks = []
        for j in rows.tolist():
            walks = random_edit_paths(mols[j], k, n=_WALKS_PER_DRAW * n_random, seed=seed, **options)
            reached = sorted({smiles for smiles, _ in walks} - {originals[j]})
            sims = similar(mols[j], reached) if reached else []
            order = sorted(range(len(reached)), key=lambda t: (abs(sims[t] - target_similarity[j]), reached[t]))
            picks.append([reached[t] for t in order[:n_random]])
        flat = [(j, smiles) for j, chosen in zip(rows.tolist(), picks) for smiles in chosen]
        deltas = torch.full((len(rows), n_random), math.nan, dtype=torch.float64)
        if flat:
            owners = torch.tensor([j for j, _ in flat], dtype=torch.long)
            scores, _ = scorer.evaluate_molecules([smiles for _, smiles in flat], bound, owners)
            start = 0
            for r, (j, chosen) in enumerate(zip(rows.tolist(), picks)):
                part = scores[start : start + len(chosen)]
                deltas[r, : len(chosen)] = part - before[j]
                evaluations[j] += len(chosen)
                start += len(chosen)
        store[rows] = deltas
        return BaselineResult(deltas=deltas, k=k, kind="molecule_edits")

    return draw


def _inputs(scorer, molecules, ids) -> tuple[list, list, list, list]:
    """Parsed molecules, problems, ids and the text of each record."""
    from ..molmodel.mutate import canonical

    if isinstance(molecules, pd.DataFrame):
        column = "smiles" if "smiles" in molecules.columns else "mol"
        records = list(molecules[column]) if column in molecules.columns else []
    else:
        records = [molecules] if isinstance(molecules, str) or hasattr(molecules, "GetAtoms") else list(molecules)
    mols, problems = scorer.parse(molecules if isinstance(molecules, pd.DataFrame) else records)
    records = records if len(records) == len(mols) else [None] * len(mols)
    texts = [canonical(m) if m is not None else str(records[i]) for i, m in enumerate(mols)]
    id_list = _ids(molecules, ids, len(mols)) or [f"mol{i}" for i in range(len(mols))]
    return mols, problems, id_list, texts


def counterfactual_molecules(
    adapter,
    molecules,
    *,
    goal=goals_module.decrease(by=1.0),
    max_edits: int = 3,
    beam_width: int = 5,
    n_candidates: int | None = 200,
    operators=("selfies", "mmpa", "atom"),
    similarity="morgan_counts",
    min_similarity: float = 0.0,
    n_results: int = 3,
    n_random: int = 50,
    seed: int = 0,
    fragments=None,
    ids=None,
    batch_size: int | None = None,
    progress: bool = False,
) -> CounterfactualResult:
    """The most similar real molecules, fewest single edits away, that reach ``goal``.

    Level ``k`` of the search holds molecules ``k`` edits from an input. Level 1
    draws up to ``n_candidates`` distinct single edits of the input; every later
    level draws as many from the single edits of the beam's molecules, leaving out
    molecules already scored. All candidates of all inputs of a level are scored
    in one :meth:`~probekit.molmodel.MoleculeModel.evaluate_molecules` call. An
    input stops at the first level where a candidate reaches the goal (``g <= 0``),
    with the ``n_results`` most similar such molecules. Otherwise its beam becomes
    the candidate closest to the goal and the ``beam_width - 1`` most similar
    candidates that lower ``g`` below their parent's; an input whose candidates all
    fail to make progress stops there, reporting its closest molecule with
    ``success`` False. Ties in similarity go to the canonical SMILES that sorts first.

    Parameters
    ----------
    adapter : MoleculeModel
        Any adapter with ``parse``, ``predict_molecules`` and ``evaluate_molecules``.
    molecules : str, rdkit.Chem.Mol, list of them, or DataFrame
        SMILES or molecules (a :func:`probekit.read_molecules` frame included).
        Records that are not molecules, or that the model cannot score, become error rows.
    goal : Goal or str
        Default: lower the score by 1.
    max_edits : int
        Deepest level searched.
    beam_width : int
        Molecules carried from one level to the next, per input.
    n_candidates : int or None
        Candidates scored per input and level; None scores every single edit of
        every beam molecule (exhaustive at level 1).
    operators : sequence of str
        Some of ``"selfies"``, ``"mmpa"``, ``"atom"`` (:mod:`probekit.molmodel.mutate`).
    similarity : str or callable
        ``"morgan_counts"``, ``"morgan_bits"`` or ``f(reference, molecules) -> (M,)``
        (:func:`probekit.molmodel.similarity.similarity_function`).
    min_similarity : float
        Candidates less similar to the input are never scored: a floor that keeps
        counterfactuals close (e.g. 0.3) at the cost of some successes.
    n_results : int
        Counterfactuals returned per input.
    n_random : int
        Random molecules per input for the baseline: of ``2 * n_random`` random
        walks of the counterfactual's number of edits, the distinct molecules
        nearest its similarity to the input; 0 skips the baseline (``p_value`` NaN).
    seed : int
        Same seed, same molecules: draws depend only on the seed and the molecules.
    fragments : sequence of str, optional
        Substituents for the ``"mmpa"`` operator (default
        :data:`probekit.molmodel.mutate.COMMON_SUBSTITUENTS`); each input's own
        fragments are always added.
    ids : list of str, optional
    batch_size : int, optional
        Molecules per model call for this search (default the adapter's own).
    progress : bool
        Show a progress bar over levels.

    Returns
    -------
    CounterfactualResult

    Examples
    --------
    >>> from rdkit import Chem
    >>> from probekit.molmodel import MoleculeModel
    >>> def n_nitrogens(smiles):
    ...     return [sum(a.GetSymbol() == "N" for a in Chem.MolFromSmiles(s).GetAtoms()) for s in smiles]
    >>> adapter = MoleculeModel(n_nitrogens, kind="smiles", device="cpu")
    >>> result = counterfactual_molecules(adapter, ["NCCN", "C1CC"], goal="decrease:2", operators=["atom"],
    ...                                   n_random=10)
    >>> result.summary()[["counterfactual", "n_edits", "success"]]
      counterfactual  n_edits  success
    0           CCCC        2     True
    1            NaN        0    False
    >>> result.errors[1]
    "record 1 'C1CC': not a valid SMILES (unclosed ring)"
    """
    from ..molmodel.mutate import OPERATORS
    from ..molmodel.similarity import sa_score, similarity_function

    start = time.perf_counter()
    goal = goals_module.parse(goal)
    for name, value in (("max_edits", max_edits), ("beam_width", beam_width), ("n_results", n_results)):
        _check(name, value)
    _check("n_candidates", n_candidates, allow_none=True)
    _check("n_random", n_random, minimum=0)
    if isinstance(operators, str) or not operators or any(op not in OPERATORS for op in operators):
        raise ValueError(f"operators must be a non-empty sequence of {list(OPERATORS)}, got {operators!r}")
    similar = similarity_function(similarity)
    scorer = adapter if batch_size is None else adapter.replace(batch_size=batch_size)
    calls = scorer.n_calls
    mols, problems, id_list, texts = _inputs(scorer, molecules, ids)
    n = len(mols)
    before = torch.full((n,), math.nan, dtype=torch.float64)
    valid = [i for i, m in enumerate(mols) if m is not None]
    y_ref = scorer.predict_molecules([mols[i] for i in valid]) if valid else None
    if valid:
        before[valid] = scorer.output(y_ref).double().cpu()
        broken = [i for i in valid if not math.isfinite(before[i])]
        if broken:
            _, why = scorer.score_molecules([mols[i] for i in broken])
            for i, reason in zip(broken, why):
                problems[i] = f"record {i} {texts[i]!r}: {reason or 'the model gave no finite score'}"
    searched = [i for i in valid if problems[i] is None]
    options = {"operators": list(operators), "fragments": fragments}
    unscored = [0, 0]
    found, levels, evaluations, g0 = {}, {}, {}, []
    if searched:
        y_ref = y_ref[[valid.index(i) for i in searched]]
        bound = goal.bind(scorer.output, y_ref)
        g0 = bound(y_ref).double().cpu().tolist()
        found, levels, evaluations = _search(
            scorer, bound, [mols[i] for i in searched], [texts[i] for i in searched], g0, max_edits=max_edits,
            beam_width=beam_width, n_candidates=n_candidates, seed=seed, options=options, similar=similar,
            min_similarity=float(min_similarity), progress=progress, unscored=unscored,
        )
    if unscored[0]:
        warn(f"the model gave no finite score for {unscored[0]} of {unscored[1]} candidate molecules (it raised on them "
             "or returned NaN or inf); they count as not reaching the goal")
    search_seconds = time.perf_counter() - start
    m = len(searched)
    top = {j: _by_similarity(paths)[:n_results] if paths[0].g <= 0 else paths for j, paths in found.items()}
    ks = torch.tensor([levels.get(j, 0) if j in top else 0 for j in range(m)], dtype=torch.long)
    best_sim = [top[j][0].similarity if j in top else math.nan for j in range(m)]
    adversarial = torch.tensor([top[j][0].score - float(before[searched[j]]) if j in top else math.nan
                                for j in range(m)], dtype=torch.float64)
    random_deltas = torch.full((n, n_random), math.nan, dtype=torch.float64)
    ratio = torch.full((n,), math.nan, dtype=torch.float64)
    p_value = torch.full((n,), math.nan, dtype=torch.float64)
    baseline_evaluations = torch.zeros(n, dtype=torch.long)
    if m and n_random:
        store = torch.full((m, n_random), math.nan, dtype=torch.float64)
        spent = torch.zeros(m, dtype=torch.long)
        draw = _walk_draws(scorer, bound, [mols[i] for i in searched], [texts[i] for i in searched], best_sim,
                           before[searched].tolist(), n_random=n_random, seed=seed, options=options, similar=similar,
                           store=store, evaluations=spent)
        stats = compare_by_size(draw, ks, adversarial)
        index = torch.tensor(searched, dtype=torch.long)
        random_deltas[index] = store
        ratio[index] = torch.from_numpy(stats["ratio"])
        p_value[index] = torch.from_numpy(stats["p_value"])
        baseline_evaluations[index] = spent
    out = {"counterfactuals": [[] for _ in range(n)], "edits": [[] for _ in range(n)],
           "similarities": [[] for _ in range(n)], "scores": [[] for _ in range(n)], "sa_scores": [[] for _ in range(n)]}
    n_edits = torch.zeros(n, dtype=torch.long)
    success = torch.zeros(n, dtype=torch.bool)
    score_after = torch.full((n,), math.nan, dtype=torch.float64)
    best_similarity = torch.full((n,), math.nan, dtype=torch.float64)
    spent_search = torch.zeros(n, dtype=torch.long)
    for j, i in enumerate(searched):
        spent_search[i] = evaluations.get(j, 0)
        success[i] = g0[j] <= 0
        paths = top.get(j, [])
        if not paths:
            continue
        out["counterfactuals"][i] = [p.smiles for p in paths]
        out["edits"][i] = [list(p.edits) for p in paths]
        out["similarities"][i] = [p.similarity for p in paths]
        out["scores"][i] = [p.score for p in paths]
        out["sa_scores"][i] = sa_score([p.smiles for p in paths]).tolist()
        n_edits[i] = int(ks[j])
        success[i] = paths[0].g <= 0
        score_after[i] = paths[0].score
        best_similarity[i] = paths[0].similarity
    params = {
        "goal": str(goal), "output": scorer.output.name, "max_edits": max_edits, "beam_width": beam_width,
        "n_candidates": n_candidates, "operators": list(operators),
        "similarity": similarity if isinstance(similarity, str) else getattr(similarity, "__name__", repr(similarity)),
        "n_results": n_results, "n_random": n_random, "seed": int(seed), "device": str(scorer.device),
        "baseline_evaluations": baseline_evaluations, "model_calls": scorer.n_calls - calls,
        "search_seconds": search_seconds, "seconds": time.perf_counter() - start,
    }
    if scorer is not adapter:
        adapter.n_calls += scorer.n_calls - calls
    return CounterfactualResult(
        smiles=texts, **out, n_edits=n_edits, success=success, score_before=before, score_after=score_after,
        similarity=best_similarity, evaluations=spent_search, random_deltas=random_deltas, ratio=ratio,
        p_value=p_value, errors=problems, ids=id_list, params=params,
    )


__all__ = ["counterfactual_molecules", "CounterfactualResult"]
