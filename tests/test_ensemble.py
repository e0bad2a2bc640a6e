"""Ensemble adapter: mean and spread against explicit per-member passes, per-member ISM, probe, bad inputs."""

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs, probe
from probekit.certify import Smoothed
from probekit.encode.dna import reverse_complement
from probekit.ensemble import (
    Ensemble, IncompatibleMembers, from_checkpoints, mc_dropout, member_ism, sensitivity, split_critical,
)  # fmt: skip
from probekit.search.continuous import pgd
from probekit.search.discrete import min_substitutions, saturation_mutagenesis
from probekit.testing import MotifCounter, ToyConv, check_adapter, random_sequences


class _TakesNLC(nn.Module):
    """ToyConv behind an (N, L, 4) interface."""

    def __init__(self, seed):
        super().__init__()
        self.net = ToyConv(seed=seed)

    def forward(self, x):
        return self.net(x.transpose(1, 2))


def _dna_members(device="cpu"):
    return [
        SequenceModel(ToyConv(seed=0), output=1, device=device),
        SequenceModel(ToyConv(seed=1), output=1, device=device, strands="both"),
        SequenceModel(_TakesNLC(seed=2), output=1, device=device, layout="NLC"),
    ]


def _explicit_outputs(X):
    """Each member's raw output (M, N, 2), computed by hand."""
    with torch.no_grad():
        a = ToyConv(seed=0)(X)
        b0 = ToyConv(seed=1)
        b = 0.5 * (b0(X) + b0(reverse_complement(X)))
        c = ToyConv(seed=2)(X)
    return torch.stack([a, b, c])


def test_mean_and_spread_match_explicit_member_passes(device):
    ensemble = Ensemble(_dna_members(device))
    X = ensemble.encode(random_sequences(6, 25, seed=3))
    raw = _explicit_outputs(X.cpu())
    assert torch.allclose(ensemble.predict(X).cpu(), raw.mean(0), atol=1e-5)
    assert torch.allclose(ensemble.score(X).cpu(), raw.mean(0)[:, 1], atol=1e-5)
    assert torch.allclose(ensemble.member_scores(X).cpu(), raw[:, :, 1], atol=1e-5)
    assert torch.allclose(ensemble.spread(X).cpu(), raw[:, :, 1].std(0, correction=0), atol=1e-5)
    votes = raw.argmax(dim=2)  # (M, N)
    majority = torch.mode(votes, dim=0).values
    expected = 1 - (votes == majority).float().mean(0)
    assert torch.allclose(ensemble.disagreement(X).cpu(), expected)


def test_vote_disagreement_of_a_single_score():
    signs = (1.0, -1.0, 1.0, 1.0, -1.0)
    members = [FeatureModel(lambda x, s=s: s * x, output=outputs.margin(0), device="cpu") for s in signs]
    ensemble = Ensemble(members)
    X = torch.tensor([[1.0], [-2.0]])
    assert ensemble.member_calls(X).tolist() == [[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]]
    assert torch.allclose(ensemble.disagreement(X), torch.tensor([0.4, 0.4]))


def test_check_adapter_passes_on_ensembles():
    ensemble = Ensemble(_dna_members())
    report = check_adapter(ensemble, ensemble.encode(random_sequences(4, 20, seed=1)))
    assert report["passed"].all()
    features = Ensemble([FeatureModel(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)), output=outputs.value(0),
                                      device="cpu") for _ in range(3)])  # fmt: skip
    assert check_adapter(features, torch.randn(4, 5, generator=torch.Generator().manual_seed(0)))["passed"].all()


def test_ism_per_member_equals_each_members_own_ism():
    members = _dna_members()
    ensemble = Ensemble(members)
    X = ensemble.encode(random_sequences(3, 18, seed=5))
    result = member_ism(ensemble, X)
    assert result.effects.shape == (3, 3, 18, 4)
    for k, member in enumerate(members):
        own = saturation_mutagenesis(member, X).effects
        assert torch.allclose(result.effects[k], own, atol=1e-6)
    assert torch.allclose(result.mean, result.effects.mean(0))
    assert torch.allclose(result.spread, result.effects.std(0, correction=0))
    # the ensemble's own ISM of a linear output is the mean of the members' ISM
    assert torch.allclose(saturation_mutagenesis(ensemble, X).effects, result.mean, atol=1e-5)


def _motif_ensemble():
    # two members read the full AP-1 site, one only its first six bases
    motifs = ("TGACTCA", "TGACTCA", "TGACTC")
    return Ensemble([SequenceModel(MotifCounter(m), output=0, device="cpu") for m in motifs])


def _site_sequence(length=200, at=90):
    # A and C only: no single substitution makes a new site
    background = random_sequences(1, length, seed=11)[0].replace("G", "A").replace("T", "C")
    return background[:at] + "TGACTCA" + background[at + 7 :]


def test_probe_on_an_ensemble_splits_critical_positions():
    ensemble = _motif_ensemble()
    sequence = _site_sequence()
    report = probe(ensemble, [sequence], goal=goals.below(0.5), baseline_draws=20, max_edits=2)
    assert report.summary()["error"].isna().all()
    split = split_critical(ensemble, report)
    shared = sorted(split.loc[split["agreement"] == "shared", "position"])
    partial = sorted(split.loc[split["agreement"] == "partial", "position"])
    assert shared == list(range(90, 96))
    assert partial == [96]
    assert split.loc[split["position"] == 96, "n_critical"].item() == 2
    assert (split["n_members"] == 3).all()
    # the same split from the members' own ISM
    own = member_ism(ensemble, [sequence])
    assert own.shared[0].nonzero().flatten().tolist() == shared
    assert own.partial[0].nonzero().flatten().tolist() == partial


def test_sensitivity_with_attributions_splits_features():
    weights = torch.tensor([[4.0, 0.1, 0.3, 0.2, 0.15, 0.25, 0.05, 0.12], [4.0, 0.1, 0.3, 0.2, 0.15, 0.25, 0.05, 3.0]])
    members = [FeatureModel(lambda x, w=w: (x * w).sum(1, keepdim=True), output=outputs.value(0), device="cpu")
               for w in weights]  # fmt: skip
    result = sensitivity(Ensemble(members), torch.ones(2, 8), method="input_x_gradient")
    assert result.importance.shape == (2, 2, 8)
    frame = result.to_frame()
    assert frame.loc[frame["feature"] == "f0", "agreement"].tolist() == ["shared", "shared"]
    assert frame.loc[frame["feature"] == "f7", "agreement"].tolist() == ["partial", "partial"]
    assert set(frame.loc[~frame["feature"].isin(["f0", "f7"]), "agreement"]) == {"none"}
    assert result.summary()["top_shared"].tolist() == ["f0", "f0"]


def test_searches_accept_an_ensemble():
    ensemble = Ensemble(_dna_members())
    X = ensemble.encode(random_sequences(3, 16, seed=2))
    result = min_substitutions(ensemble, X, goal=goals.flip(), max_edits=2)
    edited = ensemble.score(result.sequences)
    assert torch.equal(result.success, torch.sign(edited) != torch.sign(result.score_before)) or result.success.any()
    features = Ensemble([FeatureModel(nn.Linear(3, 1), output=outputs.value(0), device="cpu") for _ in range(2)])
    out = pgd(features, torch.zeros(2, 3), goal=goals.decrease(by=0.1), eps=1.0)
    assert out.success.all()


def test_mc_dropout_members_are_fixed_thinned_networks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 2))
    adapter = FeatureModel(net, output=1, device="cpu")
    ensemble = mc_dropout(adapter, n=5, seed=1)
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    scores = ensemble.member_scores(X)
    assert len({tuple(row.tolist()) for row in scores}) == 5  # every pass differs
    assert check_adapter(ensemble, X)["passed"].all()  # deterministic and batch-invariant
    assert isinstance(net[2], nn.Dropout)  # the user's model is not changed
    assert all(m.model[0].weight is net[0].weight for m in ensemble.members)  # weights are shared, not copied
    with pytest.raises(ValueError, match="no dropout"):
        mc_dropout(FeatureModel(nn.Linear(4, 1), output=0, device="cpu"), n=3)


def test_checkpoints_make_an_ensemble(tmp_path):
    models = [nn.Linear(3, 2) for _ in range(3)]
    paths = []
    for i, model in enumerate(models):
        paths.append(tmp_path / f"ckpt{i}.pt")
        torch.save(model.state_dict(), paths[-1])
    ensemble = from_checkpoints(FeatureModel(nn.Linear(3, 2), output=0, device="cpu"), paths)
    X = torch.randn(4, 3)
    with torch.no_grad():
        expected = torch.stack([m(X) for m in models]).mean(0)
    assert torch.allclose(ensemble.predict(X), expected, atol=1e-6)


def test_replace_keeps_members_in_step():
    ensemble = Ensemble([FeatureModel(nn.Linear(2, 3), output=0, device="cpu") for _ in range(2)])
    other = ensemble.replace(output=2)
    assert [m.output.name for m in other.members] == ["logit[2]", "logit[2]"]
    X = torch.randn(3, 2)
    assert torch.allclose(other.score(X), other.member_scores(X).mean(0), atol=1e-6)
    assert ensemble.output.name == "logit[0]"


def test_incompatible_members_give_clear_errors():
    with pytest.raises(IncompatibleMembers, match=r"member 1 returns output of shape \(2, 3\)"):
        Ensemble([SequenceModel(ToyConv(2), output=0, device="cpu"), SequenceModel(ToyConv(3), output=0, device="cpu")]).score(
            ["ACGTACGT", "ACGTTTTT"]
        )
    with pytest.raises(ValueError, match="alphabet"):
        Ensemble([SequenceModel(ToyConv(), output=0, device="cpu"),
                  SequenceModel(ToyConv(), output=0, alphabet="ACGU", device="cpu")])  # fmt: skip
    with pytest.raises(TypeError, match="not a mix"):
        Ensemble([SequenceModel(ToyConv(), output=0, device="cpu"), FeatureModel(nn.Linear(2, 1), output=0, device="cpu")])
    with pytest.raises(ValueError, match="at least two"):
        Ensemble([SequenceModel(ToyConv(), output=0, device="cpu")])
    with pytest.raises(TypeError, match="like="):
        Ensemble([ToyConv(), ToyConv()])
    with pytest.raises(ValueError, match="different outputs"):
        Ensemble([FeatureModel(nn.Linear(2, 2), output=0, device="cpu"), FeatureModel(nn.Linear(2, 2), output=1, device="cpu")])
    with pytest.raises(ValueError, match="takes 3 features"):
        Ensemble([FeatureModel(nn.Linear(2, 1), output=0, feature_names=["a", "b"], device="cpu"),
                  FeatureModel(nn.Linear(3, 1), output=0, feature_names=["a", "b", "c"], device="cpu")])  # fmt: skip
    base = FeatureModel(nn.Linear(2, 2), output=1, device="cpu")
    with pytest.raises(TypeError, match="Smoothed"):
        Ensemble([Smoothed(base, sigma=0.1, n=4), base])


def test_models_with_like_take_its_settings():
    like = SequenceModel(ToyConv(), output=outputs.margin(1), device="cpu")
    ensemble = Ensemble([ToyConv(seed=1), ToyConv(seed=2)], like=like)
    assert ensemble.output.name == "margin[1]" and isinstance(ensemble, SequenceModel) and isinstance(ensemble, Ensemble)
    assert len(ensemble) == 2


def test_sensitivity_of_dna_members_by_attribution():
    ensemble = Ensemble(_dna_members())
    result = sensitivity(ensemble, random_sequences(2, 15, seed=8), method="saliency", ids=["a", "b"])
    assert result.effects.shape == (3, 2, 4, 15) and result.importance.shape == (3, 2, 15)
    frame = result.to_frame()
    assert list(frame.columns[:3]) == ["id", "position", "ref"] and len(frame) == 30
    assert set(frame["agreement"]) <= {"shared", "partial", "none"}
