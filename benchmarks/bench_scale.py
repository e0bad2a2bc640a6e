"""Scale out: throughput of saturation mutagenesis in process and on a local Ray with 1 and 2 workers.

The same task (ISM of every sequence, 1,000 sequences of 1,000 bp by default) runs

- in process: ``saturation_mutagenesis`` shard by shard, nothing written (after a
  warm-up call);
- ``probekit.scale.run(engine="local")``: the same shards, each written as Parquet;
- ``engine="ray"`` with 1 worker, then with 2 workers: a first run that starts the
  actors, then runs in the same Ray session, which keep them.

The runs of each configuration alternate with in-process runs, so that both see the
same load; the table gives medians.

Each worker loads the model from a file (``load_adapter``), as on a cluster, with the
same batch size (``--batch-size``, so that no run depends on a batch size tuned under
a different load). Every
configuration uses ``--threads`` torch threads per process (default 1: on a shared
machine, more threads than free cores slow torch down by far more than they help). The table
gives seconds, sequences per second and the overhead over in process; the start of
Ray itself is reported on its own line. Every run's effects are checked against the
in-process ones.

Run: ``python benchmarks/bench_scale.py [--quick] [--n 1000] [--length 1000] [--channels 8] [--kernel 5] [--threads 1]
[--repeats 3] [--device cpu]``
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine, median, table  # noqa: E402
from probekit import scale  # noqa: E402
from probekit.search.discrete import saturation_mutagenesis  # noqa: E402
from probekit.testing import ToyConv, random_sequences  # noqa: E402

ARCH = "probekit.testing:ToyConv"


def in_process(factory, sequences, shard_size):
    """The effects (N, L, 4) of one adapter over the shards in turn."""
    adapter = factory()
    effects = []
    for start in range(0, len(sequences), shard_size):
        effects.append(saturation_mutagenesis(adapter, sequences[start : start + shard_size]).effects)
    return torch.cat(effects)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sequences of 1,000 bp")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration, interleaved (default 3)")
    parser.add_argument("--channels", type=int, default=8, help="ToyConv channels (default 8: ISM costs ~3 ms a sequence)")
    parser.add_argument("--kernel", type=int, default=5, help="ToyConv kernel width (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="the adapter's batch size, the same everywhere (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in process and per worker (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one actor per GPU on Ray)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = 200 if args.quick else args.n
    sequences = random_sequences(n, args.length, seed=0)
    folder = Path(tempfile.mkdtemp())
    shape = {"channels": args.channels, "kernel": args.kernel}
    torch.save(ToyConv(**shape).state_dict(), folder / "model.pt")
    factory = functools.partial(scale.load_adapter, folder / "model.pt", arch=ARCH, arch_kwargs=shape, output=1,
                                batch_size=args.batch_size, device=args.device)  # fmt: skip
    print(f"# ISM of {n} sequences of {args.length} bp with ToyConv({args.channels} channels, kernel {args.kernel}), "
          f"shards of {args.shard_size}; {machine()}")
    quiet = {"shard_size": args.shard_size, "progress": False, "log": lambda line: None}
    threads = {"cpus_per_worker": args.threads}
    in_process(factory, sequences[:2], args.shard_size)  # first calls: allocator and kernels warmed up
    reference = in_process(factory, sequences, args.shard_size)
    times: dict = {}

    def base():
        times.setdefault("in process", []).append(timed(lambda: in_process(factory, sequences, args.shard_size))[1])

    def scaled(name, **engine):
        out_dir = folder / f"{name}-{len(times.get(name, []))}"
        done, seconds = timed(lambda: scale.run("ism", sequences, adapter_factory=factory, out_dir=out_dir, **quiet, **engine))
        assert torch.allclose(done.result.effects, reference, atol=1e-5), name
        times.setdefault(name, []).append(seconds)
        print(f"{name}: {seconds:.2f} s", flush=True)

    for _ in range(args.repeats):
        base()
        scaled("scale local")
    import ray

    cpus = max(os.cpu_count(), 2 * args.threads)
    _, start = timed(lambda: ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR"))
    gpus = {"gpus_per_worker": 1} if args.device.startswith("cuda") else {}
    plans = [1, 2] if not gpus or torch.cuda.device_count() > 1 else [1]
    for workers in plans:
        label = f"ray, {workers} worker{'s' if workers > 1 else ''}"
        scaled(f"{label}, first run (actors start)", engine="ray", workers=workers, **gpus, **threads)
        for _ in range(args.repeats):  # actors kept from the run before
            base()
            scaled(label, engine="ray", workers=workers, **gpus, **threads)
    ray.shutdown()
    reference_seconds = median(times["in process"])
    rows = []
    for name, values in times.items():
        seconds = median(values)
        rows.append({"engine": name, "runs": len(values), "seconds": seconds, "seq/s": n / seconds,
                     "vs in process": f"{100 * (seconds / reference_seconds - 1):+.0f} %"})  # fmt: skip
    print(table(rows, ["engine", "runs", "seconds", "seq/s", "vs in process"]))
    print(f"\nmedians; Ray start-up (ray.init, not in the table): {start:.1f} s")


if __name__ == "__main__":
    main()
