"""The Celery configuration, payloads, result mapping and routing checks, without a broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.commands import workers as workercli
from signal4.envs import layout
from signal4.envs.manifest import Manifest
from signal4.stepkit import protocol
from signal4.stepkit.step import InvalidInput
from signal4.workers import broker, celeryapp, wire
from signal4.workers import submit as submit_mod
from signal4.workers import worker as worker_mod
from tests.conftest import ROOT


def test_queues_routes_and_limits_come_from_the_manifest(project_manifest: Manifest) -> None:
    conf = celeryapp.config(project_manifest, "redis://example:6379/0")
    assert {q.name for q in conf["task_queues"]} == {f"signal4.{e}" for e in project_manifest.envs}
    for task in project_manifest.tasks.values():
        assert conf["task_routes"][f"signal4.{task.name}"] == {"queue": f"signal4.{task.env}"}
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["result_backend"] == conf["broker_url"] == "redis://example:6379/0"
    longest = max(t.timeout for t in project_manifest.tasks.values())
    assert conf["broker_transport_options"]["visibility_timeout"] > longest


def test_broker_url_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from signal4.content import settings

    assert celeryapp.broker_url() == celeryapp.DEFAULT_BROKER
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "redis://elsewhere:1/2")
    settings.get.cache_clear()
    assert celeryapp.broker_url() == "redis://elsewhere:1/2"
    assert celeryapp.broker_url("redis://given:3/0") == "redis://given:3/0"


def test_payloads() -> None:
    assert worker_mod.split_payload([["--content", "a"]], {}) == (None, ["--content", "a"])
    prev = {"status": "completed", "content": "a"}
    assert worker_mod.split_payload([prev, []], {}) == (prev, [])
    for bad in ([], [42], [["--x", 1]], [1, 2, 3], ["text", []]):
        with pytest.raises(InvalidInput):
            worker_mod.split_payload(bad, {})
    with pytest.raises(InvalidInput, match="keyword"):
        worker_mod.split_payload([[]], {"x": 1})
    assert protocol.content_of({"contents": ["b", "c"]}) == "b"


def test_a_malformed_payload_is_an_invalid_input_result(project_manifest: Manifest) -> None:
    got = worker_mod.run_payload(project_manifest.task("stitch"), [{"x": 1}], {})
    assert got["status"] == Status.INVALID_INPUT and "malformed" in got["error"]
    stopped = worker_mod.run_payload(
        project_manifest.task("stitch"), [{"status": "failed", "step": "convert"}, []], {}
    )
    assert stopped["status"] == Status.FAILED and "not run" in stopped["error"]


def test_results_map_to_the_dispatchers_outcome(project_manifest: Manifest) -> None:
    task = project_manifest.task("stitch")
    ok = submit_mod.as_outcome(task, "SUCCESS", {"status": "completed", "step": "stitch"}, 1.0)
    assert (ok.status, ok.exit_code, ok.ok) == ("completed", 0, True)
    bad = submit_mod.as_outcome(task, "SUCCESS", {"status": "invalid_input", "error": "no"}, 1.0)
    assert (bad.status, bad.exit_code, bad.error) == ("invalid_input", 2, "no")

    class TimeLimitExceeded(Exception):
        pass

    hard = submit_mod.as_outcome(task, "FAILURE", TimeLimitExceeded(610), 1.0)
    assert (hard.status, hard.exit_code) == (Status.TIMED_OUT, codes.EXIT_TIMEOUT)
    assert hard.error == "timed out: killed at the hard time limit (610)"
    odd = submit_mod.as_outcome(task, "SUCCESS", "not a dict", 1.0)
    assert odd.status == Status.FAILED and odd.result["status"] == Status.FAILED
    assert odd.error == "the worker returned no result object: 'not a dict'"
    # any other failure of the task is a failure (exit 1), never a timeout
    crash = submit_mod.as_outcome(task, "FAILURE", ValueError("boom"), 1.0)
    assert (crash.status, crash.exit_code) == (Status.FAILED, 1)
    assert crash.error == "FAILURE: ValueError: boom"
    assert crash.result == {"status": "failed", "step": "stitch", "error": crash.error}


def test_drift_and_missing_workers_are_refused() -> None:
    def info(env: str, lock: str) -> submit_mod.WorkerInfo:
        return submit_mod.WorkerInfo("n@box", "box", env, lock, "1", 0)

    submit_mod.check_route("stitch", [info("stitch", "aaa")], "aaa")
    with pytest.raises(wire.DriftError, match=r"host box serves env 'stitch'"):
        submit_mod.check_route("stitch", [info("stitch", "aaa"), info("stitch", "bbb")], "aaa")
    with pytest.raises(wire.NoWorkerError, match="inv worker convert"):
        submit_mod.check_route("convert", [info("stitch", "aaa")], "aaa")


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


def test_the_local_broker_listens_on_loopback_only(tmp_path: Path) -> None:
    local = broker.LocalBroker(tmp_path, 6390)
    cmd = broker.command(local, "/usr/bin/redis-server")
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert local.url == "redis://127.0.0.1:6390/0"
    assert local.pid() is None and not broker.stop(local)


def test_a_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker.shutil, "which", lambda _name: None)
    monkeypatch.setattr(broker, "Path", lambda _p: Path("/nonexistent/redis-server"))
    with pytest.raises(broker.BrokerError, match="apt-get install redis-server"):
        broker.find_server()


def test_celery_stays_off_the_inv_list_path() -> None:
    code = (
        "import sys, runpy; sys.argv=['inv','--list']; import tasks; print('celery' in sys.modules)"
    )
    got = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == "False"
