"""Regions of a reference genome, read from a BED file, as sequences of the model's input length.

The rules:

* BED is 0-based and half-open: the line ``chr1  100  110`` is the ten bases
  ``chr1[100:110]``, the 101st to the 110th base of ``chr1``. Columns are split
  on tabs (on runs of blanks when a line has no tab). Blank lines, lines that
  start with ``#``, ``track`` or ``browser``, and a first line whose start and end
  are both words (a header such as ``chrom start end``) are skipped. The file may
  be gzipped or bgzipped.
* Optional columns: 4 ``name``, 5 ``score`` (not used), 6 ``strand`` (``+``,
  ``-`` or ``.``), and for narrowPeak files column 10, the ``summit`` as an
  offset from the start (``-1``: none).
* ``id`` is the name, or ``chrom:start-end`` with the numbers as written in the
  file when the name is missing or ``.``; repeated ids are made unique
  (:func:`probekit.io.unique_ids`).
* With ``length=L`` every region is resized to ``L`` bases around its anchor:
  the summit ``start + summit`` when a narrowPeak summit is given, else the
  centre ``start + (end - start) // 2``. The window is
  ``[anchor - L // 2, anchor - L // 2 + L)``; a region ``L`` bases long keeps
  its own bases, and one that differs from ``L`` by an even number of bases
  loses or gains as many on each side.
* Bases beyond a contig's ends are ``N`` (all-zero when encoded); ``padded``
  flags those regions and ``note`` says how many ``N`` on which side. A region
  that does not overlap its contig at all is an error.
* Strand ``-`` gives the reverse complement of the window, read 5' to 3' on the
  minus strand: its first base is the complement of the window's last base. The
  window itself is the same on both strands.
* A line that cannot be read (too few columns, a start or end that is not a
  whole number, end before start, a strand other than ``+ - .``, a summit
  outside the region) and a chromosome the genome lacks are error rows naming
  the file, the line and the record; the other regions go on.

:func:`read_bed` reads the coordinates only (cheap: no genome);
:func:`fetch_regions` adds the sequences from a genome; :func:`read_regions`
does both.

Examples
--------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> fasta, bed = os.path.join(folder, "g.fa"), os.path.join(folder, "peaks.bed")
>>> _ = open(fasta, "w").write(">chr1\\nAACCGGTTAC\\n")
>>> _ = open(bed, "w").write("chr1\\t1\\t5\\tp1\\t0\\t+\\nchr1\\t1\\t5\\tp2\\t0\\t-\\nchr1\\t8\\t10\\n")
>>> read_regions(bed, fasta, length=4)[["id", "sequence", "padded"]].values.tolist()
[['p1', 'ACCG', False], ['p2', 'CGGT', False], ['chr1:8-10', 'TACN', True]]
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd

BED_COLUMNS = ["id", "chrom", "start", "end", "strand", "summit", "window_start", "window_end", "line", "error"]
REGION_COLUMNS = ["id", "sequence", "error", "chrom", "start", "end", "strand", "window_start", "window_end",
                  "padded", "note", "line"]  # fmt: skip
_INTEGER_COLUMNS = ("start", "end", "summit", "window_start", "window_end", "line")
_SKIPPED = ("#", "track", "browser")


def _fields(text: str) -> list[str]:
    return text.split("\t") if "\t" in text else text.split()


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _window(start: int, end: int, summit, length: int | None) -> tuple[int, int]:
    """The window of a region: itself, or ``length`` bases around its summit or centre."""
    if length is None:
        return start, end
    anchor = start + summit if summit is not None else start + (end - start) // 2
    return anchor - length // 2, anchor - length // 2 + length


def _region(fields: list[str], number: int, length: int | None) -> dict:
    """One BED line's columns: coordinates and window, or the ``problem`` that stops it being read."""
    row = {"chrom": fields[0] if fields else None, "start": None, "end": None, "strand": "+", "summit": None,
           "window_start": None, "window_end": None, "line": number, "problem": None}  # fmt: skip
    name = fields[3] if len(fields) > 3 and fields[3] not in ("", ".") else None
    if len(fields) < 3:
        row["id"] = name or f"line{number}"
        row["problem"] = f"a BED line needs chrom, start and end; got {len(fields)} column{'s' * (len(fields) != 1)}"
        return row
    row["id"] = name or f"{fields[0]}:{fields[1]}-{fields[2]}"
    start, end = _integer(fields[1]), _integer(fields[2])
    strand = fields[5] if len(fields) > 5 else "."
    summit = _integer(fields[9]) if len(fields) > 9 else -1
    if start is None or end is None:
        bad = fields[1] if start is None else fields[2]
        row["problem"] = f"{'start' if start is None else 'end'} {bad!r} is not a whole number"
    elif start < 0 or end < start:
        row["problem"] = f"need 0 <= start <= end, got start {start} and end {end}"
    elif strand not in ("+", "-", "."):
        row["problem"] = f"strand {strand!r} is not +, - or ."
    elif summit is None or not -1 <= summit < max(end - start, 1):
        row["problem"] = f"summit {fields[9]!r} is not an offset in the region (0 to {end - start - 1}, or -1 for none)"
    else:
        summit = None if summit == -1 else summit
        window = _window(start, end, summit, length)
        row.update(start=start, end=end, strand="-" if strand == "-" else "+", summit=summit,
                   window_start=window[0], window_end=window[1])  # fmt: skip
    return row


def _lines(path: Path):
    with open(path, "rb") as handle:
        zipped = handle.read(2) == b"\x1f\x8b"
    opener = gzip.open if zipped else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        yield from enumerate(handle, start=1)


def read_bed(bed, *, length: int | None = None) -> pd.DataFrame:
    """The regions of a BED file and the windows to read for them, without reading a genome.

    Parameters
    ----------
    bed : str or Path
        BED file, plain or gzipped; 3 to 6 columns, or narrowPeak (10 columns).
    length : int, optional
        Resize every region to this many bases around its summit or centre (see
        :mod:`probekit.regions`); default: each region as written.

    Returns
    -------
    pandas.DataFrame
        One row per region line, in file order: ``id``, ``chrom``, ``start``,
        ``end`` (the region as written, 0-based half-open), ``strand`` (``+`` or
        ``-``), ``summit`` (offset, or missing), ``window_start``, ``window_end``
        (the bases to read), ``line`` (line number in the file) and ``error``
        (None when the line is valid). Integer columns are nullable (``Int64``).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bed")
    >>> _ = open(path, "w").write("track name=x\\nchr1\\t10\\t20\\tp\\nchr1\\t5\\tfive\\n")
    >>> read_bed(path, length=4)[["id", "window_start", "window_end", "line"]].values.tolist()
    [['p', 13, 17, 2], ['chr1:5-five', <NA>, <NA>, 3]]
    >>> read_bed(path)["error"][1]
    "x.bed line 3 (chr1:5-five): end 'five' is not a whole number"
    """
    from .io import unique_ids

    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        raise ValueError(f"length must be a positive int (the model's input length), got {length!r}")
    path = Path(bed)
    if not path.is_file():
        raise FileNotFoundError(f"BED file not found: {path}")
    rows, seen_region = [], False
    for number, text in _lines(path):
        text = text.rstrip("\r\n")
        if not text.strip() or text.startswith(_SKIPPED):
            continue
        fields = _fields(text)
        if not seen_region and len(fields) >= 3 and _integer(fields[1]) is None and _integer(fields[2]) is None:
            seen_region = True  # a header line such as "chrom start end"
            continue
        seen_region = True
        rows.append(_region(fields, number, length))
    frame = pd.DataFrame(rows, columns=BED_COLUMNS[:-1] + ["problem"])
    frame["id"] = unique_ids(frame["id"].astype(str))
    frame["error"] = [f"{path.name} line {n} ({i}): {p}" if isinstance(p, str) else None
                      for i, n, p in zip(frame["id"], frame["line"], frame["problem"])]  # fmt: skip
    frame = frame[BED_COLUMNS]
    for column in _INTEGER_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    frame["error"] = frame["error"].astype(object)
    return frame


def _genome(genome, chrom_aliases):
    """``(genome, opened_here)``: a :class:`~probekit.variants.genome.Genome` from a path, or the one given."""
    from .variants.genome import Genome

    if isinstance(genome, (str, os.PathLike)):
        return Genome(genome, chrom_aliases=chrom_aliases), True
    return genome, False


def _fetch(row: dict, genome) -> dict:
    """``sequence``, ``padded``, ``note`` and ``error`` of one valid region."""
    from .datasets import reverse_complement

    record = f"record {row['id']!r} (line {row['line']})"
    name, how = genome.resolve(row["chrom"])
    if name is None:
        return {"error": f"{record}: {genome.missing_message(row['chrom'])}"}
    size = genome.lengths[name]
    lo, hi = int(row["window_start"]), int(row["window_end"])
    if hi <= 0 or lo >= size or (hi == lo and not 0 <= lo < size):
        return {"error": f"{record}: {row['chrom']}:{lo}-{hi} lies outside {name} (length {size})"}
    fetched = genome.fetch(name, lo, hi)
    notes = [] if how == "exact" else [f"chromosome {row['chrom']!r} read as the genome's {name!r} ({how})"]
    if fetched.pad_left:
        notes.append(f"{fetched.pad_left} N added before the start of {name}")
    if fetched.pad_right:
        notes.append(f"{fetched.pad_right} N added past the end of {name} (length {size})")
    sequence = reverse_complement(fetched.sequence) if row["strand"] == "-" else fetched.sequence
    if not sequence:
        return {"error": f"{record}: the region is empty (start = end = {lo}); give length= to read a window around it"}
    return {"sequence": sequence, "padded": bool(fetched.pad_left or fetched.pad_right), "note": "; ".join(notes) or None}


def fetch_regions(regions: pd.DataFrame, genome, *, chrom_aliases: dict | None = None) -> pd.DataFrame:
    """The sequences of :func:`read_bed`'s regions, read from ``genome``.

    Parameters
    ----------
    regions : pandas.DataFrame
        Rows of :func:`read_bed` (any subset, such as one shard); error rows pass through.
    genome : str, Path or Genome
        Reference FASTA, plain or bgzipped (indexed on first use), or an open
        :class:`~probekit.variants.genome.Genome`; chromosome names are resolved
        as :meth:`Genome.resolve` does (``chr`` added or removed, then
        ``chrom_aliases``).
    chrom_aliases : dict, optional
        Used when ``genome`` is a path.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``sequence`` (``""`` for error rows), ``error``, then ``chrom``,
        ``start``, ``end``, ``strand``, ``window_start``, ``window_end``,
        ``padded`` (bool), ``note`` and ``line``: a frame every function that
        takes sequences takes (:func:`probekit.io.sequence_frame`).

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> fasta, bed = os.path.join(folder, "g.fa"), os.path.join(folder, "x.bed")
    >>> _ = open(fasta, "w").write(">chr1\\nACGTACGTAC\\n")
    >>> _ = open(bed, "w").write("chr1\\t0\\t3\\nchr9\\t0\\t3\\n")
    >>> found = fetch_regions(read_bed(bed), fasta)
    >>> found["sequence"].tolist(), found["error"][1][:40]
    (['ACG', ''], "record 'chr9:0-3' (line 2): chromosome '")
    """
    opened, here = _genome(genome, chrom_aliases)
    try:
        rows = []
        for row in regions.to_dict("records"):
            out = {"sequence": "", "padded": False, "note": None}
            if not isinstance(row["error"], str):
                out.update(_fetch(row, opened))
            rows.append({**row, **out})
    finally:
        if here:
            opened.close()
    frame = pd.DataFrame(rows, columns=REGION_COLUMNS)
    for column in ("start", "end", "window_start", "window_end", "line"):
        frame[column] = frame[column].astype("Int64")
    frame["padded"] = frame["padded"].astype(bool)
    for column in ("error", "note"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def read_regions(bed, genome, *, length: int | None = None, chrom_aliases: dict | None = None) -> pd.DataFrame:
    """The sequences of the regions in a BED file, read from a reference genome (rules in :mod:`probekit.regions`).

    Parameters
    ----------
    bed : str or Path
        BED file, plain or gzipped (3 to 6 columns, or narrowPeak).
    genome : str, Path or Genome
        Reference FASTA, plain or bgzipped, or an open
        :class:`~probekit.variants.genome.Genome`.
    length : int, optional
        The model's input length: every region resized to it around its summit
        (narrowPeak) or centre. Default: each region as written.
    chrom_aliases : dict, optional
        Chromosome names to try after adding or removing ``chr`` (when
        ``genome`` is a path).

    Returns
    -------
    pandas.DataFrame
        One row per region: ``id``, ``sequence`` (of length ``length`` when
        given), ``error`` (None, or why the line or region cannot be read), then
        the coordinates, ``padded`` and ``note`` (see :func:`fetch_regions`).
        It goes wherever sequences go: ``probe(adapter, regions)``,
        ``saturation_mutagenesis(adapter, regions)`` (valid rows),
        :func:`probekit.attr.attribute`.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> fasta, bed = os.path.join(folder, "g.fa"), os.path.join(folder, "x.bed")
    >>> _ = open(fasta, "w").write(">chr1\\nAACCGGTTAC\\n")
    >>> _ = open(bed, "w").write("chr1\\t0\\t4\\tfwd\\t0\\t+\\nchr1\\t0\\t4\\trev\\t0\\t-\\n")
    >>> read_regions(bed, fasta)["sequence"].tolist()
    ['AACC', 'GGTT']
    """
    return fetch_regions(read_bed(bed, length=length), genome, chrom_aliases=chrom_aliases)


__all__ = ["read_bed", "fetch_regions", "read_regions", "BED_COLUMNS", "REGION_COLUMNS"]
