"""Shards on disk: their keys, and their tables as Parquet files that a rerun reuses.

Columns of equal-shape numeric arrays (ISM effects, attributions) are stacked and
kept as ``.npy`` files beside the table's Parquet file, which costs a copy to
write and read where Parquet lists cost an encoding of every value.

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
    if callable(getattr(value, "fit_digest", None)):  # a fitted featurizer: what it learnt keys the shards too
        return {"object": repr(value), "fit": value.fit_digest()}
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


def _encoding(values: np.ndarray) -> str:
    """How an object column is stored: ``"text"`` (str and missing), ``"npy"`` (NumPy arrays of one
    shape and numeric dtype), ``"array"`` (other NumPy arrays) or ``"json"``."""
    present = [v for v in values if not _missing(v)]
    if all(isinstance(v, str) for v in present):
        return "text"
    if all(isinstance(v, np.ndarray) for v in present):
        kinds = {(v.shape, v.dtype) for v in present}
        shape, dtype = next(iter(kinds)) if len(kinds) == 1 else ((), None)
        return "npy" if len(shape) and dtype.kind in "biufc" else "array"
    return "json"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _split(table: pd.DataFrame, name: str) -> tuple[pd.DataFrame, dict, dict]:
    """``table`` ready for Parquet, how its object columns come back, and the arrays kept in ``.npy`` files.

    A column of equal-shape numeric arrays (the effects of ISM, one row per input) is
    stacked into one array and saved as it is in memory: writing and reading it costs
    a copy, where Parquet lists cost encoding and decoding every value.
    """
    ready, columns, arrays = {}, {}, {}
    for position, column in enumerate(table.columns):
        if table[column].dtype != object:
            ready[column] = table[column]
            continue
        values = table[column].to_numpy()
        encoding = _encoding(values)
        nan = any(isinstance(v, float) and math.isnan(v) for v in values)
        how = columns[str(column)] = {"encoding": encoding, "missing": "nan" if nan else "none"}
        if encoding == "npy":
            present = [i for i, v in enumerate(values) if isinstance(v, np.ndarray)]
            how.update(file=f"{name}.{position}.npy", rows=None if len(present) == len(values) else present)
            arrays[how["file"]] = np.stack(values[present].tolist()) if present else np.zeros(0)
        elif encoding == "json":
            ready[column] = [None if _missing(v) else json.dumps(v, default=str) for v in values]
        elif encoding == "text":
            ready[column] = [None if _missing(v) else v for v in values]
        else:
            ready[column] = table[column]
    return pd.DataFrame(ready, index=table.index), columns, arrays


def _column(how: dict, values, folder: Path, n: int) -> pd.Series:
    """An object column as it was written, from its Parquet ``values`` or its ``.npy`` file."""
    missing = np.nan if how["missing"] == "nan" else None
    if how["encoding"] == "npy":
        stacked = np.load(folder / how["file"], allow_pickle=False)
        out = np.full(n, missing, dtype=object)
        for row, value in zip(range(n) if how["rows"] is None else how["rows"], stacked):
            out[row] = value
        return pd.Series(out, dtype=object)
    if how["encoding"] == "fixed":  # fixed-size lists: how shards were written before
        column = values.combine_chunks()
        return pd.Series(list(column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)), dtype=object)
    values = values.to_pandas().astype(object)
    if how["encoding"] == "json":
        return pd.Series([missing if _missing(v) else json.loads(v) for v in values], dtype=object)
    return pd.Series([missing if v is None or (not isinstance(v, np.ndarray) and pd.isna(v)) else v for v in values],
                     dtype=object)  # fmt: skip


def _read(folder: Path, name: str, columns: dict, layout: dict | None) -> pd.DataFrame:
    """Table ``name`` of a shard: its Parquet file and the ``.npy`` files of its array columns."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(folder / f"{name}.parquet") as file:  # not read_table: its dataset layer costs ms a file
        arrow = file.read(use_threads=False)
    order = layout["order"] if layout else arrow.column_names
    n = layout["rows"] if layout else arrow.num_rows
    plain = arrow.drop_columns(list(set(columns) & set(arrow.column_names))).to_pandas()
    values = {c: plain[c] if c in plain else _column(columns[c], arrow.column(c) if c in arrow.column_names else None, folder, n)
              for c in order}  # fmt: skip
    return pd.DataFrame(values, index=pd.RangeIndex(n))


def write_tables(folder: Path, tables: dict, meta: dict) -> None:
    """Write ``tables`` (name -> DataFrame) and ``meta`` into ``folder``, atomically.

    Each table is a Parquet file, its columns of equal-shape numeric arrays ``.npy``
    files beside it; ``meta`` and how to read the tables back are ``meta.json``. All
    are written into a temporary folder that is renamed into place when whole, so a
    shard is there whole or not at all.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stored, layout = {}, {}
    for name, table in tables.items():
        table = table.reset_index(drop=True)
        ready, columns, arrays = _split(table, name)
        arrow = pa.Table.from_pandas(ready, preserve_index=False)
        text = [f.name for f in arrow.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        pq.write_table(arrow, tmp / f"{name}.parquet", use_dictionary=text)  # numbers: dictionaries only cost time
        for file, array in arrays.items():
            np.save(tmp / file, array, allow_pickle=False)
        stored[name] = columns
        layout[name] = {"rows": len(table), "order": [str(c) for c in table.columns]}
    (tmp / META).write_text(json.dumps({**meta, "tables": stored, "layout": layout}, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def read_meta(folder: Path) -> dict:
    """The meta of a shard written by :func:`write_tables`, without reading its tables."""
    meta = json.loads((Path(folder) / META).read_text())
    meta.pop("layout", None)
    meta.pop("tables", None)
    return meta


def read_tables(folder: Path) -> tuple[dict, dict]:
    """The tables and meta of a shard written by :func:`write_tables`: values and dtypes as written."""
    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    layout = meta.pop("layout", {})
    tables = {name: _read(folder, name, columns, layout.get(name)) for name, columns in meta.pop("tables").items()}
    return tables, meta


def parquet_error() -> ImportError | None:
    """The error to raise when pyarrow, which writes the shards, is missing; None when it is there."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return ImportError('shards are written as Parquet, which needs pyarrow: pip install "probekit[scale]"')
    return None


__all__ = ["describe", "shard_key", "shard_folder", "is_complete", "write_tables", "read_tables", "read_meta", "parquet_error"]
