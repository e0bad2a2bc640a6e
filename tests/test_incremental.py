"""The incremental ISM engine against per-mutant forward passes on many architectures."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from probekit import ProbekitWarning, SequenceModel, outputs
from probekit.search import saturation_mutagenesis
from probekit.search.incremental import _analyse, _trace, incremental_single_substitutions
from probekit.testing import ProfileConv, ToyConv

from probekit.testing import random_sequences


def _seeded(model: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
    return model.eval()


class BassetSmall(nn.Module):
    def __init__(self, outputs_: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(4, 12, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(12, 12, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(12, 12, 3, padding=1), nn.ReLU(),
        )
        self.linear = nn.Linear(12, outputs_)

    def forward(self, x):
        return self.linear(self.body(x).max(dim=-1).values)


class Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv1d(4, 8, 5, padding="same")
        self.c1 = nn.Conv1d(8, 8, 3, dilation=2, padding=2)
        self.c2 = nn.Conv1d(8, 8, 3, dilation=4, padding=4)
        self.c3 = nn.Conv1d(8, 6, 3, dilation=8)  # valid: shortens the sequence
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        x = nn.functional.gelu(self.c0(x))
        x = x + torch.relu(self.c1(x))
        x = x + torch.relu(self.c2(x))
        return self.head(torch.tanh(self.c3(x)).mean(dim=-1))


class DilatedStem(nn.Module):
    """A dilated first layer: its change is a matrix product with gaps between the taps."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv1d(4, 8, 3, dilation=2, padding=2)
        self.c1 = nn.Conv1d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(torch.relu(self.c1(torch.relu(self.c0(x)))).amax(dim=-1))


class DenseHead(nn.Module):
    """Convolutions and pooling, then a flatten and dense layers (a Basset- or DeepSTARR-style head)."""

    def __init__(self, length: int, flatten: str = "module"):
        super().__init__()
        self.flatten_kind = flatten
        self.c1 = nn.Conv1d(4, 6, 5, padding=2)
        self.pool = nn.MaxPool1d(2)
        self.c2 = nn.Conv1d(6, 6, 3, dilation=2, padding=2)
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(6 * (length // 2), 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.c2(self.pool(torch.relu(self.c1(x)))))
        flat = self.flat(h) if self.flatten_kind == "module" else torch.flatten(h, 1)
        return self.fc2(torch.relu(self.fc1(flat)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(4, 8, 9, padding=4)
        self.a = nn.Conv1d(8, 8, 3, padding=1)
        self.b = nn.Conv1d(8, 8, 3, padding=1)
        self.pool = nn.AvgPool1d(3, stride=2, padding=1)
        self.down = nn.Conv1d(8, 8, 4, stride=2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(8 * 9, 3)

    def forward(self, x):
        x = nn.functional.elu(self.stem(x))
        x = x + self.b(torch.relu(self.a(x)))
        x = self.drop(self.pool(x))
        x = torch.sigmoid(self.down(x))
        return self.fc(x.flatten(1))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.zeros(8, 4, 7))
        self.b1 = nn.Parameter(torch.zeros(8))
        self.w2 = nn.Parameter(torch.zeros(8, 8, 5))
        self.scale = nn.Parameter(torch.ones(1, 8, 1))
        self.out = nn.Parameter(torch.zeros(2, 8))

    def forward(self, x):
        h = torch.relu(F.conv1d(x, self.w1, self.b1, padding=3))
        h = F.max_pool1d(h, 2)
        h = h + F.relu(F.conv1d(h, self.w2, padding=2, dilation=1)) * self.scale
        h = 2.0 * h - 0.1
        h = F.dropout(h, p=0.5, training=self.training)
        return F.linear(h.mean(-1), self.out)


class NLCModel(nn.Module):
    """Takes (N, L, 4): transposes for a conv, then a per-position linear layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.proj = nn.Linear(8, 6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        h = self.norm(torch.relu(self.proj(h)))
        return self.head(h.max(dim=1).values)


class BatchNormModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 8, 5, stride=2, padding=2, groups=2)
        self.bn2 = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.leaky_relu(self.bn2(self.conv2(x)), 0.1)
        return self.fc(x.amax(dim=-1))


class Flattened(nn.Module):
    """Mixes every position in its first layer: cannot be analysed."""

    def __init__(self, length: int):
        super().__init__()
        self.fc = nn.Linear(4 * length, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


class AttentionFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 1, batch_first=True)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        h = x.transpose(1, 2)
        h, _ = self.attn(h, h, h)
        return self.fc(h.mean(1))


class InPlace(nn.Module):
    """In-place activations and an in-place residual addition, each the only reader of what it writes."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 5, padding=2)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(2)
        self.c2 = nn.Conv1d(6, 6, 3, padding=1)
        self.c3 = nn.Conv1d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        h = self.pool(self.act(self.c1(x)))
        g = self.c2(h).relu_()
        r = nn.functional.leaky_relu(self.c3(g), 0.1, inplace=True)
        r += g
        return self.fc(r.amax(dim=-1))


class OneConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)


class InPlaceShared(OneConv):
    """An in-place activation whose input is read again afterwards (the write shows there too)."""

    def forward(self, x):
        h = self.conv(x)
        r = h.relu_()
        return (r + h).amax(dim=(1, 2))[:, None]


class Branchy(OneConv):
    """Data-dependent control flow: not traceable."""

    def forward(self, x):
        h = self.conv(x)
        if h.sum() > 0:
            return h.mean(dim=(1, 2))[:, None]
        return h.amax(dim=(1, 2))[:, None]


class Cropped(nn.Module):
    """Position crops between convolutions, as in profile models: a slice, an ellipsis slice and a narrow."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 8, 5), nn.Conv1d(8, 8, 3, dilation=2)
        self.c3, self.fc = nn.Conv1d(8, 6, 3, padding=1), nn.Linear(6, 3)

    def forward(self, x):
        h = F.relu(self.c1(x))[:, :, 3:-2]
        h = F.relu(self.c2(h))[..., 1:]
        h = self.c3(h).narrow(2, 2, h.shape[2] - 4)
        return self.fc(h.amax(-1))


class ProfileCrops(nn.Module):
    """Dilated residual convolutions whose skip path is cropped to the convolution's output, ends from shapes."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv1d(4, 8, 7)
        self.dil = nn.ModuleList([nn.Conv1d(8, 8, 3, dilation=2**i) for i in range(3)])
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        h = F.relu(self.c0(x))
        for conv in self.dil:
            c = F.relu(conv(h))
            crop = (h.size(2) - c.shape[2]) // 2
            h = h[:, :, crop : h.shape[-1] - crop] + c
        return self.fc(h.mean(-1))


def _mutants(X: torch.Tensor, positions: torch.Tensor):
    """Every single substitution, built explicitly: (N * P * 4, 4, L) and the row of each."""
    n, c, length = X.shape
    p = positions.numel()
    M = X[:, None, None].expand(n, p, c, c, length).clone()
    eye = torch.eye(c)
    for j, pos in enumerate(positions.tolist()):
        M[:, j, :, :, pos] = eye
    rows = torch.arange(n)[:, None, None].expand(n, p, c).reshape(-1)
    return M.reshape(-1, c, length), rows


def _oracle(adapter, X, positions, fn):
    M, rows = _mutants(X.cpu(), positions.cpu())
    values = adapter.map(M.to(adapter.device), fn, rows=rows.to(adapter.device))
    return values.reshape(X.shape[0], positions.numel(), X.shape[1], *values.shape[1:])


def _check(adapter, X, positions=None, fn=None):
    positions = torch.arange(X.shape[-1]) if positions is None else torch.as_tensor(positions)
    fn = fn or (lambda y, rows: adapter.output(y))
    got = incremental_single_substitutions(adapter, X, positions, fn)
    assert got is not None, "the engine should analyse this model"
    want = _oracle(adapter, X, positions, fn)
    assert got.shape == want.shape
    scale = want.abs().max().clamp_min(1e-12)
    torch.testing.assert_close(got.cpu(), want.cpu(), rtol=1e-5, atol=1e-5 * float(scale))
    return got


CASES = {
    "toyconv": (lambda: ToyConv(), 24, "NCL", outputs.logit(1)),
    "basset": (lambda: _seeded(BassetSmall()), 64, "NCL", outputs.logit(0)),
    "dilated": (lambda: _seeded(Dilated()), 48, "NCL", outputs.value(0)),
    "dilated_stem": (lambda: _seeded(DilatedStem()), 40, "NCL", outputs.logit(1)),
    "dense_head": (lambda: _seeded(DenseHead(36)), 36, "NCL", outputs.logit(1)),
    "dense_head_function": (lambda: _seeded(DenseHead(36, "function")), 36, "NCL", outputs.logit(0)),
    "in_place": (lambda: _seeded(InPlace()), 30, "NCL", outputs.logit(1)),
    "residual": (lambda: _seeded(Residual()), 40, "NCL", outputs.logit(2)),
    "functional": (lambda: _seeded(Functional()), 30, "NCL", outputs.logit(1)),
    "nlc": (lambda: _seeded(NLCModel()), 32, "NLC", outputs.value(0)),
    "batchnorm": (lambda: _bn_model(), 36, "NCL", outputs.logit(0)),
    "margin": (lambda: _seeded(BassetSmall(outputs_=3)), 64, "NCL", outputs.margin(1)),
    "profile": (lambda: ProfileConv(tracks=2), 30, "NCL", outputs.window(1, 10, 20)),
    "cropped": (lambda: _seeded(Cropped()), 36, "NCL", outputs.logit(2)),
    "profile_crops": (lambda: _seeded(ProfileCrops()), 40, "NCL", outputs.logit(1)),
}


def _bn_model():
    model = _seeded(BatchNormModel())
    generator = torch.Generator().manual_seed(1)
    for bn in (model.bn, model.bn2):
        bn.running_mean.copy_(torch.randn(8, generator=generator))
        bn.running_var.copy_(torch.rand(8, generator=generator) + 0.5)
    return model


@pytest.mark.parametrize("name", list(CASES))
def test_matches_per_mutant_forward_passes(name, device):
    build, length, layout, output = CASES[name]
    adapter = SequenceModel(build(), output=output, layout=layout, device=device, batch_size=64)
    X = adapter.encode(random_sequences(2, length, seed=3))
    _check(adapter, X)


@pytest.mark.parametrize("name", list(CASES))
def test_interior_chunks_match_per_mutant_forward_passes(name, device, monkeypatch):
    # small chunks: the interior mutants run apart from the edge ones, through the paths that skip the
    # re-alignment of clamped windows and read only the reference rows around each window
    import probekit.search.incremental as incremental

    monkeypatch.setattr(incremental, "_chunk_size", lambda plan, device: 12)
    build, length, layout, output = CASES[name]
    adapter = SequenceModel(build(), output=output, layout=layout, device=device, batch_size=64)
    _check(adapter, adapter.encode(random_sequences(2, length, seed=4)))


@pytest.mark.parametrize("name", list(CASES))
def test_a_few_positions_read_in_place_match_per_mutant_forward_passes(name, device):
    # scanning a few positions (a variant's) gathers the reference windows where they lie instead of
    # copying whole activations: the first, middle and last positions check the edges too
    build, length, layout, output = CASES[name]
    adapter = SequenceModel(build(), output=output, layout=layout, device=device, batch_size=64, strands="both")
    X = adapter.encode(random_sequences(3, length, seed=6))
    for positions in ([0], [length // 2], [length - 1]):
        _check(adapter, X, positions)


def test_reverse_complement_strands_and_position_subset():
    adapter = SequenceModel(_seeded(BassetSmall()), output=outputs.logit(1), device="cpu", strands="both")
    X = adapter.encode(random_sequences(3, 64, seed=5))
    _check(adapter, X, positions=[0, 1, 17, 40, 63])


def test_n_positions_and_bound_goal_rows():
    adapter = SequenceModel(_seeded(Dilated()), output=outputs.value(0), device="cpu")
    seqs = random_sequences(2, 48, seed=7)
    seqs[0] = seqs[0][:10] + "NN" + seqs[0][12:]
    X = adapter.encode(seqs)
    offsets = torch.tensor([0.5, -2.0])
    got = _check(adapter, X, fn=lambda y, rows: y[:, 0] + offsets[rows])
    # at an N position every base is a real substitution: none equals the reference output
    ref = adapter.score(X)[0] + offsets[0]
    assert not torch.isclose(got[0, 10], ref).all()


def test_double_precision_adapter():
    adapter = SequenceModel(_seeded(BassetSmall()).double(), output=0, device="cpu", dtype=torch.float64)
    X = adapter.encode(random_sequences(2, 64, seed=2))
    got = _check(adapter, X)
    assert got.dtype == torch.float64


def test_reference_base_gives_reference_output():
    adapter = SequenceModel(_seeded(BassetSmall()), output=1, device="cpu")
    X = adapter.encode(random_sequences(2, 64, seed=9))
    got = incremental_single_substitutions(adapter, X, torch.arange(64), lambda y, rows: adapter.output(y))
    at_ref = got.permute(0, 2, 1)[X.bool()].reshape(2, 64)
    torch.testing.assert_close(at_ref, adapter.score(X)[:, None].expand(2, 64))


@pytest.mark.parametrize(
    "build", [lambda: Flattened(20), lambda: AttentionFirst(), lambda: Branchy(), lambda: InPlaceShared()]
)
def test_returns_none_when_it_cannot_analyse(build):
    adapter = SequenceModel(build(), output=0, device="cpu")
    X = adapter.encode(random_sequences(2, 20, seed=1))
    assert incremental_single_substitutions(adapter, X, torch.arange(20), lambda y, rows: y[:, 0]) is None


def test_models_with_forward_hooks_fall_back_to_full_passes():
    # a hook may change a layer's output, and the engine computes some layers without calling them
    model = _seeded(BassetSmall())
    handle = model.body[0].register_forward_hook(lambda module, args, out: out * 2.0)
    adapter = SequenceModel(model, output=outputs.logit(0), device="cpu")
    X = adapter.encode(random_sequences(2, 64, seed=5))
    with pytest.warns(ProbekitWarning, match="forward hooks"):  # the slower path is never taken silently
        assert incremental_single_substitutions(adapter, X, torch.arange(64), lambda y, rows: adapter.output(y)) is None
    from probekit.search import saturation_mutagenesis

    ism = saturation_mutagenesis(adapter, X)
    want = _oracle(adapter, X, torch.arange(64), lambda y, rows: adapter.output(y))  # (N, L, 4), hook included
    torch.testing.assert_close(ism.effects + ism.reference[:, None, None], want.cpu(), rtol=1e-5, atol=1e-5)
    handle.remove()
    assert incremental_single_substitutions(adapter, X, torch.arange(64), lambda y, rows: adapter.output(y)) is not None


def test_returns_none_for_plain_callables_and_autocast():
    adapter = SequenceModel(lambda x: x.sum(dim=(1, 2))[:, None], output=0, device="cpu")
    X = adapter.encode(random_sequences(1, 10))
    assert incremental_single_substitutions(adapter, X, [0], lambda y, rows: y[:, 0]) is None
    auto = SequenceModel(ToyConv(), output=0, device="cpu", autocast="bf16")
    with pytest.warns(ProbekitWarning, match="autocast"):
        assert incremental_single_substitutions(auto, X, [0], lambda y, rows: y[:, 0]) is None


def test_model_state_restored_and_input_untouched():
    model = _seeded(BassetSmall()).train()
    adapter = SequenceModel(model, output=0, device="cpu")
    X = adapter.encode(random_sequences(2, 64, seed=4))
    before = X.clone()
    incremental_single_substitutions(adapter, X, torch.arange(64), lambda y, rows: y[:, 0])
    assert model.training
    assert torch.equal(X, before)


def test_skip_pairs_and_vector_valued_fn():
    adapter = SequenceModel(_seeded(BassetSmall(outputs_=3)), output=0, device="cpu")
    X = adapter.encode(random_sequences(2, 64, seed=6))
    positions = torch.arange(0, 64, 3)
    skip = torch.zeros(2, positions.numel(), dtype=torch.bool)
    skip[0, 2] = skip[1, 5] = True
    got = incremental_single_substitutions(adapter, X, positions, lambda y, rows: y, skip=skip)
    want = _oracle(adapter, X, positions, lambda y, rows: y)
    reference = adapter.predict(X)
    want[0, 2] = reference[0]
    want[1, 5] = reference[1]
    assert got.shape == (2, positions.numel(), 4, 3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


class OOMHead(nn.Module):
    """Conv body whose head runs out of memory (simulated) on batches above 40."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.fc = nn.Linear(6, 1)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean(dim=-1)
        return self.fc(h) + _oom_if_large(h)


@torch.fx.wrap
def _oom_if_large(h):
    if h.shape[0] > 40:
        raise RuntimeError("CUDA out of memory (simulated)")
    return torch.zeros(h.shape[0], 1, dtype=h.dtype, device=h.device)


def test_out_of_memory_halves_the_chunk_and_goes_on():
    from probekit import ProbekitWarning

    adapter = SequenceModel(_seeded(OOMHead()), output=0, device="cpu", batch_size=8)
    X = adapter.encode(random_sequences(2, 64, seed=8))
    with pytest.warns(ProbekitWarning, match="halved"):
        _check(adapter, X)


def test_nlc_layout_with_both_strands():
    adapter = SequenceModel(_seeded(NLCModel()), output=outputs.value(0), layout="NLC", device="cpu", strands="both")
    X = adapter.encode(random_sequences(2, 32, seed=11))
    _check(adapter, X, positions=[0, 5, 16, 31])


class Switchable(nn.Module):
    """Averages over both strands when ``both_strands`` is set: a flag that traced control flow reads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.fc = nn.Linear(6 * 20, 2)
        self.both_strands = False
        self.kernel_sizes = [5]

    def forward(self, x):
        y = self.fc(F.relu(self.conv(x)).flatten(1))
        if self.both_strands:
            y = 0.5 * (y + self.fc(F.relu(self.conv(x.flip(1).flip(2))).flatten(1)))
        return y


def test_a_model_changed_after_a_first_scan_is_traced_again():
    model = _seeded(Switchable())
    adapter = SequenceModel(model, output=outputs.logit(1), device="cpu", batch_size=64)
    X = adapter.encode(random_sequences(2, 20, seed=3))
    _check(adapter, X)
    model.both_strands = True  # as a notebook user would, between two scans
    _check(adapter, X)
    model.fc = nn.Sequential(nn.Linear(6 * 20, 2), nn.Tanh())  # a replaced submodule
    _check(adapter, X)


class DunderInPlace(nn.Module):
    """Adds to an activation in place with a written-out ``__iadd__`` call, then reads it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        h = F.relu(self.conv(x))
        h.__iadd__(1.0)
        return self.fc(h.amax(dim=2))


def test_a_written_out_in_place_method_never_corrupts_the_cached_reference():
    model = _seeded(DunderInPlace())
    adapter = SequenceModel(model, output=outputs.logit(1), device="cpu", batch_size=64)
    X = adapter.encode(random_sequences(2, 20, seed=4))
    positions = torch.arange(20)
    fn = lambda y, rows: adapter.output(y)  # noqa: E731
    got = incremental_single_substitutions(adapter, X, positions, fn)
    want = _oracle(adapter, X, positions, fn)
    if got is not None:  # the engine may decline this model; what it returns must be exact
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compile_", ["trace", "script"])
def test_torchscript_models_take_full_passes_with_the_same_results(compile_, tmp_path):
    from probekit import load_model
    from probekit.search import saturation_mutagenesis

    model = _seeded(BassetSmall()).eval()
    X = SequenceModel(model, output=0, device="cpu").encode(random_sequences(2, 64, seed=5))
    compiled = torch.jit.trace(model, X) if compile_ == "trace" else torch.jit.script(model)
    torch.jit.save(compiled, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert incremental_single_substitutions(SequenceModel(loaded, output=0, device="cpu"), X, torch.arange(64),
                                            lambda y, rows: y[:, 0]) is None  # fmt: skip
    got = saturation_mutagenesis(SequenceModel(loaded, output=outputs.logit(1), device="cpu"), X)
    want = saturation_mutagenesis(SequenceModel(model, output=outputs.logit(1), device="cpu"), X)
    torch.testing.assert_close(got.effects, want.effects, rtol=1e-5, atol=1e-5)


def test_sequences_in_blocks_give_the_same_values_with_the_rows_of_the_whole_batch(monkeypatch, capsys):
    import probekit.search.incremental as incremental

    monkeypatch.setattr(incremental, "_FIRST_BLOCK", 2)
    monkeypatch.setattr(incremental, "_block_budget", lambda device: 1)  # then one sequence per block
    adapter = SequenceModel(_seeded(BassetSmall()), output=outputs.logit(0), device="cpu", batch_size=64)
    X = adapter.encode(random_sequences(5, 64, seed=6))
    positions = torch.tensor([0, 7, 30, 63])
    fn = lambda y, rows: adapter.output(y) * (rows + 1)  # noqa: E731 - tells the rows apart
    skip = torch.zeros(5, 4, dtype=torch.bool)
    skip[3, 1] = True
    got = incremental_single_substitutions(adapter, X, positions, fn, skip=skip, progress=True)
    want = _oracle(adapter, X, positions, fn)
    want[3, 1] = fn(adapter.predict(X[3:4]), torch.tensor([3]))  # a skipped pair keeps the unedited value
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert "5/5" in capsys.readouterr().err  # the progress bar counted every sequence


class InPlaceThroughAlias(OneConv):
    """An in-place activation on a tensor that is ``h`` itself (dropout in eval) or a view of it: ``h`` changes too."""

    def __init__(self, how):
        super().__init__()
        self.how, self.drop, self.act = how, nn.Dropout(0.2), nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.conv(x)
        y = self.drop(h) if self.how == "dropout" else h.transpose(1, 2) if self.how == "view" else h.contiguous()
        y = self.act(y)
        return torch.cat([y.amax(dim=(1, 2))[:, None], h.mean(dim=(1, 2))[:, None]], dim=1)


class PaddingOnlyStride(nn.Module):
    """A strided layer whose taps read only padding and positions no substitution changes."""

    def __init__(self):
        super().__init__()
        self.c1, self.pool = nn.Conv1d(4, 4, 5), nn.AvgPool1d(2)
        self.c2, self.fc = nn.Conv1d(4, 4, 1, stride=3, padding=1), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.c2(self.pool(self.c1(x))).flatten(1))


class PositionalClamp(OneConv):
    """A clamp whose bound varies along positions: not elementwise in a window."""

    def __init__(self, length):
        super().__init__()
        self.register_buffer("floor", torch.randn(1, 4, length, generator=torch.Generator().manual_seed(3)) * 0.1)

    def forward(self, x):
        return torch.clamp(self.conv(x), min=self.floor).amax(-1)


@pytest.mark.parametrize("how", ["dropout", "view", "contiguous"])
def test_an_in_place_write_through_an_alias_falls_back_with_exact_results(how):
    model = _seeded(InPlaceThroughAlias(how)).eval()
    adapter = SequenceModel(model, output=outputs.logit(1), device="cpu")
    X = adapter.encode(random_sequences(2, 20, seed=2))
    assert incremental_single_substitutions(adapter, X, torch.arange(20), lambda y, rows: y) is None
    r = saturation_mutagenesis(adapter, X)
    want = _oracle(adapter, X, torch.arange(20), lambda y, rows: adapter.output(y)).reshape(2, 20, 4)
    torch.testing.assert_close(r.effects + r.reference[:, None, None], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build, length", [(PaddingOnlyStride, 8), (lambda: PositionalClamp(20), 20)])
def test_layers_that_read_no_changed_position_or_positional_constants_stay_exact(build, length):
    adapter = SequenceModel(_seeded(build()).eval(), output=outputs.logit(1), device="cpu")
    X = adapter.encode(random_sequences(2, length, seed=4))
    r = saturation_mutagenesis(adapter, X)
    want = _oracle(adapter, X, torch.arange(length), lambda y, rows: adapter.output(y)).reshape(2, length, 4)
    torch.testing.assert_close(r.effects + r.reference[:, None, None], want, rtol=1e-5, atol=1e-5)


def test_crops_with_ends_from_shapes_keep_the_later_convolutions_local():
    adapter = SequenceModel(_seeded(ProfileCrops()).eval(), output=outputs.logit(1), device="cpu")
    X = adapter.encode(random_sequences(2, 40, seed=6))
    _check(adapter, X)
    plan = _analyse(adapter.model, _trace(adapter.model), X, 2)[0]
    # everything up to the global mean is windowed: only the head runs in full
    assert sorted(n.name for n in plan.suffix) == ["fc", "mean"]
