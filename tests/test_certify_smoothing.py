"""Randomized smoothing on linear classifiers, where the distance to the boundary is exact."""

import pytest
import torch
from scipy.stats import beta, norm

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.certify import Smoothed, correlated_covariance, smoothing
from probekit.search import min_substitutions
from probekit.testing import ToyConv, check_adapter


def linear_adapter(d=4, seed=0, device="cpu"):
    torch.manual_seed(seed)
    model = torch.nn.Linear(d, 2)
    w = (model.weight[0] - model.weight[1]).detach()
    b = float((model.bias[0] - model.bias[1]).detach())
    return FeatureModel(model, output=outputs.logit(0), device=device), w, b


def test_radius_never_above_the_distance_and_close_for_large_n(device):
    adapter, w, b = linear_adapter(device=device)
    X = torch.randn(12, 4, generator=torch.Generator().manual_seed(1)) * 0.6
    sigma = 0.5
    dist = (X @ w + b).abs() / w.norm()
    r = smoothing(adapter, X, sigma=sigma, n0=100, n=20000, alpha=0.001)
    ok = r.prediction >= 0
    assert (r.radius <= dist + 1e-6).all()
    # the class it certifies is the base model's class (the smoothed class of a linear model)
    base_class = (X @ w + b < 0).long()
    assert (r.prediction[ok] == base_class[ok]).all()
    moderate = ok & (dist < 1.5 * sigma)
    assert moderate.sum() >= 4
    assert (r.radius[moderate] >= dist[moderate] - 0.1 * sigma).all()


def test_p_lower_is_the_exact_clopper_pearson_bound_and_abstains_below_half():
    adapter, w, b = linear_adapter()
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(2)) * 0.6
    X = torch.cat([X, (-b / (w @ w)) * w[None]])  # a point on the boundary: abstains
    r = smoothing(adapter, X, sigma=0.5, n0=50, n=500, alpha=0.01)
    counts = r.params["counts"].double().numpy()
    want = beta.ppf(0.01, counts, 500 - counts + 1)
    torch.testing.assert_close(r.p_lower.double(), torch.from_numpy(want), atol=1e-6, rtol=1e-6)
    radius = 0.5 * norm.ppf(want)
    expected = torch.where(r.p_lower >= 0.5, torch.from_numpy(radius).float(), torch.zeros(7))
    torch.testing.assert_close(r.radius, expected, atol=1e-5, rtol=1e-5)
    assert r.prediction[-1] == -1 and r.radius[-1] == 0


def test_seeded_runs_repeat():
    adapter, _, _ = linear_adapter()
    X = torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    a = smoothing(adapter, X, sigma=0.3, n=300, seed=7)
    b = smoothing(adapter, X, sigma=0.3, n=300, seed=7)
    assert torch.equal(a.p_lower, b.p_lower)


def test_anisotropic_ellipsoid_never_crosses_the_boundary():
    adapter, w, b = linear_adapter()
    X = torch.randn(8, 4, generator=torch.Generator().manual_seed(4)) * 0.6
    margin = (X @ w + b).abs()
    sig = torch.tensor([0.2, 0.4, 0.6, 0.3])
    r = smoothing(adapter, X, sigma=sig, n=20000)
    ok = r.prediction >= 0
    # the farthest the ellipsoid reaches along w: R * sqrt(w^T S w) must stay below the margin
    R = r.axes[:, 0] / sig[0]
    reach = R * (w**2 * sig**2).sum().sqrt()
    assert (reach[ok] <= margin[ok] + 1e-5).all()
    assert (reach[ok] >= 0.8 * margin[ok]).sum() >= 3
    torch.testing.assert_close(r.radius, R * sig.min())
    torch.testing.assert_close(r.params["volume_radius"], R * sig.log().mean().exp())

    cov = torch.diag(sig**2)
    cov[0, 1] = cov[1, 0] = 0.02
    rc = smoothing(adapter, X, covariance=cov, n=20000)
    Rc = rc.axes[:, 0] / torch.linalg.eigvalsh(cov).sqrt()[0]
    reach = Rc * (w @ cov @ w).sqrt()
    assert (reach[rc.prediction >= 0] <= margin[rc.prediction >= 0] + 1e-5).all()


def test_correlated_covariance_and_sequence_smoothing():
    cov = correlated_covariance(10, sigma=0.3, scale=3.0)
    assert cov.shape == (40, 40) and torch.allclose(cov, cov.T)
    assert torch.linalg.eigvalsh(cov).min() > 0
    assert cov[0, 1] > 0.8 * cov[0, 0] and cov[0, 10] == 0  # neighbours correlated, channels not
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    r = smoothing(adapter, ["ACGTACGTAC", "TTTTACGTAA"], covariance=cov, n0=20, n=200)
    assert r.axes.shape == (2, 40)
    assert (r.radius <= r.params["volume_radius"] + 1e-6).all()


def test_single_score_uses_goal_side():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    s = adapter.score(X)
    r = smoothing(adapter, X, sigma=0.01, n=200, goal=goals.below(float(s.median())))
    assert ((r.prediction == 1) == (s > s.median())).all()


def test_smoothed_is_an_adapter():
    adapter, w, b = linear_adapter()
    X = torch.randn(4, 4, generator=torch.Generator().manual_seed(6)) * 0.5
    smooth = Smoothed(adapter, sigma=0.5, n=4000)
    freq = smooth.predict(X)
    torch.testing.assert_close(freq.sum(1), torch.ones(4))
    exact = torch.from_numpy(norm.cdf(((X @ w + b) / (0.5 * w.norm())).numpy())).float()
    torch.testing.assert_close(smooth.score(X), exact, atol=0.03, rtol=0)
    report = check_adapter(smooth, X, raise_on_failure=False)
    assert report["passed"].all(), report
    _, grad = smooth.gradient(X)
    cos = torch.nn.functional.cosine_similarity(grad, w[None].expand_as(grad), dim=1)
    assert (cos > 0.9).all()
    seq = Smoothed(SequenceModel(ToyConv(), output=1, device="cpu"), sigma=0.2, n=32)
    r = min_substitutions(seq, ["ACGTACGTAC"], goal=goals.flip(), max_edits=1, method="exhaustive")
    assert r.n_edits.shape == (1,)


def test_bad_noise_is_an_error():
    adapter, _, _ = linear_adapter()
    with pytest.raises(ValueError, match="positive"):
        smoothing(adapter, torch.zeros(1, 4), sigma=-1.0)
    with pytest.raises(ValueError, match="shape"):
        smoothing(adapter, torch.zeros(1, 4), covariance=torch.eye(3))


def test_replace_draws_noise_for_the_new_settings():
    adapter, _, _ = linear_adapter()
    X = torch.randn(5, 4, generator=torch.Generator().manual_seed(7))
    smooth = Smoothed(adapter, sigma=0.1, n=256)
    before = smooth.predict(X)
    smooth.gradient(X)  # fills both noise caches
    for changes in ({"sigma": 2.0}, {"seed": 7}, {"n": 64}):
        copy = smooth.replace(**changes)
        fresh = Smoothed(adapter, **{"sigma": 0.1, "n": 256, **changes})
        torch.testing.assert_close(copy.predict(X), fresh.predict(X), rtol=0, atol=0)
        for got, want in zip(copy.gradient(X), fresh.gradient(X)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(smooth.predict(X), before, rtol=0, atol=0)


def test_noise_cache_is_keyed_by_device_and_copies_keep_their_own():
    adapter, _, _ = linear_adapter()
    X = torch.randn(3, 4, generator=torch.Generator().manual_seed(8))
    smooth = Smoothed(adapter, sigma=0.5, n=32)
    smooth.predict(X)
    smooth.gradient(X)
    cache = dict(smooth._noise_cache)
    assert len(cache) == 2
    for key, noise in cache.items():
        assert smooth.device in key and noise.device == smooth.device
    copy = smooth.replace(device="cpu")
    assert copy.base.device == copy.device
    assert copy._noise_cache == {} and copy._noise_cache is not smooth._noise_cache
    torch.testing.assert_close(copy.predict(X), smooth.predict(X), rtol=0, atol=0)  # same seed, same device type
    assert smooth._noise_cache.keys() == cache.keys()
    assert all(smooth._noise_cache[key] is cache[key] for key in cache)


def test_replace_dtype_moves_the_base_adapter_too():
    adapter, _, _ = linear_adapter()
    X = torch.randn(3, 4, generator=torch.Generator().manual_seed(9))
    smooth = Smoothed(adapter, sigma=0.5, n=64)
    wide = smooth.replace(dtype=torch.float64)
    assert wide.base.dtype == torch.float64 and smooth.base.dtype == torch.float32
    torch.testing.assert_close(wide.predict(X), smooth.predict(X), rtol=0, atol=0)
    value, grad = wide.gradient(X)
    assert grad.dtype == torch.float64
    want_value, want_grad = smooth.gradient(X)
    torch.testing.assert_close(value, want_value.double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(grad, want_grad.double(), rtol=1e-4, atol=1e-5)
