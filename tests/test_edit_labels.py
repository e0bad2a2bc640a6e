"""Edit lists read unambiguously: DNA as 12A>G, features as name: old->new."""

import torch

from probekit import FeatureModel, goals, outputs, search


def test_bit_flip_summaries_write_feature_old_and_new_apart():
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, 1.0, 0.0]]))
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu", kinds="binary", feature_names=["f0", "f00", "morgan2_4170"])
    result = search.bit_flips(adapter, torch.tensor([[1.0, 1.0, 0.0]]), goal=goals.below(0.5), max_flips=2)
    assert result.summary()["edits"][0] == "f0: 1->0; f00: 1->0"


def test_dna_edits_keep_their_short_form():
    from probekit.results import edits_text

    assert edits_text([(1, "G", "C"), (13, "G", "A")]) == "1G>C 13G>A"
