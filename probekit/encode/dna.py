"""One-hot encoding of DNA, its inverse, and sequence validation.

Tensors are (N, 4, L) in the alphabet's channel order ("NCL"); an ``N`` base is
an all-zero column.

Examples
--------
>>> X = one_hot(["ACGTN"])
>>> X.shape
torch.Size([1, 4, 5])
>>> decode(X)
['ACGTN']
>>> decode(reverse_complement(X))
['NACGT']
"""

from __future__ import annotations

from collections import defaultdict

import functools
import re

import numpy as np
import torch

IUPAC_AMBIGUITY = set("RYSWKMBDHV")
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


@functools.lru_cache(maxsize=16)
def _invalid_pattern(alphabet: str) -> "re.Pattern":
    """A regular expression matching any character that is not a base of ``alphabet`` or N (either case)."""
    letters = "".join(sorted(set(alphabet.upper() + alphabet.lower() + "Nn")))
    return re.compile(f"[^{re.escape(letters)}]")


def validate_sequence(sequence: str, *, alphabet: str = "ACGT", record: str = "?") -> str | None:
    """Return an error message for the first invalid character of ``sequence``, or None.

    Lowercase (soft-masked) bases and ``N`` are valid.

    Examples
    --------
    >>> validate_sequence("ACGTR", record="chr1")
    "record 'chr1': position 4 has 'R', an IUPAC ambiguity code; only A, C, G, T and N are accepted"
    """
    if len(sequence) == 0:
        return f"record {record!r}: empty sequence"
    if _invalid_pattern(alphabet).search(sequence) is None:
        return None
    allowed = set(alphabet.upper()) | {"N"}
    letters = ", ".join(alphabet.upper())
    for position, char in enumerate(sequence):
        upper = char.upper()
        if upper in allowed:
            continue
        if upper in IUPAC_AMBIGUITY:
            kind = "an IUPAC ambiguity code"
        elif char in "-.":
            kind = "a gap"
        elif char.isdigit():
            kind = "a digit"
        elif char.isspace():
            kind = "whitespace"
        else:
            kind = "not a nucleotide"
        return f"record {record!r}: position {position} has {char!r}, {kind}; only {letters} and N are accepted"
    return None


def _lookup(alphabet: str) -> np.ndarray:
    table = np.full(256, -1, dtype=np.int64)
    for i, base in enumerate(alphabet.upper()):
        table[ord(base)] = i
        table[ord(base.lower())] = i
    return table


def one_hot(sequences, *, alphabet: str = "ACGT", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot encode equal-length sequences.

    Parameters
    ----------
    sequences : str or list of str
        DNA sequences of one length; ``N`` (any case) becomes an all-zero column.
    alphabet : str
        Channel order, ``"ACGT"`` by default.

    Returns
    -------
    torch.Tensor of shape (N, len(alphabet), L)

    Examples
    --------
    >>> one_hot("AC")[0]
    tensor([[1., 0.],
            [0., 1.],
            [0., 0.],
            [0., 0.]])
    """
    if isinstance(sequences, str):
        sequences = [sequences]
    sequences = list(sequences)
    if not sequences:
        return torch.zeros(0, len(alphabet), 0, dtype=dtype)
    lengths = {len(s) for s in sequences}
    if len(lengths) > 1:
        raise ValueError(
            f"one_hot needs sequences of one length, got lengths {sorted(lengths)}; group them with group_by_length"
        )
    for i, seq in enumerate(sequences):
        error = validate_sequence(seq, alphabet=alphabet, record=str(i))
        if error:
            raise ValueError(error)
    codes = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    index = _lookup(alphabet)[codes].reshape(len(sequences), -1)
    length = index.shape[1]
    out = np.zeros((len(sequences), len(alphabet), length), dtype=np.float32)
    n_idx, l_idx = np.nonzero(index >= 0)
    out[n_idx, index[n_idx, l_idx], l_idx] = 1.0
    return torch.from_numpy(out).to(dtype)


def decode(X: torch.Tensor, *, alphabet: str = "ACGT") -> list[str]:
    """Turn one-hot (N, 4, L) back into strings; all-zero columns become ``N``."""
    X = torch.as_tensor(X).detach().cpu()
    if X.ndim == 2:
        X = X[None]
    present = X.abs().sum(dim=1) > 0
    idx = X.argmax(dim=1).numpy()
    letters = np.array(list(alphabet.upper()) + ["N"])
    idx = np.where(present.numpy(), idx, len(alphabet))
    return ["".join(row) for row in letters[idx]]


def complement_order(alphabet: str = "ACGT") -> list[int]:
    """Channel permutation that complements each base of ``alphabet``."""
    upper = alphabet.upper()
    if set(upper) != set("ACGT"):
        raise ValueError(f"reverse complement needs a DNA alphabet of A, C, G, T; got {alphabet!r}")
    return [upper.index(COMPLEMENT[b]) for b in upper]


def reverse_complement(X: torch.Tensor, *, alphabet: str = "ACGT") -> torch.Tensor:
    """Reverse complement of one-hot sequences (N, 4, L)."""
    return X[:, complement_order(alphabet)].flip(-1)


def group_by_length(sequences) -> dict[int, list[int]]:
    """Map each sequence length to the indices of the sequences that have it.

    Examples
    --------
    >>> group_by_length(["AC", "ACG", "GT"])
    {2: [0, 2], 3: [1]}
    """
    groups: dict[int, list[int]] = defaultdict(list)
    for i, seq in enumerate(sequences):
        groups[len(seq)].append(i)
    return dict(groups)
