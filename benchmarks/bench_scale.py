"""Scale out: throughput of saturation mutagenesis in process, on the local engine and on a local Ray.

The same task (ISM of every sequence, 1,000 sequences of 1,000 bp by default) runs

- in process: ``saturation_mutagenesis`` shard by shard, nothing written (after a
  warm-up call), in a process of its own that never starts Ray (a Ray driver's threads
  in the process would slow it down);
- ``probekit.scale.run(engine="local")``: the same shards in that process, each written
  to disk;
- ``engine="ray"`` with 1 worker, then with 2 (on ``--device cuda``: one actor on one
  GPU, then one actor per GPU when there are several): a first run that starts the
  actors, reported on its own line, then runs in the same Ray session, which keep them.

The runs go in rounds, so that all see the same load: each round runs in process, then
every other configuration of its block once, in a new (seeded) random order. A block
is the local engine and Ray with 1 worker, then Ray with 2 workers (a Ray session keeps
one pool of actors, so each pool gets its own block). The table gives medians over the
rounds of seconds, sequences per second (per GPU on CUDA) and the overhead over in
process: the median of each run's time over the in-process run of its round; and the
same of CPU time (user and system, from /proc: of the process that ran in process or
the local engine; on Ray, of the driver and every process of the Ray it started), which
a machine shared with other jobs swings less than wall time.

Each worker loads the model from a file (``load_adapter``), as on a cluster, with the
same batch size (``--batch-size``). glibc's allocator thresholds are set alike in every
process (``--malloc fixed``, the default): left to itself glibc moves them as a process
frees memory, and the page faults of ISM's temporaries (up to 40 % of its time on this
model) then depend on what ran before in the process, not on the engine. In process and every worker use ``--threads`` torch
threads (default 1: on a shared machine, more threads than free cores slow torch down by
far more than they help). The start of Ray is reported on its own line. Every run's
effects are checked against the in-process ones. ``--device cuda`` needs CUDA and a Ray
that sees the GPUs, and stops with the reason otherwise.

Run: ``python benchmarks/bench_scale.py [--quick] [--n 1000] [--length 1000] [--channels 8] [--kernel 5] [--threads 1]
[--shard-size 50] [--repeats 3] [--device cpu] [--malloc fixed]``
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine, median, synchronize, table  # noqa: E402
from probekit import scale  # noqa: E402
from probekit.search.discrete import saturation_mutagenesis  # noqa: E402
from probekit.testing import ToyConv, random_sequences  # noqa: E402

ARCH = "probekit.testing:ToyConv"
# glibc's thresholds, fixed: left to itself, glibc moves its mmap threshold as a process frees memory, so that
# the page faults of ISM's large temporaries (up to 40 % of its time) depend on what ran before in the process.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def in_process(factory, sequences, shard_size):
    """The effects (N, L, 4) of one adapter over the shards in turn."""
    adapter = factory()
    effects = []
    for start in range(0, len(sequences), shard_size):
        effects.append(saturation_mutagenesis(adapter, sequences[start : start + shard_size]).effects.cpu())
    return torch.cat(effects)


def timed(fn):
    synchronize()
    start = time.perf_counter()
    value = fn()
    synchronize()
    return value, time.perf_counter() - start


def check_cuda() -> int:
    """The number of GPUs torch sees; stops the benchmark when there is none."""
    if not torch.cuda.is_available():
        raise SystemExit("bench_scale: --device cuda, but torch sees no CUDA device (torch.cuda.is_available() is False)")
    return torch.cuda.device_count()


def start_ray(cpus: int, gpus: int):
    """A local Ray with ``cpus`` CPUs; on CUDA it must see the ``gpus`` GPUs, or the actors would wait forever."""
    import ray

    _, seconds = timed(lambda: ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR"))
    seen = int(ray.cluster_resources().get("GPU", 0))
    if gpus and seen < gpus:
        ray.shutdown()
        raise SystemExit(f"bench_scale: torch sees {gpus} GPU(s) but Ray sees {seen}; check CUDA_VISIBLE_DEVICES")
    return ray, seconds


def cpu_seconds(pids) -> float:
    """User and system CPU seconds used so far by the live processes ``pids`` (0 where /proc is missing)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def family(root: int, *, leave_out: int) -> list[int]:
    """``root`` and all its descendants (a Ray started here: its raylet, GCS and actors), but ``leave_out``."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid != leave_out:
            found.append(pid)
            todo += [child for child, parent in parents.items() if parent == pid]
    return found


# The clean process: in process and the local engine run here, in a process without Ray, as a user's would.
_CLEAN: dict = {}


def clean_setup(factory, sequences: list, shard_size: int, threads: int) -> None:
    torch.set_num_threads(threads)
    _CLEAN.update(factory=factory, sequences=sequences, shard_size=shard_size)
    in_process(factory, sequences[:2], shard_size)  # first calls: allocator and kernels warmed up


def clean_run(engine: str | None, out_dir: str | None = None):
    """``(seconds, effects)`` of ISM in process (``engine`` None) or with ``scale.run(engine=engine)``."""
    factory, sequences, shard_size = _CLEAN["factory"], _CLEAN["sequences"], _CLEAN["shard_size"]
    if engine is None:
        return timed(lambda: in_process(factory, sequences, shard_size))[::-1]
    done, seconds = timed(lambda: scale.run("ism", sequences, adapter_factory=factory, out_dir=out_dir, engine=engine,
                                            shard_size=shard_size, progress=False, log=lambda line: None))  # fmt: skip
    scale.remove_shards(out_dir)
    return seconds, done.result.effects


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sequences of 1,000 bp")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each block (default 3)")
    parser.add_argument("--channels", type=int, default=8, help="ToyConv channels (default 8: ISM costs ~3 ms a sequence)")
    parser.add_argument("--kernel", type=int, default=5, help="ToyConv kernel width (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="the adapter's batch size, the same everywhere (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in process and per worker (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one actor per GPU on Ray)")
    parser.add_argument("--malloc", choices=["fixed", "default"], default="fixed",
                        help="fixed (default): glibc's allocator thresholds set alike in every process; default: as they are")
    args = parser.parse_args(argv)
    if args.malloc == "fixed":  # read by each process at its start: the clean process and Ray's, started below
        os.environ.update(FIXED_MALLOC)
    cuda = args.device.startswith("cuda")
    n_gpus = check_cuda() if cuda else 0
    torch.set_num_threads(args.threads)
    n = 200 if args.quick else args.n
    sequences = random_sequences(n, args.length, seed=0)
    folder = Path(tempfile.mkdtemp())
    shape = {"channels": args.channels, "kernel": args.kernel}
    torch.save(ToyConv(**shape).state_dict(), folder / "model.pt")
    factory = functools.partial(scale.load_adapter, folder / "model.pt", arch=ARCH, arch_kwargs=shape, output=1,
                                batch_size=args.batch_size, device=args.device)  # fmt: skip
    print(f"# ISM of {n} sequences of {args.length} bp with ToyConv({args.channels} channels, kernel {args.kernel}), "
          f"shards of {args.shard_size}, {args.threads} torch thread(s) per process, malloc thresholds {args.malloc}; "
          f"{machine()}", flush=True)  # fmt: skip
    clean = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=clean_setup,
                                initargs=(factory, sequences, args.shard_size, args.threads))  # fmt: skip
    _, reference = clean.submit(clean_run, None).result()
    clean_pid = clean.submit(os.getpid).result()
    times: dict = {}  # name -> [(seconds, CPU seconds, the same of the round's in-process run)]
    base, shuffler = {}, random.Random(0)

    def record(name, seconds, cpu, effects, keep=True):
        assert torch.allclose(effects.cpu(), reference, atol=1e-5), name
        print(f"{name}: {seconds:.2f} s, {cpu:.2f} CPU s", flush=True)
        if keep:
            times.setdefault(name, []).append((seconds, cpu, *base.get("run", (seconds, cpu))))

    def in_clean(engine):
        before = cpu_seconds([clean_pid])
        seconds, effects = clean.submit(clean_run, engine, str(folder / "local")).result()
        return seconds, cpu_seconds([clean_pid]) - before, effects

    def run_in_process():
        seconds, cpu, effects = in_clean(None)
        base["run"] = (seconds, cpu)
        record("in process", seconds, cpu, effects)

    def run_local():
        record("engine=local", *in_clean("local"))

    def run_ray(label, keep=True, **engine):
        out_dir, pids = folder / "ray", family(os.getpid(), leave_out=clean_pid)  # the driver and its Ray
        before = cpu_seconds(pids)
        done, seconds = timed(lambda: scale.run("ism", sequences, adapter_factory=factory, out_dir=out_dir,
                                                shard_size=args.shard_size, progress=False, log=lambda line: None, **engine))  # fmt: skip
        cpu = cpu_seconds(pids) - before
        scale.remove_shards(out_dir)
        record(label, seconds, cpu, done.result.effects, keep)

    gpus = {"gpus_per_worker": 1} if cuda else {}
    ray, ray_start = start_ray(max(os.cpu_count() or 1, 2 * args.threads), n_gpus)
    plans = ([1, n_gpus] if n_gpus > 1 else [1]) if cuda else [1, 2]
    for block, workers in enumerate(plans):
        label = f"ray, {workers} worker{'s' if workers > 1 else ''}"
        on_ray = functools.partial(run_ray, label, engine="ray", workers=workers, cpus_per_worker=args.threads, **gpus)
        on_ray(keep=False)  # the actors start; kept by the Ray session for the runs below
        print(f"(the run above started the actors: {label})", flush=True)
        configs = [on_ray, run_local] if block == 0 else [on_ray]
        for _ in range(args.repeats):  # each round: in process, then the others in a new random order
            run_in_process()
            for config in shuffler.sample(configs, len(configs)):
                config()
    ray.shutdown()
    clean.shutdown()
    columns = ["engine", "runs", "seconds", "seq/s", *(["seq/s per GPU"] if cuda else []), "vs in process", "CPU s",
               "CPU vs in process"]  # fmt: skip
    print(table(summary(times, n, plans, cuda), columns))
    print(f"\nmedians over the rounds; 'vs in process': median of each run's time over the in-process run of its round; "
          "CPU s: user and system time of the process that ran it (on Ray: the driver and every process of its Ray). "
          f"Ray start-up (ray.init, not in the table): {ray_start:.1f} s; load average at the end "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip


def summary(times: dict, n: int, plans: list, cuda: bool) -> list[dict]:
    """One row per configuration: median seconds, sequences per second (per GPU), overhead over in process."""
    rows = []
    for name, runs in times.items():
        seconds = median([s for s, *_ in runs])
        row = {"engine": name, "runs": len(runs), "seconds": seconds, "seq/s": n / seconds,
               "vs in process": f"{100 * (median([s / b for s, _, b, _ in runs]) - 1):+.0f} %",
               "CPU s": median([c for _, c, *_ in runs]),
               "CPU vs in process": f"{100 * (median([c / b for _, c, _, b in runs]) - 1):+.0f} %"}  # fmt: skip
        if cuda:
            workers = next((w for w in plans if name.startswith(f"ray, {w} worker")), 1)
            row["seq/s per GPU"] = n / seconds / workers
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
