"""Scientific code often sets ``torch.set_default_dtype(torch.float64)``: every search still runs, on models
built under it, and agrees with the same search under the float32 default."""

import pytest
import torch
from torch import nn

from probekit import FeatureModel, certify, diagnose, goals, outputs, search


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _adapter():
    """The same function under either default: built in float32, then in the default's precision."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8, dtype=torch.float32), nn.ReLU(), nn.Linear(8, 2, dtype=torch.float32))
    return FeatureModel(model.to(torch.get_default_dtype()), output=outputs.logit(1), device="cpu")


def _inputs():
    return torch.rand(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float32).to(torch.get_default_dtype())


SEARCHES = {
    "pgd": lambda a, X: search.pgd(a, X, goal=goals.decrease(by=1.0), eps=0.3).x_adv,
    "pgd l2 with restarts": lambda a, X: search.pgd(a, X, goal=goals.decrease(by=1.0), eps=0.3, norm="l2",
                                                    restarts=2).x_adv,
    "fgsm": lambda a, X: search.fgsm(a, X, goal=goals.decrease(by=1.0), eps=0.3).x_adv,
    "min_perturbation": lambda a, X: search.min_perturbation(a, X, goal=goals.decrease(by=1.0), search_steps=4).norm,
    "random_perturbation": lambda a, X: search.random_perturbation(a, X, eps=0.3, n_draws=8).deltas,
    "margin": lambda a, X: torch.tensor(diagnose.margin(a, X, steps=10, certifier=None)["upper"].to_numpy(dtype=float)),
    "smoothing": lambda a, X: certify.smoothing(a, X, covariance=0.05 * torch.eye(6), n0=16, n=64).radius,
    "lipschitz": lambda a, X: torch.tensor([certify.lipschitz(a, X=X).upper]),
    "error_bound": lambda a, X: certify.error_bound(a, X, input_error=0.01),
    "smoothed pgd": lambda a, X: search.pgd(certify.Smoothed(a, sigma=0.2, n=16), X, goal=goals.decrease(by=1.0),
                                            eps=0.2, steps=3).x_adv,
}


@pytest.mark.parametrize("name", list(SEARCHES))
def test_searches_run_under_a_float64_default_and_agree_with_float32(name, float64_default):
    ours = SEARCHES[name](_adapter(), _inputs())  # a float64 model, as the default makes them
    torch.set_default_dtype(torch.float32)
    reference = SEARCHES[name](_adapter(), _inputs())
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours.float(), reference.float(), atol=1e-4, rtol=1e-4)


def test_masking_check_and_surrogate_run_under_a_float64_default(float64_default):
    adapter, X = _adapter(), _inputs()
    verdict = diagnose.gradient_masking(adapter, X, goal=goals.decrease(by=1.0), eps=0.2, steps=5, n_search=16,
                                        n_repeats=1)
    assert verdict is not None
    net = diagnose.distil_surrogate(adapter, X, eps=0.2, n_samples=32, train_steps=5)
    assert torch.isfinite(net(X.float())).all()


@pytest.mark.parametrize("name", list(SEARCHES))
def test_a_float32_model_under_a_float64_default(name, float64_default):
    # weights loaded from a file stay float32 while the default makes new tensors float64
    float32_model = _adapter().replace(model=_adapter().model.float(), dtype=torch.float32)
    ours = SEARCHES[name](float32_model, _inputs())
    torch.set_default_dtype(torch.float32)
    reference = SEARCHES[name](_adapter(), _inputs())
    torch.testing.assert_close(ours.float(), reference.float(), atol=1e-4, rtol=1e-4)


def test_k_substitution_bounds_of_a_float32_sequence_model_under_a_float64_default(float64_default):
    from probekit import SequenceModel
    from probekit.testing import ToyConv, random_sequences

    model = ToyConv().float()
    adapter = SequenceModel(model, output=outputs.logit(1), device="cpu", dtype=torch.float32)
    X = adapter.encode(random_sequences(3, 30, seed=1))
    ours = certify.crown(adapter, X, k=1)
    torch.set_default_dtype(torch.float32)
    reference = certify.crown(SequenceModel(model, output=outputs.logit(1), device="cpu"), X, k=1)
    torch.testing.assert_close(ours.lower.float(), reference.lower, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.upper.float(), reference.upper, atol=1e-5, rtol=1e-5)


def test_demo_training_gives_the_same_weights_under_a_float64_default(float64_default):
    from probekit.datasets import train_dna_demo
    from probekit.mol_demo import train_mol_demo

    dna, _ = train_dna_demo(n_train=64, epochs=1, seed=3)
    mol, _ = train_mol_demo(seed=0, epochs=1)
    torch.set_default_dtype(torch.float32)
    dna_ref, _ = train_dna_demo(n_train=64, epochs=1, seed=3)
    mol_ref, _ = train_mol_demo(seed=0, epochs=1)
    for ours, ref in ((dna, dna_ref), (mol, mol_ref)):
        for name, tensor in ours.state_dict().items():
            assert torch.equal(tensor, ref.state_dict()[name]), name
