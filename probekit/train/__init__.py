"""Training for robustness: adversarial, certified and Lipschitz-constrained models.

- :func:`fit`: a generic, seeded, resumable loop for any torch model and DataLoader,
  returning the trained copy and a history table; objectives say what a batch costs:
  :func:`standard`, :func:`adversarial` (PGD / FGSM / TRADES), :func:`substitutions`
  (k substitutions per DNA sequence), :func:`certified` (IBP and CROWN-IBP).
- :func:`spectral_norm`, :func:`constrained_linear` and :func:`track_lipschitz`:
  Lipschitz-constrained models and their per-layer constants as training goes.

Examples
--------
>>> import torch
>>> from probekit import train
>>> X, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
>>> model, history = train.fit(torch.nn.Linear(4, 2), (X, y), objective=train.adversarial(0.1, steps=2),
...                            epochs=1, device="cpu")
>>> list(history.columns[:2])
['epoch', 'loss']
"""

from .adversarial import adversarial, inner_max, misclassify, substitutions
from .certified import certified, worst_case_bounds
from .lipschitz import constrained_linear, spectral_norm, track_lipschitz
from .loop import fit, per_example_loss, ramp, standard

__all__ = [
    "fit",
    "standard",
    "per_example_loss",
    "ramp",
    "adversarial",
    "inner_max",
    "substitutions",
    "misclassify",
    "certified",
    "worst_case_bounds",
    "spectral_norm",
    "constrained_linear",
    "track_lipschitz",
]
