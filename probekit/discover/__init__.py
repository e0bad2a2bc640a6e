"""What a model learned across a whole set of sequences: motif discovery, JASPAR matching, causal motif experiments.

:func:`discover` finds the patterns a model uses (TF-MoDISco on hypothetical
contributions from ISM or DeepLIFT-SHAP), :func:`match_jaspar` names them by
their TOMTOM matches in JASPAR with p- and q-values, and the experiments test
them causally against random edits of the same size: :func:`insertion_effect`
implants a motif into background sequences, :func:`ablation_effect` destroys its
instances in the real sequences, and :func:`spacing_grid` measures how two
motifs cooperate over distances and orientations.

Examples
--------
>>> import probekit.discover as pd_
>>> sorted(pd_.__all__)[:3]
['DiscoveryResult', 'MotifEffects', 'SpacingResult']
"""

from .experiments import ablation_effect, insertion_effect, motif_sites, spacing_grid
from .patterns import discover, hypothetical_contributions, sequence_records
from .results import DiscoveryResult, MotifEffects, SpacingResult
from .tomtom import match_jaspar

__all__ = [
    "discover",
    "hypothetical_contributions",
    "sequence_records",
    "match_jaspar",
    "insertion_effect",
    "ablation_effect",
    "spacing_grid",
    "motif_sites",
    "DiscoveryResult",
    "MotifEffects",
    "SpacingResult",
]
