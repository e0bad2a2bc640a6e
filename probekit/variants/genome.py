"""Random access to a reference genome through pysam: only the bases asked for are read.

A FASTA file, plain or bgzipped, is opened with ``pysam.FastaFile``; its
``.fai`` index (and ``.gzi`` for bgzip) is built next to it when missing. A
plain gzip file cannot be read at random and gets an error saying to bgzip it.

Chromosome names are resolved in a fixed order: the name itself, then the name
with ``chr`` added or removed (``1`` <-> ``chr1``), then the ``chrom_aliases``
given; :meth:`Genome.resolve` says which was used.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
>>> _ = open(path, "w").write(">chr1\\nACGTACGTAC\\n>chr2\\nGGGGCCCC\\n")
>>> genome = Genome(path)
>>> genome.fetch("1", 8, 13)
Fetched(sequence='ACNNN', pad_left=0, pad_right=3, chrom='chr1')
>>> genome.resolve("1")
('chr1', "added 'chr'")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .io import _is_gzip, pysam_module

# Soft-masked bases are read upper-case; any other letter of a reference (IUPAC codes) becomes N.
_CLEAN = bytes.maketrans(b"acgtn", b"ACGTN")
_KEEP = b"ACGTN"


class Fetched(NamedTuple):
    """Bases of ``chrom[start:end)`` padded with N where the range leaves the contig.

    Attributes
    ----------
    sequence : str
        ``end - start`` upper-case bases, A, C, G, T or N.
    pad_left, pad_right : int
        How many N were added before the contig's start and after its end.
    chrom : str
        The genome's name of the chromosome.
    """

    sequence: str
    pad_left: int
    pad_right: int
    chrom: str


def _bgzf_or_plain(path: Path) -> None:
    """Raise a clear error for a gzip file that is not bgzipped (htslib cannot index it)."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return
    # BGZF: gzip with the FEXTRA flag and a 'BC' subfield (SAM/BAM specification, section 4.1)
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return
    raise ValueError(
        f"{path} is gzip-compressed but not bgzipped, so it cannot be read at random; "
        f"recompress it with bgzip (gunzip {path.name} && bgzip {path.name[:-3]}, or pysam.tabix_compress "
        "on the unzipped file)"
    )


def _line_length_problem(path: Path) -> str | None:
    """Why faidx cannot index a plain FASTA: a record whose lines differ in length (the commonest cause), or None."""
    if _is_gzip(path):
        return None
    name, width, short = None, None, None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line.startswith(b">"):
                name, width, short = (line[1:].split() or [b""])[0].decode(errors="replace"), None, None
                continue
            if width is None:
                width = len(line)
            elif short is not None or len(line) > width:
                return (
                    f"the lines of record {name!r} differ in length (line {number}); faidx needs every line of a record "
                    "but its last to have the same length (rewrap it, e.g. with seqkit seq -w 60)"
                )
            elif len(line) < width:
                short = number
    return None


class Genome:
    """A reference genome read at random through ``pysam.FastaFile``; never loads whole contigs.

    Parameters
    ----------
    path : str or Path
        FASTA, plain or bgzipped. A missing ``.fai`` (and ``.gzi``) index is
        built next to the file, which needs a writable folder.
    chrom_aliases : dict, optional
        Names to try after the automatic ``chr`` prefix rule, e.g.
        ``{"MT": "chrM"}``. Each value must be a chromosome of the genome.

    Attributes
    ----------
    path : Path
    lengths : dict of str to int
        Length of each chromosome, in file order.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
    >>> _ = open(path, "w").write(">chrM\\nACGTTGCA\\n")
    >>> with Genome(path, chrom_aliases={"MT": "chrM"}) as genome:
    ...     genome.resolve("MT"), genome.fetch("MT", -2, 3).sequence
    (('chrM', 'alias'), 'NNACG')
    """

    def __init__(self, path, *, chrom_aliases: dict | None = None):
        pysam = pysam_module()
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"genome FASTA not found: {self.path}")
        _bgzf_or_plain(self.path)
        index = Path(str(self.path) + ".fai")
        if not index.exists() and not os.access(self.path.parent, os.W_OK):
            raise PermissionError(f"{self.path} has no .fai index and its folder is not writable to build one (samtools faidx)")
        previous = pysam.set_verbosity(0)
        try:
            self._fasta = pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as error:
            reason = _line_length_problem(self.path) if not index.exists() else None
            raise ValueError(f"pysam cannot read {self.path} as an indexed FASTA: {reason or error}") from None
        finally:
            pysam.set_verbosity(previous)
        self.lengths: dict[str, int] = dict(zip(self._fasta.references, self._fasta.lengths))
        self.chrom_aliases = {str(k): str(v) for k, v in (chrom_aliases or {}).items()}
        unknown = {k: v for k, v in self.chrom_aliases.items() if v not in self.lengths}
        if unknown:
            raise ValueError(f"chrom_aliases point to chromosomes the genome lacks: {unknown}; it has {self._names()}")
        self._resolved: dict[str, tuple[str | None, str]] = {}

    def _names(self, limit: int = 8) -> str:
        names = list(self.lengths)
        return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, chromosomes={len(self.lengths)})"

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the FASTA file."""
        self._fasta.close()

    def resolve(self, chrom) -> tuple[str | None, str]:
        """The genome's name for ``chrom`` and how it was found.

        Returns
        -------
        (name, how)
            ``how`` is ``"exact"``, ``"added 'chr'"``, ``"removed 'chr'"`` or
            ``"alias"``; ``(None, "not found")`` when no rule finds it.

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
        >>> _ = open(path, "w").write(">1\\nACGT\\n")
        >>> Genome(path).resolve("chr1"), Genome(path).resolve("chr9")
        (('1', "removed 'chr'"), (None, 'not found'))
        """
        chrom = str(chrom)
        found = self._resolved.get(chrom)
        if found is None:
            found = self._resolved[chrom] = self._resolve(chrom)
        return found

    def _resolve(self, chrom: str) -> tuple[str | None, str]:
        if chrom in self.lengths:
            return chrom, "exact"
        if chrom.startswith("chr") and chrom[3:] in self.lengths:
            return chrom[3:], "removed 'chr'"
        if "chr" + chrom in self.lengths:
            return "chr" + chrom, "added 'chr'"
        if chrom in self.chrom_aliases:
            return self.chrom_aliases[chrom], "alias"
        return None, "not found"

    def missing_message(self, chrom) -> str:
        """Why ``chrom`` is not found: the names tried and those the genome has."""
        chrom = str(chrom)
        other = chrom[3:] if chrom.startswith("chr") else "chr" + chrom
        return (
            f"chromosome {chrom!r} is not in the genome (nor {other!r}, nor in chrom_aliases); "
            f"the genome has {self._names()}"
        )

    def length(self, chrom) -> int:
        """Length of chromosome ``chrom`` (any name :meth:`resolve` finds)."""
        name, _ = self.resolve(chrom)
        if name is None:
            raise KeyError(self.missing_message(chrom))
        return self.lengths[name]

    def fetch(self, chrom, start: int, end: int) -> Fetched:
        """Bases ``start:end`` (0-based, half-open) of ``chrom``, padded with N beyond the contig's ends.

        Only the bases inside the contig are read from the file. Lower-case
        (soft-masked) bases come back upper-case; IUPAC ambiguity codes become N.

        Parameters
        ----------
        chrom : str
            Any name :meth:`resolve` finds.
        start, end : int
            ``start`` may be negative and ``end`` past the contig's end; ``end >= start``.

        Returns
        -------
        Fetched
            ``sequence`` of length ``end - start``, the N padding on each side, and
            the genome's chromosome name.

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
        >>> _ = open(path, "w").write(">chr1\\nacgtRCGT\\n")
        >>> Genome(path).fetch("chr1", 2, 6).sequence
        'GTNC'
        """
        name, _ = self.resolve(chrom)
        if name is None:
            raise KeyError(self.missing_message(chrom))
        start, end = int(start), int(end)
        if end < start:
            raise ValueError(f"need start <= end, got {start} and {end}")
        size = self.lengths[name]
        lo, hi = min(max(start, 0), size), max(min(end, size), 0)
        bases = self._fasta.fetch(name, lo, hi).encode("ascii") if hi > lo else b""
        bases = bases.translate(_CLEAN)
        if bases.translate(None, _KEEP):
            bases = bytes(b if b in _KEEP else ord("N") for b in bases)
        pad_left = min(max(0, -start), end - start)
        pad_right = end - start - pad_left - len(bases)
        return Fetched("N" * pad_left + bases.decode("ascii") + "N" * pad_right, pad_left, pad_right, name)


__all__ = ["Genome", "Fetched"]
