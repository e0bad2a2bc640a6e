"""The molecule-models notebook runs from top to bottom without an error, executed as every notebook is."""

import time
from pathlib import Path

import pytest
from test_notebooks import test_notebook_runs as run_notebook  # the shared runner; renamed so it is not collected twice

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "molecule_models.ipynb"


@pytest.mark.notebook
def test_molecule_models_notebook_runs(monkeypatch):
    pytest.importorskip("sklearn")
    start = time.perf_counter()
    run_notebook(NOTEBOOK, monkeypatch)  # its cells check their own results (same seed, same molecules)
    seconds = time.perf_counter() - start
    assert seconds < 300, f"the notebook took {seconds:.0f} s"
