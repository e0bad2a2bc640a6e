"""``probekit variants``: score SNPs and indels of a VCF or variant table with a DNA-sequence model.

Each ALT allele gets the model's score on its REF and ALT windows of the reference
genome, their difference ``delta`` and, unless ``--no-context``, how that change ranks
among the single substitutions (SNVs) or random substitutions (others) of the same
window, and the best JASPAR match over it in REF and ALT (``--no-motifs`` to skip).
The variants are read and scored a chunk at a time (``--chunk-size``); each finished
chunk is saved next to the table, so an interrupted run resumes when run again. The
table is written as Parquet, TSV or CSV (by the name's extension); for VCF input the
scores can also be written into a copy of the VCF (``--vcf-out``), and ``--out``
writes an HTML report of the strongest variants.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_variants_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--genome", "g.fa", "--vcf", "v.vcf.gz", "--length", "200",
...                           "--table", "v.tsv"])
>>> args.output, args.draws, args.context, args.chunk_size, table_format(args.table)
('logit:1', 100, True, 10000, '\\t')

From a shell::

    probekit variants --model model.pt --arch my_models:Net --genome hg38.fa --vcf calls.vcf.gz --length 1000 \\
        --output logit:1 --table scores.parquet --vcf-out scored.vcf.gz --out report.html
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..probe.chunks import file_digest
from ..variants.io import VCF_SUFFIXES
from ..variants.stream import table_format
from .common import (
    CLIError,
    _adapter,
    add_model_arguments,
    load_model_from_args,
    log_problems,
    one_line,
    output_list,
    parse_output,
    resolve_motifs,
)
from .engine import add_engine_arguments, engine_options, run_on_engine


def add_variants_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``probekit variants``."""
    add_model_arguments(parser)
    parser.add_argument("--genome", required=True, type=Path, help="reference FASTA, plain or bgzipped")
    parser.add_argument("--vcf", required=True, type=Path,
                        help="variants: VCF/BCF, or a table (.tsv/.csv) with CHROM, POS, REF, ALT columns")  # fmt: skip
    parser.add_argument("--length", required=True, type=int, help="the model's input length L")
    parser.add_argument("--offset", type=int, default=None,
                        help="window position of each variant's first REF base (default L // 2)")  # fmt: skip
    parser.add_argument("--output", default="logit:1",
                        help="scalar to compare: logit:I, prob:I, margin:I, value:I or a class index (default logit:1)")  # fmt: skip
    parser.add_argument("--strands", choices=("forward", "both"), default="forward",
                        help="both: average forward and reverse-complement outputs")  # fmt: skip
    parser.add_argument("--layout", choices=("NCL", "NLC"), default="NCL", help="one-hot layout the model takes")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    parser.add_argument("--table", required=True, type=Path, help="per-variant table to write (.parquet, .tsv or .csv)")
    parser.add_argument("--out", type=Path, help="also write an HTML report of the strongest variants")
    parser.add_argument("--vcf-out", type=Path, help="also write the VCF with the scores as INFO fields (VCF input only)")
    parser.add_argument("--no-context", dest="context", action="store_false",
                        help="only score REF and ALT; no ranking among random substitutions (no p-values)")  # fmt: skip
    parser.add_argument("--draws", type=int, default=100,
                        help="random substitutions per REF window for the context of MNVs and indels (default 100)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the random substitutions")
    parser.add_argument("--motifs", action="store_true", default=None,
                        help="best JASPAR match over each variant in REF and ALT, and motif loss/gain (probekit[motifs]; "
                             "on by default when pyjaspar is installed)")  # fmt: skip
    parser.add_argument("--no-motifs", dest="motifs", action="store_false", help="no JASPAR motif scan")
    parser.add_argument("--motif-p", type=float, default=1e-5,
                        help="p-value at or below which a motif match counts as a site (default 1e-5)")  # fmt: skip
    parser.add_argument("--extra-outputs", type=output_list, default=[],
                        help="further outputs of a multi-output model, comma-separated (e.g. logit:0,value:3): "
                             "ref/alt/delta columns each")  # fmt: skip
    parser.add_argument("--lfc", action="store_true",
                        help="add log2 fold changes log2((alt + c) / (ref + c)), for count-like outputs")  # fmt: skip
    parser.add_argument("--pseudocount", type=float, default=1.0, help="c of --lfc (default 1)")
    parser.add_argument("--chrom-alias", action="append", default=[], metavar="VCF_NAME=GENOME_NAME",
                        help="read a VCF chromosome name as the genome's (e.g. MT=chrM); repeat as needed. "
                             "'chr' added or removed is tried without it")  # fmt: skip
    parser.add_argument("--chunk-size", type=int, default=10_000,
                        help="variants scored and saved together; a rerun resumes from saved chunks (default 10000)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_arguments(parser)


def chrom_aliases(pairs: list[str]) -> dict:
    """``--chrom-alias`` values as a dict; :class:`CLIError` for a value without ``=``.

    Examples
    --------
    >>> chrom_aliases(["MT=chrM", "23=chrX"])
    {'MT': 'chrM', '23': 'chrX'}
    """
    out = {}
    for pair in pairs:
        name, sep, target = pair.partition("=")
        if not sep or not name or not target:
            raise CLIError(f"--chrom-alias takes VCF_NAME=GENOME_NAME, got {pair!r}")
        out[name] = target
    return out


def _check_arguments(args) -> None:
    parse_output(args.output)
    try:
        table_format(args.table)
    except ValueError as error:
        raise CLIError(f"--table: {error}") from None
    for name in ("length", "draws", "chunk_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 < args.motif_p <= 1:
        raise CLIError(f"--motif-p must be in (0, 1], got {args.motif_p}")
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.offset is not None and not 0 <= args.offset < args.length:
        raise CLIError(f"--offset must be between 0 and --length - 1 ({args.length - 1}), got {args.offset}")
    if args.vcf_out is not None and not str(args.vcf).lower().endswith(VCF_SUFFIXES):
        raise CLIError(f"--vcf-out annotates a VCF, but {args.vcf} is a table: leave --vcf-out out")
    for flag, path in (("--genome", args.genome), ("--vcf", args.vcf)):
        if not path.exists():
            raise CLIError(f"{flag} file not found: {path}")


def variants_exit_code(outcome, log: Callable[[str], None]) -> int:
    """0 when at least one variant was scored; 1, saying so, when none was (the outputs are still written).

    Examples
    --------
    >>> from pathlib import Path
    >>> from probekit.variants.stream import StreamOutcome
    >>> variants_exit_code(StreamOutcome(Path("t.tsv"), n_rows=1, n_errors=1), print)
    no variant could be scored: all 1 failed (see the messages above and the table)
    1
    """
    if outcome.n_errors == outcome.n_rows:
        log(f"no variant could be scored: all {outcome.n_rows} failed (see the messages above and the table)")
        return 1
    return 0


def _settings(args, output) -> dict:
    return {"model": file_digest(args.model), "arch": args.arch, "arch_kwargs": getattr(args, "arch_kwargs", None),
            "output": output.name, "strands": args.strands, "layout": args.layout, "genome": str(args.genome.resolve())}  # fmt: skip


def _read_table(path: Path, columns: list[str]):
    import pandas as pd

    kind = table_format(path)
    if kind == "parquet":
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, sep=kind, usecols=columns, keep_default_na=True)


def run_variants(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit variants``: score the variants chunk by chunk into the table (and annotated VCF, report)."""
    import shutil

    from ..variants import write_annotated_vcf
    from ..variants.stream import partial_folder, score_variants_to_table

    _check_arguments(args)
    engine_options(args)
    motifs = resolve_motifs(args.motifs, log)
    model = load_model_from_args(args, log=log)
    adapter = _adapter(model, args)
    settings = _settings(args, adapter.output)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    scoring = dict(offset=args.offset, context=args.context, n_draws=args.draws, seed=args.seed, motifs=motifs,
                   motif_p=args.motif_p, outputs=args.extra_outputs, log_fold_change=args.lfc, pseudocount=args.pseudocount,
                   chrom_aliases=chrom_aliases(args.chrom_alias) or None)  # fmt: skip
    try:
        if args.engine == "ray":
            outcome = run_on_engine("variants", args.vcf, args=args, settings=settings, out_dir=partial_folder(args.table),
                                    log=log, genome=args.genome, length=args.length, table=args.table, **scoring)  # fmt: skip
            shutil.rmtree(partial_folder(args.table), ignore_errors=True)
        else:
            outcome = score_variants_to_table(
                adapter, args.vcf, args.genome, table=args.table, length=args.length, settings=settings,
                chunk_size=args.chunk_size, progress=not args.no_progress, log=log, **scoring,
            )  # fmt: skip
    except (ImportError, OSError, ValueError) as error:
        raise CLIError(one_line(error)) from None
    log(f"wrote {args.table}")
    if args.vcf_out is not None:
        args.vcf_out.parent.mkdir(parents=True, exist_ok=True)
        columns = ["chrom", "alt", "record", "error", "ref_score", "alt_score", "delta", "context_percentile", "p_value"]
        if motifs:
            columns += ["motif_ref", "motif_alt", "motif_change"]
        write_annotated_vcf(_read_table(args.table, columns), args.vcf, args.vcf_out)
        log(f"wrote {args.vcf_out}")
    if args.out is not None:
        from ..variants.report import variant_report

        report = variant_report(adapter, outcome.top, args.genome, length=args.length, offset=args.offset,
                                positions=_read_table(args.table, ["chrom", "pos", "delta", "error"]), params=settings,
                                chrom_aliases=scoring["chrom_aliases"])  # fmt: skip
        report.to_html(args.out)
        log(f"wrote {args.out}")
    log_problems(outcome.errors, "not scored", log)
    log(outcome.line())
    return variants_exit_code(outcome, log)
