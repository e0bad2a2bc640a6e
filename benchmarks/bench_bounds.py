"""Bound widths: probekit's IBP and CROWN against an attack's lower estimate (and auto_LiRPA when installed).

A random MLP 64 -> 128 -> 128 -> 1 (ReLU), seed 0, 32 random inputs, L-inf balls
of eps 0.001, 0.01 and 0.1. The width upper - lower of a sound bound can never
fall below the attack's width (the score range a PGD attack reaches inside the
ball); the closer to it, the tighter. Medians of widths over inputs; times are
medians over repeats.

Run: ``python benchmarks/bench_bounds.py [--repeats 3] [--threads 2] [--device cuda]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine, median, synchronize, table, try_import  # noqa: E402
from probekit import FeatureModel, outputs  # noqa: E402


def attack_range(model, X, eps, steps=100):
    """Score range reached by sign-gradient ascent and descent inside the L-inf ball (a lower estimate)."""
    ends = []
    for direction in (1.0, -1.0):
        delta = torch.zeros_like(X)
        best = model(X)[:, 0].detach() * direction
        for _ in range(steps):
            delta.requires_grad_(True)
            s = model(X + delta)[:, 0] * direction
            (grad,) = torch.autograd.grad(s.sum(), delta)
            best = torch.maximum(best, s.detach())
            with torch.no_grad():
                delta = (delta + 2.5 * eps / steps * grad.sign()).clamp(-eps, eps)
        with torch.no_grad():
            best = torch.maximum(best, model(X + delta)[:, 0] * direction)
        ends.append(best * direction)
    return ends[0] - ends[1]


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        out = fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return out, median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    # The reference MLP of the peer measurements: 2048 -> 256 -> 64 -> 1, seed 0, 32 random binary inputs.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 1)).eval()
    X = (torch.rand(32, 2048, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    model, X = model.to(args.device), X.to(args.device)
    adapter = FeatureModel(model, output=outputs.value(0), device=args.device)
    certify = try_import("probekit.certify")
    lirpa = try_import("auto_LiRPA")
    if certify is None or not hasattr(certify, "ibp"):
        print("probekit.certify is not there yet: its rows are skipped")
    if lirpa is None:
        print("auto_LiRPA not installed (pip install --no-deps git+https://github.com/Verified-Intelligence/auto_LiRPA): "
              "its rows are skipped")

    rows = []
    for eps in (0.001, 0.01, 0.1):
        row = {"eps": eps}
        row["attack width (lower estimate)"] = float(attack_range(model, X, eps).median())
        methods = {}
        if certify is not None and hasattr(certify, "ibp"):
            methods["probekit IBP"] = lambda: certify.ibp(adapter, X, eps=eps)
            methods["probekit CROWN-IBP"] = lambda: certify.crown(adapter, X, eps=eps, intermediate="ibp")
            methods["probekit CROWN"] = lambda: certify.crown(adapter, X, eps=eps)
        for name, fn in methods.items():
            try:
                bounds, seconds = timed(fn, args.repeats)
                row[name] = float((bounds.upper - bounds.lower).median())
                row[name + " s"] = seconds
            except Exception as error:  # noqa: BLE001 - a failing method is reported, the rest go on
                row[name] = f"error: {type(error).__name__}"
        if lirpa is not None:
            bounded = lirpa.BoundedModule(model, torch.zeros(1, 2048, device=X.device))
            ptb = lirpa.PerturbationLpNorm(norm=float("inf"), eps=eps)
            x = lirpa.BoundedTensor(X, ptb)
            for method in ("IBP", "CROWN"):
                (lb, ub), seconds = timed(lambda: bounded.compute_bounds(x=(x,), method=method), args.repeats)
                row[f"auto_LiRPA {method}"] = float((ub - lb).median())
                row[f"auto_LiRPA {method} s"] = seconds
        rows.append(row)
    columns = ["eps", "attack width (lower estimate)"]
    for name in ("probekit IBP", "probekit CROWN-IBP", "probekit CROWN", "auto_LiRPA IBP", "auto_LiRPA CROWN"):
        if any(name in r for r in rows):
            columns += [name, name + " s"]
    print()
    print(table(rows, columns))


if __name__ == "__main__":
    main()
