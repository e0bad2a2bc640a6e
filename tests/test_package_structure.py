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
    "probekit.probe.dna",
    "probekit.probe.molecules",
    "probekit.probe.baseline",
    "probekit.probe.chunks",
    "probekit.variants",
    "probekit.variants.io",
    "probekit.variants.genome",
    "probekit.variants.windows",
    "probekit.variants.score",
    "probekit.variants.motifs",
    "probekit.variants.stream",
    "probekit.variants.report",
    "probekit.report.variants",
    "probekit.molmodel",
    "probekit.search.counterfactual",
    "probekit.probe.molmodels",
    "probekit.report.molmodels",
    "probekit.discover",
    "probekit.report.discovery",
    "probekit.ensemble",
    "probekit.active",
    "probekit.fusion",
    "probekit.mol_graph_demo",
    "probekit.train",
    "probekit.tradeoff",
    "probekit.scale",
    "probekit.scale.factories",
    "probekit.screening",
    "probekit.regions",
    "probekit.variants.result",
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
        "import sys, probekit; heavy = [m for m in ('matplotlib', 'rdkit', 'pyjaspar', 'logomaker', 'ray', 'captum', 'pysam') "
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


def _imports_of(path):
    """Absolute module names a source file imports (relative imports resolved), at any depth."""
    import ast
    from pathlib import Path

    package = ".".join(Path(path).relative_to(Path(probekit.__file__).parent.parent).with_suffix("").parts)
    if package.endswith(".__init__"):
        package = package[: -len(".__init__")]
    else:
        package = package.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _sources():
    from pathlib import Path

    root = Path(probekit.__file__).parent
    return sorted(root.rglob("*.py"))


def test_nothing_below_the_command_line_imports_it():
    from pathlib import Path

    root = Path(probekit.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in _sources()
        if path.relative_to(root).parts[0] not in ("cli", "__main__.py")
        and any(name == "probekit.cli" or name.startswith("probekit.cli.") for name in _imports_of(path))
    ]
    assert not offenders, "modules below the command line import it: " + ", ".join(offenders)


def test_reports_only_render():
    offenders = []
    for path in _sources():
        if path.parent.name != "report":
            continue
        for name in _imports_of(path):
            if name.startswith(("probekit.search", "probekit.probe", "probekit.cli", "probekit.attr", "probekit.certify")):
                offenders.append(f"{path.name} imports {name}")
    assert not offenders, "; ".join(offenders)

