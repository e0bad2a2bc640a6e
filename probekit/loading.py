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

import contextlib
import importlib
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import torch

from ._messages import strip_ansi
from ._warnings import warn

# Terminal escape sequences (colours, bold) that torch puts in some of its messages.
# Mismatch lines of a state_dict that does not fit, shown before "and N more".
_MISMATCH_LINES = 4
_SIZE_MISMATCH = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[(.*?)\]\) from checkpoint, "
    r"the shape in current model is torch\.Size\(\[(.*?)\]\)"
)


def _folders(also_in) -> list[str]:
    """The working directory, then the folders of ``also_in`` (such as the model file's), each once."""
    folders = [os.getcwd()]
    for folder in also_in:
        folder = os.path.abspath(folder)
        if folder not in folders:
            folders.append(folder)
    return folders


@contextlib.contextmanager
def _cwd_on_path(also_in=()):
    """Put the working directory (then ``also_in``) first on ``sys.path`` for the block, as ``python -m`` does."""
    folders = _folders(also_in)
    sys.path[:0] = folders
    try:
        yield
    finally:
        for folder in folders:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)  # the first copy: the one inserted above


def resolve_arch(arch, *, also_in=()) -> Callable[..., torch.nn.Module]:
    """Turn ``"package.module:Class"`` (or a callable) into a model constructor.

    The module is imported from the working directory first, then from the folders
    ``also_in`` (:func:`load_model` gives the model file's folder), then from the
    installed packages: a ``mymodel.py`` next to where the command runs, or next to
    the model file, is found as ``"mymodel:Net"``.

    Examples
    --------
    >>> resolve_arch("probekit.testing:ToyConv").__name__
    'ToyConv'
    """
    if callable(arch):
        return arch
    if not isinstance(arch, str) or ":" not in arch:
        raise ValueError(f"arch must be 'module:Class' or a callable, got {arch!r}")
    module_name, _, attr = arch.partition(":")
    try:
        with _cwd_on_path(also_in):
            module = importlib.import_module(module_name)
    except ImportError as error:
        where = ""
        if isinstance(error, ModuleNotFoundError) and error.name and module_name.startswith(error.name):
            folders = _folders(also_in)
            where = (f" (looked in the current folder {folders[0]}"
                     + "".join(f", {folder}" for folder in folders[1:]) + " and the installed packages)")  # fmt: skip
        raise ImportError(f"cannot import {module_name!r} for arch {arch!r}: {error}{where}") from error
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AttributeError(f"{module_name!r} has no attribute {attr!r} (arch {arch!r})")
        target = getattr(target, part)
    return target


def is_torchscript(path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), which carries its own architecture."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _torch_reason(error: BaseException) -> str:
    """The useful line of a torch loading error, without escape codes or advice meant for ``torch.load`` callers."""
    text = strip_ansi(str(error))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _refused(path: Path, error: BaseException) -> ValueError:
    """Why a file that ``torch.load(weights_only=True)`` refused needs ``trust=True``, or cannot be read at all.

    The file goes by its name: the callers' messages (and the command line's) name its whole path already.
    """
    text = strip_ansi(str(error))
    pickled = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if pickled:
        return ValueError(
            f"{path.name} holds a pickled {pickled.group(1)} (a whole model or other Python objects, not a state_dict); "
            "unpickling it can run code from the file. Save model.state_dict() instead and name its class with "
            "arch='module:Class', or pass trust=True for a file you made yourself."
        )
    if "Weights only load failed" in text:
        return ValueError(
            f"{path.name} is neither TorchScript nor a state_dict of tensors ({_torch_reason(error)}); if it is a "
            "pickled model you made yourself, pass trust=True (unpickling can run code from the file)"
        )
    return ValueError(f"{path.name} cannot be read as TorchScript or a torch.save file: {_torch_reason(error)}")


def _load_pickle(path: Path, map_location, trust: bool):
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # torch's note, not the user's concern
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - explained by _refused
        if not trust:
            raise _refused(path, error) from error
    with _cwd_on_path([Path(path).parent]):  # the pickled classes are found where arch modules are
        return torch.load(path, map_location=map_location, weights_only=False)


def _build(arch, arch_kwargs: dict | None, also_in=()) -> torch.nn.Module:
    constructor = resolve_arch(arch, also_in=also_in)
    try:
        return constructor(**(arch_kwargs or {}))
    except TypeError as error:
        given = f" with arch_kwargs {arch_kwargs}" if arch_kwargs else " without arguments"
        raise TypeError(f"cannot build arch {arch!r}{given}: {error}") from error


def _shapes(match: re.Match) -> str:
    as_tuple = lambda dims: f"({dims},)" if dims and "," not in dims else f"({dims})"  # noqa: E731
    return f"size mismatch for {match.group(1)}: {as_tuple(match.group(2))} in the file, {as_tuple(match.group(3))} in the model"


def _fit(model: torch.nn.Module, state: dict, path: Path, arch, arch_kwargs: dict | None) -> None:
    """Load ``state`` into ``model``; a mismatch names the first differences and what to check."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in strip_ansi(str(error)).splitlines() if line.strip()]
        details = [_SIZE_MISMATCH.sub(_shapes, line).rstrip(".") for line in lines
                   if not line.startswith("Error(s) in loading state_dict")]  # fmt: skip
        if len(details) > _MISMATCH_LINES:
            details = details[:_MISMATCH_LINES] + [f"and {len(details) - _MISMATCH_LINES} more"]
        built = f"arch {arch!r}" if isinstance(arch, str) else type(model).__name__
        hint = "" if arch_kwargs else " (if the model was built with constructor arguments, give them with arch_kwargs)"
        raise RuntimeError(f"the state_dict in {path} does not fit {built}{hint}: " + "; ".join(details)) from error


def load_model(path, arch=None, *, trust: bool = False, arch_kwargs: dict | None = None, map_location="cpu"):
    """Load a model from ``path``.

    Parameters
    ----------
    path : str or Path
        A TorchScript file, a ``state_dict`` saved with ``torch.save``, or (only with
        ``trust=True``) a pickled module.
    arch : str or callable, optional
        Architecture for a state_dict: ``"package.module:Class"`` or a callable
        returning an ``nn.Module``; it is called with ``arch_kwargs``. The module is
        imported from the working directory first, then from the model file's folder
        (see :func:`resolve_arch`). A
        TorchScript file carries its own architecture: ``arch`` is then ignored,
        with a :class:`~probekit.ProbekitWarning`.
    trust : bool
        Allow unpickling arbitrary objects, which can execute code from the file.
        Only for files you made yourself.
    arch_kwargs : dict, optional
        Keyword arguments of the architecture's constructor, such as ``{"channels": 32}``.

    Returns
    -------
    torch.nn.Module in eval mode

    Examples
    --------
    >>> import torch, tempfile, os
    >>> from probekit.testing import ToyConv
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.pt")
    >>> torch.save(ToyConv(channels=6).state_dict(), path)
    >>> load_model(path, arch="probekit.testing:ToyConv", arch_kwargs={"channels": 6}).conv.out_channels
    6
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if is_torchscript(path):
        if arch is not None:
            warn(f"{path} is a TorchScript file, which carries its own architecture; arch={arch!r} is not needed and was ignored")
        return torch.jit.load(str(path), map_location=map_location).eval()
    obj = _load_pickle(path, map_location, trust)
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a model or a state_dict")
    if arch is None:
        raise ValueError(f"{path} holds a state_dict; say which architecture it belongs to with arch='module:Class'")
    model = _build(arch, arch_kwargs, also_in=[Path(path).parent])
    _fit(model, obj, path, arch, arch_kwargs)
    return model.eval()


__all__ = ["load_model", "resolve_arch", "is_torchscript", "strip_ansi"]
