"""Load model files without executing code from them unless asked.

Examples
--------
>>> import torch, tempfile, os
>>> from probekit.testing import ToyConv
>>> path = os.path.join(tempfile.mkdtemp(), "toy.pt")
>>> torch.save(ToyConv().state_dict(), path)
>>> model = load_model(path, arch="probekit.testing:ToyConv")
>>> type(model).__name__
'ToyConv'
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Callable

import torch


def resolve_arch(arch) -> Callable[..., torch.nn.Module]:
    """Turn ``"package.module:Class"`` (or a callable) into a model constructor."""
    if callable(arch):
        return arch
    if not isinstance(arch, str) or ":" not in arch:
        raise ValueError(f"arch must be 'module:Class' or a callable, got {arch!r}")
    module_name, _, attr = arch.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"cannot import {module_name!r} for arch {arch!r}: {error}") from error
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AttributeError(f"{module_name!r} has no attribute {attr!r} (arch {arch!r})")
        target = getattr(target, part)
    return target


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def load_model(path, arch=None, *, trust: bool = False, arch_kwargs: dict | None = None, map_location="cpu"):
    """Load a model from ``path``.

    Parameters
    ----------
    path : str or Path
        A TorchScript file, a ``state_dict`` saved with ``torch.save``, or (only with
        ``trust=True``) a pickled module.
    arch : str or callable, optional
        Architecture for a state_dict: ``"package.module:Class"`` or a callable
        returning an ``nn.Module``; it is called with ``arch_kwargs``.
    trust : bool
        Allow unpickling arbitrary objects, which can execute code from the file.
        Only for files you made yourself.

    Returns
    -------
    torch.nn.Module in eval mode
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if arch is None and _is_torchscript(path):
        return torch.jit.load(str(path), map_location=map_location).eval()
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - explained below
        if not trust:
            raise ValueError(
                f"{path} is not a TorchScript file or a plain state_dict; loading it would unpickle arbitrary "
                f"objects, which can run code from the file. Save a state_dict and pass arch='module:Class', "
                f"or pass trust=True for a file you made yourself. ({type(error).__name__}: {error})"
            ) from error
        obj = torch.load(path, map_location=map_location, weights_only=False)
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a model or a state_dict")
    if arch is None:
        raise ValueError(f"{path} holds a state_dict; say which architecture it belongs to with arch='module:Class'")
    model = resolve_arch(arch)(**(arch_kwargs or {}))
    model.load_state_dict(obj)
    return model.eval()


__all__ = ["load_model", "resolve_arch"]
