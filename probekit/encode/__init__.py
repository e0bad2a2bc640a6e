"""Encoders: one-hot DNA (:mod:`probekit.encode.dna`) and molecular featurizers (:mod:`probekit.encode.mol`)."""

from .dna import decode, group_by_length, one_hot, reverse_complement, validate_sequence
from .mol import (
    MACCS,
    Concat,
    Descriptors,
    Featurizer,
    Matrix,
    Morgan,
    Provenance,
    atom_environment,
    molecule_frame,
    parse_featurizer,
)
from .shuffle import dinucleotide_shuffle

__all__ = [
    "one_hot",
    "decode",
    "reverse_complement",
    "validate_sequence",
    "group_by_length",
    "dinucleotide_shuffle",
    "Morgan",
    "Descriptors",
    "MACCS",
    "Concat",
    "Matrix",
    "Featurizer",
    "Provenance",
    "atom_environment",
    "molecule_frame",
    "parse_featurizer",
]
