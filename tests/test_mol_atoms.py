"""Atom importance recovers a structure-activity rule planted on real ChEMBL molecules."""

import numpy as np
import pytest
import torch

from probekit import FeatureModel, outputs
from probekit._warnings import ProbekitWarning
from probekit.encode.mol import Morgan
from probekit.mol_demo import planted_atom_recovery, planted_rule_set, train_planted_model
from probekit.probe.molecules import probe_features


@pytest.fixture(scope="module")
def planted():
    """80 CHEMBL2321810 compounds, half with a CF3 group worth +2 pIC50, and an MLP trained on that rule."""
    frame = planted_rule_set("C(F)(F)F", n=80, seed=0)
    fp = Morgan(2, 1024)
    model = train_planted_model(frame, fp, seed=0, epochs=40)
    return frame, fp, model


class Rounded(torch.nn.Module):
    """The same model reading its bits through ``torch.round``: the same scores, zero gradients."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x))


class Thresholded(torch.nn.Module):
    """The same model reading ``x > 0.5``: the same scores, no gradient path at all."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.gt(0.5).float())


def recovery(model, fp, frame, *, n=None, **options):
    """Fraction of the (first ``n``) molecules with the group whose top-ranked atom lies in it, and the report."""
    adapter = FeatureModel(model, featurizer=fp, output=outputs.value(0), device="cpu", batch_size=1024)
    carrying = frame[frame["has_group"]].head(n)
    report = probe_features(adapter, carrying, max_flips=1, baseline_draws=5, method="greedy", **options)
    return float(planted_atom_recovery(report, frame)["in_group"].mean()), report


def test_the_model_learnt_the_planted_rule(planted):
    frame, fp, model = planted
    with torch.no_grad():
        pred = model(fp.transform(frame)).squeeze(1).numpy()
    y = frame["affinity"].to_numpy()
    assert 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum() > 0.9
    # the group is worth about +2 to the model too
    gap = pred[frame["has_group"]].mean() - pred[~frame["has_group"]].mean()
    assert 1.5 < gap < 2.5


def test_default_ranks_an_atom_of_the_planted_group_first(planted):
    frame, fp, model = planted
    default, report = recovery(model, fp, frame)
    assert report.params["attribution"] == "auto"
    assert (report.summary()["attribution_method"] == "integrated_gradients").all()  # its gradients add up
    mean_baseline, _ = recovery(model, fp, frame, attribution="integrated_gradients", attribution_kwargs={"baseline": "mean"})
    assert default >= 0.9
    assert default >= mean_baseline


@pytest.mark.parametrize("wrapper", [Rounded, Thresholded])
def test_default_recovers_the_rule_of_a_model_without_gradients(planted, wrapper):
    frame, fp, model = planted
    net = wrapper(model)
    with pytest.warns(ProbekitWarning, match="Shapley values sampled from the zero baseline"):
        default, report = recovery(net, fp, frame, n=20)  # Shapley sampling costs 25 passes per feature
    assert (report.summary()["attribution_method"] == "shapley_sampling").all()
    assert default >= 0.9
    if wrapper is Rounded:  # integrated gradients alone see zero gradients: every atom ties, rank 1 is atom 0
        old, old_report = recovery(net, fp, frame, n=20, attribution="integrated_gradients")
        assert (old_report.to_frame()["attribution"] == 0).all()
        assert default >= old + 0.3
    else:  # no gradient path: integrated gradients alone cannot run
        with pytest.raises(RuntimeError):
            recovery(net, fp, frame, n=2, attribution="integrated_gradients")


def test_fallback_attributions_are_shapley_values_of_the_bits_present(planted):
    frame, fp, model = planted
    net = Rounded(model)
    adapter = FeatureModel(net, featurizer=fp, output=outputs.value(0), device="cpu")
    rows = frame[frame["has_group"]].head(2)
    with pytest.warns(ProbekitWarning):
        report = probe_features(adapter, rows, max_flips=1, baseline_draws=5, method="greedy")
    table = report.to_frame()
    X = fp.transform(rows)
    with torch.no_grad():
        change = (net(X) - net(torch.zeros(1, X.shape[1]))).squeeze(1).numpy()
    for k, id in enumerate(rows["id"]):
        mine = table[table["id"] == id].sort_values("index")["attribution"].to_numpy()
        assert mine.sum() == pytest.approx(change[k], abs=1e-4)  # every feature order adds up to f(x) - f(0)
        assert np.all(mine[X[k].numpy() == 0] == 0)  # an absent bit adds nothing in any order


def test_single_bit_ablation_misses_a_group_that_several_bits_encode(planted):
    """Why the default is not single-bit ablation: a model that reads a group from several redundant bits
    changes little when any one of them is removed, so other atoms outrank the group's."""
    frame, fp, _ = planted
    X, prov = fp.featurize(frame)
    carrying = np.flatnonzero(frame["has_group"].to_numpy())
    # bits whose environments lie inside the group wherever it is (for CF3: its carbon, and F-C)
    group_bits = [
        j for j in range(X.shape[1])
        if bool((X[carrying, j] > 0).any())
        and all(set(e["atoms"]) <= set(frame["group_atoms"][i]) for i in carrying for e in prov.environments(i, j))
    ]  # fmt: skip
    assert len(group_bits) >= 2

    class Redundant(torch.nn.Module):
        """+2 when any of the group's bits is present (the group read from either), plus a little per bit."""

        def forward(self, x):
            return (2.0 * x[:, group_bits].amax(dim=1) + 0.05 * x.sum(dim=1))[:, None]

    default, _ = recovery(Redundant(), fp, frame, n=20)
    ablation, _ = recovery(Redundant(), fp, frame, n=20, attribution="feature_ablation")
    assert default >= 0.9 and ablation <= 0.5
