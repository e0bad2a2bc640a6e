"""Measure the accuracy-robustness trade-off on the bundled demo data.

Run from the repository root:

    python data/train_robust_demo.py

DNA: starting from the bundled DemoCNN (data/dna_demo.pt), fine-tunes with the
same budget (the same fresh sequences, one pass, seeded) four models: standard
(clean loss), adversarial with k = 1 and k = 2 substitutions per sequence found
by the gradient substitution search inside the loop, and certified (IBP over
the sequences within one substitution). Each is measured on held-out
sequences: clean accuracy, robust accuracy under the k-substitution attack of
probekit.search.min_substitutions, and IBP- and CROWN-certified accuracy over k
substitutions, for k = 0, 1, 2.

Molecules: on the molecule demo's training split (Morgan bits + descriptors),
fits least-squares linear models with ||w||_2 <= L (the KKT closed form) for a
few L, measures held-out R^2 and RMSE (clean, under L2 PGD and IBP-certified
within eps), checks the output error bound L * delta on sampled perturbations
(the number of violations must be 0) and compares L with the global bound of
the bundled, unconstrained affinity MLP.

Writes data/robust_demo_tradeoff.csv (one row per model, metric, method and budget).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
try:
    from probekit import datasets
except ImportError:  # run from a checkout without installing probekit
    import sys

    sys.path.insert(0, str(HERE.parent))
    from probekit import datasets

from probekit import FeatureModel, SequenceModel, certify, load_model, mol_demo, outputs, train
from probekit.encode.dna import one_hot
from probekit.tradeoff import tradeoff


def dna_models(*, n_finetune: int, seed: int, progress: bool) -> tuple[dict, SequenceModel]:
    base = load_model(datasets.dna_demo_paths()["model"], arch=datasets.DEMO_ARCH)
    adapter = SequenceModel(base, output=outputs.logit(1), device="cpu", batch_size=1024)
    frame = datasets.make_dna_sequences(n_finetune, seed=seed + 3000, prefix="finetune")
    data = (one_hot(frame["sequence"].tolist()), torch.tensor(frame["label"].to_numpy()))
    objectives = {
        "standard": train.standard(),
        "adversarial k=1": train.substitutions(1, method="gradient"),
        "adversarial k=2": train.substitutions(2, method="gradient"),
        "certified (IBP, k=1)": train.certified(k=1, method="ibp", ramp_share=0.5),
    }
    models = {}
    for name, objective in objectives.items():
        started = time.perf_counter()
        model, history = train.fit(adapter, data, objective=objective, epochs=1, lr=1e-3, batch_size=64, seed=seed,
                                   progress=progress)
        extra = {k: round(float(v), 3) for k, v in history.iloc[-1].items() if k not in ("epoch", "seconds")}
        print(f"  {name}: {time.perf_counter() - started:.0f} s, {extra}")
        models[name] = adapter.replace(model=model)
    return models, adapter


def dna_tradeoff(*, n_finetune: int, n_heldout: int, seed: int, progress: bool) -> pd.DataFrame:
    print("DNA demo: fine-tuning DemoCNN")
    models, adapter = dna_models(n_finetune=n_finetune, seed=seed, progress=progress)
    heldout = datasets.make_dna_sequences(n_heldout, seed=seed + 1000, prefix="val")
    X, y = adapter.encode(heldout["sequence"].tolist()), torch.tensor(heldout["label"].to_numpy())
    print(f"measuring on {n_heldout} held-out sequences")
    table = tradeoff(models, X, y, k=[0, 1, 2], attacks=["substitutions"], certificates=["ibp", "crown"])
    table.insert(0, "data", "dna demo")
    return table


def _sampled_violations(adapter, X: torch.Tensor, L: float, *, sizes, n_draws: int, seed: int) -> int:
    g = torch.Generator().manual_seed(seed)
    base = adapter.score(X)
    violations = 0
    for size in sizes:
        for _ in range(n_draws):
            d = torch.randn(X.shape, generator=g)
            d = d / d.norm(dim=1, keepdim=True) * size
            moved = (adapter.score(X + d) - base).abs()
            violations += int((moved > L * size * (1 + 1e-5) + 1e-6).sum())
    return violations


def mol_tradeoff(*, bounds, seed: int) -> pd.DataFrame:
    print("molecule demo: norm-constrained linear models")
    frame = mol_demo.load_chembl_affinities()
    train_frame, test_frame = mol_demo.split(frame, seed=seed)
    featurizer = mol_demo.demo_featurizer().fit(train_frame)
    X_train, X_test = featurizer.transform(train_frame), featurizer.transform(test_frame)
    y_train = torch.tensor(train_frame["pIC50"].to_numpy())
    y_test = torch.tensor(test_frame["pIC50"].to_numpy(), dtype=torch.float32)
    models, lipschitz_rows = {}, []
    sizes = (0.01, 0.1, 1.0)
    for L in bounds:
        model, info = train.constrained_linear(X_train, y_train, bound=float(L))
        name = f"linear, ||w||_2 <= {L:g}"
        adapter = FeatureModel(model, output=outputs.value(0), device="cpu", batch_size=4096)
        models[name] = adapter
        bound = certify.lipschitz(adapter, norm="l2", input_shape=(X_test.shape[1],)).upper
        bad = _sampled_violations(adapter, X_test, bound, sizes=sizes, n_draws=5, seed=seed)
        n = X_test.shape[0] * len(sizes) * 5
        print(f"  {name}: ||w||_2 = {info['weight_norm']:.3f}, multiplier {info['multiplier']:.3g}, "
              f"L*delta violations {bad} of {n}")
        lipschitz_rows += [[name, "lipschitz bound (l2)", "certify.lipschitz", "", 0.0, bound, 1],
                           [name, "L*delta violations", "sampled", "delta", max(sizes), float(bad), n]]
    demo = mol_demo.load_mol_demo(device="cpu")
    mlp = FeatureModel(demo.model, output=outputs.value(0), device="cpu", batch_size=4096)
    models["affinity MLP (bundled)"] = mlp
    mlp_bound = certify.lipschitz(mlp, norm="l2", input_shape=(X_test.shape[1],)).upper
    print(f"  affinity MLP (bundled): global L2 Lipschitz bound {mlp_bound:.3g}")
    lipschitz_rows.append(["affinity MLP (bundled)", "lipschitz bound (l2)", "certify.lipschitz", "", 0.0, mlp_bound, 1])
    table = tradeoff(models, X_test, y_test, eps=[0.0, 0.1, 1.0], norm="l2", attacks=["pgd"], certificates=["ibp"],
                     steps=20)
    extra = pd.DataFrame(lipschitz_rows, columns=["model", "metric", "method", "budget", "size", "value", "n"])
    extra["task"], extra["seconds"] = "regression", float("nan")
    table = pd.concat([table, extra[table.columns]], ignore_index=True)
    table.insert(0, "data", "molecule demo")
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "robust_demo_tradeoff.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-finetune", type=int, default=1024)
    parser.add_argument("--n-heldout", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dna = dna_tradeoff(n_finetune=args.n_finetune, n_heldout=args.n_heldout, seed=args.seed, progress=args.progress)
    mol = mol_tradeoff(bounds=(0.5, 1.0, 2.0, 4.0), seed=args.seed)
    table = pd.concat([dna, mol], ignore_index=True)
    table["value"] = table["value"].round(4)
    table["seconds"] = table["seconds"].round(2)
    table.to_csv(args.out, index=False)
    wide = dna[dna["metric"] != "accuracy"].pivot_table(index="model", columns=["metric", "method", "size"],
                                                         values="value", sort=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(dna[dna["metric"] == "accuracy"][["model", "value"]].to_string(index=False))
        print(wide.round(3).to_string())
        print(mol[mol["budget"].isin(["", "eps"])][["model", "metric", "method", "size", "value"]].to_string(index=False))
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
