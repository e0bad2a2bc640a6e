"""Reading variants: VCF/BCF through pysam, and plain variant tables (DataFrame, TSV, CSV).

Why pysam: one well-kept library (htslib underneath) reads VCF and BCF,
bgzipped or plain, indexed or not, reads faidx-indexed or bgzipped FASTA with
random access (:class:`probekit.variants.Genome`), and writes VCF with the same
API, so probekit parses none of these formats itself. It is an optional
dependency: ``pip install "probekit[variants]"``.

Every reader gives one row per ALT allele (multi-allelic records are split),
with the columns of :data:`VARIANT_COLUMNS`. Nothing is silently dropped: a
record that cannot be scored (a symbolic or breakend ALT, a missing ALT, bases
other than A, C, G, T and N, a line htslib cannot parse, a position that is
not a number) keeps its row with an ``error`` naming ``chrom:pos ref>alt`` and
the reason.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "v.vcf")
>>> _ = open(path, "w").write(
...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\n"
...     "chr1\\t5\\trs1\\tA\\tG,T\\t.\\t.\\t.\\nchr1\\t9\\t.\\tC\\t<DEL>\\t.\\t.\\t.\\n")
>>> frame = read_variants(path)
>>> frame[["id", "pos", "ref", "alt", "record"]].values.tolist()
[['rs1:A>G', 5, 'A', 'G', 0], ['rs1:A>T', 5, 'A', 'T', 0], ['chr1:9:C><DEL>', 9, 'C', '<DEL>', 1]]
>>> frame["error"][2]
'chr1:9 C><DEL>: the ALT <DEL> is symbolic (a structural variant without its sequence); only sequence alleles can be scored'
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .._warnings import warn

VARIANT_COLUMNS = ["id", "chrom", "pos", "ref", "alt", "record", "error"]
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf", ".gvcf", ".gvcf.gz")
TABLE_SEPARATORS = {".tsv": "\t", ".tab": "\t", ".txt": "\t", ".csv": ","}
# Column names a variant table may use (compared case-insensitively, a leading '#' ignored).
TABLE_COLUMNS = {
    "chrom": ("chrom", "chromosome", "chr", "contig", "seqname"),
    "pos": ("pos", "position"),
    "ref": ("ref", "reference"),
    "alt": ("alt", "alts", "alternate"),
    "id": ("id", "name", "variant_id", "rsid", "snp"),
}
BASES = frozenset("ACGTN")


def pysam_module():
    """Import pysam, or say which extra installs it."""
    try:
        import pysam
    except ImportError:  # pragma: no cover - pysam is in the test extra
        raise ImportError('reading VCF files and genomes needs pysam: pip install "probekit[variants]"') from None
    return pysam


def variant_label(chrom, pos, ref, alt) -> str:
    """``chrom:pos ref>alt``, the way every error message names a variant.

    Examples
    --------
    >>> variant_label("chr1", 1234, "A", "G")
    'chr1:1234 A>G'
    """
    return f"{chrom}:{'?' if pos is None else pos} {ref or '?'}>{alt or '?'}"


def allele_error(allele, *, which: str = "ALT") -> str | None:
    """Why ``allele`` has no sequence to score, or None when it is made of A, C, G, T and N (any case).

    Examples
    --------
    >>> allele_error("acgt") is None
    True
    >>> allele_error("]chr2:100]A")
    'the ALT ]chr2:100]A is a breakend (a rearrangement, not a sequence change); only sequence alleles can be scored'
    >>> allele_error("AXG")
    "the ALT AXG has 'X' at position 1, not a nucleotide; only A, C, G, T and N are accepted"
    """
    if allele is None or allele in ("", "."):
        return f"the {which} is missing ('.')"
    if allele == "*":
        return f"the {which} '*' stands for a deletion described by another record; it has no sequence of its own"
    if allele == "-":
        return f"the {which} '-' is an empty allele; write indels the VCF way, with the base before them in REF and ALT"
    if allele.startswith("<") and allele.endswith(">"):
        return f"the {which} {allele} is symbolic (a structural variant without its sequence); only sequence alleles can be scored"
    if "[" in allele or "]" in allele or (len(allele) > 1 and (allele.startswith(".") or allele.endswith("."))):
        return f"the {which} {allele} is a breakend (a rearrangement, not a sequence change); only sequence alleles can be scored"
    for position, char in enumerate(allele):
        if char.upper() not in BASES:
            return f"the {which} {allele} has {char!r} at position {position}, not a nucleotide; only A, C, G, T and N are accepted"
    return None


# ------------------------------------------------------------------ sources
def _is_vcf(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(VCF_SUFFIXES)


def _table_separator(path: Path, sep) -> str:
    if sep is not None:
        return sep
    name = path.name.lower().removesuffix(".gz")
    for suffix, separator in TABLE_SEPARATORS.items():
        if name.endswith(suffix):
            return separator
    raise ValueError(
        f"cannot tell what {path} holds from its name: expected a VCF ({', '.join(VCF_SUFFIXES)}) "
        f"or a table ({', '.join(TABLE_SEPARATORS)}); pass sep= for a table with another name"
    )


def _records(source, sep) -> Iterator[tuple]:
    """``(record, chrom, pos, id, ref, alts, error)`` per input record; ``alts`` a list, or None when missing."""
    if isinstance(source, pd.DataFrame):
        yield from _table_records([source], "DataFrame")
        return
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"variants must be a VCF or table path or a DataFrame, got {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"variant file not found: {path}")
    if _is_vcf(path):
        yield from _vcf_records(path)
        return
    separator = _table_separator(path, sep)
    chunks = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, chunksize=50_000)
    yield from _table_records(chunks, str(path))


# --------------------------------------------------------------------- VCF
@contextlib.contextmanager
def _quiet(pysam):
    """htslib's own messages off: each problem becomes an error row instead."""
    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def _vcf_records(path: Path) -> Iterator[tuple]:
    pysam = pysam_module()
    with _quiet(pysam):
        try:
            handle = pysam.VariantFile(str(path))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: pysam cannot read it as VCF/BCF ({error})") from None
    raw = _RawLines(path)
    with handle, raw:
        records = iter(handle)
        index = 0
        while True:
            with _quiet(pysam):
                try:
                    rec = next(records)
                except StopIteration:
                    return
                except (OSError, ValueError) as error:
                    yield _unparsed(index, raw.line(index), error)
                    index += 1
                    continue
            yield _vcf_record(index, rec)
            index += 1


def _vcf_record(index: int, rec) -> tuple:
    alts = list(rec.alts) if rec.alts else None
    if rec.pos < 1:
        label = variant_label(rec.chrom, rec.pos, rec.ref, ",".join(alts or ["."]))
        return index, rec.chrom, rec.pos, rec.id, rec.ref, alts, f"{label}: POS {rec.pos} is not a position (VCF positions start at 1)"
    return index, rec.chrom, rec.pos, rec.id, rec.ref, alts, None


def _unparsed(index: int, line: str | None, error: BaseException) -> tuple:
    """The row of a record htslib could not parse, named from its text line where it can be read."""
    fields = line.rstrip("\r\n").split("\t") if line is not None else []
    named = len(fields) > 1 and bool(fields[0])  # a line without tabs names no chromosome
    chrom = fields[0] if named else None
    pos = _as_position(fields[1]) if named else None
    ref = fields[3] if len(fields) > 3 else None
    alt = fields[4] if len(fields) > 4 else None
    where = f"data line {index + 1}"
    if line is None:
        reason = f"{where} could not be parsed by htslib ({error})"
    elif not line.strip():
        reason = f"{where} is blank"
    elif len(fields) < 8:
        shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
        columns = f"{len(fields)} tab-separated column{'s' if len(fields) != 1 else ''}"
        reason = f"{where} ({shown!r}) has {columns}, not the 8 of a VCF record"
    elif pos is None:
        reason = f"{where}: POS {fields[1]!r} is not a whole number"
    else:
        reason = f"{where} could not be parsed by htslib ({error})"
    if named:
        reason = f"{variant_label(chrom, pos if pos is not None else fields[1], ref, alt)}: {reason}"
    return index, chrom, pos, None, ref, None if alt is None else alt.split(","), reason


class _RawLines:
    """The text of a plain or gzipped VCF's data lines, read forward only, to name records htslib rejects.

    Opened only when a record fails, so a clean file is read once (by htslib).
    BCF is binary: its records cannot be named this way (``line`` gives None).
    """

    def __init__(self, path: Path):
        self.path, self.handle, self.next_index, self.current = path, None, 0, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()

    def line(self, index: int) -> str | None:
        if self.path.name.lower().endswith(".bcf"):
            return None
        if self.handle is None:
            opener = gzip.open if _is_gzip(self.path) else open
            self.handle = opener(self.path, "rt", encoding="utf-8", errors="replace")
        while self.next_index <= index:
            text = next(self.handle, None)
            if text is None:
                return None
            if text.startswith("#"):
                continue
            self.current, self.next_index = text, self.next_index + 1
        return self.current if self.next_index - 1 == index else None


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


# ------------------------------------------------------------------ tables
def _column_map(columns, source: str) -> dict[str, str]:
    lowered = {str(c).lower().lstrip("#").strip(): c for c in columns}
    found = {}
    for key, names in TABLE_COLUMNS.items():
        for name in names:
            if name in lowered:
                found[key] = lowered[name]
                break
    missing = [key for key in ("chrom", "pos", "ref", "alt") if key not in found]
    if missing:
        raise ValueError(f"{source}: a variant table needs columns chrom, pos, ref and alt; missing {missing}, it has {list(columns)}")
    return found


_INTEGER = re.compile(r"^\s*\+?\d+\s*$")


def _as_position(value) -> int | None:
    """A whole number from a table cell (``12``, ``"12"``, ``12.0``); None when it is none."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if np.isfinite(value) and float(value).is_integer() else None
    text = str(value)
    return int(text) if _INTEGER.match(text) else None


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _table_records(chunks, source: str) -> Iterator[tuple]:
    index = 0
    columns = None
    for table in chunks:
        columns = columns or _column_map(table.columns, source)
        ids = table[columns["id"]] if "id" in columns else [None] * len(table)
        for chrom, pos, ref, alt, vid in zip(table[columns["chrom"]], table[columns["pos"]], table[columns["ref"]], table[columns["alt"]], ids):
            yield _table_record(index, _text(chrom), pos, _text(ref), _text(alt), _text(vid))
            index += 1


def _table_record(index: int, chrom, raw_pos, ref, alt, vid) -> tuple:
    pos = _as_position(raw_pos)
    alts = alt.split(",") if alt is not None else None
    label = variant_label(chrom or "?", pos if pos is not None else _text(raw_pos), ref, alt)
    if chrom is None:
        return index, chrom, pos, vid, ref, alts, f"{label}: row {index + 1} has no chromosome"
    if pos is None:
        return index, chrom, None, vid, ref, alts, f"{label}: row {index + 1}: POS {_text(raw_pos)!r} is not a whole number"
    if pos < 1:
        return index, chrom, pos, vid, ref, alts, f"{label}: POS {pos} is not a position (positions start at 1, as in VCF)"
    return index, chrom, pos, vid, ref, alts, None


# -------------------------------------------------------------------- rows
def _rows(record: tuple) -> list[dict]:
    """One row per ALT of a record, with its error (the record's own, or its alleles')."""
    index, chrom, pos, vid, ref, alts, error = record
    ref = ref.upper() if ref and allele_error(ref) is None else ref
    alleles = alts if alts else [None]
    rows = []
    for alt in alleles:
        alt_text = alt.upper() if alt and allele_error(alt) is None else (alt if alt else ".")
        label = variant_label(chrom, pos, ref, alt_text)
        reason = error
        if reason is None:
            problem = allele_error(ref, which="REF") or allele_error(alt)
            reason = f"{label}: {problem}" if problem else None
        if vid and len(alleles) == 1:
            name = vid
        elif vid:
            name = f"{vid}:{ref}>{alt_text}"
        elif chrom is None:
            name = f"record{index}"
        else:
            name = f"{chrom}:{'?' if pos is None else pos}:{ref or '?'}>{alt_text}"
        rows.append({"id": name, "chrom": chrom, "pos": pos, "ref": ref, "alt": alt_text, "record": index, "error": reason})
    return rows


class _UniqueNames:
    """Ids made unique over a stream: a repeated id's later copies become ``id#1``, ``id#2``, ..."""

    def __init__(self):
        self.seen: set[str] = set()
        self.next: dict[str, int] = {}

    def rename(self, names: list[str]) -> list[str]:
        out, renamed = [], []
        for name in names:
            if name not in self.seen:
                self.seen.add(name)
                out.append(name)
                continue
            k = self.next.get(name, 1)
            while f"{name}#{k}" in self.seen:
                k += 1
            self.next[name] = k + 1
            new = f"{name}#{k}"
            self.seen.add(new)
            out.append(new)
            renamed.append(new)
        if renamed:
            shown = ", ".join(map(repr, renamed[:10])) + (f" (and {len(renamed) - 10} more)" if len(renamed) > 10 else "")
            warn(f"repeated variant ids renamed so that every row keeps its own: {shown}", stacklevel=4)
        return out


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    frame["pos"] = frame["pos"].astype("Int64")
    frame["record"] = frame["record"].astype("int64")
    for column in ("id", "chrom", "ref", "alt", "error"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def iter_variants(source, *, chunk_size: int = 10_000, sep: str | None = None) -> Iterator[pd.DataFrame]:
    """Read variants chunk by chunk: DataFrames of at most ``chunk_size`` rows, in file order.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A VCF or BCF (``.vcf``, ``.vcf.gz``, ``.bcf``; bgzipped or plain, indexed or
        not), a table (``.tsv``, ``.csv``, ``.txt``, optionally gzipped) or a
        DataFrame with columns chrom, pos, ref, alt and optionally id (names
        compared case-insensitively; ``#CHROM`` works).
    chunk_size : int
        Rows per chunk (a multi-allelic record is never split across chunks, so a
        chunk may hold a few more).
    sep : str, optional
        Separator of a table whose name does not tell it.

    Yields
    ------
    pandas.DataFrame
        Columns of :data:`VARIANT_COLUMNS`, as :func:`read_variants` describes.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"chrom": ["1", "1", "2"], "pos": [10, 20, 30], "ref": ["A", "C", "G"], "alt": ["T", "G", "A"]})
    >>> [len(chunk) for chunk in iter_variants(table, chunk_size=2)]
    [2, 1]
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    names = _UniqueNames()
    rows: list[dict] = []
    for record in _records(source, sep):
        rows.extend(_rows(record))
        if len(rows) >= chunk_size:
            yield _named(rows, names)
            rows = []
    if rows:
        yield _named(rows, names)


def _named(rows: list[dict], names: _UniqueNames) -> pd.DataFrame:
    unique = names.rename([row["id"] for row in rows])
    for row, name in zip(rows, unique):
        row["id"] = name
    return _frame(rows)


def read_variants(source, *, sep: str | None = None) -> pd.DataFrame:
    """Read variants from a VCF/BCF, a variant table or a DataFrame: one row per ALT allele.

    Multi-allelic records are split into one row per ALT. Bases are upper-cased.
    A record that cannot be scored keeps its rows, with an ``error`` naming
    ``chrom:pos ref>alt`` and the reason: symbolic ALTs (``<DEL>``, ``<*>``),
    breakends (``]chr2:100]A``, ``N[chr3:5[``, ``A.``), a missing ALT (``.``),
    ``*``, bases other than A, C, G, T and N, a position that is not a whole
    number of at least 1, and (in a VCF) lines htslib cannot parse (too few
    columns, a blank line), which are named by their data line.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        See :func:`iter_variants`.
    sep : str, optional
        Separator of a table whose name does not tell it.

    Returns
    -------
    pandas.DataFrame
        One row per ALT with columns ``id`` (the VCF or table id; ``ID:REF>ALT``
        for each ALT of a multi-allelic record with an id; otherwise
        ``chrom:pos:ref>alt``; a repeated id's later copies get ``#1``, ``#2``...),
        ``chrom``, ``pos`` (1-based, as in VCF; Int64, missing where unreadable),
        ``ref``, ``alt``, ``record`` (0-based index of the input record or table
        row) and ``error`` (None, or the message).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"CHROM": ["chr1", "chr1"], "POS": ["12", "x"], "REF": ["a", "C"], "ALT": ["G", "T"]})
    >>> frame = read_variants(table)
    >>> frame[["id", "ref", "alt"]].values.tolist()
    [['chr1:12:A>G', 'A', 'G'], ['chr1:?:C>T', 'C', 'T']]
    >>> frame["error"][1]
    "chr1:x C>T: row 2: POS 'x' is not a whole number"
    """
    chunks = list(iter_variants(source, chunk_size=100_000, sep=sep))
    if not chunks:
        return _frame([])
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


__all__ = ["read_variants", "iter_variants", "allele_error", "VARIANT_COLUMNS"]
