"""Searches keep their precision: far goal thresholds, and ISM on long sequences the model mostly ignores.

Oracles: linear toy models whose best perturbations and edits are computed by
hand, and direct forward passes of explicitly built mutants.
"""

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.encode.dna import one_hot
from probekit.search import fgsm, min_perturbation, min_substitutions, pgd, saturation_mutagenesis
from probekit.testing import random_sequences

W = [1.0, -2.0, 0.5, 3.0]


def _linear(w):
    model = nn.Linear(len(w), 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([w]))
    return model


@pytest.mark.parametrize("norm, dual", [("linf", 1), ("l2", 2), ("l1", float("inf"))])
def test_pgd_with_a_far_threshold_moves_the_score_as_far_as_with_a_near_one(norm, dual):
    """Neither threshold can be reached; the best iterate is the most-decreased one, -eps * ||w||_dual."""
    adapter = FeatureModel(_linear(W), output=outputs.value(0), device="cpu")
    X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    start = adapter.score(X)
    best = start - 0.5 * torch.linalg.vector_norm(torch.tensor(W), ord=dual)
    for threshold in (-100.0, -1e9):
        result = pgd(adapter, X, goal=goals.below(threshold), eps=0.5, norm=norm, steps=30, l1_fraction=0.0)
        assert not result.success.any()
        torch.testing.assert_close(result.score_after, best, atol=1e-4, rtol=0)
    for threshold in (-100.0, -1e9):  # the same from above: goals.above(1e9) pushes the score up
        result = pgd(adapter, X, goal=goals.above(-threshold), eps=0.5, norm=norm, steps=30, l1_fraction=0.0)
        torch.testing.assert_close(result.score_after, 2 * start - best, atol=1e-4, rtol=0)


def test_fgsm_and_min_perturbation_with_a_far_threshold_keep_the_decrease():
    adapter = FeatureModel(_linear(W), output=outputs.value(0), device="cpu")
    X = torch.zeros(2, 4)
    w = torch.tensor(W)
    step = fgsm(adapter, X, goal=goals.below(-1e9), eps=0.5)
    torch.testing.assert_close(step.score_after, torch.full((2,), -0.5 * float(w.abs().sum())))
    smallest = min_perturbation(adapter, X, goal=goals.below(-1e9), norm="l2", eps_max=1.0, steps=20, search_steps=3)
    assert not smallest.success.any()
    torch.testing.assert_close(smallest.score_after, torch.full((2,), -float(w.norm())), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["greedy", "beam", "gradient", "auto"])
def test_substitution_searches_with_a_far_threshold_take_the_strongest_edits(method):
    """A position weight matrix: the two strongest decreasing substitutions, by hand."""
    length = 12
    weight = torch.randn(4, length, generator=torch.Generator().manual_seed(3))

    class PWM(nn.Module):
        def forward(self, x):
            return (x * weight).sum(dim=(1, 2))[:, None]

    seq = random_sequences(1, length, seed=4)[0]
    adapter = SequenceModel(PWM(), output=0, device="cpu")
    x = one_hot([seq])[0]
    gain = weight - (weight * x).sum(dim=0)  # (4, L): change of the score by each substitution
    gain[x.bool()] = float("inf")
    per_position = gain.min(dim=0)
    order = per_position.values.argsort()[:2].tolist()
    expected = sorted((p, seq[p], "ACGT"[int(per_position.indices[p])]) for p in order)
    for threshold in (-100.0, -1e9):
        result = min_substitutions(adapter, [seq], goal=goals.below(threshold), max_edits=2, method=method,
                                   max_combinations=0)
        assert sorted(result.edits[0]) == expected, threshold
        assert not result.success.any()


class Cropped(nn.Module):
    """A convolution read only on positions 10-19 of its output: inputs 8-21 matter, the rest never do."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv1d(4, 16, 5, padding=2)
        self.linear = nn.Linear(16, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)

    def forward(self, x):
        return self.linear(torch.relu(self.conv(x))[:, :, 10:20].mean(dim=-1))


def test_ism_on_a_long_sequence_is_exactly_zero_where_the_model_does_not_look():
    model = Cropped().eval()
    seq = random_sequences(1, 5000, seed=1)
    adapter = SequenceModel(model, output=0, device="cpu")
    ism = saturation_mutagenesis(adapter, seq)
    effects = ism.effects[0]
    assert (effects[:8] == 0).all() and (effects[22:] == 0).all()
    # inside, every effect is the direct score difference of the explicitly built mutant
    x = one_hot(seq)[0]
    mutants, where = [], []
    for p in range(8, 22):
        for b in range(4):
            if x[b, p] == 0:
                m = x.clone()
                m[:, p] = 0
                m[b, p] = 1
                mutants.append(m)
                where.append((p, b))
    with torch.no_grad():
        direct = model(torch.stack(mutants))[:, 0] - model(x[None])[0, 0]
    found = torch.stack([effects[p, b] for p, b in where])
    torch.testing.assert_close(found, direct, atol=1e-6, rtol=1e-5)
    assert (found != 0).all()
    # effects far below the score's scale, but far above its rounding, are kept as they are
    weight = torch.zeros(4, 40)
    weight[:, 0] = torch.tensor([5.0, -5.0, 3.0, -3.0])  # a large score
    weight[1, 7] = 2e-5  # a real effect of 2e-5: about 30 roundings of the score

    class PWM(nn.Module):
        def forward(self, x):
            return (x * weight).sum(dim=(1, 2))[:, None]

    small = saturation_mutagenesis(SequenceModel(PWM(), output=0, device="cpu", batch_size=7), ["A" * 40])
    assert float(small.effects[0, 7, 1]) == pytest.approx(2e-5, rel=1e-2)
    assert (small.effects[0, 8:] == 0).all()
