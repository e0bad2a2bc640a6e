"""The adapter contract: one forward path, batching, layout, strands, state restored."""

import pytest
import torch
from torch import nn

from probekit import FeatureModel, ModelCallError, SequenceModel, goals, outputs
from probekit.encode.dna import one_hot, reverse_complement
from probekit.testing import MotifCounter, ProfileConv, ToyConv, ToyNLC, random_sequences




def test_score_equals_direct_model_call(device):
    model = ToyConv()
    X = one_hot(random_sequences(5, 20))
    expected = model(X)[:, 1]
    adapter = SequenceModel(model, output=outputs.logit(1), device=device, batch_size=2)
    assert torch.allclose(adapter.score(X).cpu(), expected, atol=1e-6)
    assert adapter.predict(X).shape == (5, 2)


def test_batch_size_does_not_change_scores(device):
    X = one_hot(random_sequences(7, 15))
    scores = [SequenceModel(ToyConv(), output=0, device=device, batch_size=b).score(X).cpu() for b in (1, 3, 64)]
    assert torch.allclose(scores[0], scores[1], atol=1e-6) and torch.allclose(scores[0], scores[2], atol=1e-6)


def test_nlc_layout_is_transposed_for_the_model():
    model = ToyNLC(12)
    X = one_hot(random_sequences(3, 12))
    adapter = SequenceModel(model, output=0, layout="NLC", device="cpu")
    assert torch.allclose(adapter.score(X), model(X.transpose(1, 2))[:, 0])


def test_strands_both_averages_reverse_complement():
    model = ToyConv()
    X = one_hot(random_sequences(4, 16))
    adapter = SequenceModel(model, output=1, strands="both", device="cpu")
    expected = 0.5 * (model(X) + model(reverse_complement(X)))[:, 1]
    assert torch.allclose(adapter.score(X), expected, atol=1e-6)


def test_strings_and_lists_are_encoded():
    adapter = SequenceModel(MotifCounter("ACG"), output=outputs.value(0), device="cpu")
    assert adapter.score(["ACGACG", "TTTTTT"]).tolist() == [2.0, 0.0]
    assert adapter.score("TACGTT").tolist() == [1.0]


def test_model_state_is_restored():
    model = ToyConv()
    model.train()
    adapter = SequenceModel(model, output=0, device="cpu")
    adapter.score(one_hot(random_sequences(2, 10)))
    assert model.training
    with adapter.session():
        assert not model.training
        with adapter.session():
            assert not model.training
        assert not model.training
    assert model.training


def test_each_submodule_gets_its_own_training_flag_back():
    # a part frozen in eval mode inside a training model (a common fine-tuning setup) stays frozen
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 1))
    model.train()
    model[1].eval()
    seen = []
    model[3].register_forward_hook(lambda module, args, out: seen.append([m.training for m in model.modules()]))
    FeatureModel(model, output=outputs.value(0), device="cpu").score(torch.randn(3, 4))
    assert seen and all(flags == [False] * 5 for flags in seen)
    assert [m.training for m in model.modules()] == [True, True, False, True, True]


def test_a_mode_changed_inside_a_session_is_undone_and_edited_bounds_are_read_again():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1)).eval()
    lo, hi = torch.zeros(3), torch.ones(3)
    adapter = FeatureModel(model, output=0, device="cpu", bounds=(lo, hi))
    with adapter.session():
        model.train()
    assert not any(m.training for m in model.modules())
    assert adapter.bounds(3)[0].tolist() == [0.0, 0.0, 0.0]
    lo[0] = -5.0  # the tensors the adapter was given, edited in place
    assert adapter.bounds(3)[0].tolist() == [-5.0, 0.0, 0.0]


def test_a_frozen_torchscript_model_without_training_flags_runs():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).eval()
    frozen = torch.jit.freeze(torch.jit.script(model))
    X = torch.randn(5, 3)
    scores = FeatureModel(frozen, output=outputs.value(0), device="cpu").score(X)
    assert torch.allclose(scores, model(X)[:, 0], atol=1e-6)


def test_dropout_is_off_during_calls():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(40, 1))
    adapter = SequenceModel(model, output=0, device="cpu")
    X = one_hot(random_sequences(3, 10))
    assert torch.equal(adapter.score(X), adapter.score(X))


def test_dtype_follows_model():
    model = ToyConv().double()
    adapter = SequenceModel(model, output=0, device="cpu")
    assert adapter.score(one_hot(random_sequences(2, 10))).dtype == torch.float64


def test_wrong_length_gives_clear_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 10, 1))
    adapter = SequenceModel(model, output=0, device="cpu")
    with pytest.raises(ModelCallError, match="length 12"):
        adapter.score(one_hot(random_sequences(2, 12)))


def test_tuple_output_rejected():
    class Two(nn.Module):
        def forward(self, x):
            return x.sum((1, 2)), x.sum((1, 2))

    with pytest.raises(ModelCallError, match="tuple"):
        SequenceModel(Two(), output=0, device="cpu").score(one_hot(["ACGT"]))


def test_profile_output_window():
    model = ProfileConv()
    X = one_hot(random_sequences(3, 30))
    adapter = SequenceModel(model, output=outputs.window(1, 10, 20), device="cpu")
    assert torch.allclose(adapter.score(X), model(X)[:, 1, 10:20].sum(1))


def test_evaluate_returns_scores_and_goal_values():
    adapter = SequenceModel(ToyConv(), output=outputs.logit(0), device="cpu")
    X = one_hot(random_sequences(3, 12))
    bound = adapter.bind(goals.flip(), X)
    scores, g = adapter.evaluate(X, bound)
    y = adapter.predict(X)
    assert torch.allclose(scores, y[:, 0])
    assert torch.allclose(g, (y.max(1).values - y.min(1).values))


def test_gradient_matches_autograd():
    model = ToyConv()
    X = one_hot(random_sequences(4, 12))
    adapter = SequenceModel(model, output=1, device="cpu", batch_size=3)
    values, grads = adapter.gradient(X)
    x = X.clone().requires_grad_(True)
    model(x)[:, 1].sum().backward()
    assert torch.allclose(grads, x.grad, atol=1e-6)
    assert torch.allclose(values, model(X)[:, 1].detach(), atol=1e-6)


def test_plain_callable_model():
    adapter = SequenceModel(lambda x: x[:, 0].sum(-1, keepdim=True), output=0, device="cpu")
    assert adapter.score(["AAAC"]).tolist() == [3.0]


def test_feature_model_kinds_bounds_and_names():
    model = nn.Linear(3, 1)
    adapter = FeatureModel(model, output=outputs.value(0), kinds=["binary", "continuous", "integer"], device="cpu")
    lo, hi = adapter.bounds(3)
    assert lo.tolist()[0] == 0.0 and hi.tolist()[0] == 1.0 and hi[1] == float("inf")
    assert adapter.names(3) == ["f0", "f1", "f2"]
    with pytest.raises(ValueError):
        adapter.kinds(4)
    bad = FeatureModel(model, output=0, kinds="nominal", device="cpu")
    with pytest.raises(ValueError, match="kind"):
        bad.kinds(3)


def test_replace_changes_one_setting():
    adapter = SequenceModel(ToyConv(), output=0, device="cpu", batch_size=4)
    other = adapter.replace(batch_size=1, output=outputs.logit(1))
    assert other.batch_size == 1 and adapter.batch_size == 4
    assert other.output.name == "logit[1]"
    with pytest.raises(TypeError):
        adapter.replace(nonsense=1)
    with pytest.raises(TypeError, match="score"):
        adapter.replace(score=1)  # a method, not a setting


def test_replace_changes_feature_kinds_and_bounds_and_keeps_the_methods():
    adapter = FeatureModel(nn.Linear(3, 1), output=0, device="cpu", kinds="binary")
    other = adapter.replace(kinds=["binary", "continuous", "integer"], bounds=(-2.0, 2.0))
    assert other.kinds(3) == ["binary", "continuous", "integer"]
    assert other.bounds(3)[1].tolist() == [1.0, 2.0, 2.0]  # the binary feature stays within [0, 1]
    assert adapter.kinds(3) == ["binary"] * 3 and adapter.bounds(3)[1].tolist() == [1.0, 1.0, 1.0]


def test_bad_settings_rejected():
    with pytest.raises(ValueError):
        SequenceModel(ToyConv(), output=0, layout="LNC")
    with pytest.raises(ValueError):
        SequenceModel(ToyConv(), output=0, strands="reverse")
    with pytest.raises(ValueError):
        SequenceModel(ToyConv(), output=0, batch_size=0)
    with pytest.raises(TypeError):
        SequenceModel(42, output=0)


def test_auto_batch_size_is_probed_on_first_use_and_gives_the_same_scores():
    X = one_hot(random_sequences(9, 30))
    adapter = SequenceModel(ToyConv(), output=0, device="cpu")
    assert adapter._auto_batch
    auto = adapter.score(X)
    assert not adapter._auto_batch
    assert adapter.batch_size in (8, 16, 32, 64, 128, 256, 512)
    assert torch.allclose(auto, SequenceModel(ToyConv(), output=0, device="cpu", batch_size=1).score(X), atol=1e-6)
    fixed = adapter.replace(batch_size=4)
    assert fixed.batch_size == 4 and not fixed._auto_batch
    assert adapter.replace(batch_size="auto")._auto_batch
    with pytest.raises(ValueError):
        adapter.replace(batch_size=True)


def test_autocast_is_checked_against_full_precision():
    X = one_hot(random_sequences(6, 40))
    full = SequenceModel(ToyConv(), output=1, device="cpu").score(X)
    mixed = SequenceModel(ToyConv(), output=1, device="cpu", autocast="bf16")
    scores = mixed.score(X)
    assert mixed.autocast_error is not None and mixed.autocast_error < 0.05
    assert torch.allclose(scores, full, rtol=0.05, atol=0.05)

    class Cancelling(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4 * 40, 1)
            with torch.no_grad():
                self.linear.bias.fill_(1e4)

        def forward(self, x):
            return self.linear(x.flatten(1)) - 1e4

    import warnings

    from probekit import ProbekitWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fragile = SequenceModel(Cancelling(), output=0, device="cpu", autocast="bf16")
        fragile.score(X)
    assert fragile.autocast_error > 0.01
    assert any(issubclass(w.category, ProbekitWarning) and "autocast" in str(w.message) for w in caught)


def test_binary_features_stay_within_zero_and_one_whatever_bounds_are_given():
    adapter = FeatureModel(nn.Linear(3, 1), output=0, device="cpu", kinds=["binary", "continuous", "integer"],
                           bounds=(-5.0, 5.0))
    lower, upper = adapter.bounds(3)
    assert lower.tolist() == [0.0, -5.0, -5.0] and upper.tolist() == [1.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="binary features lie within"):
        FeatureModel(nn.Linear(3, 1), output=0, device="cpu", kinds="binary", bounds=(2.0, 3.0)).bounds(3)


def test_replace_with_a_featurizer_takes_its_names_kinds_and_bounds():
    from probekit.encode.mol import Concat, Descriptors, Morgan

    adapter = FeatureModel(nn.Linear(16, 1), featurizer=Morgan(radius=1, n_bits=16), output=0, device="cpu")
    mixed = Concat(Morgan(radius=1, n_bits=14), Descriptors(["MolLogP", "TPSA"]))
    other = adapter.replace(featurizer=mixed)
    assert other.names(16) == list(mixed.names)
    assert other.kinds(16)[-2:] == ["continuous", "continuous"] and adapter.kinds(16)[-1] == "binary"
    assert other.bounds(16)[1][-1] > 1.0  # a descriptor is not held in [0, 1]
    named = adapter.replace(featurizer=mixed, feature_names=[f"x{i}" for i in range(16)])
    assert named.names(16)[0] == "x0"


def test_a_model_that_ignores_its_input_has_zero_gradient_and_pgd_goes_on():
    import torch

    from probekit import FeatureModel, goals
    from probekit.search import pgd

    adapter = FeatureModel(lambda x: torch.ones(x.shape[0], 1), output=0, device="cpu", feature_names=["a", "b"])
    X = torch.zeros(3, 2)
    score, grad = adapter.gradient(X)
    assert torch.equal(grad, torch.zeros_like(X)) and torch.equal(score, torch.ones(3))
    result = pgd(adapter, X, goal=goals.decrease(by=1.0), eps=0.1, steps=3)
    assert not bool(result.success.any())
