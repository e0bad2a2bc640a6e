"""Scoring a VCF of any size chunk by chunk: results stream to Parquet or TSV, and an interrupted run resumes.

:func:`score_variants_to_table` reads the variants a chunk at a time (never the
whole file), scores each chunk with :func:`~probekit.variants.score_variants`,
and saves each finished chunk under a folder next to the table, keyed by a hash
of the settings and of the chunk's variants. A rerun with the same settings
reuses the saved chunks and scores only the rest; once every chunk is done, the
chunks are joined into the table (Parquet row groups, or TSV/CSV appended in
order) and the folder is removed. Memory holds one chunk at a time.
:func:`stream_chunks` (the resumable loop) and :func:`write_table` (the join) serve
any table streamed this way, such as a molecule screen
(:func:`probekit.screening.screen_molecules_to_table`).

Examples
--------
>>> import os, tempfile
>>> import pandas as pd
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> folder = tempfile.mkdtemp()
>>> fasta = os.path.join(folder, "g.fa")
>>> _ = open(fasta, "w").write(">chr1\\nACGTTGCAACGTACGTTGCA\\n")
>>> variants = pd.DataFrame({"chrom": ["chr1"] * 3, "pos": [5, 10, 12], "ref": ["T", "C", "T"], "alt": ["A", "G", "C"]})
>>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
>>> outcome = score_variants_to_table(adapter, variants, fasta, table=os.path.join(folder, "scores.tsv"), length=10,
...                                   chunk_size=2, settings={"model": "toy"}, progress=False, log=lambda line: None)
>>> outcome.n_rows, outcome.n_chunks, outcome.n_errors
(3, 2, 0)
>>> len(pd.read_csv(os.path.join(folder, "scores.tsv"), sep="\\t"))
3
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..probe.chunks import ChunksKept, settings_hash
from .io import iter_variants

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".tsv": "\t", ".csv": ","}
_KEY_COLUMNS = ("id", "chrom", "pos", "ref", "alt", "error")
_BOOL_COLUMNS = {"in_critical_region"}


def table_format(path) -> str:
    """``"parquet"``, or the separator of a TSV/CSV table, from the name of ``path``.

    Examples
    --------
    >>> table_format("scores.parquet"), table_format("scores.TSV")
    ('parquet', '\\t')
    """
    kind = TABLE_FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(f"cannot tell the format of the table {path} from its name: end it in .parquet, .tsv or .csv")
    return kind


@dataclass
class StreamOutcome:
    """What a streamed run wrote: counts, the strongest variants and what the summary line says.

    Attributes
    ----------
    path : Path
        The table written.
    n_rows, n_errors, n_chunks, n_reused : int
        Variants (one row per ALT), error rows, chunks, and chunks reused from an earlier run.
    top : pandas.DataFrame
        The ``top`` scored rows with the largest ``|delta|`` (ties: file order), for reports.
    abs_delta_median : float
        Median ``|delta|`` of the scored rows (kept as float32 while joining: 4 bytes per variant).
    n_significant : int
        Rows with ``p_value < 0.05``.
    errors : list of str
        The first 1,000 error messages, in order.
    """

    path: Path
    n_rows: int = 0
    n_errors: int = 0
    n_chunks: int = 0
    n_reused: int = 0
    top: pd.DataFrame = field(default_factory=pd.DataFrame)
    abs_delta_median: float = math.nan
    n_significant: int = 0
    errors: list = field(default_factory=list)

    def line(self) -> str:
        """The summary line: how many were scored, the median ``|delta|`` and small p-values."""
        scored = self.n_rows - self.n_errors
        text = f"scored {scored} of {self.n_rows} variants ({self.n_errors} errors); median |delta| {self.abs_delta_median:.3g}"
        return text + (f"; {self.n_significant} with p < 0.05" if self.n_significant else "")


def _chunk_key(part: pd.DataFrame, settings: dict, index: int, key_columns=_KEY_COLUMNS) -> str:
    rows = part[[c for c in key_columns if c in part.columns]].astype(str).to_numpy().tolist()
    return settings_hash({"settings": settings, "chunk": index, "rows": settings_hash(rows)})


def _arrow_table(frame: pd.DataFrame):
    """The chunk as an Arrow table with one fixed type per kind of column, so every chunk has the same schema."""
    import pyarrow as pa

    arrays, names = [], []
    for name in frame.columns:
        column = frame[name]
        if name in _BOOL_COLUMNS:  # True, False or None (not computed); a chunk without one is all NaN
            arrays.append(pa.array([None if v is None or v != v else bool(v) for v in column], type=pa.bool_()))
        elif pd.api.types.is_bool_dtype(column):
            arrays.append(pa.array(column.to_numpy(), type=pa.bool_()))
        elif pd.api.types.is_integer_dtype(column):
            arrays.append(pa.array(column.astype("Int64"), type=pa.int64(), from_pandas=True))
        elif pd.api.types.is_float_dtype(column):
            arrays.append(pa.array(column.to_numpy(dtype=np.float64), type=pa.float64()))
        else:
            arrays.append(pa.array([v if isinstance(v, str) else None for v in column], type=pa.string()))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError(
            "resumable tables keep their finished chunks as Parquet, which needs pyarrow: pip install pyarrow "
            '(the extras "probekit[variants]", "probekit[molecules]" and "probekit[scale]" install it)'
        ) from error
    return pq


def save_chunk(frame: pd.DataFrame, path: Path) -> None:
    """Write one chunk's table to ``path`` as Parquet, with the fixed column types every chunk shares; atomically."""
    pq = _pyarrow()
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(_arrow_table(frame), tmp)
    os.replace(tmp, path)  # a chunk file exists only once it is whole


def _load_chunk(path: Path) -> pd.DataFrame:
    pq = _pyarrow()
    frame = pq.read_table(path).to_pandas()
    for name in ("pos", "n_bases", "record", "window_start"):
        if name in frame.columns:
            frame[name] = frame[name].astype("Int64")
    return frame.astype({c: object for c in frame.columns if frame[c].dtype == object})


class _Writer:
    """Appends chunk tables to a Parquet file (one row group each) or a TSV/CSV, in order."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self.tmp = path.with_name(path.name + ".tmp")
        self.parquet = None
        self.columns: list | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.columns is None:
            self.columns = list(frame.columns)
        missing = [c for c in self.columns if c not in frame.columns]
        frame = frame.assign(**{c: None for c in missing})[self.columns]
        if self.kind == "parquet":
            pq = _pyarrow()
            table = _arrow_table(frame)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.tmp, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        else:
            first = not self.tmp.exists()
            frame.to_csv(self.tmp, sep=self.kind, index=False, header=first, mode="w" if first else "a")

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        if self.tmp.exists():
            os.replace(self.tmp, self.path)


def _top(current: pd.DataFrame, frame: pd.DataFrame, n: int) -> pd.DataFrame:
    scored = frame[frame["error"].isna()]
    both = pd.concat([current, scored], ignore_index=True) if len(current) else scored.reset_index(drop=True)
    order = np.argsort(-both["delta"].abs().to_numpy(), kind="stable")
    return both.iloc[order[:n]].reset_index(drop=True)


def partial_folder(table: Path) -> Path:
    """Where the finished chunks of ``table`` are kept until it is written: ``<table>.partial/``."""
    return table.with_name(table.name + ".partial")


def score_variants_to_table(
    adapter,
    variants,
    genome,
    *,
    table,
    length: int,
    settings: dict,
    chunk_size: int = 10_000,
    top: int = 20,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **score_kwargs,
) -> StreamOutcome:
    """Score every variant of ``variants`` chunk by chunk into the table ``table``; resume where a run stopped.

    Parameters
    ----------
    adapter : SequenceModel
    variants : str, Path or pandas.DataFrame
        A VCF/BCF or table path (read chunk by chunk) or a variant table.
    genome : Genome, str or Path
    table : str or Path
        ``.parquet`` (one row group per chunk), ``.tsv`` or ``.csv``; written whole at the end.
    length : int
        The model's input length.
    settings : dict
        What identifies the model (file digest, output, strands): with the scoring
        settings, it keys the saved chunks, so a rerun reuses only chunks scored the same way.
    chunk_size : int
        Variants per saved chunk.
    top : int
        Strongest rows kept in :attr:`StreamOutcome.top`.
    progress : bool
        A progress bar over variants.
    log : callable
        Receives one line when chunks are reused.
    **score_kwargs
        Passed to :func:`~probekit.variants.score_variants` (``offset``, ``context``,
        ``n_draws``, ``seed``, ``motifs``, ``outputs``, ``log_fold_change`` ...).

    Returns
    -------
    StreamOutcome

    Raises
    ------
    ChunksKept
        On KeyboardInterrupt after some chunks were saved: rerun the same call to resume.
    """
    from .genome import Genome
    from .score import score_variants

    table = Path(table)
    kind = table_format(table)
    if kind == "parquet":
        _pyarrow()
    folder = partial_folder(table)
    folder.mkdir(parents=True, exist_ok=True)
    motifs = score_kwargs.get("motifs")
    described = {**score_kwargs, "motifs": motifs if isinstance(motifs, bool) or motifs is None else
                 [f"{m.name} {m.matrix_id} {getattr(m, 'counts', '')}" for m in motifs]}  # fmt: skip
    full = {"settings": settings, "length": length, "chunk_size": chunk_size,
            **{k: (v if isinstance(v, (bool, int, float, str, type(None), list)) else str(v)) for k, v in described.items()}}  # fmt: skip
    outcome = StreamOutcome(path=table)
    opened = None
    aliases = score_kwargs.pop("chrom_aliases", None)
    if isinstance(genome, (str, os.PathLike)):
        genome = opened = Genome(genome, chrom_aliases=aliases)
    full["chrom_aliases"] = aliases

    def score(part: pd.DataFrame) -> pd.DataFrame:
        return score_variants(adapter, part, genome, length=length, chunk_size=chunk_size, **score_kwargs).to_frame()

    try:
        paths, outcome.n_reused = stream_chunks(iter_variants(variants, chunk_size=chunk_size), score, folder=folder,
                                                settings=full, key_columns=_KEY_COLUMNS, progress=progress,
                                                desc="variants", unit="var")  # fmt: skip
    finally:
        if opened is not None:
            opened.close()
    if outcome.n_reused:
        log(f"reused {outcome.n_reused} of {len(paths)} finished chunks from {folder}")
    join_chunks(paths, table, kind=kind, outcome=outcome, top=top)
    shutil.rmtree(folder, ignore_errors=True)
    return outcome


def stream_chunks(parts, compute: Callable, *, folder: Path, settings: dict, key_columns, progress: bool = True,
                  desc: str = "rows", unit: str = "row") -> tuple[list[Path], int]:  # fmt: skip
    """Each part's table computed and saved in ``folder``, or reused where an earlier run saved it: the resumable loop.

    Parameters
    ----------
    parts : iterable of pandas.DataFrame
        The input chunks, read lazily.
    compute : callable
        ``compute(part) -> DataFrame``, the table of one chunk.
    folder : Path
        Where the chunks are saved (``chunk-<n>-<key>.parquet``); a chunk's key is a
        hash of ``settings``, its number and its ``key_columns``.
    settings : dict
        What identifies the computation.
    key_columns : tuple of str
        Columns of a part that say what its records are.
    progress : bool
        A progress bar over records (``desc``, ``unit``).

    Returns
    -------
    paths : list of Path
        The saved chunks, in order (join them with :func:`write_table`).
    reused : int
        Chunks an earlier run had saved.

    Raises
    ------
    ChunksKept
        On KeyboardInterrupt: the chunks saved so far are kept, and a rerun resumes from them.

    Examples
    --------
    >>> import tempfile
    >>> parts = [pd.DataFrame({"id": ["a", "b"]}), pd.DataFrame({"id": ["c"]})]
    >>> folder = Path(tempfile.mkdtemp())
    >>> paths, reused = stream_chunks(parts, lambda p: p.assign(n=len(p)), folder=folder, settings={}, key_columns=("id",),
    ...                               progress=False)
    >>> len(paths), reused, stream_chunks(parts, None, folder=folder, settings={}, key_columns=("id",), progress=False)[1]
    (2, 0, 2)
    """
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, unit=unit, disable=not progress)
    paths, reused = [], 0
    try:
        for index, part in enumerate(parts):
            path = folder / f"chunk-{index:06d}-{_chunk_key(part, settings, index, key_columns)}.parquet"
            if path.exists():
                reused += 1
            else:
                save_chunk(compute(part), path)
            paths.append(path)
            bar.update(len(part))
    except KeyboardInterrupt:
        raise ChunksKept(folder, len(paths)) from None
    finally:
        bar.close()
    return paths, reused


def write_table(paths: list[Path], table: Path, *, kind: str, each: Callable | None = None) -> None:
    """Write the saved chunks ``paths`` into ``table`` in order, one chunk in memory at a time.

    ``kind`` is ``"parquet"`` (one row group per chunk) or the separator of a TSV/CSV
    (:func:`table_format`); ``each(frame)``, when given, sees every chunk as it is written.
    """
    writer = _Writer(table, kind)
    for path in paths:
        frame = _load_chunk(path)
        writer.write(frame)
        if each is not None:
            each(frame)
    writer.close()


def join_chunks(paths: list[Path], table: Path, *, kind: str, outcome: StreamOutcome, top: int) -> None:
    """Write the saved chunks ``paths`` into ``table`` (``kind`` from :func:`table_format`) in order, counting into ``outcome``."""
    deltas = []
    best = pd.DataFrame()

    def count(frame: pd.DataFrame) -> None:
        nonlocal best
        errors = frame["error"].notna()
        outcome.n_rows += len(frame)
        outcome.n_errors += int(errors.sum())
        outcome.n_chunks += 1
        outcome.n_significant += int((frame["p_value"] < 0.05).sum())
        outcome.errors.extend(frame.loc[errors, "error"].tolist()[: max(0, 1000 - len(outcome.errors))])
        deltas.append(frame.loc[~errors, "delta"].abs().to_numpy(dtype=np.float32))
        best = _top(best, frame, top)

    write_table(paths, table, kind=kind, each=count)
    values = np.concatenate(deltas) if deltas else np.zeros(0, dtype=np.float32)
    values = values[~np.isnan(values)]
    outcome.abs_delta_median = float(np.median(values)) if values.size else math.nan
    outcome.top = best


__all__ = ["score_variants_to_table", "StreamOutcome", "table_format", "partial_folder", "save_chunk", "join_chunks",
           "stream_chunks", "write_table", "TABLE_FORMATS"]
