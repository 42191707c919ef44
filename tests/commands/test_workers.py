"""The bodies of inv broker, worker, workers and submit (signal4.commands.workers).

Most tests call the command functions in this process, in the checkout's folder as inv
does; one runs the real ``inv`` to prove the CLI path turns their errors into one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from signal4.codes import EXIT_USAGE
from signal4.commands import workers as workercli
from signal4.content import settings
from signal4.envs import layout
from signal4.envs.manifest import Manifest
from signal4.workers import wire
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


def _pipeline_on_workers(broker: str) -> Callable[[], int]:
    from signal4.commands import pipeline as pipeline_cmd

    return lambda: pipeline_cmd.main([], workers=True, broker=broker)


def test_a_malformed_broker_url_is_a_one_line_usage_error_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # where inv runs them

    def no_exec(*args: object) -> None:
        raise AssertionError(f"inv worker would have started a worker: {args[0]}")

    monkeypatch.setattr(os, "execve", no_exec)
    calls: list[Callable[[], int]] = [
        lambda: workercli.submit("stitch", ["--content", "x"], broker_url="notaurl"),
        lambda: workercli.submit(
            "stitch", ["--content", "x"], broker_url="redis://host:notaport/0"
        ),
        lambda: workercli.workers("notaurl"),
        lambda: workercli.worker("stitch", broker_url="redis://host:notaport/0"),
        _pipeline_on_workers("notaurl"),
    ]
    for call in calls:
        with pytest.raises(wire.BadBrokerUrl) as err:
            call()
        assert err.value.code == EXIT_USAGE
        assert "is not a broker URL" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "notaurl")
    settings.get.cache_clear()
    with pytest.raises(wire.BadBrokerUrl) as err:
        workercli.workers()
    assert err.value.code == EXIT_USAGE and "SIGNAL4_BROKER_URL" in str(err.value)


def test_inv_says_a_malformed_broker_url_on_one_line() -> None:
    got = inv("workers", "--broker", "notaurl")
    assert got.returncode == EXIT_USAGE, got.stderr
    assert len(got.stderr.strip().splitlines()) == 1, got.stderr
    assert "is not a broker URL" in got.stderr and "Traceback" not in got.stderr


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
