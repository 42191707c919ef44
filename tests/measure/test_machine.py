"""The machine facts a measurement carries: the envs' interpreter, uv's version."""

from __future__ import annotations

import os
import platform
import stat
from pathlib import Path

from signal4.envs import manifest
from signal4.measure import machine

DATA = {
    "project": {"optional-dependencies": {"a": ["pysbd"], "b": ["pysbd2"]}},
    "tool": {"signal4": {"envs": {"a": {}, "b": {}}, "tasks": []}},
}


def test_the_envs_python_comes_from_the_first_env_that_has_one(tmp_path: Path) -> None:
    m = manifest.parse(DATA, tmp_path)
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\necho uv 9.9.9\n")
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
    info = machine.machine_info(m, str(uv))
    assert info.python == platform.python_version()  # no env yet: ours
    assert (info.uv, info.uv_path, info.nproc) == ("uv 9.9.9", str(uv), os.cpu_count())
    assert len(info.loadavg_start) == 3
    cfg = tmp_path / "envs" / "b" / ".venv" / "pyvenv.cfg"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("home = /x\nversion_info = 3.12.1.final.0\n")
    assert machine.machine_info(m, str(uv)).python == "3.12.1.final.0"
    assert machine.machine_info(m, str(tmp_path / "nothing")).uv == "unknown"
