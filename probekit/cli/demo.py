"""``probekit demo dna|mol|variants``: the bundled demos end to end.

Examples
--------
>>> import pandas as pd
>>> recovery_line(pd.DataFrame({"top": [True], "motif_rank": [1.0]}))[:40]
'planted motif is the top critical region'
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import pandas as pd

from .._messages import one_line
from ..probe.chunks import file_digest
from ..report.molecules import headline
from .common import (
    CLIError,
    _adapter,
    _check_numbers,
    _probe_settings,
    _run_probe,
    add_autocast_argument,
    add_probe_arguments,
    drop_partial,
    log_autocast,
    parse_goal,
    parse_output,
    resolve_motifs,
)
from .dna import log_outcome
from .mol import _mol_settings, _probe_molecules


def run_demo_dna(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo dna``: probe the bundled demo model and check it finds the planted motifs.

    Regions are annotated with JASPAR motifs unless ``args.motifs`` is False (``--no-motifs``);
    without pyjaspar the demo says so and runs without them.
    """
    from ..datasets import dna_demo_paths, load_dna_demo, planted_motif_recovery

    _check_numbers(args)
    args.output = args.output or "margin:1"
    args.goal = args.goal or "flip"
    goal = parse_goal(args.goal)
    args.motifs = resolve_motifs(getattr(args, "motifs", None), log)
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
    if args.motifs and not getattr(args, "motif_query", None):
        args.motif_query = sorted({m for m in heldout["motif"] if m and not m.startswith("shuffled")})
    settings = _probe_settings(args, file_digest(dna_demo_paths()["model"]), str(goal))
    report = _run_probe(adapter, records, settings, args, out_dir / "dna_demo_report.html", log)
    log_outcome(report, [], log)
    log_autocast(adapter, log)
    report.to_frame().to_csv(out_dir / "dna_demo_positions.csv", index=False)
    report.regions().to_csv(out_dir / "dna_demo_regions.csv", index=False)
    recovery = planted_motif_recovery(report.regions(), heldout)
    recovery.to_csv(out_dir / "dna_demo_recovery.csv", index=False)
    log(recovery_line(recovery))
    if args.motifs:
        log(naming_line(recovery))
    return 0


def naming_line(recovery: pd.DataFrame) -> str:
    """One sentence on how often JASPAR names the planted factor in the top critical region.

    Examples
    --------
    >>> r = pd.DataFrame({"top": [True, True], "named": [True, False], "named_or_tied": [True, True],
    ...                   "query_named": [True, True]})
    >>> naming_line(r)
    'planted factor named by the top JASPAR match of the top region in 1/2 sequences (tied at the best p-value in 2/2; the best match among the planted factors in 2/2)'
    """
    n = len(recovery)
    count = lambda column: int(recovery[column].fillna(False).astype(bool).sum())  # noqa: E731
    return (
        f"planted factor named by the top JASPAR match of the top region in {count('named')}/{n} sequences "
        f"(tied at the best p-value in {count('named_or_tied')}/{n}; the best match among the planted factors in "
        f"{count('query_named')}/{n})"
    )


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
    parser.add_argument("--no-graph", action="store_true",
                        help="mol: skip the graph model (atoms, fragments, counterfactual molecules)")  # fmt: skip
    add_probe_arguments(parser, output=None, goal=None, records="sequences or molecules", motifs=None,
                        default_note="default margin:1 and flip for dna, value:0 and decrease:1.0 for mol")  # fmt: skip


def run_demo(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo NAME``."""
    return DEMOS[args.name](args, log=log)


def _arg(args, name: str, default):
    """``args.name``, or ``default`` where the namespace lacks it or holds None (0 and "" are kept)."""
    value = getattr(args, name, None)
    return default if value is None else value


def run_mol_demo(args, *, log=print) -> int:
    """``probekit demo mol``: the bundled affinity model, its held-out R^2 / RMSE, then a probe of held-out compounds.

    Reads ``args.out`` (folder) and, when present: ``args.device``, ``args.batch_size``
    (inputs per forward pass, default 1024), ``args.autocast``, ``args.output`` (the
    score to probe, default ``value:0``, the predicted pIC50; an output the
    one-output model does not have is refused), ``args.goal`` (default
    ``decrease:1.0``), ``args.max_flips`` / ``args.max_edits``, ``args.method``,
    ``args.flips``, ``args.norm``, ``args.attribution``, ``args.baseline_draws``,
    ``args.seed``, ``args.n_molecules``, ``args.max_figures``, ``args.no_progress``,
    ``args.chunk_size`` (default 16) and ``args.keep_partial``: compounds are probed in
    chunks saved under ``mol_demo_report.html.partial/``, as by ``probekit mol``.
    ``args.motifs`` is refused: motifs apply to DNA models only.

    Argument problems raise :class:`probekit.cli.common.CLIError` (one line, exit code 2).
    """
    from ..mol_demo import load_mol_demo, mol_demo_paths

    if getattr(args, "motifs", False):
        raise CLIError("--motifs applies to DNA models only; the molecule demo has no motifs to annotate")
    goal = parse_goal(_arg(args, "goal", "decrease:1.0"))
    output_spec = _arg(args, "output", "value:0")
    output = parse_output(output_spec)
    max_flips = int(_arg(args, "max_flips", _arg(args, "max_edits", 3)))
    batch_size = int(_arg(args, "batch_size", 1024))
    baseline_draws = int(_arg(args, "baseline_draws", 200))
    n_molecules = int(_arg(args, "n_molecules", 12))
    chunk_size = int(_arg(args, "chunk_size", 16))
    for flag, value in (("--max-edits", max_flips), ("--batch-size", batch_size), ("--baseline-draws", baseline_draws),
                        ("--chunk-size", chunk_size)):  # fmt: skip
        if value < 1:
            raise CLIError(f"{flag} must be at least 1, got {value}")
    try:
        demo = load_mol_demo(device=_arg(args, "device", None), batch_size=batch_size)
    except FileNotFoundError as error:
        raise CLIError(str(error)) from None
    m = demo.metrics
    log(
        f"affinity model (CHEMBL2321810 pIC50, {m['n_train']} training compounds): held-out R^2 = {m['test_r2']:.3f}, "
        f"RMSE = {m['test_rmse']:.3f} pIC50 units on {m['n_test']} compounds"
    )
    heldout = demo.test.head(n_molecules)
    adapter = demo.adapter.replace(output=output)
    if getattr(args, "autocast", None):
        adapter = adapter.replace(autocast=args.autocast)
    try:  # an output index past the model's one output fails here, before any work
        adapter.score(heldout["smiles"].tolist()[:1])
    except (IndexError, ValueError) as error:
        raise CLIError(
            f"--output {output_spec} does not apply to the affinity model, whose one output is the predicted pIC50 "
            f"(use value:0): {one_line(error)}"
        ) from None
    out_dir = Path(_arg(args, "out", "probekit-demo"))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "mol_demo_report.html"
    method = _arg(args, "method", "auto")
    log(f"probing {len(heldout)} held-out compounds: {output.name}, goal {goal}, at most {max_flips} bit flips ({method})")
    options = dict(max_flips=max_flips, flips=_arg(args, "flips", "off"), norm=_arg(args, "norm", "linf"),
                   attribution=_arg(args, "attribution", None), method=method, baseline_draws=baseline_draws,
                   seed=int(_arg(args, "seed", 0)))  # fmt: skip
    settings = _mol_settings(file_digest(mol_demo_paths()["weights"]), demo.featurizer, goal, output_spec,
                             {**options, "autocast": getattr(args, "autocast", None)})  # fmt: skip
    chunking = argparse.Namespace(chunk_size=chunk_size, no_progress=bool(getattr(args, "no_progress", False)),
                                  keep_partial=bool(getattr(args, "keep_partial", False)))  # fmt: skip
    try:
        report = _probe_molecules(adapter, heldout, goal=goal, options=options, settings=settings, args=chunking,
                                  out=out, log=log)  # fmt: skip
    except ValueError as error:
        raise CLIError(one_line(error)) from None
    report.to_html(out, title="probekit: affinity demo (CHEMBL2321810)", max_inputs=int(_arg(args, "max_figures", 20)))
    report.to_frame().to_csv(out_dir / "mol_demo_features.csv", index=False)
    report.atoms().to_csv(out_dir / "mol_demo_atoms.csv", index=False)
    report.features().to_csv(out_dir / "mol_demo_ranking.csv", index=False)
    drop_partial(out, chunking)
    log(f"wrote {out} and the feature, atom and ranking tables")
    for line in headline(report):
        log(line)
    log_autocast(adapter, log)
    if not getattr(args, "no_graph", False):
        _graph_demo(args, heldout["id"].tolist()[: int(_arg(args, "n_graph", 6))], goal=goal, out_dir=out_dir, log=log)
    return 0


def _graph_demo(args, ids: list, *, goal, out_dir: Path, log: Callable[[str], None]) -> None:
    """The graph model on the same held-out compounds: atoms, fragments and counterfactual molecules."""
    from ..mol_graph_demo import load_mol_graph_demo, mol_graph_demo_heldout, mol_graph_demo_info
    from ..probe.molmodels import probe_molecule_model
    from ..report.molmodels import headline as graph_headline

    try:
        adapter = load_mol_graph_demo(device=_arg(args, "device", None))
        info, heldout = mol_graph_demo_info(), mol_graph_demo_heldout()
    except FileNotFoundError as error:
        log(f"graph model skipped: {error}")
        return
    log(f"graph model (message passing on atoms and bonds, same training compounds): held-out R^2 = "
        f"{info['test_r2']:.3f}, RMSE = {info['test_rmse']:.3f} pIC50 units")  # fmt: skip
    compounds = heldout[heldout["id"].isin(ids)][["id", "smiles", "error"]]
    log(f"probing {len(compounds)} of them with the graph model: atoms, BRICS fragments and the most similar real "
        f"molecules that reach {goal}")  # fmt: skip
    try:
        report = probe_molecule_model(adapter, compounds, goal=goal, n_random=int(_arg(args, "baseline_draws", 100)) // 2,
                                      seed=int(_arg(args, "seed", 0)))  # fmt: skip
    except ImportError as error:
        log(f"graph model skipped: {one_line(error)}")
        return
    out = out_dir / "mol_graph_demo_report.html"
    report.to_html(out, title="probekit: graph affinity demo (CHEMBL2321810)")
    report.summary().to_csv(out_dir / "mol_graph_demo_counterfactuals.csv", index=False)
    log(f"wrote {out} and mol_graph_demo_counterfactuals.csv")
    log(graph_headline(report))


def _run_demo_mol(args, *, log: Callable[[str], None] = print) -> int:
    if getattr(args, "limit", None) is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be at least 1, got {args.limit}")
        args.n_molecules = args.limit
    return run_mol_demo(args, log=log)


def run_demo_variants(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo variants``: score the calls of a small demo genome with the demo model and say how they rank.

    Reads ``args.out`` (folder) and, when present: ``args.device``, ``args.batch_size``,
    ``args.output`` (default ``margin:1``), ``args.baseline_draws`` (random substitutions
    for the context of MNVs and indels), ``args.seed`` and ``args.no_progress``.
    Writes the demo genome and VCF, ``variants_demo.tsv``, the annotated
    ``variants_demo.vcf.gz`` and, where available, the HTML report into ``args.out``.
    """
    from ..variants.demo import demo_adapter, demo_summary, run_variants_demo

    draws = int(_arg(args, "baseline_draws", 100))
    if draws < 1:
        raise CLIError(f"--baseline-draws must be at least 1, got {draws}")
    output = parse_output(_arg(args, "output", "margin:1"))
    try:
        adapter = demo_adapter(device=_arg(args, "device", None), batch_size=_arg(args, "batch_size", "auto"), output=output)
    except FileNotFoundError as error:
        raise CLIError(str(error)) from None
    out_dir = Path(_arg(args, "out", "probekit-demo"))
    try:
        run = run_variants_demo(out_dir, adapter=adapter, n_draws=draws, seed=int(_arg(args, "seed", 0)),
                                progress=not getattr(args, "no_progress", False))  # fmt: skip
    except ImportError as error:
        raise CLIError(one_line(error)) from None
    log(f"scored {len(run.frame)} ALT alleles of {run.files.vcf} on {run.files.genome} ({adapter.output.name}, "
        f"{run.seconds:.1f} s)")  # fmt: skip
    for line in demo_summary(run.frame):
        log(line)
    log("wrote " + ", ".join(str(path) for path in run.written.values()))
    return 0


#: name -> runner of ``probekit demo NAME`` (runner(args, log=print) -> exit code).
def run_demo_motifs(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo motifs``: what the bundled DNA model learned across 600 fresh demo sequences."""
    from .motifs import run_demo_motifs as run

    return run(args, log=log)


DEMOS: dict[str, Callable] = {"dna": run_demo_dna, "mol": _run_demo_mol, "variants": run_demo_variants,
                              "motifs": run_demo_motifs}  # fmt: skip
