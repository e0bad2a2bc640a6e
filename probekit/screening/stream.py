"""Screening a library of any size chunk by chunk into a table: an interrupted run resumes where it stopped.

:func:`screen_molecules_to_table` reads the library a chunk at a time
(:func:`~probekit.screening.iter_molecule_chunks`), scores each chunk with
:func:`~probekit.screening.screen_molecules`, and saves each finished chunk under
``<table>.partial/``, keyed by a hash of the settings and of the chunk's records
(:func:`probekit.variants.stream.stream_chunks`). Once every chunk is done, they are
joined into the table (Parquet row groups, or TSV/CSV appended in order) and the
folder is removed. Memory holds one chunk at a time, and the best rows.

Examples
--------
>>> import os, tempfile
>>> import pandas as pd
>>> from probekit.molmodel import MoleculeModel
>>> adapter = MoleculeModel(lambda smiles: torch.tensor([float(len(s)) for s in smiles]), kind="smiles", device="cpu")
>>> table = os.path.join(tempfile.mkdtemp(), "scores.tsv")
>>> outcome = screen_molecules_to_table(adapter, ["CCO", "C1CC", "CCCCO"], table=table, settings={"model": "length"},
...                                     chunk_size=2, top=1, progress=False)
>>> outcome.line()
'scored 2 of 3 molecules (1 error); best score 5 (mol2)'
>>> pd.read_csv(table, sep="\\t")["score"].tolist()
[3.0, nan, 5.0]
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

_KEY_COLUMNS = ("id", "smiles", "error")


@dataclass
class ScreenOutcome:
    """What a streamed screen wrote: counts, the top-scoring rows and the first errors.

    Attributes
    ----------
    path : Path
        The table written.
    n_rows, n_errors, n_chunks, n_reused : int
        Records, error rows, chunks, and chunks reused from an earlier run.
    top : pandas.DataFrame
        The ``top`` scored rows with the best ``score``: the highest, or the lowest
        with ``best="lowest"`` (ties: file order).
    score_median : float
        Median score of the scored rows (kept as float32 while joining: 4 bytes per molecule).
    errors : list of str
        The first 1,000 error messages, in order.
    """

    path: Path
    n_rows: int = 0
    n_errors: int = 0
    n_chunks: int = 0
    n_reused: int = 0
    top: pd.DataFrame = field(default_factory=pd.DataFrame)
    score_median: float = math.nan
    errors: list = field(default_factory=list)

    def line(self) -> str:
        """The summary line: how many were scored, and the best score.

        Examples
        --------
        >>> ScreenOutcome(Path("s.parquet"), n_rows=3, n_errors=3).line()
        'scored 0 of 3 molecules (3 errors)'
        """
        text = f"scored {self.n_rows - self.n_errors} of {self.n_rows} molecules ({self.n_errors} error{'s' if self.n_errors != 1 else ''})"
        if len(self.top):
            text += f"; best score {self.top['score'].iloc[0]:.4g} ({self.top['id'].iloc[0]})"
        return text


def join_scores(paths: list[Path], table: Path, *, outcome: ScreenOutcome, top: int, best: str = "highest") -> None:
    """Write the saved chunks ``paths`` into ``table`` in order, counting into ``outcome`` and keeping the ``top`` rows.

    ``best`` is ``"highest"`` or ``"lowest"``: which end of the scores the top rows come from.
    """
    sign = _sign(best)
    from ..variants.stream import table_format, write_table

    medians = []
    best = pd.DataFrame()

    def count(frame: pd.DataFrame) -> None:
        nonlocal best
        errors = frame["error"].notna()
        outcome.n_rows += len(frame)
        outcome.n_errors += int(errors.sum())
        outcome.n_chunks += 1
        outcome.errors.extend(frame.loc[errors, "error"].tolist()[: max(0, 1000 - len(outcome.errors))])
        scored = frame[~errors]
        medians.append(scored["score"].to_numpy(dtype=np.float32))
        both = pd.concat([best, scored], ignore_index=True) if len(best) else scored.reset_index(drop=True)
        best = both.iloc[np.argsort(-sign * both["score"].to_numpy(), kind="stable")[:top]].reset_index(drop=True)

    write_table(paths, table, kind=table_format(table), each=count)
    values = np.concatenate(medians) if medians else np.zeros(0, dtype=np.float32)
    outcome.score_median = float(np.median(values)) if values.size else math.nan
    outcome.top = best


def _sign(best: str) -> float:
    """+1 when the highest scores are best, -1 when the lowest are (docking energies, IC50 in nM)."""
    if best not in ("highest", "lowest"):
        raise ValueError(f"best must be 'highest' or 'lowest', got {best!r}")
    return 1.0 if best == "highest" else -1.0


def screen_molecules_to_table(
    adapter,
    molecules,
    *,
    table,
    settings: dict,
    chunk_size: int = 10_000,
    outputs=None,
    top: int = 20,
    best: str = "highest",
    smiles_col: str | None = None,
    id_col: str | None = None,
    standardize: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ScreenOutcome:
    """Score every molecule of ``molecules`` chunk by chunk into the table ``table``; resume where a run stopped.

    Parameters
    ----------
    adapter : FeatureModel or MoleculeModel
        As :func:`~probekit.screening.screen_molecules` takes it.
    molecules : str, Path, list of str, dict or DataFrame
        A ``.smi``/``.csv``/``.tsv`` file (read a chunk at a time), or what
        :func:`~probekit.screening.iter_molecule_chunks` takes.
    table : str or Path
        ``.parquet`` (one row group per chunk), ``.tsv`` or ``.csv``; written whole at the end.
    settings : dict
        What identifies the model (file digest, featurizer): with the adapter's output
        and the scoring options it keys the saved chunks, so a rerun reuses only
        chunks scored the same way.
    chunk_size : int
        Molecules per saved chunk.
    outputs : list of output specs, optional
        Further outputs, one column each (see :func:`~probekit.screening.screen_molecules`).
    top : int
        Best-scoring rows kept in :attr:`ScreenOutcome.top`.
    best : {"highest", "lowest"}
        Which scores are best: the highest (a predicted affinity) or the lowest (a
        docking energy, an IC50 in nM).
    smiles_col, id_col, standardize
        As :func:`~probekit.screening.screen_molecules`.
    progress : bool
        A progress bar over molecules.
    log : callable
        Receives one line when chunks are reused.

    Returns
    -------
    ScreenOutcome

    Raises
    ------
    ChunksKept
        On KeyboardInterrupt after some chunks were saved: rerun the same call to resume.
    """
    from ..variants.stream import partial_folder, save_chunk, stream_chunks, table_format
    from .read import iter_molecule_chunks
    from .score import output_list, screen_molecules

    table = Path(table)
    table_format(table)
    _sign(best)
    folder = partial_folder(table)
    folder.mkdir(parents=True, exist_ok=True)
    extra = output_list(outputs)
    full = {"settings": settings, "output": adapter.output.name, "outputs": [o.name for o in extra],
            "standardize": bool(standardize), "chunk_size": chunk_size}  # fmt: skip

    def score(part: pd.DataFrame) -> pd.DataFrame:
        return screen_molecules(adapter, part, outputs=extra, standardize=standardize)

    parts = iter_molecule_chunks(molecules, chunk_size=chunk_size, smiles_col=smiles_col, id_col=id_col)
    paths, reused = stream_chunks(parts, score, folder=folder, settings=full, key_columns=_KEY_COLUMNS,
                                  progress=progress, desc="molecules", unit="mol")  # fmt: skip
    if not paths:  # an empty library: the table has its columns and no row
        paths = [folder / "empty.parquet"]
        save_chunk(score(pd.DataFrame({"id": [], "smiles": []}, dtype=object)), paths[0])
    if reused:
        log(f"reused {reused} of {len(paths)} finished chunks from {folder}")
    table.parent.mkdir(parents=True, exist_ok=True)
    outcome = ScreenOutcome(path=table, n_reused=reused)
    join_scores(paths, table, outcome=outcome, top=top, best=best)
    shutil.rmtree(folder, ignore_errors=True)
    return outcome


__all__ = ["screen_molecules_to_table", "ScreenOutcome", "join_scores"]
