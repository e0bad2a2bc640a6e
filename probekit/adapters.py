"""Adapters: the one place that calls the model.

An adapter wraps a trained model with everything needed to call it safely and
fast: the output selection, batching, device placement, dtype and autocast,
``eval()`` with gradients off, and putting the model back on its device and in
its train/eval mode afterwards. Searches, attributions and certificates only
ever call an adapter.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel, outputs
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=outputs.logit(1), device="cpu")
>>> X = adapter.encode(["ACGTACGTAC", "TTTTACGTAA"])
>>> adapter.score(X).shape
torch.Size([2])
"""

from __future__ import annotations

import abc
import contextlib
import copy
import functools
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ._device import backoff_warner, map_batches, model_dtype, model_on, resolve_device
from .encode.dna import one_hot, reverse_complement
from .goals import BoundGoal, Goal
from ._messages import one_line
from ._warnings import warn
from .outputs import Output, as_output

AUTOCAST_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Largest relative difference from full precision that mixed precision may show before a warning.
AUTOCAST_TOLERANCE = 1e-2
# Seconds the automatic batch-size probe may spend, once per adapter.
AUTO_BATCH_BUDGET_S = 0.5


# Rows of the first batch that the eval-mode determinism check runs again.
DETERMINISM_ROWS = 8


class ModelCallError(RuntimeError):
    """The wrapped model raised on a batch; the message names the input shape.

    The model's own exception is the ``__cause__``; a batch that raised may hold
    a few bad records among good ones (:meth:`Adapter.screen` finds them).
    """


class ModelOutputError(ModelCallError):
    """The model's output is malformed whatever the batch: not one tensor with one row per input.

    Raised right after the model returns (a tuple, a 0-d tensor, a reduction over the
    batch, an extra row, a transposed (C, N) output). Unlike a plain
    :class:`ModelCallError` it is the model's fault for every input, so a run
    should stop with this one message rather than retry records one by one.
    """


def _check_output(y, n: int) -> None:
    """Raise :class:`ModelOutputError` unless ``y`` is a tensor with one row per input of a batch of ``n``."""
    if isinstance(y, (tuple, list)):
        raise ModelOutputError(
            "the model returned a tuple; wrap it so that it returns one tensor, or pick one with a callable"
        )
    if not isinstance(y, torch.Tensor):
        raise ModelOutputError(f"the model returned a {type(y).__name__}, not a tensor")
    if y.ndim == 0:
        raise ModelOutputError(
            f"the model returned a 0-d tensor (one number) for a batch of {n}; it must return one row per input "
            "(does it reduce or squeeze the batch axis?)"
        )
    if y.shape[0] == n:
        return
    shape = tuple(y.shape)
    if y.ndim == 2 and y.shape[1] == n:
        raise ModelOutputError(
            f"the model's output looks transposed: {shape} is (C, N) instead of (N, C) for a batch of {n}"
        )
    rows = y.shape[0]
    raise ModelOutputError(
        f"the model returned {rows} row{'s' if rows != 1 else ''} for a batch of {n} (output shape {shape}); "
        "it must return one row per input (does it reduce over the batch?)"
    )


def model_exception(error: BaseException) -> BaseException:
    """The model's own exception behind a :class:`ModelCallError` (the error itself when there is none)."""
    while isinstance(error, ModelCallError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def describe_failure(error: BaseException) -> str:
    """One record's problem in the model's own words, on one line: ``"the model raised ValueError: bad token at 7"``.

    A TorchScript model's error keeps only the exception its code raised, not the interpreter's traceback.

    Examples
    --------
    >>> try:
    ...     raise ModelCallError("the model failed on a batch") from ValueError("bad token at 7")
    ... except ModelCallError as error:
    ...     describe_failure(error)
    'the model raised ValueError: bad token at 7'
    """
    cause = model_exception(error)
    text = str(error) if cause is error else f"the model raised {type(cause).__name__}: {cause}"
    return one_line(text)


def input_gradient(total: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d total / d x, zero where ``total`` does not depend on ``x`` (a model that ignores this input).

    Examples
    --------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> input_gradient((2 * x).sum(), x)[0].tolist(), input_gradient(torch.tensor(1.0), x).abs().sum().item()
    ([2.0, 2.0, 2.0], 0.0)
    """
    if not total.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(total, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def _nonfinite_word(value: float) -> str:
    return "NaN" if value != value else ("inf" if value > 0 else "-inf")


def _nan_rows(y: torch.Tensor) -> torch.Tensor:
    """Rows of a raw output (N, ...) holding a NaN anywhere: bool (N,)."""
    if not y.is_floating_point():
        return torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
    return torch.isnan(y.flatten(1) if y.ndim > 1 else y[:, None]).any(dim=1)


def _same_outputs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two outputs of the same batch agree to a tight tolerance (NaN equal to NaN)."""
    if a.shape != b.shape:
        return False
    a, b = a.detach().double(), b.detach().double()
    finite = torch.isfinite(a)
    scale = float(a[finite].abs().max()) if bool(finite.any()) else 1.0
    return bool(torch.isclose(a, b, rtol=1e-5, atol=1e-6 * max(scale, 1e-12), equal_nan=True).all())


def _default_batch_size(device: torch.device) -> int:
    return 256 if device.type == "cuda" else 64


class Adapter(abc.ABC):
    """Common machinery of :class:`SequenceModel` and :class:`FeatureModel`.

    Subclasses define how inputs are encoded (:meth:`encode`) and laid out for
    the model (:meth:`_to_model_layout`). All tensors handed to an adapter are
    in probekit's canonical layout and are moved to :attr:`device`.
    """

    # settings held under another name, because a method of the same name reads them
    _SETTING_ATTRIBUTES: dict[str, str] = {}

    def __init__(self, model, *, output, batch_size="auto", device=None, dtype=None, autocast=None):
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be None, 'bf16' or 'fp16'; got {autocast!r}")
        self.model = model
        self.output: Output = as_output(output)
        self.device: torch.device = resolve_device(device)
        self.dtype: torch.dtype = dtype or model_dtype(model) or torch.float32
        self.autocast = autocast
        self.autocast_error: float | None = None  # measured on the first mixed-precision batch
        self._set_batch_size(batch_size)
        self._batch_setting_auto = self._auto_batch
        self._depth = 0
        self._on_backoff = backoff_warner()
        self.deterministic: bool | None = None  # checked on the first batch of the first :meth:`map`

    def _set_batch_size(self, batch_size) -> None:
        """An int, or ``"auto"``: a short timed probe on the first inputs picks the fastest batch."""
        self._auto_batch = batch_size == "auto"
        if self._auto_batch:
            batch_size = _default_batch_size(self.device)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        self.batch_size: int = batch_size

    def resolve_batch_size(self, X) -> int:
        """Settle ``batch_size="auto"`` on inputs ``X``; returns the batch size.

        The size fits in memory, is at least 64 inputs on a CPU and 256 on a GPU
        when memory allows, and is the fastest of a short timed probe between the
        two (see :func:`probekit._batching.pick_batch_size`). When the model raises
        on the first input, the default size stays and the caller's own call
        meets the error. Called by every batched method on its first inputs;
        searches that call the model through :meth:`forward` call it themselves.
        """
        X = self._as_input(X)
        if self._auto_batch and X.shape[0] > 0:
            from ._batching import pick_batch_size

            self._auto_batch = False  # the probe itself runs with the default batch
            try:
                self.batch_size = pick_batch_size(self, X[:1], budget_s=AUTO_BATCH_BUDGET_S)
            except ModelCallError:
                pass  # a bad first record (or a malformed output): the batched call reports it
        return self.batch_size

    # ------------------------------------------------------------------ state
    @contextlib.contextmanager
    def session(self):
        """Hold the model on :attr:`device` in eval mode for several calls; re-entrant.

        Every public method enters it, so users need it only to save repeated
        moves of a model that lives on another device.
        """
        if self._depth > 0:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        with model_on(self.model, self.device, self.dtype if self.dtype != model_dtype(self.model) else None):
            self._depth = 1
            try:
                yield self
            finally:
                self._depth = 0

    def replace(self, **changes) -> "Adapter":
        """A shallow copy of this adapter with some settings changed (``output=``, ``batch_size=``, ``kinds=``...).

        Any argument of the constructor may change; anything else raises ``TypeError``.
        """
        new = copy.copy(self)
        new._depth = 0
        new.__dict__.pop("_feature_cache", None)  # settings may change: nothing derived from them is shared
        for key, value in changes.items():
            attr = self._SETTING_ATTRIBUTES.get(key, key)
            # a method (``kinds``, ``bounds``...) is no setting: assigning to it would hide the method
            method = attr == key and callable(getattr(type(self), key, None))
            if key.startswith("_") or method or not hasattr(new, attr):
                raise TypeError(f"{type(self).__name__} has no setting {key!r}")
            if key == "batch_size":
                new._set_batch_size(value)
                continue
            if key == "output":
                value = as_output(value)
            elif key == "device":
                value = resolve_device(value)
            elif key == "kinds":
                value = _as_kinds(value)
            setattr(new, attr, value)
        if changes.keys() & {"model", "device", "dtype", "autocast"}:
            new.autocast_error = None
        if "model" in changes:
            new.deterministic = None
        if "batch_size" not in changes and changes.keys() & {"model", "device", "dtype", "autocast", "strands", "layout"}:
            new._auto_batch = getattr(self, "_batch_setting_auto", False)
        return new

    # --------------------------------------------------------------- forward
    def _to_model_layout(self, X: torch.Tensor) -> torch.Tensor:
        return X

    def _raw(self, X: torch.Tensor) -> torch.Tensor:
        """Model output for a canonical batch already on the device (no batching)."""
        x = self._to_model_layout(X.to(self.dtype))
        if self.autocast is not None:
            with torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.autocast]):
                y = self.model(x)
            _check_output(y, X.shape[0])
            if self.autocast_error is None and x.shape[0] > 0:
                self._check_autocast(x, y)
        else:
            y = self.model(x)
            _check_output(y, X.shape[0])
        return y.float() if y.dtype in (torch.float16, torch.bfloat16) else y

    def _check_autocast(self, x: torch.Tensor, y_low: torch.Tensor) -> None:
        """Compare the first mixed-precision batch with full precision; warn when they disagree."""
        with torch.no_grad():
            y_full = self.model(x).float()
            scale = y_full.abs().max().clamp_min(1e-12)
            self.autocast_error = float((y_low.detach().float() - y_full).abs().max() / scale)
        if self.autocast_error > AUTOCAST_TOLERANCE:
            warn(
                f"autocast={self.autocast!r} changes the model's outputs by up to {self.autocast_error:.2g} of their "
                f"scale on the first batch (tolerance {AUTOCAST_TOLERANCE}); results may differ from full precision"
            )

    def _call(self, X: torch.Tensor) -> torch.Tensor:
        try:
            return self._raw(X)
        except Exception as error:
            if isinstance(error, (ModelCallError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(error):
                raise
            raise ModelCallError(f"the model failed on a batch of shape {tuple(X.shape)}: {error}") from error

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Differentiable raw output for one batch ``X`` (no batching); for autograd users."""
        with self.session():
            return self._call(self._as_input(X))

    def score_fn(self, X: torch.Tensor) -> torch.Tensor:
        """Differentiable selected score (N,) for one batch; the forward function for captum."""
        return self.output(self.forward(X))

    def _as_input(self, X) -> torch.Tensor:
        if not isinstance(X, torch.Tensor):
            X = self.encode(X)
        return X.to(self.device)

    def map(self, X, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, rows=None) -> torch.Tensor:
        """Apply ``fn(raw_output, rows)`` over ``X`` in batches without gradients.

        Parameters
        ----------
        X : torch.Tensor of shape (N, ...)
            Canonical inputs.
        fn : callable
            ``(raw outputs of a batch, rows of that batch) -> tensor (batch, ...)``.
        rows : torch.Tensor of shape (N,), optional
            Which original input each row of ``X`` belongs to (for bound goals).

        Returns
        -------
        torch.Tensor of shape (N, ...) on :attr:`device`
        """
        X = self._as_input(X)
        self.resolve_batch_size(X)
        n = X.shape[0]
        if rows is None:
            rows = torch.arange(n, device=self.device)
        rows = rows.to(self.device)

        def run(start: int, stop: int) -> torch.Tensor:
            y = self._call(X[start:stop])
            if self.deterministic is None:
                self._check_determinism(X[start:stop], y)
            return fn(y, rows[start:stop])

        with self.session(), torch.no_grad():
            parts = map_batches(run, n, self.batch_size, on_backoff=self._on_backoff)
        if not parts:
            return fn(self._empty_output(X), rows[:0])
        return torch.cat(parts)

    def _check_determinism(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """Run the first rows of a batch again; warn once when the model is random in eval mode.

        Sets :attr:`deterministic`. Costs one forward pass of a few rows; a second
        one only when the first disagrees with the batch, to tell randomness from
        rounding that depends on the batch size.
        """
        if X.shape[0] == 0:
            return
        if isinstance(getattr(self.model, "base", None), Adapter):
            self.deterministic = True  # a wrapper of another adapter: that adapter checks its own model
            return
        k = min(DETERMINISM_ROWS, X.shape[0])
        again = self._call(X[:k])
        same = _same_outputs(y[:k], again) or (k < X.shape[0] and _same_outputs(again, self._call(X[:k])))
        self.deterministic = same
        if not same:
            warn(
                "the model gives different outputs for the same input in eval mode (random layers such as "
                "dropout with training=True?): results will change from run to run"
            )

    def _empty_output(self, X):
        with self.session(), torch.no_grad():
            return self._call(X[:0]) if X.shape[0] else torch.zeros(0, device=self.device)

    def predict(self, X) -> torch.Tensor:
        """Full raw model output for every input, batched: shape (N, ...)."""
        return self.map(X, lambda y, rows: y)

    def score(self, X) -> torch.Tensor:
        """The selected scalar output of every input: shape (N,)."""
        return self.map(X, lambda y, rows: self.output(y))

    def bind(self, goal: Goal, X) -> BoundGoal:
        """Bind ``goal`` to the reference outputs of ``X`` (N, ...)."""
        return goal.bind(self.output, self.predict(X))

    def evaluate(self, X, goal: BoundGoal, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and goal values ``g`` (success where ``g <= 0``) of candidates ``X``.

        A candidate whose score or goal value is NaN or infinite, or whose raw output
        holds a NaN, gets ``g = +inf``: it is never a success and never the best
        candidate (the searches count and report such candidates).

        Parameters
        ----------
        X : torch.Tensor of shape (M, ...)
            Candidates in the canonical layout.
        goal : BoundGoal
        rows : torch.Tensor of shape (M,), optional
            Which input each candidate belongs to.

        Returns
        -------
        scores, g : torch.Tensor of shape (M,)
            Scores as the model gave them (non-finite ones included).
        """
        goal = goal.to(self.device)

        def both(y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            score, g = self.output(y), goal(y, r)
            bad = ~(torch.isfinite(score) & torch.isfinite(g)) | _nan_rows(y)
            return torch.stack([score, g.masked_fill(bad, float("inf"))], dim=1)

        out = self.map(X, both, rows=rows)
        return out[:, 0], out[:, 1]

    def screen(self, X, *, outputs=()) -> tuple[torch.Tensor, list[str | None]]:
        """Score every input, batched, and name the problem of each input the model cannot score.

        A batch on which the model raises is split in halves, recursively, until the
        failing inputs are found; the others keep their scores. An input whose score
        is NaN or infinite, or whose raw output holds a NaN, is a problem too.
        Costs one forward pass per batch when nothing fails, and about
        ``2 k log2(batch / k)`` more for ``k`` failing inputs in a batch.

        Parameters
        ----------
        X : torch.Tensor of shape (N, ...) or inputs :meth:`encode` takes
        outputs : sequence of Output, optional
            Further outputs read from the same forward passes.

        Returns
        -------
        scores : torch.Tensor of shape (N,), or (N, 1 + len(outputs)) with ``outputs``
            The score of each input (then the further outputs, a column each); NaN
            where it has a problem.
        problems : list of (str or None), length N
            ``None`` for a good input, else what went wrong in the model's own words:
            ``"the model raised ValueError: bad token at 7"``, ``"the model returned NaN"``.

        Raises
        ------
        ModelOutputError
            When the model's output is malformed (a reduction over the batch, a transposed
            output...): that is no problem of one input.

        Examples
        --------
        >>> import torch
        >>> from probekit import FeatureModel, outputs
        >>> adapter = FeatureModel(lambda x: x.sqrt(), output=outputs.value(0), device="cpu")
        >>> scores, problems = adapter.screen(torch.tensor([[4.0], [-1.0]]))
        >>> scores, problems
        (tensor([2., nan]), [None, 'the model returned NaN'])
        """
        X = self._as_input(X)
        self.resolve_batch_size(X)
        problems: list[str | None] = [None] * X.shape[0]
        outputs = list(outputs)

        def run(start: int, stop: int) -> torch.Tensor:
            return self._screen_rows(X, start, stop, problems, outputs)

        with self.session(), torch.no_grad():
            parts = map_batches(run, X.shape[0], self.batch_size, on_backoff=self._on_backoff)
        values = torch.cat(parts) if parts else torch.zeros(0, 1 + len(outputs), device=self.device)
        return (values if outputs else values[:, 0]), problems

    def _screen_rows(self, X: torch.Tensor, start: int, stop: int, problems: list, outputs: list) -> torch.Tensor:
        """Scores and further outputs (stop - start, 1 + len(outputs)) of rows ``start:stop``, bisecting a batch the model raises on."""
        try:
            y = self._call(X[start:stop])
        except ModelOutputError:
            raise
        except ModelCallError as error:
            if stop - start == 1:
                problems[start] = describe_failure(error)
                return torch.full((1, 1 + len(outputs)), float("nan"), device=self.device)
            middle = (start + stop) // 2
            return torch.cat([self._screen_rows(X, start, middle, problems, outputs),
                              self._screen_rows(X, middle, stop, problems, outputs)])  # fmt: skip
        if self.deterministic is None:
            self._check_determinism(X[start:stop], y)
        scores = self.output(y)
        bad = ~torch.isfinite(scores) | _nan_rows(y)
        values = torch.stack([scores, *(output(y).to(scores.dtype) for output in outputs)], dim=1)
        if bool(bad.any()):
            for i in torch.nonzero(bad).flatten().tolist():
                value = float(scores[i]) if not torch.isfinite(scores[i]) else float("nan")
                problems[start + i] = f"the model returned {_nonfinite_word(value)}"
            values = values.masked_fill(bad[:, None], float("nan"))
        return values

    def gradient(self, X, fn=None, *, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Value and input gradient of ``fn(raw_output, rows)`` (default: the score), batched.

        Returns
        -------
        values : torch.Tensor of shape (N,)
        grads : torch.Tensor of the shape of ``X``
        """
        X = self._as_input(X)
        self.resolve_batch_size(X)
        n = X.shape[0]
        rows = torch.arange(n, device=self.device) if rows is None else rows.to(self.device)
        fn = fn or (lambda y, r: self.output(y))

        def run(start: int, stop: int) -> torch.Tensor:
            xb = X[start:stop].detach().clone().to(self.dtype).requires_grad_(True)
            values = fn(self._call(xb), rows[start:stop])
            grad = input_gradient(values.sum(), xb)
            return torch.cat([values.detach()[:, None], grad.reshape(stop - start, -1).to(X.dtype)], dim=1)

        with self.session(), torch.enable_grad():
            parts = map_batches(run, n, self.batch_size, on_backoff=self._on_backoff)
        both = torch.cat(parts) if parts else torch.zeros(0, 1 + X[0].numel(), device=self.device)
        return both[:, 0], both[:, 1:].reshape(X.shape)

    @abc.abstractmethod
    def encode(self, inputs) -> torch.Tensor:
        """Inputs in the adapter's canonical tensor layout, on :attr:`device`."""


def _as_kinds(kinds):
    """Feature kinds as given to :class:`FeatureModel`: one kind for all features, or a list of kinds."""
    return "continuous" if kinds is None else kinds if isinstance(kinds, str) else list(kinds)


@functools.lru_cache(maxsize=8)
def _default_names(n_features: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(n_features))


class SequenceModel(Adapter):
    """Wrap a model that takes one-hot DNA.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Takes (N, 4, L) ("NCL") or (N, L, 4) ("NLC") one-hot tensors.
    output : Output, int or callable
        Which scalar to read from the model's output (see :mod:`probekit.outputs`).
    alphabet : str
        Channel order of the one-hot encoding.
    layout : {"NCL", "NLC"}
        The layout the model takes; probekit's tensors are always (N, 4, L).
    batch_size : int or "auto"
        Inputs per forward pass. ``"auto"`` picks, on the first inputs, a batch that
        fits in memory and is at least 64 (CPU) or 256 (GPU) inputs when memory allows,
        the fastest of those in a short timed probe (about half a second), kept for
        this model and device; on CUDA out-of-memory the batch is halved and the run goes on.
    device : str or torch.device, optional
        ``None`` picks CUDA when available.
    dtype : torch.dtype, optional
        Input dtype; defaults to the model's parameter dtype.
    strands : {"forward", "both"}
        ``"both"`` averages the raw outputs of the sequence and its reverse complement.
    autocast : {None, "bf16", "fp16"}
        Mixed precision inside the forward pass (for GPUs). The first batch is also
        run in full precision: the largest relative difference is kept in
        ``autocast_error``, and a ``ProbekitWarning`` says when it exceeds 1e-2.

    Examples
    --------
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=0, device="cpu", strands="both")
    >>> adapter.score(["ACGTACGTAC"]).shape
    torch.Size([1])
    """

    def __init__(
        self,
        model,
        *,
        output,
        alphabet: str = "ACGT",
        layout: str = "NCL",
        batch_size="auto",
        device=None,
        dtype=None,
        strands: str = "forward",
        autocast=None,
    ):
        super().__init__(model, output=output, batch_size=batch_size, device=device, dtype=dtype, autocast=autocast)
        if layout not in ("NCL", "NLC"):
            raise ValueError(f"layout must be 'NCL' or 'NLC', got {layout!r}")
        if strands not in ("forward", "both"):
            raise ValueError(f"strands must be 'forward' or 'both', got {strands!r}")
        if strands == "both":
            reverse_complement(torch.zeros(1, len(alphabet), 1), alphabet=alphabet)  # checks the alphabet
        self.alphabet = alphabet.upper()
        self.layout = layout
        self.strands = strands

    def _to_model_layout(self, X: torch.Tensor) -> torch.Tensor:
        return X.transpose(1, 2) if self.layout == "NLC" else X

    def _raw(self, X: torch.Tensor) -> torch.Tensor:
        if X.ndim != 3 or X.shape[1] != len(self.alphabet):
            raise ValueError(f"one-hot input must have shape (N, {len(self.alphabet)}, L); got {tuple(X.shape)}")
        y = super()._raw(X)
        if self.strands == "both":
            y = 0.5 * (y + super()._raw(reverse_complement(X, alphabet=self.alphabet)))
        return y

    def _call(self, X: torch.Tensor) -> torch.Tensor:
        try:
            return super()._call(X)
        except ModelOutputError:
            raise  # malformed for every length: the length is not the problem
        except ModelCallError as error:
            raise ModelCallError(
                f"the model cannot take sequences of length {X.shape[-1]} (batch of shape {tuple(X.shape)}): "
                f"{error.__cause__ or error}"
            ) from error

    def encode(self, inputs) -> torch.Tensor:
        """One-hot (N, 4, L) on :attr:`device` from strings, a list, a DataFrame or a tensor.

        Sequences must share one length and be valid; use :func:`probekit.io.sequence_frame`
        to check records one by one first.
        """
        if isinstance(inputs, torch.Tensor):
            X = inputs if inputs.ndim == 3 else inputs[None]
            return X.to(self.device, torch.float32)
        if isinstance(inputs, pd.DataFrame):
            inputs = inputs["sequence"].tolist()
        if isinstance(inputs, str):
            inputs = [inputs]
        return one_hot(list(inputs), alphabet=self.alphabet).to(self.device)


class FeatureModel(Adapter):
    """Wrap a model over feature vectors (N, F), such as fingerprints or descriptors.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Takes a float tensor (N, F).
    featurizer : object, optional
        Turns molecules into features and knows their names, kinds and bounds.
    output : Output, int or callable
        Which scalar to read from the model's output.
    feature_names : list of str, optional
        Names of the F features (default ``f0``, ``f1``, ...).
    kinds : str or list of str, optional
        ``"continuous"``, ``"binary"`` or ``"integer"``, one for all or one per feature.
    bounds : (lower, upper), optional
        Valid range of each feature, tensors or floats of shape (F,). Binary
        features never leave [0, 1], whatever range they are given.

    Examples
    --------
    >>> import torch
    >>> from probekit import outputs
    >>> model = torch.nn.Linear(3, 1)
    >>> adapter = FeatureModel(model, output=outputs.value(0), feature_names=["a", "b", "c"], device="cpu")
    >>> adapter.score(torch.ones(2, 3)).shape
    torch.Size([2])

    With a featurizer the adapter takes SMILES, RDKit molecules or the DataFrame
    of :func:`probekit.read_molecules`:

    >>> from probekit.encode.mol import Morgan
    >>> fp = Morgan(radius=2, n_bits=64)
    >>> adapter = FeatureModel(torch.nn.Linear(64, 1), featurizer=fp, output=outputs.value(0), device="cpu")
    >>> adapter.score(["CCO", "c1ccccc1O"]).shape, adapter.kinds(64)[0]
    (torch.Size([2]), 'binary')
    """

    KINDS = ("continuous", "binary", "integer")
    _SETTING_ATTRIBUTES = {"kinds": "_kinds", "bounds": "_bounds"}

    def __init__(
        self,
        model,
        *,
        featurizer=None,
        output,
        feature_names: Sequence[str] | None = None,
        kinds=None,
        bounds=None,
        batch_size="auto",
        device=None,
        dtype=None,
        autocast=None,
    ):
        super().__init__(model, output=output, batch_size=batch_size, device=device, dtype=dtype, autocast=autocast)
        self.featurizer = featurizer
        if feature_names is None and featurizer is not None:
            feature_names = list(featurizer.names)
        if kinds is None and featurizer is not None:
            kinds = list(featurizer.kinds)
        if bounds is None and featurizer is not None:
            bounds = featurizer.bounds
        self.feature_names = list(feature_names) if feature_names is not None else None
        self._kinds = _as_kinds(kinds)
        self._bounds = bounds

    @property
    def n_features(self) -> int | None:
        """Number of features, when known from names or kinds."""
        if self.feature_names is not None:
            return len(self.feature_names)
        if not isinstance(self._kinds, str):
            return len(self._kinds)
        return None

    def names(self, n_features: int) -> list[str]:
        """Feature names for ``n_features`` columns."""
        if self.feature_names is not None:
            if len(self.feature_names) != n_features:
                raise ValueError(f"{len(self.feature_names)} feature names for inputs with {n_features} features")
            return self.feature_names
        return list(_default_names(n_features))

    def kinds(self, n_features: int) -> list[str]:
        """Kind of each feature: continuous, binary or integer."""
        kinds = [self._kinds] * n_features if isinstance(self._kinds, str) else list(self._kinds)
        if len(kinds) != n_features:
            raise ValueError(f"{len(kinds)} feature kinds for inputs with {n_features} features")
        for k in set(kinds):
            if k not in self.KINDS:
                raise ValueError(f"feature kind must be one of {self.KINDS}, got {k!r}")
        return kinds

    def kind_mask(self, n_features: int, kind: str) -> torch.Tensor:
        """Where the features are of ``kind`` (continuous, binary or integer): bool, shape (F,), on the CPU.

        Examples
        --------
        >>> FeatureModel(torch.nn.Linear(3, 1), output=0, kinds=["binary", "continuous", "binary"]).kind_mask(3, "binary")
        tensor([ True, False,  True])
        """
        return self._cached(("kind_mask", n_features, kind), lambda: self._kind_mask(n_features, kind)).clone()

    def _kind_mask(self, n_features: int, kind: str) -> torch.Tensor:
        kinds = self.kinds(n_features)
        if isinstance(self._kinds, str):
            return torch.full((n_features,), self._kinds == kind)
        return torch.from_numpy(np.asarray(kinds, dtype=object) == kind)

    def _cached(self, key, compute):
        """``compute()`` once per ``key`` and setting of kinds, bounds and device (searches ask on every call)."""
        # a tensor's version counter moves with every in-place change, so edited bounds are read again
        versions = tuple(getattr(b, "_version", None) for b in self._bounds) if isinstance(self._bounds, (tuple, list)) else None
        key = (key, id(self._kinds), id(self._bounds), versions, self.device)
        cache = self.__dict__.setdefault("_feature_cache", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def bounds(self, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bound of each feature, shape (F,) each, on :attr:`device`.

        Binary features lie within [0, 1] (given bounds are narrowed to it); others
        are unbounded unless given.
        """
        lower, upper = self._cached(("bounds", n_features), lambda: self._bounds_of(n_features))
        return lower.clone(), upper.clone()

    def replace(self, **changes) -> "FeatureModel":
        """A copy with some settings changed; a new featurizer brings its own names, kinds and bounds.

        Examples
        --------
        >>> from probekit.encode.mol import Morgan
        >>> adapter = FeatureModel(torch.nn.Linear(8, 1), output=0, device="cpu", kinds="continuous")
        >>> adapter.replace(featurizer=Morgan(radius=1, n_bits=8)).kinds(8)[0]
        'binary'
        """
        new = super().replace(**changes)
        featurizer = changes.get("featurizer")
        if featurizer is not None:  # what the constructor takes from a featurizer, unless given alongside it
            if "feature_names" not in changes:
                new.feature_names = list(featurizer.names)
            if "kinds" not in changes:
                new._kinds = _as_kinds(featurizer.kinds)
            if "bounds" not in changes:
                new._bounds = featurizer.bounds
        return new

    def _bounds_of(self, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        binary = self._kind_mask(n_features, "binary")
        lower = torch.where(binary, 0.0, -float("inf"))
        upper = torch.where(binary, 1.0, float("inf"))
        if self._bounds is not None:
            lo, hi = self._bounds
            try:
                lower = torch.as_tensor(lo, dtype=torch.float32).cpu().expand(n_features).clone()
                upper = torch.as_tensor(hi, dtype=torch.float32).cpu().expand(n_features).clone()
            except RuntimeError:
                raise ValueError(
                    f"bounds must be numbers or tensors of shape ({n_features},); got shapes "
                    f"{tuple(torch.as_tensor(lo).shape)} and {tuple(torch.as_tensor(hi).shape)}"
                ) from None
            # a binary feature is 0 or 1 whatever range it is given
            lower, upper = torch.where(binary, lower.clamp(min=0.0), lower), torch.where(binary, upper.clamp(max=1.0), upper)
            if (lower > upper).any():
                bad = int(torch.nonzero(lower > upper)[0])
                raise ValueError(
                    f"feature {self.names(n_features)[bad]!r} has lower bound above its upper bound"
                    + (" (binary features lie within [0, 1])" if bool(binary[bad]) else "")
                )
        return lower.to(self.device), upper.to(self.device)

    def encode(self, inputs) -> torch.Tensor:
        """Features (N, F) on :attr:`device`.

        Takes a tensor or array (N, F); a DataFrame with the feature columns; or,
        with a featurizer, SMILES, RDKit molecules or a :func:`probekit.read_molecules`
        DataFrame (a record that cannot be featurized raises ``ValueError`` naming it;
        use ``featurizer.featurize`` to keep bad records as error rows).
        """
        if isinstance(inputs, torch.Tensor):
            X = inputs
        elif isinstance(inputs, np.ndarray):
            X = torch.from_numpy(inputs)
        elif self.featurizer is not None and not (
            isinstance(inputs, pd.DataFrame) and self.feature_names and set(self.feature_names) <= set(inputs.columns)
        ):
            X = self.featurizer.transform(inputs)
        elif isinstance(inputs, pd.DataFrame):
            columns = self.feature_names or [c for c in inputs.columns if pd.api.types.is_numeric_dtype(inputs[c])]
            missing = [c for c in columns if c not in inputs.columns]
            if missing:
                raise ValueError(f"DataFrame lacks feature columns {missing[:5]}")
            X = torch.from_numpy(inputs[columns].to_numpy(dtype=np.float32, copy=True))
        else:
            raise TypeError(
                f"cannot turn {type(inputs).__name__} into features without a featurizer; pass a tensor or DataFrame"
            )
        X = torch.as_tensor(X, dtype=torch.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2:
            raise ValueError(f"feature input must have shape (N, F); got {tuple(X.shape)}")
        return X.to(self.device)


__all__ = ["Adapter", "SequenceModel", "FeatureModel", "ModelCallError", "describe_failure", "ModelOutputError", "model_exception"]
