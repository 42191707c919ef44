"""``inv run <task> -- --help``: the step's help, exit 0, no error line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signal4.envs import layout, manifest, venv

ROOT = Path(__file__).resolve().parents[2]
INV = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]


@pytest.mark.parametrize(("task", "option"), [("convert", "--chunk-seconds"), ("stitch", "-h")])
def test_inv_run_help_shows_the_steps_help_and_exits_zero(task: str, option: str) -> None:
    m = manifest.load(ROOT)
    env = m.task(task).env
    if venv.status(m, layout.spec(m, env)) is not venv.State.UP_TO_DATE:
        # a fresh clone has no env yet: build the one this test needs (a no-op later)
        synced = subprocess.run([*INV, "sync", env], cwd=ROOT, capture_output=True, text=True)
        assert synced.returncode == 0, synced.stdout + synced.stderr
    flag = "--help" if option.startswith("--") else option
    proc = subprocess.run(
        [*INV, "run", task, "--", flag], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m signal4.processing_steps.{task}")
    assert "--rewrite" in proc.stdout
    if option.startswith("--"):
        assert option in proc.stdout
    # nothing but the help: no error line, no JSON result line for a human to puzzle over
    assert proc.stderr == ""
    assert not proc.stdout.strip().splitlines()[-1].startswith("{")
