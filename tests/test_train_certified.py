"""Certified training: sound, differentiable bounds, and IBP training raising IBP-certified accuracy."""

import pytest
import torch

from probekit import FeatureModel, SequenceModel, certify, outputs
from probekit.encode.dna import one_hot
from probekit.testing import ToyConv, random_sequences
from probekit.train import certified, fit, worst_case_bounds
from probekit.train.certified import certified_share, robust_loss


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.randn(n, 2, generator=g) * 0.6 + (2 * y[:, None] - 1) * torch.tensor([1.0, 0.5])
    return X, y


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "crown"])
def test_bounds_contain_sampled_points_and_are_differentiable(method):
    X, y = _blobs(8, 0)
    model = _mlp()
    adapter = FeatureModel(model, output=outputs.logit(1), device="cpu")
    lower, upper = worst_case_bounds(adapter, X, y, eps=0.3, method=method, beta=0.5)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(20):
            out = model(X + (torch.rand(X.shape, generator=g) * 2 - 1) * 0.3)
            margins = out.gather(1, y[:, None]) - out
            assert bool((margins >= lower - 1e-5).all() and (margins <= upper + 1e-5).all())
    robust_loss(lower, upper, y).mean().backward()
    assert model[0].weight.grad is not None and bool(model[0].weight.grad.abs().sum() > 0)


def test_regression_bounds_give_the_worst_squared_error():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.zero_()
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    X, t = torch.zeros(1, 2), torch.tensor([0.5])
    lower, upper = worst_case_bounds(adapter, X, t, eps=0.1)
    assert torch.allclose(lower, torch.tensor([[-0.3]])) and torch.allclose(upper, torch.tensor([[0.3]]))
    assert torch.allclose(robust_loss(lower, upper, t), torch.tensor([0.64]))


def _separable(n, seed, d=10):
    g = torch.Generator().manual_seed(seed)
    w = torch.ones(d) / d**0.5
    X = torch.randn(n, d, generator=g)
    y = (X @ w > 0).long()
    return X + (2 * y[:, None] - 1) * w * 0.5, y


def test_certified_training_raises_ibp_certified_accuracy():
    X, y = _separable(256, 0)
    X_test, y_test = _separable(200, 1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 2))
    adapter = FeatureModel(model, output=outputs.logit(1), device="cpu")
    eps = 0.15
    common = {"epochs": 10, "batch_size": 64, "lr": 0.01, "seed": 0}
    plain, _ = fit(adapter, (X, y), **common)
    robust, history = fit(adapter, (X, y), objective=certified(eps, warmup=0.1, ramp_share=0.5), **common)

    def certified_accuracy(trained):
        a = adapter.replace(model=trained)
        b = certify.ibp(a, X_test, eps=eps)
        right = a.predict(X_test).argmax(1) == y_test
        return float((b.certified & right).float().mean())

    assert certified_accuracy(robust) > certified_accuracy(plain) + 0.08
    assert history["eps"].iloc[-1] == pytest.approx(eps)
    assert history["kappa"].iloc[-1] == pytest.approx(0.5)


def test_certified_training_over_substitutions_runs_on_dna():
    seqs = random_sequences(8, 12, seed=0)
    X, y = one_hot(seqs), torch.tensor([0, 1] * 4)
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    _, history = fit(adapter, (X, y), objective=certified(k=1, method="crown-ibp"), epochs=2, batch_size=8)
    assert history["k"].tolist() == [1, 1] and 0 <= history["certified"].iloc[-1] <= 1


def test_certified_share_ignores_the_own_class():
    assert certified_share(torch.tensor([[0.0, 0.5], [-0.1, 0.0]]), torch.tensor([0, 1])) == 0.5


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="eps must be non-negative"):
        certified(-0.1)
    with pytest.raises(ValueError, match="k must be"):
        certified(k=-1)
    with pytest.raises(ValueError, match="exactly one"):
        certified(0.1, k=1)
    adapter = FeatureModel(_mlp(), output=outputs.logit(1), device="cpu")
    with pytest.raises(ValueError, match="3 inputs but 2"):
        worst_case_bounds(adapter, torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), eps=0.1)
    with pytest.raises(ValueError, match="labels must lie"):
        worst_case_bounds(adapter, torch.zeros(1, 2), torch.tensor([5]), eps=0.1)
