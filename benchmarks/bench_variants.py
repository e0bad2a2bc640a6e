"""SNV effect scoring: probekit's score_variants against explicit REF + ALT batched forward passes.

A random genome (two contigs of 1 Mb, plain FASTA with its faidx index) and
10,000 random SNVs; the Basset-like CNN at 1,000 bp windows, logit 0. Methods,
run in one process and interleaved:

* explicit REF + ALT passes, written the way gReLU's ``predict_variant_effects``
  and kipoi-veff build them: fetch each REF window (pysam), substitute the ALT
  base at the centre, one-hot both, forward both in batches, ``alt - ref``;
* ``score_variants(context=False)``: one REF pass per window and a local recomputation at the variant;
* the incremental engine called directly at the variant's position (one REF pass per window and
  the windowed recomputation of its three substitutions), without probekit's variant bookkeeping;
* ``score_variants(context=True)``: the exact ISM of every REF window (3L single
  substitutions) for each SNV's rank and p-value, timed on ``--context-n`` SNVs and
  reported per variant, since on 10,000 windows it takes minutes.

Every method's deltas are compared with the explicit passes before timing.

Run: ``python benchmarks/bench_variants.py [--repeats 3] [--threads 2] [--device cpu] [--quick] [--profile]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import Basset, interleaved, machine, median, seeded, table  # noqa: E402
from probekit import SequenceModel, outputs  # noqa: E402
from probekit.search.incremental import incremental_single_substitutions  # noqa: E402
from probekit.variants import score_variants  # noqa: E402

BASES = "ACGT"
# one-hot rows by ASCII code: A, C, G, T (either case) to their column, anything else all-zero
_LOOKUP = np.zeros((256, 4), dtype=np.float32)
for _i, _b in enumerate(BASES):
    _LOOKUP[ord(_b), _i] = _LOOKUP[ord(_b.lower()), _i] = 1.0


def random_genome(folder: Path, *, contigs: int = 2, size: int = 1_000_000, seed: int = 0) -> tuple[Path, dict]:
    """A plain FASTA of uniform random bases, indexed; returns its path and the contigs."""
    import pysam

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)
    sequences = {f"chr{k + 1}": letters[rng.integers(0, 4, size=size)].tobytes().decode() for k in range(contigs)}
    path = folder / "random_genome.fa"
    with open(path, "w") as handle:
        for name, s in sequences.items():
            handle.write(f">{name}\n" + "\n".join(s[i : i + 80] for i in range(0, len(s), 80)) + "\n")
    pysam.faidx(str(path))
    return path, sequences


def random_snvs(sequences: dict, n: int, *, length: int, seed: int = 1) -> pd.DataFrame:
    """``n`` SNVs at distinct random positions whose windows lie inside their contig; ALT a random other base."""
    rng = np.random.default_rng(seed)
    names = list(sequences)
    rows = []
    taken = set()
    while len(rows) < n:
        chrom = names[int(rng.integers(0, len(names)))]
        pos = int(rng.integers(length, len(sequences[chrom]) - length))
        if (chrom, pos) in taken:
            continue
        taken.add((chrom, pos))
        ref = sequences[chrom][pos - 1]
        alt = BASES[(BASES.index(ref) + int(rng.integers(1, 4))) % 4]
        rows.append((chrom, pos, f"snv{len(rows)}", ref, alt))
    return pd.DataFrame(rows, columns=["chrom", "pos", "id", "ref", "alt"])


def one_hot(windows: list[str]) -> torch.Tensor:
    """(N, 4, L) float32 one-hot of equal-length strings; N and other letters give zero columns."""
    codes = np.frombuffer("".join(windows).encode("ascii"), dtype=np.uint8).reshape(len(windows), -1)
    return torch.from_numpy(_LOOKUP[codes]).permute(0, 2, 1).contiguous()


def fetch_windows(fasta, snvs: pd.DataFrame, length: int, offset: int) -> tuple[list[str], list[str]]:
    """REF windows from the FASTA and ALT windows with the ALT base at ``offset``."""
    refs, alts = [], []
    for chrom, pos, ref, alt in zip(snvs["chrom"], snvs["pos"], snvs["ref"], snvs["alt"]):
        start = pos - 1 - offset
        window = fasta.fetch(chrom, start, start + length).upper()
        refs.append(window)
        alts.append(window[:offset] + alt + window[offset + 1 :])
    return refs, alts


def explicit_ref_alt(model, fasta_path: Path, snvs: pd.DataFrame, *, length: int, batch_size: int, device, target: int = 0):
    """Deltas by explicit batched REF and ALT forward passes, as variant-effect tools write them."""
    import pysam

    offset = length // 2
    deltas = np.empty(len(snvs))
    with pysam.FastaFile(str(fasta_path)) as fasta, torch.inference_mode():
        for start in range(0, len(snvs), batch_size):
            part = snvs.iloc[start : start + batch_size]
            refs, alts = fetch_windows(fasta, part, length, offset)
            y_ref = model(one_hot(refs).to(device))[:, target]
            y_alt = model(one_hot(alts).to(device))[:, target]
            deltas[start : start + len(part)] = (y_alt - y_ref).double().cpu().numpy()
    return deltas


def incremental_at_variant(adapter, fasta_path: Path, snvs: pd.DataFrame, *, length: int, chunk: int = 256):
    """Deltas from one REF pass per window and the windowed recomputation of its substitutions at the centre."""
    import pysam

    offset = length // 2
    deltas = np.empty(len(snvs))
    alt_index = torch.tensor([BASES.index(a) for a in snvs["alt"]])
    ref_index = torch.tensor([BASES.index(r) for r in snvs["ref"]])
    with pysam.FastaFile(str(fasta_path)) as fasta:
        for start in range(0, len(snvs), chunk):
            part = snvs.iloc[start : start + chunk]
            refs, _ = fetch_windows(fasta, part, length, offset)
            scores = incremental_single_substitutions(adapter, one_hot(refs), [offset], lambda y, rows: y[:, 0])[:, 0].cpu()
            rows = torch.arange(len(part))
            idx = slice(start, start + len(part))
            deltas[idx] = (scores[rows, alt_index[idx]] - scores[rows, ref_index[idx]]).double().numpy()
    return deltas


def profile_score_variants(adapter, snvs: pd.DataFrame, genome_path: Path, *, length: int, top: int = 14) -> str:
    """Where ``score_variants(context=False)`` spends its time: cProfile's functions by their own time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    score_variants(adapter, snvs, genome_path, length=length, context=False)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=10_000, help="SNVs scored (default 10,000)")
    parser.add_argument("--length", type=int, default=1000, help="window length (default 1,000)")
    parser.add_argument("--batch-size", type=int, default=128, help="windows per forward pass, every method (default 128)")
    parser.add_argument("--context-n", type=int, default=200, help="SNVs scored with context=True (default 200)")
    parser.add_argument("--profile", action="store_true", help="also profile score_variants(context=False) (cProfile, by own time)")
    parser.add_argument("--quick", action="store_true", help="500 SNVs, 20 with context: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.context_n = 500, 20
    torch.set_num_threads(args.threads)
    print(machine())
    model = seeded(Basset()).to(args.device)
    adapter = SequenceModel(model, output=outputs.logit(0), device=args.device, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as folder:
        fasta, sequences = random_genome(Path(folder))
        snvs = random_snvs(sequences, args.n, length=args.length)
        subset = snvs.head(args.context_n).reset_index(drop=True)
        runs = {
            "explicit REF + ALT passes": lambda: explicit_ref_alt(model, fasta, snvs, length=args.length,
                                                                  batch_size=args.batch_size, device=args.device),
            "score_variants(context=False)": lambda: score_variants(adapter, snvs, fasta, length=args.length, context=False).delta.numpy(),
            "incremental engine at the variant": lambda: incremental_at_variant(adapter, fasta, snvs, length=args.length),
        }  # fmt: skip
        context_run = lambda: score_variants(adapter, subset, fasta, length=args.length, context=True)  # noqa: E731
        # exactness first, against the explicit passes
        reference = runs["explicit REF + ALT passes"]()
        scale = float(np.abs(reference).max())
        for name, fn in list(runs.items())[1:]:
            diff = float(np.abs(fn() - reference).max())
            print(f"{name}: max |delta - explicit delta| = {diff:.2e} (largest |delta| {scale:.3g})")
            assert diff <= 1e-4 * max(scale, 1.0), f"{name} disagrees with the explicit passes"
        context = context_run()
        diff = float(np.abs(context.delta.numpy() - reference[: len(subset)]).max())
        print(f"score_variants(context=True): max |delta - explicit delta| = {diff:.2e}; "
              f"context of the first: {context.variants['context'][0]}")  # fmt: skip
        assert diff <= 1e-4 * max(scale, 1.0)
        times = interleaved(runs, args.repeats)
        context_times = interleaved({"context": context_run}, max(1, args.repeats if args.quick else 1))["context"]
        profile = profile_score_variants(adapter, snvs, fasta, length=args.length) if args.profile else None
    base = median(times["explicit REF + ALT passes"])
    rows = [dict(method=name, SNVs=args.n, **{"median s": median(ts), "SNVs/s": args.n / median(ts),
                                                "x explicit time": median(ts) / base}) for name, ts in times.items()]  # fmt: skip
    per_variant = median(context_times) / len(subset)
    rows.append({"method": f"score_variants(context=True), {len(subset)} SNVs", "SNVs": len(subset),
                 "median s": median(context_times), "SNVs/s": 1 / per_variant,
                 "x explicit time": per_variant / (base / args.n)})  # fmt: skip
    print()
    print(f"Basset-like CNN, {args.length:,} bp windows, batch {args.batch_size}, {args.repeats} interleaved repeats")
    print(table(rows, ["method", "SNVs", "median s", "SNVs/s", "x explicit time"]))
    print(f"\ncontext=True costs {per_variant * 1e3:.1f} ms per SNV ({per_variant * args.n:,.0f} s for {args.n:,} SNVs), "
          f"{per_variant / (base / args.n):.1f}x the explicit passes' time per SNV")  # fmt: skip
    explicit_ism = (3 * args.length + 1) * base / (2 * args.n)
    print(f"the same context by explicit passes (the REF window and its {3 * args.length:,} single substitutions, "
          f"{base / (2 * args.n) * 1e3:.2f} ms a pass) would take {explicit_ism:.2f} s per SNV: "
          f"{explicit_ism / per_variant:.1f}x context=True's time")  # fmt: skip
    if profile:
        print(f"\nscore_variants(context=False) on {args.n:,} SNVs, by own time:\n{profile}")


if __name__ == "__main__":
    main()
