"""Refusing non-finite evidence: a NaN or an infinity proves nothing.

A certificate rests on the model's outputs (at the input, at enumerated edits,
at noisy copies). Where any of them is NaN or infinite the input is not
certified: it gets a reason naming what the model returned, and the call warns
once with the count.
"""

from __future__ import annotations

import torch

from .._warnings import warn


def nonfinite_rows(values: torch.Tensor) -> torch.Tensor:
    """Rows of ``values`` (N, ...) holding a NaN or an infinity: (N,) bool."""
    return ~torch.isfinite(values.reshape(values.shape[0], -1)).all(1)


def what_returned(values: torch.Tensor) -> list:
    """Per row of ``values`` (N, ...): ``"NaN"``, ``"inf"``, ``"-inf"`` or ``""`` (all finite)."""
    flat = values.reshape(values.shape[0], -1)
    table = torch.stack([torch.isnan(flat).any(1), (flat == float("inf")).any(1), (flat == -float("inf")).any(1)], 1)
    return ["NaN" if nan else "inf" if pos else "-inf" if neg else "" for nan, pos, neg in table.tolist()]


def input_reasons(values: torch.Tensor) -> list:
    """Per row of the model's outputs ``values`` (N, ...) at the inputs: why it cannot be certified, or ``""``."""
    return [f"the model returned {what} on this input" if what else "" for what in what_returned(values)]


def warn_refused(reasons: list, *, ids=None, outcome: str = "not certified", stacklevel: int = 4) -> None:
    """One warning for the inputs with a reason, naming the first few of them."""
    bad = [i for i, reason in enumerate(reasons) if reason]
    if not bad:
        return
    names = [str(ids[i]) if ids else f"x{i}" for i in bad[:5]] + (["..."] if len(bad) > 5 else [])
    warn(
        f"the model returned NaN or inf on {len(bad)} of {len(reasons)} input(s) or their evaluated candidates "
        f"({', '.join(names)}): {outcome}; see each input's reason",
        stacklevel=stacklevel,
    )
