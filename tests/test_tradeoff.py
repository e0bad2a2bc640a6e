"""The trade-off table: certified <= robust <= clean, the same numbers as the searches and certificates alone."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from probekit import FeatureModel, SequenceModel, certify, goals, outputs  # noqa: E402
from probekit.search import pgd  # noqa: E402
from probekit.testing import ToyConv, random_sequences  # noqa: E402
from probekit.tradeoff import plot_tradeoff, tradeoff  # noqa: E402


def _classifier():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return FeatureModel(model, output=outputs.logit(1), device="cpu")


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g)
    return X, (X[:, 0] > 0).long()


def _value(table, **where):
    rows = table
    for key, v in where.items():
        rows = rows[rows[key] == v]
    assert len(rows) == 1, where
    return float(rows["value"].iloc[0])


def test_feature_model_table_orders_clean_robust_and_certified():
    adapter = _classifier()
    X, y = _data()
    eps = [0.0, 0.05, 0.2]
    table = tradeoff({"mlp": adapter}, X, y, eps=eps, attacks=["pgd", "fgsm"], certificates=["ibp", "crown", "smoothing"],
                     sigma=0.25, n_smoothing=200, steps=10)
    clean = _value(table, metric="accuracy")
    right = adapter.predict(X).argmax(1) == y
    assert clean == pytest.approx(float(right.float().mean()))
    for e in eps:
        robust = _value(table, metric="robust accuracy", method="pgd", size=e)
        ibp = _value(table, metric="certified accuracy", method="ibp", size=e)
        crown = _value(table, metric="certified accuracy", method="crown", size=e)
        assert ibp <= crown <= robust <= clean
    assert _value(table, metric="robust accuracy", method="pgd", size=0.0) == clean
    # the same number as the attack run by hand
    rows = torch.nonzero(right)[:, 0]
    broken = pgd(adapter, X[rows], goal=goals.flip(), eps=0.2, steps=10).success
    assert _value(table, metric="robust accuracy", method="pgd", size=0.2) == pytest.approx(
        float((~broken).sum()) / len(X))
    smoothing = table[table["method"].str.startswith("smoothing")]
    assert list(smoothing["size"]) == eps and smoothing["value"].is_monotonic_decreasing


def test_dna_table_over_k_substitutions():
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    X = adapter.encode(random_sequences(12, 10, seed=0))
    y = adapter.predict(X).argmax(1)
    y[:3] = 1 - y[:3]
    table = tradeoff([adapter, adapter.replace(model=ToyConv(seed=1))], X, y, k=[0, 1, 2],
                     certificates=["ibp", "crown", "substitutions"])
    assert set(table["model"]) == {"model0", "model1"}
    for name in ("model0", "model1"):
        part = table[table["model"] == name]
        for k in (1, 2):
            robust = _value(part, metric="robust accuracy", size=k)
            exact = _value(part, metric="certified accuracy", method="substitutions", size=k)
            assert _value(part, metric="certified accuracy", method="ibp", size=k) <= exact <= robust
        assert _value(part, metric="certified accuracy", method="substitutions", size=0) == _value(part, metric="accuracy")
    status = certify.substitutions(adapter, X[3:], k=1).status
    assert _value(table[table["model"] == "model0"], metric="certified accuracy", method="substitutions", size=1) == \
        pytest.approx(sum(s == "certified" for s in status) / 12)
    ax = plot_tradeoff(table)
    assert ax.get_xlabel() == "k"


def test_regression_rows_bound_the_worst_error():
    torch.manual_seed(0)
    adapter = FeatureModel(torch.nn.Linear(3, 1), output=outputs.value(0), device="cpu")
    X = torch.randn(30, 3)
    t = adapter.score(X) + 0.1 * torch.randn(30)
    table = tradeoff({"linear": adapter}, X, t, eps=[0.1], certificates=["ibp"], steps=10)
    assert set(table["metric"]) == {"r2", "rmse", "robust rmse", "certified rmse"}
    robust, bound = _value(table, metric="robust rmse"), _value(table, metric="certified rmse")
    assert _value(table, metric="rmse") <= robust <= bound + 1e-5
    # a linear model's worst case is exact: the attack reaches the bound
    assert robust == pytest.approx(bound, rel=1e-4)


def test_bad_inputs_give_clear_errors():
    adapter = _classifier()
    X, y = _data()
    with pytest.raises(ValueError, match="eps"):
        tradeoff([adapter], X, y, eps=[-0.1])
    with pytest.raises(ValueError, match="k must"):
        tradeoff([adapter], X, y, k=[-1])
    with pytest.raises(ValueError, match="40 inputs but 39"):
        tradeoff([adapter], X, y[:39], eps=[0.1])
    with pytest.raises(ValueError, match="unknown attacks"):
        tradeoff([adapter], X, y, attacks=["cw"])
    with pytest.raises(ValueError, match="sigma"):
        tradeoff([adapter], X, y, eps=[0.1], certificates=["smoothing"])
