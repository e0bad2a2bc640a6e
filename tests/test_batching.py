"""The batch-size probe: returns one of its candidates, caches, and stops on out-of-memory."""

import pytest
import torch

from probekit import FeatureModel, SequenceModel, outputs
from probekit._batching import clear_cache, pick_batch_size
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
    first = pick_batch_size(adapter, torch.zeros(2, 6), candidates=(2, 4), budget_s=0.05)
    n_calls = calls["n"]
    assert n_calls >= 2 * 3  # warm-up plus at least two timed passes per candidate probed (or an early stop)
    again = pick_batch_size(adapter, torch.zeros(5, 6), candidates=(2, 4), budget_s=0.05)
    assert again == first and calls["n"] == n_calls  # same model, same input shape: no new probe
    pick_batch_size(adapter, torch.zeros(2, 6), candidates=(2, 4, 8), budget_s=0.05)
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
