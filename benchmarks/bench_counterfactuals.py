"""Counterfactual molecules: probekit's seeded beam search against exmol's STONED sampling.

The demo graph model (``probekit.mol_graph_demo``), the first held-out compounds
(50; 5 with ``--quick``), goal "predicted pIC50 lower by at least 1". For each
method: success rate, median Tanimoto similarity (Morgan counts, radius 2) of the
best counterfactual of the molecules where one was found, model calls per
molecule and time. probekit runs three times with the same seed to show that its
results are identical; exmol runs twice with the same settings, and the table
says how many of its best counterfactuals changed between the two runs.

exmol is given the same budget: as many samples per molecule as probekit's mean
model calls per molecule (search and random baseline together). Of exmol's
samples that reach the goal, the one most similar to the input (on the same
similarity) is taken as its best, the most favourable reading of its output.

Run: ``python benchmarks/bench_counterfactuals.py [--quick] [--n 50] [--threads 1] [--exmol-samples 3000]``
(exmol: ``pip install exmol``; it is not a probekit dependency).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine, table, try_import  # noqa: E402
from probekit import goals  # noqa: E402
from probekit.mol_graph_demo import load_mol_graph_demo, mol_graph_demo_heldout  # noqa: E402
from probekit.molmodel.similarity import tanimoto  # noqa: E402
from probekit.search.counterfactual import counterfactual_molecules  # noqa: E402

DROP = 1.0  # the goal: predicted pIC50 lower by at least this much


def summarise(name: str, best: list, similarity: list, calls: float, seconds: float) -> dict:
    """A table row: successes, median similarity of the best counterfactuals, model calls per molecule, time."""
    found = [s for b, s in zip(best, similarity) if b is not None]
    return {
        "method": name,
        "success": f"{len(found)}/{len(best)}",
        "success rate": len(found) / len(best),
        "median similarity": statistics.median(found) if found else float("nan"),
        "model calls / molecule": calls / len(best),
        "seconds": seconds,
    }


def run_probekit(adapter, smiles: list, seed: int):
    """probekit's defaults: beam search, 200 candidates per level, up to 3 edits, 50 random walks for the baseline."""
    calls = adapter.n_calls
    start = time.perf_counter()
    result = counterfactual_molecules(adapter, smiles, goal=goals.decrease(by=DROP), seed=seed)
    seconds = time.perf_counter() - start
    best = [b if ok else None for b, ok in zip(result.best, result.success.tolist())]
    return result, best, result.similarity.tolist(), adapter.n_calls - calls, seconds


def run_exmol(exmol, adapter, smiles: list, reference: np.ndarray, n_samples: int):
    """exmol's ``sample_space`` (STONED, preset "medium") with ``n_samples`` samples per molecule; best = most similar success."""
    counted = {"calls": 0}

    def predict(batch):
        counted["calls"] += len(batch)
        return adapter.score_molecules(list(batch))[0].numpy()

    best, similarity = [], []
    start = time.perf_counter()
    for s, y0 in zip(smiles, reference):
        samples = exmol.sample_space(s, predict, batched=True, preset="medium", num_samples=n_samples, quiet=True)
        wins = sorted({e.smiles for e in samples[1:] if e.yhat <= y0 - DROP})
        sims = tanimoto(s, wins) if wins else np.array([])
        if len(wins):
            k = int(np.argmax(sims))
            best.append(wins[k])
            similarity.append(float(sims[k]))
        else:
            best.append(None)
            similarity.append(float("nan"))
    return best, similarity, counted["calls"], time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="held-out molecules (the first n)")
    parser.add_argument("--quick", action="store_true", help="5 molecules, a smoke run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exmol-samples", type=int, default=0,
                        help="also run exmol once with this many samples per molecule (its default is 3000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = 5 if args.quick else args.n
    adapter = load_mol_graph_demo(device="cpu")
    heldout = mol_graph_demo_heldout().head(n)
    smiles = heldout["smiles"].tolist()
    print(f"# Counterfactual molecules: demo graph model, {n} held-out molecules, goal decrease by {DROP:g}")
    print(f"\nMachine: {machine()}\n")

    rows, runs = [], []
    for repeat in range(3):
        result, best, sims, calls, seconds = run_probekit(adapter, smiles, args.seed)
        runs.append((best, sims, result))
        rows.append(summarise(f"probekit (seed {args.seed}, run {repeat + 1})", best, sims, calls, seconds))
    first = runs[0][2]
    identical = all(b == runs[0][0] and s == runs[0][1] for b, s, _ in runs[1:])
    search_calls = float(first.evaluations.sum()) / n
    baseline_calls = float(first.params["baseline_evaluations"].sum()) / n
    budget = int(round(rows[0]["model calls / molecule"]))

    exmol = try_import("exmol")
    exmol_runs = []
    if exmol is None:
        print("exmol is not installed (pip install exmol): its rows are skipped\n")
    else:
        reference = first.score_before.numpy()
        for repeat in range(2):
            best, sims, calls, seconds = run_exmol(exmol, adapter, smiles, reference, budget)
            exmol_runs.append((best, sims))
            rows.append(summarise(f"exmol {exmol.__version__} ({budget} samples, run {repeat + 1})", best, sims, calls, seconds))
        if args.exmol_samples:
            best, sims, calls, seconds = run_exmol(exmol, adapter, smiles, reference, args.exmol_samples)
            rows.append(summarise(f"exmol {exmol.__version__} ({args.exmol_samples} samples)", best, sims, calls, seconds))
    print(table(rows, ["method", "success", "median similarity", "model calls / molecule", "seconds"]))
    print(f"\nprobekit: three runs with seed {args.seed} {'identical' if identical else 'DIFFER'} "
          f"(best molecules and similarities); model calls per molecule {search_calls:.0f} in the search "
          f"and {baseline_calls:.0f} for the random baseline; "
          f"edits of the best counterfactuals: {first.n_edits[first.success].tolist()}")  # fmt: skip
    if len(exmol_runs) == 2:
        changed = sum(a != b for a, b in zip(exmol_runs[0][0], exmol_runs[1][0]))
        print(f"exmol: {changed} of {n} best counterfactuals differ between its two runs with the same settings")
    if exmol_runs:
        ours, theirs = runs[0][1], exmol_runs[0][1]
        both = [i for i in range(n) if runs[0][0][i] is not None and exmol_runs[0][0][i] is not None]
        closer = sum(ours[i] >= theirs[i] for i in both)
        print(f"molecules where both found a counterfactual: {len(both)}; probekit's is at least as similar in {closer}")

if __name__ == "__main__":
    main()
