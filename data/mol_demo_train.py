"""Make the bundled molecule demo: an affinity model trained on measured pIC50 values.

Run from the repository root:

    python data/mol_demo_train.py

Reads CHEMBL2321810 (1,017 compounds with pIC50, shipped by RDKit in
``RDConfig.RDContribDir/FreeWilson/data``) in place, splits it 80/20 with a fixed
seed, trains probekit.mol_demo.AffinityMLP on the CPU and writes, next to this
script:

- mol_demo.pt            state_dict + arch name (probekit.load_model(path, arch="probekit.mol_demo:AffinityMLP"))
- mol_demo.json          split ids, descriptor bounds from the training set, train/held-out R^2 and RMSE
- mol_demo_heldout.csv   held-out compounds: id, smiles, measured pIC50, predicted pIC50

The weights depend only on the seed (CPU, one thread, seeded generators).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from probekit import mol_demo
except ImportError:  # run from a checkout without installing probekit
    import sys

    sys.path.insert(0, str(HERE.parent))
    from probekit import mol_demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the demo files to")
    args = parser.parse_args(argv)
    model, info = mol_demo.train_mol_demo(seed=args.seed, epochs=args.epochs)
    paths = mol_demo.save_mol_demo(model, info, data_dir=args.out)
    print(
        f"trained on {info['n_train']} compounds in {info['seconds']:.1f} s; held-out ({info['n_test']}): "
        f"R^2 = {info['test_r2']:.3f}, RMSE = {info['test_rmse']:.3f} pIC50 (train R^2 = {info['train_r2']:.3f})"
    )
    for path in paths.values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
