"""``probekit motifs``: what a DNA model learned across a FASTA file, as one HTML page and a pattern table.

The command computes hypothetical contributions (ISM by default, or
DeepLIFT-SHAP), finds patterns with TF-MoDISco, names each by its TOMTOM
matches in JASPAR (p- and q-values; ``--no-jaspar`` to skip), and implants each
pattern's consensus into dinucleotide shuffles of the sequences to compare its
effect with random k-mers of the same length (``--no-insertion`` to skip).

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_motifs_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--fasta", "peaks.fa", "--out", "motifs.html"])
>>> args.output, args.contributions, args.random_kmers, args.tax_group
('logit:1', 'ism', 200, 'vertebrates')

From a shell::

    probekit motifs --model model.pt --arch my_models:Net --fasta peaks.fa --output logit:1 \\
        --out motifs.html --table patterns.tsv --seqlets seqlets.tsv
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from .common import CLIError, _adapter, add_model_arguments, load_model_from_args, log_problems, one_line, parse_output


def add_motifs_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit motifs``."""
    add_model_arguments(parser)
    parser.add_argument("--fasta", required=True, type=Path, help="sequences of one length (e.g. peaks)")
    add_discovery_arguments(parser)


def add_discovery_arguments(parser: argparse.ArgumentParser, *, out_required: bool = True) -> None:
    """The discovery, matching and insertion settings and the output files."""
    parser.add_argument("--output", default="logit:1",
                        help="scalar to explain: logit:I, prob:I, margin:I, value:I or a class index (default logit:1)")  # fmt: skip
    parser.add_argument("--out", required=out_required, type=Path, help="HTML page to write")
    parser.add_argument("--table", type=Path, help="also write the pattern table (.tsv, or .csv)")
    parser.add_argument("--seqlets", type=Path, help="also write every seqlet (id, start, end, strand, pattern) as .tsv or .csv")
    parser.add_argument("--contributions", choices=("ism", "deeplift_shap"), default="ism",
                        help="hypothetical contributions: exact ISM (default) or DeepLIFT-SHAP with shuffled references")  # fmt: skip
    parser.add_argument("--leiden-runs", type=int, default=10, help="Leiden clusterings of TF-MoDISco (default 10)")
    parser.add_argument("--window", type=int, default=20, help="seqlet core width (default 20)")
    parser.add_argument("--no-jaspar", dest="jaspar", action="store_false", help="do not match patterns to JASPAR")
    parser.add_argument("--collection", default="CORE", help="JASPAR collection (default CORE)")
    parser.add_argument("--tax-group", default="vertebrates", help="JASPAR taxonomic group, or 'all' (default vertebrates)")
    parser.add_argument("--no-insertion", dest="insertion", action="store_false",
                        help="do not implant the patterns into shuffled backgrounds")  # fmt: skip
    parser.add_argument("--backgrounds", type=int, default=20, help="shuffled backgrounds per insertion (default 20)")
    parser.add_argument("--random-kmers", type=int, default=200, help="random k-mers per insertion baseline (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of shuffles and random k-mers")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    parser.add_argument("--layout", choices=("NCL", "NLC"), default="NCL", help="one-hot layout the model takes")
    parser.add_argument("--strands", choices=("forward", "both"), default="forward",
                        help="both: average forward and reverse-complement outputs")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check(args) -> None:
    for name in ("leiden_runs", "window", "backgrounds", "random_kmers"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    parse_output(args.output)


def run_motifs(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit motifs``: discover, match and test the motifs a DNA model learned."""
    from ..io import read_fasta

    _check(args)
    if not args.fasta.exists():
        raise CLIError(f"FASTA file not found: {args.fasta}")
    model = load_model_from_args(args, log=log)
    try:
        records = read_fasta(args.fasta)
    except ValueError as error:
        raise CLIError(str(error)) from None
    log_problems(records.loc[records["error"].notna(), "error"].tolist(), "skipping", log)
    return explain_motifs(_adapter(model, args), records, args, log=log)


def explain_motifs(adapter, records, args, *, log: Callable[[str], None] = print) -> int:
    """Discovery, JASPAR matching and insertion on ``records`` (``id``, ``sequence``, ``error``); write the outputs."""
    import warnings

    from .._warnings import ProbekitWarning
    from ..discover import discover, insertion_effect, match_jaspar
    from ..report.discovery import DiscoveryReport

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProbekitWarning)
            discovery = discover(
                adapter, records, contributions=args.contributions, n_leiden_runs=args.leiden_runs, window=args.window,
                seed=args.seed, progress=not args.no_progress,
            )  # fmt: skip
    except (ValueError, ImportError) as error:
        raise CLIError(one_line(error)) from None
    log_problems(list(discovery.errors.values()), "left out", log)
    for warning in caught:
        if "left out" not in str(warning.message):
            log(f"note: {one_line(warning.message)}")
    matches = None
    if args.jaspar and len(discovery):
        tax_group = None if args.tax_group.lower() == "all" else args.tax_group
        try:
            matches = match_jaspar(discovery, collection=args.collection, tax_group=tax_group, top=5)
        except (ImportError, ValueError) as error:
            log(f"JASPAR matching skipped: {one_line(error)}; --no-jaspar silences this")
    effects = None
    if args.insertion and len(discovery):
        kept = records[records["id"].astype(str).isin(discovery.ids)]
        effects = insertion_effect(
            adapter, discovery, backgrounds=kept, n_backgrounds=args.backgrounds, n_random=args.random_kmers, seed=args.seed,
            progress=not args.no_progress,
        )  # fmt: skip
    report = DiscoveryReport(discovery, matches=matches, effects=effects)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report.to_html(args.out)
    table = report.to_frame()
    for path, frame in ((args.table, table), (args.seqlets, discovery.seqlet_table(sequences=_lookup(records)))):
        if path is not None:
            frame.to_csv(path, sep="," if Path(path).suffix.lower() == ".csv" else "\t", index=False)
    log(headline(table))
    log(f"wrote {args.out}" + "".join(f", {p}" for p in (args.table, args.seqlets) if p is not None))
    return 0


def _lookup(records) -> dict:
    good = records[records["error"].isna()] if "error" in records else records
    return dict(zip(good["id"].astype(str), good["sequence"].astype(str)))


def headline(table) -> str:
    """One line: how many patterns, and each positive pattern's best match and insertion p-value.

    Examples
    --------
    >>> import pandas as pd
    >>> headline(pd.DataFrame({"pattern": ["pos_0"], "sign": [1], "n_seqlets": [80], "consensus": ["TGACTCA"],
    ...                        "match": ["FOS::JUN"], "match_q": [1e-6], "insertion_p": [0.005]}))
    '1 pattern: pos_0 TGACTCA (80 seqlets, FOS::JUN q=1e-06, insertion p=0.005)'
    """
    if not len(table):
        return "no pattern found"
    parts = []
    for row in table[table["sign"] > 0].itertuples(index=False):
        extra = [f"{row.n_seqlets} seqlets"]
        if "match" in table and isinstance(row.match, str):
            extra.append(f"{row.match} q={row.match_q:.2g}")
        if "insertion_p" in table:
            extra.append(f"insertion p={row.insertion_p:.2g}")
        parts.append(f"{row.pattern} {row.consensus} ({', '.join(extra)})")
    n = len(table)
    return f"{n} pattern{'s' if n != 1 else ''}: " + "; ".join(parts)


def run_demo_motifs(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit demo motifs``: what the bundled demo model learned, on 600 fresh demo sequences.

    The sequences are made as the demo's training set was (planted FOS::JUN,
    CTCF and GATA1 sites), with a seed the training never saw; the page and the
    tables go to ``args.out`` (a folder).
    """
    from ..datasets import load_dna_demo, make_dna_sequences

    try:
        model, _ = load_dna_demo()
    except FileNotFoundError as error:
        raise CLIError(str(error)) from None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = make_dna_sequences(int(getattr(args, "limit", None) or 600), seed=3000, positive_fraction=0.8, prefix="demo")
    defaults = {
        "output": "logit:1", "contributions": "ism", "leiden_runs": 10, "window": 20, "jaspar": True, "collection": "CORE",
        "tax_group": "vertebrates", "insertion": True, "backgrounds": 20, "random_kmers": 200, "seed": 0,
        "no_progress": False, "layout": "NCL", "strands": "forward",
    }  # fmt: skip
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    args.out = out_dir / "motifs_demo.html"
    args.table = out_dir / "motifs_demo_patterns.tsv"
    args.seqlets = out_dir / "motifs_demo_seqlets.tsv"
    frame[["id", "sequence", "motif", "matrix_id", "start", "end", "strand"]].to_csv(out_dir / "motifs_demo_truth.tsv", sep="\t", index=False)
    return explain_motifs(_adapter(model, args), frame[["id", "sequence"]].assign(error=None), args, log=log)


__all__ = ["add_motifs_arguments", "add_discovery_arguments", "run_motifs", "explain_motifs", "run_demo_motifs", "headline"]
