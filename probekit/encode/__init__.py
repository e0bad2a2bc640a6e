"""Encoders: one-hot DNA (:mod:`probekit.encode.dna`) and molecular featurizers."""

from .dna import decode, group_by_length, one_hot, reverse_complement, validate_sequence
from .shuffle import dinucleotide_shuffle

__all__ = ["one_hot", "decode", "reverse_complement", "validate_sequence", "group_by_length", "dinucleotide_shuffle"]
