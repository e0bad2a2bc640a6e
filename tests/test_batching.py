"""The batch-size probe: returns one of its candidates, caches, and stops on out-of-memory."""

import pytest
import torch

from probekit import FeatureModel, SequenceModel, outputs
from probekit._batching import clear_cache, memory_per_row, pick_batch_size
from probekit.testing import ToyConv


def test_returns_one_of_the_candidates(device):
    adapter = SequenceModel(ToyConv(), output=0, device=device)
    X = adapter.encode(["ACGTACGTACGTACGTACGT", "TTTTACGTAAAACCCCGGGG"])
    clear_cache()
    size = pick_batch_size(adapter, X, candidates=(4, 8, 16, 32), budget_s=0.3)
    assert size in (4, 8, 16, 32)


def test_cached_per_model_and_shape():
    calls = {"n": 0}

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(6, 1)

        def forward(self, x):
            calls["n"] += 1
            return self.linear(x)

    adapter = FeatureModel(Counting(), output=outputs.value(0), device="cpu")
    first = pick_batch_size(adapter, torch.zeros(2, 6), candidates=(2, 4), budget_s=0.05, floor=1)
    n_calls = calls["n"]
    assert n_calls >= 2 * 3  # warm-up plus at least two timed passes per candidate probed (or an early stop)
    again = pick_batch_size(adapter, torch.zeros(5, 6), candidates=(2, 4), budget_s=0.05, floor=1)
    assert again == first and calls["n"] == n_calls  # same model, same input shape: no new probe
    pick_batch_size(adapter, torch.zeros(2, 6), candidates=(2, 4, 8), budget_s=0.05, floor=1)
    assert calls["n"] > n_calls  # other candidates: probed again


def test_out_of_memory_stops_the_probe():
    class OOMAbove(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, x):
            if x.shape[0] > 8:
                raise RuntimeError("CUDA out of memory (simulated)")
            return self.linear(x)

    adapter = FeatureModel(OOMAbove(), output=outputs.value(0), device="cpu")
    assert pick_batch_size(adapter, torch.zeros(1, 3), candidates=(4, 8, 16, 32), budget_s=0.05) in (4, 8)


def test_other_errors_propagate_and_bad_candidates_are_rejected():
    adapter = FeatureModel(torch.nn.Linear(3, 1), output=outputs.value(0), device="cpu")
    with pytest.raises(Exception):
        pick_batch_size(adapter, torch.zeros(1, 5), candidates=(4,), budget_s=0.05)
    with pytest.raises(ValueError):
        pick_batch_size(adapter, torch.zeros(1, 3), candidates=(0, 4))


class FakeClock:
    """A clock that moves only when the model runs: ``cost(batch)`` seconds per call, plus any ``delays``."""

    def __init__(self, cost):
        self.now = 0.0
        self.cost = cost
        self.delays = {}  # (batch size, n-th call of that size) -> extra seconds
        self.calls = {}

    def __call__(self):
        return self.now

    def run(self, size):
        self.calls[size] = self.calls.get(size, 0) + 1
        self.now += self.cost(size) + self.delays.get((size, self.calls[size]), 0.0)


def clocked_adapter(monkeypatch, cost, **kwargs):
    from probekit import _batching

    clock = FakeClock(cost)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x):
            clock.run(x.shape[0])
            return self.linear(x)

    monkeypatch.setattr(_batching, "_clock", clock)
    return FeatureModel(Model(), output=outputs.value(0), device="cpu", **kwargs), clock


def overhead_bound(size):
    """A pass costs a fixed overhead plus a little per row: the larger the batch, the higher the throughput."""
    return 1e-3 + 1e-6 * size


def test_one_slowed_pass_does_not_change_the_pick(monkeypatch):
    adapter, clock = clocked_adapter(monkeypatch, overhead_bound)
    calm = pick_batch_size(adapter, torch.zeros(1, 4), budget_s=100.0)
    assert calm == 512
    for size in (64, 256, 512):
        clear_cache()
        adapter, clock = clocked_adapter(monkeypatch, overhead_bound)
        # another process stalls two of the timed passes (calls 1 and 2 are the memory probe's and the warm-up)
        clock.delays = {(size, 3): 5.0, (size, 4): 5.0}
        assert pick_batch_size(adapter, torch.zeros(1, 4), budget_s=100.0) == calm


def test_load_never_pushes_the_pick_below_the_floor(monkeypatch):
    def loaded(size):  # a loaded machine: every pass of 16 rows or more is a hundred times slower
        return overhead_bound(size) * (100 if size >= 16 else 1)

    adapter, clock = clocked_adapter(monkeypatch, loaded)
    assert pick_batch_size(adapter, torch.zeros(1, 4), budget_s=1.0) >= 64
    clear_cache()
    adapter, clock = clocked_adapter(monkeypatch, loaded)
    assert pick_batch_size(adapter, torch.zeros(1, 4), budget_s=1.0, floor=1) == 8  # what timing alone picks


def test_the_automatic_batch_size_of_a_loaded_machine_keeps_the_floor(monkeypatch):
    adapter, clock = clocked_adapter(monkeypatch, lambda size: 1.0 * size**2, batch_size="auto")
    adapter.score(torch.zeros(3, 4))  # small batches have by far the best throughput here
    assert adapter.batch_size == 64


def test_memory_bounds_the_batch_size():
    clear_cache()
    adapter = FeatureModel(torch.nn.Linear(256, 256), output=outputs.value(0), device="cpu")
    X = torch.zeros(1, 256)
    per_row = memory_per_row(adapter, X)
    assert 2 * 256 * 4 <= per_row <= 4 * 256 * 4  # input, layer output (= model output)
    assert pick_batch_size(adapter, X, memory_bytes=int(40 * per_row), budget_s=0.05) == 32  # below the floor
    assert pick_batch_size(adapter, X, memory_bytes=int(300 * per_row), budget_s=0.05) in (64, 128, 256)


def test_the_automatic_batch_size_fits_the_cpu_memory_budget(monkeypatch):
    from probekit import _batching

    clear_cache()
    monkeypatch.setattr(_batching, "CPU_MEMORY_BUDGET", 100 * 4 * 1000)  # about 100 rows of the wide layer

    model = torch.nn.Sequential(torch.nn.Linear(4, 1000), torch.nn.Linear(1000, 1))  # 4000 bytes per row inside
    adapter = FeatureModel(model, output=0, device="cpu", batch_size="auto")
    adapter.score(torch.zeros(3, 4))
    assert adapter.batch_size <= 64


@pytest.mark.gpu
def test_a_cuda_batch_fits_in_half_the_free_memory():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    from probekit._batching import memory_budget

    clear_cache()
    wide = torch.nn.Sequential(torch.nn.Linear(16, 1 << 18), torch.nn.Linear(1 << 18, 1))  # 1 MiB per row inside
    adapter = FeatureModel(wide, output=0, device="cuda")
    X = torch.randn(1, 16, device="cuda")
    per_row = memory_per_row(adapter, X)
    assert per_row >= (1 << 18) * 4
    size = pick_batch_size(adapter, X, budget_s=0.3)
    assert size >= 256 and size * per_row <= memory_budget(adapter.device)
    assert pick_batch_size(adapter, X, memory_bytes=int(100 * per_row), budget_s=0.3, floor=1) <= 100
