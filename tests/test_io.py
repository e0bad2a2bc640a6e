"""Reading FASTA and other sequence inputs: the bad-record battery."""

import gzip

import pandas as pd
import pytest
import torch

from probekit.encode.dna import one_hot
from probekit.io import read_fasta, sequence_frame


@pytest.fixture
def fasta(tmp_path):
    text = (
        ">good\nACGTACGT\n"
        ">soft\nacgtACGT\n"
        ">withN\nACGNNCGT\n"
        ">iupac\nACGRACGT\n"
        ">gap\nAC-TACGT\n"
        ">digit\nACG1ACGT\n"
        ">other\nACG*ACGT\n"
        ">empty\n\n"
        ">last\nTTTTGGGG\n"
    )
    path = tmp_path / "battery.fa"
    path.write_text(text)
    return path


def test_battery_keeps_every_record_and_names_the_problem(fasta):
    frame = read_fasta(fasta)
    assert frame["id"].tolist() == ["good", "soft", "withN", "iupac", "gap", "digit", "other", "empty", "last"]
    errors = dict(zip(frame["id"], frame["error"]))
    assert errors["good"] is None and errors["soft"] is None and errors["withN"] is None and errors["last"] is None
    assert "'iupac'" in errors["iupac"] and "position 3" in errors["iupac"] and "'R'" in errors["iupac"]
    assert "ambiguity" in errors["iupac"]
    assert "position 2" in errors["gap"] and "gap" in errors["gap"]
    assert "position 3" in errors["digit"] and "digit" in errors["digit"]
    assert "'*'" in errors["other"]
    assert "'empty'" in errors["empty"] and "empty" in errors["empty"]


def test_soft_masked_bases_are_upper_cased(fasta):
    frame = read_fasta(fasta).set_index("id")
    assert frame.loc["soft", "sequence"] == "ACGTACGT"


def test_n_is_an_all_zero_column():
    X = one_hot(["ACGNNCGT"])
    assert X[0, :, 3].sum() == 0 and X[0, :, 4].sum() == 0
    assert X[0].sum() == 6


def test_gzip_fasta(tmp_path):
    path = tmp_path / "x.fa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(">a\nACGT\n")
    assert read_fasta(path)["sequence"].tolist() == ["ACGT"]


def test_missing_file_and_no_records(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_fasta(tmp_path / "nope.fa")
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    with pytest.raises(ValueError, match="no FASTA records"):
        read_fasta(empty)


def test_duplicate_ids_are_made_unique(tmp_path):
    path = tmp_path / "dup.fa"
    path.write_text(">a\nACGT\n>a\nTTTT\n")
    ids = read_fasta(path)["id"].tolist()
    assert len(set(ids)) == 2


@pytest.mark.parametrize(
    "inputs",
    [
        ["ACGT", "TTGA"],
        {"seq0": "ACGT", "seq1": "TTGA"},
        pd.DataFrame({"sequence": ["ACGT", "TTGA"]}),
        one_hot(["ACGT", "TTGA"]),
    ],
)
def test_every_input_form_gives_the_same_frame(inputs):
    frame = sequence_frame(inputs)
    assert frame["sequence"].tolist() == ["ACGT", "TTGA"]
    assert frame["id"].tolist() == ["seq0", "seq1"]
    assert frame["error"].isna().all()


def test_fasta_path_as_input(fasta):
    assert len(sequence_frame(str(fasta))) == 9


def test_tensor_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, 4, L\)"):
        sequence_frame(torch.zeros(2, 5, 3))


def test_dataframe_prior_errors_are_kept():
    frame = sequence_frame(pd.DataFrame({"id": ["a", "b"], "sequence": ["ACGT", "ACGT"], "error": [None, "bad upstream"]}))
    assert frame["error"].tolist() == [None, "bad upstream"]


def test_bytes_that_are_not_utf8_cost_only_their_record(tmp_path):
    """A Latin-1 name or sequence byte names its record; the other records, and a description's bytes, are read."""
    path = tmp_path / "latin1.fa"
    path.write_bytes(b">good\nACGT\n>caf\xe9 x\nACGT\n>described caf\xe9\nACGG\n>bad_seq\nAC\xe9T\n>last\nTTTT\n")
    frame = read_fasta(path)
    assert frame["id"].tolist() == ["good", "caf\\xe9", "described", "bad_seq", "last"]
    errors = dict(zip(frame["id"], frame["error"]))
    assert errors["good"] is None and errors["described"] is None and errors["last"] is None
    assert errors["caf\\xe9"].startswith("record 'caf\\xe9': the name has bytes 0xe9 that are not UTF-8")
    assert errors["bad_seq"].startswith("record 'bad_seq': the sequence has bytes 0xe9")
    assert frame.set_index("id").loc["described", "sequence"] == "ACGG"


def test_gzip_fasta_with_a_latin1_name(tmp_path):
    path = tmp_path / "x.fa.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b">a\xff\nACGT\n>b\nTTGA\n")
    frame = read_fasta(path)
    assert frame["error"].notna().tolist() == [True, False]
