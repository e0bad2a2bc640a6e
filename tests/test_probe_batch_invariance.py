"""A report is the same at any batch size: 1, 7, 32 and the automatic choice."""

import pandas as pd
import pytest
import torch

import probekit
from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.testing import MotifCounter, ToyConv, random_sequences

BATCHES = [1, 7, 32, "auto"]


def _assert_same_tables(a, b):
    assert a.table_names == b.table_names
    for name in a.table_names:
        left, right = a.table(name), b.table(name)
        assert list(left.columns) == list(right.columns), name
        assert len(left) == len(right), name
        for column in left.columns:
            x, y = left[column], right[column]
            if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
                assert torch.allclose(
                    torch.tensor(x.to_numpy(dtype=float)), torch.tensor(y.to_numpy(dtype=float)),
                    rtol=1e-5, atol=1e-6, equal_nan=True,
                ), f"{name}.{column}"  # fmt: skip
            else:
                assert x.astype(object).where(x.notna(), None).tolist() == y.astype(object).where(y.notna(), None).tolist(), (
                    f"{name}.{column}"
                )


@pytest.mark.parametrize("model", [ToyConv(channels=8, kernel=5, seed=3), MotifCounter("TGACTCA")], ids=["conv", "motif"])
def test_dna_report_is_the_same_at_every_batch_size(model):
    seqs = random_sequences(6, 30, seed=4)
    seqs[1] = seqs[1][:10] + "TGACTCA" + seqs[1][17:]
    goal = goals.flip() if isinstance(model, ToyConv) else goals.below(0.5)
    output = 1 if isinstance(model, ToyConv) else 0
    reports = [
        probekit.probe(SequenceModel(model, output=output, device="cpu", batch_size=b), seqs, goal=goal, max_edits=2,
                       baseline_draws=30, seed=1)
        for b in BATCHES
    ]  # fmt: skip
    for other in reports[1:]:
        _assert_same_tables(reports[0], other)


def test_molecule_report_is_the_same_at_every_batch_size():
    from probekit.encode.mol import Morgan

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    smiles = ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1O", "CCN(CC)CC", "OCC(O)CO", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]
    reports = []
    for b in BATCHES:
        adapter = FeatureModel(model, featurizer=Morgan(radius=2, n_bits=128), output=outputs.value(0), device="cpu",
                               batch_size=b)  # fmt: skip
        reports.append(probekit.probe(adapter, smiles, goal=goals.decrease(0.05), baseline_draws=30, max_edits=2))
    for other in reports[1:]:
        _assert_same_tables(reports[0], other)
