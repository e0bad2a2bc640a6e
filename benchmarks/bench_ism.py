"""In-silico saturation mutagenesis: probekit's incremental engine against tangermeme and a naive loop.

Every method computes the raw output of all 3L single substitutions of every
sequence. They run in one process, interleaved, and the table reports medians
and the ratio of each median to probekit's. The outputs are checked against
the naive loop before timing.

Run: ``python benchmarks/bench_ism.py [--repeats 3] [--threads 2] [--device cpu]``
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import (  # noqa: E402
    Basset, ConvAttention, DeepSTARRLike, DilatedResidual, interleaved, machine, median, random_one_hot, seeded, table, try_import,
)
from probekit import SequenceModel, outputs  # noqa: E402
from probekit.search.incremental import incremental_single_substitutions  # noqa: E402


def naive_ism(model, X, batch_size, device):
    """Raw outputs (N, 4, L, T) of every substitution, by full forward passes in batches."""
    n, c, length = X.shape
    out = None
    eye = torch.eye(c, device=device)
    with torch.inference_mode():
        for i in range(n):
            x = X[i].to(device)
            flat = torch.arange(c * length, device=device)
            for start in range(0, flat.numel(), batch_size):
                idx = flat[start:start + batch_size]
                base, pos = idx // length, idx % length
                batch = x.expand(idx.numel(), c, length).clone()
                batch[torch.arange(idx.numel(), device=device), :, pos] = eye[base]
                y = model(batch)
                if out is None:
                    out = torch.empty(n, c, length, y.shape[-1], device=device)
                out[i, base, pos] = y
    return out


def probekit_ism(adapter, X):
    """Raw outputs (N, 4, L, T): one engine call per output column."""
    length = X.shape[-1]
    y = adapter.predict(X)
    columns = [
        incremental_single_substitutions(adapter, X, torch.arange(length), lambda out, rows, t=t: out[:, t])
        for t in range(y.shape[-1])
    ]
    return torch.stack(columns, dim=-1).permute(0, 2, 1, 3)


def probekit_ism_one(adapter, X, t):
    return incremental_single_substitutions(adapter, X, torch.arange(X.shape[-1]), lambda out, rows: out[:, t])


def tangermeme_runs(model, X, device):
    sm = try_import("tangermeme.saturation_mutagenesis")
    if sm is None:
        return {}
    original = sm._FAST_MIN_SECONDS

    def forced(batch):
        def run():
            sm._FAST_MIN_SECONDS = 0.0
            try:
                return sm.saturation_mutagenesis(model, X, batch_size=batch, device=device, raw_outputs=True, fast=True)
            finally:
                sm._FAST_MIN_SECONDS = original
        return run

    def default():
        return sm.saturation_mutagenesis(model, X, batch_size=32, device=device, raw_outputs=True)

    return {
        "tangermeme fast path forced (batch 256)": forced(256),
        "tangermeme fast path forced (batch 32)": forced(32),
        "tangermeme default (batch 32)": default,
    }


def tangermeme_outputs(result):
    y_hat = result[1] if isinstance(result, (tuple, list)) else result.y_hat
    return y_hat


def bench(name, model, n, length, *, repeats, device, tangermeme=True, naive_batch=32):
    X = random_one_hot(n, length, seed=1)
    adapter = SequenceModel(model, output=outputs.logit(0), device=device)
    target = 0
    # exactness first: probekit against the naive loop on the first two sequences
    naive_small = naive_ism(model, X[:2], naive_batch, device)[..., target]
    ours_small = probekit_ism_one(adapter, X[:2], target).permute(0, 2, 1)
    err = float(((ours_small - naive_small).abs().max() / naive_small.abs().max()).item())
    runs = {
        "probekit incremental": lambda: probekit_ism_one(adapter, X, target),
        f"naive batched ISM (batch {naive_batch})": lambda: naive_ism(model, X, naive_batch, device),
    }
    if tangermeme:
        tm = tangermeme_runs(model, X, device)
        if tm:
            y_hat = tangermeme_outputs(tm["tangermeme fast path forced (batch 256)"]())
            y_hat = torch.as_tensor(y_hat)[..., target] if y_hat.ndim == 4 else torch.as_tensor(y_hat)
            ours = probekit_ism_one(adapter, X, target).permute(0, 2, 1)
            err_tm = float(((ours - y_hat.to(ours)).abs().max() / y_hat.abs().max()).item())
            print(f"{name}: probekit vs tangermeme fast path, max relative difference {err_tm:.2e}")
        runs.update(tm)
    print(f"{name}: probekit vs naive, max relative difference {err:.2e}")
    times = interleaved(runs, repeats)
    base = median(times["probekit incremental"])
    mutants = 3 * n * length
    rows = []
    for method, ts in times.items():
        rows.append({
            "model": name,
            "method": method,
            "median s": median(ts),
            "mutants/s": mutants / median(ts),
            "x probekit time": median(ts) / base,
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    n1, l1 = (4, 400) if args.quick else (16, 1000)
    n2, l2 = (2, 800) if args.quick else (8, 2000)
    rows = bench(f"Basset-like, {n1} x {l1} bp", seeded(Basset()).to(args.device), n1, l1,
                 repeats=args.repeats, device=args.device)
    rows += bench(f"dilated residual, {n2} x {l2} bp", seeded(DilatedResidual(l2)).to(args.device), n2, l2,
                  repeats=args.repeats, device=args.device)
    n3, l3 = (4, 249) if args.quick else (16, 249)
    rows += bench(f"DeepSTARR-like, {n3} x {l3} bp", seeded(DeepSTARRLike(l3)).to(args.device), n3, l3,
                  repeats=args.repeats, device=args.device)
    n4, l4 = (2, 500) if args.quick else (8, 500)
    rows += bench(f"conv + attention, {n4} x {l4} bp", seeded(ConvAttention()).to(args.device), n4, l4,
                  repeats=args.repeats, device=args.device)
    print()
    print(table(rows, ["model", "method", "median s", "mutants/s", "x probekit time"]))


if __name__ == "__main__":
    main()
