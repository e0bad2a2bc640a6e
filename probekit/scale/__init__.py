"""Scale out: the same probes over many inputs, in this process or on Ray, in resumable shards.

:func:`run` cuts the inputs of a task (DNA probe, molecule probe, saturation
mutagenesis, variant scoring) into shards, runs each shard with an adapter built
once per worker from a picklable factory, writes each shard's tables as Parquet
under ``out_dir`` (keyed by the settings and the digest of the shard's inputs, so
a rerun reuses finished shards), and merges them into the result the in-process
call gives. ``engine="local"`` runs the shards in this process; ``engine="ray"``
on a pool of Ray actors (``pip install "probekit[scale]"``): a local Ray started
for the run, or the cluster at ``address``.

Examples
--------
>>> import functools, tempfile
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> factory = functools.partial(SequenceModel, ToyConv(), output=1, device="cpu")
>>> done = run("ism", ["ACGTACGTAC", "TTGACCATGA", "GGGTACCATT"], adapter_factory=factory,
...            out_dir=tempfile.mkdtemp(), shard_size=2, progress=False)
2 shards on local (1 worker): 2 done, 0 reused, 0 retried, 0 failed; ... s
>>> done.result.effects.shape, done.n_done, done.n_reused
(torch.Size([3, 10, 4]), 2, 0)
>>> again = run("ism", ["ACGTACGTAC", "TTGACCATGA", "GGGTACCATT"], adapter_factory=factory,
...             out_dir=done.out_dir, shard_size=2, progress=False, log=lambda line: None)
>>> again.n_reused, bool((again.result.effects == done.result.effects).all())
(2, True)
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..probe.chunks import ChunksKept, settings_hash
from .factories import load_feature_adapter
from .shards import describe, is_complete, parquet_error, shard_folder, shard_key, write_tables
from .tasks import TASKS

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ScaleRun:
    """A finished scaled run: the merged result and what happened to each shard.

    Attributes
    ----------
    result : SensitivityReport, MoleculeReport, ISMResult or StreamOutcome
        What the in-process call of the task returns, for all inputs in input order.
    shards : pandas.DataFrame
        One row per shard: ``shard``, ``n_inputs``, ``status`` ("done", "reused" or
        "failed"), ``retried`` (its worker was lost and it ran again), ``seconds``, ``error``.
    out_dir : Path
        Where the shards are kept.
    engine : str
    workers : int
    seconds : float
    """

    result: object
    shards: pd.DataFrame
    out_dir: Path
    engine: str
    workers: int
    seconds: float = 0.0

    def _count(self, status: str) -> int:
        return int((self.shards["status"] == status).sum()) if len(self.shards) else 0

    @property
    def n_done(self) -> int:
        """Shards computed by this run."""
        return self._count("done")

    @property
    def n_reused(self) -> int:
        """Shards read back from an earlier run."""
        return self._count("reused")

    @property
    def n_failed(self) -> int:
        """Shards that could not run (their inputs are error rows of the result)."""
        return self._count("failed")

    @property
    def n_retried(self) -> int:
        """Shards that ran again after their worker was lost."""
        return int(self.shards["retried"].sum()) if len(self.shards) else 0

    def line(self) -> str:
        """One line: shards done, reused, retried and failed, workers and time."""
        text = (f"{len(self.shards)} shards on {self.engine} ({self.workers} worker{'s' if self.workers != 1 else ''}): "
                f"{self.n_done} done, {self.n_reused} reused, {self.n_retried} retried, {self.n_failed} failed; "
                f"{self.seconds:.1f} s")  # fmt: skip
        failed = self.shards[self.shards["status"] == "failed"]
        if len(failed):
            first = failed.iloc[0]
            text += f" (shard {first['shard']}: {first['error']})"
        return text


def _check_factory(factory, trust: bool) -> None:
    """Refuse a live model where a factory is needed, and a factory that ships one unless ``trust``."""
    import functools

    import torch

    from ..adapters import Adapter

    if isinstance(factory, (torch.nn.Module, Adapter)) or not callable(factory):
        raise TypeError(
            "adapter_factory must be a zero-argument callable that builds the adapter on each worker, such as "
            "functools.partial(probekit.scale.load_adapter, 'model.pt', arch='module:Class', output=1)"
        )
    if trust:
        return
    parts = []
    if isinstance(factory, functools.partial):
        parts += list(factory.args) + list(factory.keywords.values())
    parts += [cell.cell_contents for cell in (getattr(factory, "__closure__", None) or ()) if _filled(cell)]
    if any(isinstance(p, (torch.nn.Module, Adapter)) for p in parts):
        raise ValueError(
            "adapter_factory holds a live model, which would be pickled to every worker; build it on the worker from "
            "its file (functools.partial(probekit.scale.load_adapter, 'model.pt', ...)), or pass trust=True"
        )


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def load_adapter(path, *, output, arch=None, arch_kwargs: dict | None = None, trust: bool = False, **adapter_options):
    """A :class:`~probekit.SequenceModel` around the model in ``path``: a factory for workers.

    Give it to :func:`run` as ``functools.partial(load_adapter, path, output=..., ...)``:
    each worker loads the file itself (:func:`probekit.loading.load_model`, which never
    runs code from it unless ``trust``).

    Parameters
    ----------
    path : str or Path
        TorchScript file or state_dict.
    output : int, str or Output
        The score to probe.
    arch, arch_kwargs, trust
        As :func:`probekit.loading.load_model`.
    **adapter_options
        Passed to :class:`~probekit.SequenceModel` (``device``, ``batch_size``, ``strands``, ...).

    Returns
    -------
    SequenceModel

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from probekit.testing import ToyConv
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.pt")
    >>> torch.save(ToyConv().state_dict(), path)
    >>> load_adapter(path, arch="probekit.testing:ToyConv", output=1, device="cpu").output.name
    'logit[1]'
    """
    from ..adapters import SequenceModel
    from ..loading import load_model

    model = load_model(path, arch=arch, trust=trust, arch_kwargs=arch_kwargs)
    return SequenceModel(model, output=output, **adapter_options)


def run(
    task: str,
    inputs,
    *,
    adapter_factory: Callable,
    out_dir,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: int | None = None,
    shard_size: int | None = None,
    settings: dict | None = None,
    progress: bool = True,
    trust: bool = False,
    log: Callable[[str], None] = print,
    **options,
) -> ScaleRun:
    """Run ``task`` over ``inputs`` in shards, in this process or on Ray, and merge the shards' results.

    Parameters
    ----------
    task : {"dna_probe", "molecule_probe", "ism", "variants"}
        ``"dna_probe"``: :func:`probekit.probe` of a DNA model; ``"molecule_probe"``:
        of a feature or molecule model; ``"ism"``:
        :func:`~probekit.search.discrete.saturation_mutagenesis`; ``"variants"``:
        :func:`~probekit.variants.score_variants` into a table, as
        :func:`~probekit.variants.stream.score_variants_to_table` writes it.
    inputs
        ``"dna_probe"`` and ``"ism"``: a FASTA path, list or dict of sequences, or a
        DataFrame of ``id`` and ``sequence`` (equal lengths for ISM);
        ``"molecule_probe"``: SMILES, a molecule file or a
        :func:`~probekit.read_molecules` frame; ``"variants"``: a VCF/BCF, a variant
        table path or DataFrame (read chunk by chunk).
    adapter_factory : callable
        Zero-argument callable returning the adapter, called once per worker, such as
        ``functools.partial(load_adapter, "model.pt", arch="m:Net", output=1)``. On
        Ray it is pickled to the workers; a factory holding a live model is refused
        unless ``trust``.
    out_dir : str or Path
        Where each shard's tables are written (``shard-<n>-<key>/``: Parquet files, and
        ``.npy`` files for columns of equal-shape arrays). A rerun with the same
        settings reuses the shards found there.
    engine : {"local", "ray"}
        ``"local"``: in this process (Ray is not imported). ``"ray"``: Ray actors.
    address : str, optional
        Ray cluster to join (``"auto"`` or ``"ray://host:10001"``); without it, an
        already started Ray is used, or a local one is started for the run.
    workers : int, optional
        Ray actors; default one per GPU, else one per CPU.
    gpus_per_worker : float, optional
        GPUs per actor; default 1 when the cluster has GPUs, else 0 (CPU actors).
    cpus_per_worker : int, optional
        CPUs per actor, which it uses as torch threads; default: the cluster's CPUs
        shared among the CPU actors (1 for GPU actors).
    shard_size : int, optional
        Inputs per shard (default: the task's ``shard_size``, as ``TASKS[task].shard_size``).
    settings : dict, optional
        What identifies the model in the shard keys (for example ``{"model":
        file_digest(path)}``); default: a description of ``adapter_factory`` (its
        function and arguments, files named in it by their SHA-256). Give it for a
        factory whose name does not say which model it builds (a closure, a lambda),
        or a rerun may reuse shards of another model.
    progress : bool
        One progress bar over all shards.
    trust : bool
        Allow a factory that pickles a live model to the workers.
    log : callable
        Receives the summary line (shards done, reused, retried, failed).
    **options
        The task's options: those of :func:`probekit.probe` (``goal``, ``max_edits``,
        ``baseline_draws``, ``seed`` ...), of ``saturation_mutagenesis`` (``start``,
        ``end``, ``include_n``), or of ``score_variants`` plus ``genome`` (a FASTA
        path), ``length`` and ``table`` (the table to write; ``top`` strongest rows
        kept in the outcome).

    Returns
    -------
    ScaleRun
        ``result`` is the merged result; ``shards`` says what happened to each shard.

    Raises
    ------
    ChunksKept
        On an interrupt after some shards were written: rerun the same call to resume.
    RuntimeError
        When every shard failed (the reasons are named).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    missing = parquet_error()
    if missing is not None:
        raise missing
    if engine == "ray":
        _check_factory(adapter_factory, trust)
    spec = TASKS[task]
    options = spec.check_options(options)
    shard_size = shard_size or spec.shard_size
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    described = {"task": task, "settings": describe(adapter_factory) if settings is None else describe(settings),
                 "options": describe(spec.worker_options(options)), "shard_size": shard_size}  # fmt: skip
    base = settings_hash(described)
    (out_dir / "settings.json").write_text(json.dumps({**described, "key": base}, indent=1))
    started = time.perf_counter()
    book = _Book(out_dir, spec, progress)
    parts = spec.shards(inputs, shard_size, options)
    if spec.sized:
        parts = list(parts)
        book.bar.total = sum(len(p) for p in parts)

    def pending():
        for index, part in enumerate(parts):
            folder = shard_folder(out_dir, index, shard_key(base, part, spec.key_columns))
            book.folders.append(folder)
            if is_complete(folder):
                book.add(index, len(part), "reused")
            else:
                yield index, part

    try:
        workers = _engine(engine)(
            adapter_factory, task, options=spec.worker_options(options), pending=pending(), on_result=book.save,
            **({"address": address, "workers": workers, "gpus_per_worker": gpus_per_worker, "cpus_per_worker": cpus_per_worker}
               if engine == "ray" else {}),
        )  # fmt: skip
        book.close()
    except KeyboardInterrupt:
        book.close()  # the shard being written is finished: it was computed
        kept = sum(is_complete(f) for f in book.folders)
        if kept:
            raise ChunksKept(out_dir, kept) from None
        raise
    finally:
        book.close(wait=False)
        book.bar.close()
    result = spec.merge(book.merge_folders(), options, book.count("reused"))
    done = ScaleRun(result, book.table(), out_dir, engine, workers, time.perf_counter() - started)
    log(done.line())
    return done


def _engine(engine: str) -> Callable:
    if engine == "ray":
        from .ray_engine import run_ray

        return run_ray
    from .local import run_local

    return run_local


class _Book:
    """The driver's record of the shards: writes each as it returns (while the next runs), counts them, moves the bar."""

    def __init__(self, out_dir: Path, spec, progress: bool):
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        self.out_dir, self.failed, self.folders, self.rows = out_dir, spec.failed, [], {}
        self.bar = tqdm(desc="shards", unit=spec.unit, disable=not progress)
        # One shard is written while the next one runs; at most one waits to be written, so memory stays bounded.
        self.writer, self.writing = ThreadPoolExecutor(1, thread_name_prefix="probekit-shards"), None

    def add(self, index: int, n: int, status: str, *, retried: bool = False, seconds: float = 0.0, error=None) -> None:
        self.rows[index] = {"shard": index, "n_inputs": n, "status": status, "retried": retried, "seconds": seconds,
                            "error": error}  # fmt: skip
        self.bar.update(n)

    def save(self, index: int, part, outcome) -> None:
        """Write the shard in the background, once the one before is written (its error raised here)."""
        if self.writing is not None:
            self.writing.result()
        self.writing = self.writer.submit(self._write, index, part, outcome)

    def close(self, *, wait: bool = True) -> None:
        """Wait for the last write (raising its error), then end the writer; ``wait=False``: only end it."""
        if wait and self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()
        self.writer.shutdown(wait=True)

    def _write(self, index: int, part, outcome) -> None:
        folder = self.folders[index]
        if outcome.error is None:
            write_tables(folder, outcome.tables, outcome.meta)
        else:
            write_tables(self._failed_folder(index), self.failed(part, outcome.error), {"failed": outcome.error, "n": len(part)})
        self.add(index, len(part), "done" if outcome.error is None else "failed", retried=outcome.retried,
                 seconds=outcome.seconds, error=outcome.error)  # fmt: skip

    def _failed_folder(self, index: int) -> Path:
        return self.out_dir / f"failed-{index:06d}"

    def count(self, status: str) -> int:
        return sum(row["status"] == status for row in self.rows.values())

    def merge_folders(self) -> list[Path]:
        return [self._failed_folder(i) if self.rows[i]["status"] == "failed" else f for i, f in enumerate(self.folders)]

    def table(self) -> pd.DataFrame:
        columns = ["shard", "n_inputs", "status", "retried", "seconds", "error"]
        return pd.DataFrame([self.rows[i] for i in sorted(self.rows)], columns=columns)


def remove_shards(out_dir) -> None:
    """Remove a run's shard folder once its result is written elsewhere."""
    shutil.rmtree(Path(out_dir), ignore_errors=True)


__all__ = ["run", "ScaleRun", "load_adapter", "load_feature_adapter", "remove_shards", "ENGINES", "TASKS"]
