"""The machine and tools the figures come from."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from signal4.envs import layout
from signal4.envs.manifest import Manifest
from signal4.measure.doc import Machine


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return platform.processor()
    return ""


def _uv_version(uv: str) -> str:
    try:
        return subprocess.run(
            [uv, "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _envs_python(manifest: Manifest) -> str:
    """The envs' interpreter version, from the first env's ``pyvenv.cfg`` (else ours)."""
    python = platform.python_version()
    for env in manifest.supported_envs():
        cfg = layout.spec(manifest, env.name).venv / "pyvenv.cfg"
        if cfg.is_file():
            for line in cfg.read_text(encoding="utf-8").splitlines():
                if line.startswith("version_info"):
                    python = line.split("=", 1)[1].strip()
            break
    return python


def machine_info(manifest: Manifest, uv: str) -> Machine:
    """Describe the machine and tools, with the load average now (the run's start)."""
    return Machine(
        nproc=os.cpu_count(),
        cpu=_cpu(),
        platform=f"{platform.system()} {platform.machine()} {platform.release()}",
        python=_envs_python(manifest),
        uv=_uv_version(uv),
        uv_path=uv,
        loadavg_start=os.getloadavg(),
    )
