"""What every ``probekit`` command shares: argument parsing, model loading, chunked runs, outputs.

Argument and file problems raise :class:`CLIError`, which :func:`probekit.cli.main`
prints as one line with exit code 2.

Examples
--------
>>> parse_output("margin:1").name
'margin[1]'
>>> str(parse_goal("below:0"))
'below:0.0'
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from ..probe.chunks import partial_dir, probe_in_chunks

OUTPUT_KINDS = ("logit", "prob", "margin", "value")
METHODS = ("auto", "exhaustive", "greedy", "beam", "gradient")


class CLIError(Exception):
    """A problem with the command's arguments or files; printed as one line, exit code 2."""


# ------------------------------------------------------------------ parsing helpers
def parse_output(spec: str):
    """Turn ``"logit:1"``, ``"prob:1"``, ``"margin:1"``, ``"value:0"`` or ``"1"`` into an Output.

    Examples
    --------
    >>> parse_output("prob:1").name
    'prob[1]'
    >>> parse_output("0").name
    'logit[0]'
    """
    from .. import outputs

    kind, _, index = str(spec).partition(":")
    if not index and kind.lstrip("-").isdigit():
        return outputs.logit(int(kind))
    if kind not in OUTPUT_KINDS or not index.isdigit():
        raise CLIError(f"bad --output {spec!r}: use logit:I, prob:I, margin:I, value:I or a class index I")
    return getattr(outputs, kind)(int(index))


def parse_goal(spec: str):
    """Parse a goal string (``flip``, ``below:T``, ``above:T``, ``decrease:D``, ``increase:D``, ``target:C``)."""
    from ..goals import parse

    try:
        return parse(spec)
    except ValueError as error:
        raise CLIError(f"bad --goal {spec!r}: {error}") from None


def probe_resumably(adapter, records: pd.DataFrame, *, settings: dict, args, out: Path,
                    log: Callable[[str], None] = print, **chunk_options):
    """Probe a command's records in chunks saved under ``<out>.partial/``; returns the merged report.

    :func:`probe_in_chunks` with the command's ``--chunk-size`` and ``--no-progress``;
    ``chunk_options`` go to it too (``probe_chunk``, ``key_columns``, ``unit``). Says how
    many chunks an earlier run left to reuse. Call :func:`drop_partial` once the outputs
    are written.
    """
    partial = partial_dir(out)
    try:
        report, reused = probe_in_chunks(
            adapter, records, settings=settings, partial_dir=partial, chunk_size=args.chunk_size,
            progress=not args.no_progress, log=log, **chunk_options,
        )  # fmt: skip
    except ImportError as error:
        raise CLIError(str(error)) from None
    if reused:
        log(f"resumed: reused {reused} of {report.params.get('chunks', 1)} chunks from {partial}")
    return report


def drop_partial(out: Path, args) -> None:
    """Remove ``<out>.partial/`` after a successful run, unless ``--keep-partial``."""
    import shutil

    if not getattr(args, "keep_partial", False):
        shutil.rmtree(partial_dir(out), ignore_errors=True)


def add_autocast_argument(parser: argparse.ArgumentParser) -> None:
    """``--autocast bf16|fp16``: mixed precision for the model's forward passes."""
    parser.add_argument(
        "--autocast", choices=("bf16", "fp16"),
        help="run the model in mixed precision (faster on GPUs); the first batch is compared with full precision "
             "and the difference is reported",
    )  # fmt: skip


def log_autocast(adapter, log: Callable[[str], None]) -> None:
    """Say how far mixed precision moved the model's outputs on the first batch, when it was used."""
    if adapter.autocast is None:
        return
    if adapter.autocast_error is None:
        log(f"autocast {adapter.autocast}: no batch was run")
        return
    log(
        f"autocast {adapter.autocast}: outputs within {adapter.autocast_error:.2g} of full precision on the first "
        "batch (relative to their largest value)"
    )


def add_probe_arguments(parser: argparse.ArgumentParser, *, output: str | None = "margin:1", goal: str | None = "flip",
                        default_note: str = "", records: str = "sequences") -> None:
    """The probe settings shared by ``probekit dna`` and ``probekit demo``.

    A default of None leaves the choice to the command (each demo has its own); ``default_note``
    then says what it is in the help. ``records`` names what a chunk holds, in the help.
    """
    shown = lambda default: default_note if default is None else f"default {default}"  # noqa: E731
    parser.add_argument("--output", default=output,
                        help=f"scalar to probe: logit:I, prob:I, margin:I, value:I or a class index ({shown(output)})")  # fmt: skip
    parser.add_argument("--goal", default=goal,
                        help=f"flip, below:T, above:T, decrease:D, increase:D or target:C ({shown(goal)})")  # fmt: skip
    parser.add_argument("--max-edits", type=int, default=3, help="largest substitution set searched (default 3)")
    parser.add_argument("--method", choices=METHODS, default="auto", help="minimal-substitution search (default auto)")
    parser.add_argument("--baseline-draws", type=int, default=200, help="random edit sets per sequence (default 200)")
    parser.add_argument("--motifs", action="store_true", help="annotate regions with JASPAR motifs (probekit[motifs])")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    add_chunk_arguments(parser, records)
    parser.add_argument("--max-figures", type=int, default=20,
                        help="sequences that get their own figures in the report, strongest first (default 20)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_chunk_arguments(parser: argparse.ArgumentParser, records: str = "sequences") -> None:
    """``--chunk-size`` and ``--keep-partial``: how a command saves its finished work under ``<out>.partial/``."""
    parser.add_argument("--chunk-size", type=int, default=16,
                        help=f"{records} per saved chunk; an interrupted run resumes from the saved chunks (default 16)")  # fmt: skip
    parser.add_argument("--keep-partial", action="store_true", help="keep <out>.partial/ after a successful run")


def _check_numbers(args) -> None:
    if args.max_figures < 0:
        raise CLIError(f"--max-figures must be at least 0, got {args.max_figures}")
    for name in ("max_edits", "baseline_draws", "chunk_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")


def _load_model(path: Path, arch, trust: bool):
    from ..loading import load_model

    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    try:
        return load_model(path, arch=arch, trust=trust)
    except Exception as error:  # noqa: BLE001 - any failure to load is one clear message
        message = str(error) or type(error).__name__  # every line: a state_dict's mismatches come after the first
        raise CLIError(f"cannot load model {path}: {message}") from None


def _adapter(model, args):
    from ..adapters import SequenceModel

    try:
        return SequenceModel(
            model, output=parse_output(args.output), layout=getattr(args, "layout", "NCL"),
            batch_size=args.batch_size or "auto", device=args.device, strands=getattr(args, "strands", "forward"),
            autocast=getattr(args, "autocast", None),
        )  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise CLIError(str(error)) from None


def _probe_settings(args, model_digest: str, goal) -> dict:
    return {
        "model": model_digest,
        "arch": getattr(args, "arch", None),
        "output": args.output,
        "layout": getattr(args, "layout", "NCL"),
        "strands": getattr(args, "strands", "forward"),
        "goal": goal,
        "max_edits": args.max_edits,
        "baseline_draws": args.baseline_draws,
        "method": args.method,
        "motifs": bool(args.motifs),
        "seed": args.seed,
        "autocast": getattr(args, "autocast", None),
    }


def _run_probe(adapter, records, settings, args, out: Path, log):
    """Chunked probe, then the HTML report (and CSV table); returns the report."""
    started = time.perf_counter()
    report = probe_resumably(adapter, records, settings=settings, args=args, out=out, log=log)
    report.to_html(out, title=f"probekit: {getattr(args, 'fasta', None) or 'demo'}", max_inputs=args.max_figures)
    log(f"wrote {out} ({len(report)} sequences, {time.perf_counter() - started:.1f} s)")
    table = getattr(args, "table", None)
    if table is not None:
        table.parent.mkdir(parents=True, exist_ok=True)
        report.to_frame().to_csv(table, index=False)
        log(f"wrote {table}")
    drop_partial(out, args)
    return report
