"""Shared fixtures: a cpu/cuda ``device`` fixture and small seeded inputs."""

import os

import pytest
import torch

# Tests use small models, for which one thread is fastest; it also keeps parallel runs from oversubscribing.
torch.set_num_threads(1)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test on the CPU and, when CUDA is available, on the GPU."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return request.param


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)



from probekit.testing import random_sequences  # noqa: E402,F401  (re-exported for tests)
