"""Picklable adapter factories: each worker of a scaled run builds its adapter from the model file itself.

Give :func:`probekit.scale.run` one of these through :func:`functools.partial`:
the partial (a function, a path and plain settings) is what travels to the
workers, never a live model. A featurizer is plain data and may travel too,
fitted or not: a feature model probed on the workers keeps the bounds and
reference molecules the driver fitted.

- :func:`load_feature_adapter`: a :class:`~probekit.FeatureModel` around a torch
  model over a probekit featurizer's features (``probekit mol`` with
  ``--model-kind features``);
- :func:`probekit.molmodel.load_molecule_model`, picklable as it is: a
  :class:`~probekit.molmodel.MoleculeModel` around a Chemprop, TorchScript or
  scikit-learn file (``--model-kind chemprop``, ``torchscript``, ``sklearn``).

DNA models have :func:`probekit.scale.load_adapter`.

Examples
--------
>>> import functools, os, tempfile, torch
>>> from probekit.encode.mol import Morgan
>>> path = os.path.join(tempfile.mkdtemp(), "mlp.pt")
>>> torch.jit.save(torch.jit.script(torch.nn.Linear(32, 1)), path)
>>> factory = functools.partial(load_feature_adapter, path, featurizer=Morgan(radius=1, n_bits=32), output=0, device="cpu")
>>> factory().score(["CCO", "c1ccccc1O"]).shape
torch.Size([2])
"""

from __future__ import annotations


def _featurizer(featurizer):
    """A featurizer object, or one built from a spec such as ``"morgan:2:2048"`` (:func:`~probekit.encode.mol.parse_featurizer`)."""
    if isinstance(featurizer, str):
        from ..encode.mol import parse_featurizer

        return parse_featurizer(featurizer)
    return featurizer


def load_feature_adapter(path, *, featurizer, output, arch=None, arch_kwargs: dict | None = None, trust: bool = False,
                         **adapter_options):  # fmt: skip
    """A :class:`~probekit.FeatureModel` around the torch model in ``path``: a factory for workers.

    Parameters
    ----------
    path : str or Path
        TorchScript file or state_dict, loaded by :func:`probekit.loading.load_model`
        (no code from the file runs unless ``trust``).
    featurizer : Featurizer or str
        The features the model takes: a featurizer object (fitted on the driver, as
        ``probekit mol`` fits it on the molecules probed, so its bounds and reference
        travel with it) or a spec such as ``"morgan:2:2048"``. The shard keys of
        :func:`probekit.scale.run` name a featurizer object by its settings and
        :meth:`~probekit.encode.mol.Featurizer.fit_digest`, so a rerun after a new fit
        computes its shards again.
    output : int, str or Output
        The score.
    arch, arch_kwargs, trust
        As :func:`probekit.loading.load_model`.
    **adapter_options
        Passed to :class:`~probekit.FeatureModel` (``device``, ``batch_size``, ``autocast``).

    Returns
    -------
    FeatureModel

    Examples
    --------
    >>> import os, tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "linear.pt")
    >>> torch.save(torch.nn.Linear(16, 2).state_dict(), path)
    >>> adapter = load_feature_adapter(path, featurizer="morgan:1:16", output=1, arch="torch.nn:Linear",
    ...                                arch_kwargs={"in_features": 16, "out_features": 2}, device="cpu")
    >>> adapter.output.name, adapter.n_features
    ('logit[1]', 16)
    """
    from ..adapters import FeatureModel
    from ..loading import load_model

    model = load_model(path, arch=arch, trust=trust, arch_kwargs=arch_kwargs)
    return FeatureModel(model, featurizer=_featurizer(featurizer), output=output, **adapter_options)


__all__ = ["load_feature_adapter"]
