"""Ensembles: several models of one kind as one adapter, with their spread and disagreement.

An :class:`Ensemble` wraps several adapters of the same kind (DNA or features):
separately trained models, checkpoints of one run (:func:`from_checkpoints`) or
Monte-Carlo dropout passes of one model (:func:`mc_dropout`). Its raw output is
the members' mean raw output, so every search, attribution, certificate and
:func:`probekit.probe` runs on it unchanged (it is a ``SequenceModel`` or a
``FeatureModel``). :meth:`Ensemble.spread` and :meth:`Ensemble.disagreement` say
how far the members are apart; :func:`member_ism` and :func:`sensitivity` give
each member's ISM or attribution with their mean and spread, and split critical
positions into those every member relies on and those only some do.

Examples
--------
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> members = [SequenceModel(ToyConv(seed=s), output=1, device="cpu") for s in range(3)]
>>> ensemble = Ensemble(members)
>>> X = ensemble.encode(["ACGTACGTAC", "TTTTACGTAA"])
>>> ensemble.member_scores(X).shape, ensemble.spread(X).shape
(torch.Size([3, 2]), torch.Size([2]))
>>> bool(torch.allclose(ensemble.score(X), ensemble.member_scores(X).mean(0)))
True
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._device import model_dtype, resolve_device
from .adapters import Adapter, FeatureModel, ModelOutputError, SequenceModel
from .encode.dna import reverse_complement
from .outputs import _class_axis, as_output


class IncompatibleMembers(ModelOutputError, ValueError):
    """The members of an ensemble cannot be averaged: their outputs differ in shape."""


def _tracing() -> bool:
    from torch.fx import _symbolic_trace

    return bool(getattr(_symbolic_trace, "_is_fx_tracing_flag", False)) or torch.compiler.is_compiling()


class _Callable(nn.Module):
    """A plain callable held as a module, so that an ensemble can list it with the others."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _EnsembleNet(nn.Module):
    """The mean raw output of several models, each called in its own layout, strands and dtype."""

    def __init__(self, models, *, layouts, strands, alphabet=None):
        super().__init__()
        self.nets = nn.ModuleList([m if isinstance(m, nn.Module) else _Callable(m) for m in models])
        self.layouts = list(layouts)
        self.strands = list(strands)
        self.alphabet = alphabet

    def _one(self, i: int, net, x):
        dtype = model_dtype(net) or x.dtype
        view = x.transpose(1, 2) if self.layouts[i] == "NLC" else x
        y = net(view.to(dtype))
        if self.strands[i] == "both":
            rc = reverse_complement(x, alphabet=self.alphabet)
            y = 0.5 * (y + net((rc.transpose(1, 2) if self.layouts[i] == "NLC" else rc).to(dtype)))
        return y

    def forward(self, x):
        outs = [self._one(i, net, x) for i, net in enumerate(self.nets)]
        if _tracing():  # no checks on traced values: bounds and DeepLIFT trace through the mean
            return torch.stack(outs).mean(dim=0)
        for i, y in enumerate(outs[1:], start=1):
            if not isinstance(y, torch.Tensor) or y.shape != outs[0].shape:
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise IncompatibleMembers(
                    f"ensemble member {i} returns output of shape {shape} but member 0 returns "
                    f"{tuple(outs[0].shape)}: members must give outputs of one shape to be averaged"
                )
        outs = [y.float() if y.dtype in (torch.float16, torch.bfloat16) else y for y in outs]
        return torch.stack([y.to(outs[0].dtype) for y in outs]).mean(dim=0)


def _family(adapter) -> type:
    """``SequenceModel`` or ``FeatureModel``: the kind of adapter an ensemble member is."""
    from .certify.smoothing import Smoothed

    if isinstance(adapter, Smoothed) or type(adapter).__name__ == "MoleculeModel":
        raise TypeError(f"an ensemble member must be a SequenceModel or FeatureModel, not {type(adapter).__name__}")
    for family in (SequenceModel, FeatureModel):
        if isinstance(adapter, family):
            return family
    raise TypeError(f"an ensemble member must be a SequenceModel or FeatureModel, not {type(adapter).__name__}")


def _as_members(members, like) -> list:
    """Member adapters from adapters, or from models and the adapter ``like`` whose settings they take."""
    if isinstance(members, (Adapter, nn.Module)) or not hasattr(members, "__iter__"):
        raise TypeError("members must be a list of adapters or models")
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    out = []
    for i, member in enumerate(members):
        if isinstance(member, Adapter):
            out.append(member)
        elif like is None:
            raise TypeError(
                f"member {i} is a {type(member).__name__}, not an adapter: give like= an adapter whose settings "
                "(output, alphabet, layout, features) the models share"
            )
        else:
            out.append(like.replace(model=member))
    kinds = {_family(m) for m in out}
    if len(kinds) > 1:
        raise TypeError("ensemble members must all be SequenceModel or all FeatureModel, not a mix")
    return out


def _common_output(members, output):
    if output is not None:
        return as_output(output)
    names = [m.output.name for m in members]
    if len(set(names)) > 1:
        raise ValueError(f"ensemble members select different outputs ({', '.join(sorted(set(names)))}); give output=")
    return members[0].output


def _check_compatible(members) -> None:
    first = members[0]
    for i, member in enumerate(members[1:], start=1):
        if isinstance(first, SequenceModel) and member.alphabet != first.alphabet:
            raise ValueError(
                f"ensemble member {i} reads alphabet {member.alphabet!r} but member 0 reads {first.alphabet!r}"
            )
        if isinstance(first, FeatureModel):
            n0, n = first.n_features, member.n_features
            if n0 is not None and n is not None and n0 != n:
                raise ValueError(f"ensemble member {i} takes {n} features but member 0 takes {n0}")
            if first.feature_names and member.feature_names and member.feature_names != first.feature_names:
                raise ValueError(f"ensemble member {i} names its features differently from member 0")


class Ensemble(Adapter):
    """An adapter over several models of one kind whose raw output is their mean.

    ``Ensemble(members)`` is a :class:`~probekit.SequenceModel` when the members are
    DNA models and a :class:`~probekit.FeatureModel` when they are feature models,
    so searches, attributions, certificates and :func:`probekit.probe` take it as
    they take any adapter. Each member is called with its own layout, strands and
    dtype; the mean is taken over the raw outputs and the ensemble's ``output``
    selects the score from that mean.

    Parameters
    ----------
    members : list of SequenceModel or FeatureModel, or list of models
        At least two. Models (``torch.nn.Module`` or callables) need ``like=``.
    like : SequenceModel or FeatureModel, optional
        The adapter whose settings models given as ``members`` take (``like.replace(model=m)``).
    output : Output, int or callable, optional
        The score of the ensemble and of its members; default the members' common output.
    batch_size : int or "auto", optional
        Inputs per forward pass of the whole ensemble; default the first member's setting.
    device : str or torch.device, optional
        Default the first member's device; members on other devices are moved.

    Attributes
    ----------
    members : list of adapters
        The members, each with the ensemble's output and device.

    Raises
    ------
    TypeError
        Members of different kinds (DNA and features), or models without ``like=``.
    ValueError
        Fewer than two members, different alphabets or feature counts, or members
        selecting different outputs without ``output=``.
    IncompatibleMembers
        (a ``ValueError``) on the first forward pass, when members' outputs differ in shape.

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> members = [FeatureModel(torch.nn.Linear(3, 1), output=outputs.value(0), device="cpu") for _ in range(4)]
    >>> ensemble = Ensemble(members)
    >>> isinstance(ensemble, FeatureModel), ensemble.predict(torch.ones(2, 3)).shape
    (True, torch.Size([2, 1]))
    """

    def __new__(cls, members=None, **kwargs):
        if cls is Ensemble:
            family = _family(_as_members(members, kwargs.get("like"))[0])
            cls = _SequenceEnsemble if family is SequenceModel else _FeatureEnsemble
        return super().__new__(cls)

    def __init__(self, members, *, like=None, output=None, batch_size=None, device=None):
        members = _as_members(members, like)
        if batch_size is None:
            batch_size = "auto" if getattr(members[0], "_batch_setting_auto", False) else members[0].batch_size
        _check_compatible(members)
        output = _common_output(members, output)
        device = resolve_device(device) if device is not None else members[0].device
        self.members = [m.replace(output=output, **({"device": device} if m.device != device else {})) for m in members]
        net = self._net(self.members)
        self._init_family(net, self.members[0], output=output, batch_size=batch_size, device=device)

    def _init_family(self, net, first, **settings):  # pragma: no cover - each family defines its own
        raise NotImplementedError

    @staticmethod
    def _net(members) -> _EnsembleNet:
        sequence = isinstance(members[0], SequenceModel)
        return _EnsembleNet(
            [m.model for m in members],
            layouts=[getattr(m, "layout", "NCL") if sequence else "NCL" for m in members],
            strands=[getattr(m, "strands", "forward") if sequence else "forward" for m in members],
            alphabet=members[0].alphabet if sequence else None,
        )

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Ensemble({len(self.members)} x {type(self.members[0]).__name__}, output={self.output.name!r})"

    def replace(self, **changes) -> "Ensemble":
        """A copy with some settings changed; ``members=``, ``output=`` and ``device=`` apply to the members too.

        Examples
        --------
        >>> import torch
        >>> from probekit import FeatureModel
        >>> ensemble = Ensemble([FeatureModel(torch.nn.Linear(2, 3), output=0, device="cpu") for _ in range(2)])
        >>> ensemble.replace(output=2).members[1].output.name
        'logit[2]'
        """
        members = changes.pop("members", None)
        new = super().replace(**changes)
        if members is not None or changes.keys() & {"output", "device"}:
            members = _as_members(members, None) if members is not None else self.members
            _check_compatible(members)
            new.members = [m.replace(output=new.output, device=new.device) for m in members]
            if "model" not in changes:
                new.model = self._net(new.members)
                new.deterministic = None
        return new

    # ---------------------------------------------------------------- members
    def member_predictions(self, X) -> torch.Tensor:
        """Every member's raw output: shape (M, N, ...) for M members."""
        X = self._as_input(X)
        return torch.stack([m.predict(X) for m in self.members])

    def member_scores(self, X) -> torch.Tensor:
        """Every member's selected score: shape (M, N), one forward pass per member.

        The ensemble's own score is the score of the mean raw output, which equals
        the mean of these when the output is linear in the raw output (a logit, a value).
        """
        X = self._as_input(X)
        return torch.stack([m.score(X) for m in self.members])

    def spread(self, X) -> torch.Tensor:
        """Standard deviation over members (population, ``correction=0``) of the score: shape (N,).

        Examples
        --------
        >>> import torch
        >>> from probekit import FeatureModel, outputs
        >>> members = [FeatureModel(lambda x, b=b: x.sum(1, keepdim=True) + b, output=outputs.value(0), device="cpu")
        ...            for b in (0.0, 2.0)]
        >>> Ensemble(members).spread(torch.zeros(1, 3))
        tensor([1.])
        """
        return self.member_scores(X).std(dim=0, correction=0)

    def member_calls(self, X) -> torch.Tensor:
        """Each member's call, shape (M, N) of int: the argmax class for a class output, else the side of the threshold.

        A class output (``outputs.logit(i)`` of several columns) votes for its argmax;
        any other score votes 1 above ``output.threshold`` (0 for logits, margins and
        values, 0.5 for probabilities) and 0 otherwise.
        """
        X = self._as_input(X)
        calls = []
        for member in self.members:
            y = member.predict(X)
            if self.output.classes and y.ndim <= 2 and _class_axis(y).shape[1] > 1:
                calls.append(_class_axis(y).argmax(dim=1))
            else:
                calls.append((self.output(y) > self.output.threshold).long())
        return torch.stack(calls)

    def disagreement(self, X) -> torch.Tensor:
        """Vote disagreement: the share of members that do not vote for the most common call, shape (N,).

        0 when every member makes the same call; at most ``1 - 1/C`` for C possible calls.

        Examples
        --------
        >>> import torch
        >>> from probekit import FeatureModel, outputs
        >>> signs = (1.0, 1.0, -1.0, 1.0)
        >>> members = [FeatureModel(lambda x, s=s: s * x, output=outputs.margin(0), device="cpu") for s in signs]
        >>> Ensemble(members).disagreement(torch.tensor([[2.0], [-1.0]]))
        tensor([0.2500, 0.2500])
        """
        calls = self.member_calls(X)
        m = calls.shape[0]
        counts = torch.nn.functional.one_hot(calls.T, int(calls.max()) + 1 if calls.numel() else 1).sum(dim=1)
        return 1.0 - counts.max(dim=1).values.float() / m if calls.numel() else torch.zeros(0, device=self.device)


class _SequenceEnsemble(Ensemble, SequenceModel):
    """An :class:`Ensemble` of DNA models."""

    def _init_family(self, net, first, **settings):
        SequenceModel.__init__(self, net, alphabet=first.alphabet, layout="NCL", strands="forward", **settings)


class _FeatureEnsemble(Ensemble, FeatureModel):
    """An :class:`Ensemble` of feature models."""

    def _init_family(self, net, first, **settings):
        FeatureModel.__init__(self, net, featurizer=first.featurizer, feature_names=first.feature_names,
                              kinds=first._kinds, bounds=first._bounds, **settings)  # fmt: skip


# --------------------------------------------------------------------------- building ensembles
class _FixedDropout(nn.Module):
    """Dropout with one mask per input shape, drawn from ``seed``: a fixed thinned network."""

    def __init__(self, p: float, seed: int, *, channels: bool):
        super().__init__()
        self.p, self.seed, self.channels = float(p), int(seed), channels
        self._masks = {}

    def forward(self, x):
        if self.p == 0.0:
            return x
        shape = tuple(x.shape[1:2]) + (1,) * (x.ndim - 2) if self.channels and x.ndim > 2 else tuple(x.shape[1:])
        key = (shape, x.device, x.dtype)
        if key not in self._masks:
            generator = torch.Generator().manual_seed(self.seed)
            keep = torch.rand(shape, generator=generator) >= self.p
            self._masks[key] = (keep.to(x.dtype) / (1.0 - self.p)).to(x.device)
        return x * self._masks[key]


def _thinned(model: nn.Module, *, p, seed: int) -> nn.Module:
    """A copy of ``model`` sharing its parameters, each dropout layer replaced by a fixed mask."""
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    clone = copy.deepcopy(model, shared)
    found = 0
    for name, module in list(clone.named_modules()):
        if not isinstance(module, nn.modules.dropout._DropoutNd):
            continue
        parent = clone.get_submodule(name.rpartition(".")[0]) if "." in name else clone
        rate = module.p if p is None else p
        channels = not isinstance(module, (nn.Dropout, nn.AlphaDropout))
        setattr(parent, name.rpartition(".")[2], _FixedDropout(rate, seed * 1000 + found, channels=channels))
        found += 1
    return clone, found


def mc_dropout(adapter, n: int = 10, *, p: float | None = None, seed: int = 0) -> Ensemble:
    """An ensemble of ``n`` Monte-Carlo dropout passes of one model.

    Each member is the model with every dropout layer replaced by one fixed mask,
    drawn from its own seed (the "thinned network" view of dropout): members
    share the model's parameters (no copies of the weights), and each member is
    deterministic and independent of the batch, as searches need.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
        Its model must be a ``torch.nn.Module`` with at least one dropout layer.
    n : int
        Passes (members), at least 2.
    p : float, optional
        Dropout rate of every layer; default each layer's own rate.
    seed : int

    Returns
    -------
    Ensemble

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 1))
    >>> ensemble = mc_dropout(FeatureModel(net, output=outputs.value(0), device="cpu"), n=8)
    >>> X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    >>> bool((ensemble.spread(X) > 0).all()), bool(torch.equal(ensemble.score(X), ensemble.score(X)))
    (True, True)
    """
    if not isinstance(adapter.model, nn.Module):
        raise TypeError("mc_dropout needs a model that is a torch.nn.Module")
    if n < 2:
        raise ValueError(f"mc_dropout needs n >= 2 passes, got {n}")
    if p is not None and not 0 <= p < 1:
        raise ValueError(f"p must lie in [0, 1), got {p}")
    members = []
    for i in range(n):
        model, found = _thinned(adapter.model, p=p, seed=seed * 7919 + i)
        if not found:
            raise ValueError("the model has no dropout layers (torch.nn.Dropout, Dropout1d/2d/3d): nothing to sample")
        members.append(adapter.replace(model=model))
    return Ensemble(members)


def from_checkpoints(adapter, checkpoints, *, strict: bool = True) -> Ensemble:
    """An ensemble of one architecture at several checkpoints (state dicts or their files).

    Files are read with ``torch.load(weights_only=True)``: no code in them runs.

    Parameters
    ----------
    adapter : SequenceModel or FeatureModel
        Its model (a ``torch.nn.Module``) gives the architecture; it is copied, not changed.
    checkpoints : list of dict or path
        State dicts, or paths of files holding one.
    strict : bool
        As in ``torch.nn.Module.load_state_dict``.

    Returns
    -------
    Ensemble

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel
    >>> states = [torch.nn.Linear(2, 1).state_dict() for _ in range(3)]
    >>> len(from_checkpoints(FeatureModel(torch.nn.Linear(2, 1), output=0, device="cpu"), states))
    3
    """
    if not isinstance(adapter.model, nn.Module):
        raise TypeError("from_checkpoints needs a model that is a torch.nn.Module")
    members = []
    for checkpoint in checkpoints:
        state = checkpoint if isinstance(checkpoint, dict) else torch.load(checkpoint, map_location="cpu", weights_only=True)
        model = copy.deepcopy(adapter.model)
        model.load_state_dict(state, strict=strict)
        members.append(adapter.replace(model=model))
    return Ensemble(members)


# --------------------------------------------------------------------------- sensitivity per member
AGREEMENT = ("shared", "partial", "none")


@dataclass(frozen=True)
class MemberSensitivity:
    """Each member's sensitivity (ISM or attribution), their mean and spread, and agreement on critical sites.

    Sites are positions (DNA) or features. M members, N inputs, S sites.

    Attributes
    ----------
    effects : torch.Tensor of shape (M, N, L, 4) or (M, N, 4, L) or (M, N, F)
        Each member's ISM effects (N, L, 4) or attribution values.
    importance : torch.Tensor of shape (M, N, S)
        Each member's importance of each site (max |ISM effect|, or |attribution|).
    critical : torch.Tensor of shape (M, N, S), bool
        The sites each member treats as critical.
    method : str
    inputs : torch.Tensor of shape (N, 4, L) or (N, F)
    ids : list of str
    names : list of str
        Alphabet letters (DNA) or feature names.
    results : list
        Each member's own result (:class:`~probekit.results.ISMResult` or
        :class:`~probekit.attr.Attribution`).
    params : dict
    """

    effects: torch.Tensor
    importance: torch.Tensor
    critical: torch.Tensor
    method: str
    inputs: torch.Tensor
    ids: list = field(default_factory=list)
    names: list = field(default_factory=list)
    results: list = field(default_factory=list, repr=False)
    params: dict = field(default_factory=dict)

    @property
    def is_sequence(self) -> bool:
        """True for DNA inputs (N, 4, L)."""
        return self.inputs.ndim == 3

    @property
    def mean(self) -> torch.Tensor:
        """Mean of ``effects`` over members: the shape of one member's effects."""
        return self.effects.mean(dim=0)

    @property
    def spread(self) -> torch.Tensor:
        """Standard deviation of ``effects`` over members (``correction=0``)."""
        return self.effects.std(dim=0, correction=0)

    @property
    def n_critical(self) -> torch.Tensor:
        """How many members treat each site as critical: (N, S)."""
        return self.critical.sum(dim=0)

    @property
    def shared(self) -> torch.Tensor:
        """Sites every member treats as critical: bool (N, S)."""
        return self.critical.all(dim=0)

    @property
    def partial(self) -> torch.Tensor:
        """Sites some members, but not all, treat as critical: bool (N, S)."""
        return self.critical.any(dim=0) & ~self.shared

    def agreement(self) -> np.ndarray:
        """``"shared"``, ``"partial"`` or ``"none"`` for each site: array (N, S) of str."""
        out = np.full(tuple(self.shared.shape), "none", dtype=object)
        out[self.partial.numpy()] = "partial"
        out[self.shared.numpy()] = "shared"
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per input and site.

        Columns: ``id``, ``position`` and ``ref`` (DNA) or ``feature`` and ``value``;
        ``importance`` (mean over members), ``spread`` (std over members),
        ``n_critical`` (members that treat it as critical), ``agreement``
        (shared / partial / none), and ``importance_<m>`` per member.
        """
        m, n, s = self.importance.shape
        ids = np.repeat(np.array(self.ids, dtype=object), s)
        if self.is_sequence:
            letters = np.array(list(self.names) + ["N"], dtype=object)
            index = self.inputs.argmax(dim=1).masked_fill(self.inputs.sum(dim=1) == 0, len(self.names))
            frame = pd.DataFrame({"id": ids, "position": np.tile(np.arange(s), n), "ref": letters[index.numpy().ravel()]})
        else:
            frame = pd.DataFrame({"id": ids, "feature": np.tile(np.array(self.names, dtype=object), n),
                                  "value": self.inputs.reshape(-1).numpy().astype(np.float64)})  # fmt: skip
        frame["importance"] = self.importance.mean(dim=0).reshape(-1).double().numpy()
        frame["spread"] = self.importance.std(dim=0, correction=0).reshape(-1).double().numpy()
        frame["n_critical"] = self.n_critical.reshape(-1).numpy().astype(np.int64)
        frame["agreement"] = self.agreement().reshape(-1)
        for k in range(m):
            frame[f"importance_{k}"] = self.importance[k].reshape(-1).double().numpy()
        return frame

    def critical_sites(self) -> pd.DataFrame:
        """The rows of :meth:`to_frame` that at least one member treats as critical, shared first."""
        frame = self.to_frame()
        frame = frame[frame["n_critical"] > 0]
        return frame.sort_values(["id", "n_critical", "importance"], ascending=[True, False, False], kind="stable").reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """One row per input: ``n_shared``, ``n_partial``, ``mean_spread`` of importance, ``top_shared`` site."""
        site_names = None if self.is_sequence else np.array(self.names, dtype=object)
        mean = self.importance.mean(dim=0)
        top = mean.masked_fill(~self.shared, float("-inf")).argmax(dim=1).numpy()
        top_shared = [None if not bool(self.shared[i].any()) else (int(t) if site_names is None else site_names[t])
                      for i, t in enumerate(top)]  # fmt: skip
        return pd.DataFrame({
            "id": list(self.ids),
            "method": self.method,
            "n_shared": self.shared.sum(dim=1).numpy(),
            "n_partial": self.partial.sum(dim=1).numpy(),
            "mean_spread": self.importance.std(dim=0, correction=0).mean(dim=1).double().numpy(),
            "top_shared": top_shared,
        })  # fmt: skip


def _members_of(ensemble) -> list:
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"expected an Ensemble, got {type(ensemble).__name__}")
    return ensemble.members


def _ids(ids, n: int, prefix: str) -> list:
    ids = [str(i) for i in ids] if ids is not None else [f"{prefix}{i}" for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} inputs")
    return ids


def _ism_critical(effects: torch.Tensor, X: torch.Tensor, start: int, end: int, alpha: float):
    """Importance (N, L) and critical positions (N, L) of one member's ISM, by the rule :func:`probekit.probe` uses."""
    from .report.tables import critical_mask, null_threshold, outlier_floor, position_importance

    length = X.shape[2]
    inside = torch.zeros(length, dtype=torch.bool)
    inside[start:end] = True
    ref = X.argmax(dim=1).masked_fill(X.sum(dim=1) == 0, -1)
    alternatives = (X.transpose(1, 2) == 0) & (ref >= 0)[..., None] & inside[None, :, None]
    importance = position_importance(effects)
    threshold = torch.maximum(null_threshold(effects, alternatives, alpha=alpha), outlier_floor(importance[:, start:end], alpha=alpha))
    return importance, critical_mask(importance, threshold) & inside[None]


def member_ism(ensemble, X, *, start: int | None = None, end: int | None = None, alpha: float = 0.05, ids=None,
               progress: bool = False) -> MemberSensitivity:  # fmt: skip
    """Saturation mutagenesis of every member, with the mean, the spread and shared critical positions.

    Each member's ISM is :func:`probekit.search.saturation_mutagenesis` on that
    member with the ensemble's output; its critical positions follow the rule of
    :func:`probekit.probe` (importance at or above the larger of the ``1 - alpha``
    quantile of |single-substitution effect| and the robust outlier floor).

    Parameters
    ----------
    ensemble : Ensemble of DNA models
    X : torch.Tensor of shape (N, 4, L), or sequences
    start, end : int, optional
        Scan positions ``start:end`` only.
    alpha : float
    ids : list of str, optional
    progress : bool

    Returns
    -------
    MemberSensitivity
        ``effects`` (M, N, L, 4); ``importance`` and ``critical`` (M, N, L).

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import MotifCounter
    >>> members = [SequenceModel(MotifCounter(m), output=0, device="cpu") for m in ("TGACTCA", "TGACTC")]
    >>> result = member_ism(Ensemble(members), ["CCGATGACTCAGGCATCCAGCTAA"])
    >>> result.effects.shape, result.shared[0].nonzero().flatten().tolist()
    (torch.Size([2, 1, 24, 4]), [4, 5, 6, 7, 8, 9])
    >>> result.partial[0].nonzero().flatten().tolist()
    [10]
    """
    from .search.discrete import saturation_mutagenesis

    members = _members_of(ensemble)
    if not isinstance(ensemble, SequenceModel):
        raise TypeError("member_ism needs an ensemble of DNA models; use sensitivity(method=...) for feature models")
    X = ensemble._as_input(X)
    ids = _ids(ids, X.shape[0], "seq")
    results = [saturation_mutagenesis(m, X, start=start, end=end, ids=ids, progress=progress) for m in members]
    X_cpu = X.detach().cpu()
    s, e = results[0].start, results[0].end if results[0].end is not None else X.shape[2]
    pairs = [_ism_critical(r.effects.cpu(), X_cpu, s, e, alpha) for r in results]
    return MemberSensitivity(
        effects=torch.stack([r.effects.cpu() for r in results]),
        importance=torch.stack([p[0] for p in pairs]),
        critical=torch.stack([p[1] for p in pairs]),
        method="ism", inputs=X_cpu, ids=ids, names=list(ensemble.alphabet), results=results,
        params={"alpha": alpha, "start": s, "end": e, "output": ensemble.output.name, "members": len(members)},
    )  # fmt: skip


def sensitivity(ensemble, X, *, method: str = "auto", alpha: float = 0.05, ids=None, **kwargs) -> MemberSensitivity:
    """Each member's ISM or attribution, their mean and spread, and the critical sites they share.

    Parameters
    ----------
    ensemble : Ensemble
    X : torch.Tensor or inputs the ensemble can encode
    method : str
        ``"ism"`` (DNA; :func:`member_ism`), or a captum method of
        :func:`probekit.attr.attribute` (``"saliency"``, ``"integrated_gradients"``...).
        ``"auto"``: ISM for DNA, integrated gradients for features.
    alpha : float
        For attributions a site is critical when its |attribution| (DNA: of the
        observed base) stands out of the input's others by the robust outlier test
        (:func:`probekit.report.tables.outlier_floor`); for ISM, the rule of :func:`member_ism`.
    ids : list of str, optional
    **kwargs
        Options of the ISM or of the attribution method.

    Returns
    -------
    MemberSensitivity

    Examples
    --------
    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> weights = ([5.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [5.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 4.0])
    >>> members = [FeatureModel(lambda x, w=torch.tensor(w): (x * w).sum(1, keepdim=True), output=outputs.value(0),
    ...                         device="cpu") for w in weights]
    >>> result = sensitivity(Ensemble(members), torch.ones(1, 8), method="input_x_gradient")
    >>> result.agreement()[0, [0, 1, 7]].tolist()
    ['shared', 'none', 'partial']
    """
    from .attr import attribute
    from .report.tables import critical_mask, outlier_floor

    members = _members_of(ensemble)
    sequence = isinstance(ensemble, SequenceModel)
    if method == "auto":
        method = "ism" if sequence else "integrated_gradients"
    if method == "ism":
        if not sequence:
            raise ValueError("method='ism' applies to DNA ensembles; choose an attribution method for features")
        return member_ism(ensemble, X, alpha=alpha, ids=ids, **kwargs)
    X = ensemble._as_input(X)
    ids = _ids(ids, X.shape[0], "seq" if sequence else "x")
    results = [attribute(m, X, method=method, **kwargs) for m in members]
    values = torch.stack([r.values.detach().cpu() for r in results])
    importance = torch.stack([(r.per_position if sequence else r.values).detach().cpu().abs() for r in results])
    # above the median too: when most sites tie, the floor (median + z MAD) falls on the tie
    critical = torch.stack([critical_mask(imp, outlier_floor(imp, alpha=alpha)) & (imp > imp.median(dim=1, keepdim=True).values)
                            for imp in importance])  # fmt: skip
    names = list(ensemble.alphabet) if sequence else ensemble.names(X.shape[1])
    return MemberSensitivity(
        effects=values, importance=importance, critical=critical, method=method, inputs=X.detach().cpu(), ids=ids,
        names=names, results=results, params={"alpha": alpha, "output": ensemble.output.name, "members": len(members)},
    )  # fmt: skip


def split_critical(ensemble, report) -> pd.DataFrame:
    """The critical positions of a :func:`probekit.probe` report on an ensemble, split by the members' agreement.

    Each member's ISM is run on the report's sequences (rebuilt from its table)
    over the report's window and with its ``alpha``; a position the ensemble
    treats as critical is ``"shared"`` when every member does too, ``"partial"``
    when some do, and ``"none"`` when only the averaged model does.

    Parameters
    ----------
    ensemble : Ensemble of DNA models
        The ensemble the report was made with.
    report : SensitivityReport of kind ``"dna"``

    Returns
    -------
    pandas.DataFrame
        The report's critical rows (``id``, ``position``, ``ref``, ``importance``,
        ``rank``, ``region``...) with ``n_critical`` (members), ``n_members``,
        ``spread`` (std of the members' importance) and ``agreement``.

    Examples
    --------
    >>> from probekit import SequenceModel, goals, probe
    >>> from probekit.testing import MotifCounter
    >>> members = [SequenceModel(MotifCounter(m), output=0, device="cpu") for m in ("TGACTCA", "TGACTC")]
    >>> ensemble = Ensemble(members)
    >>> report = probe(ensemble, ["CCGATGACTCAGGCATCCAGCTAA"], goal=goals.below(0.1), baseline_draws=20)
    >>> split_critical(ensemble, report)["agreement"].value_counts().to_dict()
    {'shared': 6}
    """
    if getattr(report, "kind", None) != "dna":
        raise ValueError("split_critical needs a DNA report of probekit.probe")
    _members_of(ensemble)
    frame = report.to_frame()
    params = report.params
    window = params.get("window")
    alpha = float(params.get("alpha", 0.05))
    critical = frame[frame["critical"].astype(bool)].copy()
    parts = []
    for _, rows in frame.groupby(frame["id"].map(frame.groupby("id").size()), sort=False):
        ids = list(dict.fromkeys(rows["id"]))
        sequences = ["".join(rows.loc[rows["id"] == i, "ref"].astype(str)) for i in ids]
        length = len(sequences[0])
        start, end = (0, length) if window is None else (max(0, int(window[0])), min(length, int(window[1])))
        result = member_ism(ensemble, sequences, start=start, end=end, alpha=alpha, ids=ids)
        parts.append(result.to_frame()[["id", "position", "n_critical", "spread", "agreement"]])
    if not parts:
        return critical.assign(n_critical=pd.Series(dtype="int64"), n_members=len(ensemble.members),
                               spread=pd.Series(dtype="float64"), agreement=pd.Series(dtype=object))  # fmt: skip
    members = pd.concat(parts, ignore_index=True)
    out = critical.merge(members, on=["id", "position"], how="left", validate="one_to_one")
    out.insert(out.columns.get_loc("n_critical") + 1, "n_members", len(ensemble.members))
    return out.reset_index(drop=True)


__all__ = [
    "Ensemble", "IncompatibleMembers", "MemberSensitivity", "mc_dropout", "from_checkpoints", "member_ism",
    "sensitivity", "split_critical", "AGREEMENT",
]  # fmt: skip
