"""The training loop: seeded, resumable, leaves its input alone, and says clearly what does not fit."""

import pytest
import torch

from probekit import FeatureModel, outputs
from probekit.train import fit, ramp
from probekit.train.loop import per_example_loss


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(96, 4, generator=g), torch.randint(0, 3, (96,), generator=g)


def _loader():
    X, y = _data()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16, shuffle=True)


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    model = _model()
    full, full_history = fit(model, _loader(), epochs=4, seed=3, device="cpu")
    path = tmp_path / "run.pt"
    fit(model, _loader(), epochs=2, seed=3, device="cpu", checkpoint=path)
    resumed, history = fit(model, _loader(), epochs=4, seed=3, device="cpu", checkpoint=path)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["loss"].tolist() == full_history["loss"].tolist()


def test_same_seed_same_weights_and_input_model_untouched():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    a, _ = fit(model, _data(), epochs=2, seed=1, device="cpu")
    b, _ = fit(model, _data(), epochs=2, seed=1, device="cpu")
    c, _ = fit(model, _data(), epochs=2, seed=2, device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    assert all(torch.equal(x, y) for x, y in zip(before, model.parameters()))
    assert model.training and not a.training


def test_adapter_settings_are_used():
    adapter = FeatureModel(_model(), output=outputs.logit(1), device="cpu")
    model, history = fit(adapter, _data(), epochs=1, optimizer="sgd", lr=0.1, progress=False)
    assert next(model.parameters()).device.type == "cpu" and len(history) == 1


def test_ramp_schedule():
    assert ramp(0.0, start=1.0, end=0.5, begin=0.2, until=0.6) == 1.0
    assert ramp(0.4, start=1.0, end=0.5, begin=0.2, until=0.6) == 0.75
    assert ramp(1.0, start=1.0, end=0.5, begin=0.2, until=0.6) == 0.5


def test_shape_mismatch_and_bad_settings_give_clear_errors():
    X, y = _data()
    with pytest.raises(ValueError, match="cannot train on the first batch"):
        fit(torch.nn.Linear(7, 3), (X, y), device="cpu")
    with pytest.raises(ValueError, match="labels must lie in"):
        fit(torch.nn.Linear(4, 2), (X, y), device="cpu")
    with pytest.raises(ValueError, match="96 rows but y has 95"):
        fit(torch.nn.Linear(4, 3), (X, y[:95]), device="cpu")
    with pytest.raises(ValueError, match="targets have 2"):
        per_example_loss("mse")(torch.zeros(3, 1), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="epochs"):
        fit(torch.nn.Linear(4, 3), (X, y), epochs=-1, device="cpu")
    with pytest.raises(ValueError, match="optimizer"):
        fit(torch.nn.Linear(4, 3), (X, y), optimizer="lbfgs2", device="cpu")


def test_robust_objectives_train_on_the_adapter_device(device):
    from probekit.train import adversarial, certified

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    adapter = FeatureModel(net, output=outputs.logit(1), device=device)
    for objective in (adversarial(0.1, steps=2), adversarial(0.1, steps=2, trades=1.0), certified(0.1)):
        model, history = fit(adapter, _data(), objective=objective, epochs=1, batch_size=32)
        assert next(model.parameters()).device.type == device and len(history) == 1
    assert next(net.parameters()).device.type == "cpu"
