"""Make the bundled DNA demo: motifs, model weights and held-out sequences with their truth.

Run from the repository root:

    python data/train_dna_demo.py                 # retrain from the stored motifs
    python data/train_dna_demo.py --fetch-motifs  # first fetch the motifs from JASPAR (needs pyjaspar)

Writes, next to this script:

- dna_demo_motifs.json   the JASPAR matrices planted (FOS::JUN, CTCF, GATA1)
- dna_demo.pt            DemoCNN state_dict (load with probekit.load_model(path, arch="probekit.datasets:DemoCNN"))
- dna_demo_heldout.fa    held-out sequences
- dna_demo_heldout.csv   id, label, motif, matrix_id, start, end, strand, site: the true planted positions

The weights depend only on the seed (CPU, seeded generators); see probekit.datasets.train_dna_demo.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
try:
    from probekit import datasets
except ImportError:  # run from a checkout without installing probekit
    import sys

    sys.path.insert(0, str(HERE.parent))
    from probekit import datasets


def write_fasta(frame, path: Path) -> None:
    from Bio.Seq import Seq
    from Bio.SeqIO import write
    from Bio.SeqRecord import SeqRecord

    records = [SeqRecord(Seq(s), id=i, description="") for i, s in zip(frame["id"], frame["sequence"])]
    write(records, str(path), "fasta")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch-motifs", action="store_true", help="fetch the motifs from JASPAR with pyjaspar")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: data/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-heldout", type=int, default=50)
    parser.add_argument("--n-validation", type=int, default=2000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = datasets.dna_demo_paths(args.out)

    if args.fetch_motifs or not paths["motifs"].exists():
        motifs = datasets.fetch_jaspar_motifs()
        paths["motifs"].write_text(json.dumps(motifs, indent=1) + "\n")
        print(f"fetched {', '.join(m['name'] + ' ' + k for k, m in motifs.items())} -> {paths['motifs']}")
    motifs = datasets.load_demo_motifs(paths["motifs"])

    torch.set_num_threads(2)
    model, info = datasets.train_dna_demo(seed=args.seed, motifs=motifs, progress=True)
    torch.save(model.state_dict(), paths["model"])
    print(f"trained DemoCNN in {info['seconds']:.1f} s: train accuracy {info['train_accuracy']:.3f} -> {paths['model']}")

    # Held-out sets use seeds the training set never sees.
    validation = datasets.make_dna_sequences(args.n_validation, motifs=motifs, seed=args.seed + 1000, prefix="val")
    heldout = datasets.make_dna_sequences(
        args.n_heldout, motifs=motifs, seed=args.seed + 2000, positive_fraction=0.8, prefix="heldout"
    )
    write_fasta(heldout, paths["fasta"])
    heldout.drop(columns=["sequence"]).to_csv(paths["truth"], index=False)
    val_acc = datasets.accuracy(model, validation["sequence"], validation["label"])
    held_acc = datasets.accuracy(model, heldout["sequence"], heldout["label"])
    print(f"held-out accuracy: {val_acc:.3f} on {len(validation)} validation sequences, "
          f"{held_acc:.3f} on the {len(heldout)} shipped held-out sequences "
          f"({int(heldout['label'].sum())} with a planted motif) -> {paths['fasta']}, {paths['truth']}")


if __name__ == "__main__":
    main()
