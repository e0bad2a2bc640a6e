"""Random baselines: seeded draws, exactly k edits each, deltas equal to direct scoring."""

import pytest
import torch

from probekit import FeatureModel, ProbekitWarning, SequenceModel, outputs
from probekit.encode.dna import decode, one_hot
from probekit.search.baseline import random_bit_flips, random_substitutions
from probekit.testing import ToyConv, random_sequences


def _apply_draws(X, sites, values):
    """Edited one-hot sequences of every draw, built in a plain loop: (N * D, 4, L)."""
    out = []
    n, d, _ = sites.shape
    for i in range(n):
        for j in range(d):
            x = X[i].clone()
            for p, v in zip(sites[i, j].tolist(), values[i, j].tolist()):
                x[:, p] = 0
                x[v, p] = 1
            out.append(x)
    return torch.stack(out)


def test_random_substitutions_exact_k_and_direct_scores(device):
    model = ToyConv(seed=3)
    X = one_hot(random_sequences(3, 16, seed=4))
    adapter = SequenceModel(model, output=outputs.logit(1), device=device, batch_size=256)
    k, draws = 3, 25
    null = random_substitutions(adapter, X, k=k, n_draws=draws, seed=7)
    assert null.deltas.shape == (3, draws) and null.k == k and null.kind == "substitutions"
    edited = _apply_draws(X, null.params["sites"], null.params["values"])
    originals = decode(X)
    for row, seq in enumerate(decode(edited)):
        ref = originals[row // draws]
        assert sum(a != b for a, b in zip(seq, ref)) == k  # exactly k positions changed
    with torch.no_grad():
        direct = outputs.logit(1)(model(edited)).reshape(3, draws) - outputs.logit(1)(model(X))[:, None]
    torch.testing.assert_close(null.deltas, direct, atol=1e-5, rtol=1e-4)


def test_random_substitutions_seeded_and_batch_invariant():
    model = ToyConv(seed=5)
    seqs = random_sequences(2, 12, seed=6)
    a = random_substitutions(SequenceModel(model, output=0, device="cpu", batch_size=256), seqs, k=2, n_draws=30, seed=1)
    b = random_substitutions(SequenceModel(model, output=0, device="cpu", batch_size=3), one_hot(seqs), k=2, n_draws=30, seed=1)
    c = random_substitutions(SequenceModel(model, output=0, device="cpu"), seqs, k=2, n_draws=30, seed=2)
    assert torch.equal(a.params["sites"], b.params["sites"]) and torch.equal(a.params["values"], b.params["values"])
    torch.testing.assert_close(a.deltas, b.deltas, atol=1e-6, rtol=1e-5)
    assert not torch.equal(a.params["sites"], c.params["sites"])


def test_random_substitutions_cover_positions_and_bases_uniformly():
    X = one_hot(["ACGTACGT"])
    adapter = SequenceModel(ToyConv(), output=0, device="cpu", batch_size=512)
    null = random_substitutions(adapter, X, k=1, n_draws=2000, seed=0)
    sites, values = null.params["sites"].reshape(-1), null.params["values"].reshape(-1)
    counts = torch.bincount(sites, minlength=8).float()
    assert (counts > 2000 / 8 * 0.75).all()
    ref = X[0].argmax(dim=0)
    assert (values != ref[sites]).all()
    per_base = torch.bincount(values[sites == 0], minlength=4)  # position 0 is A: C, G, T only
    assert per_base[0] == 0 and (per_base[1:] > counts[0] / 3 * 0.7).all()


def test_random_substitutions_respect_positions_and_n():
    adapter = SequenceModel(ToyConv(), output=0, device="cpu")
    X = one_hot(["NACGTACGTN"])
    null = random_substitutions(adapter, X, k=2, n_draws=50, seed=0, positions=slice(0, 6))
    sites = null.params["sites"]
    assert ((sites >= 1) & (sites < 6)).all()
    with pytest.warns(ProbekitWarning, match="fewer than 3"):
        few = random_substitutions(adapter, X, k=3, n_draws=5, positions=[0, 1, 2])
    assert torch.isnan(few.deltas).all()


def test_random_bit_flips(device):
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    kinds = ["binary"] * 8 + ["continuous"] * 2
    adapter = FeatureModel(model, output=outputs.value(0), kinds=kinds, device=device, batch_size=256)
    X = (torch.rand(3, 10, generator=generator) > 0.5).float()
    X[:, 8:] = torch.randn(3, 2, generator=generator)
    k, draws = 2, 40
    null = random_bit_flips(adapter, X, k=k, n_draws=draws, seed=3)
    again = random_bit_flips(adapter, X, k=k, n_draws=draws, seed=3)
    assert torch.equal(null.params["sites"], again.params["sites"]) and null.kind == "bit_flips"
    sites = null.params["sites"]
    assert (sites < 8).all()  # continuous features never flip
    assert (sites[..., 0] != sites[..., 1]).all()
    edited = X[:, None].repeat(1, draws, 1)
    for i in range(3):
        for j in range(draws):
            for f in sites[i, j].tolist():
                edited[i, j, f] = 1 - edited[i, j, f]
    assert ((edited != X[:, None]).sum(dim=2) == k).all()
    with torch.no_grad():
        direct = model(edited.reshape(-1, 10))[:, 0].reshape(3, draws) - model(X)[:, 0][:, None]
    torch.testing.assert_close(null.deltas, direct, atol=1e-5, rtol=1e-4)
    masked = random_bit_flips(adapter, X, k=1, n_draws=20, seed=3, features=[1, 4])
    assert set(masked.params["sites"].reshape(-1).tolist()) <= {1, 4}


def test_compare_counts_only_draws_that_were_made_and_gives_nan_without_any():
    model = ToyConv(seed=3)
    adapter = SequenceModel(model, output=outputs.logit(1), device="cpu", batch_size=64)
    # the second sequence has two editable positions: no draw of three substitutions can be made
    null = random_substitutions(adapter, ["ACGTACGTAC", "NNNNNNACNN"], k=3, n_draws=40, seed=0)
    assert not null.deltas[0].isnan().any() and null.deltas[1].isnan().all()
    stats = null.compare(torch.tensor([0.01, 0.01]))
    random = null.deltas[0]
    expected_p = (1 + int((random >= 0.01).sum())) / (1 + random.numel())
    assert stats.p_value[0] == pytest.approx(expected_p)
    assert stats.random_mean[0] == pytest.approx(float(random.mean()), rel=1e-5)
    assert stats.random_std[0] == pytest.approx(float(random.std()), rel=1e-4)
    assert stats.iloc[1][["p_value", "ratio", "z", "random_mean"]].isna().all()
    assert null.summary().iloc[1][["mean", "std", "min", "max"]].isna().all()
    assert null.compare(torch.tensor([float("nan"), 0.01])).p_value.isna()[0]  # no adversarial change: no p-value


def test_each_input_draws_the_same_edits_alone_or_among_others():
    adapter = SequenceModel(ToyConv(seed=3), output=outputs.logit(1), device="cpu", batch_size=64)
    X = one_hot(random_sequences(4, 16, seed=9))
    together = random_substitutions(adapter, X, k=2, n_draws=30, seed=5)
    alone = random_substitutions(adapter, X[2:3], k=2, n_draws=30, seed=5)
    assert torch.equal(together.params["sites"][2], alone.params["sites"][0])
    assert torch.equal(together.params["values"][2], alone.params["values"][0])
    torch.testing.assert_close(together.deltas[2], alone.deltas[0])
    other_seed = random_substitutions(adapter, X[2:3], k=2, n_draws=30, seed=6)
    assert not torch.equal(other_seed.params["sites"][0], alone.params["sites"][0])
