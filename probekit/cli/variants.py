"""``probekit variants``: score SNPs and indels of a VCF or variant table with a DNA-sequence model.

Each ALT allele gets the model's score on its REF and ALT windows of the reference
genome, their difference ``delta`` and, unless ``--no-context``, how that change ranks
among random substitutions of the same window. The table is written as CSV or TSV
(by the name's extension) and, for VCF input, the scores can also be written into
a copy of the VCF (``--vcf-out``).

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_variants_arguments(parser)
>>> args = parser.parse_args(["--model", "m.pt", "--genome", "g.fa", "--vcf", "v.vcf.gz", "--length", "200",
...                           "--table", "v.tsv"])
>>> args.output, args.draws, args.context, table_separator(args.table)
('logit:1', 100, True, '\\t')

From a shell::

    probekit variants --model model.pt --genome hg38.fa --vcf calls.vcf.gz --length 1000 --table scores.tsv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

from ..variants.io import VCF_SUFFIXES
from .common import CLIError, _adapter, add_model_arguments, load_model_from_args, log_problems, one_line, parse_output

# Table extensions and their separators.
TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t"}


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
    parser.add_argument("--table", required=True, type=Path, help="per-variant table to write (.csv or .tsv)")
    parser.add_argument("--vcf-out", type=Path, help="also write the VCF with the scores as INFO fields (VCF input only)")
    parser.add_argument("--no-context", dest="context", action="store_false",
                        help="only score REF and ALT; no ranking among random substitutions (no p-values)")  # fmt: skip
    parser.add_argument("--draws", type=int, default=100,
                        help="random substitutions per REF window for the context of MNVs and indels (default 100)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the random substitutions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def table_separator(path: Path) -> str:
    """The separator of the table ``path`` by its extension; :class:`CLIError` for other names.

    Examples
    --------
    >>> table_separator(Path("scores.CSV"))
    ','
    >>> table_separator(Path("scores.txt"))
    Traceback (most recent call last):
    ...
    probekit.cli.common.CLIError: cannot tell the format of --table scores.txt from its name: end it in .csv or .tsv
    """
    separator = TABLE_SEPARATORS.get(path.suffix.lower())
    if separator is None:
        raise CLIError(f"cannot tell the format of --table {path} from its name: end it in .csv or .tsv")
    return separator


def _check_arguments(args) -> None:
    parse_output(args.output)
    table_separator(args.table)
    for name in ("length", "draws"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.offset is not None and not 0 <= args.offset < args.length:
        raise CLIError(f"--offset must be between 0 and --length - 1 ({args.length - 1}), got {args.offset}")
    if args.vcf_out is not None and not str(args.vcf).lower().endswith(VCF_SUFFIXES):
        raise CLIError(f"--vcf-out annotates a VCF, but {args.vcf} is a table: leave --vcf-out out")
    for flag, path in (("--genome", args.genome), ("--vcf", args.vcf)):
        if not path.exists():
            raise CLIError(f"{flag} file not found: {path}")


def outcome_line(frame) -> str:
    """The summary line of a scored table: how many were scored, the median ``|delta|`` and small p-values.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"delta": [0.5, -1.5, float("nan")], "p_value": [0.01, 0.2, float("nan")],
    ...                       "error": [None, None, "bad"]})
    >>> outcome_line(frame)
    'scored 2 of 3 variants (1 errors); median |delta| 1; 1 with p < 0.05'
    >>> outcome_line(frame.assign(p_value=float("nan")))
    'scored 2 of 3 variants (1 errors); median |delta| 1'
    """
    errors = int(frame["error"].notna().sum())
    scored = frame.loc[frame["error"].isna(), "delta"].abs()
    median = scored.median() if len(scored) else math.nan
    line = f"scored {len(frame) - errors} of {len(frame)} variants ({errors} errors); median |delta| {median:.3g}"
    p_values = frame["p_value"].dropna()
    if len(p_values):
        line += f"; {int((p_values < 0.05).sum())} with p < 0.05"
    return line


def variants_exit_code(frame, log: Callable[[str], None]) -> int:
    """0 when at least one variant was scored; 1, saying so, when none was (the outputs are still written).

    Examples
    --------
    >>> import pandas as pd
    >>> variants_exit_code(pd.DataFrame({"error": ["bad"]}), print)
    no variant could be scored: all 1 failed (see the messages above and the table)
    1
    """
    if frame["error"].notna().all():
        log(f"no variant could be scored: all {len(frame)} failed (see the messages above and the table)")
        return 1
    return 0


def run_variants(args, *, log: Callable[[str], None] = print) -> int:
    """``probekit variants``: score the variants of a VCF or table and write the table (and annotated VCF)."""
    from ..variants import score_variants, write_annotated_vcf

    _check_arguments(args)
    model = load_model_from_args(args, log=log)
    adapter = _adapter(model, args)
    try:
        result = score_variants(
            adapter, args.vcf, args.genome, length=args.length, offset=args.offset, context=args.context,
            n_draws=args.draws, seed=args.seed, progress=not args.no_progress,
        )  # fmt: skip
    except (ImportError, OSError, ValueError) as error:
        raise CLIError(one_line(error)) from None
    frame = result.to_frame()
    args.table.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.table, sep=table_separator(args.table), index=False)
    log(f"wrote {args.table}")
    if args.vcf_out is not None:
        args.vcf_out.parent.mkdir(parents=True, exist_ok=True)
        write_annotated_vcf(result, args.vcf, args.vcf_out)
        log(f"wrote {args.vcf_out}")
    log_problems(frame.loc[frame["error"].notna(), "error"].tolist(), "not scored", log)
    log(outcome_line(frame))
    return variants_exit_code(frame, log)
