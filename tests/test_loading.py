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
