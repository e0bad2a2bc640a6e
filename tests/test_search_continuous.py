"""Continuous searches against oracles: a hand-written PGD loop, captum's PGD, closed forms on linear models,
scipy for projections, and per-input bisection."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.search.continuous import (
    fgsm,
    min_perturbation,
    pgd,
    project,
    project_l1_ball,
    random_perturbation,
    vector_norm,
)
from probekit.testing import ToyConv


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one intra-op thread is faster than two and does not thrash a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def mlp(n_in=6, n_out=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, n_out))


def linear(w, b=0.0):
    model = torch.nn.Linear(len(w), 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w)[None])
        model.bias.fill_(b)
    return model


W = [1.0, -3.0, 0.5, 2.0]


# ------------------------------------------------------------- reference PGD
def reference_pgd(model, bound, X, eps, alpha, steps, norm):
    """Textbook PGD (no random start) that keeps the iterate furthest toward the goal.

    Iterates are ranked on the signed score (``bound.progress``), not on ``g``: with a far
    threshold ``g`` rounds to a constant in float32 and cannot tell iterates apart.
    """
    x0 = X.clone()
    x = x0.clone()
    best, best_p = x.clone(), torch.full((X.shape[0],), math.inf)
    for t in range(steps + 1):
        x = x.detach().requires_grad_(True)
        y = model(x)
        g, p = bound(y), bound.progress(y)
        (grad,) = torch.autograd.grad(g.sum(), x)
        better = p.detach() < best_p
        best[better], best_p[better] = x.detach()[better], p.detach()[better]
        if t == steps:
            break
        with torch.no_grad():
            if norm == "linf":
                x = torch.clamp(x - alpha * grad.sign(), x0 - eps, x0 + eps)
            else:
                x = x - alpha * grad / grad.norm(dim=1, keepdim=True)
                d = x - x0
                x = x0 + d * torch.clamp(eps / d.norm(dim=1, keepdim=True), max=1.0)
    return best, bound(model(best)).detach()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_equals_reference_loop(norm):
    model = mlp()
    adapter = FeatureModel(model, output=outputs.logit(1), device="cpu")
    X = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    goal = goals.decrease(by=1e6)  # never reached: every step runs
    bound = adapter.bind(goal, X)
    ours = pgd(adapter, X, goal=goal, eps=0.3, norm=norm, steps=12, step_size=0.05, early_stop=False)
    ref_x, ref_g = reference_pgd(model, bound, X, 0.3, 0.05, 12, norm)
    assert torch.allclose(ours.x_adv, ref_x, atol=1e-5)
    assert torch.allclose(bound(model(ours.x_adv)).detach(), ref_g, atol=1e-5)


def test_pgd_never_weaker_than_captum():
    from captum.robust import PGD

    model = mlp(seed=3)
    adapter = FeatureModel(model, output=outputs.margin(1), device="cpu", bounds=(-2.0, 2.0))
    X = torch.rand(24, 6, generator=torch.Generator().manual_seed(2)) * 2 - 1
    eps, alpha, steps = 0.25, 0.025, 20
    bound = adapter.bind(goals.flip(), X)
    captum_pgd = PGD(model, loss_func=lambda out, target: bound(out), lower_bound=-2.0, upper_bound=2.0)
    theirs = captum_pgd.perturb(X, radius=eps, step_size=alpha, step_num=steps, target=None, targeted=True)
    g_theirs = bound(model(theirs)).detach()
    ours = pgd(adapter, X, goal=goals.flip(), eps=eps, steps=steps, step_size=alpha)
    assert int(ours.success.sum()) >= int((g_theirs <= 0).sum())
    assert int(ours.success.sum()) > 0
    lost = g_theirs > 0  # where captum failed, our best iterate is at least as low
    g_ours = bound(model(ours.x_adv)).detach()
    assert (g_ours[lost] <= g_theirs[lost] + 1e-5).all()
    # with a goal never reached, the best iterate is never above captum's last one
    deep = adapter.bind(goals.decrease(by=1e6), X)
    captum_deep = PGD(model, loss_func=lambda out, target: deep(out), lower_bound=-2.0, upper_bound=2.0)
    last = captum_deep.perturb(X, radius=eps, step_size=alpha, step_num=steps, target=None, targeted=True)
    full = pgd(adapter, X, goal=deep, eps=eps, steps=steps, step_size=alpha)
    assert (deep(model(full.x_adv)).detach() <= deep(model(last)).detach() + 1e-5).all()
    assert (vector_norm(full.delta, "linf") <= eps + 1e-6).all()


def test_linear_optimum_reached_in_each_norm():
    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    w = torch.tensor(W)
    X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    eps = 0.7
    expected = {
        "linf": -eps * w.sign(),
        "l2": -eps * w / w.norm(),
        "l1": -eps * torch.sign(w) * (w.abs() == w.abs().max()),
    }
    goal = goals.decrease(by=1e6)
    for norm, opt in expected.items():
        r = pgd(adapter, X, goal=goal, eps=eps, norm=norm, steps=30)
        assert torch.allclose(r.delta, opt.expand(3, 4), atol=1e-5), norm
        assert torch.allclose(r.score_after, adapter.score(X + opt), atol=1e-5)


def test_l2_stronger_than_sign_step_l2():
    from captum.robust import PGD

    model = linear(W)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    X = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    bound = adapter.bind(goals.decrease(by=1e6), X)
    sign_l2 = PGD(model, loss_func=lambda out, target: bound(out)).perturb(
        X, radius=1.0, step_size=0.1, step_num=30, target=None, targeted=True, norm="L2"
    )
    ours = pgd(adapter, X, goal=goals.decrease(by=1e6), eps=1.0, norm="l2", steps=30, step_size=0.1)
    g_sign = bound(model(sign_l2)).detach()
    g_ours = bound(model(ours.x_adv)).detach()
    optimum = bound(model(X - torch.tensor(W) / torch.tensor(W).norm())).detach()
    assert torch.allclose(g_ours, optimum, atol=1e-5)
    assert (g_ours < g_sign - 1e-3).all()


# --------------------------------------------------------------- projections
boxes = st.integers(0, 10_000)


@settings(max_examples=60, deadline=None)
@given(seed=boxes, norm=st.sampled_from(["linf", "l2", "l1"]), scale=st.floats(0.01, 10.0))
def test_projection_feasible(seed, norm, scale):
    g = torch.Generator().manual_seed(seed)
    n, d = 5, 7
    z = torch.randn(n, d, generator=g) * scale
    lower = -torch.rand(n, d, generator=g) * 2
    upper = torch.rand(n, d, generator=g) * 2
    frozen = torch.rand(n, d, generator=g) < 0.3
    lower, upper = torch.where(frozen, 0.0, lower), torch.where(frozen, 0.0, upper)
    eps = torch.rand(n, generator=g) * 3
    p = project(z, eps, norm=norm, lower=lower, upper=upper)
    assert (vector_norm(p, norm) <= eps + 1e-6).all()
    assert (p >= lower).all() and (p <= upper).all()
    assert (p[frozen] == 0).all()
    # a point already feasible is left where it is
    assert torch.allclose(project(p, eps, norm=norm, lower=lower, upper=upper), p, atol=1e-5)


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_projection_without_host_reads_solves_every_row_and_agrees(norm, monkeypatch):
    """Off the CPU every row is solved and the hard ones picked (no gather): the same projection."""
    from probekit.search import continuous

    g = torch.Generator().manual_seed(7)
    n, d = 64, 9
    z = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 4
    lower, upper = -torch.rand(n, d, generator=g), torch.rand(n, d, generator=g)
    eps = torch.rand(n, generator=g) * 2
    on_cpu = project(z, eps, norm=norm, lower=lower, upper=upper)
    boxed = torch.minimum(torch.maximum(z, lower), upper)
    assert 0 < int((vector_norm(boxed, norm) <= eps).sum()) < n  # some rows are done by the box alone, some need more
    monkeypatch.setattr(continuous, "_cheap_sync", lambda device: False)
    elsewhere = project(z, eps, norm=norm, lower=lower, upper=upper)
    torch.testing.assert_close(elsewhere, on_cpu, rtol=0, atol=1e-7)


def scipy_projection(z, eps, norm, lower, upper):
    """Reference Euclidean projection by a generic constrained solver."""
    if norm == "l2":
        cons = [{"type": "ineq", "fun": lambda x: eps**2 - np.sum(x**2), "jac": lambda x: -2 * x}]
        res = minimize(lambda x: 0.5 * np.sum((x - z) ** 2), np.zeros_like(z), jac=lambda x: x - z,
                       bounds=list(zip(lower, upper)), constraints=cons, method="SLSQP", options={"ftol": 1e-12, "maxiter": 500})
        return res.x
    # L1 through a split into positive and negative parts: x = u - v, u, v >= 0
    d = len(z)
    fun = lambda uv: 0.5 * np.sum((uv[:d] - uv[d:] - z) ** 2)  # noqa: E731
    jac = lambda uv: np.concatenate([uv[:d] - uv[d:] - z, -(uv[:d] - uv[d:] - z)])  # noqa: E731
    cons = [{"type": "ineq", "fun": lambda uv: eps - uv.sum(), "jac": lambda uv: -np.ones(2 * d)}]
    bnds = [(0, max(u, 0)) for u in upper] + [(0, max(-lo, 0)) for lo in lower]
    res = minimize(fun, np.zeros(2 * d), jac=jac, bounds=bnds, constraints=cons, method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 1000})
    return res.x[:d] - res.x[d:]


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("boxed", [False, True])
def test_projection_equals_solver(norm, boxed):
    rng = np.random.default_rng(0)
    for _ in range(15):
        d = int(rng.integers(2, 6))
        z = rng.normal(size=d) * 2
        eps = float(rng.uniform(0.1, 2.0))
        lower = -rng.uniform(0.05, 1.5, size=d) if boxed else np.full(d, -1e3)
        upper = rng.uniform(0.05, 1.5, size=d) if boxed else np.full(d, 1e3)
        expected = scipy_projection(z, eps, norm, lower, upper)
        t = lambda a: torch.tensor(a, dtype=torch.float32)[None]  # noqa: E731
        ours = project(t(z), torch.tensor([eps]), norm=norm, lower=t(lower), upper=t(upper))[0].numpy()
        assert np.allclose(ours, expected, atol=2e-4), (z, eps, ours, expected)
        if norm == "l1" and not boxed:
            duchi = project_l1_ball(t(z), torch.tensor([eps]))[0].numpy()
            assert np.allclose(duchi, expected, atol=2e-4)


@settings(max_examples=15, deadline=None)
@given(seed=boxes, norm=st.sampled_from(["linf", "l2", "l1"]), eps=st.floats(0.05, 3.0))
def test_pgd_respects_ball_bounds_and_mask(seed, norm, eps):
    g = torch.Generator().manual_seed(seed)
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu",
                           bounds=(torch.full((6,), -1.0), torch.tensor([1.0, 1.0, 0.5, 1.0, 1.0, 2.0])))
    X = torch.rand(6, 6, generator=g) - 0.5
    mask = torch.tensor([True, True, False, True, True, False])
    r = pgd(adapter, X, goal=goals.flip(), eps=eps, norm=norm, steps=8, restarts=2, random_start=True, mask=mask,
            seed=seed)
    lo, hi = adapter.bounds(6)
    assert (r.norm <= eps + 1e-6).all()
    assert (r.x_adv >= lo - 1e-7).all() and (r.x_adv <= hi + 1e-7).all()
    assert (r.delta[:, ~mask] == 0).all()


# -------------------------------------------------------- minimal perturbation
@pytest.mark.parametrize("norm,dual", [("linf", 1), ("l2", 2), ("l1", math.inf)])
def test_min_perturbation_closed_form_per_input(norm, dual):
    w = torch.tensor(W)
    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    # two inputs with very different margins to the threshold 0
    X = torch.stack([0.02 * w / w.norm() ** 2, 3.0 * w / w.norm() ** 2])
    r = min_perturbation(adapter, X, goal=goals.below(0.0), norm=norm)
    exact = adapter.score(X) / torch.linalg.vector_norm(w, ord=dual)
    assert r.success.all()
    assert torch.allclose(r.norm, exact, rtol=2e-3, atol=1e-6), (r.norm, exact)
    # a per-batch answer would give both inputs the larger radius
    assert r.norm[0] < 0.05 * r.norm[1]


def bisection_pgd(adapter, x, goal, norm, hi, iters=8):
    """Smallest successful eps for one input, by bisection with PGD at each eps."""
    lo, best = 0.0, math.inf
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if bool(pgd(adapter, x, goal=goal, eps=mid, norm=norm, steps=20).success[0]):
            hi = best = mid
        else:
            lo = mid
    return best


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_min_perturbation_no_larger_than_bisection(norm):
    adapter = FeatureModel(mlp(seed=5), output=outputs.margin(1), device="cpu")
    X = torch.randn(3, 6, generator=torch.Generator().manual_seed(6))
    r = min_perturbation(adapter, X, goal=goals.flip(), norm=norm, eps_max=4.0, steps=20)
    for i in range(3):
        ref = bisection_pgd(adapter, X[i : i + 1], goals.flip(), norm, 4.0)
        if math.isfinite(ref):
            assert bool(r.success[i])
            assert float(r.norm[i]) <= ref + 1e-4
    assert (r.norm <= 4.0 + 1e-6).all()
    assert torch.equal(r.success, adapter.evaluate(r.x_adv, adapter.bind(goals.flip(), X))[1] <= 0)


def test_min_perturbation_unreachable_is_failure():
    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu", bounds=(-1.0, 1.0))
    X = torch.zeros(2, 4)
    r = min_perturbation(adapter, X, goal=goals.below(-100.0), norm="l2", eps_max=1.0)
    assert not r.success.any()


# --------------------------------------------------------- discrete features
def test_discrete_features_frozen_or_rounded():
    torch.manual_seed(0)
    kinds = ["continuous", "binary", "integer", "continuous", "binary", "integer"]
    bounds = (torch.tensor([-3.0, 0, 0, -3, 0, 0]), torch.tensor([3.0, 1, 5, 3, 1, 5]))
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu", kinds=kinds, bounds=bounds)
    X = torch.tensor([[0.1, 0, 2, -0.2, 1, 3], [0.5, 1, 0, 0.3, 0, 5], [-1, 1, 4, 1, 0, 1]], dtype=torch.float32)
    discrete = torch.tensor([k != "continuous" for k in kinds])
    frozen = pgd(adapter, X, goal=goals.flip(), eps=2.0, norm="linf")
    assert (frozen.delta[:, discrete] == 0).all()
    for norm, eps in [("linf", 1.6), ("l2", 2.5), ("l1", 3.0)]:
        r = pgd(adapter, X, goal=goals.flip(), eps=eps, norm=norm, relax_discrete=True, restarts=2, random_start=True,
                steps=15)
        vals = r.x_adv[:, discrete]
        assert torch.equal(vals, vals.round()), norm
        assert (r.norm <= eps + 1e-6).all()
        assert (r.x_adv >= bounds[0]).all() and (r.x_adv <= bounds[1]).all()
        m = min_perturbation(adapter, X, goal=goals.flip(), norm=norm, relax_discrete=True, eps_max=eps, search_steps=3,
                             steps=10)
        assert torch.equal(m.x_adv[:, discrete], m.x_adv[:, discrete].round())


# ------------------------------------------------------------------- others
def test_fgsm_linear_is_one_exact_step():
    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    X = torch.zeros(2, 4)
    r = fgsm(adapter, X, goal=goals.decrease(by=1e6), eps=0.2)
    assert torch.allclose(r.delta, -0.2 * torch.tensor(W).sign().expand(2, 4))
    r1 = fgsm(adapter, X, goal=goals.decrease(by=1e6), eps=0.2, norm="l1")
    assert torch.allclose(r1.delta[0], torch.tensor([0.0, 0.2, 0.0, 0.0]))


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_random_perturbation_on_the_sphere(norm):
    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    r = random_perturbation(adapter, X, norm=norm, eps=0.5, n_draws=50, seed=1)
    assert r.deltas.shape == (3, 50)
    assert torch.allclose(r.params["norms"], torch.full((3, 50), 0.5), atol=1e-5)
    dual = {"linf": 1, "l2": 2, "l1": math.inf}[norm]
    assert (r.deltas.abs() <= 0.5 * torch.linalg.vector_norm(torch.tensor(W), ord=dual) + 1e-5).all()
    again = random_perturbation(adapter, X, norm=norm, eps=0.5, n_draws=50, seed=1)
    assert torch.equal(r.deltas, again.deltas)
    # clipped to the bounds and frozen by the mask
    bounded = FeatureModel(linear(W), output=outputs.value(0), device="cpu", bounds=(-0.1, 0.1))
    rb = random_perturbation(bounded, torch.zeros(2, 4), norm=norm, eps=5.0, n_draws=20, mask=torch.tensor([1, 1, 0, 1]))
    assert (rb.params["norms"] <= 5.0 + 1e-5).all()
    assert (rb.deltas.abs() <= 0.1 * (1 + 3 + 2) + 1e-5).all()


def test_sequence_one_hot_as_continuous(device):
    adapter = SequenceModel(ToyConv(), output=outputs.margin(1), device=device)
    X = adapter.encode(["ACGTACGTAC", "TTTTACGTAA", "GGGCCCAATT"])
    r = pgd(adapter, X, goal=goals.flip(), eps=0.8, norm="l2", steps=10)
    assert r.x_adv.shape == X.shape
    assert (r.x_adv >= 0).all() and (r.x_adv <= 1).all()
    assert (r.norm <= 0.8 + 1e-6).all()


def test_feature_pgd_on_device(device):
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device=device)
    X = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    r = pgd(adapter, X, goal=goals.flip(), eps=torch.linspace(0.1, 1.0, 5), norm="l1", steps=10)
    assert (r.norm <= torch.linspace(0.1, 1.0, 5) + 1e-6).all()
    cpu = pgd(FeatureModel(mlp(), output=outputs.margin(1), device="cpu"), X, goal=goals.flip(),
              eps=torch.linspace(0.1, 1.0, 5), norm="l1", steps=10)
    assert torch.allclose(r.x_adv, cpu.x_adv, atol=1e-4)


def test_batch_size_invariance_and_seed():
    X = torch.randn(7, 6, generator=torch.Generator().manual_seed(8))
    small = FeatureModel(mlp(), output=outputs.margin(1), device="cpu", batch_size=2)
    large = FeatureModel(mlp(), output=outputs.margin(1), device="cpu", batch_size=64)
    kw = dict(goal=goals.flip(), eps=0.5, norm="l2", steps=10, restarts=3, seed=4)
    a, b = pgd(small, X, **kw), pgd(large, X, **kw)
    assert torch.allclose(a.x_adv, b.x_adv, atol=1e-5)
    assert torch.equal(a.success, b.success)
    c = pgd(large, X, **{**kw, "seed": 5})
    assert not torch.allclose(c.x_adv, b.x_adv) or c.success.all()


def test_bad_input_row_does_not_stop_the_batch():
    from probekit import ProbekitWarning

    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu")
    X = torch.randn(3, 6, generator=torch.Generator().manual_seed(9))
    X[1, 2] = float("nan")
    with pytest.warns(ProbekitWarning, match=r"\[1\]"):
        r = pgd(adapter, X, goal=goals.flip(), eps=3.0, norm="linf", steps=10)
    assert not bool(r.success[1])
    assert (r.delta[1] == 0).all()
    assert r.success[[0, 2]].all()


def test_min_perturbation_l1_exact_in_higher_dimension():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(48, generator=g)
    adapter = FeatureModel(linear(w.tolist()), output=outputs.value(0), device="cpu")
    X = torch.randn(12, 48, generator=g)
    X = X[adapter.score(X) > 0]
    r = min_perturbation(adapter, X, goal=goals.below(0.0), norm="l1")
    exact = adapter.score(X) / w.abs().max()
    assert torch.allclose(r.norm, exact, rtol=1e-3)
    assert ((r.delta != 0).sum(dim=1) == 1).all()  # all mass on the largest weight


def test_restarts_never_worse_than_one_run():
    adapter = FeatureModel(mlp(seed=7), output=outputs.margin(1), device="cpu")
    X = torch.randn(10, 6, generator=torch.Generator().manual_seed(10))
    goal = adapter.bind(goals.decrease(by=1e6), X)
    one = pgd(adapter, X, goal=goal, eps=0.4, norm="l2", steps=10)
    many = pgd(adapter, X, goal=goal, eps=0.4, norm="l2", steps=10, restarts=4)
    g_one = adapter.evaluate(one.x_adv, goal)[1]
    g_many = adapter.evaluate(many.x_adv, goal)[1]
    assert (g_many <= g_one + 1e-6).all()


def test_random_perturbation_in_blocks(monkeypatch):
    import probekit.search.continuous as continuous

    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    X = torch.randn(9, 4, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(continuous, "_DRAW_BUDGET", 40)  # 2 inputs of 5 draws per block
    r = random_perturbation(adapter, X, norm="l2", eps=torch.linspace(0.1, 0.9, 9), n_draws=5)
    assert r.deltas.shape == (9, 5)
    assert torch.allclose(r.params["norms"], torch.linspace(0.1, 0.9, 9)[:, None].expand(9, 5), atol=1e-5)
    assert (r.deltas.abs() <= torch.linspace(0.1, 0.9, 9)[:, None] * torch.tensor(W).norm() + 1e-5).all()


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_each_input_draws_the_same_perturbations_alone_among_others_or_in_blocks(norm, monkeypatch):
    import probekit.search.continuous as continuous

    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    X = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    eps = torch.linspace(0.2, 1.0, 5)
    together = random_perturbation(adapter, X, norm=norm, eps=eps, n_draws=7, seed=3)
    alone = random_perturbation(adapter, X[3:4], norm=norm, eps=eps[3:4], n_draws=7, seed=3)
    torch.testing.assert_close(together.deltas[3], alone.deltas[0], rtol=0, atol=1e-6)
    monkeypatch.setattr(continuous, "_DRAW_BUDGET", 28)  # one input of 7 draws per block
    blocks = random_perturbation(adapter, X, norm=norm, eps=eps, n_draws=7, seed=3)
    torch.testing.assert_close(blocks.deltas, together.deltas, rtol=0, atol=1e-6)
    # rows differ from one another, and another seed draws other points
    assert not torch.allclose(together.deltas[0] / eps[0], together.deltas[1] / eps[1])
    other = random_perturbation(adapter, X[3:4], norm=norm, eps=eps[3:4], n_draws=7, seed=4)
    assert not torch.allclose(other.deltas, alone.deltas)


def test_fgsm_matches_captum_where_the_step_helps():
    from captum.robust import FGSM

    model = mlp(seed=11)
    adapter = FeatureModel(model, output=outputs.margin(1), device="cpu")
    X = torch.randn(30, 6, generator=torch.Generator().manual_seed(12))
    bound = adapter.bind(goals.decrease(by=1e6), X)
    theirs = FGSM(model, loss_func=lambda out, target: bound(out)).perturb(X, epsilon=0.2, target=None, targeted=True)
    ours = fgsm(adapter, X, goal=goals.decrease(by=1e6), eps=0.2)
    helps = (bound(model(theirs)) < bound(model(X))).detach()
    assert helps.sum() > 20
    assert torch.allclose(ours.x_adv[helps], theirs[helps].detach(), atol=1e-6)
    assert torch.equal(ours.x_adv[~helps], X[~helps])


def test_per_input_masks():
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu")
    X = torch.randn(4, 6, generator=torch.Generator().manual_seed(13))
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(14)) < 0.5
    for norm in ("linf", "l2", "l1"):
        r = pgd(adapter, X, goal=goals.flip(), eps=1.0, norm=norm, steps=10, mask=mask, random_start=True)
        assert (r.delta[~mask] == 0).all()
        m = min_perturbation(adapter, X, goal=goals.flip(), norm=norm, mask=mask, eps_max=2.0, steps=10, search_steps=3)
        assert (m.delta[~mask] == 0).all()


def reference_linf_pgd(model, bound, X, eps, alpha, steps, lo, hi, mask, early_stop):
    """Textbook L-inf PGD with per-input eps, feature bounds, masks, early stop and the kept best iterate
    (success first, then the smaller norm, else the lower g), one input at a time."""
    best, best_g, best_n, evaluations = torch.zeros_like(X), [], [], []
    for i in range(X.shape[0]):
        x0, delta = X[i:i + 1], torch.zeros_like(X[i:i + 1])
        kept_g, kept_n, count = math.inf, math.inf, 0
        for t in range(steps + 1):
            x = (x0 + delta).requires_grad_(True)
            g = bound(model(x), torch.tensor([i]))
            (grad,) = torch.autograd.grad(g.sum(), x)
            count += 1
            g, n = float(g.detach()), float(delta.abs().max())
            if (g <= 0 < kept_g) or (g <= 0 and kept_g <= 0 and n < kept_n) or (g > 0 and kept_g > 0 and g < kept_g):
                best[i], kept_g, kept_n = delta[0], g, n
            if t == steps or (early_stop and g <= 0):
                break
            with torch.no_grad():
                step = float(alpha[i]) if torch.is_tensor(alpha) else alpha
                delta = torch.clamp(delta - step * grad.sign(), -float(eps[i]), float(eps[i]))
                delta = torch.clamp(x0 + delta, lo, hi) - x0
                delta = torch.where(mask[i], delta, torch.zeros_like(delta))
        best_g.append(kept_g)
        best_n.append(kept_n)
        evaluations.append(count)
    return X + best, torch.tensor(best_g), torch.tensor(evaluations, dtype=torch.float32)


@pytest.mark.parametrize("early_stop", [True, False])
def test_linf_pgd_without_masks_equals_reference(early_stop, device):
    # nothing frozen and every input inside the bounds: the boxes come from the feature bounds alone, and
    # the first step (0.04) is longer than some radii, which the ball must still cut
    model = mlp()
    adapter = FeatureModel(model, output=outputs.margin(1), bounds=(0.0, 1.0), device=device, batch_size=4)
    X = torch.rand(10, 6, generator=torch.Generator().manual_seed(4))
    eps = torch.linspace(0.02, 0.6, 10)
    bound = adapter.replace(device="cpu").bind(goals.flip(), X)  # the reference runs on the CPU
    everything = torch.ones(10, 6, dtype=torch.bool)
    ours = pgd(adapter, X, goal=goals.flip(), eps=eps, steps=15, step_size=0.04, early_stop=early_stop)
    ref_x, ref_g, ref_evals = reference_linf_pgd(model, bound, X, eps, 0.04, 15, 0.0, 1.0, everything, early_stop)
    assert 0 < int(ours.success.sum()) < 10
    assert torch.allclose(ours.x_adv, ref_x, atol=1e-5)
    assert torch.equal(ours.success, ref_g <= 0)
    assert torch.equal(ours.params["evaluations"], ref_evals)
    assert bool((ours.norm <= eps).all()) and torch.allclose(ours.norm, (ours.x_adv - X).abs().amax(dim=1), atol=1e-6)
    one = fgsm(adapter, X, goal=goals.flip(), eps=eps)
    ref_x, ref_g, _ = reference_linf_pgd(model, bound, X, eps, eps, 1, 0.0, 1.0, everything, False)
    assert torch.allclose(one.x_adv, ref_x, atol=1e-6) and torch.equal(one.success, ref_g <= 0)


def test_inputs_inside_mixed_bounds_stay_inside_and_inputs_outside_are_named_and_never_pushed_further_out():
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0, 1.0]]))
        model.bias.zero_()
    lower, upper = torch.tensor([0.0, -1.0, 2.0]), torch.tensor([1.0, 1.0, 5.0])
    adapter = FeatureModel(model, output=outputs.value(0), bounds=(lower, upper), device="cpu")
    inside = torch.tensor([[0.05, 0.95, 2.05], [0.5, 0.0, 3.0]])  # no single range holds every feature
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        r = pgd(adapter, inside, goal=goals.decrease(by=10.0), eps=0.2, steps=5)
    assert bool(((r.x_adv >= lower) & (r.x_adv <= upper)).all())
    assert torch.allclose(r.x_adv, torch.tensor([[0.0, 1.0, 2.0], [0.3, 0.2, 2.8]]), atol=1e-6)
    outside = torch.tensor([[0.5, 0.0, 3.0], [0.5, 0.0, 1.5]])  # input 1, feature 2 below its bound
    with pytest.warns(UserWarning, match=r"1 input\(s\) lie outside the feature bounds \(first: input 1, feature 2\)"):
        r = pgd(adapter, outside, goal=goals.decrease(by=10.0), eps=0.2, steps=5)
    assert torch.allclose(r.x_adv[1], torch.tensor([0.3, 0.2, 1.5]), atol=1e-6)  # kept, not lowered further
    assert torch.allclose(r.x_adv[0], torch.tensor([0.3, 0.2, 2.8]), atol=1e-6)


def test_searches_on_a_model_whose_input_gradient_is_an_expanded_view():
    # the gradient of a sum comes back from autograd as a stride-0 view, which a step must not write into
    class Total(torch.nn.Module):
        def forward(self, x):
            return x.sum(dim=1, keepdim=True)

    adapter = FeatureModel(Total(), output=outputs.value(0), device="cpu")
    X = torch.zeros(4, 3)
    for result in (pgd(adapter, X, goal=goals.decrease(by=1.0), eps=0.5, steps=5),
                   fgsm(adapter, X, goal=goals.decrease(by=1.0), eps=0.5)):
        assert result.success.all() and torch.equal(result.x_adv, torch.full((4, 3), -0.5))


def test_linf_steps_keep_the_precision_of_inputs_and_gradients_of_other_dtypes():
    # half-precision inputs: a step of 0.1 at 1000 is below float16's spacing (0.5), so the iterate must be
    # promoted like the step, not rounded into the gradient's float16 buffer
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    for steps in (1, 5):
        r = pgd(adapter, torch.full((2, 3), 1000.0, dtype=torch.float16), goal=goals.decrease(by=0.2), eps=0.1,
                steps=steps)
        assert r.success.all() and r.x_adv.dtype == torch.float32
        assert torch.allclose(r.x_adv, torch.full((2, 3), 999.9), atol=1e-4)
    # a float32 smoothed model returns float32 gradients for float64 inputs
    from probekit.certify.smoothing import Smoothed

    torch.manual_seed(0)
    base = FeatureModel(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)), output=1,
                        device="cpu")
    X = torch.rand(3, 4, dtype=torch.float64)
    for mask in (None, torch.tensor([True, True, False, True])):
        r = pgd(Smoothed(base, sigma=0.3, n=32), X, goal=goals.decrease(by=0.3), eps=0.3, steps=3, mask=mask)
        assert r.x_adv.dtype == torch.float64 and bool((r.norm <= 0.3).all())


@pytest.mark.parametrize("early_stop", [True, False])
def test_linf_pgd_with_bounds_masks_and_per_input_eps_equals_reference(early_stop):
    model = mlp()
    adapter = FeatureModel(model, output=outputs.margin(1), bounds=(0.0, 1.0), device="cpu", batch_size=3)
    X = torch.rand(10, 6, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(10, 6, generator=torch.Generator().manual_seed(3)) > 0.3
    eps = torch.linspace(0.02, 0.6, 10)
    goal = goals.flip()
    bound = adapter.bind(goal, X)
    ours = pgd(adapter, X, goal=goal, eps=eps, steps=15, step_size=0.04, mask=mask, early_stop=early_stop)
    ref_x, ref_g, ref_evals = reference_linf_pgd(model, bound, X, eps, 0.04, 15, 0.0, 1.0, mask, early_stop)
    assert 0 < int(ours.success.sum()) < 10  # both kinds of input are exercised
    assert torch.allclose(ours.x_adv, ref_x, atol=1e-5)
    assert torch.equal(ours.success, ref_g <= 0)
    # the reported scores are those of the reported points and inputs
    assert torch.allclose(ours.score_after, adapter.score(ours.x_adv), atol=1e-5)
    assert torch.allclose(ours.score_before, adapter.score(X), atol=1e-6)
    assert torch.allclose(ours.norm, (ours.x_adv - X).abs().amax(dim=1), atol=1e-6)
    assert torch.equal(ours.params["evaluations"], ref_evals)


def test_restarts_with_rounded_discrete_features_report_their_own_scores():
    kinds = ["continuous"] * 4 + ["binary"] * 2
    adapter = FeatureModel(mlp(), output=outputs.margin(1), kinds=kinds, bounds=(0.0, 1.0), device="cpu")
    X = torch.rand(6, 6, generator=torch.Generator().manual_seed(4))
    X[:, 4:] = (X[:, 4:] > 0.5).float()
    eps = torch.linspace(0.1, 1.0, 6)
    for norm in ("linf", "l2", "l1"):
        r = pgd(adapter, X, goal=goals.flip(), eps=eps, norm=norm, steps=8, restarts=3, relax_discrete=True, seed=1)
        assert torch.equal(r.x_adv[:, 4:], r.x_adv[:, 4:].round())
        assert (vector_norm(r.x_adv - X, norm) <= eps * (1 + 1e-5) + 1e-6).all()
        assert ((r.x_adv >= 0) & (r.x_adv <= 1)).all()
        after, g = adapter.evaluate(r.x_adv, adapter.bind(goals.flip(), X))
        assert torch.allclose(r.score_after, after, atol=1e-5)
        assert torch.equal(r.success, g <= 0)
        assert torch.allclose(r.norm, vector_norm(r.x_adv - X, norm), atol=1e-6)


def test_early_stop_without_per_step_host_reads_gives_the_same_result(monkeypatch):
    """Off the CPU, finished inputs stay in the batch (frozen) for a few steps: same points, same counts."""
    from probekit.search import continuous

    adapter = FeatureModel(mlp(), output=outputs.margin(1), bounds=(0.0, 1.0), device="cpu")
    X = torch.rand(12, 6, generator=torch.Generator().manual_seed(5))
    kw = dict(goal=goals.flip(), eps=torch.linspace(0.05, 0.8, 12), steps=20, restarts=2, seed=2)
    for norm in ("linf", "l2"):
        a = pgd(adapter, X, norm=norm, **kw)
        monkeypatch.setattr(continuous, "_cheap_sync", lambda device: False)
        b = pgd(adapter, X, norm=norm, **kw)
        monkeypatch.undo()
        assert 0 < int(a.success.sum()) < 12
        # the batches differ in size, and matrix products may round the last bit differently with the size
        assert torch.allclose(a.x_adv, b.x_adv, rtol=0, atol=1e-6) and torch.equal(a.success, b.success)
        assert torch.equal(a.params["evaluations"], b.params["evaluations"])


class CountingModel(torch.nn.Module):
    """Counts the batches the model is called on."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


@pytest.mark.parametrize(
    "goal, output",
    [
        (goals.flip(), outputs.logit(1)),  # leaves the reference class: bound per input to its argmax
        (goals.flip(), outputs.value(0)),  # crosses the threshold from the reference side
        (goals.target(0), outputs.logit(0)),
        (goals.decrease(by=0.3), outputs.value(1)),
        (goals.above(0.2), outputs.value(0)),
    ],
)
@pytest.mark.parametrize("batch_size", [64, 3])
def test_goal_bound_in_the_first_pass_is_the_goal_bound_beforehand(goal, output, batch_size):
    """Binding the goal to the first gradient pass (in batches) gives the same search as binding it first."""
    model = CountingModel(mlp())
    adapter = FeatureModel(model, output=output, bounds=(0.0, 1.0), device="cpu", batch_size=batch_size)
    X = torch.rand(7, 6, generator=torch.Generator().manual_seed(3))
    bound = adapter.bind(goal, X)
    for kw in (dict(norm="linf", eps=0.3), dict(norm="l2", eps=0.6)):
        fused = pgd(adapter, X, goal=goal, steps=6, early_stop=False, **kw)
        first = pgd(adapter, X, goal=bound, steps=6, early_stop=False, **kw)
        assert torch.equal(fused.x_adv, first.x_adv) and torch.equal(fused.success, first.success)
        assert torch.equal(fused.score_before, first.score_before) and torch.equal(fused.score_after, first.score_after)
    model.calls = 0
    fgsm(adapter, X, goal=goal, eps=0.2)
    # one gradient pass that also binds the goal, one evaluation of the stepped points: no other model call
    assert model.calls == 2 * math.ceil(7 / batch_size)


def test_pgd_reports_the_points_it_evaluated_within_eps_and_bounds():
    """The iterates live in input space; the reported perturbations stay exactly inside the ball and the bounds."""
    adapter = FeatureModel(mlp(n_in=64), output=outputs.margin(1), bounds=(0.0, 1.0), device="cpu")
    X = torch.rand(32, 64, generator=torch.Generator().manual_seed(4))
    X[:, :8] = X[:, :8].round()  # inputs on the bounds, where x0 + eps - x0 rounds
    eps = torch.linspace(0.01, 0.9, 32)
    r = pgd(adapter, X, goal=goals.flip(), eps=eps, steps=12, step_size=0.37 * eps, early_stop=False)
    assert (r.delta.abs().amax(dim=1) <= eps).all()
    assert ((r.x_adv >= 0) & (r.x_adv <= 1)).all()
    assert torch.allclose(r.x_adv, X + r.delta, rtol=0, atol=1e-6)
    after = adapter.score(r.x_adv)
    assert torch.equal(r.score_after, after)


def test_pgd_runs_on_an_adapter_with_its_own_gradient():
    """A smoothed model has no autograd forward; PGD asks it for its Monte-Carlo gradient instead."""
    from probekit.certify.smoothing import Smoothed

    torch.manual_seed(0)
    smooth = Smoothed(FeatureModel(torch.nn.Linear(4, 2), output=1, device="cpu"), sigma=0.5, n=512)
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)) * 0.3
    calls = smooth.predict(X).argmax(dim=1)
    r = pgd(smooth, X, goal=goals.flip(), eps=1.5, norm="l2", steps=20)
    assert bool(r.success.all())
    assert torch.equal(smooth.predict(r.x_adv).argmax(dim=1) != calls, r.success)
    assert torch.allclose(r.score_after, smooth.score(r.x_adv))
    assert (vector_norm(r.delta, "l2") <= 1.5 + 1e-5).all()


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_projection_without_bounds_is_the_projection_with_infinite_bounds(norm):
    z = torch.randn(16, 9, generator=torch.Generator().manual_seed(2)) * 3
    eps = torch.linspace(0.1, 5.0, 16)
    free = project(z, eps, norm=norm)
    infinite = project(z, eps, norm=norm, lower=torch.full_like(z, -math.inf), upper=torch.full_like(z, math.inf))
    assert torch.allclose(free, infinite, atol=1e-6)
    assert (vector_norm(free, norm) <= eps * (1 + 1e-6)).all()


def test_searches_follow_bounds_and_kinds_changed_between_calls_on_one_adapter():
    # a linear score 2*x0 - x1 + x2: PGD from the centre pushes each feature to the edge of the box
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0, 1.0]]))
        model.bias.zero_()
    lo, hi = torch.zeros(3), torch.ones(3)
    adapter = FeatureModel(model, output=outputs.value(0), kinds="continuous", bounds=(lo, hi), device="cpu")
    X = torch.full((2, 3), 0.5)
    first = pgd(adapter, X, goal=goals.decrease(by=100.0), eps=1.0, steps=5, step_size=0.5)
    assert torch.equal(first.x_adv, torch.tensor([[0.0, 1.0, 0.0]]).expand(2, 3))
    lo[0], hi[1] = 0.25, 0.75  # the tensors the adapter holds, edited in place
    second = pgd(adapter, X, goal=goals.decrease(by=100.0), eps=1.0, steps=5, step_size=0.5)
    assert torch.equal(second.x_adv, torch.tensor([[0.25, 0.75, 0.0]]).expand(2, 3))
    frozen = adapter.replace(kinds=["binary", "continuous", "continuous"])
    third = pgd(frozen, torch.tensor([[1.0, 0.5, 0.5]]), goal=goals.decrease(by=100.0), eps=1.0, steps=5, step_size=0.5)
    assert third.x_adv[0, 0] == 1.0  # binary features stay put unless relaxed


@pytest.mark.parametrize("eps", [[0.1, 0.3], np.array([0.1, 0.3]), torch.tensor([0.1, 0.3]), np.float32(0.2), [0.2]])
def test_random_perturbation_takes_eps_as_number_list_array_or_tensor(eps):
    adapter = FeatureModel(linear(W), output=outputs.value(0), device="cpu")
    r = random_perturbation(adapter, torch.zeros(2, 4), norm="linf", eps=eps, n_draws=6)
    radii = torch.as_tensor(eps, dtype=torch.float32).reshape(-1).expand(2)
    assert torch.allclose(r.params["norms"], radii[:, None].expand(2, 6), atol=1e-6)
    assert (torch.as_tensor(r.k) == radii).all() if torch.as_tensor(eps).numel() > 1 else r.k == pytest.approx(0.2)


def test_l2_projection_onto_the_box_meets_the_ball_exactly():
    from probekit.search.continuous import _l2_box_scale

    g = torch.Generator().manual_seed(5)
    z = torch.randn(64, 30, generator=g, dtype=torch.float64) * 3
    lo = -torch.rand(64, 30, generator=g, dtype=torch.float64) * (torch.rand(64, 30, generator=g) < 0.7)
    hi = torch.rand(64, 30, generator=g, dtype=torch.float64)
    hi[torch.rand(64, 30, generator=g) < 0.2] = math.inf  # some coordinates never stop
    z[:, :3] = 0.0  # and some never move
    eps = torch.minimum(torch.rand(64, generator=g, dtype=torch.float64), 0.9 * torch.minimum(torch.maximum(z, lo), hi).norm(dim=1))
    t = _l2_box_scale(z, lo, hi, eps)
    reached = torch.minimum(torch.maximum(t[:, None] * z, lo), hi).norm(dim=1)
    torch.testing.assert_close(reached, eps, rtol=0, atol=1e-10)
