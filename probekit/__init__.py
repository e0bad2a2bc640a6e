"""probekit: adversarial search as a microscope for scientific models.

Wrap a model in an adapter, then search, attribute, certify and report:

>>> import probekit
>>> from probekit.testing import ToyConv
>>> adapter = probekit.SequenceModel(ToyConv(), output=probekit.outputs.logit(1), device="cpu")
>>> adapter.score(["ACGTACGTAC"]).shape
torch.Size([1])

Importing probekit is cheap: the search, certification, report and chemistry
namespaces load on first use.
"""

import importlib

from . import goals, outputs
from ._warnings import ProbekitWarning
from .adapters import FeatureModel, ModelCallError, ModelOutputError, SequenceModel
from .io import read_fasta, sequence_frame
from .loading import load_model
from .probe import probe  # bound eagerly so that the function, not the module, is probekit.probe

__version__ = "0.1.0"

_LAZY_MODULES = {
    "search", "attr", "certify", "diagnose", "report", "motifs", "chem", "datasets", "testing", "encode", "variants",
    "molmodel", "discover", "ensemble", "active", "fusion", "train", "tradeoff", "scale", "regions", "screening",
}  # fmt: skip
_LAZY_NAMES = {
    "SensitivityReport": ("probekit.report.sensitivity", "SensitivityReport"),
    "read_molecules": ("probekit.io", "read_molecules"),
    "Morgan": ("probekit.encode.mol", "Morgan"),
    "Descriptors": ("probekit.encode.mol", "Descriptors"),
    "MACCS": ("probekit.encode.mol", "MACCS"),
    "Concat": ("probekit.encode.mol", "Concat"),
    "Matrix": ("probekit.encode.mol", "Matrix"),
    "Smoothed": ("probekit.certify", "Smoothed"),
    "Attribution": ("probekit.attr", "Attribution"),
    "attribute": ("probekit.attr", "attribute"),
    "read_variants": ("probekit.variants", "read_variants"),
    "Genome": ("probekit.variants", "Genome"),
    "score_variants": ("probekit.variants", "score_variants"),
    "VariantResult": ("probekit.variants", "VariantResult"),
    "MoleculeModel": ("probekit.molmodel", "MoleculeModel"),
    "load_molecule_model": ("probekit.molmodel", "load_molecule_model"),
    "counterfactual_molecules": ("probekit.search.counterfactual", "counterfactual_molecules"),
    "Ensemble": ("probekit.ensemble", "Ensemble"),
    "MultiInputModel": ("probekit.fusion", "MultiInputModel"),
    "read_regions": ("probekit.regions", "read_regions"),
    "read_bed": ("probekit.regions", "read_bed"),
    "screen_molecules": ("probekit.screening", "screen_molecules"),
    "screen_molecules_to_table": ("probekit.screening", "screen_molecules_to_table"),
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"probekit.{name}")
    if name in _LAZY_NAMES:
        module, attr = _LAZY_NAMES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'probekit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY_MODULES | set(_LAZY_NAMES))


__all__ = [
    "SequenceModel",
    "FeatureModel",
    "ModelCallError",
    "ModelOutputError",
    "outputs",
    "goals",
    "read_fasta",
    "read_molecules",
    "sequence_frame",
    "load_model",
    "probe",
    "SensitivityReport",
    "Morgan",
    "Descriptors",
    "MACCS",
    "Concat",
    "Matrix",
    "Smoothed",
    "Attribution",
    "attribute",
    "read_variants",
    "Genome",
    "score_variants",
    "VariantResult",
    "MoleculeModel",
    "load_molecule_model",
    "counterfactual_molecules",
    "Ensemble",
    "MultiInputModel",
    "read_regions",
    "read_bed",
    "screen_molecules",
    "screen_molecules_to_table",
    "search",
    "attr",
    "certify",
    "diagnose",
    "report",
    "motifs",
    "chem",
    "datasets",
    "testing",
    "variants",
    "molmodel",
    "discover",
    "ensemble",
    "active",
    "fusion",
    "train",
    "tradeoff",
    "scale",
    "regions",
    "screening",
    "ProbekitWarning",
]
