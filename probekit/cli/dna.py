"""``probekit dna``: probe a DNA-sequence model on a FASTA file and write one HTML report.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_dna_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--fasta", "x.fa", "--out", "r.html"])
>>> args.goal, args.max_edits, args.output
('flip', 3, 'margin:1')
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


from ..probe.chunks import file_digest
from ..report.plots import headline
from .common import (
    CLIError,
    _adapter,
    _check_numbers,
    _probe_settings,
    _run_probe,
    add_autocast_argument,
    add_model_arguments,
    add_probe_arguments,
    drop_partial,
    exit_code,
    load_model_from_args,
    log_autocast,
    log_not_probed,
    log_problems,
    parse_goal,
    parse_output,
    resolve_motifs,
)
from .engine import add_engine_arguments, engine_options, probe_on_engine, write_probe_outputs


def add_dna_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit dna``."""
    add_model_arguments(parser)
    parser.add_argument("--fasta", required=True, type=Path, help="sequences to probe")
    add_probe_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="HTML report to write")
    parser.add_argument("--table", type=Path, help="also write the per-position table as CSV")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    add_autocast_argument(parser)
    parser.add_argument("--layout", choices=("NCL", "NLC"), default="NCL", help="one-hot layout the model takes")
    parser.add_argument("--strands", choices=("forward", "both"), default="forward",
                        help="both: average forward and reverse-complement outputs")  # fmt: skip
    add_engine_arguments(parser)


def run_dna(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit dna``: probe a DNA model on a FASTA file."""
    from ..io import read_fasta

    _check_numbers(args)
    engine_options(args)
    goal = parse_goal(args.goal)
    parse_output(args.output)
    if not args.fasta.exists():
        raise CLIError(f"FASTA file not found: {args.fasta}")
    args.motifs = resolve_motifs(args.motifs, log)
    model = load_model_from_args(args, log=log)
    try:
        records = read_fasta(args.fasta)
    except ValueError as error:
        raise CLIError(str(error)) from None
    unreadable = records.loc[records["error"].notna(), "error"].tolist()
    log_problems(unreadable, "skipping", log)
    adapter = _adapter(model, args)
    settings = _probe_settings(args, file_digest(args.model), str(goal))
    if args.engine == "ray":
        report = probe_on_engine(records, args=args, settings=settings, log=log)
        write_probe_outputs(report, args, log)
        drop_partial(args.out, args)
    else:
        report = _run_probe(adapter, records, settings, args, args.out, log)
    log_outcome(report, unreadable, log)
    log_autocast(adapter, log)
    return exit_code(report, log)


def log_outcome(report, already_listed: list[str], log: Callable[[str], None]) -> None:
    """The records the model could not probe (those not ``already_listed``), then the :func:`headline`."""
    log_not_probed(report, already_listed, log)
    log(headline(report))
