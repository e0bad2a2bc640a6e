"""Random baselines that do not spread give no z and no ratio, instead of numbers of any size."""

import math

import torch

from probekit.results import BaselineResult


def test_zero_spread_gives_nan_z_and_zero_changes_give_nan_ratio():
    deltas = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3]])
    compared = BaselineResult(deltas=deltas).compare(torch.tensor([2.4e-7, 1.0, 0.6]))
    assert math.isnan(compared["z"][0]) and math.isnan(compared["ratio"][0])
    assert math.isnan(compared["z"][1]) and compared["ratio"][1] == 2.0  # no spread, but a mean to compare with
    assert compared["z"][2] == (0.6 - 0.2) / 0.1 or abs(compared["z"][2] - 4.0) < 1e-5
    assert abs(compared["ratio"][2] - 3.0) < 1e-5
    assert compared["p_value"].tolist()[0] == 1 / 4  # every draw reached by the tiny change: p stays defined


def test_a_random_change_equal_to_the_adversarial_one_up_to_rounding_counts_as_extreme():
    adversarial = torch.tensor([-0.30000001])
    rounded_above = BaselineResult(deltas=torch.tensor([[-0.29999998, 0.1, 0.1]])).compare(adversarial)
    rounded_below = BaselineResult(deltas=torch.tensor([[-0.30000004, 0.1, 0.1]])).compare(adversarial)
    assert rounded_above["p_value"][0] == rounded_below["p_value"][0] == 2 / 4
