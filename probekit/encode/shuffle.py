"""Dinucleotide shuffles: random sequences with exactly the dinucleotide counts of the original.

The shuffle follows Altschul & Erikson (1985) as made practical by Kandel et al.
(1996): the sequence is read as an Eulerian walk over a graph whose vertices are
the letters and whose edges are the observed dinucleotides. A random "last exit"
edge is drawn for every letter (except the final one) until these edges form a
tree pointing to the final letter; the remaining edges of each letter are then
permuted at random, and walking the graph from the first letter gives a sequence
with the same first and last letter and the same count of every dinucleotide,
drawn uniformly from all such sequences.

``N`` (an all-zero column in one-hot tensors) is treated as a fifth letter, so
dinucleotides that involve ``N`` are preserved too.

Examples
--------
>>> dinucleotide_shuffle("AACGTTACGA", n=2, seed=0)
['ACGTTACGAA', 'AACGTTACGA']
"""

from __future__ import annotations

import numpy as np
import torch


def _shuffle_codes(codes: np.ndarray, n: int, rng: np.random.Generator, n_letters: int) -> np.ndarray:
    """``n`` dinucleotide shuffles of one integer-coded sequence: array (n, L)."""
    length = len(codes)
    out = np.empty((n, length), dtype=codes.dtype)
    if length <= 2:
        out[:] = codes
        return out
    first, last = int(codes[0]), int(codes[-1])
    # Outgoing edges of every letter, in order of occurrence.
    successors = [codes[1:][codes[:-1] == v] for v in range(n_letters)]
    present = [v for v in range(n_letters) if len(successors[v]) > 0]
    for draw in range(n):
        while True:
            # Random last exit per vertex (uniform over its edges); accept when they form a tree into `last`.
            exit_index = {v: int(rng.integers(len(successors[v]))) for v in present if v != last}
            exit_to = {v: int(successors[v][i]) for v, i in exit_index.items()}
            if _reaches(exit_to, last):
                break
        orders = []
        for v in range(n_letters):
            edges = successors[v]
            if v in exit_index:
                rest = np.delete(edges, exit_index[v])
                orders.append(np.append(rng.permutation(rest), exit_to[v]))
            else:
                orders.append(rng.permutation(edges))
        pointer = [0] * n_letters
        current = first
        row = out[draw]
        row[0] = first
        for i in range(1, length):
            step = orders[current][pointer[current]]
            pointer[current] += 1
            current = int(step)
            row[i] = current
    return out


def _reaches(exit_to: dict, last: int) -> bool:
    """True when following last-exit edges from every vertex ends at ``last`` (no cycle)."""
    for start in exit_to:
        seen = set()
        v = start
        while v != last:
            if v in seen:
                return False
            seen.add(v)
            v = exit_to[v]
    return True


def _codes_from_one_hot(X: torch.Tensor) -> np.ndarray:
    """(N, A, L) one-hot -> (N, L) integer codes; all-zero columns get code A (``N``)."""
    a = X.shape[1]
    codes = X.argmax(dim=1)
    codes[X.sum(dim=1) == 0] = a
    return codes.cpu().numpy()


def _codes_from_string(sequence: str, alphabet: str) -> np.ndarray:
    table = {b: i for i, b in enumerate(alphabet.upper())}
    table["N"] = len(alphabet)
    codes = []
    for position, char in enumerate(sequence):
        if char.upper() not in table:
            raise ValueError(f"position {position} has {char!r}, not one of {alphabet.upper()} or N")
        codes.append(table[char.upper()])
    return np.array(codes, dtype=np.int64)


def dinucleotide_shuffle(X, *, n: int = 20, seed: int = 0, alphabet: str = "ACGT"):
    """Shuffle sequences while keeping every dinucleotide count, the first and the last base.

    Parameters
    ----------
    X : str, list of str, or torch.Tensor of shape (4, L) or (N, 4, L)
        Sequences to shuffle; one-hot columns that are all zero (``N``) are kept
        as ``N`` and shuffled as a fifth letter.
    n : int
        Shuffles per sequence.
    seed : int
        Seed of the random generator; the same seed always gives the same shuffles.
    alphabet : str
        Letter order of the one-hot channels.

    Returns
    -------
    list of str, list of list of str, or torch.Tensor
        For a string, ``n`` strings; for a list of strings, one list of ``n``
        strings per sequence; for a tensor (4, L), a tensor (n, 4, L); for a tensor
        (N, 4, L), a tensor (N, n, 4, L) with the dtype and device of ``X``.

    Examples
    --------
    >>> from probekit.encode import one_hot
    >>> X = one_hot(["ACGTTGCA", "AAACCCGT"])
    >>> dinucleotide_shuffle(X, n=3, seed=1).shape
    torch.Size([2, 3, 4, 8])
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    a = len(alphabet)
    if isinstance(X, str):
        return dinucleotide_shuffle([X], n=n, seed=seed, alphabet=alphabet)[0]
    if isinstance(X, torch.Tensor):
        single = X.ndim == 2
        Xb = X[None] if single else X
        if Xb.ndim != 3 or Xb.shape[1] != a:
            raise ValueError(f"one-hot input must have shape ({a}, L) or (N, {a}, L); got {tuple(X.shape)}")
        codes = _codes_from_one_hot(Xb)
        shuffled = np.stack([_shuffle_codes(c, n, rng, a + 1) for c in codes])  # (N, n, L)
        index = torch.from_numpy(shuffled).to(X.device)
        out = torch.zeros(*index.shape, a + 1, dtype=X.dtype, device=X.device)
        out.scatter_(-1, index[..., None], 1)
        out = out[..., :a].transpose(-1, -2).contiguous()  # drop the N channel -> (N, n, a, L)
        return out[0] if single else out
    sequences = list(X)
    result = []
    letters = np.array(list(alphabet.upper()) + ["N"])
    for record, sequence in enumerate(sequences):
        try:
            codes = _codes_from_string(sequence, alphabet)
        except ValueError as error:
            raise ValueError(f"record {record}: {error}") from None
        shuffled = _shuffle_codes(codes, n, rng, a + 1)
        result.append(["".join(letters[row]) for row in shuffled])
    return result


def dinucleotide_counts(X) -> torch.Tensor:
    """Counts of each dinucleotide, (N, 5, 5) over letters plus ``N``, of one-hot (N, 4, L)."""
    codes = torch.from_numpy(_codes_from_one_hot(X if X.ndim == 3 else X[None]))
    k = X.shape[-2] + 1
    pairs = codes[:, :-1] * k + codes[:, 1:]
    counts = torch.zeros(codes.shape[0], k * k, dtype=torch.long)
    counts.scatter_add_(1, pairs, torch.ones_like(pairs))
    return counts.reshape(-1, k, k)


__all__ = ["dinucleotide_shuffle", "dinucleotide_counts"]
