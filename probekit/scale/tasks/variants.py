"""The ``"variants"`` task: :func:`probekit.variants.score_variants` on each chunk of a VCF or variant table.

The shards are joined into one table as
:func:`~probekit.variants.stream.score_variants_to_table` writes it (``table=``);
each worker opens the genome (``genome=``, a FASTA path) once.

Examples
--------
>>> TASKS["variants"].needs, TASKS["variants"].driver_only
(('genome', 'length', 'table'), ('table', 'top'))
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .common import Task, good_meta, join_shard_tables

_VARIANT_KEYS = ("id", "chrom", "pos", "ref", "alt", "error")
_NOT_SCORING = ("table", "top", "genome", "length", "chrom_aliases")


def _variant_chunks(inputs, size: int, options: dict) -> Iterator[pd.DataFrame]:
    from ...variants.io import iter_variants

    return iter_variants(inputs, chunk_size=size)


def _score(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ...variants import score_variants
    from ...variants.genome import Genome

    if "genome" not in state:
        state["genome"] = Genome(options["genome"], chrom_aliases=options.get("chrom_aliases"))
    scoring = {k: v for k, v in options.items() if k not in _NOT_SCORING}
    result = score_variants(adapter, part, state["genome"], length=options["length"], chunk_size=max(len(part), 1), **scoring)
    return {"variants": result.to_frame()}, {}


def _variants_failed(part: pd.DataFrame, reason: str) -> dict:
    frame = part[[c for c in _VARIANT_KEYS if c in part.columns]].copy()
    frame["error"] = [e if isinstance(e, str) else reason for e in frame.get("error", [None] * len(frame))]
    for name in ("ref_score", "alt_score", "delta", "p_value"):
        frame[name] = np.nan
    return {"variants": frame}


def _merge_variants(folders: list[Path], options: dict, reused: int):
    from ...variants.stream import StreamOutcome, join_chunks, table_format

    columns = list(good_meta(folders)[0]["variants"].columns)
    outcome = StreamOutcome(path=Path(options["table"]), n_reused=reused)
    join_shard_tables(folders, "variants", columns, options["table"],
                      lambda paths, table: join_chunks(paths, table, kind=table_format(table), outcome=outcome,
                                                       top=options.get("top", 20)))  # fmt: skip
    return outcome


def _genome_path(options: dict) -> dict:
    """``options`` with ``genome=`` as a path, which each worker opens itself (an open Genome's aliases come along)."""
    from ...variants.genome import Genome

    genome = options["genome"]
    if isinstance(genome, (str, Path)):
        return options
    if not isinstance(genome, Genome):
        raise TypeError("task 'variants' takes genome= as a FASTA path or a probekit Genome, opened once by each worker")
    aliases = {**genome.chrom_aliases, **(options.get("chrom_aliases") or {})}
    return {**options, "genome": Path(genome.path), **({"chrom_aliases": aliases} if aliases else {})}


TASKS = {
    "variants": Task("variants", _variant_chunks, _score, _variants_failed, _merge_variants, _VARIANT_KEYS, "var",
                     shard_size=10_000, sized=False, needs=("genome", "length", "table"), driver_only=("table", "top"),
                     prepare=_genome_path),
}  # fmt: skip

__all__ = ["TASKS"]
