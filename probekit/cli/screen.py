"""``probekit screen``: score a library of molecules with a model into one table, chunk by chunk, resumable.

The library (``.smi``, ``.csv``/``.tsv`` read a chunk at a time, or ``.sdf``) is
scored ``--chunk-size`` molecules at a time; each finished chunk is saved next to
the table (``<table>.partial/``), so an interrupted run resumes when run again. The
table (Parquet, TSV or CSV, by the name's extension) has one row per record:
``id``, ``smiles``, ``score``, a column per ``--extra-outputs``, and ``error``, which
names each record that could not be scored and why. ``--engine ray`` scores the
chunks on Ray workers, each loading the model file itself.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_screen_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--molecules", "lib.smi", "--table", "scores.parquet"])
>>> args.output, args.model_kind, args.featurizer, args.chunk_size, args.top
('value:0', 'features', 'morgan:2:2048', 10000, 10)

From a shell::

    probekit screen --model affinity.pt --arch mypkg.models:MLP --featurizer morgan:2:2048 \\
        --molecules library.smi --table scores.parquet --top 20
"""

from __future__ import annotations

import argparse
import functools
import shutil
from pathlib import Path
from typing import Callable

from .._messages import one_line
from ..probe.chunks import file_digest
from .common import (
    CLIError,
    add_model_arguments,
    load_model_from_args,
    log_problems,
    parse_arch_kwargs,
    output_list,
    parse_output,
)
from .engine import add_engine_arguments, engine_options, run_on_engine


def add_screen_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit screen``."""
    add_model_arguments(parser)
    parser.add_argument("--model-kind", choices=("features", "chemprop", "torchscript", "sklearn"), default="features",
                        help="features: a torch model over --featurizer's features (default); chemprop: a Chemprop v2 "
                             "model file (needs --trust); torchscript: a TorchScript graph model; sklearn: a pickled "
                             "scikit-learn estimator over --featurizer (needs --trust)")  # fmt: skip
    parser.add_argument("--featurizer", default="morgan:2:2048",
                        help="morgan:RADIUS:NBITS, morgan-counts:R:N, descriptors[:A,B], maccs; join with + "
                             "(default morgan:2:2048)")  # fmt: skip
    parser.add_argument("--molecules", required=True, type=Path, help=".smi, .csv, .tsv or .sdf library to score")
    parser.add_argument("--smiles-col", help="SMILES column of a CSV/TSV (default: a column named like 'smiles')")
    parser.add_argument("--id-col", help="id column of a CSV/TSV (default: 'id'/'name', else mol<row>)")
    parser.add_argument("--standardize", action="store_true", help="keep the largest fragment and neutralise charges")
    parser.add_argument("--output", default="value:0", help="the score: value:I, logit:I, prob:I, margin:I (default value:0)")
    parser.add_argument("--extra-outputs", type=output_list, default=[],
                        help="further outputs of a multi-output model, comma-separated (e.g. value:1,prob:0): a column "
                             "each, from the same forward passes")  # fmt: skip
    parser.add_argument("--table", required=True, type=Path, help="table to write: .parquet, .tsv or .csv")
    parser.add_argument("--top", type=int, default=10, help="best-scoring molecules printed at the end (default 10)")
    parser.add_argument("--lowest", action="store_true",
                        help="the lowest scores are best (a docking energy, an IC50 in nM); default: the highest")  # fmt: skip
    parser.add_argument("--chunk-size", type=int, default=10_000,
                        help="molecules scored and saved together; a rerun resumes from saved chunks (default 10000)")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="molecules per forward pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_arguments(parser)


def _check_arguments(args) -> None:
    from ..variants.stream import table_format

    parse_output(args.output)
    engine_options(args)
    try:
        table_format(args.table)
    except ValueError as error:
        raise CLIError(f"--table: {error}") from None
    if args.chunk_size < 1:
        raise CLIError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if args.top < 0:
        raise CLIError(f"--top must be at least 0, got {args.top}")
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.molecules.exists():
        raise CLIError(f"molecule file not found: {args.molecules}")
    if not args.model.exists():
        raise CLIError(f"model file not found: {args.model}")


def _factory(args):
    """The picklable factory of the command's adapter (each Ray worker loads ``--model`` itself)."""
    from ..molmodel.loaders import load_molecule_model
    from ..scale.factories import load_feature_adapter

    output = parse_output(args.output)
    if args.model_kind == "features":
        return functools.partial(load_feature_adapter, args.model.resolve(), featurizer=args.featurizer, output=output,
                                 arch=args.arch, arch_kwargs=parse_arch_kwargs(args.arch_kwargs), trust=args.trust,
                                 device=args.device, batch_size=args.batch_size or "auto")  # fmt: skip
    return functools.partial(load_molecule_model, args.model.resolve(), kind=args.model_kind, output=output,
                             featurizer=args.featurizer if args.model_kind == "sklearn" else None, trust=args.trust,
                             device=args.device, batch_size=args.batch_size or 256)  # fmt: skip


def _adapter(args, factory, log):
    """The adapter on this machine: a clear :class:`CLIError` for a model or featurizer that cannot be loaded."""
    from ..adapters import FeatureModel
    from ..encode.mol import parse_featurizer

    try:
        if args.model_kind == "features":
            featurizer = parse_featurizer(args.featurizer)
            model = load_model_from_args(args, log=log)  # its messages name the flags (--arch, --trust)
            return FeatureModel(model, featurizer=featurizer, output=parse_output(args.output), device=args.device,
                                batch_size=args.batch_size or "auto")  # fmt: skip
        return factory()
    except (ImportError, ValueError, OSError, RuntimeError) as error:
        raise CLIError(f"cannot load model {args.model}: {one_line(error)}") from None


def screen_exit_code(outcome, log: Callable[[str], None]) -> int:
    """0 when at least one molecule was scored; 1, saying so, when none was (the table is still written).

    Examples
    --------
    >>> from pathlib import Path
    >>> from probekit.screening import ScreenOutcome
    >>> screen_exit_code(ScreenOutcome(Path("t.tsv"), n_rows=2, n_errors=2), print)
    no molecule could be scored: all 2 failed (see the messages above and the table)
    1
    """
    if outcome.n_rows == 0:
        log("no molecule could be scored: the library has no records")
        return 1
    if outcome.n_errors == outcome.n_rows:
        log(f"no molecule could be scored: all {outcome.n_rows} failed (see the messages above and the table)")
        return 1
    return 0


def log_top(top, log: Callable[[str], None]) -> None:
    """One line per top-scoring molecule: rank, score, id and SMILES."""
    for rank, row in enumerate(top.itertuples(index=False), start=1):
        log(f"{rank:>4}  {row.score:.4g}  {row.id}  {row.smiles}")


def run_screen(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit screen``: score the library chunk by chunk into the table; returns the exit code."""
    from ..screening import screen_molecules_to_table
    from ..variants.stream import partial_folder

    _check_arguments(args)
    factory = _factory(args)
    adapter = _adapter(args, factory, log)  # on the driver too, so a model that cannot be loaded stops here
    settings = {"model": file_digest(args.model), "model_kind": args.model_kind, "featurizer": args.featurizer,
                "arch": args.arch, "arch_kwargs": parse_arch_kwargs(args.arch_kwargs), "output": adapter.output.name}  # fmt: skip
    reading = dict(smiles_col=args.smiles_col, id_col=args.id_col, standardize=args.standardize)
    best = "lowest" if args.lowest else "highest"
    args.table.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.engine == "ray":
            outcome = run_on_engine("molecule_screen", args.molecules, args=args, settings=settings,
                                    out_dir=partial_folder(args.table), factory=factory, log=log, table=args.table,
                                    top=args.top, best=best, outputs=args.extra_outputs, **reading)  # fmt: skip
            shutil.rmtree(partial_folder(args.table), ignore_errors=True)
        else:
            outcome = screen_molecules_to_table(adapter, args.molecules, table=args.table, settings=settings,
                                                chunk_size=args.chunk_size, outputs=args.extra_outputs, top=args.top, best=best,
                                                progress=not args.no_progress, log=log, **reading)  # fmt: skip
    except (ImportError, OSError, ValueError) as error:
        raise CLIError(one_line(error)) from None
    log(f"wrote {args.table}")
    log_problems(outcome.errors, "not scored", log)
    log_top(outcome.top, log)
    log(outcome.line())
    return screen_exit_code(outcome, log)


__all__ = ["add_screen_arguments", "run_screen", "screen_exit_code", "log_top"]
