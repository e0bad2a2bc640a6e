"""probekit.scale after a crashed driver: a SIGKILL mid-run leaves only whole shards, and a rerun reuses them.

The driver runs in a subprocess (in its own process group) and stops, by a handshake,
while it writes its second shard: after the shard's files are in its temporary folder
and before the rename that makes it whole. The test then kills it with SIGKILL and
reruns the same call here.
"""

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

from probekit import SequenceModel, scale
from probekit.scale.shards import is_complete
from probekit.testing import ToyConv, random_sequences

pytest.importorskip("pyarrow")

SEQUENCES = random_sequences(8, 10, seed=11)
KEEP = {"shard_size": 2, "settings": {"model": "toy"}, "progress": False, "log": lambda line: None}

# The driver: holds in os.replace of shard 1 (its files written, not yet renamed) once ``writing`` exists.
DRIVER = textwrap.dedent("""
    import functools, os, sys, time
    import torch
    torch.set_num_threads(1)
    from probekit import SequenceModel, scale
    from probekit.testing import ToyConv, random_sequences

    engine, out_dir, writing, ray_dir = sys.argv[1:5]
    replace = os.replace

    def held(src, dst):
        if os.path.basename(str(src)).startswith("shard-000001-"):
            open(writing, "w").close()
            while True:
                time.sleep(60)
        replace(src, dst)

    os.replace = held
    if engine == "ray":
        import ray
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", _temp_dir=ray_dir)
    factory = functools.partial(SequenceModel, ToyConv(), output=1, device="cpu")
    scale.run("ism", random_sequences(8, 10, seed=11), adapter_factory=factory, out_dir=out_dir, engine=engine,
              workers=1 if engine == "ray" else None, shard_size=2, settings={"model": "toy"}, progress=False, trust=True)
""")


def _toy():
    return SequenceModel(ToyConv(), output=1, device="cpu")


def _kill_driver_mid_write(engine: str, out_dir: Path, scratch: Path, ray_dir: str = "") -> None:
    """Start the driver, wait until it holds in the write of shard 1, SIGKILL its process group."""
    script, writing = scratch / "driver.py", scratch / "writing"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), engine, str(out_dir), str(writing), ray_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not writing.exists():
            if driver.poll() is not None:
                pytest.fail(f"the driver ended before the handshake: {driver.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the driver never reached the write of shard 1")
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        driver.stderr.close()


def _check_rerun(out_dir: Path, tmp_path: Path) -> None:
    """What the kill left, then a rerun here: shard 0 reused, shard 1 computed again, the result of a whole run."""
    folders = sorted(p.name for p in out_dir.iterdir() if p.name.startswith("shard-"))
    assert [name[:12] for name in folders] == ["shard-000000", "shard-000001"], folders
    assert is_complete(out_dir / folders[0]) and folders[1].endswith(".tmp")
    assert not is_complete(out_dir / folders[1].removesuffix(".tmp"))  # killed mid-write: its files there, not renamed
    resumed = scale.run("ism", SEQUENCES, adapter_factory=_toy, out_dir=out_dir, **KEEP)
    whole = scale.run("ism", SEQUENCES, adapter_factory=_toy, out_dir=tmp_path / "whole", **KEEP)
    assert (resumed.n_reused, resumed.n_done, resumed.n_failed) == (1, 3, 0)
    assert resumed.result.ids == whole.result.ids == [f"seq{i}" for i in range(8)]
    assert torch.equal(resumed.result.effects, whole.result.effects)
    assert torch.equal(resumed.result.reference, whole.result.reference)
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_killed_local_driver_resumes_from_its_whole_shards(tmp_path):
    _kill_driver_mid_write("local", tmp_path / "shards", tmp_path)
    _check_rerun(tmp_path / "shards", tmp_path)


def _session_processes(ray_dir: str) -> list[int]:
    """Processes of the Ray session under ``ray_dir`` (their command lines name it), other than this one."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if ray_dir.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _end_session(ray_dir: str) -> list[int]:
    """SIGKILL what is left of the Ray session under ``ray_dir``; the processes that would not end."""
    deadline = time.monotonic() + 10
    while _session_processes(ray_dir) and time.monotonic() < deadline:
        for pid in _session_processes(ray_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
    return _session_processes(ray_dir)


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the killed session's processes in /proc")
def test_a_killed_ray_driver_resumes_and_leaves_no_ray_behind(tmp_path):
    pytest.importorskip("ray")
    ray_dir = tempfile.mkdtemp(prefix="pkray")  # short: Ray's socket paths must fit in 107 characters
    try:
        _kill_driver_mid_write("ray", tmp_path / "shards", tmp_path, ray_dir)
    finally:
        left = _end_session(ray_dir)  # only this session's processes: a Ray of other tests is left alone
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert not left, f"Ray processes of the killed driver would not end: {left}"
    _check_rerun(tmp_path / "shards", tmp_path)
