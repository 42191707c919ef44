"""syncer: check-only runs, and a sync interrupted by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signal4.envs import syncer
from signal4.envs import venv as envs
from signal4.envs.manifest import Manifest
from signal4.run import dispatch
from tests.conftest import ROOT
from tests.helpers.demo import make_demo


def test_check_names_why_an_unsupported_env_is_skipped(project_manifest: Manifest) -> None:
    unsupported = [e for e in project_manifest.envs.values() if not e.supported()]
    if not unsupported:
        pytest.skip("every env of the manifest is built on this platform")
    specs = [envs.spec(project_manifest, e.name) for e in unsupported]
    for result in syncer.check_all(project_manifest, specs):
        assert result.action == "skipped"
        assert result.error == "not supported on this platform"
        assert result.ok  # skipping what cannot be built here is not a failure


SLOW_UV = """#!{python}
import os, sys, time
open(sys.argv[0] + ".pid", "w").write(str(os.getpid()))
time.sleep(120)  # a uv sync that takes its time; SIGTERM ends it (default action)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_sync_reaches_uv_and_the_lock_waits_for_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    (tmp_path / "demo").mkdir()
    demo = make_demo(tmp_path / "demo")
    alpha = envs.spec(demo, "alpha")
    assert syncer.sync_one(demo, alpha).action == "synced"  # a good env, with its stamp
    uv = tmp_path / "uv"
    uv.write_text(SLOW_UV.format(python=sys.executable))
    uv.chmod(0o755)
    pidfile = Path(str(uv) + ".pid")
    environ = {**os.environ, "UV": str(uv), "NO_COLOR": "1"}
    inv = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "inv"),
            "--search-root",
            str(ROOT),
            "sync",
            "alpha",
            "--force",
        ],
        cwd=demo.root,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signal goes to inv alone, not to a process group
    )
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.exists(), "the stand-in uv never started"
    uv_pid = int(pidfile.read_text())
    inv.send_signal(sig)
    _out, err = inv.communicate(timeout=60)
    assert inv.returncode == 128 + sig.value, err
    assert f"interrupted by {sig.name}" in err and "Traceback" not in err
    # uv was told too, and inv waited for it before it let go of the sync lock
    with pytest.raises(ProcessLookupError):
        os.kill(uv_pid, 0)
    # the stamp went before uv started: the half-synced env is stale, and refused
    assert envs.status(demo, alpha) is envs.State.STALE
    with pytest.raises(envs.EnvError, match="stale"):
        dispatch.run(demo, demo.task("hello"))
