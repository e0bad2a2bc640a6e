"""Reading inputs: FASTA through Biopython, and every other form of sequence input.

Every reader returns a DataFrame with one row per record and an ``error`` column:
a bad record is kept, with a message naming the record, the position and the
character, so nothing is lost and the rest of the batch goes on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from .encode.dna import decode, validate_sequence


def read_fasta(path, *, alphabet: str = "ACGT") -> pd.DataFrame:
    """Read a FASTA file into a DataFrame with ``id``, ``sequence`` and ``error``.

    Soft-masked (lowercase) bases are accepted and upper-cased; ``N`` is kept
    (it becomes an all-zero column when encoded). Ambiguity codes, gaps, digits,
    other characters and empty records get an ``error`` naming the record, the
    position and the character; ``sequence`` keeps the raw text.

    Parameters
    ----------
    path : str or Path
        FASTA file (``.gz`` is read transparently).

    Returns
    -------
    pandas.DataFrame with columns ``id``, ``sequence``, ``error`` (None when valid)

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.fa")
    >>> _ = open(path, "w").write(">a\\nACGTacgt\\n>b\\nACRT\\n")
    >>> read_fasta(path)[["id", "error"]].values.tolist()
    [['a', None], ['b', "record 'b': position 2 has 'R', an IUPAC ambiguity code; only A, C, G, T and N are accepted"]]
    """
    from Bio import SeqIO

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FASTA file not found: {path}")
    opener = open
    if path.suffix == ".gz":
        import gzip

        opener = gzip.open
    rows = []
    with opener(path, "rt") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            rows.append(_row(record.id, str(record.seq), alphabet))
    if not rows:
        raise ValueError(f"no FASTA records found in {path}")
    return _frame(rows)


def _row(record_id: str, sequence: str, alphabet: str) -> dict:
    error = validate_sequence(sequence, alphabet=alphabet, record=record_id)
    return {"id": record_id, "sequence": sequence if error else sequence.upper(), "error": error}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["id", "sequence", "error"])
    frame["error"] = pd.Series([e if isinstance(e, str) else None for e in frame["error"]], index=frame.index, dtype=object)
    duplicated = frame["id"].duplicated(keep=False)
    if duplicated.any():
        counts = frame.groupby("id").cumcount()
        frame.loc[duplicated, "id"] = frame.loc[duplicated, "id"] + "#" + counts[duplicated].astype(str)
    return frame


def sequence_frame(inputs, *, alphabet: str = "ACGT", ids=None) -> pd.DataFrame:
    """Normalise any sequence input to a DataFrame with ``id``, ``sequence``, ``error``.

    Parameters
    ----------
    inputs : path, str, list of str, dict, DataFrame or torch.Tensor
        A FASTA path; one sequence; a list of sequences; a mapping id -> sequence;
        a DataFrame with a ``sequence`` column (and optionally ``id``); or one-hot
        tensors of shape (N, 4, L).
    ids : list of str, optional
        Record names; default ``seq0``, ``seq1``, ...

    Examples
    --------
    >>> sequence_frame(["ACGT", "AXGT"])["error"].tolist()
    [None, "record 'seq1': position 1 has 'X', not a nucleotide; only A, C, G, T and N are accepted"]
    """
    if isinstance(inputs, pd.DataFrame):
        if "sequence" not in inputs.columns:
            raise ValueError(f"a DataFrame of sequences needs a 'sequence' column; it has {list(inputs.columns)}")
        seqs = [str(s) for s in inputs["sequence"]]
        names = [str(i) for i in inputs["id"]] if "id" in inputs.columns else ids
        frame = _from_list(seqs, names, alphabet)
        if "error" in inputs.columns:
            prior = inputs["error"].tolist()
            merged = [p if isinstance(p, str) and p else e for p, e in zip(prior, frame["error"])]
            frame["error"] = pd.Series(merged, index=frame.index, dtype=object)
        return frame
    if isinstance(inputs, torch.Tensor):
        X = inputs.detach()
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[1] != len(alphabet):
            raise ValueError(f"one-hot input must have shape (N, {len(alphabet)}, L); got {tuple(X.shape)}")
        return _from_list(decode(X, alphabet=alphabet), ids, alphabet)
    if isinstance(inputs, dict):
        return _from_list([str(s) for s in inputs.values()], [str(k) for k in inputs.keys()], alphabet)
    if isinstance(inputs, (str, os.PathLike)):
        text = str(inputs)
        looks_like_path = isinstance(inputs, os.PathLike) or os.sep in text or text.endswith(
            (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz")
        )
        if looks_like_path or Path(text).exists():
            return read_fasta(text, alphabet=alphabet)
        return _from_list([text], ids, alphabet)
    return _from_list([str(s) for s in inputs], ids, alphabet)


def _from_list(seqs: list[str], ids, alphabet: str) -> pd.DataFrame:
    if ids is None:
        ids = [f"seq{i}" for i in range(len(seqs))]
    if len(ids) != len(seqs):
        raise ValueError(f"got {len(ids)} ids for {len(seqs)} sequences")
    return _frame([_row(str(i), s, alphabet) for i, s in zip(ids, seqs)])
