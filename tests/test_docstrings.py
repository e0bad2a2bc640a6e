"""Every example in the package's docstrings runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import probekit

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(probekit.__path__, prefix="probekit.") if not name.endswith("__main__")
)


def test_the_package_has_examples():
    finder = doctest.DocTestFinder()
    with_examples = [name for name in MODULES if any(t.examples for t in finder.find(importlib.import_module(name)))]
    assert len(with_examples) >= 20


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed (see output)"
