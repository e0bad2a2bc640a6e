"""Discrete searches against oracles: per-mutant forward passes and brute-force enumeration."""

import itertools

import numpy as np
import pytest
import torch

from probekit import FeatureModel, SequenceModel, goals, outputs
from probekit.encode.dna import decode, one_hot
from probekit.search.baseline import random_bit_flips, random_substitutions
from probekit.search.discrete import (
    _single_substitution_scores,
    bit_flips,
    min_substitutions,
    saturation_mutagenesis,
)
from probekit.testing import (
    MotifCounter,
    ProfileConv,
    ToyConv,
    ToyNLC,
    random_sequences,
)

METHODS = ["exhaustive", "greedy", "beam", "gradient", "auto"]


# ------------------------------------------------------------------ oracles
def _model_output(model, X, layout="NCL"):
    with torch.no_grad():
        return model(X.transpose(1, 2) if layout == "NLC" else X)


def all_mutants(x):
    """Every single-base mutant of one input (A, L), built explicitly: (L * A, A, L), position-major."""
    a, length = x.shape
    mutants = x[None].repeat(length * a, 1, 1)
    for pos in range(length):
        for base in range(a):
            mutants[pos * a + base, :, pos] = 0
            mutants[pos * a + base, base, pos] = 1
    return mutants


def ism_oracle(model, X, output, layout="NCL", one_by_one=False):
    """Effects from the model called directly on every explicitly built mutant (one pass each if asked)."""
    n, a, length = X.shape
    effects = torch.zeros(n, length, a)
    for i in range(n):
        ref = output(_model_output(model, X[i : i + 1], layout))[0]
        mutants = all_mutants(X[i])
        if one_by_one:
            scores = torch.cat([output(_model_output(model, m[None], layout)) for m in mutants])
        else:
            scores = output(_model_output(model, mutants, layout))
        effects[i] = (scores - ref).reshape(length, a)
    return effects


def brute_force_min(model, x, goal, output, k, allowed=None, n_values=4, setter=None):
    """Fewest edits (0..k) of one input ``x`` that reach ``goal``, by enumerating every set; None if none."""
    bound = goal.bind(output, model(x[None]).detach())
    sites = list(range(x.shape[-1])) if allowed is None else list(allowed)
    batch, sizes = [], []
    for size in range(k + 1):
        for combo in itertools.combinations(sites, size):
            for values in itertools.product(range(n_values), repeat=size):
                edited = setter(x, combo, values)
                if edited is not None:
                    batch.append(edited)
                    sizes.append(size)
    with torch.no_grad():
        g = bound(model(torch.stack(batch)), torch.zeros(len(batch), dtype=torch.long))
    reached = [size for size, value in zip(sizes, g.tolist()) if value <= 0]
    return min(reached) if reached else None


def _set_dna(x, combo, values):
    current = x.argmax(dim=0)
    if any(int(current[p]) == v for p, v in zip(combo, values)):
        return None
    out = x.clone()
    for p, v in zip(combo, values):
        out[:, p] = 0
        out[v, p] = 1
    return out


def _set_bits(x, combo, values):
    if any(int(x[f]) == v for f, v in zip(combo, values)):
        return None
    out = x.clone()
    for f, v in zip(combo, values):
        out[f] = float(v)
    return out


def goal_values(model, X_ref, X_new, goal, output):
    """g of edited inputs ``X_new`` against their unedited ``X_ref``, by calling the model directly."""
    with torch.no_grad():
        bound = goal.bind(output, model(X_ref))
        return bound(model(X_new), torch.arange(X_ref.shape[0]))


def check_valid_dna(result, model, X, goal, output, mask=None):
    """Every reported success is real: edits apply to the input, are distinct and allowed, and reach the goal."""
    strings = decode(X)
    edited_all = []
    for i, edits in enumerate(result.edits):
        assert int(result.n_edits[i]) == len(edits)
        positions = [p for p, _, _ in edits]
        assert len(set(positions)) == len(positions)
        edited = list(strings[i])
        for p, ref, alt in edits:
            assert strings[i][p] == ref and alt != ref and alt in "ACGT"
            if mask is not None:
                assert mask[p], f"edit at protected position {p}"
            edited[p] = alt
        edited_all.append("".join(edited))
    assert decode(result.sequences) == edited_all
    g = goal_values(model, X, one_hot(edited_all), goal, output)
    assert torch.equal(result.success, g <= 0)


# ---------------------------------------------------------------------- ISM
def test_ism_matches_per_mutant_passes_multi_output(device):
    model = ToyConv(n_outputs=3, seed=1)
    X = one_hot(random_sequences(3, 12, seed=2))
    adapter = SequenceModel(model, output=outputs.logit(2), device=device, batch_size=7)
    ism = saturation_mutagenesis(adapter, X)
    expected = ism_oracle(model, X, outputs.logit(2))
    torch.testing.assert_close(ism.effects, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ism.reference, outputs.logit(2)(_model_output(model, X)), atol=1e-5, rtol=1e-4)
    assert ism.effects.device.type == "cpu"
    assert torch.equal(ism.params["ref_index"], X.argmax(dim=1))


def test_ism_matches_per_mutant_passes_nlc():
    model = ToyNLC(8, seed=3)
    X = one_hot(random_sequences(1, 8, seed=4))
    adapter = SequenceModel(model, output=outputs.value(0), layout="NLC", device="cpu", batch_size=5)
    ism = saturation_mutagenesis(adapter, X)
    expected = ism_oracle(model, X, outputs.value(0), layout="NLC", one_by_one=True)
    torch.testing.assert_close(ism.effects, expected, atol=1e-5, rtol=1e-4)
    # a position weight matrix: the effect is the weight difference, computable by hand
    w = model.weight.detach()
    ref = X.argmax(dim=1)
    hand = w[None] - w[torch.arange(8)[None], ref][..., None]
    torch.testing.assert_close(ism.effects, hand, atol=1e-5, rtol=1e-4)


def test_ism_profile_window_output():
    model = ProfileConv(tracks=2, seed=5)
    output = outputs.window(1, 2, 8)
    X = one_hot(random_sequences(2, 11, seed=6))
    ism = saturation_mutagenesis(SequenceModel(model, output=output, device="cpu"), X)
    torch.testing.assert_close(ism.effects, ism_oracle(model, X, output), atol=1e-5, rtol=1e-4)


def test_ism_window_only_scans_start_end():
    model = ToyConv(seed=7)
    X = one_hot(random_sequences(2, 12, seed=8))
    adapter = SequenceModel(model, output=1, device="cpu")
    full = saturation_mutagenesis(adapter, X)
    part = saturation_mutagenesis(adapter, X, start=3, end=9)
    torch.testing.assert_close(part.effects[:, 3:9], full.effects[:, 3:9])
    assert part.effects[:, :3].abs().sum() == 0 and part.effects[:, 9:].abs().sum() == 0
    assert (part.start, part.end) == (3, 9)
    with pytest.raises(ValueError, match="start"):
        saturation_mutagenesis(adapter, X, start=5, end=5)


def test_ism_n_positions_zero_unless_asked():
    model = ToyConv(seed=9)
    X = one_hot(["ACGTNACGTA", "NNACGTTGCA"])
    adapter = SequenceModel(model, output=0, device="cpu")
    ism = saturation_mutagenesis(adapter, X)
    assert ism.effects[0, 4].abs().sum() == 0 and ism.effects[1, :2].abs().sum() == 0
    assert ism.params["ref_index"][0, 4] == -1
    with_n = saturation_mutagenesis(adapter, X, include_n=True)
    expected = ism_oracle(model, X, outputs.logit(0))
    torch.testing.assert_close(with_n.effects, expected, atol=1e-5, rtol=1e-4)
    assert with_n.effects[0, 4].abs().sum() > 0
    frame = ism.to_frame()
    assert set(frame.loc[(frame["id"] == "seq0") & (frame["position"] == 4), "ref"]) == {"N"}
    assert len(frame[(frame["id"] == "seq0") & (frame["position"] == 0)]) == 3


def test_ism_batch_size_invariance_and_string_input():
    model = ToyConv(seed=10)
    seqs = random_sequences(3, 15, seed=11)
    one = saturation_mutagenesis(SequenceModel(model, output=0, device="cpu", batch_size=1), seqs)
    many = saturation_mutagenesis(SequenceModel(model, output=0, device="cpu", batch_size=64), one_hot(seqs))
    torch.testing.assert_close(one.effects, many.effects, atol=1e-6, rtol=1e-5)
    assert saturation_mutagenesis(SequenceModel(model, output=0, device="cpu"), seqs, ids=list("abc")).ids == list("abc")


def test_single_substitution_engine_contract():
    model = ToyConv(seed=12)
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=3)
    X = one_hot(random_sequences(2, 9, seed=13))
    positions = torch.tensor([1, 4, 7])
    skip = torch.tensor([[False, True, False], [False, False, False]])
    both = lambda y, rows: torch.stack([adapter.output(y), rows.float()], dim=1)
    values = _single_substitution_scores(adapter, X, positions, both, skip=skip)
    assert values.shape == (2, 3, 4, 2)
    ref_scores = outputs.logit(0)(_model_output(model, X))
    effects = ism_oracle(model, X, outputs.logit(0))
    expected = effects[:, positions] + ref_scores[:, None, None]
    expected[0, 1] = ref_scores[0]  # skipped: the unedited row's value
    torch.testing.assert_close(values[..., 0], expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(values[..., 1], torch.arange(2.0)[:, None, None].expand(2, 3, 4))  # rows index X


# ------------------------------------------------------- min_substitutions
def test_motif_counter_hand_computed():
    adapter = SequenceModel(MotifCounter("ACGT"), output=0, device="cpu")
    one = min_substitutions(adapter, ["TTACGTTTTT"], goal=goals.below(0.5), max_edits=2, method="exhaustive")
    assert one.n_edits.tolist() == [1] and one.proved_minimal.all() and one.success.all()
    assert 2 <= one.edits[0][0][0] <= 5
    two = min_substitutions(adapter, ["ACGTTACGTT"], goal="below:0.5", max_edits=3, method="exhaustive")
    assert two.n_edits.tolist() == [2] and two.proved_minimal.all()
    assert sorted(p // 5 for p, _, _ in two.edits[0]) == [0, 1]  # one edit inside each copy
    # protect the second copy: no set within 3 edits destroys it, and that is proved
    mask = torch.tensor([True] * 5 + [False] * 5)
    protected = min_substitutions(adapter, ["ACGTTACGTT"], goal="below:0.5", max_edits=3, method="exhaustive", positions=mask)
    assert not protected.success.any() and not protected.proved_minimal.any()
    assert protected.params["no_solution_within"].all()
    assert all(p < 5 for p, _, _ in protected.edits[0])
    # already at the goal: zero edits, proved
    zero = min_substitutions(adapter, ["TTTTTTTTTT"], goal="below:0.5", max_edits=2)
    assert zero.n_edits.tolist() == [0] and zero.proved_minimal.all() and zero.success.all()


@pytest.mark.parametrize("method", METHODS)
def test_motif_counter_every_method(method):
    model = MotifCounter("ACGT")
    adapter = SequenceModel(model, output=outputs.value(0), device="cpu", batch_size=256)
    seqs = ["TTACGTTTTT", "ACGTTACGTT", "GGGGACGTGG", "TACGTCACGT"]
    X = one_hot(seqs)
    result = min_substitutions(adapter, X, goal=goals.flip(), max_edits=2, method=method)
    check_valid_dna(result, model, X, goals.flip(), outputs.value(0))
    assert result.success.all()
    expected = [1, 2, 1, 2]
    assert result.n_edits.tolist() == expected
    assert result.proved_minimal.tolist() == ([True] * 4 if method in ("exhaustive", "auto") else [True, False, True, False])
    assert (result.evaluations > 0).all()


@pytest.mark.parametrize(
    "goal",
    [goals.flip(), goals.decrease(by=1.0), goals.below(0.0)],
    ids=["flip", "decrease", "below"],
)
def test_against_brute_force_on_toyconv(goal):
    """Exhaustive is optimal and proved; every method is valid and never beats the optimum; beam nearly always optimal."""
    output = outputs.logit(1)
    n_seeds, optimal_beam, solvable = 3, 0, 0
    for seed in range(n_seeds):
        model = ToyConv(seed=seed, channels=6, kernel=3)
        X = one_hot(random_sequences(4, 8, seed=100 + seed))
        adapter = SequenceModel(model, output=output, device="cpu", batch_size=256)
        truth = [brute_force_min(model, X[i], goal, output, 2, setter=_set_dna) for i in range(4)]
        for method in METHODS:
            result = min_substitutions(adapter, X, goal=goal, max_edits=2, method=method)
            check_valid_dna(result, model, X, goal, output)
            for i, best in enumerate(truth):
                if result.success[i]:
                    assert best is not None and int(result.n_edits[i]) >= best
                if result.proved_minimal[i]:
                    assert int(result.n_edits[i]) == best and result.success[i]
                if method in ("exhaustive", "auto"):
                    assert bool(result.success[i]) == (best is not None)
                    if best is not None:
                        assert int(result.n_edits[i]) == best and result.proved_minimal[i]
                    else:
                        assert result.params["no_solution_within"][i]
                if method == "beam" and best is not None:
                    solvable += 1
                    optimal_beam += int(bool(result.success[i]) and int(result.n_edits[i]) == best)
    assert optimal_beam >= 0.8 * solvable


def test_auto_beam_path_prunes_and_proves_what_it_can():
    """With a tiny exhaustive budget auto runs beam plus pruning; its answers stay valid and sound."""
    output = outputs.logit(0)
    for seed in range(3):
        model = ToyConv(seed=seed + 20, channels=6, kernel=3)
        X = one_hot(random_sequences(3, 9, seed=200 + seed))
        adapter = SequenceModel(model, output=output, device="cpu", batch_size=256)
        truth = [brute_force_min(model, X[i], goals.flip(), output, 2, setter=_set_dna) for i in range(3)]
        result = min_substitutions(adapter, X, goal="flip", max_edits=2, method="auto", max_combinations=30, beam_width=4)
        check_valid_dna(result, model, X, goals.flip(), output)
        assert (result.params["levels_exhausted"] <= 1).all()
        for i, best in enumerate(truth):
            if result.proved_minimal[i]:
                assert int(result.n_edits[i]) == best
            if result.success[i]:
                assert int(result.n_edits[i]) >= best


@pytest.mark.parametrize("method", METHODS)
def test_positions_mask_is_respected(method, device):
    model = ToyConv(seed=30)
    output = outputs.logit(0)
    X = one_hot(random_sequences(3, 12, seed=31))
    mask = torch.zeros(12, dtype=torch.bool)
    mask[2:7] = True
    adapter = SequenceModel(model, output=output, device=device, batch_size=256)
    result = min_substitutions(adapter, X, goal="decrease:0.5", max_edits=2, method=method, positions=mask)
    check_valid_dna(result, model, X, goals.decrease(by=0.5), output, mask=mask)
    truth = [brute_force_min(model, X[i], goals.decrease(by=0.5), output, 2, allowed=range(2, 7), setter=_set_dna) for i in range(3)]
    for i, best in enumerate(truth):
        if result.proved_minimal[i]:
            assert int(result.n_edits[i]) == best
        if method == "exhaustive":
            assert bool(result.success[i]) == (best is not None)


def test_position_specs_agree():
    model = ToyConv(seed=32)
    X = one_hot(random_sequences(2, 12, seed=33))
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=256)
    per_input = torch.zeros(2, 12, dtype=torch.bool)
    per_input[:, 2:7] = True
    results = [
        min_substitutions(adapter, X, goal="decrease:0.5", max_edits=2, method="exhaustive", positions=spec)
        for spec in ([2, 3, 4, 5, 6], slice(2, 7), per_input)
    ]
    assert results[0].edits == results[1].edits == results[2].edits
    with pytest.raises(ValueError, match="positions"):
        min_substitutions(adapter, X, goal="flip", max_edits=1, positions=[3, 40])
    with pytest.raises(ValueError, match="bool mask"):
        min_substitutions(adapter, X, goal="flip", max_edits=1, positions=per_input.int())
    with pytest.raises(ValueError, match="repeat a site"):  # a mask written as 0s and 1s
        min_substitutions(adapter, X, goal="flip", max_edits=1, positions=[0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="repeat a site"):  # -1 and 11 are the same site
        min_substitutions(adapter, X, goal="flip", max_edits=1, positions=[-1, 11])


def test_position_and_feature_specs_on_the_device_agree(device):
    """Index tensors (on the adapter's device or not), lists, arrays and bool masks select the same sites."""
    X = one_hot(random_sequences(2, 12, seed=34))
    adapter = SequenceModel(ToyConv(seed=32), output=0, device=device, batch_size=256)
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[1, 4, 5, 9]] = True
    index = [1, 4, 5, 9]
    specs = (index, np.array(index), torch.tensor(index, device=device), torch.tensor(index, dtype=torch.int32))
    specs += (mask, mask.to(device), mask.expand(2, 12).to(device))
    results = [min_substitutions(adapter, X, goal="decrease:0.5", max_edits=2, method="exhaustive", positions=p) for p in specs]
    assert all(r.edits == results[0].edits for r in results)
    assert all(p in index for edits in results[0].edits for p, _, _ in edits)
    draws = [random_substitutions(adapter, X, k=2, n_draws=10, positions=p).params["sites"] for p in specs]
    assert all(torch.equal(d, draws[0]) for d in draws) and torch.isin(draws[0], torch.tensor(index)).all()

    names = [f"f{j}" for j in range(10)]
    bits = (torch.rand(3, 10, generator=torch.Generator().manual_seed(35)) > 0.5).float()
    features = FeatureModel(_mlp(10, 36), output=outputs.value(0), feature_names=names, kinds="binary", device=device)
    chosen = [0, 3, 7]
    feature_mask = torch.zeros(10, dtype=torch.bool)
    feature_mask[chosen] = True
    specs = (chosen, ["f0", "f3", "f7"], torch.tensor(chosen, device=device), feature_mask.to(device))
    results = [bit_flips(features, bits, goal="decrease:1.0", max_flips=2, method="exhaustive", features=f) for f in specs]
    assert all(r.edits == results[0].edits for r in results)
    assert all(j in chosen for flipped in results[0].params["feature_indices"] for j in flipped)
    draws = [random_bit_flips(features, bits, k=2, n_draws=10, features=f).params["sites"] for f in specs]
    assert all(torch.equal(d, draws[0]) for d in draws)


def test_exhaustive_scores_every_edit_set_once_whatever_the_chunking():
    """Inputs with different numbers of editable sites: each distinct set of 1 or 2 edits is scored exactly once."""
    X = one_hot(random_sequences(3, 9, seed=37))
    mask = torch.zeros(3, 9, dtype=torch.bool)
    for i, m in enumerate((9, 2, 5)):
        mask[i, :m] = True
    results = []
    for batch_size in (1, 3, 7, 256):
        adapter = SequenceModel(ToyConv(seed=38), output=0, device="cpu", batch_size=batch_size)
        results.append(min_substitutions(adapter, X, goal="decrease:100", max_edits=2, method="exhaustive", positions=mask))
    expected = [1 + 3 * m + 9 * m * (m - 1) // 2 + 1 for m in (9, 2, 5)]  # reference, singles, pairs at distinct sites, final
    for result in results:
        assert result.evaluations.tolist() == expected
        assert result.params["levels_exhausted"].tolist() == [2, 2, 2] and result.params["no_solution_within"].all()
        assert result.edits == results[0].edits
    model, goal, output = ToyConv(seed=43), goals.decrease(by=0.8), outputs.logit(0)
    truth = [brute_force_min(model, X[i], goal, output, 2, allowed=range(m), setter=_set_dna) for i, m in enumerate((9, 2, 5))]
    assert truth.count(2) >= 1 and truth.count(None) >= 1  # one input needs two edits, one has no solution
    for batch_size in (1, 3, 256):
        adapter = SequenceModel(model, output=output, device="cpu", batch_size=batch_size)
        result = min_substitutions(adapter, X, goal=goal, max_edits=2, method="exhaustive", positions=mask)
        check_valid_dna(result, model, X, goal, output)
        assert [int(n) if ok else None for n, ok in zip(result.n_edits, result.success)] == truth
        assert result.proved_minimal.tolist() == [best is not None for best in truth]


def test_n_positions_are_never_edited():
    model = MotifCounter("ACGT")
    adapter = SequenceModel(model, output=0, device="cpu")
    result = min_substitutions(adapter, ["NACGTN"], goal="below:0.5", max_edits=1, method="exhaustive")
    assert result.success.all() and all(p not in (0, 5) for p, _, _ in result.edits[0])
    assert result.evaluations[0] == 1 + 4 * 3 + 1  # reference, 4 sites x 3 bases, final check


def test_max_evaluations_budget_stops_the_search():
    model = ToyConv(seed=40)
    adapter = SequenceModel(model, output=0, device="cpu")
    X = one_hot(random_sequences(2, 20, seed=41))
    result = min_substitutions(adapter, X, goal="decrease:100", max_edits=3, method="exhaustive", max_evaluations=100)
    assert not result.success.any() and not result.proved_minimal.any()
    assert (result.evaluations <= 100 + 4 * 32 + 2).all()


def test_result_frames_and_errors():
    adapter = SequenceModel(MotifCounter("ACGT"), output=0, device="cpu")
    result = min_substitutions(adapter, ["TTACGTTTTT", "TTTTTTTTTT"], goal="below:0.5", max_edits=1, ids=["a", "b"])
    frame = result.to_frame()
    assert list(frame["id"]) == ["a", "b"] and frame["position"].iloc[0] in range(2, 6)
    assert result.summary()["n_edits"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="method"):
        min_substitutions(adapter, ["ACGT"], goal="flip", max_edits=1, method="annealing")
    with pytest.raises(ValueError, match="goal"):
        min_substitutions(adapter, ["ACGT"], goal="sideways", max_edits=1)


# --------------------------------------------------------------- bit flips
def _mlp(n_features, seed):
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model.eval()


def check_valid_bits(result, model, X, goal, output, names, flippable):
    edited_all = X.clone()
    for i, edits in enumerate(result.edits):
        assert result.params["feature_indices"][i] == [names.index(name) for name, _, _ in edits]
        for name, old, new in edits:
            j = names.index(name)
            assert flippable[j] and int(X[i, j]) == old and new == 1 - old
            edited_all[i, j] = new
    assert torch.equal(result.sequences, edited_all)
    assert torch.equal(result.success, goal_values(model, X, edited_all, goal, output) <= 0)


@pytest.mark.parametrize("goal", [goals.decrease(by=1.5), goals.flip()], ids=["decrease", "flip"])
def test_bit_flips_against_brute_force(goal):
    output = outputs.value(0)
    names = [f"bit{j}" for j in range(10)]
    optimal_beam, solvable = 0, 0
    for seed in range(3):
        model = _mlp(10, seed)
        X = (torch.rand(4, 10, generator=torch.Generator().manual_seed(seed + 50)) > 0.5).float()
        adapter = FeatureModel(model, output=output, feature_names=names, kinds="binary", device="cpu", batch_size=256)
        truth = [brute_force_min(model, X[i], goal, output, 2, n_values=2, setter=_set_bits) for i in range(4)]
        for method in METHODS:
            result = bit_flips(adapter, X, goal=goal, max_flips=2, method=method)
            check_valid_bits(result, model, X, goal, output, names, [True] * 10)
            for i, best in enumerate(truth):
                if result.success[i]:
                    assert int(result.n_edits[i]) >= best
                if result.proved_minimal[i]:
                    assert int(result.n_edits[i]) == best
                if method in ("exhaustive", "auto"):
                    assert bool(result.success[i]) == (best is not None)
                    if best is not None:
                        assert int(result.n_edits[i]) == best and result.proved_minimal[i]
                if method == "beam" and best is not None:
                    solvable += 1
                    optimal_beam += int(bool(result.success[i]) and int(result.n_edits[i]) == best)
    assert optimal_beam >= 0.8 * solvable


def test_bit_flips_feature_masks_and_kinds():
    output = outputs.value(0)
    names = [f"f{j}" for j in range(10)]
    kinds = ["binary"] * 7 + ["continuous"] * 3
    model = _mlp(10, 3)
    X = (torch.rand(4, 10, generator=torch.Generator().manual_seed(60)) > 0.5).float()
    X[:, 7:] = torch.randn(4, 3, generator=torch.Generator().manual_seed(61))
    adapter = FeatureModel(model, output=output, feature_names=names, kinds=kinds, device="cpu", batch_size=256)
    result = bit_flips(adapter, X, goal="decrease:1.0", max_flips=2, method="exhaustive")
    check_valid_bits(result, model, X, goals.decrease(by=1.0), output, names, [True] * 7 + [False] * 3)
    allowed = [0, 2, 4]
    masked = bit_flips(adapter, X, goal="decrease:1.0", max_flips=2, method="beam", features=["f0", "f2", "f4"])
    check_valid_bits(masked, model, X, goals.decrease(by=1.0), output, names, [j in allowed for j in range(10)])
    truth = [brute_force_min(model, X[i], goals.decrease(by=1.0), output, 2, allowed=allowed, n_values=2, setter=_set_bits) for i in range(4)]
    for i, best in enumerate(truth):
        if masked.proved_minimal[i]:
            assert int(masked.n_edits[i]) == best
    with pytest.raises(ValueError, match="binary"):
        bit_flips(adapter, X, goal="flip", max_flips=1, features=[8])


# ------------------------------------------------------------ search parts
def test_greedy_picks_the_best_single_substitution_each_step():
    """Greedy's k-th edit is the argmin of a per-mutant ISM of the sequence after its first k-1 edits."""
    model = ToyConv(seed=70)
    output = outputs.logit(0)
    X = one_hot(random_sequences(2, 10, seed=71))
    adapter = SequenceModel(model, output=output, device="cpu", batch_size=256)
    result = min_substitutions(adapter, X, goal=goals.below(-50.0), max_edits=3, method="greedy")
    assert not result.success.any() and result.n_edits.tolist() == [3, 3]
    for i in range(2):
        current = X[i : i + 1].clone()
        edited = set()
        for position, _, alt in result.edits[i]:
            effects = ism_oracle(model, current, output)[0]
            effects[torch.arange(10), current[0].argmax(dim=0)] = float("inf")  # effects are (L, A)
            effects[list(edited)] = float("inf")
            best = int(effects.argmin())
            assert (position, "ACGT".index(alt)) == divmod(best, 4)
            current[0, :, position] = 0
            current[0, "ACGT".index(alt), position] = 1
            edited.add(position)
    beam_one = min_substitutions(adapter, X, goal=goals.below(-50.0), max_edits=3, method="beam", beam_width=1)
    assert beam_one.edits == result.edits


def test_edit_writers_match_a_loop_and_ignore_unused_slots():
    """Unused slots (site -1) anywhere in a row, and rows with none used, leave the rest of the row as it was."""
    from probekit.search.discrete import _set_bases, _set_bits

    generator = torch.Generator().manual_seed(90)
    X = one_hot(random_sequences(5, 7, seed=91))
    X[0, :, 0] = 0.0  # an N column at site 0 of a row with no edit
    X[1, :, 0] = 0.25  # a soft column at site 0 of a row with no edit
    sites = torch.tensor([[-1, -1, -1], [-1, -1, -1], [-1, 2, 5], [0, -1, 3], [6, 1, 0]])
    values = torch.randint(0, 4, (5, 3), generator=generator)
    expected = X.clone()
    for i in range(5):
        for site, value in zip(sites[i].tolist(), values[i].tolist()):
            if site >= 0:
                expected[i, :, site] = 0
                expected[i, value, site] = 1
    assert torch.equal(_set_bases(X.clone(), sites, values), expected)
    assert torch.equal(_set_bases(X.clone(), sites[:, :0], values[:, :0]), X)

    B = torch.rand(5, 7, generator=generator).round()
    B[0, 0] = 0.5
    expected = B.clone()
    for i in range(5):
        for site, value in zip(sites[i].tolist(), (values[i] % 2).tolist()):
            if site >= 0:
                expected[i, site] = value
    assert torch.equal(_set_bits(B.clone(), sites, values % 2), expected)


def test_segment_argmin_takes_the_first_minimum_and_marks_empty_groups():
    from probekit.search.discrete import _segment_argmin

    values = torch.tensor([3.0, 1.0, 2.0, 1.0, 5.0, float("inf"), 0.5])
    groups = torch.tensor([0, 0, 2, 0, 2, 3, 4])
    lowest, first = _segment_argmin(values, groups, 6)
    assert lowest.tolist() == [1.0, float("inf"), 2.0, float("inf"), 0.5, float("inf")]
    assert first.tolist() == [1, -1, 2, 5, 6, -1]


def test_best_per_input_offers_each_input_its_lowest_candidate():
    """Only inputs with candidates change; a success is final; otherwise a lower g replaces the best so far."""
    from probekit.search.discrete import _best_per_input, _State

    state = _State(4, 3, "cpu")
    state.found[3], state.g[3], state.sites[3, 0] = True, -1.0, 8
    state.g[2] = 0.5
    inputs = torch.tensor([0, 0, 2, 3, 2, 0])
    sites = torch.tensor([[1, 4], [2, 5], [3, 6], [0, 7], [4, 9], [6, 3]])
    values = torch.arange(12).reshape(6, 2)
    g = torch.tensor([-0.5, 0.2, 0.7, -2.0, 0.4, -0.5])
    _best_per_input(state, inputs, sites, values, g, 4)
    assert state.found.tolist() == [True, False, False, True]
    assert torch.equal(state.g, torch.tensor([-0.5, float("inf"), 0.4, -1.0]))
    assert state.sites.tolist() == [[1, 4, -1], [-1, -1, -1], [4, 9, -1], [8, -1, -1]]
    assert state.values[[0, 2]].tolist() == [[0, 1, 0], [8, 9, 0]]
    _best_per_input(state, torch.tensor([0, 2]), sites[:2], values[:2], torch.tensor([-9.0, 0.45]), 4)
    assert torch.equal(state.g, torch.tensor([-0.5, float("inf"), 0.4, -1.0])) and state.sites[0].tolist() == [1, 4, -1]


def test_unrank_enumerates_every_combination_once():
    from probekit.search.discrete import _binomial_table, _unrank

    n, k = 7, 3
    table = _binomial_table(n, k, "cpu")
    combos = _unrank(torch.arange(35), k, table)
    assert sorted(map(tuple, combos.tolist())) == list(itertools.combinations(range(n), k))
    assert (combos[:, 1:] > combos[:, :-1]).all()


def test_top_distinct_keeps_lowest_distinct_per_group():
    from probekit.search.discrete import _top_distinct

    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    keys = torch.tensor([5, 5, 6, 7, 5, 8])
    g = torch.tensor([0.3, 0.1, 0.2, 0.9, 0.5, 0.4])
    picked = _top_distinct(groups, keys, g, 2)
    assert sorted(picked.tolist()) == [1, 2, 4, 5]


def test_candidates_are_built_lazily_in_bounded_chunks():
    """No model call sees more than a few batches of candidates: memory O(batch x L), not O(3L x L)."""
    model = ToyConv(seed=80)
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=8)
    largest = []
    original_map = adapter.map

    def recording_map(X, fn, *, rows=None):
        largest.append(X.shape[0])
        return original_map(X, fn, rows=rows)

    adapter.map = recording_map
    X = one_hot(random_sequences(2, 12, seed=81))
    saturation_mutagenesis(adapter, X)
    min_substitutions(adapter, X, goal="decrease:100", max_edits=2, method="exhaustive")
    min_substitutions(adapter, X, goal="decrease:100", max_edits=2, method="beam", beam_width=3)
    assert max(largest) <= 4 * adapter.batch_size
    assert sum(largest) > 2 * (36 * 35 // 2 - 12 * 3)  # every pair of edits at distinct sites was scored
