"""Dinucleotide shuffles: exact counts, fixed ends, seeding, uniformity against brute-force enumeration."""

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probekit.encode import decode, one_hot
from probekit.encode.shuffle import dinucleotide_counts, dinucleotide_shuffle

from probekit.testing import random_sequences


def doublets(s: str) -> Counter:
    return Counter(zip(s, s[1:]))


def test_strings_keep_counts_and_ends():
    seqs = random_sequences(5, 60, seed=3) + ["ACGTNNACGTTTNACG"]
    shuffled = dinucleotide_shuffle(seqs, n=10, seed=0)
    assert len(shuffled) == len(seqs)
    for original, draws in zip(seqs, shuffled):
        assert len(draws) == 10
        for s in draws:
            assert len(s) == len(original)
            assert doublets(s) == doublets(original)
            assert s[0] == original[0] and s[-1] == original[-1]
        assert len(set(draws)) > 1


def test_one_hot_keeps_counts_ends_and_n_columns():
    seqs = random_sequences(4, 40, seed=1)
    seqs[0] = seqs[0][:10] + "NN" + seqs[0][12:30] + "N" + seqs[0][31:]
    X = one_hot(seqs)
    S = dinucleotide_shuffle(X, n=6, seed=2)
    assert S.shape == (4, 6, 4, 40)
    assert S.dtype == X.dtype
    assert set(S.sum(dim=2).unique().tolist()) <= {0.0, 1.0}
    for i, original in enumerate(seqs):
        for s in decode(S[i]):
            assert doublets(s) == doublets(original)
            assert s[0] == original[0] and s[-1] == original[-1]
    counts = dinucleotide_counts(S.reshape(-1, 4, 40)).reshape(4, 6, 5, 5)
    assert torch.equal(counts, dinucleotide_counts(X)[:, None].expand(4, 6, 5, 5))


def test_single_one_hot_gives_n_by_4_by_l():
    X = one_hot(["ACGTTGCAAC"])[0]
    assert dinucleotide_shuffle(X, n=3, seed=0).shape == (3, 4, 10)


def test_seeds():
    X = one_hot(random_sequences(3, 50, seed=4))
    a = dinucleotide_shuffle(X, n=5, seed=11)
    b = dinucleotide_shuffle(X, n=5, seed=11)
    c = dinucleotide_shuffle(X, n=5, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_uniform_over_all_sequences_with_the_same_doublets():
    """Every sequence with the original's doublet counts is reached, at about equal rates."""
    original = "ACAGACGTCA"
    target = np.array(["ACGT".index(c) for c in original])
    k = len(original) - 1
    tails = (np.arange(4**k)[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4  # every sequence of k bases
    codes = np.concatenate([np.full((len(tails), 1), target[0]), tails], axis=1)  # same first base

    def counts(c):
        pairs = c[:, :-1] * 4 + c[:, 1:] + 16 * np.arange(len(c))[:, None]
        return np.bincount(pairs.ravel(), minlength=16 * len(c)).reshape(len(c), 16)

    same = (counts(codes) == counts(target[None])).all(axis=1)
    valid = {"".join("ACGT"[i] for i in row) for row in codes[same]}
    draws = Counter(dinucleotide_shuffle(original, n=3000, seed=5))
    assert set(draws) == valid
    expected = 3000 / len(valid)
    chi2 = sum((draws[s] - expected) ** 2 / expected for s in valid)
    from scipy.stats import chi2 as chi2_dist

    assert chi2_dist.sf(chi2, len(valid) - 1) > 1e-4


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="ACGTN", min_size=1, max_size=40), st.integers(0, 2**16))
def test_property_counts_preserved(sequence, seed):
    for s in dinucleotide_shuffle(sequence, n=3, seed=seed):
        assert doublets(s) == doublets(sequence)
        assert s[0] == sequence[0] and s[-1] == sequence[-1]


def test_bad_character_names_record_and_position():
    with pytest.raises(ValueError, match="record 1: position 2 has 'R'"):
        dinucleotide_shuffle(["ACGT", "ACRT"], n=2)
