"""Certificates: proofs that no change within a budget moves the prediction.

- :func:`ibp` and :func:`crown`: bounds of the score over L-inf, L2 and L1 balls,
  or over the sequences within k substitutions (``k=``);
- :func:`substitutions` and :func:`bit_flips`: per input, certified, falsified
  (with the edits) or unknown, exact when enumeration is affordable;
- :func:`smoothing` and :class:`Smoothed`: randomized smoothing (Cohen et al., 2019);
- :func:`lipschitz` and :func:`error_bound`: global and local Lipschitz constants.
"""

from .crown import crown, substitution_bounds
from .graph import UnsupportedOperation, trace
from .hamming import CertificateResult, bit_flips, substitutions
from .ibp import ibp
from .lipschitz import LipschitzResult, error_bound, lipschitz
from .smoothing import Smoothed, correlated_covariance, smoothing

__all__ = [
    "ibp",
    "crown",
    "substitution_bounds",
    "substitutions",
    "bit_flips",
    "CertificateResult",
    "smoothing",
    "Smoothed",
    "correlated_covariance",
    "lipschitz",
    "error_bound",
    "LipschitzResult",
    "trace",
    "UnsupportedOperation",
]
