"""``probekit dna``: probe a DNA-sequence model on a FASTA file, or on BED regions of a genome, and write one HTML report.

``--bed peaks.bed --genome ref.fa`` reads the regions' sequences from the genome
(:func:`probekit.regions.read_regions`: BED is 0-based half-open, strand ``-`` is
read as the reverse complement, bases beyond a contig are N); ``--length L``
resizes every region to ``L`` bases around its summit (narrowPeak) or centre.
With ``--engine ray`` the driver reads the BED lines only and each worker reads
its regions' sequences.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_dna_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--fasta", "x.fa", "--out", "r.html"])
>>> args.goal, args.max_edits, args.output
('flip', 3, 'margin:1')
>>> args = parser.parse_args(["--model", "m.pt", "--bed", "p.bed", "--genome", "g.fa", "--length", "200", "--out", "r.html"])
>>> str(args.bed), args.fasta, args.length
('p.bed', None, 200)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


from .._messages import one_line
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
from .engine import _PROBE_OPTIONS, add_engine_arguments, engine_options, probe_on_engine, run_on_engine, write_probe_outputs


def add_dna_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit dna``."""
    add_model_arguments(parser)
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--fasta", type=Path, help="sequences to probe")
    given.add_argument("--bed", type=Path,
                       help="regions to probe (BED or narrowPeak, plain or gzipped), read from --genome")  # fmt: skip
    parser.add_argument("--genome", type=Path, help="with --bed: the reference FASTA, plain or bgzipped")
    parser.add_argument("--length", type=int,
                        help="with --bed: resize every region to the model's input length, around its summit "
                             "(narrowPeak) or centre")  # fmt: skip
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
    """``probekit dna``: probe a DNA model on a FASTA file or on BED regions of a genome."""
    _check_numbers(args)
    engine_options(args)
    goal = parse_goal(args.goal)
    parse_output(args.output)
    _check_inputs(args)
    args.motifs = resolve_motifs(args.motifs, log)
    model = load_model_from_args(args, log=log)
    records = _records(args)
    unreadable = records.loc[records["error"].notna(), "error"].tolist()
    log_problems(unreadable, "skipping", log)
    adapter = _adapter(model, args)
    settings = _probe_settings(args, file_digest(args.model), str(goal))
    if args.engine == "ray":
        if args.bed is None:
            report = probe_on_engine(records, args=args, settings=settings, log=log)
        else:
            report = _regions_on_engine(args, settings, log)
        write_probe_outputs(report, args, log)
        drop_partial(args.out, args)
    else:
        report = _run_probe(adapter, records, settings, args, args.out, log)
    log_outcome(report, unreadable, log)
    log_autocast(adapter, log)
    return exit_code(report, log)


def _check_inputs(args) -> None:
    """``--fasta``, or ``--bed`` with ``--genome`` (and ``--length``): files there, flags that fit."""
    if args.bed is None:
        given = [flag for flag, value in (("--genome", args.genome), ("--length", args.length)) if value is not None]
        if given:
            raise CLIError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to --bed regions, not to --fasta")
        if not args.fasta.exists():
            raise CLIError(f"FASTA file not found: {args.fasta}")
        return
    if args.genome is None:
        raise CLIError("--bed needs --genome, the reference FASTA its regions are read from")
    if args.length is not None and args.length < 1:
        raise CLIError(f"--length must be at least 1, got {args.length}")
    for what, path in (("BED file", args.bed), ("genome FASTA", args.genome)):
        if not path.is_file():
            raise CLIError(f"{what} not found: {path}")


def _records(args):
    """The records to probe: the FASTA's, or the regions of ``--bed`` (coordinates only with ``--engine ray``)."""
    from ..io import read_fasta
    from ..regions import read_bed, read_regions

    try:
        if args.bed is None:
            return read_fasta(args.fasta)
        if args.engine == "ray":  # the workers read the sequences
            return read_bed(args.bed, length=args.length)
        return read_regions(args.bed, args.genome, length=args.length)
    except (ValueError, OSError) as error:
        raise CLIError(one_line(error)) from None


def _regions_on_engine(args, settings: dict, log: Callable[[str], None]):
    """The probe of ``--bed`` regions on the engine: the driver reads the BED lines, each worker the genome."""
    from ..probe.chunks import partial_dir

    options = {k: settings[k] for k in _PROBE_OPTIONS if k in settings}
    regions = {"genome": args.genome.resolve(), **({"length": args.length} if args.length is not None else {})}
    return run_on_engine("dna_probe", args.bed.resolve(), args=args, settings=settings, out_dir=partial_dir(args.out),
                         log=log, **regions, **options)  # fmt: skip


def log_outcome(report, already_listed: list[str], log: Callable[[str], None]) -> None:
    """The records the model could not probe (those not ``already_listed``), then the :func:`headline`."""
    log_not_probed(report, already_listed, log)
    log(headline(report))
