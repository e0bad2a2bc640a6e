"""Model files load without executing code unless trusted."""

import pickle

import pytest
import torch

from probekit import load_model
from probekit.testing import ToyConv


class _Evil:
    def __reduce__(self):
        return (exec, ("import builtins; builtins.PROBEKIT_PWNED = True",))


def test_state_dict_with_arch(tmp_path):
    model = ToyConv(seed=3)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path, arch="probekit.testing:ToyConv")
    x = torch.rand(2, 4, 10)
    assert torch.allclose(loaded(x), model(x))
    loaded2 = load_model(path, arch=lambda: ToyConv(seed=9))
    assert torch.allclose(loaded2(x), model(x))


def test_state_dict_without_arch_asks_for_one(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(ToyConv().state_dict(), path)
    with pytest.raises(ValueError, match="arch="):
        load_model(path)


def test_torchscript(tmp_path):
    model = ToyConv()
    path = tmp_path / "m.ts"
    torch.jit.script(model).save(str(path))
    loaded = load_model(path)
    x = torch.rand(2, 4, 10)
    assert torch.allclose(loaded(x), model(x))


def test_pickle_never_runs_without_trust(tmp_path):
    import builtins

    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump(_Evil(), handle)
    with pytest.raises(ValueError, match="trust=True"):
        load_model(path)
    assert not getattr(builtins, "PROBEKIT_PWNED", False)


def test_full_module_needs_trust(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(ToyConv(), path)
    with pytest.raises(ValueError, match="trust=True"):
        load_model(path)
    assert type(load_model(path, trust=True)).__name__ == "ToyConv"


def test_bad_arch_strings(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(ToyConv().state_dict(), path)
    with pytest.raises(ValueError):
        load_model(path, arch="no_colon")
    with pytest.raises(ImportError):
        load_model(path, arch="no_such_module_xyz:Net")
    with pytest.raises(AttributeError):
        load_model(path, arch="probekit.testing:Nope")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv1d(4, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(-1)
'''


@pytest.fixture
def module_in_cwd(tmp_path, monkeypatch):
    """A ``mymodel.py`` in the working directory, which is not on ``sys.path``; returns its Net class."""
    import importlib.util
    import os
    import sys

    (tmp_path / "mymodel.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    monkeypatch.delitem(sys.modules, "mymodel", raising=False)
    spec = importlib.util.spec_from_file_location("_mymodel_copy", tmp_path / "mymodel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net


def test_arch_module_is_found_in_the_working_directory(tmp_path, module_in_cwd):
    import sys

    path = tmp_path / "m.pt"
    model = module_in_cwd(channels=6)
    torch.save(model.state_dict(), path)
    loaded = load_model(path, arch="mymodel:Net", arch_kwargs={"channels": 6})
    x = torch.rand(2, 4, 10)
    assert torch.allclose(loaded(x), model(x))
    assert str(tmp_path) not in sys.path  # the working directory is on the path only while importing


def test_arch_module_next_to_the_model_file_is_found_from_another_folder(tmp_path, module_in_cwd, monkeypatch):
    import sys

    path = tmp_path / "m.pt"
    model = module_in_cwd(channels=6)
    torch.save(model.state_dict(), path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_model(path, arch="mymodel:Net", arch_kwargs={"channels": 6})
    x = torch.rand(2, 4, 10)
    assert torch.allclose(loaded(x), model(x))
    assert str(tmp_path) not in sys.path and str(elsewhere) not in sys.path
    monkeypatch.delitem(sys.modules, "mymodel")
    with pytest.raises(ImportError, match=f"looked in the current folder {elsewhere}, {tmp_path / 'sub'} and"):
        (tmp_path / "sub").mkdir()
        torch.save(model.state_dict(), tmp_path / "sub" / "m.pt")
        load_model(tmp_path / "sub" / "m.pt", arch="mymodel:Net", arch_kwargs={"channels": 6})


def test_missing_arch_module_says_where_it_looked(tmp_path, module_in_cwd):
    path = tmp_path / "m.pt"
    torch.save(module_in_cwd().state_dict(), path)
    with pytest.raises(ImportError, match=f"looked in the current folder {tmp_path}"):
        load_model(path, arch="mymodl:Net")


def test_wrong_constructor_arguments_are_named(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(ToyConv(channels=6).state_dict(), path)
    with pytest.raises(RuntimeError, match=r"conv\.weight: \(6, 4, 5\) in the file, \(8, 4, 5\) in the model") as caught:
        load_model(path, arch="probekit.testing:ToyConv")
    assert "arch_kwargs" in str(caught.value)
    with pytest.raises(TypeError, match="cannot build arch 'probekit.testing:ToyConv' with arch_kwargs"):
        load_model(path, arch="probekit.testing:ToyConv", arch_kwargs={"chanels": 6})
    assert load_model(path, arch="probekit.testing:ToyConv", arch_kwargs={"channels": 6}).conv.out_channels == 6


def test_torchscript_with_arch_loads_as_torchscript(tmp_path):
    from probekit import ProbekitWarning

    model = ToyConv()
    path = tmp_path / "m.ts"
    torch.jit.script(model).save(str(path))
    with pytest.warns(ProbekitWarning, match="TorchScript file, which carries its own architecture"):
        loaded = load_model(path, arch="probekit.testing:ToyConv")
    x = torch.rand(2, 4, 10)
    assert isinstance(loaded, torch.jit.ScriptModule) and torch.allclose(loaded(x), model(x))


def test_refusals_name_the_pickled_class_without_escape_codes(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(ToyConv(), path)
    with pytest.raises(ValueError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "holds a pickled probekit.testing.ToyConv" in message and "trust=True" in message
    assert "\x1b" not in message and "\n" not in message
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="neither TorchScript nor a state_dict") as caught:
        load_model(junk)
    assert "\n" not in str(caught.value)
