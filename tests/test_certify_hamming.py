"""k-substitution bounds and certificates against brute-force enumeration on short sequences."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.certify import bit_flips, crown, ibp, substitutions
from probekit.certify.hamming import CertificateResult
from probekit.testing import ToyConv

TOL = 1e-4


def one_hot(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, 4, (n, length), generator=g), 4).float().transpose(1, 2)


def all_edits(x, k):
    """Every one-hot sequence within k substitutions of x (4, L), with its edit list."""
    length = x.shape[1]
    ref = x.argmax(0).tolist()
    seqs, labels = [x.clone()], [[]]
    for j in range(1, k + 1):
        for pos in itertools.combinations(range(length), j):
            for alts in itertools.product(range(3), repeat=j):
                y = x.clone()
                edit = []
                for p, a in zip(pos, alts):
                    b = (ref[p] + 1 + a) % 4
                    y[:, p] = 0
                    y[b, p] = 1
                    edit.append((p, "ACGT"[ref[p]], "ACGT"[b]))
                seqs.append(y)
                labels.append(edit)
    return torch.stack(seqs), labels


def apply_edits(x, edits):
    y = x.clone()
    for p, _, alt in edits:
        y[:, p] = 0
        y["ACGT".index(alt), p] = 1
    return y


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.conv2 = nn.Conv1d(6, 4, 3)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        h = F.max_pool1d(torch.relu(self.conv(x)), 2)
        return self.out(torch.relu(self.conv2(h)).mean(-1))


class Linear(nn.Module):
    """Linear in the one-hot input: k-substitution bounds must be exact."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv1d(4, 3, 3)

    def forward(self, x):
        return self.conv(x).sum(-1)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("layout", ["NCL", "NLC"])
def test_substitution_bounds_contain_every_edited_sequence(k, layout):
    model = SmallCNN()
    wrapped = model if layout == "NCL" else _NLC(model)
    adapter = SequenceModel(wrapped, output=outputs.margin(1), layout=layout, strands="both", device="cpu")
    X = one_hot(2, 8)
    for method in (ibp, crown):
        result = method(adapter, X, k=k)
        for i in range(2):
            seqs, _ = all_edits(X[i], k)
            s = adapter.score(seqs)
            assert result.lower[i] <= s.min() + TOL and result.upper[i] >= s.max() - TOL
            g = adapter.evaluate(seqs, adapter.bind(goals.flip(), X[i : i + 1]), torch.zeros(len(seqs), dtype=torch.long))[1]
            if result.certified[i]:
                assert (g > 0).all()


class _NLC(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.transpose(1, 2))


def test_substitution_bounds_are_exact_for_a_linear_model():
    adapter = SequenceModel(Linear(), output=outputs.logit(1), device="cpu")
    X = one_hot(4, 8, seed=3)
    for k in (1, 2):
        for method in (ibp, crown):
            result = method(adapter, X, k=k)
            for i in range(4):
                s = adapter.score(all_edits(X[i], k)[0])
                torch.testing.assert_close(result.lower[i], s.min(), atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(result.upper[i], s.max(), atol=1e-5, rtol=1e-5)


def _truth(adapter, X, k, goal):
    out = []
    for i in range(X.shape[0]):
        seqs, _ = all_edits(X[i], k)
        g = adapter.evaluate(seqs, adapter.bind(goal, X[i : i + 1]), torch.zeros(len(seqs), dtype=torch.long))[1]
        out.append(float(g.min()))
    return torch.tensor(out)


def _check_against_truth(adapter, X, result, truth, goal):
    assert isinstance(result, CertificateResult)
    for i, status in enumerate(result.status):
        if status == "certified":
            assert truth[i] > 0, (i, truth[i])
            if torch.isfinite(result.g_lower[i]):
                assert result.g_lower[i] <= truth[i] + TOL
            if result.how[i] in ("bounds", "branch-and-bound"):
                assert result.g_lower[i] > 0, (i, result.g_lower[i])  # the proof is a positive lower bound
        elif status == "falsified":
            assert truth[i] <= 0
            edited = apply_edits(X[i], result.edits[i])
            g = adapter.evaluate(edited[None], adapter.bind(goal, X[i : i + 1]))[1]
            assert g[0] <= 0 and len(result.edits[i]) <= result.k


@pytest.mark.parametrize("path", ["enumeration", "branch-and-bound", "bounds+attack"])
def test_substitutions_agree_with_brute_force(path):
    adapter = SequenceModel(SmallCNN(), output=outputs.logit(0), device="cpu")
    X = one_hot(3, 8, seed=4)
    k = 2
    drops = -_truth(adapter, X, k, goals.decrease(by=1e-3)) + 1e-3  # largest drop per input
    for scale in (0.8, 1.2):  # goals just reachable / just out of reach
        for i in range(X.shape[0]):
            goal = goals.decrease(by=float(drops[i]) * scale)
            truth = _truth(adapter, X[i : i + 1], k, goal)
            kw = {"enumeration": dict(), "branch-and-bound": dict(max_enumerate=0, attack=False),
                  "bounds+attack": dict(max_enumerate=0)}[path]
            result = substitutions(adapter, X[i : i + 1], k=k, goal=goal, **kw)
            _check_against_truth(adapter, X[i : i + 1], result, truth, goal)
            assert result.status[0] != "unknown"
            if path != "bounds+attack":
                assert result.how[0] == path or (path == "branch-and-bound" and result.how[0] == "bounds")


def test_flip_certificates_on_toy_conv():
    adapter = SequenceModel(ToyConv(channels=6), output=1, device="cpu")
    X = one_hot(6, 8, seed=5)
    for k in (1, 2):
        truth = _truth(adapter, X, k, goals.flip())
        for kw in (dict(), dict(max_enumerate=0, attack=False)):
            result = substitutions(adapter, X, k=k, **kw)
            _check_against_truth(adapter, X, result, truth, goals.flip())
            assert "unknown" not in result.status
            assert [s == "certified" for s in result.status] == (truth > 0).tolist()


def test_bit_flip_certificates_agree_with_brute_force():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    adapter = FeatureModel(model, output=outputs.value(0), kinds="binary", device="cpu")
    X = (torch.rand(10, 8, generator=torch.Generator().manual_seed(6)) > 0.5).float()
    k = 2
    flips = [torch.zeros(8)] + [F.one_hot(torch.tensor(list(c)), 8).sum(0).float() for j in (1, 2) for c in itertools.combinations(range(8), j)]
    flips = torch.stack(flips)
    s0 = adapter.score(X)
    for kw in (dict(), dict(max_enumerate=0, attack=False)):
        goal = goals.decrease(by=0.05)
        result = bit_flips(adapter, X, k=k, goal=goal, **kw)
        for i in range(10):
            cands = (X[i] + flips) % 2
            truth = float((adapter.score(cands) - (s0[i] - 0.05)).min())
            assert result.status[i] == ("certified" if truth > 0 else "falsified")
            if result.status[i] == "falsified":
                x = X[i].clone()
                names = [f"f{j}" for j in range(8)]
                for name, old, new in result.edits[i]:
                    assert x[names.index(name)] == old
                    x[names.index(name)] = new
                assert adapter.score(x[None])[0] <= s0[i] - 0.05 + TOL


def test_result_round_trip(tmp_path):
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    r = substitutions(adapter, one_hot(3, 8), k=1)
    r.save(tmp_path / "c.pt")
    back = CertificateResult.load(tmp_path / "c.pt")
    assert back.status == r.status and back.edits == r.edits
    assert list(r.to_frame().columns)[:3] == ["id", "status", "how"]


def test_k_edit_sets_with_per_input_k_minimise_exactly():
    from probekit.certify.spec import BitFlips, Hamming

    x0 = one_hot(3, 5, seed=7)
    k = torch.tensor([0, 2, 1])
    A = torch.randn(4, 3, 4, 5, generator=torch.Generator().manual_seed(8))
    sets = Hamming(x0, k)
    assert sets.kmax == 2 and Hamming(x0, 1).kmax == 1 and Hamming(x0[:0], 3).kmax == 0
    got = sets.concretize(A)
    for n in range(3):
        seqs, _ = all_edits(x0[n], int(k[n]))
        want = torch.einsum("sal,mal->sm", A[:, n], seqs).min(1).values
        torch.testing.assert_close(got[:, n], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(Hamming(x0, k, kmax=2).concretize(A), got, rtol=0, atol=0)

    bits = (torch.rand(3, 6, generator=torch.Generator().manual_seed(9)) > 0.5).float()
    flippable = torch.tensor([True, True, False, True, True, True])
    B = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(10))
    flips = BitFlips(bits, k, flippable[None])
    assert flips.kmax == 2
    got = flips.concretize(B)
    free = flippable.nonzero()[:, 0].tolist()
    for n in range(3):
        cands = [bits[n]]
        for j in range(1, int(k[n]) + 1):
            for c in itertools.combinations(free, j):
                x = bits[n].clone()
                x[list(c)] = 1 - x[list(c)]
                cands.append(x)
        want = (B[:, n] @ torch.stack(cands).T).min(1).values
        torch.testing.assert_close(got[:, n], want, atol=1e-5, rtol=1e-5)


def test_branch_and_bound_in_small_batches_agrees_with_brute_force():
    # small batches leave most branches open between batches: their order and histories must stay in step
    adapter = SequenceModel(SmallCNN(), output=outputs.logit(0), device="cpu")
    X = one_hot(6, 6, seed=4)
    drops = (-_truth(adapter, X, 2, goals.decrease(by=1e-3)) + 1e-3).sort().values
    goal = goals.decrease(by=float(drops[2:4].mean()))  # half the inputs can reach it
    truth = _truth(adapter, X, 2, goal)
    results = [substitutions(adapter, X, k=2, goal=goal, max_enumerate=0, attack=False, batch_size=b) for b in (7, 64)]
    for result in results:
        _check_against_truth(adapter, X, result, truth, goal)
        assert result.how == ["branch-and-bound"] * 6
        assert [s == "certified" for s in result.status] == (truth > 0).tolist()
    certified = truth > 0
    assert 0 < int(certified.sum()) < 6
    # a certified input's tree is searched whole, whatever the batches
    torch.testing.assert_close(results[0].g_lower[certified], results[1].g_lower[certified], rtol=0, atol=1e-6)


def test_branch_and_bound_stops_splitting_an_input_with_a_counterexample():
    adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    X = one_hot(4, 8, seed=6)
    s = adapter.score(X).sort().values
    goal = goals.below(float(s[1:3].mean()))  # two inputs are below it already
    result = substitutions(adapter, X, k=2, goal=goal, max_enumerate=0, attack=False)
    at_goal = adapter.score(X) < float(s[1:3].mean())
    assert int(at_goal.sum()) == 2
    for i in at_goal.nonzero()[:, 0].tolist():
        assert result.status[i] == "falsified" and result.edits[i] == []
        assert int(result.evaluations[i]) == 2  # the first bound, then the root's evaluation: no bound, no split


class _FirstBase(nn.Module):
    """Score 1 when position 0 holds A, else -1: only an edit at position 0 reaches below 0."""

    def forward(self, x):
        return (2 * x[:, 0, :1] - 1) + 0 * x.sum((1, 2))[:, None]


@pytest.mark.parametrize("kw", [dict(), dict(max_enumerate=0, attack=False)])
def test_positions_given_as_indices_as_a_mask_or_a_slice_agree(kw):
    adapter = SequenceModel(_FirstBase(), output=outputs.value(0), device="cpu")
    X = adapter.encode(["AAAAA", "AACAA"])
    goal = goals.below(0.0)
    every = [0, 1, 2, 3, 4]
    for positions in (every, torch.tensor(every), [True] * 5, slice(None), [0], None):
        r = substitutions(adapter, X, k=1, goal=goal, positions=positions, **kw)
        assert r.status == ["falsified", "falsified"], positions
        assert [e[0][0] for e in r.edits] == [0, 0]
    for positions in ([1, 2, 3, 4], [False, True, True, True, True], slice(1, None)):
        r = substitutions(adapter, X, k=1, goal=goal, positions=positions, **kw)
        assert r.status == ["certified", "certified"], positions
    # brute force agrees: no single edit away from position 0 reaches the goal
    seqs, labels = all_edits(X[0], 1)
    away = [i for i, e in enumerate(labels) if not e or e[0][0] != 0]
    assert (adapter.score(seqs[away]) > 0).all()


def test_ambiguous_positions_are_refused():
    adapter = SequenceModel(_FirstBase(), output=outputs.value(0), device="cpu")
    X = adapter.encode(["AAAAA"])
    for positions, match in (
        (torch.tensor([0, 1, 1, 1, 1]), "repeat a site"),
        ([0.0, 1.0], "bool mask or integer indices"),
        ([7], r"must lie in \[0, 5\)"),
        ("ACGT", "string"),
    ):
        with pytest.raises(ValueError, match=match):
            substitutions(adapter, X, k=1, goal=goals.below(0.0), positions=positions)


def test_bit_flip_features_by_index_name_or_mask_agree():
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        model.bias.fill_(-1.5)
    adapter = FeatureModel(model, output=outputs.value(0), kinds="binary", feature_names=["a", "b", "c"], device="cpu")
    X = torch.tensor([[1.0, 1.0, 0.0]])
    for features in ([0, 1], ["a"], [True, False, False], torch.tensor([1])):
        assert bit_flips(adapter, X, k=1, goal="below:0", features=features).status == ["falsified"], features
    for features in ([2], ["c"], [False, False, True]):
        assert bit_flips(adapter, X, k=1, goal="below:0", features=features).status == ["certified"], features


def test_an_input_gets_the_same_verdict_alone_and_in_any_batch(monkeypatch):
    # a budget too small for some inputs: each input spends its own, so neither its verdict nor its
    # bounds depend on the other inputs of the call or on how many are searched at once
    from probekit.certify import hamming

    adapter = SequenceModel(ToyConv(channels=6), output=1, device="cpu")
    X = one_hot(12, 8, seed=11)
    drops = (-_truth(adapter, X, 2, goals.decrease(by=1e-3)) + 1e-3).sort().values
    goal = goals.decrease(by=float(drops[6]) * 1.05)
    truth = _truth(adapter, X, 2, goal)
    kw = dict(k=2, goal=goal, max_enumerate=0, attack=False, batch_size=8, max_nodes=100)
    alone = [substitutions(adapter, X[i : i + 1], **kw) for i in range(12)]
    status = [r.status[0] for r in alone]
    assert {"certified", "falsified", "unknown"} <= set(status)
    small = [status.index("unknown"), status.index("certified"), status.index("falsified")]
    hard_first = sorted(range(12), key=lambda i: status[i] != "unknown")
    calls = [(small, substitutions(adapter, X[small], **kw)), (hard_first, substitutions(adapter, X[hard_first], **kw))]
    monkeypatch.setattr(hamming, "_OPEN_ENTRIES", 5 * 100 * 4 * X[0].numel())  # five inputs searched at a time
    calls.append((list(range(12)), substitutions(adapter, X, **kw)))
    for i, r in enumerate(alone):
        _check_against_truth(adapter, X[i : i + 1], r, truth[i : i + 1], goal)
    for idx, r in calls:
        _check_against_truth(adapter, X[idx], r, truth[idx], goal)
        for j, i in enumerate(idx):
            a = alone[i]
            assert (r.status[j], r.how[j], r.edits[j]) == (a.status[0], a.how[0], a.edits[0]), i
            assert int(r.evaluations[j]) == int(a.evaluations[0]), i
            torch.testing.assert_close(r.g_lower[j], a.g_lower[0], rtol=0, atol=1e-6)
            torch.testing.assert_close(r.g_best[j], a.g_best[0], rtol=0, atol=1e-6)


def test_branch_and_bound_runs_in_the_adapters_dtype():
    X = one_hot(3, 8)
    goal = goals.decrease(by=0.8)
    kw = dict(k=2, goal=goal, max_enumerate=0, attack=False)
    single = substitutions(SequenceModel(ToyConv(channels=6), output=1, device="cpu"), X, **kw)
    adapter = SequenceModel(ToyConv(channels=6).double(), output=1, device="cpu", dtype=torch.float64)
    double = substitutions(adapter, X.double(), **kw)
    assert "branch-and-bound" in double.how and "unknown" not in double.status
    assert double.status == single.status
    _check_against_truth(adapter, X.double(), double, _truth(adapter, X.double(), 2, goal), goal)


def test_a_certificate_from_single_points_has_a_positive_lower_bound(monkeypatch):
    # a sound but loose bound (1 below the true one) closes no branch that could still split: the
    # proof comes from single points, whose evaluated goal is exact, so g_lower stays > 0
    from probekit.certify import hamming

    loose = hamming._g_lower
    monkeypatch.setattr(hamming, "_g_lower", lambda *a, **kw: loose(*a, **kw) - 1.0)
    adapter = SequenceModel(SmallCNN(), output=outputs.logit(0), device="cpu")
    X = one_hot(4, 6, seed=2)
    drops = (-_truth(adapter, X, 1, goals.decrease(by=1e-3)) + 1e-3).sort().values
    goal = goals.decrease(by=float(drops[1:3].mean()))
    truth = _truth(adapter, X, 1, goal)
    result = substitutions(adapter, X, k=1, goal=goal, max_enumerate=0, attack=False)
    _check_against_truth(adapter, X, result, truth, goal)
    assert [s == "certified" for s in result.status] == (truth > 0).tolist()
    assert 0 < int((truth > 0).sum()) < 4
