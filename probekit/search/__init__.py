"""Adversarial searches: discrete (substitutions, bit flips), continuous (FGSM, PGD), and random baselines.

Every search takes an adapter first and returns one frozen result type.
"""

from .baseline import random_bit_flips, random_substitutions
from .continuous import fgsm, min_perturbation, pgd, random_perturbation
from .counterfactual import counterfactual_molecules
from .discrete import bit_flips, min_substitutions, saturation_mutagenesis

__all__ = [
    "saturation_mutagenesis",
    "min_substitutions",
    "bit_flips",
    "random_substitutions",
    "random_bit_flips",
    "fgsm",
    "pgd",
    "min_perturbation",
    "random_perturbation",
    "counterfactual_molecules",
]
