"""The discovery section renders what it is given: patterns, logos, matches, insertion effects."""

import numpy as np
import pandas as pd
import pytest
import torch

from probekit.discover.results import SEQLET_COLUMNS, DiscoveryResult, MotifEffects, SpacingResult
from probekit.report.discovery import DiscoveryReport, learned_table

SITE = "TGACTCA"


def _discovery() -> DiscoveryResult:
    from probekit.encode.dna import one_hot

    ppm = torch.cat([torch.full((4, 2), 0.25), one_hot([SITE])[0], torch.full((4, 2), 0.25)], dim=1)
    cwm = ppm * torch.tensor([0.0, 0.0] + [1.0] * 7 + [0.0, 0.0])
    seqlets = {"pattern": [0, 0, 1], "sequence": [0, 1, 1], "start": [3, 10, 0], "end": [14, 21, 11], "strand": ["+", "-", "+"]}
    return DiscoveryResult(
        names=["pos_0", "neg_0"], signs=[1, -1], ppms=[ppm, ppm], contributions=[cwm, -cwm], hypothetical=[cwm, -cwm],
        cores=[[2, 9], [2, 9]], seqlets=seqlets, ids=["a", "b"], errors={"c": "record c has length 3"}, length=30,
        params={"contributions": "ism"},
    )  # fmt: skip


def test_pattern_table_and_seqlet_cores():
    d = _discovery()
    table = d.to_frame()
    assert table["consensus"].tolist() == [SITE, SITE]
    assert table["n_seqlets"].tolist() == [2, 1]
    seqs = {"a": "A" * 5 + SITE + "A" * 18, "b": "C" * 30}
    seqlets = d.seqlet_table(sequences=seqs)
    assert seqlets.columns.tolist() == SEQLET_COLUMNS
    first = seqlets[(seqlets["id"] == "a")].iloc[0]
    assert (first["start"], first["end"], first["site"]) == (5, 12, SITE)
    reverse = seqlets[(seqlets["id"] == "b") & (seqlets["strand"] == "-")].iloc[0]
    assert (reverse["start"], reverse["end"]) == (12, 19)  # the core read from the pattern's far end
    assert seqlets.loc[seqlets["id"] == "c", "error"].tolist() == ["record c has length 3"]
    assert seqlets["error"].iloc[0] is None
    motif = d.motif("pos_0")
    assert motif.consensus == SITE and motif.counts.sum() == pytest.approx(2 * 7)


def test_learned_table_joins_matches_and_effects():
    d = _discovery()
    matches = pd.DataFrame(
        {"pattern": ["pos_0", "pos_0", "neg_0"], "match_rank": [1, 2, 1], "name": ["FOS::JUN", "JUN", "X"],
         "matrix_id": ["MA0099.4", "MA0489.2", "MA1"], "p_value": [1e-9, 1e-5, 0.3], "q_value": [1e-6, 1e-3, 0.9]}
    )  # fmt: skip
    effects = MotifEffects(
        effects=torch.tensor([[2.0, 2.1], [0.1, -0.1]]), random=torch.randn(2, 199, generator=torch.Generator().manual_seed(0)) * 0.1,
        labels=["pos_0", "neg_0"], kind="insertion",
    )  # fmt: skip
    table = learned_table(d, matches, effects)
    assert table["match"].tolist() == ["FOS::JUN", "X"]
    assert table["causal"].tolist() == [True, False]
    assert table["named"].tolist() == [True, False]
    assert table.loc[0, "insertion_p"] == pytest.approx(0.005)


def test_standalone_html_with_logos_and_heatmap(tmp_path):
    pytest.importorskip("logomaker")
    spacing = SpacingResult(
        distances=torch.tensor([0, 0, 1, 1]), orientations=["+/+", "+/-"] * 2, pair=torch.ones(4, 3), first=torch.zeros(4, 3),
        second=torch.zeros(4, 3), motifs=["a:GATA", "b:CACGTG"],
    )  # fmt: skip
    report = DiscoveryReport(_discovery(), spacing=spacing)
    path = tmp_path / "r.html"
    html = report.to_html(path)
    assert path.read_text() == html
    assert html.count("data:image/png;base64") == 3
    assert "What the model learned" in html and "left out" in html
    assert "probekit-report" in report._repr_html_()
    assert np.allclose(spacing.to_frame()["excess"], 1.0)
