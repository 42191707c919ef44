"""The bodies of inv broker, worker, workers and submit (signal4.commands.workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signal4.codes import EXIT_USAGE
from signal4.commands import workers as workercli
from signal4.envs import layout
from signal4.envs.manifest import Manifest
from tests.conftest import ROOT
from tests.helpers.cluster import GUARD, inv


def test_worker_command_uses_the_envs_interpreter(project_manifest: Manifest) -> None:
    cmd = workercli.worker_command(project_manifest, "diarize", concurrency=1)
    assert cmd[0] == str(layout.spec(project_manifest, "diarize").python)
    assert cmd[1:3] == ["-m", "celery"]
    assert cmd[cmd.index("--queues") + 1] == "signal4.diarize"
    assert project_manifest.pool_size("download") == 2


def test_a_workers_steps_get_their_share_of_the_cpus(
    project_manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signal4 import cpu

    monkeypatch.delenv("SIGNAL4_THREADS", raising=False)
    monkeypatch.setattr(cpu, "available", lambda: 4)
    url = "redis://127.0.0.1:6390/0"
    env = workercli.worker_environ(project_manifest, "transcribe", concurrency=2, url=url)
    assert (env["SIGNAL4_THREADS"], env["SIGNAL4_BROKER_URL"]) == ("2", url)
    env = workercli.worker_environ(project_manifest, "stitch", concurrency=8, url=url)
    assert env["SIGNAL4_THREADS"] == "1"
    # the user's own setting wins
    monkeypatch.setenv("SIGNAL4_THREADS", "3")
    env = workercli.worker_environ(project_manifest, "transcribe", concurrency=2, url=url)
    assert env["SIGNAL4_THREADS"] == "3"


def test_inv_with_a_malformed_broker_url_says_so_on_one_line() -> None:
    for args in (
        ("submit", "--broker", "notaurl", "stitch", "--", "--content", "x"),
        ("submit", "--broker", "redis://host:notaport/0", "stitch", "--", "--content", "x"),
        ("workers", "--broker", "notaurl"),
        ("worker", "stitch", "--broker", "redis://host:notaport/0"),
        ("pipeline", "--workers", "--broker", "notaurl"),
    ):
        got = inv(*args)
        assert got.returncode == EXIT_USAGE, (args, got.stderr)
        assert len(got.stderr.strip().splitlines()) == 1, (args, got.stderr)
        assert "is not a broker URL" in got.stderr and "Traceback" not in got.stderr
    got = inv("workers", env={"SIGNAL4_BROKER_URL": "notaurl"})
    assert got.returncode == EXIT_USAGE and "SIGNAL4_BROKER_URL" in got.stderr, got.stderr


def test_an_env_that_is_not_synced_is_refused(second_checkout: Path) -> None:
    got = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(second_checkout), "worker", "convert"],
        capture_output=True,
        text=True,
        cwd=second_checkout,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
        timeout=GUARD,
    )
    assert got.returncode == 2 and "inv sync convert" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr


def test_celery_stays_off_the_inv_list_path() -> None:
    code = (
        "import sys, runpy; sys.argv=['inv','--list']; import tasks; print('celery' in sys.modules)"
    )
    got = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == "False"
