"""REF and ALT windows of a model's input length around each variant.

The rule, for a window of ``length`` L with the variant at ``offset`` (default
``L // 2``), a variant at 1-based ``pos`` (its first REF base at 0-based
``p = pos - 1``) on a genome ``g``:

* REF window: ``g[p - offset : p - offset + L]``, so REF's first base sits at
  ``offset``. The genome must hold REF at ``p`` (else an error row: ``REF A does
  not match the genome's G at chr1:1234``).
* ALT window: the ``offset`` genome bases before the variant, then the whole ALT
  allele, then the genome after REF, ``g[p + len(REF):]``, cut to L bases:
  ``(g[p - offset : p] + ALT + g[p + len(REF) :])[:L]``. For SNVs and MNVs
  (``len(REF) == len(ALT)``) this is the REF window with the bases replaced; an
  insertion pushes right-flank bases out of the window, a deletion pulls
  ``len(REF) - len(ALT)`` more right-flank bases in, so both windows have length L.
  An ALT longer than ``L - offset`` is cut at the window's end (a ``note`` says so).
* Beyond a contig's ends the windows are padded with N (all-zero columns when
  encoded); ``padded`` flags them and ``note`` says how many N on which side.

Examples
--------
>>> import os, tempfile
>>> import pandas as pd
>>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
>>> _ = open(path, "w").write(">chr1\\nAACCGGTTAACCGGTT\\n")
>>> from probekit.variants import Genome
>>> variants = pd.DataFrame({"chrom": ["chr1", "chr1"], "pos": [5, 5], "ref": ["G", "GG"], "alt": ["T", "G"]})
>>> windows = variant_windows(variants, Genome(path), length=8)
>>> windows[["kind", "ref_window", "alt_window"]].values.tolist()
[['SNV', 'AACCGGTT', 'AACCTGTT'], ['deletion', 'AACCGGTT', 'AACCGTTA']]
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from .io import VARIANT_COLUMNS, read_variants, variant_label

WINDOW_COLUMNS = VARIANT_COLUMNS[:-1] + [
    "genome_chrom", "kind", "n_bases", "window_start", "ref_window", "alt_window", "padded", "note", "error",
]  # fmt: skip
KINDS = ("SNV", "MNV", "insertion", "deletion", "indel")


class Change(NamedTuple):
    """What a REF>ALT pair changes, after trimming the bases both alleles share at their start and end.

    Attributes
    ----------
    kind : str
        ``"SNV"``, ``"MNV"`` (equal lengths, one or several bases differ), ``"insertion"``,
        ``"deletion"`` or ``"indel"`` (bases replaced by a different number of bases).
    start : int
        Offset in REF of the first changed base (of the insertion point for an insertion).
    n_bases : int
        Bases changed: the differing bases of an SNV or MNV, the bases inserted or
        deleted, the longer side of an indel.
    """

    kind: str
    start: int
    n_bases: int


def shared_ends(ref: str, alt: str) -> tuple[int, int]:
    """How many bases REF and ALT share at their start, then at their end (not overlapping the start).

    Examples
    --------
    >>> shared_ends("CTTA", "CA"), shared_ends("ACG", "TCA")
    ((1, 1), (0, 0))
    """
    prefix = 0
    while prefix < min(len(ref), len(alt)) and ref[prefix] == alt[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(ref), len(alt)) - prefix and ref[-1 - suffix] == alt[-1 - suffix]:
        suffix += 1
    return prefix, suffix


def allele_change(ref: str, alt: str) -> Change | None:
    """Classify REF>ALT (upper-case alleles); None when they are the same.

    Examples
    --------
    >>> allele_change("A", "G"), allele_change("ACG", "ATG")
    (Change(kind='SNV', start=0, n_bases=1), Change(kind='SNV', start=1, n_bases=1))
    >>> allele_change("ACG", "TCA"), allele_change("A", "ATT"), allele_change("CTTA", "CA")
    (Change(kind='MNV', start=0, n_bases=2), Change(kind='insertion', start=1, n_bases=2), Change(kind='deletion', start=1, n_bases=2))
    >>> allele_change("ATG", "AC")
    Change(kind='indel', start=1, n_bases=2)
    """
    if ref == alt:
        return None
    if len(ref) == len(alt):
        diffs = [i for i, (a, b) in enumerate(zip(ref, alt)) if a != b]
        return Change("SNV" if len(diffs) == 1 else "MNV", diffs[0], len(diffs))
    prefix, suffix = shared_ends(ref, alt)
    r, a = ref[prefix : len(ref) - suffix], alt[prefix : len(alt) - suffix]
    if not r:
        return Change("insertion", prefix, len(a))
    if not a:
        return Change("deletion", prefix, len(r))
    return Change("indel", prefix, max(len(r), len(a)))


def _as_variants(variants) -> pd.DataFrame:
    if isinstance(variants, pd.DataFrame) and set(VARIANT_COLUMNS) <= set(variants.columns):
        return variants
    return read_variants(variants)


def _span(chrom: str, start0: int, n: int) -> str:
    """``chr1:1234`` or ``chr1:1234-1236`` for ``n`` bases from 0-based ``start0``."""
    return f"{chrom}:{start0 + 1}" if n == 1 else f"{chrom}:{start0 + 1}-{start0 + n}"


def _window_row(row, genome, length: int, offset: int) -> dict:
    """Window columns of one variant row without an error: windows, or an ``error``."""
    chrom, pos, ref, alt = row["chrom"], int(row["pos"]), row["ref"], row["alt"]
    label = variant_label(chrom, pos, ref, alt)
    out = {"genome_chrom": None, "kind": None, "n_bases": None, "window_start": None, "ref_window": None,
           "alt_window": None, "padded": False, "note": None, "error": None}  # fmt: skip
    name, how = genome.resolve(chrom)
    if name is None:
        out["error"] = f"{label}: {genome.missing_message(chrom)}"
        return out
    out["genome_chrom"] = name
    notes = [] if how == "exact" else [f"chromosome {chrom!r} read as the genome's {name!r} ({how})"]
    change = allele_change(ref, alt)
    if change is None:
        out["error"] = f"{label}: the ALT is the same as the REF"
        return out
    out["kind"], out["n_bases"] = change.kind, change.n_bases
    size = genome.lengths[name]
    p = pos - 1
    if p + len(ref) > size:
        where = "lies past" if p >= size else f"runs {p + len(ref) - size} base{'s' if p + len(ref) - size > 1 else ''} past"
        out["error"] = f"{label}: REF {ref} {where} the end of {name} (length {size})"
        return out
    window_start = p - offset
    need_end = max(window_start + length, p + len(ref) + max(0, length - offset - len(alt)))
    fetched = genome.fetch(name, window_start, need_end)
    s = fetched.sequence
    found = s[offset : offset + len(ref)]
    if found != ref:
        out["error"] = f"{label}: REF {ref} does not match the genome's {found} at {_span(name, p, len(ref))}"
        return out
    if fetched.pad_left:
        notes.append(f"{fetched.pad_left} N added before the start of {name}")
    if fetched.pad_right:
        notes.append(f"{fetched.pad_right} N added past the end of {name} (length {size})")
    if len(alt) > length - offset:
        notes.append(f"the ALT window holds the first {length - offset} of the ALT's {len(alt)} bases")
    out.update(
        window_start=window_start,
        ref_window=s[:length],
        alt_window=(s[:offset] + alt + s[offset + len(ref) :])[:length],
        padded=bool(fetched.pad_left or fetched.pad_right),
        note="; ".join(notes) or None,
    )
    return out


def resolve_offset(length: int, offset) -> int:
    """The variant's position in a window of ``length``: ``offset``, or ``length // 2`` when None.

    Examples
    --------
    >>> resolve_offset(10, None), resolve_offset(10, 0)
    (5, 0)
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int (the model's input length), got {length!r}")
    offset = length // 2 if offset is None else offset
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < length:
        raise ValueError(f"offset must be an int in [0, {length}), got {offset!r}")
    return offset


def variant_windows(variants, genome, *, length: int, offset: int | None = None) -> pd.DataFrame:
    """REF and ALT windows of ``length`` bases around each variant (the rule is in the module notes).

    Parameters
    ----------
    variants : pandas.DataFrame, or anything :func:`~probekit.variants.read_variants` takes
        Rows from :func:`~probekit.variants.read_variants`; error rows pass through.
    genome : Genome
    length : int
        The model's input length L.
    offset : int, optional
        Window position of the variant's first REF base; default ``length // 2``.

    Returns
    -------
    pandas.DataFrame
        One row per variant, in order, with the variant columns and
        ``genome_chrom`` (the genome's name of the chromosome), ``kind``
        (:class:`Change`), ``n_bases``, ``window_start`` (0-based genome position of
        the REF window's first base), ``ref_window`` and ``alt_window`` (strings of
        length L), ``padded`` (bool), ``note`` (chromosome renamed, N padding, a
        cut ALT) and ``error`` (REF not matching the genome, an unknown
        chromosome, a variant past the contig's end, ALT equal to REF, or the
        reader's error).

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from probekit.variants import Genome
    >>> path = os.path.join(tempfile.mkdtemp(), "g.fa")
    >>> _ = open(path, "w").write(">chr1\\nACGTACGT\\n")
    >>> variants = pd.DataFrame({"chrom": ["1", "chr1"], "pos": [2, 3], "ref": ["C", "A"], "alt": ["CTT", "T"]})
    >>> w = variant_windows(variants, Genome(path), length=6)
    >>> w[["ref_window", "alt_window", "padded"]].values.tolist()
    [['NNACGT', 'NNACTT', True], [None, None, False]]
    >>> w["note"][0]
    "chromosome '1' read as the genome's 'chr1' (added 'chr'); 2 N added before the start of chr1"
    >>> w["error"][1]
    "chr1:3 A>T: REF A does not match the genome's G at chr1:3"
    """
    offset = resolve_offset(length, offset)
    variants = _as_variants(variants)
    rows = []
    for row in variants[VARIANT_COLUMNS].to_dict("records"):
        if isinstance(row["error"], str) and row["error"]:
            rows.append({**row, "padded": False})
            continue
        rows.append({**row, **_window_row(row, genome, length, offset)})
    frame = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    frame["pos"] = frame["pos"].astype("Int64")
    frame["n_bases"] = frame["n_bases"].astype("Int64")
    frame["window_start"] = frame["window_start"].astype("Int64")
    frame["padded"] = frame["padded"].astype(bool)
    for column in ("genome_chrom", "kind", "ref_window", "alt_window", "note", "error"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


__all__ = ["variant_windows", "allele_change", "resolve_offset", "Change", "WINDOW_COLUMNS"]
