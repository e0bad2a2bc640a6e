"""The API's own conventions: cheap import, public names documented, keyword-only options."""

import importlib
import inspect
import subprocess
import sys

import pytest

import probekit

PUBLIC_MODULES = [
    "probekit",
    "probekit.outputs",
    "probekit.goals",
    "probekit.adapters",
    "probekit.io",
    "probekit.encode.dna",
    "probekit.search",
    "probekit.attr",
    "probekit.certify",
    "probekit.diagnose",
    "probekit.report",
    "probekit.motifs",
    "probekit.testing",
    "probekit.encode.mol",
    "probekit.chem",
    "probekit.report.molecules",
    "probekit.mol_demo",
    "probekit.datasets",
]


def _public_functions():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module_name}.{name}", obj


def test_import_is_cheap():
    code = (
        "import sys, probekit; heavy = [m for m in ('matplotlib', 'rdkit', 'pyjaspar', 'logomaker', 'ray', 'captum') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing probekit loaded {out}"


def test_every_public_name_resolves():
    for name in probekit.__all__:
        assert getattr(probekit, name) is not None, name


@pytest.mark.parametrize("qualname,obj", list(_public_functions()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_objects_have_docstrings(qualname, obj):
    assert inspect.getdoc(obj), f"{qualname} has no docstring"


def test_options_after_the_first_two_arguments_are_keyword_only():
    offenders = []
    for qualname, obj in _public_functions():
        if not inspect.isfunction(obj):
            continue
        params = [p for p in inspect.signature(obj).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        if len(params) > 3:
            offenders.append(f"{qualname}({', '.join(p.name for p in params)})")
    assert not offenders, "positional options: " + "; ".join(offenders)
