"""Toy models with known answers, and :func:`check_adapter`, a contract suite for adapters.

Examples
--------
>>> from probekit import SequenceModel
>>> adapter = SequenceModel(ToyConv(), output=0, device="cpu")
>>> report = check_adapter(adapter, adapter.encode(["ACGTACGTACGT", "TTTTACGTAAAA"]))
>>> bool(report["passed"].all())
True
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn


class ToyConv(nn.Module):
    """Small CNN over (N, 4, L): conv, ReLU, global max pool, linear to ``n_outputs`` logits."""

    def __init__(self, n_outputs: int = 2, channels: int = 8, kernel: int = 5, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv1d(4, channels, kernel, padding=kernel // 2)
        self.linear = nn.Linear(channels, n_outputs)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)

    def forward(self, x):
        return self.linear(torch.relu(self.conv(x)).max(dim=-1).values)


class ToyNLC(nn.Module):
    """Model taking (N, L, 4): a per-position weight matrix read out as one score per sequence."""

    def __init__(self, length: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(length, 4, generator=generator))

    def forward(self, x):
        return (x * self.weight).sum(dim=(1, 2))[:, None]


class MotifCounter(nn.Module):
    """Counts exact matches of ``motif`` (hand-computable): output (N, 1) = number of matches.

    A substitution inside a match removes it, so minimal edits are known exactly.
    """

    def __init__(self, motif: str = "TGACTCA"):
        super().__init__()
        from .encode.dna import one_hot

        self.register_buffer("pwm", one_hot([motif])[0])
        self.k = len(motif)

    def forward(self, x):
        hits = torch.nn.functional.conv1d(x, self.pwm[None])
        return torch.relu(hits - (self.k - 1)).sum(dim=-1)


class ProfileConv(nn.Module):
    """Multi-output model with per-position (profile) output (N, tracks, L)."""

    def __init__(self, tracks: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv1d(4, tracks, 7, padding=3)

    def forward(self, x):
        return torch.nn.functional.softplus(self.conv(x))


def base_at(position: int, base: str, *, alphabet: str = "ACGT"):
    """Which one-hot inputs (N, 4, L) carry ``base`` at ``position``: a function ``x -> bool (N,)``.

    Examples
    --------
    >>> from probekit.encode.dna import one_hot
    >>> base_at(1, "C")(one_hot(["ACGT", "AGGT"])).tolist()
    [True, False]
    """
    channel = alphabet.upper().index(base.upper())
    return lambda x: x[:, channel, position] > 0.5


class RaisesOn(nn.Module):
    """Wraps ``model`` and raises ``ValueError(message)`` on any batch holding an input where ``when(x)`` holds.

    A model with bad records: the batch fails as a whole, the other inputs are fine.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> model = RaisesOn(ToyConv(), base_at(2, "G"), message="bad token at 2")
    >>> scores, problems = SequenceModel(model, output=0, device="cpu").screen(["ACGT", "AAAA"])
    >>> problems
    ['the model raised ValueError: bad token at 2', None]
    """

    def __init__(self, model, when, *, message: str = "bad input"):
        super().__init__()
        self.model, self.when, self.message = model, when, message

    def forward(self, x):
        if bool(self.when(x).any()):
            raise ValueError(self.message)
        return self.model(x)


class NonFiniteOn(nn.Module):
    """Wraps ``model``; every output of an input where ``when(x)`` holds is ``value`` (NaN by default)."""

    def __init__(self, model, when, *, value: float = float("nan")):
        super().__init__()
        self.model, self.when, self.value = model, when, value

    def forward(self, x):
        y = self.model(x)
        hit = self.when(x).reshape((-1,) + (1,) * (y.ndim - 1))
        return torch.where(hit, torch.full_like(y, self.value), y)


class DropoutInEval(nn.Module):
    """Wraps ``model`` with functional dropout (``training=True``) on its input: random even in eval mode."""

    def __init__(self, model, p: float = 0.5):
        super().__init__()
        self.model, self.p = model, p

    def forward(self, x):
        return self.model(torch.nn.functional.dropout(x, self.p, training=True))


class MalformedOutput(nn.Module):
    """Wraps ``model`` (output (N, C)) and breaks its output's shape.

    ``how`` is ``"reduce"`` (mean over the batch, (C,)), ``"one_row"`` ((1, C)),
    ``"extra_row"`` ((N + 1, C)), ``"transpose"`` ((C, N)) or ``"scalar"`` (0-d).
    """

    HOWS = ("reduce", "one_row", "extra_row", "transpose", "scalar")

    def __init__(self, model, how: str):
        super().__init__()
        if how not in self.HOWS:
            raise ValueError(f"how must be one of {self.HOWS}, got {how!r}")
        self.model, self.how = model, how

    def forward(self, x):
        y = self.model(x)
        if self.how == "reduce":
            return y.mean(0)
        if self.how == "one_row":
            return y.mean(0, keepdim=True)
        if self.how == "extra_row":
            return torch.cat([y, y[:1]])
        if self.how == "transpose":
            return y.T
        return y.sum()


def random_sequences(n: int, length: int, *, seed: int = 0) -> list[str]:
    """``n`` random ACGT strings of one ``length``, reproducible from ``seed``.

    Examples
    --------
    >>> random_sequences(2, 5, seed=1) == random_sequences(2, 5, seed=1)
    True
    """
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=generator)
    return ["".join("ACGT"[i] for i in row) for row in idx.tolist()]


def _run(name: str, fn) -> dict:
    try:
        detail = fn()
        return {"check": name, "passed": True, "detail": detail or ""}
    except Exception as error:  # noqa: BLE001 - every failure is reported with its reason
        return {"check": name, "passed": False, "detail": f"{type(error).__name__}: {error}"}


def check_adapter(adapter, X, *, atol: float = 1e-5, rtol: float = 1e-4, raise_on_failure: bool = True) -> pd.DataFrame:
    """Run the adapter contract on inputs ``X`` and return one row per check.

    Checks: the score has shape (N,) and a floating dtype and is finite; scores
    do not depend on the batch size (1 vs. all); repeated calls agree
    (deterministic eval mode); the model's device and train mode are restored;
    gradients have the input's shape; a CUDA round trip matches the CPU when
    CUDA is available.

    Parameters
    ----------
    adapter : SequenceModel, FeatureModel or MoleculeModel
    X : torch.Tensor of shape (N, ...), or inputs the adapter encodes (sequences, SMILES)
        At least two inputs.
    raise_on_failure : bool
        Raise an ``AssertionError`` listing each failed check and its reason.

    Returns
    -------
    pandas.DataFrame with columns ``check``, ``passed``, ``detail``
    """
    X = adapter.encode(X) if not isinstance(X, torch.Tensor) else X
    if X.shape[0] < 2:
        raise ValueError("check_adapter needs at least two inputs")
    model = adapter.model
    is_module = isinstance(model, nn.Module)
    state_before = (
        (next(iter(model.parameters()), torch.empty(0)).device, model.training) if is_module else None
    )
    reference = {}

    def shape_and_dtype():
        score = adapter.score(X)
        reference["score"] = score
        assert score.shape == (X.shape[0],), f"score has shape {tuple(score.shape)}, expected ({X.shape[0]},)"
        assert score.is_floating_point(), f"score has dtype {score.dtype}, expected a floating dtype"
        assert torch.isfinite(score).all(), "score has non-finite values"
        return f"shape {tuple(score.shape)}, dtype {score.dtype}"

    def batch_invariance():
        one = adapter.replace(batch_size=1).score(X)
        assert torch.allclose(one, reference["score"], atol=atol, rtol=rtol), (
            f"batch size 1 and {adapter.batch_size} disagree by up to {(one - reference['score']).abs().max():.3g}"
        )

    def deterministic():
        again = adapter.score(X)
        assert torch.allclose(again, reference["score"], atol=atol, rtol=rtol), (
            "two calls gave different scores: the model is not deterministic in eval mode (dropout?)"
        )

    def state_restored():
        if not is_module:
            return "plain callable: nothing to restore"
        now = (next(iter(model.parameters()), torch.empty(0)).device, model.training)
        assert now == state_before, f"model state changed from {state_before} to {now}"

    def gradient_shape():
        if not isinstance(X, torch.Tensor):
            return ("skipped: molecules have no input gradient (graph models are differentiated in their atom "
                    "features by probekit.molmodel.atom_importance(method='gradient'))")  # fmt: skip
        _, grad = adapter.gradient(X)
        assert grad.shape == X.shape, f"gradient shape {tuple(grad.shape)} differs from input {tuple(X.shape)}"
        assert torch.isfinite(grad).all(), "gradient has non-finite values"

    def device_round_trip():
        if not torch.cuda.is_available():
            return "skipped: CUDA not available"
        other = "cpu" if adapter.device.type == "cuda" else "cuda"
        inputs = X.to(other) if isinstance(X, torch.Tensor) else X
        moved = adapter.replace(device=other).score(inputs).to(reference["score"].device)
        assert torch.allclose(moved, reference["score"], atol=1e-3, rtol=1e-3), "CPU and CUDA scores disagree"

    checks = [
        ("score shape and dtype", shape_and_dtype),
        ("batch-size invariance", batch_invariance),
        ("deterministic", deterministic),
        ("model state restored", state_restored),
        ("gradient shape", gradient_shape),
        ("device round trip", device_round_trip),
    ]
    rows = []
    for name, fn in checks:
        rows.append(_run(name, fn))
        if name == "score shape and dtype" and not rows[-1]["passed"]:
            break
    report = pd.DataFrame(rows)
    if raise_on_failure and not report["passed"].all():
        failed = report[~report["passed"]]
        raise AssertionError(
            "adapter contract failed:\n" + "\n".join(f"- {r.check}: {r.detail}" for r in failed.itertuples())
        )
    return report


__all__ = [
    "ToyConv", "ToyNLC", "MotifCounter", "ProfileConv", "check_adapter", "random_sequences",
    "base_at", "RaisesOn", "NonFiniteOn", "DropoutInEval", "MalformedOutput",
]
