"""The bundled DNA demo: a small CNN trained by probekit on sequences with planted JASPAR motifs.

Everything in ``data/`` is made by ``data/train_dna_demo.py`` from the functions
here: :func:`make_dna_sequences` plants motifs sampled from three JASPAR
position frequency matrices (stored in ``data/dna_demo_motifs.json``, so
nothing here needs pyjaspar) at known positions, :func:`train_dna_demo` trains
:class:`DemoCNN` on them reproducibly on the CPU, and :func:`load_dna_demo`
loads the shipped weights (a state_dict, never a pickle) and the held-out
sequences with their true motif positions.

Examples
--------
>>> model, heldout = load_dna_demo()
>>> heldout.columns.tolist()[:7]
['id', 'sequence', 'label', 'motif', 'matrix_id', 'start', 'end']
>>> model(probekit.encode.dna.one_hot(heldout["sequence"].tolist()[:2])).shape
torch.Size([2, 2])
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import probekit.encode.dna  # noqa: F401 - used in the module example

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_ARCH = "probekit.datasets:DemoCNN"
BASES = "ACGT"
_COMPLEMENT = str.maketrans("ACGT", "TGCA")

#: JASPAR matrices planted in the demo sequences (vertebrate core collection).
DEMO_MOTIF_IDS = ("MA0099.4", "MA0139.2", "MA0035.5")  # FOS::JUN (AP-1), CTCF, GATA1


class DemoCNN(nn.Module):
    """Small CNN over one-hot DNA (N, 4, L) -> two logits (no motif, motif).

    A convolution with motif-sized filters, global max pooling (so a motif is
    found at any position and on either strand) and a small dense head.

    Parameters
    ----------
    channels : int
        Number of convolution filters.
    kernel : int
        Filter width; at least the longest planted motif (15 bp for CTCF).
    hidden : int
        Width of the dense layer.

    Examples
    --------
    >>> model = DemoCNN()
    >>> model(torch.zeros(3, 4, 200)).shape
    torch.Size([3, 2])
    """

    def __init__(self, channels: int = 32, kernel: int = 15, hidden: int = 16):
        super().__init__()
        f32 = {"dtype": torch.float32}  # the shipped weights are float32, whatever the default dtype
        self.conv = nn.Conv1d(4, channels, kernel, padding=kernel // 2, **f32)
        self.dense = nn.Linear(channels, hidden, **f32)
        self.head = nn.Linear(hidden, 2, **f32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).amax(dim=-1)
        return self.head(torch.relu(self.dense(h)))


# ---------------------------------------------------------------------------- motifs
def fetch_jaspar_motifs(matrix_ids=DEMO_MOTIF_IDS) -> dict:
    """Fetch position frequency matrices from the JASPAR database shipped with pyjaspar.

    Only the training script calls this; the result is stored as
    ``data/dna_demo_motifs.json`` and read back with :func:`load_demo_motifs`.

    Returns
    -------
    dict mapping matrix id -> {"name", "matrix_id", "release", "pfm": {base: list of float}}
    """
    try:
        from pyjaspar import jaspardb
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('fetching JASPAR motifs needs pyjaspar: pip install "probekit[motifs]"') from error
    db = jaspardb()
    motifs = {}
    for matrix_id in matrix_ids:
        motif = db.fetch_motif_by_id(matrix_id)
        counts = {base: [float(v) for v in motif.counts[base]] for base in BASES}
        motifs[matrix_id] = {"name": motif.name, "matrix_id": matrix_id, "release": str(db.release), "pfm": counts}
    return motifs


def load_demo_motifs(path=None) -> dict:
    """Read the demo's motifs: matrix id -> {"name", "matrix_id", "pfm"} (counts per base)."""
    path = Path(path) if path is not None else DATA_DIR / "dna_demo_motifs.json"
    if not path.exists():
        raise FileNotFoundError(f"demo motif file not found: {path}; run data/train_dna_demo.py --fetch-motifs")
    return json.loads(path.read_text())


def _probabilities(motif: dict, pseudocount: float = 0.5, sharpness: float = 1.0) -> np.ndarray:
    """Column probabilities (length, 4) of a motif's counts, with a small pseudocount.

    ``sharpness`` > 1 raises the probabilities to that power (renormalised): sites
    sampled from it stay closer to the consensus.
    """
    counts = np.array([motif["pfm"][b] for b in BASES], dtype=np.float64).T + pseudocount
    probs = (counts / counts.sum(axis=1, keepdims=True)) ** sharpness
    return probs / probs.sum(axis=1, keepdims=True)


def reverse_complement(sequence: str) -> str:
    """Reverse complement of an ACGT string.

    Examples
    --------
    >>> reverse_complement("AACG")
    'CGTT'
    """
    return sequence.translate(_COMPLEMENT)[::-1]


def motif_log_odds(motif: dict, site: str) -> float:
    """Log-odds score (base 2, uniform background) of ``site`` under ``motif``'s matrix, forward strand."""
    probs = _probabilities(motif)
    if len(site) != len(probs):
        raise ValueError(f"site of length {len(site)} for a motif of length {len(probs)}")
    return float(sum(np.log2(probs[i, BASES.index(b)] / 0.25) for i, b in enumerate(site)))


# ------------------------------------------------------------------------- sequences
def make_dna_sequences(
    n: int,
    *,
    length: int = 200,
    motifs: dict | None = None,
    positive_fraction: float = 0.5,
    decoy_fraction: float = 0.5,
    sharpness: float = 2.0,
    seed: int = 0,
    prefix: str = "seq",
) -> pd.DataFrame:
    """Synthetic sequences with planted motifs at known positions.

    A positive sequence (label 1) holds one site sampled from one motif's
    matrix, on a random strand, at a random position in uniform random
    background. A negative (label 0) is background only or, for a share
    ``decoy_fraction`` of negatives, background with a decoy: a sampled site
    whose bases are shuffled (same composition, no motif).

    Parameters
    ----------
    n : int
        Number of sequences.
    length : int
        Sequence length.
    motifs : dict, optional
        Matrix id -> motif, as from :func:`load_demo_motifs` (the default).
    positive_fraction, decoy_fraction : float
        Share of positives; share of negatives that carry a shuffled site.
    sharpness : float
        Sites are sampled from the matrix's probabilities raised to this power
        (renormalised), so planted sites resemble strong binding sites.
    seed : int
        Seed of a NumPy generator; the same seed gives the same sequences everywhere.

    Returns
    -------
    pandas.DataFrame with ``id``, ``sequence``, ``label`` (1 = motif planted),
    ``motif`` (name; ``"shuffled <name>"`` for decoys; empty for background),
    ``matrix_id``, ``start``, ``end`` (0-based, end exclusive; -1 when nothing was
    planted), ``strand`` (``"+"``, ``"-"`` or ``""``) and ``site`` (the planted bases
    as read on the forward strand of the sequence).

    Examples
    --------
    >>> frame = make_dna_sequences(4, length=50, positive_fraction=1.0, seed=1)
    >>> row = frame.iloc[0]
    >>> row["sequence"][row["start"]:row["end"]] == row["site"]
    True
    """
    motifs = motifs if motifs is not None else load_demo_motifs()
    ids = list(motifs)
    cumulative = {m: np.cumsum(_probabilities(motifs[m], sharpness=sharpness), axis=1) for m in ids}
    longest = max(len(c) for c in cumulative.values())
    if length < longest:
        raise ValueError(f"length {length} is shorter than the longest motif ({longest} bp)")
    rng = np.random.default_rng(seed)
    letters = np.array(list(BASES))
    rows = []
    for i in range(n):
        background = "".join(letters[rng.integers(0, 4, size=length)])
        label = int(rng.random() < positive_fraction)
        row = {"id": f"{prefix}{i}", "label": label, "motif": "", "matrix_id": "", "start": -1, "end": -1, "strand": "", "site": ""}
        planted = label == 1 or rng.random() < decoy_fraction
        if planted:
            matrix_id = ids[rng.integers(0, len(ids))]
            cum = cumulative[matrix_id]
            draws = rng.random(len(cum))
            site = "".join(letters[np.minimum((cum < draws[:, None]).sum(axis=1), 3)])
            strand = "+" if rng.random() < 0.5 else "-"
            if strand == "-":
                site = reverse_complement(site)
            name = motifs[matrix_id]["name"]
            if label == 0:
                site = "".join(rng.permutation(list(site)))
                name, strand = f"shuffled {name}", ""
            start = int(rng.integers(0, length - len(site) + 1))
            background = background[:start] + site + background[start + len(site) :]
            row.update(motif=name, matrix_id=matrix_id, start=start, end=start + len(site), strand=strand, site=site)
        row["sequence"] = background
        rows.append(row)
    columns = ["id", "sequence", "label", "motif", "matrix_id", "start", "end", "strand", "site"]
    return pd.DataFrame(rows, columns=columns)


# -------------------------------------------------------------------------- training
def accuracy(model: nn.Module, sequences, labels) -> float:
    """Share of ``sequences`` whose argmax class equals ``labels``."""
    from .encode.dna import one_hot

    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        pred = model(one_hot(list(sequences)).to(device)).argmax(dim=1).cpu()
    return float((pred == torch.tensor(np.array(labels))).float().mean())


TRAINING_THREADS = 2


def train_dna_demo(
    *,
    n_train: int = 12000,
    epochs: int = 10,
    length: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    motifs: dict | None = None,
    progress: bool = False,
) -> tuple[nn.Module, dict]:
    """Train :class:`DemoCNN` on :func:`make_dna_sequences`, reproducibly, on the CPU.

    The weights depend only on the seed and the arguments: initialisation,
    data and batch order come from seeded generators, and the global torch
    random state is left as it was.

    Parameters
    ----------
    n_train, epochs, length, batch_size, lr : training set size and optimiser settings
    seed : int
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    model : DemoCNN in eval mode
    info : dict
        ``train_accuracy``, ``seconds`` and the settings.

    Examples
    --------
    >>> model, info = train_dna_demo(n_train=64, epochs=1, seed=0)
    >>> 0.0 <= info["train_accuracy"] <= 1.0
    True
    """
    from tqdm.auto import tqdm

    from .encode.dna import one_hot

    started = time.perf_counter()
    motifs = motifs if motifs is not None else load_demo_motifs()
    train = make_dna_sequences(n_train, length=length, motifs=motifs, seed=seed, prefix="train")
    X = one_hot(train["sequence"].tolist())
    y = torch.tensor(train["label"].to_numpy(), dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DemoCNN()
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    # The order of floating-point reductions depends on the thread count (two made the shipped weights)
    # and on the CPU's vector instructions, so other kinds of CPU give close weights, not equal ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        for _ in tqdm(range(epochs), desc="training DemoCNN", disable=not progress):
            order = torch.randperm(n_train, generator=generator)
            for start in range(0, n_train, batch_size):
                batch = order[start : start + batch_size]
                optimiser.zero_grad()
                loss = loss_fn(model(X[batch]), y[batch])
                loss.backward()
                optimiser.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    info = {
        "train_accuracy": accuracy(model, train["sequence"], train["label"]),
        "seconds": time.perf_counter() - started,
        "n_train": n_train,
        "epochs": epochs,
        "length": length,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
    }
    return model, info


# --------------------------------------------------------------------------- loading
def dna_demo_paths(data_dir=None) -> dict:
    """Paths of the demo files: ``model``, ``fasta``, ``truth``, ``motifs``."""
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    return {
        "model": root / "dna_demo.pt",
        "fasta": root / "dna_demo_heldout.fa",
        "truth": root / "dna_demo_heldout.csv",
        "motifs": root / "dna_demo_motifs.json",
    }


def load_dna_demo(*, data_dir=None) -> tuple[nn.Module, pd.DataFrame]:
    """The demo model and its held-out sequences with the true planted positions.

    Returns
    -------
    model : DemoCNN in eval mode, loaded with ``probekit.load_model`` (state_dict, no pickle)
    heldout : pandas.DataFrame
        ``id``, ``sequence``, ``label``, ``motif``, ``matrix_id``, ``start``, ``end``,
        ``strand``, ``site`` (0-based, end exclusive; -1 and empty where no motif was
        planted; decoys of label 0 name the shuffled motif).

    Examples
    --------
    >>> model, heldout = load_dna_demo()
    >>> int(heldout["label"].sum()) > 0
    True
    """
    from .io import read_fasta
    from .loading import load_model

    paths = dna_demo_paths(data_dir)
    for key in ("model", "fasta", "truth"):
        if not paths[key].exists():
            raise FileNotFoundError(f"demo file not found: {paths[key]}; run data/train_dna_demo.py to make it")
    model = load_model(paths["model"], arch=DEMO_ARCH)
    sequences = read_fasta(paths["fasta"])[["id", "sequence"]]
    truth = pd.read_csv(paths["truth"], dtype={"id": str}, keep_default_na=False)
    frame = sequences.merge(truth, on="id", how="left", validate="one_to_one")
    return model, frame


def planted_motif_recovery(regions: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Where the true planted motif ranks among each sequence's critical regions.

    Parameters
    ----------
    regions : pandas.DataFrame
        Critical regions with ``id``, ``start``, ``end`` (end exclusive) and a rank:
        ``rank`` or ``region`` (1 = most critical, as ``SensitivityReport.regions()``
        numbers them) or, lacking both, ``importance_sum`` (higher = more critical).
    truth : pandas.DataFrame
        ``id``, ``label``, ``start``, ``end`` of the planted sites (as from :func:`load_dna_demo`).

    Returns
    -------
    pandas.DataFrame, one row per sequence with a planted motif (label 1):
    ``id``, ``motif``, ``n_regions``, ``motif_rank`` (rank of the best region that
    overlaps the site; NaN when none does), ``top`` (the top region overlaps it) and,
    where the regions carry JASPAR annotation, ``named`` (the top region's top match is
    the planted factor), ``named_or_tied`` (or ties with it at the best p-value) and
    ``query_named`` (the planted factor is the best match among ``motif_query``).

    Examples
    --------
    >>> regions = pd.DataFrame({"id": ["a", "a"], "start": [10, 50], "end": [18, 55], "rank": [2, 1]})
    >>> truth = pd.DataFrame({"id": ["a"], "label": [1], "motif": ["GATA1"], "start": [12], "end": [19]})
    >>> planted_motif_recovery(regions, truth)[["motif_rank", "top"]].values.tolist()
    [[2.0, False]]
    """
    regions = regions.copy()
    if "rank" not in regions.columns:
        if "region" in regions.columns:  # SensitivityReport numbers regions 1, 2, ... strongest first
            regions["rank"] = regions["region"]
        else:
            key = next((k for k in ("importance_sum", "importance") if k in regions.columns), None)
            if key is None:
                raise ValueError(f"regions need a 'rank', 'region' or 'importance_sum' column; got {list(regions.columns)}")
            regions["rank"] = regions.groupby("id")[key].rank(ascending=False, method="first")
    regions["id"] = regions["id"].astype(str)
    rows = []
    for site in truth[truth["label"] == 1].itertuples(index=False):
        own = regions[regions["id"] == str(site.id)]
        overlap = own[(own["start"] < site.end) & (own["end"] > site.start)]
        rank = float(overlap["rank"].min()) if len(overlap) else float("nan")
        best = float(own["rank"].min()) if len(own) else float("nan")
        planted = str(getattr(site, "motif", "") or "")
        top_region = own[own["rank"] == best].head(1)
        rows.append(
            {
                "id": str(site.id),
                "motif": planted,
                "n_regions": len(own),
                "motif_rank": rank,
                "top": bool(len(overlap) and rank == best),
                **_naming(top_region, planted, bool(len(overlap) and rank == best)),
            }
        )
    return pd.DataFrame(rows, columns=["id", "motif", "n_regions", "motif_rank", "top", *_NAMING])


_NAMING = ("named", "named_or_tied", "query_named")


def _naming(top_region: pd.DataFrame, planted: str, top: bool) -> dict:
    """Whether the top region's JASPAR annotation names the planted factor: as its top match, among the matches
    tied with it, or as the best match among queried factors (False without annotation columns)."""
    if not top or top_region.empty or "motif" not in top_region.columns:
        return dict.fromkeys(_NAMING, False)
    row = top_region.iloc[0]
    same = lambda name: isinstance(name, str) and name.upper() == planted.upper()  # noqa: E731
    tied = row.get("motif_tied_with")
    tied_names = [t.strip() for t in tied.split(",")] if isinstance(tied, str) else []
    return {
        "named": same(row["motif"]),
        "named_or_tied": same(row["motif"]) or any(same(t) for t in tied_names),
        "query_named": same(row.get("motif_query_match")),
    }


__all__ = [
    "DemoCNN",
    "DEMO_ARCH",
    "DEMO_MOTIF_IDS",
    "fetch_jaspar_motifs",
    "load_demo_motifs",
    "motif_log_odds",
    "reverse_complement",
    "make_dna_sequences",
    "accuracy",
    "train_dna_demo",
    "dna_demo_paths",
    "load_dna_demo",
    "planted_motif_recovery",
]
