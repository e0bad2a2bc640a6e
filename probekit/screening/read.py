"""A library of molecules read a chunk at a time, as text: the records are parsed where they are scored.

:func:`iter_molecule_chunks` reads a ``.smi`` or ``.csv``/``.tsv`` file lazily, so a
library of millions of lines never sits in memory whole, and yields frames of
``id`` and ``smiles`` as written. Names follow :func:`probekit.read_molecules`
(the rest of a ``.smi`` line, else ``line<N>``; the ``id``/``name`` column of a
table, else ``mol<row>``), except that repeated names are kept as written: a
library may list one compound twice, and renaming would need the whole file.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "lib.smi")
>>> _ = open(path, "w").write("smiles\\nCCO ethanol\\n\\nc1ccccc1O\\noops(\\n")
>>> [part.values.tolist() for part in iter_molecule_chunks(path, chunk_size=2)]
[[['ethanol', 'CCO'], ['line4', 'c1ccccc1O']], [['line5', 'oops(']]]
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import Iterator

import pandas as pd

_SMI = (".smi", ".smiles")
_TABLES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def iter_molecule_chunks(source, *, chunk_size: int = 10_000, smiles_col: str | None = None,
                         id_col: str | None = None) -> Iterator[pd.DataFrame]:  # fmt: skip
    """The records of ``source``, ``chunk_size`` at a time, as frames of ``id`` and ``smiles`` (unparsed).

    Parameters
    ----------
    source : str, Path, list of str, dict or DataFrame
        A ``.smi``/``.smiles`` file or a ``.csv``/``.tsv``/``.tab`` table, read
        lazily; an ``.sdf`` file, read whole by :func:`probekit.read_molecules`
        (its frame, with parsed ``mol`` and ``error``, is cut into chunks); a list
        of SMILES (``mol0``, ``mol1``, ...), a mapping id -> SMILES, a table with
        a SMILES column, or the frame of :func:`probekit.read_molecules` (kept as it is).
    chunk_size : int
        Records per frame.
    smiles_col, id_col : str, optional
        Columns of a table, as :func:`probekit.read_molecules` takes them.

    Yields
    ------
    pandas.DataFrame
        ``id`` and ``smiles`` (and ``mol``, ``error`` for parsed input), indexed from 0.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing file, an unknown extension, or a table without the columns named.

    Examples
    --------
    >>> [part["id"].tolist() for part in iter_molecule_chunks(["CCO", "CCN", "CCC"], chunk_size=2)]
    [['mol0', 'mol1'], ['mol2']]
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if isinstance(source, (str, os.PathLike)) and _is_file_name(source):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"molecule file not found: {path}")
        suffix = path.suffix.lower()
        if suffix in _SMI:
            return _frames(_smi_rows(path), chunk_size)
        if suffix in _TABLES:
            return _table_chunks(path, _TABLES[suffix], chunk_size, smiles_col, id_col)
        from ..io import read_molecules

        return _cut(read_molecules(path, id_col=id_col), chunk_size)
    if isinstance(source, pd.DataFrame):
        if {"id", "smiles", "error"} <= set(source.columns):  # read already (parsed, or chunks of this reader)
            return _cut(source, chunk_size)
        return _cut(_table_frame(source, smiles_col, id_col, start=0, source="DataFrame"), chunk_size)
    if isinstance(source, dict):
        rows = ((str(k), v) for k, v in source.items())
    else:
        rows = ((f"mol{i}", s) for i, s in enumerate([source] if isinstance(source, str) else source))
    return _frames(rows, chunk_size)


def _is_file_name(source) -> bool:
    """A path, or a string that names a molecule file (a lone SMILES is not one)."""
    from ..io import _looks_like_molecule_file

    return _looks_like_molecule_file(source)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()


def _frames(rows, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Frames of ``chunk_size`` (id, smiles) rows."""
    rows = iter(rows)
    while True:
        block = list(islice(rows, chunk_size))
        if not block:
            return
        yield pd.DataFrame({"id": [i for i, _ in block], "smiles": [_text(s) for _, s in block]}, dtype=object)


def _cut(frame: pd.DataFrame, chunk_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size].reset_index(drop=True)


def _smi_rows(path: Path) -> Iterator[tuple[str, str]]:
    """(name, SMILES) of each line, as :func:`probekit.read_molecules` reads a ``.smi`` file."""
    from ..io import SMILES_COLUMNS

    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split(None, 1)
            if not parts or (number == 1 and parts[0].lower() in SMILES_COLUMNS):
                continue  # blank lines and a header line are not records
            yield (parts[1].strip() if len(parts) > 1 else f"line{number}"), parts[0]


def _table_chunks(path: Path, sep: str, chunk_size: int, smiles_col, id_col) -> Iterator[pd.DataFrame]:
    start = 0
    for chunk in pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=chunk_size):
        frame = _table_frame(chunk, smiles_col, id_col, start=start, source=str(path))
        start += len(frame)
        yield frame


def _table_frame(table: pd.DataFrame, smiles_col, id_col, *, start: int, source: str) -> pd.DataFrame:
    """``id`` and ``smiles`` of a table's rows, as :func:`probekit.read_molecules` reads them; without an id column, ``mol<start + row>``."""
    from ..io import ID_COLUMNS, _find_column, _molecule_table_rows

    rows = _molecule_table_rows(table, smiles_col, id_col, source=source)
    ids = [i for i, _ in rows]
    if id_col is None and _find_column(table, ID_COLUMNS) is None:
        ids = [f"mol{start + k}" for k in range(len(rows))]
    return pd.DataFrame({"id": ids, "smiles": [_text(s) for _, s in rows]}, dtype=object)


__all__ = ["iter_molecule_chunks"]
