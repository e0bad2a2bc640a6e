"""probekit: adversarial search as a microscope for scientific models.

Wrap a model in an adapter, then search, attribute, certify and report:

>>> import probekit
>>> from probekit.testing import ToyConv
>>> adapter = probekit.SequenceModel(ToyConv(), output=probekit.outputs.logit(1), device="cpu")
>>> adapter.score(["ACGTACGTAC"]).shape
torch.Size([1])
"""

from . import goals, outputs
from ._warnings import ProbekitWarning
from .adapters import FeatureModel, ModelCallError, SequenceModel
from .io import read_fasta, sequence_frame
from .loading import load_model

__version__ = "0.1.0"

__all__ = [
    "SequenceModel",
    "FeatureModel",
    "ModelCallError",
    "outputs",
    "goals",
    "read_fasta",
    "sequence_frame",
    "load_model",
    "ProbekitWarning",
]
