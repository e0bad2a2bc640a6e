"""Shards on disk: their keys, and their tables as Parquet files that a rerun reuses.

A shard's folder is named by its number and by a key made of the run's settings
and the digest of the shard's own inputs, so a rerun with the same settings finds
the shards it already finished, and a shard whose inputs or settings changed is
computed again. A folder is written under a temporary name and renamed when
whole: a run stopped at any moment leaves only whole shards behind.

Examples
--------
>>> import tempfile
>>> import pandas as pd
>>> folder = Path(tempfile.mkdtemp()) / "shard-00000-abc"
>>> table = pd.DataFrame({"id": ["a", "b"], "n": pd.array([1, None], dtype="Int64"), "note": ["x", None]})
>>> write_tables(folder, {"rows": table}, {"kind": "demo"})
>>> tables, meta = read_tables(folder)
>>> tables["rows"].equals(table), meta["kind"], is_complete(folder)
(True, 'demo', True)
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..probe.chunks import file_digest, settings_hash

META = "meta.json"
# Files up to this size are named in shard keys by their SHA-256; larger ones by path, size and time.
DIGEST_LIMIT = 256 << 20


def describe(value):
    """A JSON-able description of a setting, stable across processes (files by their digest).

    Examples
    --------
    >>> describe({"draws": 10, "ids": ("a", "b"), "scale": 0.5})
    {'draws': 10, 'ids': ['a', 'b'], 'scale': 0.5}
    """
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        items = [describe(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set) else items
    if isinstance(value, os.PathLike):
        path = Path(value).resolve()
        if not path.is_file():
            return str(path)
        if path.stat().st_size > DIGEST_LIMIT:  # a genome: its path, size and time stand for it
            return {"file": str(path), "size": path.stat().st_size, "mtime": path.stat().st_mtime}
        return {"file": path.name, "sha256": file_digest(path)}
    if isinstance(value, functools.partial):
        return {"call": describe(value.func), "args": describe(value.args), "keywords": describe(value.keywords)}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def shard_key(base: str, part: pd.DataFrame, columns) -> str:
    """The key of one shard: the run's ``base`` key and the digest of the shard's ``columns``."""
    present = [c for c in columns if c in part.columns]
    rows = part[present].astype(str).to_numpy().tolist()
    return settings_hash([base, present, settings_hash(rows)])


def shard_folder(out_dir: Path, index: int, key: str) -> Path:
    """``<out_dir>/shard-<index>-<key>``."""
    return Path(out_dir) / f"shard-{index:06d}-{key}"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole shard (its folder is renamed into place only when whole)."""
    return (Path(folder) / META).is_file()


def _encoding(column: pd.Series) -> str:
    """How an object column is stored: ``"text"`` (str and missing), ``"array"`` (NumPy arrays) or ``"json"``."""
    values = [v for v in column if not _missing(v)]
    if all(isinstance(v, str) for v in values):
        return "text"
    if all(isinstance(v, np.ndarray) for v in values):
        return "array"
    return "json"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _for_parquet(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The table ready for Arrow, and what its object columns need to come back as they were."""
    columns = {}
    out = table.copy()
    for name in table.columns:
        column = table[name]
        if column.dtype != object:
            continue
        encoding = _encoding(column)
        nan = any(isinstance(v, float) and math.isnan(v) for v in column)
        columns[str(name)] = {"encoding": encoding, "missing": "nan" if nan else "none"}
        if encoding == "json":
            out[name] = [None if _missing(v) else json.dumps(v, default=str) for v in column]
        elif encoding == "text":
            out[name] = [None if _missing(v) else v for v in column]
    return out, columns


def _from_parquet(table: pd.DataFrame, columns: dict) -> pd.DataFrame:
    for name, how in columns.items():
        missing = np.nan if how["missing"] == "nan" else None
        values = table[name].astype(object)
        if how["encoding"] == "json":
            values = [missing if _missing(v) else json.loads(v) for v in values]
        else:
            values = [missing if v is None or (not isinstance(v, np.ndarray) and pd.isna(v)) else v for v in values]
        table[name] = pd.Series(values, index=table.index, dtype=object)
    return table


def _arrow(table: pd.DataFrame, columns: dict):
    """``table`` as an Arrow table; columns of equal-length NumPy arrays as fixed-size lists, without a copy per row."""
    import pyarrow as pa

    arrays = [name for name, how in columns.items() if how["encoding"] == "array" and _stackable(table[name])]
    for name in arrays:
        columns[name]["encoding"] = "fixed"
    arrow = pa.Table.from_pandas(table.drop(columns=arrays), preserve_index=False)
    for name in arrays:
        stacked = np.stack(table[name].tolist()) if len(table) else np.zeros((0, 0))
        values = pa.array(stacked.reshape(-1))
        arrow = arrow.append_column(name, pa.FixedSizeListArray.from_arrays(values, stacked.shape[1]))
    return arrow.select([str(c) for c in table.columns])


def _stackable(column: pd.Series) -> bool:
    shapes = {v.shape for v in column if isinstance(v, np.ndarray)}
    return len(shapes) == 1 and len(next(iter(shapes))) == 1 and column.map(lambda v: isinstance(v, np.ndarray)).all()


def _pandas(arrow, columns: dict) -> pd.DataFrame:
    fixed = [name for name, how in columns.items() if how["encoding"] == "fixed"]
    table = arrow.drop_columns(fixed).to_pandas()
    for name in fixed:
        column = arrow.column(name).combine_chunks()
        values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        table[name] = pd.Series(list(values), index=table.index, dtype=object)
    return table[list(arrow.column_names)]


def write_tables(folder: Path, tables: dict, meta: dict) -> None:
    """Write ``tables`` (name -> DataFrame) as Parquet files and ``meta`` as JSON into ``folder``, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stored = {}
    for name, table in tables.items():
        ready, columns = _for_parquet(table.reset_index(drop=True))
        arrow = _arrow(ready, columns)
        text = [f.name for f in arrow.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        pq.write_table(arrow, tmp / f"{name}.parquet", use_dictionary=text)  # numbers: dictionaries only cost time
        stored[name] = columns
    (tmp / META).write_text(json.dumps({**meta, "tables": stored}, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def read_tables(folder: Path) -> tuple[dict, dict]:
    """The tables and meta of a shard written by :func:`write_tables`: values and dtypes as written."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    tables = {}
    for name, columns in meta.pop("tables").items():
        table = _pandas(pq.read_table(folder / f"{name}.parquet"), columns)
        tables[name] = _from_parquet(table, {k: v for k, v in columns.items() if v["encoding"] != "fixed"})
    return tables, meta


def parquet_error() -> ImportError | None:
    """The error to raise when pyarrow, which writes the shards, is missing; None when it is there."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return ImportError('shards are written as Parquet, which needs pyarrow: pip install "probekit[scale]"')
    return None


__all__ = ["describe", "shard_key", "shard_folder", "is_complete", "write_tables", "read_tables", "parquet_error"]
