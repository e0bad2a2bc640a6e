"""Writing scores back into the VCF they came from: one annotated record per input record, in order.

Examples
--------
>>> import os, tempfile
>>> import pysam
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> from probekit.variants import score_variants
>>> folder = tempfile.mkdtemp()
>>> fasta, vcf = os.path.join(folder, "g.fa"), os.path.join(folder, "v.vcf")
>>> _ = open(fasta, "w").write(">chr1\\nACGTTGCAACGTACGTTGCA\\n")
>>> _ = open(vcf, "w").write(
...     "##fileformat=VCFv4.2\\n##contig=<ID=chr1>\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\n"
...     "chr1\\t10\\trs1\\tC\\tT,G\\t.\\t.\\t.\\nchr1\\t12\\trs2\\tT\\tG\\t.\\t.\\t.\\n")
>>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
>>> result = score_variants(adapter, vcf, fasta, length=10, context=False)
>>> out = write_annotated_vcf(result, vcf, os.path.join(folder, "scored.vcf"))
>>> with pysam.VariantFile(out) as records:
...     rows = [(r.id, len(r.info["PK_DELTA"]), r.info["PK_ERR"]) for r in records]
>>> rows
[('rs1', 2, ('.', '.')), ('rs2', 1, ('.',))]
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .._warnings import warn
from .io import _quiet, pysam_module

# INFO fields added to each record, one value per ALT: (ID, result attribute, Type, Description).
INFO_FIELDS = (
    ("PK_REF", "ref_score", "Float", "probekit: model score of the REF window"),
    ("PK_ALT", "alt_score", "Float", "probekit: model score of the ALT window"),
    ("PK_DELTA", "delta", "Float", "probekit: ALT score minus REF score"),
    ("PK_PCT", "context_percentile", "Float", "probekit: percentile of |delta| among the changes of its window context"),
    ("PK_P", "p_value", "Float", "probekit: empirical p-value of |delta| among the changes of its window context"),
    ("PK_MOTIF", "motif", "String", "probekit: motif loss/gain over the variant, e.g. loss:CTCF_MA0139.2 (. for none)"),
    ("PK_ERR", "error", "String", "probekit: why the ALT could not be scored (spaces as _, ;,=% percent-encoded)"),
)  # fmt: skip
# Characters an INFO string value cannot hold as-is; '%' first so that encodings are not encoded twice.
_ESCAPES = (("%", "%25"), (";", "%3B"), (",", "%2C"), ("=", "%3D"), ("\t", "%09"), ("\n", "%0A"), ("\r", "%0D"), (" ", "_"))


def info_text(message) -> str:
    """An error message as an INFO string value: spaces become ``_``, ``% ; , =`` and line breaks are percent-encoded.

    Examples
    --------
    >>> info_text("chr1:9 C><DEL>: symbolic; a=b, c")
    'chr1:9_C><DEL>:_symbolic%3B_a%3Db%2C_c'
    >>> info_text(None)
    '.'
    """
    if message is None or message == "":
        return "."
    text = str(message)
    for char, code in _ESCAPES:
        text = text.replace(char, code)
    return text


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def motif_text(change, ref_motif, alt_motif) -> str | None:
    """The motif change of one variant as one word: ``loss:<REF match>``, ``gain:<ALT match>``, both with ``|``.

    Examples
    --------
    >>> motif_text("loss+gain", "CTCF MA0139.2", "ZNF331 MA1726.1")
    'loss:CTCF MA0139.2|gain:ZNF331 MA1726.1'
    >>> motif_text("", "CTCF MA0139.2", "CTCF MA0139.2") is None
    True
    """
    if not isinstance(change, str) or not change:
        return None
    parts = {"loss": f"loss:{ref_motif}", "gain": f"gain:{alt_motif}"}
    return "|".join(parts[word] for word in change.split("+"))


def _table(result):
    """The per-variant table of a result, or the table itself (such as one read back from the CLI's output)."""
    return result.to_frame() if hasattr(result, "to_frame") else result


def _values_by_record(result) -> dict[int, list[tuple[str, dict]]]:
    """Each record index's rows, in ALT order: ``(alt, {INFO ID: value})``."""
    frame = _table(result)
    n = len(frame)
    motif = [None] * n
    if "motif_change" in frame.columns:
        motif = [motif_text(c, r, a) for c, r, a in zip(frame["motif_change"], frame["motif_ref"], frame["motif_alt"])]
    columns = {attr: frame[attr].tolist() for _, attr, kind, _ in INFO_FIELDS if kind == "Float"}
    columns["motif"] = motif
    errors = [e if isinstance(e, str) else None for e in frame["error"]]
    columns["error"] = errors
    grouped: dict[int, list[tuple[str, dict]]] = {}
    for i, record in enumerate(frame["record"].tolist()):
        if record is None or record is pd.NA or record != record:
            continue
        values = {key: (info_text(columns[attr][i]) if kind == "String" else _number(columns[attr][i]))
                  for key, attr, kind, _ in INFO_FIELDS}  # fmt: skip
        if errors[i] is not None:  # an error row's scores are not reported, whatever they hold
            values.update({key: None for key, _, kind, _ in INFO_FIELDS if kind == "Float"})
        grouped.setdefault(int(record), []).append((frame["alt"].iat[i], values))
    return grouped


def _header(source_header, frame):
    """The input's header, plus the probekit INFO fields and any contig the records name but it does not declare."""
    for chrom in dict.fromkeys(c for c in frame["chrom"] if isinstance(c, str)):
        if chrom not in source_header.contigs:
            source_header.contigs.add(chrom)  # on the input's header too, so its records can be translated
    header = source_header.copy()
    for key, _, kind, description in INFO_FIELDS:
        if key not in header.info:
            header.add_line(f'##INFO=<ID={key},Number=A,Type={kind},Description="{description}">')
    if "END" not in header.info and any(str(a).startswith("<") for a in frame["alt"] if isinstance(a, str)):
        # htslib writes END on symbolic records; declared, so readers do not warn about it
        header.add_line('##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the variant">')
    return header


def _annotate(rec, rows) -> None:
    alts = [a.upper() for a in rec.alts or ()]
    if not alts:
        return  # Number=A: a record without ALT takes no value
    by_alt = dict(rows) if len(rows) != len(alts) else None
    for key, _, kind, _ in INFO_FIELDS:
        values = []
        for j, alt in enumerate(alts):
            if by_alt is None:
                row = rows[j][1]
            else:
                row = by_alt.get(alt)
            value = None if row is None else row[key]
            values.append(("." if value is None else value) if kind == "String" else value)
        rec.info[key] = tuple(values)


def write_annotated_vcf(result, source, out_path, *, index: bool = True) -> Path:
    """Write ``source`` with the scores of ``result`` as INFO fields, one value per ALT.

    Parameters
    ----------
    result : VariantResult or pandas.DataFrame
        What :func:`~probekit.variants.score_variants` returned for the VCF ``source``,
        or its table (``to_frame()``, as the CLI writes it).
    source : str or Path
        The VCF/BCF that was scored; every one of its records is written, in order.
    out_path : str or Path
        Ends in ``.gz`` or ``.bgz`` for bgzipped output, otherwise plain VCF text.
    index : bool
        Index a bgzipped output with tabix when its records are sorted (else it is only bgzipped).

    Returns
    -------
    Path
        ``out_path``. Its header adds ``PK_REF``, ``PK_ALT``, ``PK_DELTA``, ``PK_PCT``, ``PK_P``
        (Float) and ``PK_ERR`` (String, see :func:`info_text`), all ``Number=A``; ALTs that
        could not be scored have ``.`` scores and their error in ``PK_ERR`` (``.`` otherwise).
        Records htslib cannot parse cannot be written and are left out with a warning.

    Examples
    --------
    >>> import os, tempfile
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> from probekit.variants import score_variants
    >>> folder = tempfile.mkdtemp()
    >>> fasta, vcf = os.path.join(folder, "g.fa"), os.path.join(folder, "v.vcf")
    >>> _ = open(fasta, "w").write(">chr1\\nACGTTGCAACGTACGTTGCA\\n")
    >>> _ = open(vcf, "w").write(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\n"
    ...     "chr1\\t10\\trs1\\tC\\tT\\t.\\t.\\t.\\nchr1\\t12\\trs2\\tG\\tA\\t.\\t.\\t.\\n")
    >>> result = score_variants(SequenceModel(ToyConv(), output=1, device="cpu"), vcf, fasta, length=10)
    >>> out = write_annotated_vcf(result, vcf, os.path.join(folder, "scored.vcf.gz"))
    >>> sorted(os.listdir(folder))
    ['g.fa', 'g.fa.fai', 'scored.vcf.gz', 'scored.vcf.gz.tbi', 'v.vcf']
    >>> import gzip
    >>> gzip.open(out, "rt").read().splitlines()[-1].split("\\t")[7].split(";")[-1]
    "PK_ERR=chr1:12_G>A:_REF_G_does_not_match_the_genome's_T_at_chr1:12"
    """
    pysam = pysam_module()
    out_path = Path(out_path)
    compressed = out_path.name.lower().endswith((".gz", ".bgz"))
    frame = _table(result)
    grouped = _values_by_record(frame)
    with _quiet(pysam):
        src = pysam.VariantFile(str(source))
    skipped = []
    with src:
        header = _header(src.header, frame)
        out = pysam.VariantFile(str(out_path), "wz" if compressed else "w", header=header)
        ordered, last, seen = True, None, set()
        with out:
            records, number = iter(src), 0
            while True:
                with _quiet(pysam):
                    try:
                        rec = next(records)
                    except StopIteration:
                        break
                    except (OSError, ValueError):
                        skipped.append(number + 1)
                        number += 1
                        continue
                rec.translate(out.header)
                _annotate(rec, grouped.get(number, []))
                out.write(rec)
                if last is None or rec.chrom != last[0]:
                    ordered = ordered and rec.chrom not in seen
                    seen.add(rec.chrom)
                elif rec.pos < last[1]:
                    ordered = False
                last = (rec.chrom, rec.pos)
                number += 1
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (f" (and {len(skipped) - 10} more)" if len(skipped) > 10 else "")
        warn(f"{source}: data lines {shown} could not be parsed by htslib and are not in {out_path}")
    if compressed and index and ordered:
        pysam.tabix_index(str(out_path), preset="vcf", force=True)
    return out_path


__all__ = ["write_annotated_vcf", "info_text", "motif_text", "INFO_FIELDS"]
