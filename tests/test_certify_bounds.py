"""IBP and CROWN: soundness against sampled and attacked points, a textbook IBP, tightness."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.certify import UnsupportedOperation, crown, ibp

TOL = 1e-4


# ------------------------------------------------------------------ models
class Funky(nn.Module):
    """Functional activations, a residual addition, a product with a parameter, cat and mean."""

    def __init__(self, d=6, h=16, out=3):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, out)
        self.w = nn.Parameter(torch.randn(h) * 0.5)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = h + F.leaky_relu(self.b(h), 0.1)
        h = torch.sigmoid(h) * 2 - torch.tanh(h * self.w) + F.elu(h) + F.softplus(h - 1)
        h = torch.cat([h, h.mean(-1, keepdim=True)], dim=-1)[:, :16]
        return self.c(F.dropout(h, 0.2, self.training))


class CNN(nn.Module):
    """Conv, BatchNorm (eval), max and average pooling, adaptive max pooling, residual, cat."""

    def __init__(self, c=6, out=2):
        super().__init__()
        self.conv = nn.Conv1d(4, c, 5, padding=2)
        self.bn = nn.BatchNorm1d(c)
        self.pool = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(c, c, 3, padding=1)
        self.gap = nn.AdaptiveMaxPool1d(2)
        self.avg = nn.AvgPool1d(2)
        self.lin = nn.Linear(3 * c, out)
        self.drop = nn.Dropout(0.3)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(-1, 1)

    def forward(self, x):
        h = self.pool(F.relu(self.bn(self.conv(x))))
        h = h + torch.relu(self.conv2(h))
        a = self.gap(h).flatten(1)
        b = self.avg(h).max(dim=-1).values
        return self.lin(self.drop(torch.cat([a, b], 1)))


class NLCNet(nn.Module):
    """Takes (N, L, 4): a per-position Linear, a transpose, a conv, amax over positions."""

    def __init__(self, c=5):
        super().__init__()
        self.pos = nn.Linear(4, c)
        self.conv = nn.Conv1d(c, c, 3)
        self.out = nn.Linear(c, 1)

    def forward(self, x):
        h = torch.relu(self.pos(x))
        h = torch.relu(self.conv(h.transpose(1, 2)))
        return self.out(h.amax(-1))


def mlp(d=5, h=32, out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, out))


def one_hot(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, 4, (n, length), generator=g), 4).float().transpose(1, 2)


# ------------------------------------------------------------------ attack helpers
def _project(x, x0, lo, hi, eps, norm):
    d = x - x0
    if norm == "l2":
        n = d.flatten(1).norm(dim=1).clamp(min=1e-12)
        d = d * (eps / n).clamp(max=1).view(-1, *[1] * (d.ndim - 1))
    elif norm == "l1":
        flat = d.flatten(1)
        over = flat.abs().sum(1) > eps
        if over.any():  # projection onto the L1 ball (Duchi et al.)
            a = flat[over].abs()
            mu = a.sort(dim=1, descending=True).values
            cs = mu.cumsum(1)
            j = torch.arange(1, a.shape[1] + 1)
            rho = ((mu - (cs - eps) / j) > 0).sum(1)
            theta = (cs.gather(1, (rho - 1)[:, None])[:, 0] - eps) / rho
            flat = flat.clone()
            flat[over] = flat[over].sign() * (a - theta[:, None]).clamp(min=0)
        d = flat.view_as(d)
    else:
        d = d.clamp(-eps, eps)
    return torch.maximum(torch.minimum(x0 + d, hi), lo)


def _sample(x0, lo, hi, eps, norm, m, gen):
    reps = x0.repeat_interleave(m, 0)
    lo_r = torch.maximum(lo, x0 - eps).repeat_interleave(m, 0)
    hi_r = torch.minimum(hi, x0 + eps).repeat_interleave(m, 0)
    if norm == "linf":
        x = lo_r + (hi_r - lo_r) * torch.rand(reps.shape, generator=gen)
        return torch.maximum(torch.minimum(x, reps + eps), reps - eps)
    d = torch.randn(reps.shape, generator=gen)
    scale = torch.rand(reps.shape[0], generator=gen) * eps
    norms = d.flatten(1).norm(p=2 if norm == "l2" else 1, dim=1)
    d = d * (scale / norms).view(-1, *[1] * (d.ndim - 1))
    return _project(reps + d, reps, lo_r, hi_r, eps, norm)


def extremes(adapter, X, eps, norm, *, goal=None, steps=12, m=48, seed=0):
    """Min and max of the score, and min of g, over samples and PGD attacks inside the set."""
    gen = torch.Generator().manual_seed(seed)
    X = X.float()
    if X.ndim == 3:
        lo, hi = torch.zeros_like(X), torch.ones_like(X)
    else:
        lo, hi = adapter.bounds(X.shape[1])
        lo, hi = lo.expand_as(X).cpu(), hi.expand_as(X).cpu()
    bound = adapter.bind(goal or goals.flip(), X)
    rows = torch.arange(X.shape[0])
    pts = _sample(X, lo, hi, eps, norm, m, gen)
    s, g = adapter.evaluate(pts, bound, rows.repeat_interleave(m))
    smin, smax = s.view(-1, m).min(1).values, s.view(-1, m).max(1).values
    gmin = g.view(-1, m).min(1).values
    for sign, target in ((1.0, "score"), (-1.0, "score"), (1.0, "g")):
        x = X + (torch.rand(X.shape, generator=gen) - 0.5) * eps * 0.5
        x = _project(x, X, lo, hi, eps, norm)
        step = 2.5 * eps / steps
        for _ in range(steps + 1):
            x = x.detach().requires_grad_(True)
            y = adapter.forward(x)
            sc, gg = adapter.output(y), bound(y, rows)
            smin, smax = torch.minimum(smin, sc.detach()), torch.maximum(smax, sc.detach())
            gmin = torch.minimum(gmin, gg.detach())
            (grad,) = torch.autograd.grad((sign * (sc if target == "score" else gg)).sum(), x)
            if norm == "linf":
                x = x - step * grad.sign()
            else:
                n = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (grad.ndim - 1))
                x = x - step * grad / n
            x = _project(x.detach(), X, lo, hi, eps, norm)
    return smin, smax, gmin


def assert_sound(result, smin, smax, gmin):
    assert (result.lower <= smin + TOL).all(), (result.lower, smin)
    assert (result.upper >= smax - TOL).all(), (result.upper, smax)
    assert (gmin[result.certified] > 0).all()
    assert (result.params["g_lower"] <= gmin + TOL).all()


# ------------------------------------------------------------------ tests
def _textbook_ibp(model: nn.Sequential, lo, hi):
    for layer in model:
        if isinstance(layer, nn.Linear):
            W, b = layer.weight, layer.bias
            lo, hi = lo @ W.clamp(min=0).T + hi @ W.clamp(max=0).T + b, hi @ W.clamp(min=0).T + lo @ W.clamp(max=0).T + b
        else:
            lo, hi = layer(lo), layer(hi)
    return lo, hi


def test_ibp_equals_textbook_interval_arithmetic():
    model = mlp()
    X = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        lo, hi = _textbook_ibp(model, X - 0.1, X + 0.1)
    for i in range(3):
        b = ibp(FeatureModel(model, output=outputs.logit(i), device="cpu"), X, eps=0.1)
        torch.testing.assert_close(b.lower, lo[:, i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.upper, hi[:, i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("name", ["mlp", "funky"])
def test_feature_bounds_are_sound(name, norm):
    torch.manual_seed(0)
    model = mlp() if name == "mlp" else Funky(d=5)
    adapter = FeatureModel(model, output=outputs.margin(0), device="cpu")
    X = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    eps = {"linf": 0.05, "l2": 0.15, "l1": 0.3}[norm]
    found = extremes(adapter, X, eps, norm)
    for method in (ibp, crown):
        assert_sound(method(adapter, X, eps=eps, norm=norm), *found)


def test_feature_bounds_respect_feature_ranges():
    torch.manual_seed(0)
    adapter = FeatureModel(mlp(), output=outputs.value(1), bounds=(0.0, 1.0), device="cpu")
    X = torch.rand(5, 5, generator=torch.Generator().manual_seed(3))
    wide = crown(adapter, X, eps=10.0)
    free = crown(FeatureModel(adapter.model, output=outputs.value(1), device="cpu"), X, eps=10.0)
    assert ((wide.upper - wide.lower) < (free.upper - free.lower)).all()
    assert_sound(wide, *extremes(adapter, X, 10.0, "linf"))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_sequence_cnn_bounds_are_sound(norm, device):
    torch.manual_seed(0)
    adapter = SequenceModel(CNN(), output=outputs.logit(1), device=device)
    X = one_hot(4, 16)
    eps = 0.05 if norm == "linf" else 0.3
    found = extremes(adapter.replace(device="cpu"), X, eps, norm)
    for method in (ibp, crown):
        assert_sound(method(adapter, X.to(device), eps=eps, norm=norm), *found)


@pytest.mark.parametrize("strands", ["forward", "both"])
def test_nlc_layout_and_strands_are_sound(strands):
    torch.manual_seed(0)
    adapter = SequenceModel(NLCNet(), output=outputs.value(0), layout="NLC", strands=strands, device="cpu")
    X = one_hot(4, 12, seed=1)
    for method in (ibp, crown):
        result = method(adapter, X, eps=0.1)
        center = adapter.score(X)
        assert ((result.lower <= center) & (center <= result.upper)).all()
        assert_sound(result, *extremes(adapter, X, 0.1, "linf"))


@pytest.mark.parametrize("goal", [goals.flip(), goals.target(2), goals.decrease(by=0.2), goals.above(1.0)])
def test_goal_certificates_hold_under_attack(goal):
    torch.manual_seed(0)
    adapter = FeatureModel(mlp(), output=outputs.logit(0), device="cpu")
    X = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))
    result = crown(adapter, X, eps=0.05, goal=goal)
    smin, smax, gmin = extremes(adapter, X, 0.05, "linf", goal=goal)
    assert_sound(result, smin, smax, gmin)
    assert result.certified.any()


def test_crown_at_least_as_tight_as_ibp_and_much_tighter_at_small_eps():
    torch.manual_seed(0)
    adapter = FeatureModel(mlp(h=64), output=outputs.margin(0), device="cpu")
    X = torch.randn(8, 5, generator=torch.Generator().manual_seed(5))
    ratios = {}
    for eps in (0.001, 0.01, 0.1, 1.0):
        a, b = ibp(adapter, X, eps=eps), crown(adapter, X, eps=eps)
        wa, wb = a.upper - a.lower, b.upper - b.lower
        assert (wb <= wa + 1e-6).all()
        assert (b.lower >= a.lower - 1e-6).all() and (b.upper <= a.upper + 1e-6).all()
        ratios[eps] = float(wb.mean() / wa.mean())
    assert ratios[0.001] < 0.2, ratios
    for adapter, X in [
        (SequenceModel(CNN(), output=1, device="cpu"), one_hot(3, 16)),
        (FeatureModel(Funky(d=5), output=outputs.margin(2), device="cpu"), X),
    ]:
        a, b = ibp(adapter, X, eps=0.01), crown(adapter, X, eps=0.01)
        assert (b.upper - b.lower <= a.upper - a.lower + 1e-6).all()
        assert (b.upper - b.lower).mean() < 0.5 * (a.upper - a.lower).mean()


def test_output_selections():
    torch.manual_seed(0)
    model = mlp()
    X = torch.randn(4, 5, generator=torch.Generator().manual_seed(6))
    for output in (outputs.prob(1), outputs.margin(2), outputs.value(0), lambda y: y[:, 0] - 2 * y[:, 2]):
        adapter = FeatureModel(model, output=output, device="cpu")
        result = crown(adapter, X, eps=0.05)
        assert_sound(result, *extremes(adapter, X, 0.05, "linf"))
    profile = SequenceModel(nn.Conv1d(4, 2, 3, padding=1), output=outputs.window(1, 2, 6, reduce="max"), device="cpu")
    X = one_hot(3, 10)
    assert_sound(crown(profile, X, eps=0.1), *extremes(profile, X, 0.1, "linf"))


class _Sorts(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return torch.sort(self.lin(x), dim=-1).values


class _Square(nn.Module):
    def forward(self, x):
        return (x * x).sum(-1, keepdim=True)


def test_unsupported_operations_are_named():
    X = torch.zeros(2, 4)
    with pytest.raises(UnsupportedOperation, match="sort"):
        ibp(FeatureModel(_Sorts(), output=0, device="cpu"), X, eps=0.1)
    with pytest.raises(UnsupportedOperation, match="LayerNorm"):
        crown(FeatureModel(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), output=0, device="cpu"), X, eps=0.1)
    with pytest.raises(UnsupportedOperation, match="multiplies two input-dependent"):
        crown(FeatureModel(_Square(), output=0, device="cpu"), X, eps=0.1)


def test_zero_radius_gives_the_point():
    torch.manual_seed(0)
    adapter = SequenceModel(CNN(), output=0, device="cpu")
    X = one_hot(3, 16)
    for method in (ibp, crown):
        r = method(adapter, X, eps=0.0)
        torch.testing.assert_close(r.lower, adapter.score(X), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r.upper, adapter.score(X), atol=1e-5, rtol=1e-5)


def test_final_log_softmax_keeps_margins_and_refuses_raw_logits():
    torch.manual_seed(0)
    body = mlp()
    with_ls = nn.Sequential(*body, nn.LogSoftmax(dim=-1))
    X = torch.randn(5, 5, generator=torch.Generator().manual_seed(7))
    for output in (outputs.margin(1), outputs.prob(2)):
        a = crown(FeatureModel(with_ls, output=output, device="cpu"), X, eps=0.05)
        b = crown(FeatureModel(body, output=output, device="cpu"), X, eps=0.05)
        torch.testing.assert_close(a.lower, b.lower)
        torch.testing.assert_close(a.upper, b.upper)
    adapter = FeatureModel(with_ls, output=outputs.margin(0), device="cpu")
    assert_sound(ibp(adapter, X, eps=0.05), *extremes(adapter, X, 0.05, "linf"))
    with pytest.raises(UnsupportedOperation, match="LogSoftmax"):
        crown(FeatureModel(with_ls, output=outputs.logit(0), device="cpu"), X, eps=0.05)


def test_one_radius_per_input_equals_separate_calls():
    torch.manual_seed(0)
    adapter = FeatureModel(mlp(), output=outputs.margin(1), device="cpu")
    X = torch.randn(3, 5, generator=torch.Generator().manual_seed(8))
    eps = torch.tensor([0.01, 0.1, 0.5])
    for norm in ("linf", "l2", "l1"):
        for method in (ibp, crown):
            together = method(adapter, X, eps=eps, norm=norm)
            for i in range(3):
                alone = method(adapter, X[i : i + 1], eps=float(eps[i]), norm=norm)
                torch.testing.assert_close(together.lower[i : i + 1], alone.lower, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(together.upper[i : i + 1], alone.upper, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one radius per input"):
        ibp(adapter, X, eps=torch.tensor([0.1, 0.2]))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow cannot be traced
            return self.lin(x)
        return -self.lin(x)


def test_untraceable_model_is_a_clear_error():
    with pytest.raises(UnsupportedOperation, match="torch.fx"):
        crown(FeatureModel(_Branchy(), output=0, device="cpu"), torch.ones(2, 4), eps=0.1)


class _ShapeBranch(CNN):
    """Control flow on the input's shape: torch.fx cannot trace it, torch.export can."""

    def forward(self, x):
        if x.shape[-1] > 12:
            x = x[..., :12]
        return super().forward(x)


def test_models_fx_cannot_trace_go_through_torch_export():
    torch.manual_seed(0)
    model = _ShapeBranch()
    adapter = SequenceModel(model, output=outputs.logit(0), device="cpu")
    plain = SequenceModel(CNN(), output=outputs.logit(0), device="cpu")
    plain.model.load_state_dict(model.state_dict())
    X = one_hot(3, 16)
    for method in (ibp, crown):
        a = method(adapter, X, eps=0.05)
        b = method(plain, X[..., :12], eps=0.05)
        torch.testing.assert_close(a.lower, b.lower, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.upper, b.upper, atol=1e-5, rtol=1e-5)
    assert_sound(crown(adapter, X, eps=0.05), *extremes(adapter, X, 0.05, "linf"))


def test_crown_bounds_do_not_depend_on_the_chunk_of_rows(monkeypatch):
    # a small budget bounds a few neurons per backward pass (3 to 7 rows; some last chunks are short)
    import importlib

    crown_module = importlib.import_module("probekit.certify.crown")
    torch.manual_seed(0)
    cases = [
        (FeatureModel(mlp(), output=outputs.margin(0), device="cpu"), torch.randn(4, 5), {"eps": 0.1}),
        (SequenceModel(CNN(), output=outputs.logit(1), device="cpu"), one_hot(3, 16), {"eps": 0.05}),
        (SequenceModel(CNN(), output=outputs.logit(1), device="cpu"), one_hot(3, 16), {"k": 2}),
    ]
    whole = [crown(adapter, X, **kw) for adapter, X, kw in cases]
    monkeypatch.setattr(crown_module, "_BUDGET", 2000)
    for (adapter, X, kw), want in zip(cases, whole):
        got = crown(adapter, X, **kw)
        torch.testing.assert_close(got.lower, want.lower, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got.upper, want.upper, rtol=1e-6, atol=1e-6)


def test_bounds_refuse_a_model_with_forward_hooks():
    from probekit.certify import UnsupportedOperation, ibp

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    handle = model[0].register_forward_hook(lambda module, args, out: out * 2.0)
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    with pytest.raises(UnsupportedOperation, match="forward hooks"):
        ibp(adapter, torch.zeros(2, 3), eps=0.1)
    handle.remove()
    assert ibp(adapter, torch.zeros(2, 3), eps=0.1) is not None


def _stack(inplace: bool):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(4, 6, 5, padding=2), nn.ReLU(inplace=inplace), nn.MaxPool1d(2), nn.Conv1d(6, 6, 3, padding=1),
        nn.ReLU(inplace=inplace), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(6, 2),
    ).eval()


@pytest.mark.parametrize("method", [ibp, crown])
def test_in_place_activations_give_the_bounds_of_the_same_model_without_them(method):
    # an in-place ReLU once overwrote the kept pre-activations (and the boxes of the layer before)
    from probekit.testing import random_sequences

    plain = SequenceModel(_stack(False), output=outputs.logit(1), device="cpu")
    X = plain.encode(random_sequences(3, 30, seed=1))
    for k in (1, 2):
        want = method(plain, X, k=k)
        got = method(SequenceModel(_stack(True), output=outputs.logit(1), device="cpu"), X, k=k)
        assert torch.equal(got.lower, want.lower) and torch.equal(got.upper, want.upper)


def test_bounds_refuse_an_in_place_write_that_another_operation_reads():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            h = self.fc(x)
            r = h.relu_()
            return (r + h).sum(dim=1, keepdim=True)

    with pytest.raises(UnsupportedOperation, match="writes in place"):
        ibp(FeatureModel(Shared(), output=outputs.value(0), device="cpu"), torch.zeros(2, 3), eps=0.1)


# ------------------------------------------------------------------ arguments that repeat or scale
class _Twice(nn.Module):
    """One hidden tensor used twice by one operation, in several forms."""

    def __init__(self, form):
        super().__init__()
        self.form = form
        self.a, self.b = nn.Linear(4, 6), nn.Linear(12, 1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        if self.form == "add":
            h = h + h
        elif self.form == "torch.add":
            h = torch.add(h, h) + h
        elif self.form == "sub":
            h = h - h + torch.sigmoid(h) - h.sub(h, alpha=-2.0)
        elif self.form == "cat":
            return self.b(torch.cat([h, h], dim=-1))
        return self.b(torch.cat([h, -h], dim=-1))


@pytest.mark.parametrize("form", ["add", "torch.add", "sub", "cat"])
def test_a_tensor_used_twice_by_one_operation_counts_twice(form):
    torch.manual_seed(0)
    adapter = FeatureModel(_Twice(form), output=outputs.value(0), device="cpu")
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(11))
    found = extremes(adapter, X, 0.3, "linf", m=200)
    for method in (ibp, crown):
        assert_sound(method(adapter, X, eps=0.3), *found)


class _Alpha(nn.Module):
    """``a(x) + alpha * relu(b(x))`` written with alpha=, as a function, a method or a subtraction."""

    def __init__(self, form, branch=False):
        super().__init__()
        self.form, self.branch = form, branch
        self.a, self.b, self.c = nn.Linear(3, 5), nn.Linear(3, 5), nn.Linear(5, 1)

    def forward(self, x):
        if self.branch and x.shape[1] < 2:  # control flow on a shape: traced by torch.export
            x = x * 2
        p, q = self.a(x), torch.relu(self.b(x))
        if self.form == "function":
            h = torch.add(p, q, alpha=-4.0)
        elif self.form == "method":
            h = p.add(q, alpha=-4.0)
        else:
            h = torch.sub(p, q, alpha=3.0)
        return self.c(torch.relu(h))


@pytest.mark.parametrize("branch", [False, True])
@pytest.mark.parametrize("form", ["function", "method", "sub"])
def test_alpha_scales_the_second_operand_in_every_form(form, branch):
    torch.manual_seed(0)
    adapter = FeatureModel(_Alpha(form, branch), output=outputs.value(0), device="cpu")
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(12))
    found = extremes(adapter, X, 0.4, "linf", m=200)
    for method in (ibp, crown):
        assert_sound(method(adapter, X, eps=0.4), *found)


class _Div(nn.Module):
    def __init__(self, mode, method=False):
        super().__init__()
        self.mode, self.method = mode, method
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        h = self.lin(x)
        return h.div(0.3, rounding_mode=self.mode) if self.method else torch.div(h, 0.3, rounding_mode=self.mode)


@pytest.mark.parametrize("method", [False, True])
def test_division_that_rounds_is_refused_and_true_division_is_sound(method):
    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(13))
    for mode in ("floor", "trunc"):
        with pytest.raises(UnsupportedOperation, match="rounding_mode='" + mode):
            ibp(FeatureModel(_Div(mode, method), output=outputs.value(0), device="cpu"), X, eps=0.1)
    adapter = FeatureModel(_Div(None, method), output=outputs.value(0), device="cpu")
    found = extremes(adapter, X, 0.1, "linf")
    for bound in (ibp, crown):
        assert_sound(bound(adapter, X, eps=0.1), *found)


class _Products(nn.Module):
    """Constant factors given by keyword and as integer tensors, some negative."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("k", torch.tensor([-3, 2]))

    def forward(self, x):
        h = torch.mul(self.lin(x), other=-2.0) * self.k
        return torch.div(h, other=-0.5).sum(-1, keepdim=True)


def test_negative_factors_by_keyword_and_integer_tensors_are_sound():
    adapter = FeatureModel(_Products(), output=outputs.value(0), device="cpu")
    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(14))
    found = extremes(adapter, X, 0.2, "linf")
    for method in (ibp, crown):
        assert_sound(method(adapter, X, eps=0.2), *found)


# ------------------------------------------------------------------ log_softmax over groups
class _Profile(nn.Module):
    """Two tracks of three positions, each normalised by log_softmax over its positions."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim
        self.a, self.b = nn.Linear(5, 16), nn.Linear(16, 6)

    def forward(self, x):
        return F.log_softmax(self.b(torch.relu(self.a(x))).view(-1, 2, 3), dim=self.dim)


def test_final_log_softmax_is_dropped_only_when_each_group_cancels():
    torch.manual_seed(0)
    X = torch.randn(4, 5, generator=torch.Generator().manual_seed(15))
    model = _Profile()
    across = FeatureModel(model, output=lambda y: y[:, 0, 1] - y[:, 1, 0], device="cpu")
    for method in (ibp, crown):
        with pytest.raises(UnsupportedOperation, match="within each group"):
            method(across, X, eps=0.05)
    within = FeatureModel(model, output=lambda y: y[:, 0, 1] - y[:, 0, 0] + 2 * (y[:, 1, 2] - y[:, 1, 0]), device="cpu")
    found = extremes(within, X, 0.05, "linf")
    for method in (ibp, crown):
        assert_sound(method(within, X, eps=0.05), *found)
    # the other axis groups the tracks: a form within one position is fine, across positions is not
    tracks = _Profile(dim=1)
    tracks.load_state_dict(model.state_dict())
    one_position = FeatureModel(tracks, output=lambda y: y[:, 0, 1] - y[:, 1, 1], device="cpu")
    assert_sound(crown(one_position, X, eps=0.05), *extremes(one_position, X, 0.05, "linf"))
    with pytest.raises(UnsupportedOperation, match="within each group"):
        crown(FeatureModel(tracks, output=lambda y: y[:, 0, 1] - y[:, 0, 0], device="cpu"), X, eps=0.05)


def test_log_softmax_over_the_batch_is_refused():
    model = nn.Sequential(nn.Linear(5, 3), nn.LogSoftmax(dim=0))
    with pytest.raises(UnsupportedOperation, match="batch axis"):
        crown(FeatureModel(model, output=outputs.margin(0), device="cpu"), torch.randn(4, 5), eps=0.05)


# ------------------------------------------------------------------ activation parameters
class _Act(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, x):
        return self.act(x)


_MONOTONE = {
    "Softplus(threshold=1)": (nn.Softplus(threshold=1.0), 1.0),
    "Softplus(beta=3, threshold=0.5)": (nn.Softplus(beta=3.0, threshold=0.5), 0.5 / 3),
    "Softplus(beta=0.5, threshold=-2)": (nn.Softplus(beta=0.5, threshold=-2.0), -4.0),
    "softplus(beta=2)": (lambda x: F.softplus(x, beta=2.0), 0.0),
    "LeakyReLU(3)": (nn.LeakyReLU(3.0), 0.0),
    "ELU(2)": (nn.ELU(2.0), 0.0),
    "elu(0.5)": (lambda x: F.elu(x, alpha=0.5), -0.2),
    "hardtanh(-0.5, 2)": (lambda x: F.hardtanh(x, -0.5, 2.0), -0.5),
}


@pytest.mark.parametrize("name", list(_MONOTONE))
def test_parametrised_activations_are_bounded_soundly_on_a_dense_grid(name):
    act, centre = _MONOTONE[name]
    adapter = FeatureModel(_Act(act), output=outputs.value(0), device="cpu")
    eps = 0.3
    grid = torch.linspace(centre - eps, centre + eps, 20001)[:, None]
    s = adapter.score(grid)
    for method in (ibp, crown):
        b = method(adapter, torch.tensor([[centre]]), eps=eps)
        assert b.lower[0] <= s.min() + 1e-6 and b.upper[0] >= s.max() - 1e-6, (method.__name__, b, s.min(), s.max())
    # and inside a network, where CROWN relaxes them over intermediate boxes
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), _Act(act), nn.Linear(8, 1))
    net_adapter = FeatureModel(net, output=outputs.value(0), device="cpu")
    X = torch.randn(5, 3, generator=torch.Generator().manual_seed(16))
    found = extremes(net_adapter, X, 0.5, "linf", m=400)
    for method in (ibp, crown):
        assert_sound(method(net_adapter, X, eps=0.5), *found)


class _ClampBy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        h = self.lin(x)
        return torch.clamp(h, min=h * 0.5)


class _InPlaceDunder(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 1)

    def forward(self, x):
        h = self.a(x)
        h.__iadd__(1.0)
        return self.b(h)


@pytest.mark.parametrize(
    "model,match",
    [
        (_Act(lambda x: F.elu(x, alpha=-1.0)), "alpha=-1 is not monotone"),
        (_Act(lambda x: F.softplus(x, beta=-1.0)), "beta=-1"),
        (_Act(nn.Softplus(beta=-2.0)), "beta=-2"),
        (_Act(lambda x: F.leaky_relu(x, -0.5)), "negative_slope=-0.5"),
        (_ClampBy(), "more than one input-dependent argument"),
        (_InPlaceDunder(), "writes in place"),
    ],
)
def test_activations_that_bounds_cannot_follow_are_refused(model, match):
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    for method in (ibp, crown):
        with pytest.raises(UnsupportedOperation, match=match):
            method(adapter, torch.randn(3, 4), eps=0.1)


class _ReadsInput(nn.Module):
    """Linear layers on the input: as it is, reshaped and flipped, and copied twice (no rearrangement)."""

    def __init__(self, d=6, h=8):
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b, self.c = nn.Linear(d, h), nn.Linear(d, h), nn.Linear(2 * d, h)
        self.out = nn.Linear(3 * h, 2)

    def forward(self, x):
        flipped = x.view(x.shape[0], 2, -1).flip(-1).flatten(1)
        twice = torch.cat([x, x], 1)  # the interval step counts x twice: not the exact range of c
        h = [torch.relu(self.a(x)), torch.relu(self.b(flipped)), torch.relu(self.c(twice))]
        return self.out(torch.cat(h, 1))


def _first_layer_cases():
    torch.manual_seed(0)
    two_affine = nn.Sequential(nn.Linear(5, 6), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    return [
        (FeatureModel(mlp(), output=outputs.margin(0), device="cpu"), torch.randn(4, 5), 0.1),
        (FeatureModel(_ReadsInput(), output=outputs.margin(1), device="cpu"), torch.randn(4, 6), 0.1),
        (FeatureModel(two_affine, output=outputs.value(0), device="cpu"), torch.randn(4, 5), 0.2),
        (SequenceModel(NLCNet(), output=outputs.value(0), layout="NLC", device="cpu"), one_hot(3, 10), 0.05),
        (SequenceModel(CNN(), output=outputs.logit(1), device="cpu"), one_hot(3, 16), 0.05),
    ]


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_first_layer_boxes_equal_those_of_the_backward_pass(norm, monkeypatch):
    # affine maps that read the input keep their interval box (L-inf) or dual-norm box (L2, L1) instead
    # of a backward pass over each neuron: the bounds stay those of the backward pass
    import importlib

    crown_module = importlib.import_module("probekit.certify.crown")
    cases = _first_layer_cases()
    got = [crown(adapter, X, eps=eps, norm=norm) for adapter, X, eps in cases]
    for (adapter, X, eps), g in zip(cases, got):
        assert_sound(g, *extremes(adapter, X, eps, norm))
    monkeypatch.setattr(crown_module, "_reads_input", lambda problem, op: False)
    for (adapter, X, eps), g in zip(cases, got):
        want = crown(adapter, X, eps=eps, norm=norm)
        torch.testing.assert_close(g.lower, want.lower, rtol=0, atol=1e-6)
        torch.testing.assert_close(g.upper, want.upper, rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_no_backward_pass_starts_at_a_linear_layer_on_the_input(norm, monkeypatch):
    import importlib

    crown_module = importlib.import_module("probekit.certify.crown")
    starts = []
    backward = crown_module.backward

    def spy(problem, start, A, bounds):
        starts.append(start)
        return backward(problem, start, A, bounds)

    monkeypatch.setattr(crown_module, "backward", spy)
    adapter = FeatureModel(_ReadsInput(), output=outputs.margin(1), device="cpu")
    crown(adapter, torch.randn(3, 6), eps=0.1, norm=norm)
    graph = crown_module.prepare(adapter, torch.randn(1, 6), eps=0.1).graph
    layer = {str(op.node.target).split(".")[-1]: op.name for op in graph.ops if op.signed == "linear_module"}
    assert layer["a"] not in starts and layer["b"] not in starts
    assert layer["c"] in starts and layer["out"] in starts  # twice the input is not the input


def test_real_valued_features_of_shape_n_c_l_keep_their_whole_ball():
    # (N, C, L) inputs of a feature adapter are real-valued features, not one-hot DNA clipped to [0, 1]
    from probekit import FeatureModel

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(9, 1))
    adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    X = torch.full((1, 2, 4), -2.0)
    d = (torch.rand(4000, 2, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.5
    s = adapter.score(X + torch.cat([d, d.sign() * 0.5]))
    for method in (ibp, crown):
        b = method(adapter, X, eps=0.5)
        assert float(b.lower[0]) <= float(s.min()) + 1e-5 and float(b.upper[0]) >= float(s.max()) - 1e-5
    # the feature bounds hold there too
    bounded = FeatureModel(model, output=outputs.value(0), device="cpu", bounds=(-2.2, -1.9))
    inside = adapter.score((X + d).clamp(-2.2, -1.9))
    b = ibp(bounded, X, eps=0.5)
    assert float(b.lower[0]) <= float(inside.min()) + 1e-5 and float(b.upper[0]) >= float(inside.max()) - 1e-5
    assert float(b.upper[0] - b.lower[0]) < float(ibp(adapter, X, eps=0.5).upper[0] - ibp(adapter, X, eps=0.5).lower[0])


def test_functional_dropout_in_training_mode_is_refused():
    from probekit import FeatureModel
    from probekit.certify import UnsupportedOperation

    class Dropping(nn.Module):
        def __init__(self, training):
            super().__init__()
            self.a, self.b, self.drop = nn.Linear(3, 8), nn.Linear(8, 1), training

        def forward(self, x):
            return self.b(F.dropout(torch.relu(self.a(x)), 0.5, training=self.drop))

    X = torch.randn(2, 3)
    for method in (ibp, crown):
        with pytest.raises(UnsupportedOperation, match="training mode"):
            method(FeatureModel(Dropping(True), output=outputs.value(0), device="cpu"), X, eps=0.01)
        off = FeatureModel(Dropping(False), output=outputs.value(0), device="cpu")
        b = method(off, X, eps=0.0)
        torch.testing.assert_close(b.lower, off.score(X), atol=1e-5, rtol=1e-5)


def test_an_interval_that_overflows_gives_infinite_bounds_not_nan():
    from probekit import FeatureModel

    class ExpNet(nn.Module):
        def forward(self, x):
            return torch.exp(30 * x).sum(1, keepdim=True)

    adapter = FeatureModel(ExpNet(), output=outputs.value(0), device="cpu")
    for method in (ibp, crown):
        b = method(adapter, torch.zeros(1, 1), eps=3.0)  # exp(90) overflows float32
        assert not torch.isnan(b.lower).any() and not torch.isnan(b.upper).any()
        assert float(b.lower[0]) <= 1.0 <= float(b.upper[0]) and not bool(b.certified[0])
    mlp = FeatureModel(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)), output=0, device="cpu")
    b = ibp(mlp, torch.zeros(1, 2), eps=float("inf"))
    assert float(b.lower[0]) == -math.inf and float(b.upper[0]) == math.inf
