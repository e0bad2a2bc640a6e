"""PGD and FGSM on an MLP over 2,048 binary features: probekit against torchattacks, captum and a hand loop.

MLP 2048 -> 256 -> 64 -> 1 (ReLU), seed 0; 256 random binary inputs; L-inf
eps 0.1, 40 steps of 0.01, no random start, inputs clipped to [0, 1]. Every
method lowers the score ``s`` (torchattacks and captum see the class logits
``[-s, s]`` with label 1, whose cross-entropy falls as ``s`` falls). probekit
also keeps the best iterate, bounds and masks. Medians over interleaved repeats.

A second table runs FGSM alone on 256, 2,048 and 8,192 inputs.
Run: ``python benchmarks/bench_pgd.py [--repeats 7] [--threads 2] [--device cuda]``
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import interleaved, machine, median, table, try_import  # noqa: E402
from probekit import FeatureModel, goals, outputs  # noqa: E402

EPS, STEPS, STEP = 0.1, 40, 0.01


class TwoLogits(nn.Module):
    """Class logits [-s, s] for the libraries that need a classifier."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        s = self.model(x)
        return torch.cat([-s, s], dim=1)


def hand_pgd(model, X):
    delta = torch.zeros_like(X)
    for _ in range(STEPS):
        delta.requires_grad_(True)
        s = model(X + delta).sum()
        (grad,) = torch.autograd.grad(s, delta)
        with torch.no_grad():
            delta = (delta - STEP * grad.sign()).clamp(-EPS, EPS)
            delta = (X + delta).clamp(0, 1) - X
    return X + delta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    torch.manual_seed(0)
    device = torch.device(args.device)
    mlp = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 1)).eval()
    mlp = mlp.to(device)
    X = torch.bernoulli(torch.full((256, 2048), 0.5), generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.ones(256, dtype=torch.long, device=device)
    wrapped = TwoLogits(mlp).eval()
    adapter = FeatureModel(mlp, output=outputs.value(0), kinds="continuous", bounds=(0.0, 1.0), device=device,
                           batch_size=256)
    never = goals.below(-100.0)  # out of reach: every method runs its 40 steps

    results = {}

    def keep(name, fn):
        def run():
            results[name] = fn()
        return run

    search = try_import("probekit.search")
    runs = {}
    if search is not None and hasattr(search, "pgd"):
        runs["probekit pgd"] = keep("probekit pgd", lambda: search.pgd(
            adapter, X, goal=never, eps=EPS, steps=STEPS, step_size=STEP, early_stop=False).x_adv)
        runs["probekit fgsm"] = keep("probekit fgsm", lambda: search.fgsm(adapter, X, goal=never, eps=EPS).x_adv)
    else:
        print("probekit.search.pgd is not there yet: its rows are skipped")
    runs["hand-written loop"] = keep("hand-written loop", lambda: hand_pgd(mlp, X))
    torchattacks = try_import("torchattacks")
    if torchattacks is not None:
        pgd_atk = torchattacks.PGD(wrapped, eps=EPS, alpha=STEP, steps=STEPS, random_start=False)
        fgsm_atk = torchattacks.FGSM(wrapped, eps=EPS)
        runs["torchattacks PGD"] = keep("torchattacks PGD", lambda: pgd_atk(X, labels))
        runs["torchattacks FGSM"] = keep("torchattacks FGSM", lambda: fgsm_atk(X, labels))

        def fgsm_and_score():
            # what probekit's FGSM returns besides the points: their scores (and so whether each step helped)
            x_adv = fgsm_atk(X, labels)
            with torch.no_grad():
                mlp(x_adv)
            return x_adv

        runs["torchattacks FGSM + scores"] = keep("torchattacks FGSM + scores", fgsm_and_score)
    else:
        print("torchattacks not installed (pip install --no-deps torchattacks): its rows are skipped")
    captum_robust = try_import("captum.robust")
    if captum_robust is not None:
        cap = captum_robust.PGD(
            wrapped, loss_func=lambda out, t: nn.functional.cross_entropy(out, t, reduction="none"),
            lower_bound=0.0, upper_bound=1.0,
        )
        cap.fgsm.zero_thresh = 0.0  # captum skips coordinates with |grad| <= 1e-6 otherwise
        runs["captum PGD"] = keep("captum PGD", lambda: cap.perturb(
            X, radius=EPS, step_size=STEP, step_num=STEPS, target=labels, random_start=False))

    times = interleaved(runs, args.repeats)
    with torch.no_grad():
        s0 = mlp(X)[:, 0]
    base_name = "probekit pgd" if "probekit pgd" in times else "hand-written loop"
    base = median(times[base_name])
    rows = []
    for name, ts in times.items():
        x_adv = results[name].detach()
        with torch.no_grad():
            s = mlp(x_adv)[:, 0]
        rows.append({
            "method": name,
            "median s": median(ts),
            f"x {base_name} time": median(ts) / base,
            "mean score after": float(s.mean()),
            "mean drop": float((s0 - s).mean()),
            "max abs delta": float((x_adv - X).abs().max()),
        })
    print()
    print(table(rows, ["method", "median s", f"x {base_name} time", "mean score after", "mean drop", "max abs delta"]))
    if search is not None and torchattacks is not None:
        print()
        print(fgsm_by_size(mlp, wrapped, search, torchattacks, device, args.repeats))


def fgsm_by_size(mlp, wrapped, search, torchattacks, device, repeats, sizes=(256, 2048, 8192)) -> str:
    """FGSM on growing batches (one pass each): how much of the gap to torchattacks is per-call cost."""
    rows = []
    attack = torchattacks.FGSM(wrapped, eps=EPS)
    for n in sizes:
        X = torch.bernoulli(torch.full((n, 2048), 0.5), generator=torch.Generator().manual_seed(1)).to(device)
        labels = torch.ones(n, dtype=torch.long, device=device)
        adapter = FeatureModel(mlp, output=outputs.value(0), kinds="continuous", bounds=(0.0, 1.0), device=device,
                               batch_size=n)
        kept = {}

        def scored():
            kept["torchattacks"] = x_adv = attack(X, labels)
            with torch.no_grad():
                mlp(x_adv)

        def ours():
            kept["probekit"] = search.fgsm(adapter, X, goal=goals.below(-100.0), eps=EPS).x_adv

        times = interleaved({"probekit fgsm": ours, "torchattacks FGSM + scores": scored}, repeats)
        base = median(times["probekit fgsm"])
        rows += [{"inputs": n, "method": name, "median s": median(ts), "x probekit fgsm time": median(ts) / base}
                 for name, ts in times.items()]
    return table(rows, ["inputs", "method", "median s", "x probekit fgsm time"])


if __name__ == "__main__":
    main()
