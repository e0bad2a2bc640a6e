"""On the bundled DNA demo: discovery finds the three planted motifs, names them, and their insertion is causal.

The demo model was trained on sequences with planted FOS::JUN (MA0099.4), CTCF
(MA0139.2) and GATA1 (MA0035.5) sites. On 600 fresh sequences made the same way
(a seed the training never saw), TF-MoDISco on ISM contributions must find one
pattern per planted motif whose planted JASPAR matrix is its best TOMTOM match or
a match with q < 0.05, and each pattern's insertion into shuffled backgrounds
must beat random k-mers of its length (p < 0.01). The same model with random
weights must give no pattern that is both named by JASPAR (q < 0.05) and causal.
"""

import pytest

pytest.importorskip("modiscolite")
pytest.importorskip("memelite")
pytest.importorskip("pyjaspar")

import torch  # noqa: E402

from probekit import SequenceModel  # noqa: E402
from probekit.datasets import DEMO_MOTIF_IDS, DemoCNN, load_dna_demo, make_dna_sequences  # noqa: E402
from probekit.discover import discover, insertion_effect, match_jaspar  # noqa: E402
from probekit.report.discovery import learned_table  # noqa: E402

pytestmark = pytest.mark.slow


def _learned(model, n: int = 600):
    frame = make_dna_sequences(n, seed=3000, positive_fraction=0.8, prefix="m")
    adapter = SequenceModel(model, output=1, device="cpu", batch_size=512)
    discovery = discover(adapter, frame)
    matches = match_jaspar(discovery, top=50)
    effects = insertion_effect(adapter, discovery, backgrounds=frame, n_random=200)
    return discovery, matches, learned_table(discovery, matches, effects)


def test_demo_motifs_are_found_named_and_causal():
    model, _ = load_dna_demo()
    _, matches, table = _learned(model)
    positive = table[table["sign"] == 1].set_index("pattern")
    for matrix_id in DEMO_MOTIF_IDS:
        named = matches[(matches["matrix_id"] == matrix_id) & ((matches["match_rank"] == 1) | (matches["q_value"] < 0.05))]
        found = [p for p in named["pattern"] if p in positive.index]
        assert found, f"no positive pattern matches {matrix_id}"
        assert (positive.loc[found, "insertion_p"] < 0.01).any(), matrix_id


def test_a_model_with_random_weights_learned_no_motif():
    torch.manual_seed(0)
    _, _, table = _learned(DemoCNN().eval())
    if len(table):
        assert not (table["named"] & table["causal"]).any(), table
