"""Adversarial training: the inner maximisation and its effect against their closed forms on linear models."""

import pytest
import torch
import torch.nn.functional as F

from probekit import FeatureModel, SequenceModel, outputs
from probekit.encode.dna import one_hot
from probekit.testing import ToyConv, random_sequences
from probekit.train import adversarial, fit, inner_max, misclassify, substitutions
from probekit.train.loop import Step, forward


def _linear(w, b=0.0):
    model = torch.nn.Linear(len(w), 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([w]))
        model.bias.fill_(b)
    return model


def _data(n=64, f=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, f, generator=g)
    w = torch.randn(f, generator=g)
    y = ((X @ w + 0.3 * torch.randn(n, generator=g)) > 0).long()
    return X, y


def test_inner_max_of_logistic_loss_is_the_closed_form_linf_shift():
    X, y = _data()
    model = _linear([1.5, -0.5, 0.25, -2.0, 1.0], 0.1)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    eps = 0.3
    x_adv = inner_max(adapter, X, y, eps=eps, norm="linf", steps=10, random_start=False)
    w = model.weight.detach()[0]
    s = (2 * y - 1).float()
    assert torch.allclose(x_adv - X, -eps * s[:, None] * torch.sign(w)[None], atol=1e-6)
    with torch.no_grad():
        loss = F.binary_cross_entropy_with_logits(model(x_adv)[:, 0], y.float(), reduction="none")
        closed = F.softplus(-(s * model(X)[:, 0]) + eps * w.abs().sum())
    assert torch.allclose(loss, closed, atol=1e-5)


def test_inner_max_l2_moves_against_the_weights_by_eps():
    X, y = _data(n=16)
    model = _linear([3.0, 4.0, 0.0, 0.0, 0.0])
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    x_adv = inner_max(adapter, X, y, eps=0.5, norm="l2", steps=10, random_start=False)
    s = (2 * y - 1).float()
    expected = -0.5 * s[:, None] * torch.tensor([0.6, 0.8, 0.0, 0.0, 0.0])[None]
    assert torch.allclose(x_adv - X, expected, atol=1e-5)


def test_inner_max_of_squared_error_is_the_closed_form():
    X, _ = _data(n=32)
    model = _linear([1.0, -2.0, 0.5, 0.0, 3.0], -0.2)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    t = torch.randn(32, generator=torch.Generator().manual_seed(3))
    eps = 0.1
    x_adv = inner_max(adapter, X, t, eps=eps, steps=8, random_start=False)
    with torch.no_grad():
        r = model(X)[:, 0] - t
        worst = (r.abs() + eps * model.weight.abs().sum()) ** 2
        assert torch.allclose((model(x_adv)[:, 0] - t) ** 2, worst, atol=1e-4)


def test_fgsm_is_one_step_of_size_eps():
    X, y = _data(n=8)
    adapter = FeatureModel(_linear([1.0, -1.0, 2.0, 0.5, -0.5]), output=outputs.value(0), device="cpu")
    x_adv = inner_max(adapter, X, y, eps=0.2, steps=1, random_start=False)
    assert torch.allclose((x_adv - X).abs(), torch.full_like(X, 0.2), atol=1e-6)


def test_inner_max_stays_in_bounds_and_mask():
    X = torch.rand(10, 4)
    adapter = FeatureModel(_linear([1.0, -1.0, 2.0, 0.5]), output=outputs.value(0), device="cpu",
                           bounds=(torch.zeros(4), torch.ones(4)))
    mask = torch.tensor([True, True, False, True])
    x_adv = inner_max(adapter, X, torch.ones(10, dtype=torch.long), eps=0.5, steps=5, mask=mask)
    assert bool((x_adv >= 0).all() and (x_adv <= 1).all())
    assert torch.equal(x_adv[:, 2], X[:, 2])
    assert float((x_adv - X).abs().max()) <= 0.5 + 1e-6


def _closed_form_objective(eps):
    def objective(adapter, x, y, step: Step):
        w = adapter.model.weight[0]
        s = (2 * y - 1).float()
        return F.softplus(-(s * forward(adapter, x)[:, 0]) + eps * w.abs().sum()).mean(), {}

    return objective


def test_adversarial_training_of_a_linear_classifier_follows_the_closed_form_and_shrinks_weights():
    X, y = _data(n=96)
    eps = 0.25
    adapter = FeatureModel(_linear([0.1, -0.2, 0.3, 0.05, -0.1]), output=outputs.value(0), device="cpu")
    common = {"epochs": 3, "batch_size": 32, "optimizer": "sgd", "lr": 0.5, "seed": 1}
    pgd_model, history = fit(adapter, (X, y), objective=adversarial(eps, steps=10, random_start=False), **common)
    closed_model, _ = fit(adapter, (X, y), objective=_closed_form_objective(eps), **common)
    standard_model, _ = fit(adapter, (X, y), **common)
    assert torch.allclose(pgd_model.weight, closed_model.weight, atol=1e-4)
    assert torch.allclose(pgd_model.bias, closed_model.bias, atol=1e-4)
    assert float(pgd_model.weight.detach().abs().sum()) < float(standard_model.weight.detach().abs().sum())
    assert (history["eps"] == eps).all()


def test_trades_and_schedules_run():
    X, y = _data(n=32)
    adapter = FeatureModel(torch.nn.Linear(5, 2), output=outputs.logit(1), device="cpu")
    _, history = fit(adapter, (X, y), objective=adversarial(0.2, steps=3, trades=6.0, warmup=0.5, ramp_share=0.0),
                     epochs=2, batch_size=32)
    assert history["eps"].tolist() == [0.0, 0.2]
    assert history["adv_loss"].iloc[1] >= 0


def test_discrete_training_edits_at_most_k_bases():
    seqs = random_sequences(8, 12, seed=0)
    X, y = one_hot(seqs), torch.tensor([0, 1] * 4)
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    for method in ("gradient", "greedy"):
        _, history = fit(adapter, (X, y), objective=substitutions(2, method=method), epochs=1, batch_size=8)
        assert 0 <= history["edits"].iloc[0] <= 2


def test_misclassify_goal_is_bound_to_labels():
    from probekit.search import min_substitutions

    seqs = random_sequences(4, 10, seed=1)
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    calls = adapter.predict(seqs).argmax(1)
    r = min_substitutions(adapter, seqs, goal=misclassify(1 - calls), max_edits=2, method="greedy")
    assert bool(r.success.all()) and r.n_edits.tolist() == [0, 0, 0, 0]


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="eps"):
        adversarial(-0.1)
    with pytest.raises(ValueError, match="k must be"):
        substitutions(-1)
    adapter = FeatureModel(torch.nn.Linear(3, 1), output=outputs.value(0), device="cpu")
    with pytest.raises(ValueError, match="eps"):
        inner_max(adapter, torch.zeros(2, 3), torch.zeros(2), eps=-1.0)
    with pytest.raises(ValueError, match="2 inputs but 3"):
        inner_max(adapter, torch.zeros(2, 3), torch.zeros(3), eps=0.1)
    with pytest.raises(TypeError, match="SequenceModel"):
        fit(adapter, (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), objective=substitutions(1))
