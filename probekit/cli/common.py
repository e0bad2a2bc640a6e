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
import json
import re
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from .._messages import one_line
from ..probe.chunks import ChunksKept, partial_dir, probe_in_chunks

OUTPUT_KINDS = ("logit", "prob", "margin", "value")
METHODS = ("auto", "exhaustive", "greedy", "beam", "gradient")
METHOD_HELP = (
    "minimal-substitution search (default auto). auto enumerates every edit set while that is cheap, then searches "
    "larger sets by beam, and proves the set it finds minimal whenever it is at most one edit larger than the sets "
    "it enumerated, which covers most answers many times faster than exhaustive. exhaustive enumerates every set up "
    "to --max-edits (the count grows as (3 x length)^k): worth it only when the summary has answers auto could not "
    "prove minimal and you need that proof. greedy, beam and gradient are quicker heuristics that prove nothing"
)


class CLIError(Exception):
    """A problem with the command's arguments or files; printed as one line, exit code 2."""


# Lines of an error kept on its one line, and characters of each line.
# The library's words for its options, and the flags that say the same on the command line.
_CLI_WORDS = (
    (re.compile(r"arch='module:Class'"), "--arch module:Class"),
    (re.compile(r"\barch=('[^']*')"), r"--arch \1"),
    (re.compile(r"\barch '([^']*)'"), r"--arch \1"),
    (re.compile(r"\barch_kwargs\b"), "--arch-kwargs"),
    (re.compile(r"\btrust=True\b"), "--trust"),
)


def cli_words(message: str) -> str:
    """``message`` with the library's option names (``arch='module:Class'``, ``trust=True``) as command-line flags.

    Examples
    --------
    >>> cli_words("name its class with arch='module:Class', or pass trust=True")
    'name its class with --arch module:Class, or pass --trust'
    >>> cli_words("cannot import 'mymodel' for arch 'mymodel:Net'")
    "cannot import 'mymodel' for --arch mymodel:Net"
    """
    for pattern, flag in _CLI_WORDS:
        message = pattern.sub(flag, message)
    return message


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



def output_list(text: str) -> list:
    """Turn ``"logit:0,prob:1"`` into Outputs (the value of an ``--extra-outputs`` flag).

    Examples
    --------
    >>> [o.name for o in output_list("logit:0, prob:1")]
    ['logit[0]', 'prob[1]']
    """
    return [parse_output(part.strip()) for part in text.split(",") if part.strip()]

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

    A run that stops before any chunk is saved removes ``<out>.partial/`` again. A
    missing optional dependency or a model that fails for every record (such as an
    output with the wrong shape) raises :class:`CLIError`, which also says which saved
    chunks are kept.
    """
    from ..adapters import ModelCallError

    partial = partial_dir(out)
    try:
        report, reused = probe_in_chunks(
            adapter, records, settings=settings, partial_dir=partial, chunk_size=args.chunk_size,
            progress=not args.no_progress, log=log, **chunk_options,
        )  # fmt: skip
    except ChunksKept:
        raise
    except (ImportError, ModelCallError) as error:
        raise CLIError(one_line(error) + _kept(partial)) from None
    except BaseException:
        _kept(partial)
        raise
    if reused:
        log(f"resumed: reused {reused} of {report.params.get('chunks', 1)} chunks from {partial}")
    return report


def _kept(partial: Path) -> str:
    """Remove ``partial`` when it holds no saved chunk; else say what it keeps (a clause to end a message)."""
    import shutil

    n = len(list(partial.glob("chunk-*.pt"))) if partial.is_dir() else 0
    if n == 0:
        shutil.rmtree(partial, ignore_errors=True)
        return ""
    return f"; {n} finished chunk{'s' if n != 1 else ''} kept in {partial}, and a rerun with the same settings resumes from them"


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
                        default_note: str = "", records: str = "sequences", motifs: bool | None = False) -> None:
    """The probe settings shared by ``probekit dna`` and ``probekit demo``.

    A default of None leaves the choice to the command (each demo has its own); ``default_note``
    then says what it is in the help. ``records`` names what a chunk holds, in the help.
    ``motifs=None`` adds ``--no-motifs`` too and leaves ``args.motifs`` None unless one of
    the two is given (see :func:`resolve_motifs`).
    """
    shown = lambda default: default_note if default is None else f"default {default}"  # noqa: E731
    parser.add_argument("--output", default=output,
                        help=f"scalar to probe: logit:I, prob:I, margin:I, value:I or a class index ({shown(output)})")  # fmt: skip
    parser.add_argument("--goal", default=goal,
                        help=f"flip, below:T, above:T, decrease:D, increase:D or target:C ({shown(goal)})")  # fmt: skip
    parser.add_argument("--max-edits", type=int, default=3, help="largest substitution set searched (default 3)")
    parser.add_argument("--method", choices=METHODS, default="auto", help=METHOD_HELP)
    parser.add_argument("--baseline-draws", type=int, default=200, help="random edit sets per sequence (default 200)")
    if motifs is None:
        parser.add_argument("--motifs", action="store_true", default=None,
                            help="annotate regions with JASPAR motifs (probekit[motifs]); on by default for the DNA "
                                 "demo, which runs without them, saying so, when pyjaspar is missing")  # fmt: skip
        parser.add_argument("--no-motifs", dest="motifs", action="store_false", help="no JASPAR motif annotation")
    else:
        parser.add_argument("--motifs", action="store_true", help="annotate regions with JASPAR motifs (probekit[motifs])")
    parser.add_argument("--motif-query", type=_names,
                        help="factors, matrix ids or JASPAR families you expect, comma-separated (e.g. CTCF,GATA): "
                             "each region also names its best match among them")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    add_chunk_arguments(parser, records)
    parser.add_argument("--max-figures", type=int, default=20,
                        help="sequences that get their own figures in the report, strongest first (default 20)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _names(text: str) -> list[str]:
    """A comma-separated list of names, blanks dropped: ``"CTCF, GATA"`` -> ``["CTCF", "GATA"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_chunk_arguments(parser: argparse.ArgumentParser, records: str = "sequences") -> None:
    """``--chunk-size`` and ``--keep-partial``: how a command saves its finished work under ``<out>.partial/``."""
    parser.add_argument("--chunk-size", type=int, default=16,
                        help=f"{records} per saved chunk; an interrupted run resumes from the saved chunks (default 16)")  # fmt: skip
    parser.add_argument("--keep-partial", action="store_true", help="keep <out>.partial/ after a successful run")


def resolve_motifs(requested, log: Callable[[str], None] = print) -> bool:
    """Whether to annotate motifs: ``requested`` True, False, or None for on-if-available.

    JASPAR's matrices are read here, once per process, so a missing pyjaspar shows
    before any work: a ``--motifs`` asked for raises :class:`CLIError`; the default
    (None) says so in one line and goes on without motifs.
    """
    if requested is False:
        return False
    from ..motifs import jaspar_motifs

    try:
        jaspar_motifs()
    except ImportError as error:
        if requested:
            raise CLIError(f"--motifs: {one_line(error)}") from None
        log(f"motif annotation skipped: {one_line(error)}; --no-motifs silences this")
        return False
    return True


def _check_numbers(args) -> None:
    if args.max_figures < 0:
        raise CLIError(f"--max-figures must be at least 0, got {args.max_figures}")
    for name in ("max_edits", "baseline_draws", "chunk_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--arch``, ``--arch-kwargs`` and ``--trust``: the model file and how to build it."""
    parser.add_argument("--model", required=True, type=Path, help="TorchScript file or state_dict (.pt)")
    parser.add_argument("--arch", metavar="MODULE:CLASS",
                        help="class of a state_dict's model, as module:Class; the module is imported from the current "
                             "folder first, then from the installed packages (not needed for TorchScript)")  # fmt: skip
    parser.add_argument("--arch-kwargs", metavar="JSON",
                        help="constructor arguments of the --arch class, as a JSON object such as '{\"channels\": 32}'")  # fmt: skip
    parser.add_argument("--trust", action="store_true", help="allow unpickling a whole model (runs code from the file)")


def parse_arch_kwargs(text: str | None) -> dict | None:
    """The ``--arch-kwargs`` JSON object as a dict (None when not given).

    Examples
    --------
    >>> parse_arch_kwargs('{"channels": 32, "dropout": 0.1}')
    {'channels': 32, 'dropout': 0.1}
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CLIError(
            f"bad --arch-kwargs {text!r}: not JSON ({error}); write an object such as '{{\"channels\": 32}}' "
            "(keys in double quotes)"
        ) from None
    if not isinstance(value, dict):
        raise CLIError(
            f"bad --arch-kwargs {text!r}: a JSON {type(value).__name__} where an object of constructor arguments is "
            "needed, such as '{\"channels\": 32}'"
        )
    return value


def load_model_from_args(args, *, log: Callable[[str], None] = print):
    """The model named by a command's ``--model``, ``--arch``, ``--arch-kwargs`` and ``--trust``.

    A TorchScript file carries its own architecture: a ``--arch`` given with one is
    not used, and the command says so.
    """
    arch_kwargs = parse_arch_kwargs(getattr(args, "arch_kwargs", None))
    if arch_kwargs is not None and args.arch is None:
        raise CLIError("--arch-kwargs needs --arch: they are the arguments of the --arch class")
    return _load_model(args.model, args.arch, args.trust, arch_kwargs=arch_kwargs, log=log)


def _load_model(path: Path, arch, trust: bool, *, arch_kwargs: dict | None = None, log: Callable[[str], None] = print):
    from ..loading import is_torchscript, load_model

    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    if arch is not None and is_torchscript(path):
        log(f"note: {path} is a TorchScript file, which carries its own architecture; --arch {arch} was not needed "
            "and is not used")  # fmt: skip
        arch, arch_kwargs = None, None
    try:
        return load_model(path, arch=arch, trust=trust, arch_kwargs=arch_kwargs)
    except Exception as error:  # noqa: BLE001 - any failure to load is one clear message
        raise CLIError(f"cannot load model {path}: {cli_words(one_line(error) or type(error).__name__)}") from None


# Problems of single records printed one per line before "... and N more".
MAX_LISTED = 10


def log_problems(messages: list[str], verb: str, log: Callable[[str], None]) -> None:
    """One line per record's problem, ``"verb: message"``, at most :data:`MAX_LISTED` of them."""
    for message in messages[:MAX_LISTED]:
        log(f"{verb}: {one_line(message)}")
    if len(messages) > MAX_LISTED:
        log(f"{verb}: ... and {len(messages) - MAX_LISTED} more (see the report)")


def log_not_probed(report, already_listed: list[str], log: Callable[[str], None]) -> None:
    """``not probed: ...`` for each record of ``report`` with an error, except those ``already_listed``."""
    errors = report.summary()["error"]
    listed = set(already_listed)
    log_problems([e for e in errors[errors.notna()] if e not in listed], "not probed", log)


def exit_code(report, log: Callable[[str], None]) -> int:
    """0 when at least one record was probed; 1, saying so, when every record failed (the report is still written)."""
    summary = report.summary()
    if len(summary) and summary["error"].notna().all():
        log(f"no record could be probed: all {len(summary)} failed (see the messages above and the report)")
        return 1
    return 0


def _adapter(model, args):
    from ..adapters import SequenceModel

    try:
        return SequenceModel(
            model, output=parse_output(args.output), layout=getattr(args, "layout", "NCL"),
            batch_size=args.batch_size or "auto", device=args.device, strands=getattr(args, "strands", "forward"),
            autocast=getattr(args, "autocast", None),
        )  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise CLIError(one_line(error)) from None


def _probe_settings(args, model_digest: str, goal) -> dict:
    settings = {
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
    if getattr(args, "motif_query", None):  # only when given, as arch_kwargs below
        if not args.motifs:
            raise CLIError("--motif-query looks among the JASPAR matches of --motifs: give --motifs too")
        settings["motif_query"] = list(args.motif_query)
    arch_kwargs = parse_arch_kwargs(getattr(args, "arch_kwargs", None))
    if arch_kwargs:  # only when given, so runs without it keep the keys of their saved chunks
        settings["arch_kwargs"] = arch_kwargs
    return settings


def _run_probe(adapter, records, settings, args, out: Path, log):
    """Chunked probe, then the HTML report (and CSV table); returns the report."""
    started = time.perf_counter()
    report = probe_resumably(adapter, records, settings=settings, args=args, out=out, log=log)
    source = getattr(args, "fasta", None) or getattr(args, "bed", None) or "demo"
    report.to_html(out, title=f"probekit: {source}", max_inputs=args.max_figures)
    log(f"wrote {out} ({len(report)} sequences, {time.perf_counter() - started:.1f} s)")
    table = getattr(args, "table", None)
    if table is not None:
        table.parent.mkdir(parents=True, exist_ok=True)
        report.to_frame().to_csv(table, index=False)
        log(f"wrote {table}")
    drop_partial(out, args)
    return report
