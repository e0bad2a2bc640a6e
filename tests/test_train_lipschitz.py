"""Lipschitz-constrained models: the KKT solution against a convex solver, and the bound L * delta on samples."""

import pytest
import torch

from probekit import FeatureModel, outputs
from probekit.certify import lipschitz
from probekit.train import constrained_linear, fit, spectral_norm, track_lipschitz
from probekit.train.lipschitz import strip


def _regression(n=60, f=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, f, generator=g, dtype=torch.float64)
    w = torch.randn(f, generator=g, dtype=torch.float64) * 2
    return X, X @ w + 1.5 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)


def _cvxpy_solution(X, y, bound, norm):
    cp = pytest.importorskip("cvxpy")
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    p = {"l2": 2, "l1": 1, "linf": "inf"}[norm]
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(X.numpy() @ w + b - y.numpy())), [cp.norm(w, p) <= bound])
    problem.solve(solver=cp.CLARABEL)
    return torch.tensor(w.value), float(b.value), problem.constraints[0].dual_value


@pytest.mark.parametrize("bound", [0.5, 2.0, 100.0])
def test_kkt_solution_equals_the_convex_solver(bound):
    X, y = _regression()
    model, info = constrained_linear(X, y, bound=bound, method="kkt")
    w_ref, b_ref, dual = _cvxpy_solution(X, y, bound, "l2")
    assert torch.allclose(info["weight"], w_ref, atol=1e-5, rtol=1e-5)
    assert info["bias"] == pytest.approx(b_ref, abs=1e-5)
    assert info["weight_norm"] <= bound * (1 + 1e-9)
    if info["active"]:
        # stationarity: X'(X w + b - y) + lam w = 0, and the solver's multiplier of ||w|| <= L is lam * L
        assert info["multiplier"] * bound == pytest.approx(float(dual), rel=1e-3)
    else:
        assert info["multiplier"] == 0.0


@pytest.mark.parametrize("norm", ["l2", "l1", "linf"])
def test_projected_gradient_equals_the_convex_solver(norm):
    X, y = _regression(n=40, f=5)
    _, info = constrained_linear(X, y, bound=1.0, norm=norm, method="projected")
    w_ref, b_ref, _ = _cvxpy_solution(X, y, 1.0, norm)
    assert torch.allclose(info["weight"], w_ref, atol=1e-4)
    assert info["bias"] == pytest.approx(b_ref, abs=1e-4)


def test_output_error_bound_holds_on_sampled_perturbations():
    X, y = _regression()
    bound = 0.8
    model, info = constrained_linear(X, y, bound=bound)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    L = lipschitz(adapter, norm="l2", input_shape=(X.shape[1],)).upper
    assert L <= bound * (1 + 1e-5)
    g = torch.Generator().manual_seed(0)
    Xf = X.float()
    base = adapter.score(Xf)
    violations = 0
    for delta_size in (1e-3, 0.1, 1.0, 10.0):
        d = torch.randn(Xf.shape, generator=g)
        d = d / d.norm(dim=1, keepdim=True) * delta_size
        moved = (adapter.score(Xf + d) - base).abs()
        violations += int((moved > L * delta_size * (1 + 1e-5) + 1e-5).sum())
    assert violations == 0
    unconstrained, _ = constrained_linear(X, y, bound=1e9)
    assert lipschitz(unconstrained, input_shape=(X.shape[1],)).upper > L


def test_spectral_norm_bounds_each_linear_layer_and_is_tracked():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    constrained = spectral_norm(net, n_power_iterations=5)
    X, y = torch.randn(64, 4), torch.randn(64)
    trained, history = fit(constrained, (X, y), epochs=3, lr=0.05, device="cpu",
                           callbacks=[track_lipschitz(input_shape=(4,))])
    assert "lipschitz" in history.columns and any(c.startswith("lipschitz[") for c in history.columns)
    plain = strip(trained)
    for layer in (plain[0], plain[2]):
        assert float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2)) <= 1.0 + 1e-2
    assert history["lipschitz"].iloc[-1] <= 1.0 + 2e-2
    assert not hasattr(net[0], "parametrizations")


def test_bad_inputs_give_clear_errors():
    X, y = _regression(n=10, f=3)
    with pytest.raises(ValueError, match="bound"):
        constrained_linear(X, y, bound=-1.0)
    with pytest.raises(ValueError, match="KKT"):
        constrained_linear(X, y, bound=1.0, norm="l1", method="kkt")
    with pytest.raises(ValueError, match="10 rows but y has 9"):
        constrained_linear(X, y[:9], bound=1.0)
    with pytest.raises(ValueError, match="scale"):
        spectral_norm(torch.nn.Linear(2, 2), scale=0.0)
    model, info = constrained_linear(X, y, bound=0.0)
    assert info["weight_norm"] == 0.0
