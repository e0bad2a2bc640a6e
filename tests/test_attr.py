"""Attributions: probekit's wrappers against captum called directly on the raw model."""

import warnings

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    DeepLiftShap,
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    Saliency,
    ShapleyValueSampling,
)
from torch import nn

from probekit import FeatureModel, ProbekitWarning, SequenceModel, outputs
from probekit.attr import (
    Attribution,
    attribute,
    deeplift_ready,
    deeplift_shap,
    feature_ablation,
    input_x_gradient,
    integrated_gradients,
    saliency,
    shapley_sampling,
    shuffled_references,
)
from probekit.encode import one_hot
from probekit.testing import ToyConv, ToyNLC, random_sequences

ATOL = 1e-5
L = 24


def close(a, b, atol=ATOL):
    return torch.allclose(a.cpu().float(), b.cpu().float(), atol=atol, rtol=1e-4)


def selected(model, i):
    return lambda x: model(x)[:, i]


@pytest.fixture
def dna():
    model = ToyConv(n_outputs=2, channels=6, kernel=5, seed=1)
    X = one_hot(random_sequences(5, L, seed=2))
    return model, X


class MLP(nn.Module):
    def __init__(self, n_features=6, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def features():
    model = MLP()
    X = torch.randn(7, 6, generator=torch.Generator().manual_seed(3))
    names = [f"desc_{j}" for j in range(6)]
    return model, X, names


# ----------------------------------------------------------------------------- DNA vs captum
def test_saliency_dna_matches_captum(dna, device):
    model, X = dna
    adapter = SequenceModel(model, output=outputs.logit(1), device=device, batch_size=2)
    expected = Saliency(selected(model, 1)).attribute(X.clone().requires_grad_(True))
    obs = saliency(adapter, X)
    hyp = saliency(adapter, X, form="hypothetical")
    assert obs.values.shape == X.shape and obs.per_position.shape == (5, L)
    assert close(obs.values, expected * X)
    assert close(hyp.values, expected)
    assert close(obs.per_position, (expected * X).sum(1))


def test_input_x_gradient_dna_matches_captum_and_hypothetical_agrees(dna, device):
    model, X = dna
    adapter = SequenceModel(model, output=1, device=device, batch_size=3)
    expected = InputXGradient(selected(model, 1)).attribute(X.clone().requires_grad_(True))
    obs = input_x_gradient(adapter, X)
    hyp = input_x_gradient(adapter, X, form="hypothetical")
    assert close(obs.values, expected)
    # Hypothetical contributions read at the observed base are the observed form.
    assert close(hyp.values * X, obs.values)
    assert close(hyp.per_position, obs.per_position)
    # With the zero reference, the hypothetical contribution of a base is the gradient.
    grad = Saliency(selected(model, 1)).attribute(X.clone().requires_grad_(True), abs=False)
    assert close(hyp.values, grad)
    # Centred: the uniform reference subtracts the mean gradient over bases.
    centred = input_x_gradient(adapter, X, form="hypothetical", center=True)
    assert close(centred.values, grad - grad.mean(dim=1, keepdim=True))
    assert close(input_x_gradient(adapter, X, center=True).values, centred.values * X)


def test_integrated_gradients_dna_matches_captum(dna):
    model, X = dna
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=24)
    ig = IntegratedGradients(selected(model, 0))
    expected = ig.attribute(X.clone().requires_grad_(True), baselines=torch.zeros_like(X), n_steps=16)
    ours = integrated_gradients(adapter, X, n_steps=16)
    assert close(ours.values, expected)
    # A non-zero baseline puts attribution on the baseline's channels too; per position the sums agree.
    mean = X.mean(dim=(0, 2))[None, :, None].expand_as(X)
    expected = ig.attribute(X.clone().requires_grad_(True), baselines=mean, n_steps=16)
    ours = integrated_gradients(adapter, X, baseline="mean", n_steps=16)
    assert close(ours.per_position, expected.sum(1))
    hyp = integrated_gradients(adapter, X, baseline="mean", n_steps=16, form="hypothetical")
    assert close((hyp.values * X).sum(1), expected.sum(1))


def test_integrated_gradients_nlc_is_exact_on_a_linear_model():
    model = ToyNLC(L, seed=4)
    X = one_hot(random_sequences(3, L, seed=5))
    adapter = SequenceModel(model, output=0, layout="NLC", device="cpu")
    ours = integrated_gradients(adapter, X, n_steps=4)
    # A per-position weight matrix: the attribution of each observed base is its weight.
    expected = X * model.weight.detach().T[None]
    assert close(ours.values, expected)
    assert ours.delta.abs().max() < 1e-4


# ----------------------------------------------------------------------------- DeepLIFT-SHAP
class ConvNet(nn.Module):
    """A ToyConv-like model with several nonlinearities, written with modules or functional ops."""

    def __init__(self, style="module", seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.style = style
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.conv2 = nn.Conv1d(6, 4, 3, padding=1)
        self.linear = nn.Linear(4, 2)
        self.relu, self.tanh, self.sigmoid = nn.ReLU(), nn.Tanh(), nn.Sigmoid()

    def forward(self, x):
        if self.style == "module":
            h = self.tanh(self.conv2(self.relu(self.conv(x))))
            return self.linear(self.sigmoid(h.mean(dim=-1)))
        if self.style == "torch":
            h = torch.tanh(self.conv2(torch.relu(self.conv(x))))
            return self.linear(torch.sigmoid(h.mean(dim=-1)))
        h = self.conv2(F.relu(self.conv(x))).tanh()
        return self.linear(h.mean(dim=-1).sigmoid())


def test_deeplift_shap_dna_matches_captum_deeplift(device):
    model = ConvNet("module")
    X = one_hot(random_sequences(3, L, seed=6))
    R = 4
    adapter = SequenceModel(model, output=1, device=device, batch_size=5)
    refs = shuffled_references(X, n=R, seed=0)
    inputs = X[:, None].expand_as(refs).reshape(-1, 4, L)
    baselines = refs.reshape(-1, 4, L)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = DeepLift(model).attribute(inputs.clone().requires_grad_(True), baselines=baselines, target=1)
        mult = DeepLift(model, multiply_by_inputs=False).attribute(
            inputs.clone().requires_grad_(True), baselines=baselines, target=1
        )
    obs = deeplift_shap(adapter, X, n_references=R, seed=0)
    hyp = deeplift_shap(adapter, X, n_references=R, seed=0, form="hypothetical")
    assert close(obs.per_position, raw.reshape(3, R, 4, L).sum(2).mean(1))
    expected_hyp = (mult - (mult * baselines).sum(1, keepdim=True)).reshape(3, R, 4, L).mean(1)
    assert close(hyp.values, expected_hyp)
    assert close(hyp.values * X, obs.values)
    # Summation to delta: sum of attributions = f(x) - mean f(ref).
    f = lambda t: model(t)[:, 1]  # noqa: E731
    with torch.no_grad():
        target = f(X) - f(baselines).reshape(3, R).mean(1)
    assert close(obs.per_position.sum(1), target, atol=1e-4)
    assert obs.delta.abs().max() < 1e-4


@pytest.mark.parametrize("style", ["torch", "functional"])
def test_functional_ops_give_the_same_deeplift_as_modules(style):
    X = one_hot(random_sequences(3, L, seed=7))
    twin = SequenceModel(ConvNet("module"), output=0, device="cpu")
    functional_model = ConvNet(style)
    modules_before = list(functional_model.modules())
    functional = SequenceModel(functional_model, output=0, device="cpu")
    a = deeplift_shap(twin, X, n_references=5, seed=1, form="hypothetical")
    b = deeplift_shap(functional, X, n_references=5, seed=1, form="hypothetical")
    assert close(a.values, b.values)
    assert b.delta.abs().max() < 1e-4
    # captum alone on the functional model misses the rules: the summation fails.
    refs = shuffled_references(X, n=5, seed=1).reshape(-1, 4, L)
    inputs = X[:, None].expand(3, 5, 4, L).reshape(-1, 4, L)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, naive_delta = DeepLift(functional_model).attribute(
            inputs.clone().requires_grad_(True), baselines=refs, target=0, return_convergence_delta=True
        )
    assert naive_delta.abs().max() > 1e-3
    # The user's model is untouched.
    assert list(functional_model.modules()) == modules_before


def test_reused_module_and_both_strands():
    class Reused(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.c1, self.c2, self.act = nn.Conv1d(4, 4, 3, padding=1), nn.Conv1d(4, 3, 3, padding=1), nn.ReLU()

        def forward(self, x):
            return self.act(self.c2(self.act(self.c1(x)))).sum(-1)

    X = one_hot(random_sequences(2, L, seed=8))
    for strands in ("forward", "both"):
        adapter = SequenceModel(Reused(), output=2, device="cpu", strands=strands)
        result = deeplift_shap(adapter, X, n_references=3)
        assert result.delta.abs().max() < 1e-4, strands


def test_untraceable_model_warns_and_still_runs():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 2, 3, padding=1)

        def forward(self, x):
            h = self.conv(x)
            if h.sum() > 1e9:  # data-dependent control flow: torch.fx cannot trace it
                h = h * 2
            return torch.relu(h).sum(-1)

    X = one_hot(random_sequences(2, L, seed=9))
    with pytest.warns(ProbekitWarning, match="torch.fx could not trace"):
        result = deeplift_shap(SequenceModel(Branchy(), output=0, device="cpu"), X, n_references=2)
    assert result.values.shape == X.shape


# ----------------------------------------------------------------------------- features vs captum
def test_feature_gradient_methods_match_captum(features, device):
    model, X, names = features
    adapter = FeatureModel(model, output=outputs.value(1), feature_names=names, device=device, batch_size=3)
    f = selected(model, 1)
    x = lambda: X.clone().requires_grad_(True)  # noqa: E731
    assert close(saliency(adapter, X).values, Saliency(f).attribute(x()))
    assert close(input_x_gradient(adapter, X).values, InputXGradient(f).attribute(x()))
    ig = IntegratedGradients(f)
    assert close(integrated_gradients(adapter, X, n_steps=20).values, ig.attribute(x(), n_steps=20))
    mean = X.mean(0, keepdim=True).expand_as(X)
    ours = integrated_gradients(adapter, X, baseline="mean", n_steps=20)
    assert close(ours.values, ig.attribute(x(), baselines=mean, n_steps=20))
    assert ours.delta.abs().max() < 2e-2  # quadrature error of 20 steps


def test_feature_deeplift_shap_matches_captum(features):
    model, X, names = features
    adapter = FeatureModel(model, output=0, feature_names=names, device="cpu", batch_size=4)
    background = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = DeepLiftShap(model).attribute(X.clone().requires_grad_(True), baselines=background, target=0)
    ours = deeplift_shap(adapter, X, references=background)
    assert close(ours.values, expected)
    assert ours.delta.abs().max() < 1e-4


def test_ablation_methods_match_captum(features):
    model, X, names = features
    adapter = FeatureModel(model, output=1, feature_names=names, device="cpu", batch_size=2)
    f = selected(model, 1)
    with torch.no_grad():
        assert close(feature_ablation(adapter, X).values, FeatureAblation(f).attribute(X))
        torch.manual_seed(5)
        expected = ShapleyValueSampling(f).attribute(X, n_samples=6)
    assert close(shapley_sampling(adapter, X, n_samples=6, seed=5).values, expected)


def test_ablation_on_dna_ablates_whole_positions(dna):
    model, X = dna
    adapter = SequenceModel(model, output=1, device="cpu")
    result = feature_ablation(adapter, X)
    f = selected(model, 1)
    with torch.no_grad():
        base = f(X)
        for pos in (0, 7, L - 1):
            ablated = X.clone()
            ablated[:, :, pos] = 0
            assert close(result.per_position[:, pos], base - f(ablated))
    with pytest.raises(ValueError, match="no hypothetical form"):
        feature_ablation(adapter, X, form="hypothetical")


# ----------------------------------------------------------------------------- invariances, tables, io
@pytest.mark.parametrize(
    "method,kw",
    [
        ("saliency", {}),
        ("input_x_gradient", {"form": "hypothetical"}),
        ("integrated_gradients", {"n_steps": 4}),
        ("deeplift_shap", {"n_references": 3}),
        ("shapley_sampling", {"n_samples": 3}),
    ],
)
def test_batch_size_invariance(dna, method, kw):
    model, X = dna
    X = X[:3, :, :12]
    one = attribute(SequenceModel(model, output=1, device="cpu", batch_size=1), X, method=method, **kw)
    many = attribute(SequenceModel(model, output=1, device="cpu", batch_size=64), X, method=method, **kw)
    assert close(one.values, many.values)
    assert one.method == method


def test_feature_names_in_frame_and_round_trip(features, tmp_path):
    model, X, names = features
    adapter = FeatureModel(model, output=0, feature_names=names, device="cpu")
    result = integrated_gradients(adapter, X, n_steps=8, ids=[f"mol{i}" for i in range(7)])
    frame = result.to_frame()
    assert list(frame.columns) == ["id", "feature", "value", "attribution"]
    assert len(frame) == 7 * 6
    assert frame["feature"].tolist()[:6] == names
    row = frame[(frame["id"] == "mol2") & (frame["feature"] == "desc_4")].iloc[0]
    assert row["value"] == pytest.approx(float(X[2, 4]))
    assert row["attribution"] == pytest.approx(float(result.values[2, 4]))
    summary = result.summary()
    assert summary["top_feature"].isin(names).all() and len(summary) == 7
    path = tmp_path / "attr.pt"
    result.save(path)
    loaded = Attribution.load(path)
    assert torch.equal(loaded.values, result.values) and loaded.feature_names == names and loaded.ids == result.ids


def test_dna_frame(dna, tmp_path):
    model, X = dna
    X = X.clone()
    X[0, :, 3] = 0  # an N
    adapter = SequenceModel(model, output=1, device="cpu")
    result = input_x_gradient(adapter, X)
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["id", "position", "ref", "attribution"]
    assert len(frame) == 5 * L
    assert frame.loc[3, "ref"] == "N" and frame.loc[3, "attribution"] == 0
    assert frame["attribution"].to_numpy() == pytest.approx(result.per_position.reshape(-1).numpy())
    result.save(tmp_path / "a.pt")
    assert torch.equal(Attribution.load(tmp_path / "a.pt").per_position, result.per_position)


def test_ids_from_dataframe_and_bad_arguments(dna):
    model, X = dna
    adapter = SequenceModel(model, output=1, device="cpu")
    frame = pd.DataFrame({"id": ["r1", "r2"], "sequence": random_sequences(2, L, seed=1)})
    assert saliency(adapter, frame).ids == ["r1", "r2"]
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute(adapter, X, method="lrp")
    with pytest.raises(ValueError, match="form must be"):
        saliency(adapter, X, form="projected")
    features = FeatureModel(MLP(), output=0, device="cpu")
    with pytest.raises(ValueError, match="DNA only"):
        saliency(features, torch.randn(2, 6), form="hypothetical")


def test_deeplift_ready_leaves_the_model_alone():
    model = ConvNet("torch")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ready = deeplift_ready(model)
    assert sum(isinstance(m, nn.ReLU) for m in ready.modules()) == 1
    assert sum(isinstance(m, nn.Tanh) for m in ready.modules()) == 1
    X = one_hot(random_sequences(2, L, seed=3))
    with torch.no_grad():
        assert close(ready(X), model(X))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # With an example input, a global max over the length becomes a max-pool module.
    toy = ToyConv(seed=2)
    pooled = deeplift_ready(toy, example=X[:1])
    assert any(isinstance(m, nn.MaxPool1d) for m in pooled.modules())
    assert not any(isinstance(m, nn.MaxPool1d) for m in deeplift_ready(toy).modules())
    with torch.no_grad():
        assert close(pooled(X), toy(X))


def test_deeplift_probability_output_gets_its_rule():
    class OneLogit(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(4)
            self.conv = nn.Conv1d(4, 3, 5, padding=2)
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            return self.linear(torch.relu(self.conv(x)).sum(-1))

    X = one_hot(random_sequences(3, L, seed=10))
    result = deeplift_shap(SequenceModel(OneLogit(), output=outputs.prob(0), device="cpu"), X, n_references=4)
    assert result.delta.abs().max() < 1e-5
    assert result.params["output"] == "prob[0]"


def test_deeplift_ready_keeps_outputs_for_many_functional_forms():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(5, 5)

        def forward(self, x):
            h = self.lin(x)
            F.relu(h, inplace=True)  # in place: later uses of h see the ReLU
            return h * 2 + F.leaky_relu(x, 0.2) + x.softmax(-1) + F.elu(x) + F.softplus(x) + torch.tanh(x).sigmoid()

    model = Mixed()
    ready = deeplift_ready(model)
    kinds = {type(m) for m in ready.modules()}
    assert {nn.ReLU, nn.LeakyReLU, nn.Softmax, nn.ELU, nn.Softplus, nn.Tanh, nn.Sigmoid} <= kinds
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert close(ready(x), model(x))


class ToyConvTwin(nn.Module):
    """ToyConv written with modules: nn.ReLU and a max pool over the whole length."""

    def __init__(self, toy, length):
        super().__init__()
        self.conv, self.linear = toy.conv, toy.linear
        self.relu, self.pool = nn.ReLU(), nn.MaxPool1d(length)

    def forward(self, x):
        return self.linear(self.pool(self.relu(self.conv(x))).squeeze(-1))


def deeplift_delta_by_captum(model, X, refs, target):
    inputs = X[:, None].expand_as(refs).reshape(-1, *X.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, delta = DeepLift(model).attribute(
            inputs.clone().requires_grad_(True), baselines=refs.reshape(inputs.shape), target=target,
            return_convergence_delta=True,
        )
    return delta


def test_toyconv_global_max_and_relu_get_their_rules():
    """ToyConv (torch.relu, .max(dim=-1)) equals its module twin, and attributions sum to the output change."""
    toy = ToyConv(n_outputs=2, channels=8, kernel=5, seed=3)
    X = one_hot(random_sequences(4, L, seed=11))
    a = deeplift_shap(SequenceModel(toy, output=1, device="cpu"), X, n_references=6, seed=2, form="hypothetical")
    twin = ToyConvTwin(toy, L)
    b = deeplift_shap(SequenceModel(twin, output=1, device="cpu"), X, n_references=6, seed=2, form="hypothetical")
    assert close(a.values, b.values)
    refs = shuffled_references(X, n=6, seed=2)
    with torch.no_grad():
        target = toy(X)[:, 1] - toy(refs.reshape(-1, 4, L))[:, 1].reshape(4, 6).mean(1)
    assert close((a.values * X).sum(dim=(1, 2)), target, atol=1e-4)
    assert a.delta.abs().max() < 1e-4
    # captum alone gets neither model right: no rule for .max, and wrong multipliers for ReLU -> MaxPool.
    assert deeplift_delta_by_captum(toy, X, refs, 1).abs().max() > 1e-2
    assert deeplift_delta_by_captum(twin, X, refs, 1).abs().max() > 1e-2


def test_consecutive_nonlinear_modules_sum_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(4, 5, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Sigmoid(), nn.Flatten(), nn.Linear(5 * L // 2, 1)
    )
    X = one_hot(random_sequences(3, L, seed=12))
    result = deeplift_shap(SequenceModel(model, output=0, device="cpu"), X, n_references=4)
    assert result.delta.abs().max() < 1e-4
    refs = shuffled_references(X, n=4, seed=0)
    assert deeplift_delta_by_captum(model, X, refs, 0).abs().max() > 1e-3


@pytest.mark.parametrize("strands", ["forward", "both"])
def test_deeplift_nlc_model(strands):
    class NLCConv(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)
            self.conv = nn.Conv1d(4, 6, 5, padding=2)
            self.linear = nn.Linear(6, 1)

        def forward(self, x):  # x: (N, L, 4)
            return self.linear(F.relu(self.conv(x.transpose(1, 2))).amax(dim=-1))

    X = one_hot(random_sequences(3, L, seed=13))
    adapter = SequenceModel(NLCConv(), output=0, layout="NLC", device="cpu", strands=strands)
    result = deeplift_shap(adapter, X, n_references=4)
    assert result.values.shape == X.shape
    assert result.delta.abs().max() < 1e-4


class PoolNet(nn.Module):
    """conv, ReLU, an operation, then a max pool: captum's max rule is used without the consecutive-module issue."""

    def __init__(self, kernel, stride, length=L):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.relu, self.pool = nn.Conv1d(4, 6, 5), nn.ReLU(), nn.MaxPool1d(kernel, stride)
        self.linear = nn.Linear(6 * ((length - 4 - kernel) // stride + 1), 1)

    def forward(self, x):
        return self.linear(self.pool(self.relu(self.conv(x)) * 1.0).flatten(1))


def test_max_pool_rule_equals_captum_where_captum_is_exact():
    model = PoolNet(2, 2)
    X = one_hot(random_sequences(3, L, seed=4))
    refs = one_hot(random_sequences(6, L, seed=5)).reshape(3, 2, 4, L)  # unrelated sequences: no zero changes
    inputs = X[:, None].expand_as(refs).reshape(-1, 4, L)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = DeepLift(model).attribute(
            inputs.clone().requires_grad_(True), baselines=refs.reshape(-1, 4, L), target=0
        )
    ours = deeplift_shap(SequenceModel(model, output=0, device="cpu"), X, references=refs)
    assert close(ours.per_position, expected.reshape(3, 2, 4, L).sum(2).mean(1))


def test_overlapping_max_pool_sums_exactly():
    model = PoolNet(4, 2)
    X = one_hot(random_sequences(4, L, seed=3))
    result = deeplift_shap(SequenceModel(model, output=0, device="cpu"), X, n_references=4)
    assert result.delta.abs().max() < 1e-5
    refs = shuffled_references(X, n=4, seed=0)
    assert deeplift_delta_by_captum(model, X, refs, 0).abs().max() > 1e-2  # captum drops shared winners
