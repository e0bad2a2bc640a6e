"""Minimal substitutions: probekit's searches against Ledidi and a greedy loop over full ISM.

One Basset-like CNN, the class-0 sequence with the largest margin among random
1,000 bp sequences; the goal is to make class 1 the model's call (Ledidi's
target: the two logits swapped). The table gives edits found, model evaluations
spent, success and time (medians over interleaved repeats).

Run: ``python benchmarks/bench_min_edits.py [--repeats 3] [--threads 2] [--device cuda]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import (  # noqa: E402
    Basset, incremental_engine_wired, machine, median, random_one_hot, seeded, synchronize, table, try_import,
    use_incremental_engine,
)
from probekit import SequenceModel, goals, outputs  # noqa: E402
from probekit.search import min_substitutions  # noqa: E402


def greedy_full_ism(model, x, max_edits, batch_size=32):
    """Best single substitution by a full ISM of naive forward passes, repeated until class 1 wins."""
    c, length = x.shape
    eye = torch.eye(c, device=x.device)
    evaluations = 0
    x = x.clone()
    with torch.inference_mode():
        for step in range(max_edits + 1):
            y = model(x[None])[0]
            evaluations += 1
            if y[1] > y[0]:
                return step, evaluations, True
            idx = torch.arange(c * length, device=x.device)
            best, best_idx = None, None
            for start in range(0, idx.numel(), batch_size):
                chunk = idx[start:start + batch_size]
                base, pos = chunk // length, chunk % length
                keep = x[base, pos] == 0  # true substitutions only
                chunk, base, pos = chunk[keep], base[keep], pos[keep]
                if chunk.numel() == 0:
                    continue
                batch = x.expand(chunk.numel(), c, length).clone()
                batch[torch.arange(chunk.numel(), device=x.device), :, pos] = eye[base]
                out = model(batch)
                evaluations += chunk.numel()
                margin = out[:, 0] - out[:, 1]
                i = int(margin.argmin())
                if best is None or margin[i] < best:
                    best, best_idx = margin[i], (int(base[i]), int(pos[i]))
            base, pos = best_idx
            x[:, pos] = eye[base]
    return max_edits, evaluations, False


def ledidi_run(model, x, y_bar, l, seed):
    ledidi = try_import("ledidi")
    if ledidi is None:
        return None
    designed, history = ledidi.ledidi(
        model, x[None], y_bar[None], device=str(x.device), l=l, verbose=False, return_history=True, random_state=seed
    )
    with torch.inference_mode():
        y = model(designed)
    flipped = y[:, 1] > y[:, 0]
    edits = (designed != x[None]).any(dim=1).sum(dim=1)
    iterations = len(history.get("output_loss", history.get("loss", []))) if isinstance(history, dict) else 0
    return {
        "edits": int(edits[flipped].min()) if flipped.any() else float("nan"),
        "median edits (flipped)": float(edits[flipped].float().median()) if flipped.any() else float("nan"),
        "success": f"{int(flipped.sum())}/{len(flipped)} samples",
        "evaluations": iterations * designed.shape[0] if iterations else "n/a",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-edits", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    print(f"incremental engine wired into probekit's searches: {incremental_engine_wired()}")

    model = seeded(Basset()).to(args.device)
    X = random_one_hot(64, 1000, seed=2).to(args.device)
    with torch.inference_mode():
        y = model(X)
    margin = y[:, 0] - y[:, 1]
    margin[y.argmax(1) != 0] = -float("inf")
    x = X[int(margin.argmax())]
    y0 = model(x[None])[0].detach()
    print(f"chosen sequence: logits {y0.tolist()}")
    adapter = SequenceModel(model, output=outputs.logit(0), device=args.device)
    # batch_size="auto" times a short probe once per adapter (about half a second); done before the timings,
    # as for a user who runs several searches with one adapter
    print(f"batch size picked by the probe: {adapter.resolve_batch_size(x[None])}")

    def probekit_method(method):
        def run():
            with use_incremental_engine():
                r = min_substitutions(adapter, x[None], goal=goals.flip(), max_edits=args.max_edits, method=method)
            return {
                "edits": int(r.n_edits[0]), "success": bool(r.success[0]), "evaluations": int(r.evaluations[0]),
                "proved minimal": bool(r.proved_minimal[0]),
            }
        return run

    runs = {
        "probekit greedy": probekit_method("greedy"),
        "probekit beam": probekit_method("beam"),
        "probekit auto": probekit_method("auto"),
        "greedy, full ISM each step (naive)": lambda: dict(
            zip(("edits", "evaluations", "success"), greedy_full_ism(model, x, args.max_edits))
        ),
    }
    if try_import("ledidi") is not None:
        y_bar = y0.flip(0)
        runs["Ledidi (defaults, l=0.1)"] = lambda: ledidi_run(model, x, y_bar, 0.1, 0)
        runs["Ledidi (l=1e-6)"] = lambda: ledidi_run(model, x, y_bar, 1e-6, 0)
    else:
        print("ledidi not installed: its rows are skipped")

    times = {name: [] for name in runs}
    found = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            synchronize()
            start = time.perf_counter()
            try:
                found[name] = fn()
            except Exception as error:  # noqa: BLE001 - a failing method is reported, the rest go on
                found[name] = {"success": f"error: {type(error).__name__}: {error}"[:80]}
            synchronize()
            times[name].append(time.perf_counter() - start)
    base = median(times["probekit greedy"])
    rows = []
    for name in runs:
        row = {"method": name, **(found[name] or {}), "median s": median(times[name])}
        row["x probekit greedy time"] = median(times[name]) / base
        rows.append(row)
    print()
    print(table(rows, ["method", "edits", "success", "evaluations", "proved minimal", "median s",
                       "x probekit greedy time"]))


if __name__ == "__main__":
    main()
