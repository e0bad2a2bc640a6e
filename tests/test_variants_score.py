"""Scoring variants, checked against explicit forward passes of hand-cut windows and brute-force ISM."""

import math
import random

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pysam")

import probekit.search.discrete as discrete  # noqa: E402
from probekit import ProbekitWarning, SequenceModel  # noqa: E402
from probekit.encode.dna import one_hot  # noqa: E402
from probekit.search import random_substitutions  # noqa: E402
from probekit.testing import MotifCounter, NonFiniteOn, RaisesOn, ToyConv, base_at  # noqa: E402
from probekit.variants import Genome, VariantResult, score_variants  # noqa: E402
from probekit.variants.score import context_stats  # noqa: E402

random.seed(0)
CONTIG = "".join(random.Random(1).choice("ACGT") for _ in range(120))
# a planted motif for MotifCounter, and an N run
CHR1 = CONTIG[:40] + "GATATC" + CONTIG[46:70] + "N" * 6 + CONTIG[76:]
CHR2 = "TTGATATCAA"
LENGTH, OFFSET = 16, 8


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "g.fa"
    wrap = lambda s: "\n".join(s[i : i + 50] for i in range(0, len(s), 50))  # noqa: E731
    path.write_text(f">chr1\n{wrap(CHR1)}\n>chr2\n{wrap(CHR2)}\n")
    with Genome(path) as g:
        yield g


def cut(contig: str, pos: int, ref: str, alt: str, length=LENGTH, offset=OFFSET):
    """REF and ALT windows cut by hand from the whole contig, padded with N."""
    padded = "N" * 100 + contig + "N" * 100
    s = padded[100 + pos - 1 - offset :]
    return s[:length], (s[:offset] + alt + s[offset + len(ref) :])[:length]


def ref_at(contig, pos, n=1):
    return contig[pos - 1 : pos - 1 + n]


def other(base):
    return "ACGT"[("ACGT".index(base) + 1) % 4]


def variants_table():
    rows = [
        ("chr1", 20, ref_at(CHR1, 20), other(ref_at(CHR1, 20))),  # SNV
        ("chr1", 20, ref_at(CHR1, 20), other(other(ref_at(CHR1, 20)))),  # second ALT of the same site
        ("chr1", 43, "T", "G"),  # SNV inside the motif GATATC at 41-46
        ("chr1", 30, ref_at(CHR1, 30, 2), other(ref_at(CHR1, 30)) + other(ref_at(CHR1, 31))),  # MNV
        ("chr1", 50, ref_at(CHR1, 50), ref_at(CHR1, 50) + "TTA"),  # insertion
        ("chr1", 43, ref_at(CHR1, 43, 3), ref_at(CHR1, 43)),  # deletion through the motif
        ("chr1", 3, ref_at(CHR1, 3), other(ref_at(CHR1, 3))),  # padded at the contig start
        ("chr1", 69, ref_at(CHR1, 69, 3), ref_at(CHR1, 69)),  # deletion into the N run
        ("chr2", 9, "A", "AG"),  # insertion near the end of a short contig
        ("chr1", 25, "N", "A"),  # REF does not match
    ]
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])


def adapters():
    return {
        "toyconv": SequenceModel(ToyConv(seed=3), output=1, device="cpu", batch_size=7),
        "toyconv_both": SequenceModel(ToyConv(seed=4), output=0, device="cpu", strands="both", batch_size=32),
        "motif": SequenceModel(MotifCounter("GATATC"), output=0, device="cpu", batch_size=5),
        "toyconv_tgca": SequenceModel(ToyConv(seed=5), output=0, device="cpu", alphabet="TGCA"),
    }


@pytest.mark.parametrize("name", ["toyconv", "toyconv_both", "motif", "toyconv_tgca"])
def test_scores_equal_explicit_forward_passes_of_hand_cut_windows(genome, name):
    adapter = adapters()[name]
    table = variants_table()
    result = score_variants(adapter, table, genome, length=LENGTH, n_draws=20)
    frame = result.to_frame()
    assert len(frame) == len(table)
    contigs = {"chr1": CHR1, "chr2": CHR2}
    for i, (chrom, pos, ref, alt) in enumerate(table.itertuples(index=False)):
        row = frame.iloc[i]
        if i == 9:
            assert row["error"] == f"chr1:25 N>A: REF N does not match the genome's {ref_at(CHR1, 25)} at chr1:25"
            assert math.isnan(row["ref_score"]) and math.isnan(row["delta"]) and math.isnan(row["p_value"])
            continue
        assert row["error"] is None, row["error"]
        ref_window, alt_window = cut(contigs[chrom], pos, ref, alt)
        expected = adapter.score([ref_window, alt_window]).double()
        assert row["ref_score"] == pytest.approx(float(expected[0]), rel=1e-5, abs=1e-6)
        assert row["alt_score"] == pytest.approx(float(expected[1]), rel=1e-5, abs=1e-6)
        assert row["delta"] == pytest.approx(float(expected[1] - expected[0]), rel=1e-5, abs=1e-5)
    assert frame["kind"].tolist()[:9] == ["SNV", "SNV", "SNV", "MNV", "insertion", "deletion", "SNV", "deletion", "insertion"]
    assert frame["padded"].tolist()[6] and frame["padded"].tolist()[8] and not frame["padded"].tolist()[0]


def test_motif_breaking_variants_have_the_counted_delta(genome):
    result = score_variants(adapters()["motif"], variants_table(), genome, length=LENGTH, n_draws=20).to_frame()
    assert result["ref_score"][2] == 1.0 and result["delta"][2] == -1.0  # SNV inside the motif
    assert result["delta"][5] == -1.0  # the deletion removes part of it
    assert result["delta"][0] == 0.0


def test_snvs_go_through_ism_and_share_one_scan_per_window(genome, monkeypatch):
    calls = []
    real = discrete.saturation_mutagenesis

    def spy(adapter, X, **kw):
        calls.append(X.shape[0])
        return real(adapter, X, **kw)

    monkeypatch.setattr(discrete, "saturation_mutagenesis", spy)
    table = variants_table().iloc[:3]  # two ALTs at one site, one SNV elsewhere
    result = score_variants(adapters()["toyconv"], table, genome, length=LENGTH)
    assert calls == [2]  # one scan of the two distinct REF windows
    assert result.to_frame()["context"].tolist() == ["all 48 single substitutions of the REF window"] * 3
    calls.clear()
    score_variants(adapters()["toyconv"], table, genome, length=LENGTH, context=False)
    assert calls == []


def test_ism_alt_scores_match_explicit_alt_passes_on_many_snvs(tmp_path):
    rng = random.Random(7)
    contig = "".join(rng.choice("ACGT") for _ in range(400))
    path = tmp_path / "r.fa"
    path.write_text(">r\n" + contig + "\n")
    positions = rng.sample(range(1, 401), 60)
    table = pd.DataFrame({"chrom": "r", "pos": positions, "ref": [contig[p - 1] for p in positions],
                          "alt": [other(contig[p - 1]) for p in positions]})  # fmt: skip
    adapter = SequenceModel(ToyConv(channels=16, kernel=9, seed=11), output=0, device="cpu")
    result = score_variants(adapter, table, str(path), length=64, offset=20, chunk_size=25)
    assert all(c.startswith("all ") for c in result.to_frame()["context"])
    windows = [cut(contig, p, r, a, length=64, offset=20) for p, r, a in zip(table.pos, table.ref, table.alt)]
    alt = adapter.score([w[1] for w in windows]).double().numpy()
    ref = adapter.score([w[0] for w in windows]).double().numpy()
    np.testing.assert_allclose(result.alt_score.numpy(), alt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.delta.numpy(), alt - ref, rtol=1e-4, atol=1e-5)


def _brute_context(adapter, ref_window, delta):
    """Rank, percentile and p-value of |delta| among all single substitutions, each mutant scored on its own."""
    reference = float(adapter.score([ref_window])[0])
    mutants = [ref_window[:i] + b + ref_window[i + 1 :] for i, a in enumerate(ref_window) if a != "N" for b in "ACGT" if b != a]
    sizes = [abs(float(s) - reference) for s in adapter.score(mutants)]
    d = abs(delta)
    tol = 1e-5 * d + 1e-6
    others = list(sizes)
    nearest = min(range(len(others)), key=lambda j: abs(others[j] - d))
    others.pop(nearest)  # the variant's own substitution is one of them
    n = len(others)
    greater = sum(1 for s in others if s > d + tol)
    at_most = sum(1 for s in others if s <= d + tol)
    at_least = sum(1 for s in others if s >= d - tol)
    return 1 + greater, 100 * (1 + at_most) / (1 + n), (1 + at_least) / (1 + n), len(sizes)


@pytest.mark.parametrize("name", ["toyconv", "motif"])
def test_snv_context_matches_brute_force_over_every_single_substitution(genome, name):
    adapter = adapters()[name]
    table = variants_table().iloc[[0, 2, 6]].reset_index(drop=True)  # the third is padded with N
    frame = score_variants(adapter, table, genome, length=LENGTH).to_frame()
    for i, (chrom, pos, ref, alt) in enumerate(table.itertuples(index=False)):
        ref_window, _ = cut(CHR1, pos, ref, alt)
        rank, percentile, p, n = _brute_context(adapter, ref_window, frame["delta"][i])
        assert frame["context"][i] == f"all {n} single substitutions of the REF window"
        assert frame["context_rank"][i] == rank
        assert frame["context_percentile"][i] == pytest.approx(percentile)
        assert frame["p_value"][i] == pytest.approx(p)
    assert frame["context"][2] == f"all {3 * (LENGTH - 6)} single substitutions of the REF window"  # 6 N columns


def test_indel_context_is_random_substitutions_of_as_many_bases(genome):
    adapter = adapters()["toyconv"]
    table = variants_table().iloc[[3, 4, 5]].reset_index(drop=True)  # MNV of 2, insertion of 3, deletion of 2
    frame = score_variants(adapter, table, genome, length=LENGTH, n_draws=40, seed=5).to_frame()
    assert frame["context"].tolist() == [
        "40 random 2-base substitutions of the REF window",
        "40 random 3-base substitutions of the REF window",
        "40 random 2-base substitutions of the REF window",
    ]
    for i, (chrom, pos, ref, alt) in enumerate(table.itertuples(index=False)):
        ref_window, _ = cut(CHR1, pos, ref, alt)
        k = int(frame["n_bases"][i])
        draws = random_substitutions(adapter, [ref_window], k=k, n_draws=40, seed=5).deltas[0].abs().double().tolist()
        d = abs(frame["delta"][i])
        tol = 1e-5 * d
        assert frame["p_value"][i] == pytest.approx((1 + sum(x >= d - tol for x in draws)) / 41)
        assert frame["context_rank"][i] == 1 + sum(x > d + tol for x in draws)
        assert frame["context_percentile"][i] == pytest.approx(100 * (1 + sum(x <= d + tol for x in draws)) / 41)


def test_context_stats_by_hand():
    rank, percentile, p = context_stats(np.array([1.0]), np.array([0.0, 1.0, 1.0, 2.0, np.nan]), counted=True)
    # others: 0, 1, 2 (one of the 1s is the variant itself)
    assert rank.tolist() == [2.0] and percentile.tolist() == [75.0] and p.tolist() == [0.75]
    rank, percentile, p = context_stats(np.array([5.0]), np.array([]))
    assert math.isnan(rank[0]) and math.isnan(p[0])


def test_windows_the_model_cannot_score_become_error_rows(genome):
    table = variants_table().iloc[:6].reset_index(drop=True)
    # the model raises on any window holding T at the centre, where every variant's first base sits
    model = RaisesOn(ToyConv(seed=3), base_at(OFFSET, "T"), message="no T at the centre")
    adapter = SequenceModel(model, output=0, device="cpu", batch_size=4)
    frame = score_variants(adapter, table, genome, length=LENGTH, n_draws=10).to_frame()
    reference = SequenceModel(ToyConv(seed=3), output=0, device="cpu")
    for i, (chrom, pos, ref, alt) in enumerate(table.itertuples(index=False)):
        ref_window, alt_window = cut(CHR1, pos, ref, alt)
        if ref_window[OFFSET] == "T":
            assert frame["error"][i] == f"chr1:{pos} {ref}>{alt}: the model cannot score the REF window: the model raised ValueError: no T at the centre"
        elif alt_window[OFFSET] == "T":
            assert frame["error"][i] == f"chr1:{pos} {ref}>{alt}: the model cannot score the ALT window: the model raised ValueError: no T at the centre"
        else:
            assert frame["error"][i] is None
            expected = reference.score([ref_window, alt_window]).double()
            assert frame["delta"][i] == pytest.approx(float(expected[1] - expected[0]), rel=1e-5, abs=1e-6)
        if frame["error"][i] is not None:
            assert math.isnan(frame["ref_score"][i]) and math.isnan(frame["alt_score"][i]) and frame["context"][i] is None
    assert frame["error"].notna().any() and frame["error"].isna().any()


def test_non_finite_outputs_become_error_rows(genome):
    table = variants_table().iloc[:3].reset_index(drop=True)
    ref0, alt0 = cut(CHR1, table.pos[0], table.ref[0], table.alt[0])
    target = one_hot([alt0])
    model = NonFiniteOn(ToyConv(seed=3), lambda x: (x == target).flatten(1).all(dim=1))  # NaN on variant 0's ALT window only
    adapter = SequenceModel(model, output=0, device="cpu")
    with pytest.warns(ProbekitWarning, match="non-finite"):
        frame = score_variants(adapter, table, genome, length=LENGTH).to_frame()
    assert frame["error"][0] == f"chr1:20 {table.ref[0]}>{table.alt[0]}: the model cannot score the ALT window: the model returned NaN"
    assert frame["error"][1] is None and frame["error"][2] is None
    assert not math.isnan(frame["delta"][1])


def test_context_off_runs_forward_passes_only(genome):
    adapter = adapters()["toyconv"]
    table = variants_table()
    on = score_variants(adapter, table, genome, length=LENGTH, n_draws=10).to_frame()
    off = score_variants(adapter, table, genome, length=LENGTH, context=False).to_frame()
    np.testing.assert_allclose(off["delta"], on["delta"], rtol=1e-5, atol=1e-6)
    assert off["context"].isna().all() and off["p_value"].isna().all()


def test_paths_chunks_and_result_round_trip(genome, tmp_path):
    vcf = tmp_path / "v.vcf"
    body = "".join(f"{c}\t{p}\tv{i}\t{r}\t{a}\t.\t.\t.\n" for i, (c, p, r, a) in enumerate(variants_table().itertuples(index=False)))
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + body
                   + "chr1\t5\tsv\tA\t<DEL>\t.\t.\t.\n")  # fmt: skip
    adapter = adapters()["toyconv"]
    whole = score_variants(adapter, vcf, genome.path, length=LENGTH, n_draws=10)
    chunked = score_variants(adapter, vcf, genome, length=LENGTH, n_draws=10, chunk_size=3)
    a, b = whole.to_frame(), chunked.to_frame()
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5)
    assert a["id"].tolist() == [f"v{i}" for i in range(10)] + ["sv"]
    assert "symbolic" in a["error"][10] and math.isnan(a["delta"][10])
    path = tmp_path / "r.pt"
    whole.save(path)
    pd.testing.assert_frame_equal(VariantResult.load(path).to_frame(), a)
    text = repr(whole)
    assert text.startswith("VariantResult(n=11, errors=2/11, kinds=") and len(text) < 300
    assert list(whole.summary().columns) == ["id", "chrom", "pos", "ref", "alt", "kind", "ref_score", "alt_score", "delta", "p_value", "error"]
    assert whole.params["length"] == LENGTH and whole.params["offset"] == OFFSET


def test_bad_settings(genome):
    adapter = adapters()["toyconv"]
    with pytest.raises(ValueError, match="length"):
        score_variants(adapter, variants_table(), genome, length=0)
    with pytest.raises(ValueError, match="n_draws"):
        score_variants(adapter, variants_table(), genome, length=8, n_draws=0)


def test_a_window_without_enough_bases_has_no_random_context(tmp_path):
    path = tmp_path / "n.fa"
    path.write_text(">chrN\nACGT" + "N" * 20 + "ACGT\n")
    table = pd.DataFrame({"chrom": ["chrN"], "pos": [12], "ref": ["NNNN"], "alt": ["N"]})
    adapter = adapters()["toyconv"]
    with pytest.warns(ProbekitWarning, match="chrN:12:NNNN>N: fewer than 3 editable sites"):
        frame = score_variants(adapter, table, str(path), length=6, progress=True).to_frame()
    assert frame["error"][0] is None and frame["delta"][0] == 0.0
    assert frame["context"][0] == "none: no random 3-base substitution of the REF window could be scored"
    assert math.isnan(frame["p_value"][0]) and math.isnan(frame["context_rank"][0])


def test_snvs_without_context_equal_explicit_passes_and_fall_back_for_untraceable_models(tmp_path):
    import numpy as np
    import torch

    from probekit.testing import ToyConv
    from probekit.variants import variant_windows

    rng = np.random.default_rng(3)
    sequence = "".join(rng.choice(list("ACGT"), 200))
    path = tmp_path / "g.fa"
    path.write_text(f">chr1\n{sequence}\n")
    positions = list(range(30, 170, 7))
    refs = [sequence[p - 1] for p in positions]
    alts = ["ACGT"[("ACGT".index(r) + 1 + k % 3) % 4] for k, r in enumerate(refs)]
    variants = pd.DataFrame({"chrom": "chr1", "pos": positions, "ref": refs, "alt": alts})
    model = ToyConv(seed=5)
    windows = variant_windows(variants, Genome(path), length=41)
    with torch.no_grad():
        explicit_ref = model(SequenceModel(model, output=1).encode(list(windows["ref_window"])))[:, 1].double().numpy()
        explicit_alt = model(SequenceModel(model, output=1).encode(list(windows["alt_window"])))[:, 1].double().numpy()
    for wrapped in (model, lambda x: model(x)):  # the second cannot be traced: forward passes
        frame = score_variants(SequenceModel(wrapped, output=1, device="cpu"), variants, path, length=41, context=False).to_frame()
        np.testing.assert_allclose(frame["ref_score"], explicit_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(frame["alt_score"], explicit_alt, rtol=1e-5, atol=1e-6)
        assert frame["p_value"].isna().all()


def test_snvs_without_context_name_windows_the_model_fails_on(tmp_path):
    import torch

    from probekit.testing import ToyConv

    path = tmp_path / "g.fa"
    path.write_text(">chr1\n" + "ACGT" * 20 + "\n")

    class NanOnG(torch.nn.Module):
        """NaN for every window with a G at position 10 (where the variant sits)."""

        def __init__(self):
            super().__init__()
            self.inner = ToyConv()

        def forward(self, x):
            y = self.inner(x)
            return torch.where(x[:, 2:3, 10] > 0, torch.full_like(y, torch.nan), y)

    variants = pd.DataFrame({"chrom": "chr1", "pos": [12, 13], "ref": ["T", "A"], "alt": ["G", "C"]})
    frame = score_variants(SequenceModel(NanOnG(), output=1, device="cpu"), variants, path, length=20, context=False).to_frame()
    assert "ALT window" in frame["error"][0] and "NaN" in frame["error"][0]
    assert frame["error"][1] is None and np.isfinite(frame["delta"][1])
