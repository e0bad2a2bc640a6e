"""Probing DNA-sequence models: per group of equal-length sequences,
saturation mutagenesis, the fewest substitutions that reach the goal, and the
random baseline at the same number of substitutions; then it ranks positions,
finds critical regions and (optionally) annotates them with JASPAR motifs.

Examples
--------
>>> from probekit import SequenceModel, goals
>>> from probekit.testing import MotifCounter
>>> adapter = SequenceModel(MotifCounter("TGACTCA"), output=0, device="cpu")
>>> report = probe_sequences(adapter, ["CCGATGACTCAGGCAT", "AATGACTCATTTCCGA"], goal=goals.below(0.5), baseline_draws=50)
>>> report.regions()[["id", "start", "end"]].values.tolist()
[['seq0', 4, 11], ['seq1', 2, 9]]
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from .. import goals as goals_module
from .._warnings import warn
from ..adapters import ModelCallError, ModelOutputError, describe_failure
from ..encode.dna import group_by_length
from ..io import sequence_frame
from ..motifs import REGION_MATCH_COLUMNS
from ..report.sensitivity import SensitivityReport
from .baseline import compare_by_size
from ..report.tables import critical_mask, find_regions, null_threshold, outlier_floor, position_importance, rank_desc

SUMMARY_COLUMNS = {
    "id": object,
    "length": "Int64",
    "score": "float64",
    "goal": object,
    "goal_score": "float64",
    "n_edits": "Int64",
    "success": "boolean",
    "proved_minimal": "boolean",
    "score_after": "float64",
    "adversarial_delta": "float64",
    "random_k": "Int64",
    "random_mean": "float64",
    "random_std": "float64",
    "ratio": "float64",
    "z": "float64",
    "p_value": "float64",
    "threshold": "float64",
    "n_critical": "Int64",
    "n_regions": "Int64",
    "top_region": object,
    "evaluations": "Int64",
    "error": object,
}
REGION_COLUMNS = [
    "id", "region", "rank", "start", "end", "length", "sequence", "importance_sum", "importance_max", "n_edits_inside",
    "motif", "motif_id", "motif_score", "motif_p_value", "motif_q_value", "motif_offset", "motif_strand",
    "motif_family", "motif_tied_with", "motif_query_match",
]  # fmt: skip
EDIT_COLUMNS = ["id", "step", "position", "ref", "alt", "score", "g"]
# Critical runs widen through neighbours with at least this fraction of the run's peak importance.
GROW = 0.5
MOTIF_COLUMNS = REGION_MATCH_COLUMNS


def probe_sequences(
    adapter,
    inputs,
    *,
    goal=None,
    max_edits: int | None = None,
    baseline_draws: int = 200,
    method: str = "auto",
    attribution: str | None = None,
    motifs=False,
    motif_query=None,
    window=None,
    seed: int = 0,
    progress: bool = False,
    alpha: float = 0.05,
    max_gap: int = 2,
    min_length: int = 3,
) -> SensitivityReport:
    """Probe a DNA-sequence model: what :func:`probekit.probe` runs for a :class:`~probekit.SequenceModel`.

    The steps and parameters are those of :func:`probekit.probe`.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> report = probe_sequences(adapter, ["ACGTACGTACGTAC", "ACGRT"], max_edits=2, baseline_draws=20)
    >>> report.summary()["error"].notna().tolist()
    [False, True]
    """
    if max_edits is None:
        max_edits = 3
    if max_edits < 1:
        raise ValueError(f"max_edits must be at least 1, got {max_edits}")
    if baseline_draws < 1:
        raise ValueError(f"baseline_draws must be at least 1, got {baseline_draws}")
    from ..search.discrete import METHODS

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if attribution is not None:
        from ..attr import METHODS as ATTRIBUTIONS

        if attribution not in ATTRIBUTIONS:
            raise ValueError(f"unknown attribution {attribution!r}; choose from {sorted(ATTRIBUTIONS)}")
    t0 = time.perf_counter()
    goal = goals_module.parse(goal)
    motif_list = _motif_list(motifs)
    alphabet = adapter.alphabet
    records = sequence_frame(inputs, alphabet=alphabet)
    errors = {r.id: r.error for r in records.itertuples() if isinstance(r.error, str)}
    good = records[records["error"].isna()].reset_index(drop=True)
    groups = group_by_length(good["sequence"].tolist())
    settings = dict(
        goal=goal, max_edits=max_edits, baseline_draws=baseline_draws, method=method, attribution=attribution,
        motif_list=motif_list, motif_query=motif_query, seed=seed, progress=progress, alpha=alpha, max_gap=max_gap,
        min_length=min_length,
    )  # fmt: skip
    parts = []
    iterator = groups.items()
    if progress and len(groups) > 1:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(groups), desc="length groups")
    problems = {}
    for length, index in iterator:
        ids = good["id"].iloc[index].tolist()
        seqs = good["sequence"].iloc[index].tolist()
        try:
            bounds = _window(window, length)
        except _WindowError as error:
            warn(f"{len(ids)} sequences of length {length} were not probed: {error}")
            errors.update({i: f"record {i!r}: {error}" for i in ids})
            continue
        parts += _probe_screened(adapter, ids, seqs, problems, bounds=bounds, **settings)
    _warn_problems(problems)
    errors.update({i: f"record {i!r}: {message}" for i, message in problems.items()})
    tables = _assemble(parts, records, errors, alphabet=alphabet)
    params = {
        "goal": str(goal),
        "output": adapter.output.name,
        "max_edits": max_edits,
        "baseline_draws": baseline_draws,
        "method": method,
        "attribution": attribution,
        "motifs": len(motif_list) if motif_list else False,
        "motif_query": None if motif_query is None else _query_list(motif_query),
        "window": None if window is None else ([window.start, window.stop] if isinstance(window, slice) else list(window)),
        "seed": seed,
        "alpha": alpha,
        "max_gap": max_gap,
        "min_length": min_length,
        "importance": "max |ISM effect| over alternative bases",
        "alphabet": alphabet,
        "model": type(adapter.model).__name__,
        "device": str(adapter.device),
        "n_inputs": len(records),
        "n_errors": len(errors),
        "seconds": time.perf_counter() - t0,
    }
    return SensitivityReport("dna", tables, params)


def _motif_list(motifs):
    if motifs is False or motifs is None:
        return None
    from ..motifs import jaspar_motifs

    if motifs is True:
        return jaspar_motifs()
    motifs = list(motifs)
    if not motifs:
        raise ValueError("motifs= got an empty list")
    return motifs


class _WindowError(ValueError):
    pass


def _window(window, length: int) -> tuple[int, int]:
    if window is None:
        return 0, length
    if isinstance(window, slice):
        start, end = window.start, window.stop
    else:
        start, end = window
    start = 0 if start is None else max(int(start), 0)  # clipped to the sequence at both ends
    end = length if end is None else min(int(end), length)
    if not 0 <= start < end:
        raise _WindowError(f"window {window!r} holds no position of a sequence of length {length}")
    return start, end


def _probe_screened(adapter, ids, seqs, problems: dict, **settings) -> list[dict]:
    """Group tables of the sequences the model can score; the others' problems go into ``problems`` (id -> text).

    The reference scores come first (:meth:`~probekit.adapters.Adapter.screen`): a
    sequence on which the model raises, or for which it returns NaN or infinity, is
    set aside with the model's own message. A search that still fails on a batch
    (the model raising on some mutants) is retried on halves of the group, so that
    only the sequences it cannot probe are lost. A malformed output
    (:class:`~probekit.adapters.ModelOutputError`) stops the run: it is no
    problem of one sequence.
    """
    X = adapter.encode(seqs)
    _, screened = adapter.screen(X)
    if all(p is not None and p.startswith("the model raised") for p in screened):
        length = X.shape[-1]  # a length the model cannot take, most likely: say so beside its own words
        screened = [f"{p} (it failed on every sequence of length {length})" for p in screened]
    problems.update({i: p for i, p in zip(ids, screened) if p is not None})
    keep = [k for k, p in enumerate(screened) if p is None]
    return _probe_bisecting(adapter, [ids[k] for k in keep], [seqs[k] for k in keep], problems, **settings)


def _probe_bisecting(adapter, ids, seqs, problems: dict, **settings) -> list[dict]:
    if not ids:
        return []
    try:
        return [_probe_group(adapter, ids, seqs, **settings)]
    except ModelOutputError:
        raise
    except ModelCallError as error:
        if len(ids) == 1:
            problems[ids[0]] = describe_failure(error)
            return []
    half = len(ids) // 2
    return _probe_bisecting(adapter, ids[:half], seqs[:half], problems, **settings) + _probe_bisecting(
        adapter, ids[half:], seqs[half:], problems, **settings
    )


def _warn_problems(problems: dict) -> None:
    """One warning for the sequences the model could not probe, with counts by kind of problem."""
    if not problems:
        return
    returned = sum(message.startswith("the model returned") for message in problems.values())
    kinds = {"returned NaN or infinity": returned, "failed": len(problems) - returned}
    counts = ", ".join(f"the model {kind} on {n}" for kind, n in sorted(kinds.items()) if n)
    example = next(iter(problems.items()))
    warn(f"{len(problems)} sequences were not probed ({counts}); e.g. {example[0]!r}: {example[1]}")


def _probe_group(adapter, ids, seqs, *, bounds, goal, max_edits, baseline_draws, method, attribution, motif_list, motif_query, seed,
                 progress, alpha, max_gap, min_length) -> dict:  # fmt: skip
    """All tables of one group of equal-length sequences: the searches, then the tables."""
    from ..search.baseline import random_substitutions
    from ..search.discrete import min_substitutions, saturation_mutagenesis

    X = adapter.encode(seqs)
    length = X.shape[2]
    start, end = bounds
    positions = None if (start, end) == (0, length) else slice(start, end)
    with adapter.session():
        ism = saturation_mutagenesis(adapter, X, start=start, end=end, ids=ids, progress=progress)
        sub = min_substitutions(
            adapter, X, goal=goal, max_edits=max_edits, method=method, positions=positions, ids=ids, progress=progress
        )
        adv = sub.score_after - sub.score_before
        ks = _baseline_sizes(sub.n_edits, X[:, :, start:end], max_edits)
        stats = compare_by_size(
            lambda rows, k: random_substitutions(
                adapter, X[rows.to(X.device)], k=k, n_draws=baseline_draws, seed=seed, positions=positions
            ),
            ks, adv,
        )  # fmt: skip
        bound = adapter.bind(goal, X)
        trajectory = _trajectory(adapter, X, sub.edits, bound, ids, alphabet=adapter.alphabet)
        attr = None
        if attribution:
            from ..attr import attribute

            attr = attribute(adapter, X, method=attribution).per_position.cpu()
    return _group_tables(
        adapter, ids, seqs, X.detach().cpu(), ism, sub, adv, stats, bound, trajectory, attr, bounds=bounds, goal=goal,
        motif_list=motif_list, motif_query=motif_query, alpha=alpha, max_gap=max_gap, min_length=min_length,
    )  # fmt: skip


def _group_tables(adapter, ids, seqs, X_cpu, ism, sub, adv, stats, bound, trajectory, attr, *, bounds, goal, motif_list,
                  motif_query,
                  alpha, max_gap, min_length) -> dict:  # fmt: skip
    """Importance, thresholds, regions, motifs and the tidy tables of one group."""
    n, _, length = X_cpu.shape
    start, end = bounds
    effects = ism.effects.cpu()
    ref_index = _ref_index(X_cpu)
    inside = torch.zeros(length, dtype=torch.bool)
    inside[start:end] = True
    alternatives = (X_cpu.transpose(1, 2) == 0) & (ref_index >= 0)[..., None] & inside[None, :, None]
    importance = position_importance(effects)
    in_window = importance[:, start:end]
    threshold = torch.maximum(null_threshold(effects, alternatives, alpha=alpha), outlier_floor(in_window, alpha=alpha))
    critical = critical_mask(importance, threshold) & inside[None]
    ranks = rank_desc(importance)

    region_rows, region_of = _regions(
        ids, seqs, importance, critical, sub.edits, max_gap=max_gap, min_length=min_length
    )
    regions = pd.DataFrame(region_rows, columns=REGION_COLUMNS)
    motif_table = pd.DataFrame(columns=MOTIF_COLUMNS)
    if motif_list and not regions.empty:
        from ..motifs import annotate_regions

        motif_table = annotate_regions(regions, dict(zip(ids, seqs)), motifs=motif_list, top=3, query=motif_query)
        regions = _attach_best_motif(regions, motif_table)
    motif_of_region = {(r.id, r.region): r.motif for r in regions.itertuples()}

    letters = np.array(list(adapter.alphabet) + ["N"])
    ref_letters = letters[np.where(ref_index.numpy() >= 0, ref_index.numpy(), len(adapter.alphabet))]
    region_flat = region_of.reshape(-1)
    id_flat = np.repeat(np.array(ids, dtype=object), length)
    frame = pd.DataFrame(
        {
            "id": id_flat,
            "position": np.tile(np.arange(length), n),
            "ref": ref_letters.reshape(-1),
            "importance": importance.reshape(-1).numpy().astype(np.float64),
            "rank": ranks.reshape(-1).numpy().astype(np.int64),
            "critical": critical.reshape(-1).numpy(),
            "region": pd.Series(region_flat, dtype="Int64").mask(region_flat == 0),
            "motif": _motif_column(id_flat, region_flat, motif_of_region),
        }
    )
    for b, base in enumerate(adapter.alphabet):
        frame[f"effect_{base}"] = effects[:, :, b].reshape(-1).numpy().astype(np.float64)
    if attr is not None:
        frame["attribution"] = attr.reshape(-1).numpy().astype(np.float64)

    goal_score = _goal_score(bound)
    summary = pd.DataFrame(
        {
            "id": ids,
            "length": length,
            "score": sub.score_before.double().numpy(),
            "goal": str(goal),
            "goal_score": goal_score,
            "n_edits": sub.n_edits.numpy(),
            "success": sub.success.numpy(),
            "proved_minimal": sub.proved_minimal.numpy(),
            "score_after": sub.score_after.double().numpy(),
            "adversarial_delta": adv.double().numpy(),
            **stats,
            "threshold": threshold.double().numpy(),
            "n_critical": critical.sum(dim=1).numpy(),
            "n_regions": regions.groupby("id").size().reindex(ids, fill_value=0).to_numpy(),
            "top_region": _top_regions(regions, ids),
            "evaluations": (sub.evaluations + torch.as_tensor(ism.params.get("evaluations", 0)).cpu()).numpy(),
            "error": None,
        }
    )
    edits = trajectory[trajectory["step"] > 0].reset_index(drop=True)
    return {
        "frame": frame, "summary": summary, "regions": regions, "edits": edits, "trajectory": trajectory,
        "motifs": motif_table,
    }  # fmt: skip


def _ref_index(X: torch.Tensor) -> torch.Tensor:
    """Base index (N, L); -1 at N (all-zero) positions."""
    return X.argmax(dim=1).masked_fill(X.sum(dim=1) == 0, -1)


def _baseline_sizes(n_edits: torch.Tensor, X: torch.Tensor, max_edits: int) -> torch.Tensor:
    """Substitutions per random draw (N,): as many as the edit set found (the best one when the goal was not
    reached; ``max_edits`` when there is none), and never more than the input's editable positions in ``X``
    (N, 4, L), so that every input gets draws."""
    from ..search.discrete import _dna_current

    editable = (_dna_current(X) >= 0).sum(dim=1).cpu()  # N columns are all zero
    ks = torch.where(n_edits > 0, n_edits, torch.full_like(n_edits, max_edits))
    return torch.minimum(ks, editable).clamp_min(1)


def _trajectory(adapter, X, edits, bound, ids, *, alphabet) -> pd.DataFrame:
    """Score and goal value after each prefix of each input's edit list, in one batch."""
    scores0, g0 = (t.cpu() for t in adapter.evaluate(X, bound))
    owner, steps, targets = [], [], []
    for i, edit_list in enumerate(edits):
        for j in range(1, len(edit_list) + 1):
            owner.append(i)
            steps.append(j)
            targets.append(edit_list[:j])
    rows = [
        {"id": ids[i], "step": 0, "position": None, "ref": None, "alt": None, "score": float(scores0[i]), "g": float(g0[i])}
        for i in range(len(ids))
    ]
    if owner:
        owner_t = torch.tensor(owner, device=X.device)
        Xc = X[owner_t].clone()
        cand, pos, alt = [], [], []
        for c, prefix in enumerate(targets):
            for position, _, base in prefix:
                cand.append(c)
                pos.append(int(position))
                alt.append(alphabet.index(base))
        cand_t = torch.tensor(cand, device=X.device)
        pos_t = torch.tensor(pos, device=X.device)
        Xc[cand_t, :, pos_t] = 0
        Xc[cand_t, torch.tensor(alt, device=X.device), pos_t] = 1
        scores, g = (t.cpu() for t in adapter.evaluate(Xc, bound, rows=owner_t))
        for c, (i, j) in enumerate(zip(owner, steps)):
            position, ref, base = edits[i][j - 1]
            rows.append(
                {"id": ids[i], "step": j, "position": int(position), "ref": ref, "alt": base,
                 "score": float(scores[c]), "g": float(g[c])}
            )  # fmt: skip
    frame = pd.DataFrame(rows, columns=EDIT_COLUMNS)
    order = {i: n for n, i in enumerate(ids)}
    frame = frame.iloc[np.lexsort((frame["step"].to_numpy(), frame["id"].map(order).to_numpy()))].reset_index(drop=True)
    frame["position"] = frame["position"].astype("Int64")
    return frame


def _regions(ids, seqs, importance, critical, edits, *, max_gap, min_length):
    """Region rows (strongest first per input) and the region number of each position (0: none)."""
    n, length = importance.shape
    region_of = np.zeros((n, length), dtype=np.int64)
    rows = []
    for i, (id_, seq) in enumerate(zip(ids, seqs)):
        runs = find_regions(critical[i], importance=importance[i], grow=GROW, max_gap=max_gap, min_length=min_length)
        scored = [(float(importance[i, s:e].sum()), float(importance[i, s:e].max()), s, e) for s, e in runs]
        scored.sort(key=lambda t: (-t[0], -t[1], t[2]))
        edit_positions = [int(p) for p, _, _ in edits[i]]
        for number, (total, peak, s, e) in enumerate(scored, start=1):
            region_of[i, s:e] = number
            rows.append(
                {
                    "id": id_, "region": number, "rank": number, "start": s, "end": e, "length": e - s,
                    "sequence": seq[s:e].upper(),
                    "importance_sum": total, "importance_max": peak,
                    "n_edits_inside": sum(s <= p < e for p in edit_positions),
                    "motif": None, "motif_id": None, "motif_score": math.nan, "motif_p_value": math.nan,
                    "motif_q_value": math.nan, "motif_offset": None, "motif_strand": None, "motif_family": None,
                    "motif_tied_with": None, "motif_query_match": None,
                }
            )  # fmt: skip
    return rows, region_of


def _attach_best_motif(regions: pd.DataFrame, motif_table: pd.DataFrame) -> pd.DataFrame:
    best = motif_table[motif_table["match_rank"] == 1].set_index(["id", "region"])
    queried = motif_table[motif_table["query_best"].fillna(False).astype(bool)].drop_duplicates(["id", "region"])
    queried = queried.set_index(["id", "region"])
    regions = regions.copy()
    for k, row in regions.iterrows():
        key = (row["id"], row["region"])
        if key in best.index:
            hit = best.loc[key]
            regions.at[k, "motif"] = hit["name"]
            regions.at[k, "motif_id"] = hit["matrix_id"]
            regions.at[k, "motif_score"] = float(hit["score"])
            regions.at[k, "motif_p_value"] = float(hit["p_region"])
            regions.at[k, "motif_q_value"] = float(hit["q_value"])
            regions.at[k, "motif_offset"] = int(hit["offset"])
            regions.at[k, "motif_strand"] = hit["strand"]
            regions.at[k, "motif_family"] = hit["tf_family"]
            regions.at[k, "motif_tied_with"] = hit["tied_with"] or None
        if key in queried.index:
            regions.at[k, "motif_query_match"] = queried.loc[key, "name"]
    return regions


def _query_list(query) -> list[str]:
    return [query] if isinstance(query, str) else list(query)


def _goal_score(bound) -> np.ndarray:
    """The score at which each input reaches its goal; NaN for class goals (read in goal value g)."""
    reference = bound.reference.detach().double().cpu().numpy()
    value = float(bound.goal.value) if bound.goal.value is not None else 0.0
    mode = bound.mode
    if mode == "cross":
        return np.full(len(reference), float(bound.output.threshold))
    if mode in ("below", "above"):
        return np.full(len(reference), value)
    if mode == "decrease":
        return reference - value
    if mode == "increase":
        return reference + value
    return np.full(len(reference), np.nan)


def _top_regions(regions: pd.DataFrame, ids) -> list:
    """``"start-end"`` of each input's strongest region, None without one."""
    top = regions[regions["region"] == 1].set_index("id")
    return [f"{int(top.at[i, 'start'])}-{int(top.at[i, 'end'])}" if i in top.index else None for i in ids]


def _motif_column(id_flat, region_flat, motif_of_region) -> np.ndarray:
    """Best motif name of each position's region (None outside regions or without a match)."""
    out = np.full(len(region_flat), None, dtype=object)
    for k in np.flatnonzero(region_flat > 0):
        out[k] = motif_of_region.get((id_flat[k], int(region_flat[k])))
    return out


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _assemble(parts: list[dict], records: pd.DataFrame, errors: dict, *, alphabet: str) -> dict:
    """Join group tables, add error rows, restore input order and fix dtypes."""
    order = {i: n for n, i in enumerate(records["id"])}

    def join(name, columns):
        frames = [p[name] for p in parts if not p[name].empty]
        if not frames:
            return _empty(columns) if not parts else parts[0][name].iloc[:0]
        return pd.concat(frames, ignore_index=True)

    def in_order(frame, *keys):
        if frame.empty:
            return frame.reset_index(drop=True)
        rank = frame["id"].map(order).to_numpy()
        cols = [frame[k].to_numpy() for k in reversed(keys)] + [rank]
        return frame.iloc[np.lexsort(cols)].reset_index(drop=True)

    frame_columns = ["id", "position", "ref", "importance", "rank", "critical", "region", "motif"]
    frame_columns += [f"effect_{base}" for base in alphabet]
    frame = in_order(join("frame", frame_columns), "position")
    good_ids = set()
    summary_parts = [p["summary"] for p in parts]
    if summary_parts:
        good_ids = set(pd.concat(summary_parts)["id"])
    bad = [
        {"id": r.id, "length": len(r.sequence) if isinstance(r.sequence, str) else None, "error": errors[r.id]}
        for r in records.itertuples()
        if r.id in errors and r.id not in good_ids
    ]
    summary = pd.concat(summary_parts + [pd.DataFrame(bad)], ignore_index=True) if (summary_parts or bad) else pd.DataFrame()
    for column in SUMMARY_COLUMNS:
        if column not in summary:
            summary[column] = None
    summary = summary[list(SUMMARY_COLUMNS)]
    summary = summary.astype({c: t for c, t in SUMMARY_COLUMNS.items() if t is not object})
    summary["error"] = summary["error"].astype(object).where(summary["error"].notna(), None)
    summary = in_order(summary)
    regions = in_order(join("regions", REGION_COLUMNS), "region")
    edits = in_order(join("edits", EDIT_COLUMNS), "step")
    trajectory = in_order(join("trajectory", EDIT_COLUMNS), "step")
    motifs = in_order(join("motifs", MOTIF_COLUMNS), "region", "match_rank")
    return {
        "frame": frame, "summary": summary, "regions": regions, "edits": edits, "trajectory": trajectory, "motifs": motifs,
    }  # fmt: skip


__all__ = ["probe_sequences"]
