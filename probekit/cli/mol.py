"""``probekit mol``: probe a molecule or feature model on SMILES, CSV or SDF and write one HTML report.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_mol_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--molecules", "m.smi", "--out", "r.html"])
>>> args.goal, args.max_flips, args.featurizer
('decrease:1.0', 3, 'morgan:2:2048')
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from .._messages import one_line
from ..probe.chunks import file_digest, partial_dir, settings_hash
from ..probe.molecules import probe_features
from ..report.molecules import headline
from .common import (
    METHODS,
    CLIError,
    add_autocast_argument,
    add_chunk_arguments,
    add_model_arguments,
    drop_partial,
    exit_code,
    load_model_from_args,
    log_autocast,
    log_not_probed,
    log_problems,
    parse_arch_kwargs,
    parse_goal,
    parse_output,
    probe_resumably,
)
from .engine import add_engine_arguments, engine_options, run_on_engine

METHOD_HELP = (
    "bit-flip search (default auto). auto enumerates every flip set while that is cheap, then searches larger sets "
    "by beam, and proves the set it finds minimal whenever it is at most one flip larger than the sets it enumerated. "
    "exhaustive enumerates every set up to --max-flips: the count grows as n^k for n bits that may flip (a few dozen "
    "with --flips off, thousands with on or both), so it is worth it only when the summary has answers auto could not "
    "prove minimal and you need that proof. greedy, beam and gradient are quicker heuristics that prove nothing"
)


def add_mol_arguments(parser) -> None:
    """Arguments of ``probekit mol``."""
    add_model_arguments(parser)
    parser.add_argument("--molecules", required=True, type=Path, help=".smi, .csv, .tsv or .sdf file of molecules")
    parser.add_argument("--smiles-col", help="SMILES column of a CSV/TSV (default: a column named like 'smiles')")
    parser.add_argument("--id-col", help="id column of a CSV/TSV or SD property (default: 'id'/'name' or the SDF title)")
    parser.add_argument("--standardize", action="store_true", help="keep the largest fragment and neutralise charges")
    parser.add_argument("--model-kind", choices=("features", "chemprop", "torchscript", "sklearn"), default="features",
                        help="features: a torch model over --featurizer's features (default); chemprop: a Chemprop v2 "
                             "model file (needs --trust: it is a pickle); torchscript: a TorchScript graph model over "
                             "probekit's graph featurizer; sklearn: a pickled scikit-learn estimator over --featurizer "
                             "(needs --trust). The last three are probed for atom and fragment importance and "
                             "counterfactual molecules")  # fmt: skip
    parser.add_argument("--featurizer", default="morgan:2:2048",
                        help="morgan:RADIUS:NBITS, morgan-counts:R:N, descriptors[:A,B], maccs; join with + "
                             "(default morgan:2:2048)")  # fmt: skip
    parser.add_argument("--output", default="value:0", help="scalar to probe: value:I, logit:I, prob:I, margin:I (default value:0)")
    parser.add_argument("--goal", default="decrease:1.0", help="decrease:D, increase:D, below:T, above:T, flip or target:C")
    add_mol_probe_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="HTML report to write")
    parser.add_argument("--table", type=Path, help="also write the per-molecule, per-feature table as CSV")
    parser.add_argument("--atoms-table", type=Path, help="also write the per-atom table as CSV")
    parser.add_argument("--max-figures", type=int, default=20,
                        help="molecules that get their own drawings and figures in the report: those whose goal "
                             "was reached first, then the smallest p-values (default 20)")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    add_autocast_argument(parser)
    add_chunk_arguments(parser, "molecules")
    add_engine_arguments(parser)


def add_mol_probe_arguments(parser) -> None:
    """Probe settings of ``probekit mol`` (``probekit demo mol`` reads the same names when present)."""
    parser.add_argument("--max-flips", "--max-edits", dest="max_flips", type=int, default=3,
                        help="largest set of bit flips searched (default 3)")  # fmt: skip
    parser.add_argument("--flips", choices=("off", "on", "both"), default="off",
                        help="bits that may flip: off = only bits the molecule has (each flip removes one of its own "
                             "substructures, shown with its atoms; default); on = only bits it lacks (each flip adds a "
                             "substructure, shown as the bit's most common environment among the molecules probed); "
                             "both = either")  # fmt: skip
    parser.add_argument("--norm", choices=("linf", "l2", "l1"), default="linf", help="norm of continuous perturbations")
    parser.add_argument("--attribution", default="auto",
                        help="auto (integrated gradients from the zero baseline, Shapley sampling for molecules "
                             "whose gradients do not add up to their score change; default), "
                             "integrated_gradients, saliency, input_x_gradient, feature_ablation or shapley_sampling")  # fmt: skip
    parser.add_argument("--method", choices=METHODS, default="auto", help=METHOD_HELP)
    parser.add_argument("--baseline-draws", type=int, default=200, help="random flip sets per molecule (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baselines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _write_outputs(report, args, out, log, *, title: str, started: float, table=None) -> None:
    """The HTML report, and the ``--table`` (``table``, default the report's frame) and ``--atoms-table`` CSVs."""
    report.to_html(out, title=title, max_inputs=args.max_figures)
    log(f"wrote {out} ({len(report)} molecules, {time.perf_counter() - started:.1f} s)")
    for attr, table in (("table", table or report.to_frame), ("atoms_table", report.atoms)):
        path = getattr(args, attr, None)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            table().to_csv(path, index=False)
            log(f"wrote {path}")


def _mol_settings(model_digest: str, featurizer, goal, output: str, options: dict) -> dict:
    """What identifies a molecule probe's results: the model, the featurizer with its bounds, the probe options."""
    lower, upper = featurizer.bounds
    reference = getattr(featurizer, "reference", None)
    return {
        "model": model_digest, "featurizer": repr(featurizer), "features": settings_hash(list(featurizer.names)),
        "bounds": settings_hash([lower.tolist(), upper.tolist()]),  # fitted on the molecules probed, so they can change
        "reference": settings_hash(reference.smiles) if reference is not None else None,
        "output": output, "goal": str(goal), **options,
    }  # fmt: skip


def _probe_molecules(adapter, records, *, goal, options: dict, settings: dict, args, out, log):
    """:func:`probe_features` chunk by chunk through :func:`probekit.cli.common.probe_resumably` (saved under <out>.partial/)."""

    def probe_chunk(part):
        return probe_features(adapter, part, goal=goal, progress=False, **options)

    return probe_resumably(adapter, records, settings=settings, args=args, out=out, log=log, probe_chunk=probe_chunk,
                           key_columns=("id", "smiles"), unit="mol")  # fmt: skip


def _read_records(args, log):
    """The molecules of ``--molecules`` and the error messages of those that cannot be read (logged as skipped)."""
    from ..io import read_molecules

    if not args.molecules.exists():
        raise CLIError(f"molecule file not found: {args.molecules}")
    try:
        records = read_molecules(args.molecules, smiles_col=args.smiles_col, id_col=args.id_col, standardize=args.standardize)
    except ValueError as error:
        raise CLIError(str(error)) from None
    unreadable = records.loc[records["error"].notna(), "error"].tolist()
    log_problems(unreadable, "skipping", log)
    return records, unreadable


def _run_molecule_model(args, *, goal, output, log) -> int:
    """``probekit mol --model-kind chemprop|torchscript|sklearn``: atoms, fragments and counterfactual molecules."""
    from ..molmodel.loaders import load_molecule_model
    from ..probe.molmodels import probe_molecule_model
    from ..report.molmodels import headline as model_headline

    if not args.model.exists():
        raise CLIError(f"model file not found: {args.model}")
    records, unreadable = _read_records(args, log)
    featurizer = None
    if args.model_kind == "sklearn":
        from ..encode.mol import parse_featurizer

        try:
            featurizer = parse_featurizer(args.featurizer)
        except ValueError as error:
            raise CLIError(str(error)) from None
    loading = dict(kind=args.model_kind, trust=args.trust, featurizer=featurizer, output=output,
                   batch_size=args.batch_size or 256, device=args.device)  # fmt: skip
    try:
        adapter = load_molecule_model(args.model, **loading)  # on the driver too, so a file it cannot read stops here
    except ImportError as error:
        raise CLIError(one_line(error)) from None
    except ValueError as error:
        raise CLIError(one_line(error)) from None
    options = dict(max_edits=args.max_flips, n_random=args.baseline_draws, seed=args.seed)
    settings = {"model": file_digest(args.model), "model_kind": args.model_kind, "featurizer": args.featurizer,
                "output": args.output, "goal": str(goal), "standardize": bool(args.standardize), **options}  # fmt: skip
    started = time.perf_counter()

    def probe_chunk(part):
        return probe_molecule_model(adapter, part, goal=goal, **options)

    try:
        if args.engine == "ray":
            factory = functools.partial(load_molecule_model, args.model.resolve(), **loading)
            report = run_on_engine("molecule_probe", records, args=args, settings=settings, out_dir=partial_dir(args.out),
                                   factory=factory, log=log, goal=str(goal), max_edits=args.max_flips,
                                   baseline_draws=args.baseline_draws, seed=args.seed)  # fmt: skip
        else:
            report = probe_resumably(adapter, records, settings=settings, args=args, out=args.out, log=log,
                                     probe_chunk=probe_chunk, key_columns=("id", "smiles"), unit="mol")  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise CLIError(one_line(error)) from None
    _write_outputs(report, args, args.out, log, title=f"probekit: {args.molecules.name}", started=started,
                   table=report.summary)  # fmt: skip
    drop_partial(args.out, args)
    log_not_probed(report, unreadable, log)
    log(model_headline(report))
    return exit_code(report, log)


def run_mol_cli(args, *, log=print) -> int:
    """``probekit mol``: probe a molecule model on a file of molecules; returns the exit code.

    Molecules are probed ``--chunk-size`` at a time; each finished chunk is saved
    under ``<out>.partial/`` and reused by a rerun with the same settings (see
    :func:`probekit.probe.chunks.probe_in_chunks`). Argument and file problems raise
    :class:`probekit.cli.common.CLIError` (one line, exit code 2). Records that cannot
    be read are listed as ``skipping: ...`` lines, molecules the model cannot score as
    ``not probed: ...`` lines; the exit code is 1 when no molecule could be probed
    (the report, with its error rows, is still written), else 0.

    With ``--engine ray`` the chunks are shards of :func:`probekit.scale.run` on Ray
    workers, each loading ``--model`` itself (a feature model with the featurizer
    fitted here, on the molecules probed); the report is the one ``--engine local``
    writes, and a summary line says how many shards were done, reused, retried and failed.
    """
    from ..adapters import FeatureModel
    from ..encode.mol import parse_featurizer

    for name in ("max_flips", "baseline_draws", "chunk_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_figures < 0:
        raise CLIError(f"--max-figures must be at least 0, got {args.max_figures}")
    goal, output = parse_goal(args.goal), parse_output(args.output)
    engine_options(args)
    if getattr(args, "model_kind", "features") != "features":
        return _run_molecule_model(args, goal=goal, output=output, log=log)
    try:
        featurizer = parse_featurizer(args.featurizer)
    except ValueError as error:
        raise CLIError(str(error)) from None
    records, unreadable = _read_records(args, log)
    valid = records[records["error"].isna()]
    if len(valid):
        # continuous features stay within the range of the molecules probed, perturbed descriptors are judged
        # against them, and a bit a flip adds is named by its most common environment among them
        featurizer.fit(valid)
        if any(k != "binary" for k in featurizer.kinds):
            log(f"bounds of the non-binary features taken from the {len(valid)} valid molecules (bits keep [0, 1])")
    model = load_model_from_args(args, log=log)
    options = dict(max_flips=args.max_flips, flips=args.flips, norm=args.norm, baseline_draws=args.baseline_draws,
                   attribution=args.attribution, method=args.method, seed=args.seed)  # fmt: skip
    run = {"arch": args.arch, "standardize": bool(args.standardize), "autocast": getattr(args, "autocast", None)}
    arch_kwargs = parse_arch_kwargs(getattr(args, "arch_kwargs", None))
    if arch_kwargs:  # only when given, so runs without it keep the keys of their saved chunks
        run["arch_kwargs"] = arch_kwargs
    settings = _mol_settings(file_digest(args.model), featurizer, goal, args.output, {**options, **run})
    started = time.perf_counter()
    adapting = dict(output=output, device=args.device, batch_size=args.batch_size or "auto",
                    autocast=getattr(args, "autocast", None))  # fmt: skip
    adapter = None
    try:
        if args.engine == "ray":
            report = _probe_on_engine(records, featurizer=featurizer, goal=goal, options=options, settings=settings,
                                      args=args, adapting=adapting, log=log)  # fmt: skip
        else:
            adapter = FeatureModel(model, featurizer=featurizer, **adapting)
            report = _probe_molecules(adapter, records, goal=goal, options=options, settings=settings, args=args,
                                      out=args.out, log=log)  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise CLIError(one_line(error)) from None
    _write_outputs(report, args, args.out, log, title=f"probekit: {args.molecules.name}", started=started)
    drop_partial(args.out, args)
    log_not_probed(report, unreadable, log)
    for line in headline(report):
        log(line)
    if adapter is not None:
        log_autocast(adapter, log)
    return exit_code(report, log)


def _probe_on_engine(records, *, featurizer, goal, options: dict, settings: dict, args, adapting: dict, log):
    """The feature model's probe on ``--engine ray``: each worker loads ``--model`` with the featurizer fitted here."""
    from ..scale.factories import load_feature_adapter

    factory = functools.partial(load_feature_adapter, args.model.resolve(), featurizer=featurizer, arch=args.arch,
                                arch_kwargs=parse_arch_kwargs(getattr(args, "arch_kwargs", None)), trust=args.trust,
                                **adapting)  # fmt: skip
    return run_on_engine("molecule_probe", records, args=args, settings=settings, out_dir=partial_dir(args.out),
                         factory=factory, log=log, goal=str(goal), **options)  # fmt: skip
