"""Shared fixtures: a cpu/cuda ``device`` fixture and small seeded inputs."""

import os
import sys

import pytest
import torch

# Tests use small models, for which one thread is fastest; it also keeps parallel runs from oversubscribing.
torch.set_num_threads(1)
try:  # numpy's BLAS too: two test processes on two cores, each with a spinning BLAS pool, slow each other down
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:
    pass

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test on the CPU and, when CUDA is available, on the GPU."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return request.param


@pytest.fixture(autouse=True)
def _forget_modules_written_by_tests(tmp_path_factory):
    """Drop modules a test imported from its temporary folders (a ``mymodel.py``), so the next test imports its own."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(base):
            del sys.modules[name]


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)



from probekit.testing import random_sequences  # noqa: E402,F401  (re-exported for tests)
