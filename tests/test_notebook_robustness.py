"""The ensembles, active learning and fusion notebook runs from top to bottom, as every notebook in examples/ does."""

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "examples" / "robustness_and_uncertainty.ipynb"


def _runner():
    """The notebook test of ``test_notebooks.py``, loaded from its file (its own test is not collected here)."""
    spec = importlib.util.spec_from_file_location("_notebook_runner", HERE / "test_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.test_notebook_runs


@pytest.mark.notebook
def test_robustness_notebook_runs(monkeypatch):
    assert NOTEBOOK.exists()
    _runner()(NOTEBOOK, monkeypatch)
