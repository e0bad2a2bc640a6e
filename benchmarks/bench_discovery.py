"""Motif discovery on the CPU: stage times on 1,000 bp sequences, and batched insertion experiments against a plain loop.

(a) ``probekit.discover`` on N sequences of 1,000 bp made by
``make_dna_sequences`` (one sampled FOS::JUN, CTCF or GATA1 site in 80% of
them), timing its stages: hypothetical contributions (exact ISM through
probekit's incremental engine), TF-MoDISco (modisco-lite; its numba compile is
timed apart, by a warm-up on small inputs) and TOMTOM against JASPAR CORE
vertebrates (memelite; reading JASPAR through pyjaspar is timed apart). Two models:

- ``planted``: a hand-built convolution whose filters are the log-odds matrices
  of the three planted motifs; its score is the sum over the motifs of the
  log-sum-exp of the site scores over positions and both strands (a soft best
  site, like an occupancy). It scores exactly the planted motifs, so the
  patterns to find are known.
- ``basset``: the Basset-like CNN of ``_common.py`` with random (seeded)
  weights: the cost per forward pass of a real model, but nothing learned.

(b) ``insertion_effect`` (every motif's and every random k-mer's placements in
one batched call) against a plain Python loop of single-sequence forward passes
on the same model, backgrounds, placements and random k-mers. The numbers are
asserted equal before timing; each method runs ``--repeats`` times,
interleaved, and the table gives medians of process CPU time and of wall time
and the ratio of the loop's median to probekit's.

Run: ``python benchmarks/bench_discovery.py [--quick] [--threads 1] [--models planted,basset] [--insertion-models planted,basset] [--repeats 3] [--parts a,b]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _threads_from_argv(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


def main(argv=None):
    # numba reads its thread count once, at import: set it before anything imports numba
    os.environ.setdefault("NUMBA_NUM_THREADS", str(_threads_from_argv(argv)))
    import random
    import statistics
    import warnings

    import numpy as np
    import torch
    from torch import nn

    from benchmarks._common import Basset, machine, seeded, table
    from probekit import SequenceModel
    from probekit.datasets import DEMO_MOTIF_IDS, load_demo_motifs, make_dna_sequences
    from probekit.discover import discover, hypothetical_contributions, insertion_effect, match_jaspar
    from probekit.discover.experiments import background_tensor
    from probekit.encode.dna import decode, one_hot
    from probekit.motifs import Motif, jaspar_motifs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sequences and a small insertion run")
    parser.add_argument("--n", type=int, help="sequences for discovery (default 2000; 200 with --quick)")
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--models", default="planted,basset", help="comma-separated: planted, basset")
    parser.add_argument("--threads", type=int, default=1, help="torch and numba threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each insertion method")
    parser.add_argument("--insertion-models", default="planted,basset", help="models of the insertion benchmark")
    parser.add_argument("--leiden-runs", type=int, default=10)
    parser.add_argument("--parts", default="a,b", help="a: discovery stages; b: insertion against a loop (default both)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    n = args.n or (200 if args.quick else 2000)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(machine())
    import numba

    print(f"numba {numba.__version__}, {numba.get_num_threads()} numba threads; process CPU time counts every thread")

    demo = load_demo_motifs()
    demo_motifs = {m: Motif(demo[m]["name"], m, np.array([demo[m]["pfm"][b] for b in "ACGT"], dtype=np.float64)) for m in DEMO_MOTIF_IDS}

    class PlantedConvolution(nn.Module):
        """Sum over motifs of the log-sum-exp of the log-odds site scores over positions and strands; logits (-s, s)."""

        def __init__(self, motifs):
            super().__init__()
            self.filters = nn.ParameterList()
            for motif in motifs:
                w = torch.tensor(motif.log_odds(), dtype=torch.float32)
                self.filters.append(nn.Parameter(torch.stack([w, w.flip(0).flip(1)]), requires_grad=False))

        def forward(self, x):
            s = sum(torch.nn.functional.conv1d(x, w).flatten(1).logsumexp(dim=1) for w in self.filters)
            return torch.stack([-s, s], dim=1)

    def build(name):
        if name == "planted":
            return PlantedConvolution(list(demo_motifs.values())).eval(), 1, "planted convolution (3 demo motifs)"
        if name == "basset":
            return seeded(Basset()), 0, "Basset-like CNN, random weights"
        raise SystemExit(f"unknown model {name!r}: planted or basset")

    def clock(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.process_time() - c0, time.perf_counter() - w0

    parts = {p.strip() for p in args.parts.split(",")}
    # ---------------------------------------------------------------- (a) discovery at scale
    frame = make_dna_sequences(n, length=args.length, seed=5000, positive_fraction=0.8, prefix="b")
    if "a" in parts:
        print("\n## (a) discovery")
        warm_model = PlantedConvolution(list(demo_motifs.values())).eval()
        warm = make_dna_sequences(100, length=200, seed=11, positive_fraction=0.8, prefix="w")
        _, warm_cpu, warm_wall = clock(lambda: discover(SequenceModel(warm_model, output=1, device="cpu"), warm, n_leiden_runs=1))
        print(f"TF-MoDISco warm-up (numba compile, 100 x 200 bp): {warm_cpu:.1f} s CPU, {warm_wall:.1f} s wall")
        targets, jaspar_cpu, jaspar_wall = clock(lambda: jaspar_motifs("CORE", "vertebrates"))
        print(f"JASPAR CORE vertebrates read through pyjaspar: {len(targets)} matrices, {jaspar_cpu:.1f} s CPU, {jaspar_wall:.1f} s wall")
        _, tw_cpu, tw_wall = clock(lambda: match_jaspar(["TGACTCA"], motifs=targets, top=1))
        print(f"TOMTOM warm-up (numba cache load): {tw_cpu:.1f} s CPU, {tw_wall:.1f} s wall")

        truth = frame[frame["label"] == 1]
        rows_a = []
        for name in models:
            model, output, label = build(name)
            adapter = SequenceModel(model, output=output, device="cpu", batch_size=256)
            sequences = frame["sequence"].tolist()
            hyp, c_cpu, c_wall = clock(lambda: hypothetical_contributions(adapter, sequences))
            found, m_cpu, m_wall = clock(
                lambda: discover(adapter, frame, contributions=hyp.numpy(), n_leiden_runs=args.leiden_runs, seed=0)
            )
            matches, t_cpu, t_wall = clock(lambda: match_jaspar(found, motifs=targets, top=50) if len(found) else None)
            patterns = found.to_frame()
            named = []
            if matches is not None:
                for matrix_id in DEMO_MOTIF_IDS:
                    hit = matches[(matches["matrix_id"] == matrix_id) & (matches["q_value"] < 0.05)]
                    hit = hit[hit["pattern"].isin(patterns.loc[patterns["sign"] > 0, "pattern"])]
                    if len(hit):
                        best = hit.sort_values("q_value").iloc[0]
                        named.append(f"{demo_motifs[matrix_id].name} {best['pattern']} (rank {best['match_rank']}, q={best['q_value']:.1g})")
            seqlets = found.seqlet_table()
            joined = seqlets.merge(truth[["id", "start", "end"]], on="id", how="left", suffixes=("", "_planted"))
            on_site = ((joined["start"] < joined["end_planted"]) & (joined["end"] > joined["start_planted"])).mean() if len(joined) else 0.0
            print(f"{label}: {len(found)} patterns, {len(seqlets)} seqlets ({on_site:.0%} on a planted site); "
                  f"planted motifs named (q < 0.05): {'; '.join(named) or 'none'}")  # fmt: skip
            for stage, cpu, wall in (
                ("contributions (ISM, 3 x L substitutions each)", c_cpu, c_wall),
                ("TF-MoDISco (after the warm-up)", m_cpu, m_wall),
                ("TOMTOM, all patterns x JASPAR", t_cpu, t_wall),
                ("total", c_cpu + m_cpu + t_cpu, c_wall + m_wall + t_wall),
            ):
                rows_a.append({"model": label, "sequences": f"{n} x {args.length} bp", "stage": stage, "CPU s": cpu, "wall s": wall})
            rows_a[-4]["per sequence, CPU ms"] = 1000 * c_cpu / n
            rows_a[-1]["patterns / seqlets"] = f"{len(found)} / {len(seqlets)}"
        print()
        print(table(rows_a, ["model", "sequences", "stage", "CPU s", "wall s", "per sequence, CPU ms", "patterns / seqlets"]))

    # ---------------------------------------------------------------- (b) insertion vs a plain loop
    print("\n## (b) insertion experiments")
    n_bg, n_random = (5, 20) if args.quick else (20, 100)
    positions = [200, 500]
    orientations = ("+", "-")
    sites = [demo_motifs[m].consensus for m in DEMO_MOTIF_IDS]

    def insertion_rows(name):
        model, output, label = build(name)
        adapter = SequenceModel(model, output=output, device="cpu", batch_size=256)
        backgrounds = frame["sequence"].tolist()[:100]
        seed = 0

        def batched():
            return insertion_effect(
                adapter, sites, backgrounds=backgrounds, n_backgrounds=n_bg, positions=positions, orientations=orientations,
                n_random=n_random, seed=seed,
            )  # fmt: skip

        complement = str.maketrans("ACGT", "TGCA")

        def loop():
            X, _ = background_tensor(adapter, backgrounds, n_backgrounds=n_bg, seed=seed)
            texts = decode(X.cpu())
            g = torch.Generator().manual_seed(seed)

            def score(text):
                with torch.inference_mode():
                    return float(model(one_hot([text]))[0, output])

            reference = [score(bg) for bg in texts]
            effects, random_means = [], []
            for site in sites:
                k = len(site)
                codes = torch.randint(0, 4, (n_random, k), generator=g)
                kmers = ["".join("ACGT"[c] for c in row) for row in codes.tolist()]

                def deltas(s):
                    out = []
                    for b, bg in enumerate(texts):
                        for p in positions:
                            for o in orientations:
                                insert = s if o == "+" else s.translate(complement)[::-1]
                                out.append(score(bg[:p] + insert + bg[p + k :]) - reference[b])
                    return out

                effects.append(deltas(site))
                random_means.append([float(np.mean(deltas(kmer))) for kmer in kmers])
            return torch.tensor(effects), torch.tensor(random_means)

        fast = batched()
        slow = loop()
        err_e = float((fast.effects - slow[0]).abs().max())
        err_r = float((fast.random - slow[1]).abs().max())
        torch.testing.assert_close(fast.effects, slow[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(fast.random, slow[1], atol=1e-4, rtol=1e-4)
        placements = n_bg * len(positions) * len(orientations)
        passes = len(sites) * (1 + n_random) * placements + n_bg
        print(f"{label}, {len(sites)} motifs x {n_bg} backgrounds x {len(positions)} positions x {len(orientations)} orientations, "
              f"{n_random} random k-mers: {passes:,} forward passes; batched vs loop, largest difference: "
              f"effects {err_e:.1e}, random means {err_r:.1e}")  # fmt: skip
        times = {"probekit insertion_effect (batched)": ([], []), "plain loop, one sequence per forward pass": ([], [])}
        runs = {"probekit insertion_effect (batched)": batched, "plain loop, one sequence per forward pass": loop}
        order = list(runs)
        shuffler = random.Random(0)
        for _ in range(args.repeats):
            shuffler.shuffle(order)
            for method in order:
                _, cpu, wall = clock(runs[method])
                times[method][0].append(cpu)
                times[method][1].append(wall)
        base_wall = statistics.median(times["probekit insertion_effect (batched)"][1])
        base_cpu = statistics.median(times["probekit insertion_effect (batched)"][0])
        rows_b = []
        for method, (cpus, walls) in times.items():
            rows_b.append({
                "model": label,
                "method": method,
                "median CPU s": statistics.median(cpus),
                "median wall s": statistics.median(walls),
                "forward passes / CPU s": passes / statistics.median(cpus),
                "x probekit CPU time": statistics.median(cpus) / base_cpu,
                "x probekit wall time": statistics.median(walls) / base_wall,
            })  # fmt: skip
        return rows_b

    rows_b = []
    for name in [m.strip() for m in args.insertion_models.split(",") if m.strip()] if "b" in parts else []:
        rows_b += insertion_rows(name)
    if rows_b:
        print()
        print(table(rows_b, list(rows_b[0])))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
