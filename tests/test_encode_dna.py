"""One-hot encoding, decoding, reverse complement and grouping."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probekit.encode.dna import decode, group_by_length, one_hot, reverse_complement, validate_sequence

dna = st.text(alphabet="ACGTN", min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(st.lists(dna, min_size=1, max_size=5).filter(lambda s: len({len(x) for x in s}) == 1))
def test_round_trip(seqs):
    assert decode(one_hot(seqs)) == seqs


@settings(max_examples=50, deadline=None)
@given(dna)
def test_reverse_complement_matches_string(seq):
    expected = seq[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
    assert decode(reverse_complement(one_hot(seq))) == [expected]


def test_other_alphabet_order():
    X = one_hot("ACGT", alphabet="TGCA")
    assert X[0].argmax(dim=0).tolist() == [3, 2, 1, 0]
    assert decode(reverse_complement(X, alphabet="TGCA"), alphabet="TGCA") == ["ACGT"]


def test_each_column_is_one_hot():
    X = one_hot(["ACGTAC", "GGGTTT"])
    assert X.shape == (2, 4, 6)
    assert torch.equal(X.sum(dim=1), torch.ones(2, 6))


def test_mixed_lengths_rejected_with_advice():
    with pytest.raises(ValueError, match="group_by_length"):
        one_hot(["ACG", "AC"])


def test_invalid_character_rejected():
    with pytest.raises(ValueError, match="position 2"):
        one_hot(["ACXT"])


def test_validate_names_record_and_position():
    msg = validate_sequence("AC GT", record="r1")
    assert "r1" in msg and "position 2" in msg and "whitespace" in msg
    assert validate_sequence("acgtn") is None


def test_group_by_length():
    assert group_by_length(["A", "AC", "G", "ACG", "TT"]) == {1: [0, 2], 2: [1, 4], 3: [3]}
