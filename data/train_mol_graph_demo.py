"""Make the bundled graph demo: a message-passing network trained on measured pIC50 values.

Run from the repository root:

    python data/train_mol_graph_demo.py

Reads CHEMBL2321810 (shipped by RDKit in ``RDConfig.RDContribDir/FreeWilson/data``)
in place, takes the molecule demo's 80/20 split (seed 0, the held-out compounds of
mol_demo_heldout.csv), trains probekit.molmodel.GraphNet on the atom and bond
features of probekit.molmodel.featurize_graphs on one CPU thread and writes, next
to this script:

- mol_graph_demo.pt     state_dict + arch name and arguments
                        (probekit.mol_graph_demo.load_mol_graph_demo() wraps it in a MoleculeModel)
- mol_graph_demo.json   held-out ids and predictions, train/held-out R^2 and RMSE, settings

The weights depend only on the seed (CPU, one thread, seeded generators).
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # a checkout: its probekit first, installed or not

from probekit.mol_graph_demo import save_mol_graph_demo, train_mol_graph_demo  # noqa: E402


def report(info: dict, paths: dict) -> str:
    """What was trained, how well it predicts the held-out compounds, and where it went."""
    lines = [
        f"{info['n_train']} training compounds, {info['epochs']} epochs, seed {info['seed']}: {info['seconds']:.1f} s",
        f"held-out ({info['n_test']}): R^2 {info['test_r2']:.3f}, RMSE {info['test_rmse']:.3f} pIC50; "
        f"training R^2 {info['train_r2']:.3f}",
    ]
    return "\n".join(lines + [f"wrote {path}" for path in paths.values()])


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seed", type=int, default=0, help="initial weights and mini-batch order")
    options.add_argument("--epochs", type=int, default=100)
    options.add_argument("--out", type=Path, default=HERE, help="folder for mol_graph_demo.pt and .json")
    given = options.parse_args()
    model, info = train_mol_graph_demo(given.seed, given.epochs)
    print(report(info, save_mol_graph_demo(model, info, data_dir=given.out)))
