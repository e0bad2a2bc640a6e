"""The ``"dna_probe"`` task: :func:`probekit.probe` on each shard of sequences.

The shards' reports are merged by :func:`probekit.probe.chunks.merge_reports`, so the
result is the report one in-process call gives (its class read from the shards'
kind). With ``genome=`` the inputs are BED regions: the driver reads their
coordinates and each worker their sequences, from the genome it opens once.
:func:`run_probe`, :func:`probe_failed` and :func:`merge_probe` serve every
probe task (molecules too, in :mod:`.molecules`).

Examples
--------
>>> TASKS["dna_probe"].unit, TASKS["dna_probe"].key_columns
('seq', ('id', 'sequence', 'error', 'chrom', 'window_start', 'window_end', 'strand'))
"""

from __future__ import annotations

from pathlib import Path
import pandas as pd

from ..shards import read_tables
from .common import REGION_KEYS, Task, good_meta, region_options, sequence_records, shard_records


def run_probe(adapter, part: pd.DataFrame, options: dict, state: dict):
    from ...probe import probe

    records, options = shard_records(part, options, state)
    report = probe(adapter, records, progress=False, **options)
    return {name: report.table(name) for name in report.table_names}, {"kind": report.kind, "params": report.params}


def probe_failed(part: pd.DataFrame, reason: str) -> dict:
    return {"summary": pd.DataFrame({"id": part["id"].astype(str).tolist(), "error": [reason] * len(part)})}


def _report_class(meta: dict):
    """The report class of the shards' kind (DNA, features, molecule model), as ``SensitivityReport.load`` picks it."""
    from ...report.sensitivity import SensitivityReport, _class_for

    return _class_for(meta["kind"], SensitivityReport)


def merge_probe(folders: list[Path], options: dict, reused: int):
    from ...probe.chunks import merge_reports

    good, meta = good_meta(folders)
    report_class = _report_class(meta)
    reports = []
    for folder in folders:
        tables, shard = read_tables(folder)
        if "failed" in shard:
            empty = {name: table.iloc[:0] for name, table in good.items() if name != "summary"}
            params = {**meta["params"], "n_inputs": shard["n"], "n_errors": shard["n"], "seconds": 0.0}
            reports.append(report_class(meta["kind"], {**empty, "summary": tables["summary"]}, params))
        else:
            reports.append(report_class(shard["kind"], tables, shard["params"]))
    merged = merge_reports(reports)
    if len(reports) == 1:  # merge_reports returns a lone report as it is
        merged = report_class(merged.kind, {n: merged.table(n) for n in merged.table_names}, {**merged.params, "chunks": 1})
    return merged


TASKS = {
    "dna_probe": Task("dna_probe", sequence_records, run_probe, probe_failed, merge_probe,
                      ("id", "sequence", "error", *REGION_KEYS), "seq", shard_size=16, prepare=region_options),
}  # fmt: skip

__all__ = ["TASKS", "run_probe", "probe_failed", "merge_probe"]
