"""``--engine local|ray``: where a command runs its shards (see :mod:`probekit.scale`).

With ``--engine ray`` a command hands its records to :func:`probekit.scale.run`: each
worker loads the model file itself (never a pickled model), the shards are saved as
Parquet next to the output and reused by a rerun, and a summary line says how many
shards were done, reused, retried and failed.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_engine_arguments(parser)
>>> args = parser.parse_args(["--engine", "ray", "--workers", "4"])
>>> engine_options(args)
{'engine': 'ray', 'address': None, 'workers': 4, 'gpus_per_worker': None}
"""

from __future__ import annotations

import argparse
import functools
from typing import Callable

from .._messages import one_line
from .common import CLIError, parse_arch_kwargs, parse_output

# The probe settings of a command that are options of probekit.probe.
_PROBE_OPTIONS = ("goal", "max_edits", "baseline_draws", "method", "motifs", "motif_query", "seed")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--ray-address``, ``--workers`` and ``--gpus-per-worker``."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: in this process (default); ray: shards on Ray workers, each loading the model once "
                             "(probekit[scale])")  # fmt: skip
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="Ray cluster to join (e.g. auto, or ray://head:10001 after `ray start --head`); default: "
                             "a local Ray on this machine")  # fmt: skip
    parser.add_argument("--workers", type=int, help="Ray workers (default: one per GPU, else one per CPU)")
    parser.add_argument("--gpus-per-worker", type=float,
                        help="GPUs per Ray worker (default 1 when the cluster has GPUs, else 0)")  # fmt: skip


def engine_options(args) -> dict:
    """The :func:`probekit.scale.run` options of the engine flags; flags that need ``--engine ray`` without it raise."""
    given = [flag for flag, value in (("--ray-address", args.ray_address), ("--workers", args.workers),
                                      ("--gpus-per-worker", args.gpus_per_worker)) if value is not None]  # fmt: skip
    if args.engine == "local" and given:
        raise CLIError(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to --engine ray")
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be at least 1, got {args.workers}")
    if args.gpus_per_worker is not None and args.gpus_per_worker < 0:
        raise CLIError(f"--gpus-per-worker must be at least 0, got {args.gpus_per_worker}")
    return {"engine": args.engine, "address": args.ray_address, "workers": args.workers, "gpus_per_worker": args.gpus_per_worker}


def model_factory(args):
    """A picklable factory of the command's adapter: each worker loads ``--model`` itself."""
    from ..scale import load_adapter

    return functools.partial(
        load_adapter, args.model.resolve(), output=parse_output(args.output), arch=args.arch,
        arch_kwargs=parse_arch_kwargs(getattr(args, "arch_kwargs", None)), trust=args.trust,
        layout=getattr(args, "layout", "NCL"), strands=getattr(args, "strands", "forward"),
        batch_size=args.batch_size or "auto", device=args.device, autocast=getattr(args, "autocast", None),
    )  # fmt: skip


def run_on_engine(task: str, inputs, *, args, settings: dict, out_dir, factory: Callable | None = None,
                  log: Callable[[str], None] = print, **options):  # fmt: skip
    """:func:`probekit.scale.run` of a command: its model factory, engine flags, ``--chunk-size`` shards and progress.

    ``factory`` builds the adapter on each worker (default :func:`model_factory`, a DNA
    model). Returns the merged result. A missing Ray, and shards that all failed,
    raise :class:`CLIError`.
    """
    from ..scale import run

    factory = model_factory(args) if factory is None else factory
    try:
        done = run(task, inputs, adapter_factory=factory, out_dir=out_dir, shard_size=args.chunk_size,
                   settings=settings, progress=not args.no_progress, log=log, **engine_options(args), **options)  # fmt: skip
    except (ImportError, RuntimeError) as error:
        raise CLIError(one_line(error)) from None
    return done.result


def probe_on_engine(records, *, args, settings: dict, log: Callable[[str], None] = print):
    """The command's probe of ``records`` through :func:`run_on_engine`, shards under ``<out>.partial/``."""
    from ..probe.chunks import partial_dir

    options = {k: settings[k] for k in _PROBE_OPTIONS if k in settings}
    return run_on_engine("dna_probe", records, args=args, settings=settings, out_dir=partial_dir(args.out), log=log, **options)


def write_probe_outputs(report, args, log: Callable[[str], None]) -> None:
    """The HTML report of ``args.out`` and, with ``--table``, its per-position CSV."""
    report.to_html(args.out, title=f"probekit: {args.fasta or args.bed}", max_inputs=args.max_figures)
    log(f"wrote {args.out} ({len(report)} sequences)")
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        report.to_frame().to_csv(args.table, index=False)
        log(f"wrote {args.table}")


__all__ = ["add_engine_arguments", "engine_options", "model_factory", "run_on_engine", "probe_on_engine", "write_probe_outputs"]
