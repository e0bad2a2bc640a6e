"""check_adapter catches broken adapters and passes good ones; toy models are what they say."""

import pytest
import torch
from torch import nn

from probekit import SequenceModel, outputs
from probekit.encode.dna import one_hot
from probekit.testing import MotifCounter, ToyConv, check_adapter, random_sequences




def test_good_adapter_passes():
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    report = check_adapter(adapter, one_hot(random_sequences(4, 12)))
    assert report["passed"].all()
    assert set(report["check"]) >= {"batch-size invariance", "model state restored", "gradient shape"}


def test_batch_dependent_model_fails_loudly():
    class BatchNormTrainLike(nn.Module):
        def forward(self, x):
            s = x[:, 0].sum(-1)
            return (s - s.mean())[:, None]

    adapter = SequenceModel(BatchNormTrainLike(), output=0, device="cpu", batch_size=8)
    with pytest.raises(AssertionError, match="batch size 1"):
        check_adapter(adapter, one_hot(random_sequences(4, 12)))
    report = check_adapter(adapter, one_hot(random_sequences(4, 12)), raise_on_failure=False)
    assert not report.set_index("check").loc["batch-size invariance", "passed"]


def test_non_scalar_output_fails_with_reason():
    adapter = SequenceModel(ToyConv(), output=lambda y: y, device="cpu")
    report = check_adapter(adapter, one_hot(random_sequences(3, 12)), raise_on_failure=False)
    assert not report["passed"].iloc[0]
    assert "one scalar per input" in report["detail"].iloc[0]


def test_motif_counter_counts():
    model = MotifCounter("TGACTCA")
    X = one_hot(["TGACTCAATGACTCA", "AAAAAAAAAAAAAAA", "TGACTCTAAAAAAAA"])
    assert model(X)[:, 0].tolist() == [2.0, 0.0, 0.0]
