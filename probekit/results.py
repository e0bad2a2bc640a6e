"""Frozen result types returned by searches and certificates.

Every result holds tensors (on the CPU) plus the parameters, seed, device and
timing that produced it, and offers ``to_frame()`` (tidy pandas), ``summary()``
and ``save(path)`` / ``load(path)``. Loading never executes code from the file.

Examples
--------
>>> import torch, tempfile, os
>>> r = BaselineResult(deltas=torch.zeros(2, 5), k=1, kind="substitutions")
>>> path = os.path.join(tempfile.mkdtemp(), "b.pt")
>>> r.save(path)
>>> BaselineResult.load(path).deltas.shape
torch.Size([2, 5])
"""

from __future__ import annotations

import abc
import math
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


_PLAIN_TYPES = {str, int, float, bool, type(None)}


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list):
        if set(map(type, value)) <= _PLAIN_TYPES:
            return value  # names and numbers: nothing to move
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _plain(value):
    """Make a value storable by ``torch.save`` and loadable with ``weights_only=True``."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# Parameters repr() shows when they hold one plain value (others, e.g. per-input tensors, stay out).
_REPR_PARAMS = ("goal", "output", "method", "sigma", "device", "seconds")
_REPR_VALUES = 6  # a tensor of at most this many values is shown in full by repr()


def _num(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _shape(tensor: torch.Tensor) -> str:
    """A tensor's dtype and shape, e.g. ``float32[4, 200]``."""
    return f"{str(tensor.dtype).removeprefix('torch.')}[{', '.join(map(str, tensor.shape))}]"


def _count(mask: torch.Tensor) -> str:
    """``k/n``: how many of the ``n`` flags are true."""
    return f"{int(mask.sum())}/{mask.numel()}"


def _values(values) -> str:
    """A few values in full; more as their median and range (NaN left out)."""
    flat = torch.as_tensor(values).reshape(-1)
    if flat.numel() <= _REPR_VALUES:
        return "[" + ", ".join(_num(v) for v in flat.tolist()) + "]"
    if flat.is_floating_point():
        flat = flat[~flat.isnan()]
    if flat.numel() == 0:
        return "all NaN"
    flat = flat.double() if flat.is_floating_point() else flat.long()
    low, mid, high = (_num(v.item()) for v in (flat.min(), flat.median(), flat.max()))
    return f"median {mid} in [{low}, {high}]"


def _brief(value) -> str | None:
    """Short text of one field's value for repr(); None leaves the field out."""
    if isinstance(value, torch.Tensor):
        return _shape(value)
    if isinstance(value, (bool, int, float)):
        return _num(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return _values(value)
    if isinstance(value, (list, tuple)) and value:
        return f"<{len(value)} items>"
    return None


def _param_items(params: dict) -> list[str]:
    items = []
    for key in _REPR_PARAMS:
        value = params.get(key)
        if isinstance(value, str):
            items.append(f"{key}={value}" if key == "device" else f"{key}={value!r}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            items.append(f"{key}={value:.3g}s" if key == "seconds" else f"{key}={_num(value)}")
    return items


def edits_text(edits) -> str:
    """An edit list as text: ``"102A>G 107T>C"`` for DNA positions, ``"morgan2_4170: 1->0; MolWt: 342.1->196"`` for features.

    Parameters
    ----------
    edits : list of (position or feature name, old, new)

    Examples
    --------
    >>> edits_text([(102, "A", "G"), (107, "T", "C")])
    '102A>G 107T>C'
    >>> edits_text([("morgan2_4170", 1.0, 0.0), ("f00", 0, 1)])
    'morgan2_4170: 1->0; f00: 0->1'
    """
    named = any(isinstance(p, str) for p, _, _ in edits)
    if not named:
        return " ".join(f"{p}{a}>{b}" for p, a, b in edits)
    return "; ".join(edit_label(p, a, b) for p, a, b in edits)


def edit_label(feature, old, new) -> str:
    """One edit of one feature, written so that name, old and new value cannot run together.

    Examples
    --------
    >>> edit_label("morgan2_4170", 0, 1), edit_label("MolWt", 342.14, 196.0)
    ('morgan2_4170: 0->1', 'MolWt: 342.1->196')
    """
    return f"{feature}: {_value_text(old)}->{_value_text(new)}"


def _value_text(value) -> str:
    """A feature value with up to 4 significant digits, whole numbers without decimals."""
    if isinstance(value, str):
        return value
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"


class Result(abc.ABC):
    """Shared behaviour of result dataclasses: CPU tensors, save/load, summary, a short repr."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # @dataclass writes a __repr__ that prints every tensor in full unless the class
        # already has one; giving each subclass ours keeps repr() short in every module.
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = Result.__repr__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_items() + _param_items(self.params))})"

    def _n(self) -> int | None:
        """Number of inputs: the length of the first per-input field."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) and value.ndim:
                return value.shape[0]
        return len(self.ids) if getattr(self, "ids", None) else None

    def _repr_items(self) -> list[str]:
        """``name=value`` facts shown by repr(): ``n``, then each field briefly (tensors as dtype and shape)."""
        items = [f"n={self._n()}"]
        for f in dataclasses.fields(self):
            if f.name in ("ids", "params", "feature_names"):
                continue
            text = _brief(getattr(self, f.name))
            if text is not None:
                items.append(f"{f.name}={text}")
        return items

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _to_cpu(getattr(self, f.name)))

    def save(self, path) -> None:
        """Write the result to ``path`` (a ``torch.save`` file of plain tensors and values)."""
        payload = {"type": type(self).__name__, "fields": {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}
        torch.save(payload, Path(path))

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save`, without executing code from the file."""
        payload = torch.load(Path(path), weights_only=True)
        if payload.get("type") != cls.__name__:
            raise TypeError(f"{path} holds a {payload.get('type')}, not a {cls.__name__}")
        fields = payload["fields"]
        for name in getattr(cls, "_tuple_lists", ()):
            fields[name] = [[tuple(edit) for edit in row] for row in fields[name]]
        return cls(**fields)

    def summary(self) -> pd.DataFrame:
        """One row per input with the result's main per-input numbers."""
        return self.to_frame()

    @abc.abstractmethod
    def to_frame(self) -> pd.DataFrame:
        """The result as a tidy table; each result type defines its rows."""


def _meta():
    return field(default_factory=dict)


@dataclass(frozen=True)
class ISMResult(Result):
    """In-silico saturation mutagenesis.

    Attributes
    ----------
    reference : torch.Tensor of shape (N,)
        Score of each unedited input.
    effects : torch.Tensor of shape (N, L, 4)
        Score of each single substitution minus the reference; 0 at the reference
        base, and at ``N`` positions unless they were asked for. Positions outside
        ``start:end`` are 0.
    alphabet : str
    start, end : int
        The scanned window.
    ids : list of str
    params : dict
        Parameters, device, seconds and evaluations of the run.
    """

    reference: torch.Tensor
    effects: torch.Tensor
    alphabet: str = "ACGT"
    start: int = 0
    end: int | None = None
    ids: list = field(default_factory=list)
    params: dict = _meta()

    def _repr_items(self) -> list[str]:
        n, length, _ = self.effects.shape
        items = [f"n={n}", f"length={length}"]
        if self.start or (self.end is not None and self.end != length):
            items.append(f"window={self.start}:{length if self.end is None else self.end}")
        largest = self.effects.abs().amax().item() if self.effects.numel() else math.nan
        return items + [f"alphabet={self.alphabet!r}", f"effects={_shape(self.effects)}", f"max_abs_effect={_num(largest)}"]

    def to_frame(self) -> pd.DataFrame:
        """One row per input, position and alternative base: id, position, ref, alt, effect."""
        n, length, a = self.effects.shape
        end = length if self.end is None else self.end
        ids = self.ids or [f"seq{i}" for i in range(n)]
        letters = np.array(list(self.alphabet))
        eff = self.effects[:, self.start : end].numpy()
        refs = self.params.get("ref_index")
        ii, ll, aa = np.meshgrid(np.arange(n), np.arange(self.start, end), np.arange(a), indexing="ij")
        frame = pd.DataFrame(
            {"id": np.array(ids, dtype=object)[ii.ravel()], "position": ll.ravel(), "alt": letters[aa.ravel()], "effect": eff.ravel()}
        )
        if refs is not None:
            ref_idx = torch.as_tensor(refs)[:, self.start : end].numpy()
            ref_letters = np.where(ref_idx >= 0, letters[np.clip(ref_idx, 0, a - 1)], "N")
            frame.insert(2, "ref", np.repeat(ref_letters.ravel(), a))
            frame = frame[frame["ref"] != frame["alt"]].reset_index(drop=True)
        return frame

    def summary(self) -> pd.DataFrame:
        """One row per input: reference score, strongest decrease and increase and where."""
        n = self.effects.shape[0]
        flat = self.effects.reshape(n, -1)
        a = self.effects.shape[2]
        lo, hi = flat.min(dim=1), flat.max(dim=1)
        return pd.DataFrame(
            {
                "id": self.ids or [f"seq{i}" for i in range(n)],
                "reference": self.reference.numpy(),
                "min_effect": lo.values.numpy(),
                "min_position": (lo.indices // a).numpy(),
                "max_effect": hi.values.numpy(),
                "max_position": (hi.indices // a).numpy(),
            }
        )


@dataclass(frozen=True)
class SubstitutionResult(Result):
    """Fewest substitutions (or bit flips) that reach a goal.

    Attributes
    ----------
    edits : list of list of tuple
        Per input, its edits ``(position, ref, alt)``; for features ``(feature, from, to)``.
    n_edits : torch.Tensor of shape (N,)
    success : torch.Tensor of shape (N,), bool
    proved_minimal : torch.Tensor of shape (N,), bool
        True only when no smaller edit set reaches the goal.
    score_before, score_after : torch.Tensor of shape (N,)
    sequences : torch.Tensor
        The edited inputs, same shape as the inputs.
    evaluations : torch.Tensor of shape (N,)
        Model evaluations spent per input.
    ids : list of str
    params : dict
    """

    _tuple_lists = ("edits",)

    edits: list
    n_edits: torch.Tensor
    success: torch.Tensor
    proved_minimal: torch.Tensor
    score_before: torch.Tensor
    score_after: torch.Tensor
    sequences: torch.Tensor
    evaluations: torch.Tensor
    ids: list = field(default_factory=list)
    params: dict = _meta()

    def _repr_items(self) -> list[str]:
        return [
            f"n={len(self.edits)}",
            f"success={_count(self.success)}",
            f"proved_minimal={_count(self.proved_minimal)}",
            f"n_edits={_values(self.n_edits)}",
            f"sequences={_shape(self.sequences)}",
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per edit: id, step, position, ref, alt (inputs without edits get one row with no edit)."""
        ids = self.ids or [f"seq{i}" for i in range(len(self.edits))]
        rows = []
        for i, edits in enumerate(self.edits):
            base = {
                "id": ids[i],
                "n_edits": int(self.n_edits[i]),
                "success": bool(self.success[i]),
                "proved_minimal": bool(self.proved_minimal[i]),
                "score_before": float(self.score_before[i]),
                "score_after": float(self.score_after[i]),
            }
            if not edits:
                rows.append({**base, "step": None, "position": None, "ref": None, "alt": None})
            for step, (position, ref, alt) in enumerate(edits):
                rows.append({**base, "step": step, "position": position, "ref": ref, "alt": alt})
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """One row per input: n_edits, success, proved_minimal, scores, evaluations."""
        return pd.DataFrame(
            {
                "id": self.ids or [f"seq{i}" for i in range(len(self.edits))],
                "n_edits": self.n_edits.numpy(),
                "success": self.success.numpy(),
                "proved_minimal": self.proved_minimal.numpy(),
                "score_before": self.score_before.numpy(),
                "score_after": self.score_after.numpy(),
                "evaluations": self.evaluations.numpy(),
                "edits": [edits_text(e) for e in self.edits],
            }
        )


@dataclass(frozen=True)
class PerturbationResult(Result):
    """A continuous perturbation per input.

    Attributes
    ----------
    x_adv, delta : torch.Tensor, same shape as the inputs
    norm : torch.Tensor of shape (N,)
        Size of ``delta`` in the norm the search used.
    score_before, score_after : torch.Tensor of shape (N,)
    success : torch.Tensor of shape (N,), bool
    ids : list of str
    feature_names : list of str
    params : dict
    """

    x_adv: torch.Tensor
    delta: torch.Tensor
    norm: torch.Tensor
    score_before: torch.Tensor
    score_after: torch.Tensor
    success: torch.Tensor
    ids: list = field(default_factory=list)
    feature_names: list = field(default_factory=list)
    params: dict = _meta()

    def _repr_items(self) -> list[str]:
        norm = self.params.get("norm")
        return [
            f"n={self.delta.shape[0]}",
            f"success={_count(self.success)}",
            *([f"norm={norm!r}"] if isinstance(norm, str) else []),
            f"delta_norm={_values(self.norm)}",
            f"x_adv={_shape(self.x_adv)}",
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per input and changed feature: id, feature, value, delta, new value."""
        n = self.delta.shape[0]
        ids = self.ids or [f"x{i}" for i in range(n)]
        d = self.delta.reshape(n, -1)
        x0 = (self.x_adv - self.delta).reshape(n, -1)
        names = self.feature_names or [f"f{j}" for j in range(d.shape[1])]
        ii, jj = torch.nonzero(d != 0, as_tuple=True)
        return pd.DataFrame(
            {
                "id": [ids[i] for i in ii.tolist()],
                "feature": [names[j] for j in jj.tolist()],
                "value": x0[ii, jj].numpy(),
                "delta": d[ii, jj].numpy(),
                "new_value": (x0[ii, jj] + d[ii, jj]).numpy(),
                "success": self.success[ii].numpy(),
            }
        )

    def summary(self) -> pd.DataFrame:
        """One row per input: norm, success, scores, number of changed features."""
        n = self.delta.shape[0]
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(n)],
                "norm": self.norm.numpy(),
                "success": self.success.numpy(),
                "score_before": self.score_before.numpy(),
                "score_after": self.score_after.numpy(),
                "n_changed": (self.delta.reshape(n, -1) != 0).sum(dim=1).numpy(),
            }
        )


def _errors(params: dict, n: int) -> list:
    """Per-input refusal reasons from ``params["error"]`` (None where there is none or the list is absent)."""
    errors = params.get("error")
    if not isinstance(errors, (list, tuple)) or len(errors) != n:
        return [None] * n
    return [e if isinstance(e, str) and e else None for e in errors]


def _nan_stats(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, sample std (0 from a single value) and count of the non-NaN values of each row (N, D); NaN where none."""
    valid = ~values.isnan()
    count = valid.sum(dim=1)
    mean = torch.where(valid, values, 0.0).sum(dim=1) / count
    spread = torch.where(valid, values - mean[:, None], 0.0).pow(2).sum(dim=1)
    std = torch.where(count > 1, (spread / (count - 1).clamp_min(1)).sqrt(), torch.zeros_like(mean))
    return mean, torch.where(count > 0, std, math.nan), count


def _nan_extreme(values: torch.Tensor, reduce) -> torch.Tensor:
    """``reduce`` (torch.amin or torch.amax) over the non-NaN values of each row; NaN where there is none."""
    valid = ~values.isnan()
    fill = math.inf if reduce is torch.amin else -math.inf
    out = reduce(torch.where(valid, values, fill), dim=1)
    return torch.where(valid.any(dim=1), out, math.nan)


# Relative difference under which a random change and the adversarial one are the same change (float32 rounding).
TIE_RTOL = 1e-5


@dataclass(frozen=True)
class BaselineResult(Result):
    """Score changes of random edits or perturbations of a stated size.

    Attributes
    ----------
    deltas : torch.Tensor of shape (N, n_draws)
        Score after minus score before, one column per random draw.
    k : int or float
        Size of each draw: substitutions, bit flips or a norm radius.
    kind : str
        ``"substitutions"``, ``"bit_flips"`` or the norm of a perturbation.
    """

    deltas: torch.Tensor
    k: Any = 1
    kind: str = "substitutions"
    ids: list = field(default_factory=list)
    params: dict = _meta()

    def _repr_items(self) -> list[str]:
        n, draws = self.deltas.shape
        scale = _values(_nan_stats(self.deltas.abs())[0]) if n else "[]"
        return [f"n={n}", f"draws={draws}", f"k={_num(self.k)}", f"kind={self.kind!r}", f"mean_abs_delta={scale}"]

    def compare(self, adversarial_delta) -> pd.DataFrame:
        """Adversarial-vs-random statistics of score changes ``adversarial_delta`` (N,).

        Returns one row per input: ``ratio`` (|adversarial| / mean |random|),
        ``z`` ((adversarial - mean) / std, signed so that larger means further in the
        adversarial direction) and ``p_value`` (the empirical one-sided p-value,
        (1 + #random at least as extreme) / (1 + #draws), a draw within a relative
        ``TIE_RTOL`` of the adversarial change counting as at least as extreme). Draws that could not be
        made (NaN: fewer editable positions than the draw's size) are left out; where
        none was made, or the adversarial change is NaN, the statistics are NaN. ``z`` is
        NaN where the random changes do not spread (std 0), and ``ratio`` where they are
        all 0: no multiple of nothing is meaningful.
        """
        adv = torch.as_tensor(adversarial_delta).detach().cpu().to(self.deltas.dtype).reshape(-1)
        direction = torch.where(adv < 0, -1.0, 1.0).to(self.deltas.dtype)
        rnd = self.deltas * direction[:, None]
        adv_dir = adv * direction
        mean, std, count = _nan_stats(rnd)
        # a draw that could not be made (fewer editable positions than k) is NaN and is not counted
        # a draw within rounding of the adversarial change (often the same edits) counts as at least as extreme,
        # so that the p-value does not depend on how the batch size rounded the two scores
        tie = TIE_RTOL * torch.maximum(adv_dir.abs()[:, None], rnd.abs())
        extreme = ((rnd >= adv_dir[:, None] - tie) & ~rnd.isnan()).sum(dim=1)
        p_value = (1 + extreme).double() / (1 + count).double()
        p_value[(count == 0) | adv.isnan()] = math.nan
        scale = _nan_stats(self.deltas.abs())[0]
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(len(adv))],
                "adversarial_delta": adv.numpy(),
                "random_mean": (mean * direction).numpy(),
                "random_std": std.numpy(),
                "ratio": (adv.abs() / torch.where(scale > 0, scale, math.nan)).numpy(),
                "z": ((adv_dir - mean) / torch.where(std > 0, std, math.nan)).numpy(),
                "p_value": p_value.numpy(),
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per input and draw: id, draw, delta."""
        n, d = self.deltas.shape
        ids = self.ids or [f"x{i}" for i in range(n)]
        return pd.DataFrame({"id": np.repeat(ids, d), "draw": np.tile(np.arange(d), n), "delta": self.deltas.reshape(-1).numpy()})

    def summary(self) -> pd.DataFrame:
        """One row per input: mean, std and extremes of the random score changes (draws that could be made)."""
        mean, std, _ = _nan_stats(self.deltas)
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(self.deltas.shape[0])],
                "k": self.k,
                "mean": mean.numpy(),
                "std": std.numpy(),
                "min": _nan_extreme(self.deltas, torch.amin).numpy(),
                "max": _nan_extreme(self.deltas, torch.amax).numpy(),
            }
        )


@dataclass(frozen=True)
class Bounds(Result):
    """Certified bounds of the selected output over a perturbation set.

    Attributes
    ----------
    lower, upper : torch.Tensor of shape (N,)
    certified : torch.Tensor of shape (N,), bool
        True where the goal cannot be reached anywhere in the set.
    method : str
    eps : float
    norm : str
    """

    lower: torch.Tensor
    upper: torch.Tensor
    certified: torch.Tensor
    method: str = "ibp"
    eps: Any = 0.0
    norm: str = "linf"
    ids: list = field(default_factory=list)
    params: dict = _meta()

    def _repr_items(self) -> list[str]:
        eps = _brief(self.eps) or repr(self.eps)
        return [
            f"n={len(self.lower)}",
            f"certified={_count(self.certified)}",
            f"method={self.method!r}",
            f"eps={eps}",
            f"norm={self.norm!r}",
            f"width={_values(self.upper - self.lower)}",
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per input: lower, upper, width, certified, error (why an input was refused; None when it was not)."""
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(len(self.lower))],
                "method": self.method,
                "eps": self.eps,
                "norm": self.norm,
                "lower": self.lower.numpy(),
                "upper": self.upper.numpy(),
                "width": (self.upper - self.lower).numpy(),
                "certified": self.certified.numpy(),
                "error": _errors(self.params, len(self.lower)),
            }
        )


@dataclass(frozen=True)
class SmoothingResult(Result):
    """Randomized-smoothing certificate.

    Attributes
    ----------
    prediction : torch.Tensor of shape (N,)
        Smoothed class; -1 means abstain.
    p_lower : torch.Tensor of shape (N,)
        Lower confidence bound on the top-class probability.
    radius : torch.Tensor of shape (N,)
        Certified L2 radius (for anisotropic noise, the smallest semi-axis).
    axes : torch.Tensor of shape (N, F) or None
        Semi-axes of the certified ellipsoid for anisotropic noise.
    """

    prediction: torch.Tensor
    p_lower: torch.Tensor
    radius: torch.Tensor
    axes: torch.Tensor | None = None
    ids: list = field(default_factory=list)
    params: dict = _meta()

    def _repr_items(self) -> list[str]:
        items = [f"n={len(self.prediction)}", f"abstain={_count(self.prediction < 0)}", f"radius={_values(self.radius)}"]
        return items + ([f"axes={_shape(self.axes)}"] if self.axes is not None else [])

    def to_frame(self) -> pd.DataFrame:
        """One row per input: prediction, p_lower, radius, abstain, error (why an input abstained for a model fault)."""
        return pd.DataFrame(
            {
                "id": self.ids or [f"x{i}" for i in range(len(self.prediction))],
                "prediction": self.prediction.numpy(),
                "p_lower": self.p_lower.numpy(),
                "radius": self.radius.numpy(),
                "abstain": (self.prediction < 0).numpy(),
                "error": _errors(self.params, len(self.prediction)),
            }
        )


__all__ = ["edits_text", "edit_label", "Result", "ISMResult", "SubstitutionResult", "PerturbationResult", "BaselineResult", "Bounds", "SmoothingResult"]
