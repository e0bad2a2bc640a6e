"""Outputs select one scalar; goals are <= 0 exactly when they hold."""

import pytest
import torch

from probekit import goals, outputs


Y = torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]])


def test_logit_value_prob_margin_by_hand():
    assert torch.equal(outputs.logit(2)(Y), torch.tensor([1.0, 1.0]))
    assert torch.equal(outputs.value(0)(Y), torch.tensor([2.0, 0.0]))
    assert torch.allclose(outputs.prob(1)(Y), torch.softmax(Y, 1)[:, 1])
    assert torch.equal(outputs.margin(0)(Y), torch.tensor([1.0, -3.0]))
    single = torch.tensor([[0.3], [-0.2]])
    assert torch.allclose(outputs.prob(0)(single), torch.sigmoid(single[:, 0]))
    assert torch.equal(outputs.margin(0)(single), single[:, 0])


def test_window_of_profile():
    y = torch.arange(24.0).reshape(2, 2, 6)
    assert torch.equal(outputs.window(0, 1, 3)(y), y[:, 0, 1:3].sum(1))
    assert torch.equal(outputs.window(1, reduce="max")(y), y[:, 1].max(1).values)
    with pytest.raises(ValueError, match="profile"):
        outputs.window(0)(torch.zeros(2, 3))


def test_callable_and_int_outputs():
    assert outputs.as_output(1).name == "logit[1]"
    custom = outputs.as_output(lambda y: y.sum(dim=1))
    assert torch.equal(custom(Y), Y.sum(1))
    bad = outputs.as_output(lambda y: y)
    with pytest.raises(ValueError, match="one scalar per input"):
        bad(Y)


def test_flip_of_class_output_means_leaving_the_argmax():
    bound = goals.flip().bind(outputs.logit(0), Y)
    g = bound(Y)
    # reference classes are 0 and 1; g is the own-class margin, positive before any change
    assert torch.equal(g, torch.tensor([1.0, 2.0]))
    swapped = Y[:, [1, 0, 2]]
    assert (bound(swapped) <= 0).all()


def test_flip_of_single_score_crosses_threshold():
    y = torch.tensor([[0.8], [-0.5]])
    bound = goals.flip().bind(outputs.value(0), y)
    assert (bound(y) > 0).all()
    assert (bound(-y) < 0).all()
    prob_bound = goals.flip().bind(outputs.prob(0), y)
    assert torch.allclose(prob_bound(y), (torch.sigmoid(y[:, 0]) - 0.5).abs())


def test_target_below_above_decrease_increase():
    out = outputs.value(0)
    y0 = torch.tensor([[5.0], [1.0]])
    y = torch.tensor([[3.5], [2.5]])
    assert torch.equal(goals.below(4.0).bind(out, y0)(y), torch.tensor([-0.5, -1.5]))
    assert torch.equal(goals.above(3.0).bind(out, y0)(y), torch.tensor([-0.5, 0.5]))
    assert torch.equal(goals.decrease(1.0).bind(out, y0)(y), torch.tensor([-0.5, 2.5]))
    assert torch.equal(goals.increase(1.0).bind(out, y0)(y), torch.tensor([2.5, -0.5]))
    t = goals.target(2).bind(outputs.logit(0), Y)
    assert torch.equal(t(Y), torch.tensor([1.0, 2.0]))


def test_rows_map_candidates_to_their_input():
    bound = goals.decrease(1.0).bind(outputs.value(0), torch.tensor([[5.0], [1.0]]))
    g = bound(torch.tensor([[4.0], [4.0], [0.0]]), torch.tensor([0, 0, 1]))
    assert torch.equal(g, torch.tensor([0.0, 0.0, 0.0]))


def test_parse():
    assert goals.parse("flip") == goals.flip()
    assert goals.parse("target:2") == goals.target(2)
    assert goals.parse("below:-1.5") == goals.below(-1.5)
    for bad in ["nope", "below", "below:x", "flip:1"]:
        with pytest.raises(ValueError):
            goals.parse(bad)
    with pytest.raises(ValueError):
        goals.decrease(-1)
