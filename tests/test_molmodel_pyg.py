"""A PyTorch Geometric model with the user's own featurizer, through MoleculeModel."""

import numpy as np
import pytest
import torch
from rdkit import Chem

pytest.importorskip("torch_geometric")
from torch_geometric.data import Batch  # noqa: E402
from torch_geometric.nn import GCNConv, global_add_pool  # noqa: E402
from torch_geometric.utils import from_rdmol  # noqa: E402

from probekit import goals  # noqa: E402
from probekit.molmodel import MoleculeModel, atom_importance  # noqa: E402
from probekit.search import counterfactual_molecules  # noqa: E402

SMILES = ["CCO", "c1ccccc1O", "CC(=O)N", "bad(", "Oc1ccc(CCN)cc1"]


class GCN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = GCNConv(9, 16)
        self.out = torch.nn.Linear(16, 1)

    def forward(self, data):
        h = torch.relu(self.conv(data.x.float(), data.edge_index))
        return self.out(global_add_pool(h, data.batch))


def featurize(mols):
    return Batch.from_data_list([from_rdmol(m) for m in mols])


@pytest.fixture(scope="module")
def adapter():
    return MoleculeModel(GCN().eval(), kind="graph", featurizer=featurize, device="cpu", batch_size=2)


def test_scores_equal_the_model_on_its_own_batch_and_bad_records_are_named(adapter):
    scores, problems = adapter.score_molecules(SMILES)
    good = [s for s in SMILES if s != "bad("]
    with torch.no_grad():
        expected = adapter.model(featurize([Chem.MolFromSmiles(s) for s in good]))[:, 0].double()
    np.testing.assert_allclose(scores[[0, 1, 2, 4]].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert problems[3].startswith("record 3 'bad('") and all(p is None for i, p in enumerate(problems) if i != 3)


def test_integer_atom_codes_are_masked_not_differentiated(adapter):
    result = atom_importance(adapter, SMILES[:3], n_random=10)
    assert set(result.summary()["method"]) == {"occlusion"}
    with pytest.raises(ValueError, match="floating-point atom features"):
        atom_importance(adapter, SMILES[:1], method="gradient")
    # occlusion by zeroing an atom's features: the importance is the score drop, checked by hand for atom 0
    mol = Chem.MolFromSmiles("CCO")
    batch = featurize([mol])
    masked = batch.clone()
    masked.x = batch.x.clone()
    masked.x[0] = 0
    with torch.no_grad():
        drop = float(adapter.model(batch)[0, 0] - adapter.model(masked)[0, 0])
    frame = result.to_frame()
    assert frame[(frame["id"] == "mol0") & (frame["atom"] == 0)]["importance"].item() == pytest.approx(drop, rel=1e-5)


def test_counterfactuals_run_on_the_graph_model(adapter):
    result = counterfactual_molecules(adapter, ["Oc1ccc(CCN)cc1"], goal=goals.decrease(by=0.1), max_edits=1,
                                      n_candidates=40, n_random=10)  # fmt: skip
    row = result.summary().iloc[0]
    assert row["error"] is None or row["error"] != row["error"]
    assert Chem.MolFromSmiles(row["counterfactual"]) is not None
