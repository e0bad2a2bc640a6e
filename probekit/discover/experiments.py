"""Causal motif experiments, each against random edits of the same size at the same places.

- :func:`insertion_effect` implants a motif into background sequences
  (dinucleotide shuffles of the user's sequences, or the sequences themselves)
  at chosen positions and orientations, and compares the mean score change with
  that of random k-mers of the same length implanted at the same places.
- :func:`ablation_effect` destroys each instance of a motif in the real
  sequences (dinucleotide shuffle or random bases) and compares the loss with
  that of the same edit on random windows of the same length.
- :func:`spacing_grid` implants two motifs together over a grid of distances and
  orientations and reports how far the pair's effect departs from the sum of
  the two alone.

Every edited sequence of one experiment goes to the adapter in one batched
call (:meth:`Adapter.score`), and every random draw comes from a seeded
generator: the same seed gives the same table.

Examples
--------
>>> import torch
>>> from probekit import SequenceModel
>>> from probekit.testing import ToyConv
>>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
>>> bg = ["ACGTTGCAAGCTTAGCATCG", "TTGACCATGACGTACGATCA"]
>>> table = insertion_effect(adapter, "TGACTCA", backgrounds=bg, n_backgrounds=4, n_random=20).to_frame()
>>> table[["motif", "n"]].values.tolist()
[['TGACTCA', 8]]
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..encode.dna import one_hot, reverse_complement
from ..encode.shuffle import dinucleotide_shuffle
from ..motifs import Motif, jaspar_motifs
from .patterns import sequence_records
from .results import DiscoveryResult, MotifEffects, SpacingResult

_JASPAR_ID = re.compile(r"^M[A-Z]\d{4}(\.\d+)?$")
ORIENTATION_PAIRS = ("+/+", "+/-", "-/+", "-/-")
# Edited sequences held at once by an experiment (each chunk goes to the adapter in one call).
_CHUNK_ROWS = 65536


def motif_sites(motifs) -> list[tuple[str, str, str | None]]:
    """``(label, site, error)`` of each motif: its consensus, or why it has none.

    Parameters
    ----------
    motifs : str, Motif, DiscoveryResult, (label, site) pair, or a list of these
        A string is a JASPAR matrix id (``"MA0139.2"``, read offline through
        pyjaspar) or a site of A, C, G, T; a DiscoveryResult gives each
        pattern's core consensus.

    Examples
    --------
    >>> motif_sites(["tgactca", ("ap1", "TGAGTCA"), "TGXA"])
    [('TGACTCA', 'TGACTCA', None), ('ap1', 'TGAGTCA', None), ('TGXA', '', "motif 'TGXA' has 'X': a site needs A, C, G and T only")]
    """
    if isinstance(motifs, (str, Motif, DiscoveryResult, tuple)):
        motifs = [motifs]
    out = []
    for spec in motifs:
        if isinstance(spec, DiscoveryResult):
            out.extend((name, spec.consensus(i), None) for i, name in enumerate(spec.names))
        elif isinstance(spec, Motif):
            out.append((spec.name, spec.consensus, None))
        elif isinstance(spec, tuple) and len(spec) == 2:
            label, site, error = _site(str(spec[1]))
            out.append((str(spec[0]), site, error))
        else:
            out.append(_site(str(spec)))
    return out


def _site(spec: str) -> tuple[str, str, str | None]:
    text = spec.strip()
    if _JASPAR_ID.match(text.upper()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                motif = jaspar_motifs(matrix_ids=[text.upper()])[0]
        except Exception as error:  # noqa: BLE001 - an unknown id is one error row
            return text, "", f"JASPAR id {text!r}: {error}"
        return f"{motif.name} ({motif.matrix_id})", motif.consensus, None
    upper = text.upper()
    bad = next((c for c in upper if c not in "ACGT"), None)
    if bad is not None or not upper:
        what = f"has {bad!r}" if bad is not None else "is empty"
        return text, "", f"motif {text!r} {what}: a site needs A, C, G and T only"
    return upper, upper, None


def background_tensor(adapter, backgrounds, *, n_backgrounds: int = 20, shuffle: bool = True, seed: int = 0):
    """Background sequences (B, 4, L) on the adapter's device, and the errors of records left out.

    ``n_backgrounds`` sequences are drawn from ``backgrounds`` (without
    replacement while there are enough), each replaced by one dinucleotide
    shuffle of itself when ``shuffle`` (same dinucleotide counts, motifs broken up).

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> X, errors = background_tensor(adapter, ["ACGTACGTAA", "TTGACCATGA"], n_backgrounds=3)
    >>> tuple(X.shape), errors
    ((3, 4, 10), {})
    """
    if backgrounds is None:
        raise ValueError("backgrounds are needed: the user's sequences (shuffled by default) or sequences to use as they are")
    _, kept, errors = sequence_records(backgrounds, alphabet=adapter.alphabet)
    if not kept:
        raise ValueError("no usable background sequence: " + "; ".join(list(errors.values())[:3]))
    if n_backgrounds < 1:
        raise ValueError(f"n_backgrounds must be at least 1, got {n_backgrounds}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(kept), size=n_backgrounds, replace=n_backgrounds > len(kept))
    X = one_hot([kept[i] for i in pick], alphabet=adapter.alphabet)
    if shuffle:
        X = dinucleotide_shuffle(X, n=1, seed=seed, alphabet=adapter.alphabet)[:, 0]
    return X.to(adapter.device), errors


def _encode_site(site: str, alphabet: str, device) -> torch.Tensor:
    return one_hot([site], alphabet=alphabet)[0].to(device)


def _oriented(site_x: torch.Tensor, orientation: str, alphabet: str) -> torch.Tensor:
    """A (…, 4, k) site on the ``"+"`` strand, or its reverse complement for ``"-"``."""
    if orientation == "+":
        return site_x
    if orientation == "-":
        flat = site_x.reshape(-1, *site_x.shape[-2:])
        return reverse_complement(flat, alphabet=alphabet).reshape(site_x.shape)
    raise ValueError(f"orientation must be '+' or '-', got {orientation!r}")


def _implant(X: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor, inserts: torch.Tensor) -> torch.Tensor:
    """Copies of ``X[rows]`` with ``inserts`` (D, 4, k) written at ``starts`` (D,)."""
    edited = X[rows].clone()
    k = inserts.shape[-1]
    columns = starts[:, None] + torch.arange(k, device=X.device)  # (D, k)
    edited.scatter_(2, columns[:, None, :].expand(-1, X.shape[1], -1), inserts)
    return edited


def _positions(positions, length: int, k: int) -> list[int]:
    if positions is None:
        return [(length - k) // 2]
    if isinstance(positions, str):
        if positions != "all":
            raise ValueError(f"positions must be None, 'all', an int or a list of ints; got {positions!r}")
        return list(range(length - k + 1))
    values = [positions] if isinstance(positions, (int, np.integer)) else list(positions)
    return [int(p) for p in values]


def _random_sites(g: torch.Generator, n: int, k: int, device) -> torch.Tensor:
    """``n`` uniform random k-mers, one-hot (n, 4, k)."""
    codes = torch.randint(0, 4, (n, k), generator=g)
    return torch.nn.functional.one_hot(codes, 4).transpose(1, 2).float().to(device)


def insertion_effect(
    adapter,
    motifs,
    *,
    backgrounds=None,
    n_backgrounds: int = 20,
    shuffle: bool = True,
    positions=None,
    orientations=("+", "-"),
    n_random: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> MotifEffects:
    """Score change of implanting each motif into background sequences, against random k-mers at the same places.

    For each motif, every background × position × orientation placement gets
    the motif's site written over its bases, and the effect of a placement is
    the edited sequence's score minus the background's. Each of ``n_random``
    random k-mers of the same length is written at the same placements; the
    mean effect of each gives the null the motif's mean effect is compared with
    (``ratio``, ``z``, empirical ``p_value``: :meth:`BaselineResult.compare`).
    A motif's edited sequences and its random ones go to the adapter in one
    batched call.

    Parameters
    ----------
    adapter : SequenceModel
    motifs : str, Motif, DiscoveryResult, (label, site) pair or a list of these
        Sites to implant (see :func:`motif_sites`): a JASPAR id gives its
        consensus; a DiscoveryResult, each pattern's core consensus.
    backgrounds : list of str, DataFrame, FASTA path or torch.Tensor (N, 4, L)
        Sequences of one length from which ``n_backgrounds`` are drawn.
    n_backgrounds : int
    shuffle : bool
        Use a dinucleotide shuffle of each drawn sequence (default), or the sequence as it is.
    positions : None, int, list of int or "all"
        Start of the site in the sequence; None: centred.
    orientations : tuple of {"+", "-"}
        ``"-"`` implants the reverse complement.
    n_random : int
        Random k-mers per motif; the smallest p-value is ``1 / (n_random + 1)``.
    seed : int
    progress : bool
        A progress bar over the motifs.

    Returns
    -------
    MotifEffects
        ``effects`` (M, B·P·O) with one column per placement (background-major,
        then position, then orientation); ``random`` (M, n_random). The table
        has ``site``, ``length`` and ``error`` columns: an unknown JASPAR id, a
        bad site or a motif that does not fit is an error row with NaN effects.

    Examples
    --------
    >>> import torch
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> result = insertion_effect(adapter, ["ACGTAC", "A" * 30], backgrounds=["ACGTTGCAAGCTTAGCATCG"], n_random=10)
    >>> result.to_frame()["error"].tolist()[1]
    'motif of length 30 does not fit at position -5 of sequences of length 20'
    """
    t0 = time.perf_counter()
    X, bg_errors = background_tensor(adapter, backgrounds, n_backgrounds=n_backgrounds, shuffle=shuffle, seed=seed)
    B, _, length = X.shape
    sites = motif_sites(motifs)
    g = torch.Generator().manual_seed(seed)
    orientations = tuple(orientations)
    for o in orientations:
        _oriented(torch.zeros(1, 4, 1), o, adapter.alphabet)  # checks the orientation
    with adapter.session():
        reference = adapter.score(X)
        per_motif, errors = [], []
        for label, site, error in tqdm(sites, desc="insertion", disable=not progress):
            starts = _positions(positions, length, len(site)) if site else []
            if error is None and site:
                misfit = [p for p in starts if p < 0 or p + len(site) > length]
                if misfit:
                    error = f"motif of length {len(site)} does not fit at position {misfit[0]} of sequences of length {length}"
            errors.append(error)
            n_place = B * max(len(starts), 1) * len(orientations)
            if error is not None:
                per_motif.append((torch.full((n_place,), float("nan")), torch.full((n_random,), float("nan"))))
                continue
            per_motif.append(_insertion_run(adapter, X, reference, site, starts, orientations, n_random, g))
    width = max(e.shape[0] for e, _ in per_motif) if per_motif else 0
    effects = torch.full((len(sites), width), float("nan"))
    for i, (e, _) in enumerate(per_motif):
        effects[i, : e.shape[0]] = e
    random = torch.stack([r for _, r in per_motif]) if per_motif else torch.zeros(0, n_random)
    params = {
        "n_backgrounds": B,
        "shuffle": shuffle,
        "positions": "centre" if positions is None else str(positions),
        "orientations": "".join(orientations),
        "n_random": n_random,
        "seed": seed,
        "background_errors": len(bg_errors),
        "output": adapter.output.name,
        "device": str(adapter.device),
        "seconds": time.perf_counter() - t0,
    }
    rows = {"site": [s for _, s, _ in sites], "length": [len(s) for _, s, _ in sites], "error": errors}
    return MotifEffects(effects=effects, random=random, labels=[l for l, _, _ in sites], kind="insertion", rows=rows, params=params)


def _insertion_run(adapter, X, reference, site: str, starts: list, orientations: tuple, n_random: int, g) -> tuple:
    """Effects (D,) of one site at every placement and mean effects (n_random,) of random k-mers there."""
    B = X.shape[0]
    k = len(site)
    device = X.device
    site_x = _encode_site(site, adapter.alphabet, device)
    kmers = _random_sites(g, n_random, k, device)  # (R, 4, k)
    # placements: background-major, then position, then orientation
    b_idx = torch.arange(B, device=device).repeat_interleave(len(starts) * len(orientations))
    p_idx = torch.tensor(starts, device=device).repeat_interleave(len(orientations)).repeat(B)
    o_list = list(orientations) * (B * len(starts))
    D = len(o_list)
    minus = torch.tensor([o == "-" for o in o_list], device=device)
    motif_inserts = torch.where(minus[:, None, None], _oriented(site_x, "-", adapter.alphabet), site_x)  # (D, 4, k)
    random_inserts = torch.where(minus[None, :, None, None], _oriented(kmers, "-", adapter.alphabet)[:, None], kmers[:, None])
    # the motif and every random k-mer at every placement: one adapter call unless that exceeds _CHUNK_ROWS rows
    inserts = torch.cat([motif_inserts[None], random_inserts])  # (1 + R, D, 4, k)
    per_call = max(1, _CHUNK_ROWS // D)
    deltas = []
    for first in range(0, n_random + 1, per_call):
        group = inserts[first : first + per_call]
        rows = b_idx.repeat(group.shape[0])
        edited = _implant(X, rows, p_idx.repeat(group.shape[0]), group.reshape(-1, 4, k))
        deltas.append((adapter.score(edited) - reference[rows]).cpu().float())
    delta = torch.cat(deltas)
    return delta[:D], delta[D:].reshape(n_random, D).mean(dim=1)


def ablation_effect(
    adapter,
    sequences,
    instances,
    *,
    method: str = "shuffle",
    n_draws: int = 5,
    n_random: int = 100,
    seed: int = 0,
    ids=None,
    progress: bool = False,
) -> MotifEffects:
    """Score change of destroying each motif instance in its sequence, against random windows of the same length.

    Parameters
    ----------
    adapter : SequenceModel
    sequences : list of str, dict, DataFrame (``id``, ``sequence``), FASTA path or tensor
        The sequences the instances sit in.
    instances : DataFrame with ``id``, ``start``, ``end`` (and optionally ``pattern``), or a DiscoveryResult
        Windows to destroy (0-based, end exclusive), e.g.
        :meth:`DiscoveryResult.seqlet_table` or :func:`probekit.motifs.scan`
        hits with an ``id`` column; a DiscoveryResult gives its seqlet cores.
    method : {"shuffle", "random"}
        Replace the window by a dinucleotide shuffle of itself, or by uniform random bases.
    n_draws : int
        Replacements of each instance; its effect is their mean, and the spread is their standard deviation.
    n_random : int
        Random windows of the same length in the same sequence, each edited the
        same way once; windows overlapping the instance are avoided when the
        sequence leaves room.
    seed : int
    ids : list of str, optional
        Ids of ``sequences`` when they carry none.
    progress : bool
        A progress bar over the instances.

    Returns
    -------
    MotifEffects
        One row per instance with ``id``, ``start``, ``end``, ``pattern`` and
        ``error`` (an unknown id or a window outside its sequence: NaN effects).

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> hits = pd.DataFrame({"id": ["seq0", "seq9"], "start": [4, 0], "end": [10, 6]})
    >>> table = ablation_effect(adapter, ["ACGTTGCAAGCTTAGCATCG"], hits, n_random=10).to_frame()
    >>> table["error"].tolist()
    [None, "no sequence 'seq9'"]
    """
    t0 = time.perf_counter()
    if method not in ("shuffle", "random"):
        raise ValueError(f"method must be 'shuffle' or 'random', got {method!r}")
    if isinstance(instances, DiscoveryResult):
        instances = instances.seqlet_table()
        instances = instances[instances["error"].isna()]
    missing = {"id", "start", "end"} - set(instances.columns)
    if missing:
        raise ValueError(f"instances need columns id, start, end; missing {sorted(missing)}")
    seq_ids, kept, seq_errors = sequence_records(sequences, alphabet=adapter.alphabet, ids=ids)
    index = {i: n for n, i in enumerate(seq_ids)}
    X = one_hot(kept, alphabet=adapter.alphabet).to(adapter.device) if kept else None
    length = X.shape[2] if X is not None else 0
    rng = np.random.default_rng(seed)
    table = instances.reset_index(drop=True)
    errors, plans = [], []
    for row in table.itertuples(index=False):
        sid, start, end = str(row.id), int(row.start), int(row.end)
        if sid not in index:
            errors.append(seq_errors.get(sid, f"no sequence {sid!r}"))
        elif not 0 <= start < end <= length:
            errors.append(f"window {start}-{end} is not inside {sid!r} (length {length})")
        else:
            errors.append(None)
            plans.append((len(errors) - 1, index[sid], start, end, _random_starts(rng, length, start, end, n_random)))
    effects = torch.full((len(table), n_draws), float("nan"))
    random = torch.full((len(table), n_random), float("nan"))
    with adapter.session():
        if plans:
            reference = adapter.score(X)
            with tqdm(total=len(plans), desc="ablation", disable=not progress) as bar:
                for chunk in _chunks(plans, n_draws + n_random):
                    _ablate(adapter, X, reference, chunk, method, n_draws, rng, effects, random)
                    bar.update(len(chunk))
    rows = {
        "id": table["id"].astype(str).tolist(),
        "start": table["start"].astype(int).tolist(),
        "end": table["end"].astype(int).tolist(),
        "pattern": table["pattern"].tolist() if "pattern" in table.columns else [""] * len(table),
        "error": errors,
    }
    labels = [f"{i}:{s}-{e}" for i, s, e in zip(rows["id"], rows["start"], rows["end"])]
    params = {
        "method": method,
        "n_draws": n_draws,
        "n_random": n_random,
        "seed": seed,
        "output": adapter.output.name,
        "device": str(adapter.device),
        "seconds": time.perf_counter() - t0,
    }
    return MotifEffects(effects=effects, random=random, labels=labels, kind="ablation", rows=rows, params=params)


def _random_starts(rng, length: int, start: int, end: int, n: int) -> np.ndarray:
    """``n`` random window starts of width ``end - start``, away from ``start:end`` when there is room."""
    k = end - start
    candidates = np.arange(length - k + 1)
    away = candidates[(candidates + k <= start) | (candidates >= end)]
    pool = away if len(away) else candidates
    return rng.choice(pool, size=n, replace=True)


def _chunks(plans: list, per_instance: int):
    size = max(1, _CHUNK_ROWS // max(per_instance, 1))
    for i in range(0, len(plans), size):
        yield plans[i : i + size]


def _ablate(adapter, X, reference, chunk, method, n_draws, rng, effects, random) -> None:
    """Score one chunk of instances and their random windows in one call; fill ``effects`` and ``random``."""
    rows, starts, widths, owners = [], [], [], []
    for slot, seq, start, end, random_starts in chunk:
        for s in [start] * n_draws + random_starts.tolist():
            rows.append(seq)
            starts.append(int(s))
            widths.append(end - start)
            owners.append(slot)
    edited = X[torch.tensor(rows, device=X.device)].clone()
    for j, (seq, s, k) in enumerate(zip(rows, starts, widths)):
        edited[j, :, s : s + k] = _replacement(edited[j, :, s : s + k], method, rng, adapter.alphabet)
    delta = (adapter.score(edited) - reference[torch.tensor(rows, device=X.device)]).cpu().float()
    offset = 0
    for slot, _, _, _, random_starts in chunk:
        effects[slot] = delta[offset : offset + n_draws]
        random[slot] = delta[offset + n_draws : offset + n_draws + len(random_starts)]
        offset += n_draws + len(random_starts)


def _replacement(window: torch.Tensor, method: str, rng, alphabet: str) -> torch.Tensor:
    if method == "shuffle":
        seed = int(rng.integers(2**31))
        return dinucleotide_shuffle(window, n=1, seed=seed, alphabet=alphabet)[0]
    codes = torch.from_numpy(rng.integers(0, 4, size=window.shape[-1]))
    return torch.nn.functional.one_hot(codes, 4).T.to(window)


def spacing_grid(
    adapter,
    motif_a,
    motif_b,
    *,
    backgrounds=None,
    distances=range(0, 21),
    orientations=ORIENTATION_PAIRS,
    start: int | None = None,
    n_backgrounds: int = 20,
    shuffle: bool = True,
    seed: int = 0,
) -> SpacingResult:
    """Effects of two motifs implanted together over a grid of gaps and orientations.

    Motif A is written at ``start`` and motif B ``distance`` bases after A's
    end, in each orientation pair (``"+/-"``: A forward, B reverse complemented),
    into every background; A alone and B alone at the same places give the
    single effects, and ``excess = pair - A - B`` is the cooperativity (0 for a
    model that adds the two up). Every edited sequence goes to the adapter in
    one batched call.

    Parameters
    ----------
    adapter : SequenceModel
    motif_a, motif_b : str, Motif or (label, site)
        As :func:`motif_sites` reads them (one motif each).
    backgrounds : sequences
        As in :func:`insertion_effect`.
    distances : iterable of int
        Gaps (bases between A's end and B's start; 0: adjacent).
    orientations : iterable of str
        Pairs among ``"+/+"``, ``"+/-"``, ``"-/+"``, ``"-/-"``.
    start : int, optional
        Start of A; default: the whole pair at its widest is centred.
    n_backgrounds, shuffle, seed
        As in :func:`insertion_effect`.

    Returns
    -------
    SpacingResult
        ``.to_frame()`` has one row per distance and orientation; ``.plot()`` draws the heatmap.

    Raises
    ------
    ValueError
        A bad motif, or a pair that does not fit in the sequences at the largest distance.

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> grid = spacing_grid(adapter, "TGACT", "GATAA", backgrounds=["ACGTTGCAAGCTTAGCATCGACGT"], distances=[0, 2])
    >>> grid.to_frame()[["distance", "orientation"]].values.tolist()[:3]
    [[0, '+/+'], [0, '+/-'], [0, '-/+']]
    """
    t0 = time.perf_counter()
    (label_a, site_a, err_a), (label_b, site_b, err_b) = motif_sites([motif_a])[0], motif_sites([motif_b])[0]
    for label, error in ((label_a, err_a), (label_b, err_b)):
        if error is not None:
            raise ValueError(error)
    distances = [int(d) for d in distances]
    orientations = [str(o) for o in orientations]
    bad = [o for o in orientations if o not in ORIENTATION_PAIRS]
    if bad or not distances or min(distances) < 0:
        raise ValueError(f"distances must be gaps >= 0 and orientations among {ORIENTATION_PAIRS}; got {distances}, {orientations}")
    X, _ = background_tensor(adapter, backgrounds, n_backgrounds=n_backgrounds, shuffle=shuffle, seed=seed)
    B, _, length = X.shape
    ka, kb = len(site_a), len(site_b)
    widest = ka + max(distances) + kb
    start = (length - widest) // 2 if start is None else int(start)
    if start < 0 or start + widest > length:
        raise ValueError(f"motifs of {ka} and {kb} bases {max(distances)} apart do not fit at {start} in sequences of length {length}")
    device = X.device
    xa, xb = _encode_site(site_a, adapter.alphabet, device), _encode_site(site_b, adapter.alphabet, device)
    grid = [(d, o) for d in distances for o in orientations]
    edited = []
    for d, o in grid:
        oa, ob = o.split("/")
        a, b = _oriented(xa, oa, adapter.alphabet), _oriented(xb, ob, adapter.alphabet)
        where_b = start + ka + d
        only_a = X.clone()
        only_a[:, :, start : start + ka] = a
        only_b = X.clone()
        only_b[:, :, where_b : where_b + kb] = b
        pair = only_a.clone()
        pair[:, :, where_b : where_b + kb] = b
        edited.extend([pair, only_a, only_b])
    with adapter.session():
        scores = adapter.score(torch.cat([X] + edited)).cpu().float()
    reference = scores[:B]
    delta = (scores[B:].reshape(len(grid), 3, B) - reference).float()
    params = {
        "start": start,
        "n_backgrounds": B,
        "shuffle": shuffle,
        "seed": seed,
        "output": adapter.output.name,
        "device": str(adapter.device),
        "seconds": time.perf_counter() - t0,
    }
    return SpacingResult(
        distances=torch.tensor([d for d, _ in grid]),
        orientations=[o for _, o in grid],
        pair=delta[:, 0],
        first=delta[:, 1],
        second=delta[:, 2],
        motifs=[f"{label_a}:{site_a}", f"{label_b}:{site_b}"],
        params=params,
    )


__all__ = ["insertion_effect", "ablation_effect", "spacing_grid", "motif_sites", "background_tensor", "ORIENTATION_PAIRS"]
