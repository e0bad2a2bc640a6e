"""The ``probekit`` command line: the top layer, one module per command, imported by nothing below it.

``probekit dna`` (:mod:`probekit.cli.dna`) probes a DNA-sequence model on a FASTA
file or BED regions of a genome and writes one self-contained HTML report (and
optionally the per-position table as CSV); ``probekit mol`` (:mod:`probekit.cli.mol`)
does the same for a molecule model on SMILES, CSV or SDF; ``probekit screen``
(:mod:`probekit.cli.screen`) scores a molecule library of any size into a table;
``probekit variants`` (:mod:`probekit.cli.variants`) scores the calls of a VCF on a
reference genome; ``probekit motifs`` (:mod:`probekit.cli.motifs`) finds what a
model learned across a set of sequences; ``probekit demo dna|mol|variants|motifs``
(:mod:`probekit.cli.demo`) runs the bundled demos. ``--engine ray`` runs a
command's shards on Ray (:mod:`probekit.cli.engine`). Records are probed in chunks
(:func:`probekit.probe.chunks.probe_in_chunks`); each finished chunk is saved
under ``<out>.partial/``, keyed by a hash of the settings and of the chunk's
records, so an interrupted scan resumes where it stopped.

Commands live in :data:`COMMANDS` (name -> help, argument builder, runner) and
demos in :data:`DEMOS` (name -> runner), so new ones plug in without touching
the parser code.

Examples
--------
>>> parser = build_parser()
>>> args = parser.parse_args(["dna", "--model", "m.pt", "--fasta", "x.fa", "--out", "r.html", "--goal", "below:0"])
>>> args.goal, args.max_edits, args.output
('below:0', 3, 'margin:1')

From a shell::

    probekit dna --model model.pt --arch mypackage.models:Net --fasta enhancers.fa --out report.html
    probekit demo dna --out demo/
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable

from .._warnings import ProbekitWarning
from ..adapters import ModelCallError
from ..probe.chunks import ChunksKept, merge_reports, probe_in_chunks
from .common import CLIError, one_line, parse_goal, parse_output
from .demo import DEMOS, add_demo_arguments, run_demo
from .dna import add_dna_arguments, run_dna
from .mol import add_mol_arguments, run_mol_cli
from .motifs import add_motifs_arguments, run_motifs
from .screen import add_screen_arguments, run_screen
from .variants import add_variants_arguments, run_variants

#: name -> (help, add_arguments(parser), run(args, log=print) -> exit code).
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "dna": ("probe a DNA-sequence model on a FASTA file", add_dna_arguments, run_dna),
    "mol": ("probe a molecule or feature model on SMILES, CSV or SDF", add_mol_arguments, run_mol_cli),
    "demo": ("run a bundled demo end to end", add_demo_arguments, run_demo),
    "variants": ("score VCF or table variants with a DNA-sequence model", add_variants_arguments, run_variants),
    "motifs": ("find the motifs a DNA model learned across a FASTA file", add_motifs_arguments, run_motifs),
    "screen": ("score a library of molecules with a model into a table", add_screen_arguments, run_screen),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``probekit`` argument parser, one subcommand per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="probekit", description="Find what a scientific model relies on: minimal edits, critical positions, baselines."
    )
    parser.add_argument("--version", action="version", version=f"probekit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv=None) -> int:
    """Entry point of the ``probekit`` command; returns 0 on success.

    Argument and file problems, a missing optional extra, and a model that fails for
    every record, print one line ``probekit: error: ...`` to stderr and exit with code 2. probekit's warnings
    print as ``probekit: warning: ...``. An interrupt (Ctrl-C) exits with code 130 and
    says where the finished chunks are kept when the command had saved any.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return args.run(args)
    except (CLIError, ModelCallError) as error:
        print(f"probekit: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except ImportError as error:
        if "pip install" not in str(error):  # not a missing extra, which probekit's own messages name: a real fault
            raise
        print(f"probekit: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except ChunksKept as stop:
        print(
            f"probekit: interrupted; {stop.n} finished chunk{'s' if stop.n != 1 else ''} kept in {stop.folder}, "
            "and the next run with the same settings resumes from them",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        print("probekit: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _one_line_warnings(show: Callable) -> Callable:
    """A ``warnings.showwarning`` that prints probekit's warnings as one line and leaves others to ``show``."""

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, ProbekitWarning):
            show(message, category, filename, lineno, file, line)
            return
        print(f"probekit: warning: {one_line(message)}", file=sys.stderr if file is None else file)

    return show_warning


__all__ = [
    "main", "build_parser", "COMMANDS", "DEMOS", "CLIError", "ChunksKept", "probe_in_chunks", "merge_reports",
    "parse_output", "parse_goal",
]  # fmt: skip
