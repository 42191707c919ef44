"""The warm worker (signal4.workers.worker): payloads, ping, time limits, its lifecycle.

Fast tests call the worker's functions in this process. Slow ones run real workers
(``inv worker``, each in its env's own interpreter) on the session's Redis (see
tests/workers/conftest.py); a test that disturbs a worker uses its own Redis database.
Timeouts here are failure guards, never assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import wave
from typing import Any

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.envs import layout, manifest
from signal4.envs.manifest import Manifest
from signal4.stepkit import protocol
from signal4.stepkit.step import InvalidInput
from signal4.workers import broker as broker_mod
from signal4.workers import celeryapp
from signal4.workers import submit as submit_mod
from signal4.workers import worker as worker_mod
from tests.helpers import speech
from tests.helpers.cluster import (
    GUARD,
    LIGHT_ENVS,
    Cluster,
    free_port,
    inv,
    meta_once,
    no_partial_output,
    send,
    wait_for,
)
from tests.helpers.steps import store


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


def test_a_chained_step_takes_the_content_of_the_previous_result(
    project_manifest: Manifest,
) -> None:
    stitch = project_manifest.task("stitch")
    previous = {"status": "completed", "step": "diarize", "content": "talk-a"}
    got = worker_mod.run_payload(stitch, [previous, []], {})
    # the step ran on the previous result's content (which has no words yet)
    assert got["status"] == Status.INVALID_INPUT and "'talk-a'" in got["error"], got
    # a --content of the task's own is kept
    got = worker_mod.run_payload(stitch, [previous, ["--content", "talk-b"]], {})
    assert "'talk-b'" in got["error"] and "talk-a" not in got["error"], got


def test_a_task_without_a_step_is_refused(project_manifest: Manifest) -> None:
    service = project_manifest.task("mlx_server")  # a service: its module has no STEP
    with pytest.raises(InvalidInput, match="defines no STEP"):
        worker_mod.load_step(service)


class Ready:
    """A step's ready probe that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def ready(self) -> None:
        self.calls += 1


def test_ping_says_the_step_is_ready_after_its_nap(
    project_manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Ready()
    monkeypatch.setattr(worker_mod, "load_step", lambda task: probe)
    naps: list[float] = []
    got = worker_mod.ping(project_manifest, "stitch", ["stitch", 2.5], sleep=naps.append)
    assert (got["status"], got["step"], got["ready"], got["env"]) == (
        Status.COMPLETED,
        "stitch",
        True,
        "stitch",
    )
    assert (got["host"], got["pid"]) == (socket.gethostname(), os.getpid())
    assert probe.calls == 1 and naps == [2.5]
    worker_mod.ping(project_manifest, "stitch", ["stitch"], sleep=naps.append)
    assert probe.calls == 2 and naps == [2.5]  # no nap asked: none taken


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ([], "expected [task] or [task, seconds]"),
        ([3], "expected [task] or [task, seconds]"),
        (["stitch", 1, 2], "expected [task] or [task, seconds]"),
        (["no_such_task"], "no_such_task"),
        (["convert"], "runs in env 'convert', not 'stitch'"),
        (["stitch", "long"], "long"),
    ],
)
def test_ping_refuses_a_bad_payload_without_loading_the_step(
    project_manifest: Manifest, monkeypatch: pytest.MonkeyPatch, payload: list[Any], why: str
) -> None:
    probe = Ready()
    monkeypatch.setattr(worker_mod, "load_step", lambda task: probe)
    got = worker_mod.ping(project_manifest, "stitch", payload, sleep=lambda _s: None)
    assert got["status"] == Status.INVALID_INPUT and got["step"] == "ping"
    assert got["error"].startswith("ping: ") and why in got["error"], got
    assert probe.calls == 0


def test_a_timed_out_result_keeps_the_content_and_names_the_limit(
    project_manifest: Manifest,
) -> None:
    stitch = project_manifest.task("stitch")
    got = worker_mod.timed_out(stitch, 3, {"content": "a", "seconds": 3.2, "error": "x"})
    assert got == {
        "status": Status.TIMED_OUT,
        "step": "stitch",
        "error": "timed out after 3 s (soft time limit)",
        "content": "a",
        "seconds": 3.2,
    }
    bare = worker_mod.timed_out(stitch, None)
    assert bare["error"] == f"timed out after {stitch.timeout:g} s (soft time limit)"
    assert "content" not in bare
    status, code, _ = protocol.verdict(got)
    assert (status, code) == (Status.TIMED_OUT, codes.EXIT_TIMEOUT)


def test_the_announced_lock_is_the_envs_stamp_unless_overridden(
    project_manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signal4.content import settings

    monkeypatch.setattr(layout, "read_stamp", lambda env: {"lock": "stamped0123456789"})
    assert worker_mod.announced_lock(project_manifest, "stitch") == "stamped0123456789"
    monkeypatch.setattr(layout, "read_stamp", lambda env: None)  # never synced
    assert worker_mod.announced_lock(project_manifest, "stitch") == layout.lock_hash(
        project_manifest
    )
    monkeypatch.setenv("SIGNAL4_WORKER_LOCK_HASH", "0123456789abcdef")
    settings.get.cache_clear()
    assert worker_mod.announced_lock(project_manifest, "stitch") == "0123456789abcdef"


def test_the_soft_limit_flag_sees_the_signal_whatever_the_step_does() -> None:
    from billiard.pool import SIG_SOFT_TIMEOUT

    class Soft(Exception):
        pass

    def pool_handler(signum: int, frame: Any) -> None:
        raise Soft

    before = signal.signal(SIG_SOFT_TIMEOUT, pool_handler)
    try:
        flag = worker_mod.SoftLimitFlag()
        flag.arm()
        assert not flag.fired
        with pytest.raises(RuntimeError):
            try:
                os.kill(os.getpid(), SIG_SOFT_TIMEOUT)
                time.sleep(5)  # the handler raises before this ends
            except Soft as exc:  # a step wrapping it, as transcribe does
                raise RuntimeError("Whisper failed") from exc
        assert flag.fired
        flag.arm()  # the next task starts clean, with the handler kept once
        assert not flag.fired and signal.getsignal(SIG_SOFT_TIMEOUT) == flag.on_signal
    finally:
        signal.signal(SIG_SOFT_TIMEOUT, before)


@pytest.mark.slow
def test_malformed_payload_is_an_error_result_and_the_worker_lives_on(
    shared: Cluster, m: manifest.Manifest
) -> None:
    bad = send(shared, "signal4.stitch", (42,), "signal4.stitch").get(timeout=GUARD)
    assert bad["status"] == Status.INVALID_INPUT and "malformed task payload" in bad["error"]
    flag = send(
        shared, "signal4.stitch", (["--content", "x", "--no-such-flag"],), "signal4.stitch"
    ).get(timeout=GUARD)
    assert flag["status"] == Status.INVALID_INPUT and "--no-such-flag" in flag["error"]
    # a task name no worker knows is dropped by the worker (submit refuses it up front)
    send(shared, "signal4.no_such_task", ([],), "signal4.stitch")
    ping = send(shared, celeryapp.PING, ("stitch",), "signal4.stitch").get(timeout=GUARD)
    assert ping["ready"] is True
    assert all(p.poll() is None for p in shared.procs[: len(LIGHT_ENVS)])


@pytest.mark.slow
def test_a_time_limit_is_enforced(shared: Cluster, m: manifest.Manifest) -> None:
    task = m.task("stitch")
    app = celeryapp.create(m, shared.url())
    sig = app.signature(
        celeryapp.PING, args=("stitch", 60), queue=task.queue, soft_time_limit=1, time_limit=30
    )
    res = sig.apply_async()
    res.get(timeout=GUARD, propagate=False)
    outcome = submit_mod.as_outcome(task, res.state, res.result, 0.0)
    assert outcome.status == Status.TIMED_OUT and outcome.exit_code == codes.EXIT_TIMEOUT
    # the manifest's timeout becomes the task's soft limit, plus a grace for the hard one
    assert celeryapp.limits(task) == (task.timeout, task.timeout + celeryapp.HARD_LIMIT_GRACE)
    assert celeryapp.limits(m.task("mlx_server")) == (None, None)


@pytest.mark.slow
def test_a_killed_worker_process_gets_its_task_again(shared: Cluster, m: manifest.Manifest) -> None:
    # a nap: deterministic proof that the task is redelivered to a new pool process
    res = send(shared, celeryapp.PING, ("convert", 3), "signal4.convert")
    info = wait_for("the ping to start", lambda: res.state == "STARTED" and res.info)
    os.kill(int(info["pid"]), signal.SIGKILL)
    again = res.get(timeout=GUARD)
    assert again["ready"] is True and again["pid"] != info["pid"]

    # a real step killed mid-run: it runs again, and nothing partial is left behind
    big = shared.data.parent / "long.wav"
    with wave.open(str(big), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44_100)
        w.writeframes(b"\x01\x00" * 2 * 44_100 * 600)
    res = submit_mod.submit(
        m, m.task("convert"), ["--input", str(big), "--content", "long"], broker=shared.url()
    )
    meta = wait_for("convert to start", lambda: meta_once(res, ("STARTED", "SUCCESS")))
    if meta["status"] == "STARTED":  # (a very fast machine may be done already)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(meta["result"]["pid"]), signal.SIGKILL)
    outcome = submit_mod.wait(m.task("convert"), res)
    assert outcome.status == Status.COMPLETED, outcome
    folder = store().folder("long")
    assert (folder / "audio.wav").is_file() and len(list((folder / "chunks").iterdir())) == 3
    no_partial_output(folder)


@pytest.mark.slow
def test_sigterm_is_a_warm_shutdown(shared: Cluster, m: manifest.Manifest) -> None:
    db_index = shared.fresh_db()
    proc = shared.start_worker("stitch", db_index=db_index)
    app = celeryapp.create(m, shared.url(db_index))
    res = app.send_task(celeryapp.PING, args=("stitch", 2), queue="signal4.stitch")
    wait_for("the ping to start", lambda: res.state == "STARTED")
    proc.send_signal(signal.SIGTERM)
    assert res.get(timeout=GUARD)["ready"] is True  # the running task finished
    assert proc.wait(timeout=GUARD) == 0
    assert not [w for w in submit_mod.live_workers(shared.url(db_index)) if w.env == "stitch"]


@pytest.mark.slow
def test_workers_reconnect_when_redis_restarts(
    redis_server: broker_mod.LocalBroker,
    synced: manifest.Manifest,
    m: manifest.Manifest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # a Redis of its own, to restart (redis_server: skipped where there is no redis-server)
    own = broker_mod.LocalBroker(tmp_path_factory.mktemp("restarted"), free_port())
    broker_mod.start(own)
    c = Cluster(own, tmp_path_factory.mktemp("restarted-data") / "data")
    try:
        proc = c.start_worker("stitch")
        app = celeryapp.create(m, c.url())
        running = app.send_task(celeryapp.PING, args=("stitch", 2), queue="signal4.stitch")
        queued = app.send_task(celeryapp.PING, args=("stitch",), queue="signal4.stitch")
        wait_for("the ping to start", lambda: running.state == "STARTED")
        broker_mod.stop(own)  # Redis saves its append-only file and exits
        broker_mod.start(own)
        # the submitter polls result keys: a pub/sub subscription would not survive the restart
        assert submit_mod.poll(running) == ("SUCCESS", running.result)
        assert running.result["ready"] is True
        assert submit_mod.poll(queued)[1]["ready"] is True  # not lost
        after = app.send_task(celeryapp.PING, args=("stitch",), queue="signal4.stitch")
        assert submit_mod.poll(after)[1]["ready"] is True
        assert proc.poll() is None
        assert c.stop(proc) == 0
    finally:
        for p in c.procs:
            c.stop(p)
        broker_mod.stop(own)


@pytest.mark.slow
def test_a_soft_time_limit_is_timed_out_whatever_the_step_makes_of_it(
    shared: Cluster, m: manifest.Manifest
) -> None:
    # transcribe wraps every Whisper error in StepFailure("Whisper failed…: <exc>"), the
    # soft time limit's SoftTimeLimitExceeded too (the transcribe env: synced by `cluster`)
    db_index = shared.fresh_db()
    url = shared.url(db_index)
    proc = shared.start_worker("transcribe", db_index=db_index)
    speech.converted("long-talk", speech.sample_frames() * 16)  # one chunk of 280 s of speech
    sent = ("submit", "transcribe", "--broker", url, "--timeout", "3")
    got = inv(*sent, "--", "--content", "long-talk", "--rewrite")
    assert got.returncode == codes.EXIT_TIMEOUT, (got.stdout, got.stderr)
    result = json.loads(got.stdout.strip().splitlines()[-1])
    assert result["status"] == Status.TIMED_OUT and "soft time limit" in result["error"]
    assert result["content"] == "long-talk"
    assert shared.stop(proc) == 0
