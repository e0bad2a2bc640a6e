"""Reading inputs: FASTA through Biopython, molecules (SMILES, CSV, SDF) through RDKit.

Every reader returns a DataFrame with one row per record and an ``error`` column:
a bad record is kept, with a message naming the record, the position and the
character, so nothing is lost and the rest of the batch goes on.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

from ._warnings import warn
from .encode.dna import decode, validate_sequence


def unique_ids(ids) -> list[str]:
    """Record names made unique, so that every table can be keyed by ``id``.

    A name that appears once is kept. Every copy of a repeated name becomes
    ``name#0``, ``name#1``, ..., skipping any suffix another record already uses,
    so a renamed record never takes the name of another one. A
    :class:`~probekit.ProbekitWarning` names the renamed records.

    Parameters
    ----------
    ids : iterable
        Record names (converted to ``str``).

    Returns
    -------
    list of str, in the order given

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     unique_ids(["a", "b", "a", "a#0"])
    ['a#1', 'b', 'a#2', 'a#0']
    """
    ids = [str(i) for i in ids]
    counts = Counter(ids)
    if all(c == 1 for c in counts.values()):
        return ids
    taken = set(ids)
    next_suffix = Counter()
    out, renamed = [], {}
    for name in ids:
        if counts[name] == 1:
            out.append(name)
            continue
        k = next_suffix[name]
        while f"{name}#{k}" in taken:
            k += 1
        new = f"{name}#{k}"
        next_suffix[name] = k + 1
        taken.add(new)
        out.append(new)
        renamed.setdefault(name, []).append(new)
    shown = [f"{old!r} -> " + ", ".join(map(repr, new)) for old, new in list(renamed.items())[:10]]
    more = f" (and {len(renamed) - 10} more)" if len(renamed) > 10 else ""
    warn(f"repeated ids renamed so that every record keeps its own: {'; '.join(shown)}{more}")
    return out


def renamed_error(error, old: str, new: str):
    """``error`` naming record ``new`` where it named record ``old`` (other values unchanged).

    Examples
    --------
    >>> renamed_error("record 'a': empty SMILES", "a", "a#1")
    "record 'a#1': empty SMILES"
    """
    prefix = f"record {old!r}"
    if old != new and isinstance(error, str) and error.startswith(prefix):
        return f"record {new!r}" + error[len(prefix):]
    return error


def read_fasta(path, *, alphabet: str = "ACGT") -> pd.DataFrame:
    """Read a FASTA file into a DataFrame with ``id``, ``sequence`` and ``error``.

    Soft-masked (lowercase) bases are accepted and upper-cased; ``N`` is kept
    (it becomes an all-zero column when encoded). Ambiguity codes, gaps, digits,
    other characters and empty records get an ``error`` naming the record, the
    position and the character; ``sequence`` keeps the raw text. Repeated record
    ids are made unique (:func:`unique_ids`, with a warning). The file is read as
    UTF-8; a record whose name or sequence holds bytes that are not UTF-8 gets an
    ``error`` (its name shows those bytes as ``\\xNN``) and the other records are
    read as usual; bytes in a header's description after the name change nothing.

    Parameters
    ----------
    path : str or Path
        FASTA file (``.gz`` is read transparently).

    Returns
    -------
    pandas.DataFrame with columns ``id``, ``sequence``, ``error`` (None when valid)

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.fa")
    >>> _ = open(path, "w").write(">a\\nACGTacgt\\n>b\\nACRT\\n")
    >>> read_fasta(path)[["id", "error"]].values.tolist()
    [['a', None], ['b', "record 'b': position 2 has 'R', an IUPAC ambiguity code; only A, C, G, T and N are accepted"]]
    """
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FASTA file not found: {path}")
    opener = open
    if path.suffix == ".gz":
        import gzip

        opener = gzip.open
    # Bytes that are not UTF-8 stay as surrogates, so one bad record cannot stop the file being read.
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape") as handle:
        records = [(_name(title), sequence.replace("\t", "")) for title, sequence in SimpleFastaParser(handle)]
    if not records:
        raise ValueError(f"no FASTA records found in {path}")
    ids, id_bytes = zip(*(_undecodable(i) for i, _ in records))
    seqs, seq_bytes = zip(*(_undecodable(s) for _, s in records))
    frame = _from_list(list(seqs), list(ids), alphabet)
    for row, (in_id, in_seq) in enumerate(zip(id_bytes, seq_bytes)):
        if in_id or in_seq:
            where = f"name has bytes {in_id}" if in_id else f"sequence has bytes {in_seq}"
            frame.at[row, "error"] = f"record '{frame.at[row, 'id']}': the {where} that are not UTF-8 text; save the file as UTF-8"
    return frame


def _name(title: str) -> str:
    """A record's id: the first word of its FASTA header, as Biopython's ``SeqRecord.id``."""
    words = title.split(None, 1)
    return words[0] if words else ""


def _undecodable(text: str) -> tuple[str, str | None]:
    """``text`` read with ``surrogateescape``, its undecodable bytes written ``\\xNN``, and those bytes (None if none).

    Examples
    --------
    >>> _undecodable("caf\\udce9")
    ('caf\\\\xe9', '0xe9')
    >>> _undecodable("ACGT")
    ('ACGT', None)
    """
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if clean == text:
        return text, None
    bad = sorted({c for c in text if "\udc80" <= c <= "\udcff"})
    return clean, ", ".join(f"0x{ord(c) - 0xDC00:02x}" for c in bad)


def _row(record_id: str, sequence: str, alphabet: str) -> dict:
    error = validate_sequence(sequence, alphabet=alphabet, record=record_id)
    return {"id": record_id, "sequence": sequence if error else sequence.upper(), "error": error}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["id", "sequence", "error"])
    frame["error"] = pd.Series([e if isinstance(e, str) else None for e in frame["error"]], index=frame.index, dtype=object)
    return frame


def sequence_frame(inputs, *, alphabet: str = "ACGT", ids=None) -> pd.DataFrame:
    """Normalise any sequence input to a DataFrame with ``id``, ``sequence``, ``error``.

    Parameters
    ----------
    inputs : path, str, list of str, dict, DataFrame or torch.Tensor
        A FASTA path; one sequence; a list of sequences; a mapping id -> sequence;
        a DataFrame with a ``sequence`` column (and optionally ``id``); or one-hot
        tensors of shape (N, 4, L).
    ids : list of str, optional
        Record names; default ``seq0``, ``seq1``, ... Repeated names (here or in a
        DataFrame's ``id`` column) are made unique (:func:`unique_ids`), and a
        DataFrame's ``error`` texts then name the final id.

    Examples
    --------
    >>> sequence_frame(["ACGT", "AXGT"])["error"].tolist()
    [None, "record 'seq1': position 1 has 'X', not a nucleotide; only A, C, G, T and N are accepted"]
    """
    if isinstance(inputs, pd.DataFrame):
        if "sequence" not in inputs.columns:
            raise ValueError(f"a DataFrame of sequences needs a 'sequence' column; it has {list(inputs.columns)}")
        seqs = [str(s) for s in inputs["sequence"]]
        names = [str(i) for i in inputs["id"]] if "id" in inputs.columns else ids
        frame = _from_list(seqs, names, alphabet)
        if "error" in inputs.columns:
            old = [str(i) for i in names] if names is not None else frame["id"].tolist()
            prior = [renamed_error(p, o, n) for p, o, n in zip(inputs["error"], old, frame["id"])]
            merged = [p if isinstance(p, str) and p else e for p, e in zip(prior, frame["error"])]
            frame["error"] = pd.Series(merged, index=frame.index, dtype=object)
        return frame
    if isinstance(inputs, torch.Tensor):
        X = inputs.detach()
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[1] != len(alphabet):
            raise ValueError(f"one-hot input must have shape (N, {len(alphabet)}, L); got {tuple(X.shape)}")
        return _from_list(decode(X, alphabet=alphabet), ids, alphabet)
    if isinstance(inputs, dict):
        return _from_list([str(s) for s in inputs.values()], [str(k) for k in inputs.keys()], alphabet)
    if isinstance(inputs, (str, os.PathLike)):
        text = str(inputs)
        looks_like_path = isinstance(inputs, os.PathLike) or os.sep in text or text.endswith(
            (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz")
        )
        if looks_like_path or Path(text).exists():
            return read_fasta(text, alphabet=alphabet)
        return _from_list([text], ids, alphabet)
    return _from_list([str(s) for s in inputs], ids, alphabet)


def _from_list(seqs: list[str], ids, alphabet: str) -> pd.DataFrame:
    if ids is None:
        ids = [f"seq{i}" for i in range(len(seqs))]
    if len(ids) != len(seqs):
        raise ValueError(f"got {len(ids)} ids for {len(seqs)} sequences")
    return _frame([_row(i, s, alphabet) for i, s in zip(unique_ids(ids), seqs)])


# ---------------------------------------------------------------- molecules
SMILES_COLUMNS = ("smiles", "canonical_smiles", "smi", "structure")
ID_COLUMNS = ("id", "name", "molecule_chembl_id", "compound_id", "cmpd_id", "title")


def read_molecules(path_or_list, *, smiles_col=None, id_col=None, standardize: bool = False) -> pd.DataFrame:
    """Read molecules into a DataFrame with ``id``, ``smiles``, ``mol`` and ``error``.

    Every record gives one row. A record RDKit cannot read (a SMILES syntax
    error, an atom with an impossible valence, an aromatic ring that cannot be
    kekulised, an empty entry) keeps its row with ``mol`` None and an ``error``
    naming the record and RDKit's reason. Salts, charges and stereochemistry are
    kept as written unless ``standardize=True``.

    Parameters
    ----------
    path_or_list : str, Path, list of str, dict or DataFrame
        A ``.smi``/``.smiles`` file (SMILES then an optional name per line), a
        ``.csv``/``.tsv`` table, an ``.sdf`` file, a list of SMILES, a mapping
        id -> SMILES, or a DataFrame with a SMILES column.
    smiles_col : str, optional
        Column holding SMILES in a table; default the first column named like
        ``smiles``.
    id_col : str, optional
        Column (table) or SD property (SDF) holding record names; default a column
        named ``id`` or ``name``, the SDF title line, or ``mol0``, ``mol1``, ...
        A column or property that no record has raises ``ValueError`` naming the
        ones there are; SDF records without the property are named ``mol<index>``.
        Repeated names are made unique (:func:`unique_ids`, with a warning)
        before the records are read, so errors name the final id.
    standardize : bool
        Keep the largest fragment and neutralise charges (RDKit MolStandardize);
        the text as read is kept in ``input_smiles``.

    Returns
    -------
    pandas.DataFrame with columns ``id``, ``smiles`` (canonical when parsed, the
    raw text otherwise), ``mol`` (``rdkit.Chem.Mol`` or None), ``error`` (None when valid)

    Examples
    --------
    >>> frame = read_molecules(["CCO", "C(C)(C)(C)(C)C", "[Na+].CC(=O)[O-]"])
    >>> frame["error"].notna().tolist()
    [False, True, False]
    >>> frame["error"][1]
    "record 'mol1': Explicit valence for atom # 0 C, 5, is greater than permitted"
    >>> read_molecules(["[Na+].CC(=O)[O-]"], standardize=True)["smiles"][0]
    'CC(=O)O'
    """
    if isinstance(path_or_list, pd.DataFrame):
        rows = _molecule_table_rows(path_or_list, smiles_col, id_col, source="DataFrame")
    elif isinstance(path_or_list, dict):
        rows = [(str(k), v) for k, v in path_or_list.items()]
    elif isinstance(path_or_list, (str, os.PathLike)) and _looks_like_molecule_file(path_or_list):
        return _read_molecule_file(Path(path_or_list), smiles_col=smiles_col, id_col=id_col, standardize=standardize)
    elif isinstance(path_or_list, str):
        rows = [("mol0", path_or_list)]
    else:
        rows = [(f"mol{i}", s) for i, s in enumerate(path_or_list)]
    return _molecule_frame([_parse_smiles(i, s, standardize) for i, s in _unique_rows(rows)], standardize)


def _unique_rows(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(id, SMILES) pairs with unique ids, settled before parsing so that errors name the final id."""
    return list(zip(unique_ids(i for i, _ in rows), (s for _, s in rows)))


def _looks_like_molecule_file(path) -> bool:
    text = str(path)
    if isinstance(path, os.PathLike) or Path(text).suffix.lower() in _READERS:
        return True
    return os.sep in text and Path(text).exists()


def _read_molecule_file(path: Path, *, smiles_col, id_col, standardize) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"molecule file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(f"cannot read {path}: expected one of {sorted(_READERS)}")
    if suffix in (".sdf", ".sd", ".mol"):
        rows = _read_sdf(path, id_col=id_col, standardize=standardize)
    else:
        raw = _READERS[suffix](path, smiles_col, id_col)
        rows = [_parse_smiles(i, s, standardize) for i, s in _unique_rows(raw)]
    if not rows:
        raise ValueError(f"no molecules found in {path}")
    return _molecule_frame(rows, standardize)


def _read_smi(path: Path, smiles_col, id_col) -> list[tuple[str, str]]:
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split(None, 1)
            if not parts:
                continue  # blank lines are not records
            if number == 1 and parts[0].lower() in SMILES_COLUMNS:
                continue  # a header line
            name = parts[1].strip() if len(parts) > 1 else f"line{number}"
            rows.append((name, parts[0]))
    return rows


def _read_table(path: Path, smiles_col, id_col) -> list[tuple[str, str]]:
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    return _molecule_table_rows(table, smiles_col, id_col, source=str(path))


def _molecule_table_rows(table: pd.DataFrame, smiles_col, id_col, *, source: str) -> list[tuple[str, str]]:
    smiles_col = smiles_col or _find_column(table, SMILES_COLUMNS, contains="smiles")
    if smiles_col is None or smiles_col not in table.columns:
        raise ValueError(f"{source}: no SMILES column (looked for {smiles_col or 'smiles'}); columns are {list(table.columns)}")
    if id_col is not None and id_col not in table.columns:
        raise ValueError(f"{source}: no id column {id_col!r}; columns are {list(table.columns)}")
    id_col = id_col or _find_column(table, ID_COLUMNS)
    ids = table[id_col].astype(str).tolist() if id_col else [f"mol{i}" for i in range(len(table))]
    smiles = ["" if (s is None or (isinstance(s, float) and s != s)) else str(s) for s in table[smiles_col]]
    return list(zip(ids, smiles))


def _find_column(table: pd.DataFrame, names, contains=None):
    lowered = {str(c).lower(): c for c in table.columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    if contains:
        for low, column in lowered.items():
            if contains in low:
                return column
    return None


_READERS = {".smi": _read_smi, ".smiles": _read_smi, ".csv": _read_table, ".tsv": _read_table, ".tab": _read_table,
            ".sdf": None, ".sd": None, ".mol": None}


def _rdkit_reason(messages: str, fallback: str) -> str:
    """First meaningful line of RDKit's log, without the time stamps."""
    import re

    lines = [re.sub(r"^\[[0-9:]+\]\s*", "", line).strip() for line in messages.splitlines()]
    lines = [line for line in lines if line and not line.startswith("~") and "check for mistakes" not in line]
    for line in lines:
        if "Failed parsing SMILES" not in line:
            return line
    return lines[0] if lines else fallback


def _check_mol(record_id: str, raw, parse):
    """Diagnose ``raw`` (parsed without sanitising), then read it the way RDKit does by default.

    ``parse()`` reads the record again with RDKit's defaults (sanitisation and
    stereo perception), so valid records come out exactly as RDKit gives them.
    Returns (mol, error).
    """
    from rdkit import Chem, rdBase

    with rdBase.CaptureErrorLog():
        problems = Chem.DetectChemistryProblems(raw)
    if problems:
        reasons = "; ".join(dict.fromkeys(p.Message() for p in problems))
        return None, f"record {record_id!r}: {reasons}"
    with rdBase.CaptureErrorLog() as capture:
        try:
            mol = parse()
        except Exception as error:  # noqa: BLE001 - RDKit raises several exception types
            return None, f"record {record_id!r}: {_rdkit_reason(capture.messages, str(error))}"
    if mol is None:
        return None, f"record {record_id!r}: {_rdkit_reason(capture.messages, 'RDKit could not sanitize it')}"
    if mol.GetNumAtoms() == 0:
        return None, f"record {record_id!r}: empty molecule"
    return mol, None


def _parse_smiles(record_id: str, smiles, standardize: bool) -> dict:
    from rdkit import Chem, rdBase

    text = "" if smiles is None or (isinstance(smiles, float) and smiles != smiles) else str(smiles).strip()
    row = {"id": str(record_id), "smiles": text, "mol": None, "error": None, "input_smiles": text}
    if not text:
        row["error"] = f"record {record_id!r}: empty SMILES"
        return row
    with rdBase.CaptureErrorLog() as capture:
        raw = Chem.MolFromSmiles(text, sanitize=False)
    if raw is None:
        row["error"] = f"record {record_id!r}: {_rdkit_reason(capture.messages, 'SMILES could not be parsed')}"
        return row
    return _finish(row, raw, lambda: Chem.MolFromSmiles(text), standardize)


def _finish(row: dict, raw, parse, standardize: bool) -> dict:
    from rdkit import Chem

    mol, error = _check_mol(row["id"], raw, parse)
    if error:
        row["error"] = error
        return row
    if standardize:
        mol, error = _standardize(row["id"], mol)
        if error:
            row["error"] = error
            return row
    row["mol"] = mol
    row["smiles"] = Chem.MolToSmiles(mol)
    return row


def _standardize(record_id: str, mol):
    from rdkit import rdBase
    from rdkit.Chem.MolStandardize import rdMolStandardize

    with rdBase.BlockLogs(), rdBase.CaptureErrorLog() as capture:  # MolStandardize logs every step as info
        try:
            mol = rdMolStandardize.LargestFragmentChooser().choose(mol)
            mol = rdMolStandardize.Uncharger().uncharge(mol)
        except Exception as error:  # noqa: BLE001
            return None, f"record {record_id!r}: standardisation failed: {_rdkit_reason(capture.messages, str(error))}"
    return mol, None


def _read_sdf(path: Path, *, id_col, standardize: bool) -> list[dict]:
    from rdkit import Chem, rdBase

    supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
    entries = []
    for index in range(len(supplier)):
        with rdBase.CaptureErrorLog() as capture:
            mol = supplier[index]
        entries.append((mol, capture.messages))
    ids = _sdf_ids([mol for mol, _ in entries], id_col, path)
    rows = []
    for index, ((mol, messages), record_id) in enumerate(zip(entries, ids)):
        row = {"id": record_id, "smiles": "", "mol": None, "error": None, "input_smiles": ""}
        if mol is None:
            row["error"] = f"record {record_id!r} (SDF entry {index + 1}): {_rdkit_reason(messages, 'could not be read')}"
            rows.append(row)
            continue
        if mol.GetNumAtoms() == 0:
            row["error"] = f"record {record_id!r}: empty molecule"
            rows.append(row)
            continue
        with rdBase.CaptureErrorLog():
            row["input_smiles"] = row["smiles"] = Chem.MolToSmiles(mol, canonical=False)
        text = supplier.GetItemText(index)
        rows.append(_finish(row, mol, lambda: Chem.MolFromMolBlock(text), standardize))
    return rows


def _sdf_ids(mols: list, id_col, path: Path) -> list[str]:
    """Unique record names: the ``id_col`` property, else the title line, else ``mol<index>``.

    Raises ``ValueError`` naming the properties the file has when no record has ``id_col``.
    """
    readable = [mol for mol in mols if mol is not None]
    if id_col and readable and not any(mol.HasProp(id_col) for mol in readable):
        available = sorted({name for mol in readable for name in mol.GetPropNames()})
        raise ValueError(f"{path}: no id property {id_col!r}; SD properties are {available}")
    ids = []
    for index, mol in enumerate(mols):
        record_id = f"mol{index}"
        if mol is not None:
            if id_col and mol.HasProp(id_col):
                record_id = mol.GetProp(id_col)
            elif not id_col and mol.HasProp("_Name") and mol.GetProp("_Name").strip():
                record_id = mol.GetProp("_Name").strip()
        ids.append(record_id)
    return unique_ids(ids)


def _molecule_frame(rows: list[dict], standardize: bool) -> pd.DataFrame:
    columns = ["id", "smiles", "mol", "error"] + (["input_smiles"] if standardize else [])
    frame = pd.DataFrame(rows, columns=columns)
    frame["mol"] = frame["mol"].astype(object)
    frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    return frame


__all__ = ["read_fasta", "sequence_frame", "read_molecules", "unique_ids"]
