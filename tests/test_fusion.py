"""Several inputs at once: single-modality views against the full model, modality importance, bad inputs."""

import pytest
import torch
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.fusion import MultiInputModel, modality_importance
from probekit.search.discrete import min_substitutions
from probekit.testing import random_sequences

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


class DnaAndTracks(nn.Module):
    """DNA (N, 4, L) or (N, L, 4) and tracks (N, 2, L): uses DNA, tracks or both."""

    def __init__(self, use=("dna", "tracks"), length=12, nlc=False):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w_dna = nn.Parameter(torch.randn(4, length, generator=generator))
        self.w_tracks = nn.Parameter(torch.randn(2, length, generator=generator))
        self.use, self.nlc = use, nlc

    def forward(self, dna, tracks):
        dna = dna.transpose(1, 2) if self.nlc else dna
        out = torch.zeros(dna.shape[0], device=dna.device)
        if "dna" in self.use:
            out = out + (dna * self.w_dna).sum(dim=(1, 2))
        if "tracks" in self.use:
            out = out + (tracks * self.w_tracks).sum(dim=(1, 2))
        return out[:, None]


def _model(use=("dna", "tracks"), nlc=False, call="positional"):
    dna = {"kind": "dna", "layout": "NLC"} if nlc else "dna"
    return MultiInputModel(DnaAndTracks(use, nlc=nlc), inputs={"dna": dna, "tracks": {"kind": "features", "shape": (2, 12)}},
                           output=outputs.value(0), device="cpu", call=call)  # fmt: skip


def _inputs(n=3):
    return {"dna": random_sequences(n, 12, seed=4), "tracks": torch.randn(n, 2, 12, generator=torch.Generator().manual_seed(1))}


@pytest.mark.parametrize("nlc", [False, True])
def test_views_score_as_the_full_model_with_the_other_inputs_fixed(nlc):
    model = _model(nlc=nlc)
    inputs = _inputs()
    net = model.model
    with torch.no_grad():
        dna = model.encode_one("dna", inputs["dna"])
        explicit = net(dna.transpose(1, 2) if nlc else dna, inputs["tracks"])[:, 0]
    assert torch.allclose(model.score(inputs), explicit, atol=1e-5)
    for i in range(3):
        dna_view = model.modality("dna", fixed={"tracks": inputs["tracks"][i]})
        tracks_view = model.modality("tracks", fixed={"dna": inputs["dna"][i]})
        assert isinstance(dna_view, SequenceModel) and isinstance(tracks_view, FeatureModel)
        # every sequence with example i's tracks, and every track set with example i's sequence
        with_tracks = model.score({"dna": inputs["dna"], "tracks": inputs["tracks"][i : i + 1].expand(3, 2, 12)})
        with_dna = model.score({"dna": [inputs["dna"][i]] * 3, "tracks": inputs["tracks"]})
        assert torch.allclose(dna_view.score(inputs["dna"]), with_tracks, atol=1e-5)
        assert torch.allclose(tracks_view.score(tracks_view.encode(inputs["tracks"])), with_dna, atol=1e-5)


def test_keyword_calls_and_searches_on_a_view():
    model = _model(call="keyword")
    inputs = _inputs(1)
    view = model.modality("dna", fixed={"tracks": inputs["tracks"][0]})
    result = min_substitutions(view, inputs["dna"], goal=goals.decrease(by=1.0), max_edits=2)
    assert result.success.all()
    after = model.score({"dna": [_decode(result.sequences)], "tracks": inputs["tracks"]})
    assert torch.allclose(after, result.score_after, atol=1e-5)


def _decode(X):
    from probekit.encode.dna import decode

    return decode(X)[0]


@pytest.mark.parametrize("use,strong,weak", [(("dna",), "dna", "tracks"), (("tracks",), "tracks", "dna")])
def test_importance_of_the_modality_the_model_uses(use, strong, weak):
    table = modality_importance(_model(use), _inputs(2), eps=0.5, n_draws=60, seed=0)
    assert len(table) == 4
    hi = table[table["modality"] == strong]
    lo = table[table["modality"] == weak]
    assert (hi["importance"] > 0.5).all() and (hi["rank"] == 1).all()
    assert (hi["p_value"] <= 2 / 61).all() and (hi["ratio"] > 1).all()
    assert (lo["importance"] < 1e-6).all() and (lo["p_value"] == 1.0).all()


class DrugTarget(nn.Module):
    """A fingerprint (N, 32) and a one-hot protein (N, 20, L)."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.fp = nn.Parameter(torch.randn(32, generator=generator))
        self.conv = nn.Parameter(torch.randn(1, 20, 3, generator=generator))

    def forward(self, fingerprint, protein):
        site = torch.nn.functional.conv1d(protein, self.conv).amax(dim=-1)[:, 0]
        return (fingerprint @ self.fp + site)[:, None]


def test_drug_target_model_over_smiles_and_protein():
    from probekit.encode.mol import Morgan

    model = MultiInputModel(
        DrugTarget(),
        inputs={"drug": {"kind": "features", "featurizer": Morgan(radius=2, n_bits=32)},
                "target": {"kind": "sequence", "alphabet": PROTEIN}},
        output=outputs.value(0), device="cpu",
    )  # fmt: skip
    inputs = {"drug": ["CCO", "c1ccccc1O"], "target": ["MKTAYIAKQR", "MKTWYIAKQR"]}
    scores = model.score(inputs)
    drug_view = model.modality("drug", fixed={"target": "MKTAYIAKQR"})
    target_view = model.modality("target", fixed={"drug": "CCO"})
    assert torch.allclose(drug_view.score(["CCO"]), scores[:1], atol=1e-5)
    assert torch.allclose(target_view.score(["MKTAYIAKQR"]), scores[:1], atol=1e-5)
    table = modality_importance(model, inputs, k=1, n_draws=30)
    assert set(table["kind"]) == {"bit flips", "substitutions"}
    assert (table["importance"] > 0).all()


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="takes 2 inputs .* describes 3"):
        MultiInputModel(DnaAndTracks(), inputs={"dna": "dna", "tracks": "features", "extra": "features"}, output=0)
    with pytest.raises(ValueError, match="no parameters named"):
        MultiInputModel(DnaAndTracks(), inputs={"seq": "dna", "tracks": "features"}, output=0, call="keyword")
    model = _model()
    inputs = _inputs()
    with pytest.raises(ValueError, match="unknown modality 'atac'"):
        model.modality("atac", fixed={"dna": inputs["dna"][0]})
    with pytest.raises(ValueError, match="unknown modality 'atac'"):
        model.score({**inputs, "atac": inputs["tracks"]})
    with pytest.raises(ValueError, match="lack 'tracks'"):
        model.score({"dna": inputs["dna"]})
    with pytest.raises(ValueError, match="fixed= lacks 'tracks'"):
        model.modality("dna", fixed={})
    with pytest.raises(ValueError, match="holds 3 examples"):
        model.modality("dna", fixed={"tracks": inputs["tracks"]})
    with pytest.raises(ValueError, match="different numbers of examples"):
        model.score({"dna": inputs["dna"][:2], "tracks": inputs["tracks"]})
    with pytest.raises(ValueError, match="kind must be one of"):
        MultiInputModel(DnaAndTracks(), inputs={"dna": "rna", "tracks": "features"}, output=0)
    with pytest.raises(ValueError, match="needs its alphabet"):
        MultiInputModel(DnaAndTracks(), inputs={"dna": "sequence", "tracks": "features"}, output=0)
    with pytest.raises(ValueError, match="give eps="):
        modality_importance(model, inputs, n_draws=5)
