"""The ``probekit`` command line.

``probekit dna`` probes a DNA-sequence model on a FASTA file and writes one
self-contained HTML report (and optionally the per-position table as CSV);
``probekit mol`` does the same for a molecule model on SMILES, CSV or SDF.
Both probe their records in chunks (:func:`probe_in_chunks`); each finished
chunk is saved under ``<out>.partial/``, keyed by a hash of the settings and of
the chunk's records, so an interrupted scan resumes where it stopped.
``probekit demo dna`` runs the same pipeline on the bundled demo model and
reports how often the planted motif comes out as the top critical region.

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
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd

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
    from . import outputs

    kind, _, index = str(spec).partition(":")
    if not index and kind.lstrip("-").isdigit():
        return outputs.logit(int(kind))
    if kind not in OUTPUT_KINDS or not index.isdigit():
        raise CLIError(f"bad --output {spec!r}: use logit:I, prob:I, margin:I, value:I or a class index I")
    return getattr(outputs, kind)(int(index))


def parse_goal(spec: str):
    """Parse a goal string (``flip``, ``below:T``, ``above:T``, ``decrease:D``, ``increase:D``, ``target:C``)."""
    from .goals import parse

    try:
        return parse(spec)
    except ValueError as error:
        raise CLIError(f"bad --goal {spec!r}: {error}") from None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------- chunked probing
class ChunksKept(KeyboardInterrupt):
    """An interrupt that came after some chunks were saved: ``n`` chunks are in ``folder``."""

    def __init__(self, folder: Path, n: int):
        super().__init__(f"finished chunks kept in {folder}: {n}")
        self.folder, self.n = folder, n


def probe_in_chunks(
    adapter,
    records: pd.DataFrame,
    *,
    settings: dict,
    partial_dir: Path,
    chunk_size: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = print,
    probe_chunk: Callable | None = None,
    key_columns: tuple[str, ...] = ("id", "sequence"),
    unit: str = "seq",
):
    """Probe ``records`` chunk by chunk, saving each chunk and reusing those already saved.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    records : pandas.DataFrame
        One row per record, with the ``key_columns`` (by default ``id`` and
        ``sequence``, as from :func:`probekit.read_fasta`).
    settings : dict
        Keyword arguments of the probe plus anything that identifies the model
        (file digest, output, strands, featurizer); their hash, with each chunk's
        ``key_columns``, keys the saved chunks. Device and batch size are left out:
        they do not change the results.
    partial_dir : Path
        Where finished chunks are saved (``chunk-00000-<hash>.pt``).
    chunk_size : int
        Records per chunk.
    probe_chunk : callable, optional
        ``probe_chunk(part) -> SensitivityReport`` for one chunk of records (index
        reset). Default: :func:`probekit.probe` on ``adapter`` with the keys of
        ``settings`` it takes.
    key_columns : tuple of str
        Columns of ``records`` that say what each record is.
    unit : str
        Unit of the progress bar.

    Returns
    -------
    report : SensitivityReport
        All chunks merged (:func:`merge_reports`), in record order.
    reused : int
        Chunks read back from ``partial_dir`` instead of recomputed.

    Raises
    ------
    ChunksKept
        On an interrupt after at least one chunk was saved or reused (a plain
        ``KeyboardInterrupt`` before that).

    Examples
    --------
    >>> import tempfile
    >>> from probekit import SequenceModel, sequence_frame
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> records = sequence_frame(["ACGTACGTAC", "TTGACCATGA", "GGGTACCATT"])
    >>> settings = {"goal": "flip", "max_edits": 1, "baseline_draws": 10}
    >>> folder = Path(tempfile.mkdtemp())
    >>> report, reused = probe_in_chunks(adapter, records, settings=settings, partial_dir=folder, chunk_size=2, progress=False)
    >>> again, reused = probe_in_chunks(adapter, records, settings=settings, partial_dir=folder, chunk_size=2, progress=False)
    >>> report.ids, reused, report.to_frame().equals(again.to_frame())
    (['seq0', 'seq1', 'seq2'], 2, True)
    """
    from tqdm.auto import tqdm

    from .report.sensitivity import SensitivityReport

    if probe_chunk is None:
        probe_chunk = _probe_with(adapter, settings)
    key = _hash({**settings, "chunk_size": chunk_size})
    partial_dir.mkdir(parents=True, exist_ok=True)
    (partial_dir / "settings.json").write_text(json.dumps({**settings, "chunk_size": chunk_size, "key": key}, indent=1, default=str))
    chunks, reused = [], 0
    bar = tqdm(total=len(records), desc="probing", unit=unit, disable=not progress)
    try:
        for number, start in enumerate(range(0, len(records), chunk_size)):
            part = records.iloc[start : start + chunk_size]
            chunk_key = _hash([key] + [part[column].tolist() for column in key_columns])
            path = partial_dir / f"chunk-{number:05d}-{chunk_key}.pt"
            report = None
            if path.exists():
                try:
                    report = SensitivityReport.load(path)
                    reused += 1
                except Exception as error:  # noqa: BLE001 - a damaged chunk is recomputed
                    log(f"recomputing damaged chunk {path.name}: {error}")
            if report is None:
                report = _probe_chunk(probe_chunk, part)
                tmp = path.with_suffix(".tmp")
                report.save(tmp)
                tmp.replace(path)  # atomic: a chunk file is either whole or absent
            chunks.append(report)
            bar.update(len(part))
    except KeyboardInterrupt:
        if chunks:
            raise ChunksKept(partial_dir, len(chunks)) from None
        raise
    finally:
        bar.close()
    return merge_reports(chunks), reused


_PROBE_KEYS = ("goal", "max_edits", "baseline_draws", "method", "motifs", "seed")


def _probe_with(adapter, settings: dict) -> Callable:
    """:func:`probekit.probe` of one chunk with the keys of ``settings`` it takes."""
    from .probe import probe

    kwargs = {k: v for k, v in settings.items() if k in _PROBE_KEYS}
    return lambda part: probe(adapter, part, progress=False, **kwargs)


def _probe_chunk(probe_chunk: Callable, part: pd.DataFrame):
    return probe_chunk(part.reset_index(drop=True))


def merge_reports(reports: list):
    """Join reports of disjoint inputs into one (tables concatenated in order).

    A report class with a ``merged_tables(tables) -> tables`` class method gets
    the concatenated tables to recompute those that summarise the whole set
    (such as a ranking across inputs).

    Examples
    --------
    >>> import pandas as pd
    >>> from probekit.report.sensitivity import SensitivityReport
    >>> one = lambda i: SensitivityReport("dna", {"frame": pd.DataFrame({"id": [i], "rank": [1], "critical": [True],
    ...     "importance": [1.0]}), "summary": pd.DataFrame({"id": [i], "error": [None]})}, {"n_inputs": 1})
    >>> merge_reports([one("a"), one("b")]).ids
    ['a', 'b']
    """
    if not reports:
        raise ValueError("no reports to merge")
    if len(reports) == 1:
        return reports[0]
    names = []
    for report in reports:
        names += [n for n in report.table_names if n not in names]
    tables = {}
    for name in names:
        parts = [r.table(name) for r in reports if name in r.table_names]
        nonempty = [p for p in parts if not p.empty]
        tables[name] = pd.concat(nonempty, ignore_index=True) if nonempty else parts[0]
    report_class = type(reports[0])
    merged_tables = getattr(report_class, "merged_tables", None)
    if merged_tables is not None:
        tables = merged_tables(tables)
    params = reports[0].params
    for field in ("n_inputs", "n_errors", "seconds"):
        if all(field in r.params for r in reports):
            params[field] = sum(r.params[field] for r in reports)
    params["chunks"] = len(reports)
    return report_class(reports[0].kind, tables, params)


def partial_dir(out: Path) -> Path:
    """Where the chunks of the report ``out`` are saved: ``<out>.partial/`` next to it."""
    return out.with_name(out.name + ".partial")


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


# ---------------------------------------------------------------------- dna command
def add_dna_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit dna``."""
    parser.add_argument("--model", required=True, type=Path, help="TorchScript file or state_dict (.pt)")
    parser.add_argument("--arch", help="architecture of a state_dict, as module:Class")
    parser.add_argument("--trust", action="store_true", help="allow unpickling a whole model (runs code from the file)")
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
    from .loading import load_model

    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    try:
        return load_model(path, arch=arch, trust=trust)
    except Exception as error:  # noqa: BLE001 - any failure to load is one clear message
        message = str(error) or type(error).__name__  # every line: a state_dict's mismatches come after the first
        raise CLIError(f"cannot load model {path}: {message}") from None


def _adapter(model, args):
    from .adapters import SequenceModel

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


def run_dna(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit dna``: probe a DNA model on a FASTA file."""
    from .io import read_fasta

    _check_numbers(args)
    goal = parse_goal(args.goal)
    parse_output(args.output)
    if not args.fasta.exists():
        raise CLIError(f"FASTA file not found: {args.fasta}")
    model = _load_model(args.model, args.arch, args.trust)
    try:
        records = read_fasta(args.fasta)
    except ValueError as error:
        raise CLIError(str(error)) from None
    bad = records["error"].notna()
    for message in records.loc[bad, "error"]:
        log(f"skipping: {message}")
    adapter = _adapter(model, args)
    settings = _probe_settings(args, _file_digest(args.model), str(goal))
    _run_probe(adapter, records, settings, args, args.out, log)
    log_autocast(adapter, log)
    return 0


# --------------------------------------------------------------------- demo command
def run_demo_dna(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo dna``: probe the bundled demo model and check it finds the planted motifs."""
    from .datasets import dna_demo_paths, load_dna_demo, planted_motif_recovery

    _check_numbers(args)
    args.output = args.output or "margin:1"
    args.goal = args.goal or "flip"
    goal = parse_goal(args.goal)
    try:
        model, heldout = load_dna_demo()
    except FileNotFoundError as error:
        raise CLIError(str(error)) from None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = _adapter(model, args)
    if args.limit is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be at least 1, got {args.limit}")
        heldout = heldout.head(args.limit)
    records = heldout[["id", "sequence"]].assign(error=None)
    settings = _probe_settings(args, _file_digest(dna_demo_paths()["model"]), str(goal))
    report = _run_probe(adapter, records, settings, args, out_dir / "dna_demo_report.html", log)
    log_autocast(adapter, log)
    report.to_frame().to_csv(out_dir / "dna_demo_positions.csv", index=False)
    report.regions().to_csv(out_dir / "dna_demo_regions.csv", index=False)
    recovery = planted_motif_recovery(report.regions(), heldout)
    recovery.to_csv(out_dir / "dna_demo_recovery.csv", index=False)
    log(recovery_line(recovery))
    return 0


def recovery_line(recovery: pd.DataFrame) -> str:
    """One sentence on planted-motif recovery, from :func:`probekit.datasets.planted_motif_recovery`.

    Examples
    --------
    >>> r = pd.DataFrame({"top": [True, False], "motif_rank": [1.0, 3.0]})
    >>> recovery_line(r)
    'planted motif is the top critical region in 1/2 sequences (overlapped by a critical region in 2/2, mean rank 2.00)'
    """
    n = len(recovery)
    top = int(recovery["top"].sum())
    found = recovery["motif_rank"].notna()
    mean_rank = float(recovery.loc[found, "motif_rank"].mean()) if found.any() else float("nan")
    return (
        f"planted motif is the top critical region in {top}/{n} sequences "
        f"(overlapped by a critical region in {int(found.sum())}/{n}, mean rank {mean_rank:.2f})"
    )


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit demo``."""
    parser.add_argument("name", choices=sorted(DEMOS), help="which demo to run")
    parser.add_argument("--out", type=Path, default=Path("probekit-demo"), help="output folder (default probekit-demo)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    add_autocast_argument(parser)
    parser.add_argument("--limit", type=int, help="probe only the first N held-out sequences or molecules")
    add_probe_arguments(parser, output=None, goal=None, records="sequences or molecules",
                        default_note="default margin:1 and flip for dna, value:0 and decrease:1.0 for mol")  # fmt: skip


def run_demo(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo NAME``."""
    return DEMOS[args.name](args, log=log)


def _add_mol_arguments(parser: argparse.ArgumentParser) -> None:
    from .report.molecules import add_mol_arguments

    add_mol_arguments(parser)


def _run_mol(args, *, log: Callable[[str], None] = print) -> int:
    from .report.molecules import run_mol_cli

    return run_mol_cli(args, log=log)


def _run_demo_mol(args, *, log: Callable[[str], None] = print) -> int:
    from .report.molecules import run_mol_demo

    if getattr(args, "limit", None) is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be at least 1, got {args.limit}")
        args.n_molecules = args.limit
    return run_mol_demo(args, log=log)


# ------------------------------------------------------------------------ registry
#: name -> runner of ``probekit demo NAME`` (runner(args, log=print) -> exit code).
#: ``probekit demo mol`` plugs in here.
DEMOS: dict[str, Callable] = {"dna": run_demo_dna, "mol": _run_demo_mol}

#: name -> (help, add_arguments(parser), run(args, log=print) -> exit code).
#: ``probekit mol`` and ``probekit certify`` plug in here.
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "dna": ("probe a DNA-sequence model on a FASTA file", add_dna_arguments, run_dna),
    "mol": ("probe a molecule or feature model on SMILES, CSV or SDF", _add_mol_arguments, _run_mol),
    "demo": ("run a bundled demo end to end", add_demo_arguments, run_demo),
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
    from . import __version__

    return __version__


def main(argv=None) -> int:
    """Entry point of the ``probekit`` command; returns 0 on success.

    Argument and file problems print one line ``probekit: error: ...`` to stderr
    and exit with code 2. An interrupt (Ctrl-C) exits with code 130 and says
    where the finished chunks are kept when the command had saved any.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CLIError as error:
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"probekit: error: {message}", file=sys.stderr)
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


__all__ = [
    "main", "build_parser", "COMMANDS", "DEMOS", "CLIError", "ChunksKept", "probe_in_chunks", "merge_reports",
    "probe_resumably", "drop_partial", "partial_dir", "parse_output", "parse_goal",
]  # fmt: skip
