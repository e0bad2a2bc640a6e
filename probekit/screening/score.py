"""Score a library of molecules with a model: one row per record, bad records named with their reason.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> from probekit.encode.mol import Descriptors
>>> adapter = FeatureModel(lambda x: x.log(), featurizer=Descriptors(["NumHDonors"]), output=outputs.value(0), device="cpu")
>>> frame = screen_molecules(adapter, ["OCCO", "C1CC", "CC"])
>>> frame["score"].round(4).tolist()
[0.6931, nan, nan]
>>> frame["error"].tolist()
[None, "record 'mol1': SMILES Parse Error: unclosed ring for input: 'C1CC'", "record 'mol2': the model returned -inf"]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def screen_molecules(adapter, molecules, *, outputs=None, smiles_col: str | None = None, id_col: str | None = None,
                     standardize: bool = False) -> pd.DataFrame:  # fmt: skip
    """The score of every molecule of ``molecules``, batched; a record that cannot be scored is a row naming why.

    Parameters
    ----------
    adapter : FeatureModel or MoleculeModel
        A :class:`~probekit.FeatureModel` needs its featurizer (it turns the
        molecules into the model's features); a
        :class:`~probekit.molmodel.MoleculeModel` takes the molecules as they are.
    molecules : str, Path, list of str, dict or DataFrame
        A ``.smi``/``.csv``/``.tsv``/``.sdf`` file, SMILES, a mapping id -> SMILES,
        a table with a SMILES column, or the frame of :func:`probekit.read_molecules`
        (see :func:`probekit.screening.iter_molecule_chunks`; read whole here; for a
        library larger than memory use :func:`probekit.screening.screen_molecules_to_table`).
    outputs : list of output specs, optional
        Further outputs of a multi-output model (class indices, :mod:`probekit.outputs`
        selections or callables), one column each, named by the output
        (``"value[1]"``), read from the same forward passes as the score.
    smiles_col, id_col : str, optional
        Columns of a table, as :func:`probekit.read_molecules` takes them.
    standardize : bool
        Keep the largest fragment and neutralise charges before scoring.

    Returns
    -------
    pandas.DataFrame
        One row per record, in input order: ``id``, ``smiles`` (as given), ``score``
        (float64, the adapter's output; NaN for a row with an error), a column per
        further output, and ``error``: None, or one line naming the record and why it
        has no score (a SMILES RDKit cannot read, a failed featurization, the model's
        own exception on that molecule, or a NaN or infinite output). A batch the
        model raises on is split until the failing molecules are found (see
        :meth:`probekit.adapters.Adapter.screen`); the others keep their scores.

    Raises
    ------
    TypeError
        For an adapter that does not take molecules (a feature model without a featurizer).
    ModelOutputError
        When the model's output is malformed for every batch (not one row per molecule).

    Examples
    --------
    >>> from probekit.molmodel import MoleculeModel
    >>> adapter = MoleculeModel(lambda smiles: torch.tensor([[len(s), 1.0] for s in smiles]), kind="smiles", device="cpu")
    >>> screen_molecules(adapter, {"a": "CCO", "b": "CCCC"}, outputs=[1])[["id", "score", "logit[1]"]].values.tolist()
    [['a', 3.0, 1.0], ['b', 4.0, 1.0]]
    """
    from .read import iter_molecule_chunks

    parts = list(iter_molecule_chunks(molecules, chunk_size=1 << 30, smiles_col=smiles_col, id_col=id_col))
    records = parts[0] if parts else pd.DataFrame({"id": [], "smiles": []}, dtype=object)
    extra = output_list(outputs)
    ids = [str(i) for i in records["id"]]
    mols, errors = _parse(records, ids, standardize)
    good = [i for i, e in enumerate(errors) if e is None]
    scores = np.full(len(records), np.nan)
    columns = {o.name: np.full(len(records), np.nan) for o in extra}
    if good:
        values, problems, further = _score(adapter, [mols[i] for i in good], [ids[i] for i in good], extra)
        scores[good] = values
        for i, problem in zip(good, problems):
            errors[i] = problem
        for output, column in zip(extra, further):
            columns[output.name][good] = column
    frame = pd.DataFrame({"id": ids, "smiles": list(records["smiles"]), "score": scores, **columns})
    frame["error"] = pd.Series(errors, dtype=object)
    return frame


def output_list(outputs) -> list:
    """Output specs as a list of :class:`~probekit.outputs.Output` (one spec, a list of them, or None)."""
    from ..outputs import as_output

    one = isinstance(outputs, int) or callable(outputs)
    return [as_output(o) for o in ([] if outputs is None else [outputs] if one else outputs)]


def _parse(records: pd.DataFrame, ids: list, standardize: bool) -> tuple[list, list]:
    """RDKit molecules (None where unreadable) and the error of each record, naming it by its id."""
    from ..io import read_molecules, renamed_error

    if "mol" in records.columns:  # parsed already (the frame of read_molecules)
        errors = [e if isinstance(e, str) and e else None for e in records["error"]]
        return list(records["mol"]), errors
    texts = [str(s) for s in records["smiles"]]
    mols = [None] * len(texts) if standardize else _quick_parse(texts)
    errors = [None] * len(texts)
    slow = [k for k, mol in enumerate(mols) if mol is None]
    if slow:
        # read_molecules says why a record cannot be read (and standardizes); under stand-in names mol0, mol1, ...,
        # as the ids may repeat and it would rename them
        parsed = read_molecules([texts[k] for k in slow], standardize=standardize)
        for j, (k, mol, error) in enumerate(zip(slow, parsed["mol"], parsed["error"])):
            mols[k], errors[k] = mol, renamed_error(error, f"mol{j}", ids[k]) if isinstance(error, str) else None
    return mols, errors


def _quick_parse(texts: list) -> list:
    """RDKit's reading of each SMILES, as :func:`probekit.read_molecules` gives it; None where that needs its diagnosis."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mols = [Chem.MolFromSmiles(t) if t else None for t in texts]
    return [m if m is not None and m.GetNumAtoms() else None for m in mols]


def _named(problems: list, ids: list) -> list:
    return [None if p is None else p if p.startswith("record ") else f"record {i!r}: {p}" for p, i in zip(problems, ids)]


def _score(adapter, mols: list, ids: list, extra: list) -> tuple[np.ndarray, list, list]:
    """Scores (n,) and problems of valid molecules, and the further outputs' columns, all from one forward pass."""
    from ..adapters import FeatureModel
    from ..molmodel.adapter import MoleculeModel

    if isinstance(adapter, MoleculeModel):
        raw, problems = adapter._outputs(mols)
        scores, problems = adapter._scores(raw, problems)
        values = torch.stack([scores, *(output(raw).detach().double().cpu() for output in extra)], dim=1)
    elif isinstance(adapter, FeatureModel) and adapter.featurizer is not None:
        values, problems = _feature_scores(adapter, mols, ids, extra)
    else:
        raise TypeError(
            f"screen_molecules scores molecules with a FeatureModel that has a featurizer or a MoleculeModel; "
            f"got {type(adapter).__name__}" + (" without a featurizer" if isinstance(adapter, FeatureModel) else "")
        )
    problems = _named(problems, ids)
    values = values.double().cpu().numpy()
    values[[p is not None for p in problems]] = np.nan  # further outputs only where the score is good
    return values[:, 0], problems, [values[:, 1 + j] for j in range(len(extra))]


def _feature_scores(adapter, mols: list, ids: list, extra: list) -> tuple[torch.Tensor, list]:
    """Scores and further outputs (n, 1 + len(extra)) and problems of molecules through a feature model's featurizer."""
    from ..io import renamed_error

    # a frame with stand-in names: featurize then has no SMILES to write and no repeated ids to rename
    stand_in = pd.DataFrame({"id": [f"mol{k}" for k in range(len(mols))], "smiles": "", "mol": mols, "error": None})
    X, provenance = adapter.featurizer.featurize(stand_in)
    problems = [renamed_error(e, f"mol{k}", ids[k]) for k, e in enumerate(provenance.errors)]
    ok = torch.from_numpy(np.flatnonzero(provenance.ok))
    values = torch.full((len(mols), 1 + len(extra)), float("nan"), dtype=torch.float64)
    if len(ok):
        found, model_problems = adapter.screen(X[ok], outputs=extra)
        values[ok] = found.reshape(len(ok), -1).double().cpu()
        for k, problem in zip(ok.tolist(), model_problems):
            problems[k] = problem
    return values, problems


__all__ = ["screen_molecules"]
