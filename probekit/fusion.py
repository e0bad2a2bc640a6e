"""Models with several inputs: probe one modality at a time with the others fixed.

A drug-target affinity model reads a fingerprint and a protein sequence; a
regulatory model reads DNA and chromatin tracks. :class:`MultiInputModel` wraps
such a model with a description of each input (its modality), calls it on all
inputs at once, and gives a single-modality view of it
(:meth:`MultiInputModel.modality`): a :class:`~probekit.SequenceModel` or
:class:`~probekit.FeatureModel` over one input with the others held fixed, on
which every search, attribution, certificate and :func:`probekit.probe` runs.
:func:`modality_importance` says which input the prediction depends on most,
each against random changes of the same size.

Examples
--------
>>> import torch
>>> from probekit import outputs
>>> class Affinity(torch.nn.Module):
...     def forward(self, dna, tracks):
...         return (dna[:, 3].sum(1) + 0.0 * tracks.sum(1))[:, None]
>>> model = MultiInputModel(Affinity(), inputs={"dna": "dna", "tracks": "features"}, output=outputs.value(0), device="cpu")
>>> inputs = {"dna": ["ACGTT", "AAAAT"], "tracks": torch.zeros(2, 3)}
>>> model.score(inputs)
tensor([2., 1.])
>>> view = model.modality("dna", fixed={"tracks": torch.zeros(3)})
>>> view.score(["ACGTT", "AAAAT"])
tensor([2., 1.])
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._device import resolve_device
from .adapters import FeatureModel, SequenceModel
from .outputs import as_output

KINDS = ("dna", "sequence", "features")
_SEQUENCE_OPTIONS = {"alphabet", "layout"}
_FEATURE_OPTIONS = {"featurizer", "feature_names", "kinds", "bounds", "shape"}


@dataclass(frozen=True)
class Modality:
    """One input of a multi-input model: its name, kind and encoding options.

    Parameters
    ----------
    name : str
    kind : {"dna", "sequence", "features"}
        ``"dna"`` and ``"sequence"`` are one-hot sequences (N, A, L) over ``alphabet``
        (``"sequence"`` for proteins and other alphabets); ``"features"`` are values
        (N, F), or (N, ...) with ``shape``, flattened to (N, F) for searches.
    options : dict
        ``alphabet`` and ``layout`` for sequences; ``featurizer``, ``feature_names``,
        ``kinds``, ``bounds`` and ``shape`` (per-input shape the model takes) for features.
    """

    name: str
    kind: str
    options: dict = field(default_factory=dict)

    @property
    def is_sequence(self) -> bool:
        """True for one-hot sequence inputs."""
        return self.kind in ("dna", "sequence")


def _modality(name: str, spec) -> Modality:
    if isinstance(spec, Modality):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict) or "kind" not in spec:
        raise TypeError(f"input {name!r}: give a kind ('dna', 'sequence', 'features') or a dict with 'kind' and options")
    options = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    if kind not in KINDS:
        raise ValueError(f"input {name!r}: kind must be one of {KINDS}, got {kind!r}")
    allowed = _SEQUENCE_OPTIONS if kind in ("dna", "sequence") else _FEATURE_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"input {name!r} of kind {kind!r} takes options {sorted(allowed)}, not {unknown}")
    if kind == "sequence" and "alphabet" not in options:
        raise ValueError(f"input {name!r}: a 'sequence' input needs its alphabet (e.g. 'ACDEFGHIKLMNPQRSTVWY')")
    return Modality(name, kind, options)


def _check_arity(model, names: list, call: str) -> None:
    """Raise ``ValueError`` when the model's signature cannot take the inputs named."""
    target = model.forward if isinstance(model, nn.Module) else model
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return  # no signature to read (a builtin, TorchScript): the first call will tell
    if any(p.kind is p.VAR_POSITIONAL for p in params) and call == "positional":
        return
    if call == "keyword":
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return
        missing = [n for n in names if n not in {p.name for p in params}]
        if missing:
            raise ValueError(f"the model's forward has no parameters named {missing}; its parameters are "
                             f"{[p.name for p in params]}")  # fmt: skip
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if not len(required) <= len(names) <= len(positional):
        takes = f"{len(required)}" if len(required) == len(positional) else f"{len(required)} to {len(positional)}"
        raise ValueError(
            f"the model takes {takes} inputs ({', '.join(p.name for p in positional)}) but inputs= describes "
            f"{len(names)} ({', '.join(names)})"
        )


class _Call(nn.Module):
    """The user's model called on named parts, positionally in the order of the modalities or by keyword."""

    def __init__(self, model, names, call):
        super().__init__()
        self.model = model if isinstance(model, nn.Module) else None
        self.fn = None if isinstance(model, nn.Module) else model
        self.names = list(names)
        self.call = call

    def run(self, parts: dict):
        model = self.model if self.model is not None else self.fn
        if self.call == "keyword":
            return model(**parts)
        return model(*[parts[n] for n in self.names])


def _to_model(x: torch.Tensor, modality: Modality, shape) -> torch.Tensor:
    """A canonical tensor (N, A, L) or (N, F) in the layout and shape the model takes."""
    if modality.is_sequence:
        return x.transpose(1, 2) if modality.options.get("layout", "NCL") == "NLC" else x
    return x.reshape((x.shape[0],) + tuple(shape)) if shape is not None else x


class _Packed(_Call):
    """The model over all inputs packed into one flat tensor (N, D): the full model as one adapter."""

    def __init__(self, model, modalities, shapes, call):
        super().__init__(model, [m.name for m in modalities], call)
        self.modalities = list(modalities)
        self.shapes = dict(shapes)  # name -> canonical per-input shape

    def forward(self, flat):
        parts, start = {}, 0
        for m in self.modalities:
            shape = self.shapes[m.name]
            size = math.prod(shape)
            x = flat[:, start : start + size].reshape((flat.shape[0],) + tuple(shape))
            start += size
            parts[m.name] = _to_model(x, m, None if m.is_sequence else m.options.get("shape"))
        return self.run(parts)


class _Fixed(_Call):
    """The model over one input, the others fixed to one example each (buffers, moved with the model)."""

    def __init__(self, model, modalities, name, fixed, call):
        super().__init__(model, [m.name for m in modalities], call)
        self.name = name
        self.shape = next(m for m in modalities if m.name == name).options.get("shape")
        self.sequence = next(m for m in modalities if m.name == name).is_sequence
        self.fixed_shapes = {key: tuple(value.shape[1:]) for key, value in fixed.items()}
        for key, value in fixed.items():
            self.register_buffer(f"fixed_{key}", value)

    def forward(self, x):
        n = x.shape[0]
        parts = {}
        for key in self.names:
            if key == self.name:
                parts[key] = x if self.sequence or self.shape is None else x.reshape((n,) + tuple(self.shape))
            else:
                parts[key] = getattr(self, f"fixed_{key}").expand(n, *self.fixed_shapes[key])
        return self.run(parts)


class _FlatFeatures(FeatureModel):
    """A feature view that flattens inputs of several axes (N, ...) to (N, F)."""

    def encode(self, inputs) -> torch.Tensor:
        if isinstance(inputs, (torch.Tensor, np.ndarray)) and np.ndim(inputs) > 2:
            inputs = torch.as_tensor(inputs).reshape(np.shape(inputs)[0], -1)
        return super().encode(inputs)


class MultiInputModel:
    """A model with several inputs, each described by its modality.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Called as ``model(x_1, ..., x_k)`` in the order of ``inputs`` (or
        ``model(**{name: x})`` with ``call="keyword"``), each input in the layout
        its modality states.
    inputs : dict of str -> str or dict
        One entry per input: its kind (``"dna"``, ``"features"``) or a dict
        ``{"kind": ..., **options}`` (see :class:`Modality`), for example
        ``{"kind": "sequence", "alphabet": "ACDEFGHIKLMNPQRSTVWY"}`` for a protein,
        ``{"kind": "features", "featurizer": Morgan()}`` for SMILES, or
        ``{"kind": "features", "shape": (3, 200)}`` for chromatin tracks.
    output : Output, int or callable
        The score, as for any adapter.
    batch_size : int or "auto"
    device : str or torch.device, optional
    call : {"positional", "keyword"}

    Raises
    ------
    ValueError
        When the model's signature cannot take as many inputs as ``inputs`` describes
        (or, with ``call="keyword"``, has no parameter of an input's name), and for an
        unknown kind or option.

    Examples
    --------
    >>> import torch
    >>> from probekit import outputs
    >>> model = MultiInputModel(lambda a, b: a.sum(1, keepdim=True) - b.sum(1, keepdim=True),
    ...                         inputs={"a": "features", "b": "features"}, output=outputs.value(0), device="cpu")
    >>> model.score({"a": torch.ones(2, 3), "b": torch.ones(2, 1)})
    tensor([2., 2.])
    >>> MultiInputModel(lambda a: a, inputs={"a": "features", "b": "features"}, output=0)
    Traceback (most recent call last):
    ...
    ValueError: the model takes 1 inputs (a) but inputs= describes 2 (a, b)
    """

    def __init__(self, model, *, inputs: dict, output, batch_size="auto", device=None, call: str = "positional"):
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if call not in ("positional", "keyword"):
            raise ValueError(f"call must be 'positional' or 'keyword', got {call!r}")
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError("inputs must be a dict naming at least one input and its kind")
        self.model = model
        self.modalities = {name: _modality(name, spec) for name, spec in inputs.items()}
        _check_arity(model, list(self.modalities), call)
        self.call = call
        self.output = as_output(output)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self._encoders = {name: self._view_class(m)(_Call(model, [name], call), output=self.output, device=self.device,
                                                   **self._view_options(m))
                          for name, m in self.modalities.items()}  # fmt: skip
        self._full = {}
        self._view_batch = {}  # modality -> batch size settled by a first view, for the views after it

    @property
    def names(self) -> list[str]:
        """The inputs' names, in the order the model takes them."""
        return list(self.modalities)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {m.kind}" for n, m in self.modalities.items())
        return f"MultiInputModel({parts}; output={self.output.name!r})"

    @staticmethod
    def _view_class(modality: Modality):
        return SequenceModel if modality.is_sequence else _FlatFeatures

    @staticmethod
    def _view_options(modality: Modality) -> dict:
        options = {k: v for k, v in modality.options.items() if k != "shape"}
        if modality.kind == "dna":
            options.setdefault("alphabet", "ACGT")
        return options

    def _modality_named(self, name: str) -> Modality:
        if name not in self.modalities:
            raise ValueError(f"unknown modality {name!r}; the model's inputs are {', '.join(self.modalities)}")
        return self.modalities[name]

    # ------------------------------------------------------------------ encoding
    def encode_one(self, name: str, values) -> torch.Tensor:
        """One input's values in probekit's canonical layout: (N, A, L) for sequences, (N, F) for features."""
        return self._encoders[self._modality_named(name).name].encode(values)

    def encode(self, inputs: dict) -> dict:
        """Every input in the canonical layout, checked for names and for one count of examples.

        Parameters
        ----------
        inputs : dict of str -> values
            One entry per input: sequences, SMILES, tensors or arrays.

        Returns
        -------
        dict of str -> torch.Tensor of shape (N, ...)
        """
        if not isinstance(inputs, dict):
            raise TypeError(f"inputs must be a dict of {', '.join(self.modalities)}; got {type(inputs).__name__}")
        unknown = [k for k in inputs if k not in self.modalities]
        if unknown:
            raise ValueError(f"unknown modality {unknown[0]!r}; the model's inputs are {', '.join(self.modalities)}")
        missing = [k for k in self.modalities if k not in inputs]
        if missing:
            raise ValueError(f"inputs lack {', '.join(map(repr, missing))}: the model takes {', '.join(self.modalities)}")
        encoded = {name: self.encode_one(name, inputs[name]) for name in self.modalities}
        counts = {name: x.shape[0] for name, x in encoded.items()}
        if len(set(counts.values())) > 1:
            raise ValueError(f"inputs hold different numbers of examples: {counts}")
        return encoded

    def _packed(self, encoded: dict):
        shapes = tuple((name, tuple(x.shape[1:])) for name, x in encoded.items())
        if shapes not in self._full:
            net = _Packed(self.model, self.modalities.values(), dict(shapes), self.call)
            self._full[shapes] = FeatureModel(net, output=self.output, batch_size=self.batch_size, device=self.device)
        flat = torch.cat([x.reshape(x.shape[0], -1).to(self.device) for x in encoded.values()], dim=1)
        return self._full[shapes], flat

    def predict(self, inputs: dict) -> torch.Tensor:
        """The model's raw output on all inputs, batched: (N, ...)."""
        adapter, flat = self._packed(self.encode(inputs))
        return adapter.predict(flat)

    def score(self, inputs: dict) -> torch.Tensor:
        """The selected score on all inputs, batched: (N,)."""
        adapter, flat = self._packed(self.encode(inputs))
        return adapter.score(flat)

    # ------------------------------------------------------------------ views
    def modality(self, name: str, *, fixed: dict):
        """The model as an adapter over input ``name``, every other input fixed to one example.

        Parameters
        ----------
        name : str
        fixed : dict of str -> values
            One example of each other input (a sequence, a SMILES, a tensor of the
            input's per-example shape or with one leading row).

        Returns
        -------
        SequenceModel or FeatureModel
            A ``SequenceModel`` for a sequence input; a ``FeatureModel`` over (N, F)
            for a feature input (inputs of several axes are flattened; its ``encode``
            flattens them too). Scores equal the full model's with the other inputs fixed.

        Raises
        ------
        ValueError
            For an unknown name, a missing or unknown fixed input, or a fixed input of more than one example.
        """
        modality = self._modality_named(name)
        others = [n for n in self.modalities if n != name]
        unknown = [k for k in fixed if k not in self.modalities or k == name]
        if unknown:
            raise ValueError(f"fixed= names {unknown[0]!r}, which is not another input of the model ({', '.join(others)})")
        missing = [n for n in others if n not in fixed]
        if missing:
            raise ValueError(f"fixed= lacks {', '.join(map(repr, missing))}: every other input must be fixed")
        parts = {}
        for key in others:
            value = fixed[key]
            if isinstance(value, (torch.Tensor, np.ndarray)):
                value = torch.as_tensor(value)
                one = self._one_example(key, value)
                value = one if one is not None else value
            x = self.encode_one(key, value if not isinstance(value, str) else [value])
            if x.shape[0] != 1:
                raise ValueError(
                    f"fixed input {key!r} holds {x.shape[0]} examples; fix one example per view "
                    "(modality_importance loops over examples)"
                )
            other = self.modalities[key]
            parts[key] = _to_model(x, other, None if other.is_sequence else other.options.get("shape"))
        net = _Fixed(self.model, self.modalities.values(), name, parts, self.call)
        batch_size = self._view_batch.get(name, self.batch_size)
        return self._view_class(modality)(net, output=self.output, batch_size=batch_size, device=self.device,
                                          **self._view_options(modality))  # fmt: skip

    def _one_example(self, key: str, value: torch.Tensor):
        """``value`` with a leading axis of one when it is a single example without it, else None."""
        modality = self.modalities[key]
        rank = 2 if modality.is_sequence else (len(modality.options["shape"]) if "shape" in modality.options else 1)
        return value[None] if value.ndim == rank else None


# --------------------------------------------------------------------------- importance
def _greedy_flips(view, x: torch.Tensor, k: int, *, sequence: bool, editable=None) -> float:
    """Score change of ``k`` single edits chosen greedily (the largest |change|, then the same direction).

    For sequences each step is a full ISM (:func:`probekit.search.saturation_mutagenesis`)
    of the current sequence; for binary features each step scores every single flip.
    """
    from .search.discrete import saturation_mutagenesis

    start = float(view.score(x)[0])
    current, used, direction = x.clone(), set(), 0.0
    for _ in range(k):
        if sequence:
            effects = saturation_mutagenesis(view, current).effects[0]  # (L, A)
            ref = current[0].argmax(dim=0)
            valid = current[0].sum(dim=0) > 0
            allowed = torch.ones_like(effects, dtype=torch.bool)
            allowed[torch.arange(effects.shape[0]), ref] = False
            allowed &= valid[:, None]
            for p in used:
                allowed[p] = False
        else:
            flips = current.repeat(x.shape[1], 1)
            idx = torch.arange(x.shape[1], device=x.device)
            flips[idx, idx] = 1.0 - flips[idx, idx]
            effects = (view.score(flips) - float(view.score(current)[0])).cpu()
            allowed = editable.cpu().clone()
            for p in used:
                allowed[p] = False
        signed = effects * direction if direction else effects.abs()
        signed = signed.masked_fill(~allowed.to(signed.device), -math.inf)
        if not bool(torch.isfinite(signed).any()):
            break
        best = int(signed.argmax())
        if sequence:
            position, base = divmod(best, effects.shape[1])
            current = current.clone()
            current[0, :, position] = 0.0
            current[0, base, position] = 1.0
            used.add(position)
            step = float(effects[position, base])
        else:
            current = current.clone()
            current[0, best] = 1.0 - current[0, best]
            used.add(best)
            step = float(effects[best])
        direction = direction or (1.0 if step >= 0 else -1.0)
    return float(view.score(current)[0]) - start


def _continuous_change(view, x: torch.Tensor, eps: float, norm: str, seed: int) -> float:
    """The larger score change of PGD at ``eps`` pushing the score up and pushing it down."""
    from . import goals
    from .search.continuous import pgd

    changes = []
    for goal in (goals.increase(by=1e30), goals.decrease(by=1e30)):
        try:
            result = pgd(view, x, goal=goal, eps=eps, norm=norm, seed=seed, early_stop=False)
        except RuntimeError as error:
            if "not have been used in the graph" not in str(error):
                raise
            return 0.0  # the score does not depend on this input at all
        changes.append(float(result.score_after[0] - result.score_before[0]))
    return max(changes, key=abs)


def modality_importance(model, inputs, *, k: int = 1, eps=None, norm: str = "linf", n_draws: int = 200,
                        seed: int = 0, ids=None) -> pd.DataFrame:  # fmt: skip
    """Which input the prediction depends on most: per example and input, an adversarial change against random ones.

    For each example and each input (the others fixed to that example's values),
    the largest score change found within an edit of the given size is compared
    with ``n_draws`` random edits of the same size, as :func:`probekit.probe` does
    (:func:`probekit.probe.baseline.compared_stats`):

    - sequences: ``k`` substitutions, chosen greedily by ISM (exact for ``k=1``);
      null: :func:`probekit.search.random_substitutions`;
    - binary features only: ``k`` bit flips chosen greedily; null: random flips of ``k`` bits;
    - other features: PGD within ``eps`` in ``norm`` (up and down, the larger change);
      null: :func:`probekit.search.continuous.random_perturbation` at the same ``eps``.

    Parameters
    ----------
    model : MultiInputModel
    inputs : dict of str -> values
        N examples of every input.
    k : int or dict
        Substitutions or flips per edit (one for all inputs, or per input name).
    eps : float or dict, optional
        Perturbation size of continuous inputs (needed when there is one).
    norm : {"linf", "l2", "l1"}
    n_draws : int
    seed : int
    ids : list of str, optional

    Returns
    -------
    pandas.DataFrame
        One row per example and input: ``id``, ``modality``, ``kind``, ``edit``
        (``"k=1"``, ``"eps=0.5"``), ``score``, ``adversarial_delta``, ``importance``
        (|adversarial_delta|), ``random_mean``, ``random_std``, ``ratio``, ``z``,
        ``p_value`` and ``rank`` (1 = the input whose change moves the score most).

    Examples
    --------
    >>> import torch
    >>> from probekit import outputs
    >>> class DnaOnly(torch.nn.Module):
    ...     def forward(self, dna, tracks):
    ...         return (dna[:, 3, 2:5].sum(1) + 0.0 * tracks.sum(1))[:, None]
    >>> model = MultiInputModel(DnaOnly(), inputs={"dna": "dna", "tracks": "features"}, output=outputs.value(0), device="cpu")
    >>> table = modality_importance(model, {"dna": ["ACTTTGCA"], "tracks": torch.ones(1, 4)}, eps=0.5, n_draws=50)
    >>> table[["modality", "importance", "rank"]].values.tolist()
    [['dna', 1.0, 1], ['tracks', 0.0, 2]]
    """
    from .probe.baseline import compared_stats
    from .search.baseline import random_bit_flips, random_substitutions
    from .search.continuous import random_perturbation

    if not isinstance(model, MultiInputModel):
        raise TypeError(f"expected a MultiInputModel, got {type(model).__name__}")
    encoded = model.encode(inputs)
    n = next(iter(encoded.values())).shape[0]
    ids = [str(i) for i in ids] if ids is not None else [f"x{i}" for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} examples")
    scores = model.score(encoded).cpu()
    rows = []
    for i in range(n):
        for name, modality in model.modalities.items():
            fixed = {key: x[i : i + 1] for key, x in encoded.items() if key != name}
            view = model.modality(name, fixed=fixed)
            x = view.encode(encoded[name][i : i + 1])
            model._view_batch[name] = view.resolve_batch_size(x)  # one timing probe per input, not per example
            size_k = k.get(name, 1) if isinstance(k, dict) else int(k)
            if modality.is_sequence:
                kind, edit = "substitutions", f"k={size_k}"
                adversarial = _greedy_flips(view, x, size_k, sequence=True)
                baseline = random_substitutions(view, x, k=size_k, n_draws=n_draws, seed=seed)
            elif all(kind == "binary" for kind in view.kinds(x.shape[1])):
                kind, edit = "bit flips", f"k={size_k}"
                editable = view.kind_mask(x.shape[1], "binary")
                adversarial = _greedy_flips(view, x, size_k, sequence=False, editable=editable)
                baseline = random_bit_flips(view, x, k=size_k, n_draws=n_draws, seed=seed)
            else:
                size = eps.get(name) if isinstance(eps, dict) else eps
                if size is None:
                    raise ValueError(f"input {name!r} has continuous features: give eps= (a float or a dict by input)")
                kind, edit = "perturbation", f"eps={size:g}"
                adversarial = _continuous_change(view, x, float(size), norm, seed)
                baseline = random_perturbation(view, x, norm=norm, eps=float(size), n_draws=n_draws, seed=seed)
            stats = compared_stats(baseline, torch.tensor([adversarial]))
            rows.append({"id": ids[i], "modality": name, "kind": kind, "edit": edit, "score": float(scores[i]),
                         "adversarial_delta": adversarial, "importance": abs(adversarial),
                         **{key: float(value[0]) for key, value in stats.items()}})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["rank"] = frame.groupby("id", sort=False)["importance"].rank(ascending=False, method="min").astype(np.int64)
    return frame


__all__ = ["MultiInputModel", "Modality", "modality_importance", "KINDS"]
