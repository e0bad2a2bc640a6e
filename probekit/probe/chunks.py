"""Chunked, resumable probing: each finished chunk of records is saved and reused by a rerun.

:func:`probe_in_chunks` runs a probe over a table of records a chunk at a time,
saving each finished chunk under a folder keyed by a hash of the settings and of
the chunk's records, so an interrupted run resumes where it stopped; and
:func:`merge_reports` joins the chunks' reports into one.

Examples
--------
>>> settings_hash({"goal": "flip", "max_edits": 3}) == settings_hash({"max_edits": 3, "goal": "flip"})
True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import pandas as pd


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks: what identifies a model file in the chunk keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_hash(obj) -> str:
    """A short stable hash of JSON-able settings (keys sorted; other values by ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ChunksKept(KeyboardInterrupt):
    """An interrupt that came after some chunks were saved: ``n`` chunks are in ``folder``."""

    def __init__(self, folder: Path, n: int):
        super().__init__(f"finished chunks kept in {folder}: {n}")
        self.folder, self.n = folder, n


def probe_in_chunks(
    adapter,
    records: pd.DataFrame,
    *,
    settings: dict,
    partial_dir: Path,
    chunk_size: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = print,
    probe_chunk: Callable | None = None,
    key_columns: tuple[str, ...] = ("id", "sequence"),
    unit: str = "seq",
):
    """Probe ``records`` chunk by chunk, saving each chunk and reusing those already saved.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
    records : pandas.DataFrame
        One row per record, with the ``key_columns`` (by default ``id`` and
        ``sequence``, as from :func:`probekit.read_fasta`).
    settings : dict
        Keyword arguments of the probe plus anything that identifies the model
        (file digest, output, strands, featurizer); their hash, with each chunk's
        ``key_columns``, keys the saved chunks. Device and batch size are left out:
        they do not change the results.
    partial_dir : Path
        Where finished chunks are saved (``chunk-00000-<hash>.pt``).
    chunk_size : int
        Records per chunk.
    probe_chunk : callable, optional
        ``probe_chunk(part) -> SensitivityReport`` for one chunk of records (index
        reset). Default: :func:`probekit.probe` on ``adapter`` with the keys of
        ``settings`` it takes.
    key_columns : tuple of str
        Columns of ``records`` that say what each record is.
    unit : str
        Unit of the progress bar.

    Returns
    -------
    report : SensitivityReport
        All chunks merged (:func:`merge_reports`), in record order.
    reused : int
        Chunks read back from ``partial_dir`` instead of recomputed.

    Raises
    ------
    ChunksKept
        On an interrupt after at least one chunk was saved or reused (a plain
        ``KeyboardInterrupt`` before that).

    Examples
    --------
    >>> import tempfile
    >>> from probekit import SequenceModel, sequence_frame
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> records = sequence_frame(["ACGTACGTAC", "TTGACCATGA", "GGGTACCATT"])
    >>> settings = {"goal": "flip", "max_edits": 1, "baseline_draws": 10}
    >>> folder = Path(tempfile.mkdtemp())
    >>> report, reused = probe_in_chunks(adapter, records, settings=settings, partial_dir=folder, chunk_size=2, progress=False)
    >>> again, reused = probe_in_chunks(adapter, records, settings=settings, partial_dir=folder, chunk_size=2, progress=False)
    >>> report.ids, reused, report.to_frame().equals(again.to_frame())
    (['seq0', 'seq1', 'seq2'], 2, True)
    """
    from tqdm.auto import tqdm

    from ..report.sensitivity import SensitivityReport

    if probe_chunk is None:
        probe_chunk = _probe_with(adapter, settings)
    key = settings_hash({**settings, "chunk_size": chunk_size})
    partial_dir.mkdir(parents=True, exist_ok=True)
    (partial_dir / "settings.json").write_text(json.dumps({**settings, "chunk_size": chunk_size, "key": key}, indent=1, default=str))
    chunks, reused = [], 0
    bar = tqdm(total=len(records), desc="probing", unit=unit, disable=not progress)
    try:
        for number, start in enumerate(range(0, len(records), chunk_size)):
            part = records.iloc[start : start + chunk_size]
            chunk_key = settings_hash([key] + [part[column].tolist() for column in key_columns])
            path = partial_dir / f"chunk-{number:05d}-{chunk_key}.pt"
            report = None
            if path.exists():
                try:
                    report = SensitivityReport.load(path)
                    reused += 1
                except Exception as error:  # noqa: BLE001 - a damaged chunk is recomputed
                    log(f"recomputing damaged chunk {path.name}: {error}")
            if report is None:
                report = _probe_chunk(probe_chunk, part)
                tmp = path.with_suffix(".tmp")
                report.save(tmp)
                tmp.replace(path)  # atomic: a chunk file is either whole or absent
            chunks.append(report)
            bar.update(len(part))
    except KeyboardInterrupt:
        if chunks:
            raise ChunksKept(partial_dir, len(chunks)) from None
        raise
    finally:
        bar.close()
    return merge_reports(chunks), reused


_PROBE_KEYS = ("goal", "max_edits", "baseline_draws", "method", "motifs", "motif_query", "seed")


def _probe_with(adapter, settings: dict) -> Callable:
    """:func:`probekit.probe` of one chunk with the keys of ``settings`` it takes."""
    from . import probe

    kwargs = {k: v for k, v in settings.items() if k in _PROBE_KEYS}
    return lambda part: probe(adapter, part, progress=False, **kwargs)


def _probe_chunk(probe_chunk: Callable, part: pd.DataFrame):
    return probe_chunk(part.reset_index(drop=True))


def merge_reports(reports: list):
    """Join reports of disjoint inputs into one (tables concatenated in order).

    A report class with a ``merged_tables(tables) -> tables`` class method gets
    the concatenated tables to recompute those that summarise the whole set
    (such as a ranking across inputs).

    Examples
    --------
    >>> import pandas as pd
    >>> from probekit.report.sensitivity import SensitivityReport
    >>> one = lambda i: SensitivityReport("dna", {"frame": pd.DataFrame({"id": [i], "rank": [1], "critical": [True],
    ...     "importance": [1.0]}), "summary": pd.DataFrame({"id": [i], "error": [None]})}, {"n_inputs": 1})
    >>> merge_reports([one("a"), one("b")]).ids
    ['a', 'b']
    """
    if not reports:
        raise ValueError("no reports to merge")
    if len(reports) == 1:
        return reports[0]
    names = []
    for report in reports:
        names += [n for n in report.table_names if n not in names]
    tables = {}
    for name in names:
        parts = [r.table(name) for r in reports if name in r.table_names]
        nonempty = [p for p in parts if not p.empty]
        tables[name] = pd.concat(nonempty, ignore_index=True) if nonempty else parts[0]
    report_class = type(reports[0])
    merged_tables = getattr(report_class, "merged_tables", None)
    if merged_tables is not None:
        tables = merged_tables(tables)
    params = reports[0].params
    for field in ("n_inputs", "n_errors", "seconds"):
        if all(field in r.params for r in reports):
            params[field] = sum(r.params[field] for r in reports)
    params["chunks"] = len(reports)
    return report_class(reports[0].kind, tables, params)


def partial_dir(out: Path) -> Path:
    """Where the chunks of the report ``out`` are saved: ``<out>.partial/`` next to it."""
    return out.with_name(out.name + ".partial")


__all__ = ["ChunksKept", "probe_in_chunks", "merge_reports", "partial_dir", "file_digest", "settings_hash"]
