"""Shared pieces of the benchmarks: the reference models, timing, and table printing."""

from __future__ import annotations

import os
import platform
import random
import statistics
import time

import torch
from torch import nn


class Basset(nn.Module):
    """Basset-like CNN of the published peer figures (17.9 M multiply-accumulates per 1,000 bp)."""

    def __init__(self, n_outputs: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(4, 64, 19, padding=9), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(64, 64, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(64, 64, 7, padding=3), nn.ReLU(),
        )
        self.linear = nn.Linear(64, n_outputs)

    def forward(self, x):
        return self.linear(self.body(x).max(dim=-1).values)


class DilatedResidual(nn.Module):
    """A second architecture: dilated residual convolutions, average pooling and a dense head."""

    def __init__(self, length: int = 2000, channels: int = 32):
        super().__init__()
        self.stem = nn.Conv1d(4, channels, 15, padding=7)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, padding=d) for d in (1, 2, 4, 8))
        self.pool = nn.AvgPool1d(8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * (length // 8), 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for conv in self.blocks:
            x = x + torch.relu(conv(x))
        return self.head(self.pool(x))


class DeepSTARRLike(nn.Module):
    """Short enhancer sequences (249 bp): four convolutions with batch norm and pooling, then two dense layers."""

    def __init__(self, length: int = 249):
        super().__init__()

        def block(c_in, c_out, k):
            return [nn.Conv1d(c_in, c_out, k, padding=k // 2), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(2)]

        self.body = nn.Sequential(*block(4, 246, 7), *block(246, 60, 3), *block(60, 60, 5), *block(60, 120, 3))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(120 * (length // 16), 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2)
        )

    def forward(self, x):
        return self.head(self.body(x))


class ConvAttention(nn.Module):
    """Convolutions and pooling, then self-attention over all positions and a mean: a non-local tail."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(4, channels, 15, padding=7), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU(), nn.MaxPool1d(4),
        )
        self.attention = nn.MultiheadAttention(channels, 4, batch_first=True)
        self.linear = nn.Linear(channels, 1)

    def forward(self, x):
        h = self.body(x).transpose(1, 2)
        a, _ = self.attention(h, h, h, need_weights=False)
        return self.linear((h + a).mean(dim=1))


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model.eval()


def random_one_hot(n: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=g)
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float().contiguous()


def interleaved(runs: dict, repeats: int) -> dict:
    """Run each callable ``repeats`` times, round-robin; return the list of seconds per name.

    Each round takes the methods in a new (seeded) random order, so that no method always
    follows the same one (what a run leaves behind, e.g. the allocator's state, affects the next).
    """
    times = {name: [] for name in runs}
    order = list(runs)
    shuffler = random.Random(0)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            fn = runs[name]
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()  # GPU work is asynchronous: a run ends when its kernels have finished
            times[name].append(time.perf_counter() - start)
    return times


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median(values) -> float:
    return statistics.median(values)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {gpu}, load average {load:.2f} at start"
    )


def table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` with ``columns``."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def try_import(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except Exception:  # noqa: BLE001 - a missing peer skips its rows
        return None


def incremental_engine_wired() -> bool:
    """True when probekit's single-substitution scan already goes through the incremental engine."""
    import inspect

    from probekit.search import discrete

    return "incremental" in inspect.getsource(discrete._single_substitution_scores)


class use_incremental_engine:
    """Route probekit's single-substitution scan through the incremental engine (fallback kept).

    A no-op when the library already does so; lets the benchmarks show the engine's
    effect on ISM, greedy and beam searches either way.
    """

    def __enter__(self):
        from probekit.search import discrete
        from probekit.search.incremental import incremental_single_substitutions

        self.module = discrete
        self.original = discrete._single_substitution_scores
        if incremental_engine_wired():
            return self
        original = self.original

        def scan(adapter, X, positions, fn, *, skip=None, progress=False):
            fast = incremental_single_substitutions(adapter, X, positions, fn, skip=skip)
            return fast if fast is not None else original(adapter, X, positions, fn, skip=skip, progress=progress)

        discrete._single_substitution_scores = scan
        return self

    def __exit__(self, *exc):
        self.module._single_substitution_scores = self.original
        return False
