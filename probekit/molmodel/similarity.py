"""Similarity of molecules (Tanimoto on Morgan fingerprints) and a synthesisability proxy (SA score).

Fingerprints come from RDKit's ``rdFingerprintGenerator``: Morgan count
fingerprints (unfolded, so no two environments collide) by default, or folded
bit vectors. Many molecules are compared with one reference at once with
``DataStructs.BulkTanimotoSimilarity``. The SA score (Ertl and Schuffenhauer,
1 easy to 10 hard) comes from RDKit's contributed ``SA_Score/sascorer.py``
where it is installed, NaN otherwise.

Examples
--------
>>> tanimoto("Oc1ccccc1", ["Oc1ccccc1", "Nc1ccccc1", "CCCC"]).round(2).tolist()
[1.0, 0.54, 0.0]
>>> float(sa_score(["CCO"])[0]) < 3
True
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os

import numpy as np

from .mutate import to_mol

SIMILARITIES = ("morgan_counts", "morgan_bits")


def fingerprints(molecules, *, counts: bool = True, radius: int = 2, n_bits: int = 2048) -> list:
    """Morgan fingerprints of molecules (SMILES or RDKit Mols); None for a molecule RDKit cannot read.

    Parameters
    ----------
    molecules : sequence of str or rdkit.Chem.Mol, length M
    counts : bool
        Unfolded count fingerprints (``GetSparseCountFingerprint``); False gives
        folded bit vectors of ``n_bits`` bits.
    radius : int
    n_bits : int
        Length of the bit vectors (unused for counts).

    Returns
    -------
    list of RDKit fingerprints (or None), length M

    Examples
    --------
    >>> fps = fingerprints(["CCO", "not a smiles"], counts=False, n_bits=1024)
    >>> fps[0].GetNumBits(), fps[1]
    (1024, None)
    """
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=int(radius), fpSize=int(n_bits))
    make = generator.GetSparseCountFingerprint if counts else generator.GetFingerprint
    out = []
    for molecule in molecules:
        mol = to_mol(molecule)
        out.append(None if mol is None else make(mol))
    return out


def tanimoto(reference, molecules, *, counts: bool = True, radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Tanimoto similarity of each molecule to ``reference`` on Morgan fingerprints.

    Parameters
    ----------
    reference : str or rdkit.Chem.Mol
    molecules : sequence of str or rdkit.Chem.Mol, length M
    counts, radius, n_bits
        As in :func:`fingerprints`: count fingerprints of radius 2 by default.

    Returns
    -------
    numpy.ndarray of shape (M,), float64
        In [0, 1]; NaN where a molecule (or the reference) is not valid.

    Examples
    --------
    >>> tanimoto("CCO", ["CCO", "CCN"], counts=False).tolist()
    [1.0, 0.3333333333333333]
    """
    from rdkit import DataStructs

    options = {"counts": counts, "radius": radius, "n_bits": n_bits}
    (ref,) = fingerprints([reference], **options)
    fps = fingerprints(molecules, **options)
    out = np.full(len(fps), math.nan)
    valid = [i for i, fp in enumerate(fps) if fp is not None]
    if ref is not None and valid:
        out[valid] = DataStructs.BulkTanimotoSimilarity(ref, [fps[i] for i in valid])
    return out


def similarity_function(similarity="morgan_counts"):
    """The function ``(reference, molecules) -> (M,) array`` a similarity name or callable stands for.

    Parameters
    ----------
    similarity : str or callable
        ``"morgan_counts"`` (Tanimoto on Morgan count fingerprints of radius 2),
        ``"morgan_bits"`` (on 2048-bit Morgan fingerprints), or a callable
        ``f(reference, molecules)`` returning one similarity per molecule, e.g.
        ``functools.partial(tanimoto, radius=3)``.

    Examples
    --------
    >>> similarity_function("morgan_bits")("CCO", ["CCO"]).tolist()
    [1.0]
    """
    if callable(similarity):
        return similarity
    if similarity == "morgan_counts":
        return functools.partial(tanimoto, counts=True)
    if similarity == "morgan_bits":
        return functools.partial(tanimoto, counts=False)
    raise ValueError(f"unknown similarity {similarity!r}; use one of {list(SIMILARITIES)} or a callable")


@functools.lru_cache(maxsize=1)
def _sascorer():
    """RDKit's contributed SA score module, or None where it is not installed."""
    from rdkit import RDConfig

    path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location("probekit_sascorer", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:  # an incomplete contrib install (e.g. missing fpscores) means no SA score
        return None
    return module


def sa_score(molecules) -> np.ndarray:
    """Synthetic accessibility score of each molecule (1 easy to 10 hard); NaN where unavailable.

    Parameters
    ----------
    molecules : sequence of str or rdkit.Chem.Mol, length M

    Returns
    -------
    numpy.ndarray of shape (M,), float64
        NaN for invalid molecules, and for all when RDKit's ``SA_Score``
        contribution is not installed.

    Examples
    --------
    >>> scores = sa_score(["CCO", "not a smiles"])
    >>> bool(1 <= scores[0] <= 10), bool(np.isnan(scores[1]))
    (True, True)
    """
    module = _sascorer()
    out = np.full(len(molecules), math.nan)
    if module is None:
        return out
    for i, molecule in enumerate(molecules):
        mol = to_mol(molecule)
        if mol is not None:
            out[i] = float(module.calculateScore(mol))
    return out


__all__ = ["SIMILARITIES", "fingerprints", "sa_score", "similarity_function", "tanimoto"]
