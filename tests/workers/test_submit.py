"""The submitter (signal4.workers.submit): routing checks, paths, waiting, result mapping.

Fast tests need no broker (a closed port stands for one that is down). Slow ones submit to
real workers on the session's Redis (tests/workers/conftest.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from signal4 import codes
from signal4.codes import EXIT_TIMEOUT, Status
from signal4.content import settings
from signal4.envs import manifest
from signal4.envs.manifest import Manifest
from signal4.run import dispatch
from signal4.workers import celeryapp, wire
from signal4.workers import submit as submit_mod
from tests.conftest import ROOT
from tests.helpers import speech
from tests.helpers.cluster import GUARD, SAMPLE, Cluster, free_port, inv, transcribed, wait_for
from tests.helpers.steps import db, store


def test_drift_and_missing_workers_are_refused() -> None:
    def info(env: str, lock: str) -> submit_mod.WorkerInfo:
        return submit_mod.WorkerInfo("n@box", "box", env, lock, "1", 0)

    submit_mod.check_route("stitch", [info("stitch", "aaa")], "aaa")
    with pytest.raises(wire.DriftError, match=r"host box serves env 'stitch'"):
        submit_mod.check_route("stitch", [info("stitch", "aaa"), info("stitch", "bbb")], "aaa")
    with pytest.raises(wire.NoWorkerError, match="inv worker convert"):
        submit_mod.check_route("convert", [info("stitch", "aaa")], "aaa")


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


def test_path_arguments_are_made_absolute_from_the_callers_folder(
    project_manifest: Manifest,
) -> None:
    convert = project_manifest.task("convert")
    here = Path("/somewhere/else")
    home = str(Path("~").expanduser())
    cases = {
        ("--input", "a.wav", "--content", "x"): ["--input", "/somewhere/else/a.wav"],
        ("--input=../a.wav",): ["--input=/somewhere/a.wav"],
        ("--inp", "a.wav"): ["--inp", "/somewhere/else/a.wav"],  # argparse takes a prefix
        ("--input", "/abs/a.wav"): ["--input", "/abs/a.wav"],
        ("--input", "~/a.wav"): ["--input", f"{home}/a.wav"],
        ("--content", "a.wav"): ["--content", "a.wav"],  # not a path
        ("--input",): ["--input"],  # the step says what is missing
    }
    for argv, start in cases.items():
        got = submit_mod.absolute_paths(convert, argv, here)
        assert got[: len(start)] == start, (argv, got)
        assert len(got) == len(argv)
    cookies = submit_mod.absolute_paths(
        project_manifest.task("download_youtube"), ["--url", "u", "--cookies", "c.txt"], here
    )
    assert cookies == ["--url", "u", "--cookies", "/somewhere/else/c.txt"]
    stitch = ["--content", "a"]
    assert submit_mod.absolute_paths(project_manifest.task("stitch"), stitch, here) == stitch


def test_the_watch_reports_when_nothing_moves_and_gives_up_past_the_limit() -> None:
    said: list[str] = []
    watch = submit_mod.Watch(
        "stitch", "signal4.stitch", "t-1", limit=20.0, patience=30.0, margin=60.0, say=said.append
    )
    watch.see("PENDING", None, now=0.0)
    watch.see("PENDING", None, now=29.0)
    assert not said
    watch.see("PENDING", None, now=30.0)
    assert len(said) == 1 and "t-1" in said[0] and "signal4.stitch" in said[0]
    assert "PENDING" in said[0]
    started = {"hostname": "stitch-1@a", "pid": 7}
    watch.see("STARTED", started, now=40.0)  # progress: the clock starts again
    watch.see("STARTED", started, now=100.0)
    assert len(said) == 2 and "STARTED on worker stitch-1@a (pid 7)" in said[1]
    again = {"hostname": "stitch-2@b", "pid": 9}  # put back and started by another worker
    watch.see("STARTED", again, now=110.0)
    watch.see("STARTED", again, now=190.0)  # 80 s: exactly the limit plus the margin
    with pytest.raises(wire.WaitTimeout) as err:
        watch.see("STARTED", again, now=190.5)
    assert err.value.code == EXIT_TIMEOUT
    assert "gave up waiting for stitch (task t-1 on signal4.stitch)" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_task_without_a_time_limit_is_awaited_for_ever(project_manifest: Manifest) -> None:
    said: list[float] = []
    watch = submit_mod.Watch("x", "q", "t", limit=None, patience=30.0)
    watch.say = lambda _: said.append(now)
    for now in range(0, 3600, 5):
        watch.see("STARTED", {"hostname": "x@h", "pid": 1}, now=float(now))  # no WaitTimeout
    assert said[:4] == [30, 90, 210, 450]  # less and less often: a long step is no fault
    assert said[-1] - said[-2] == 600
    stitch = project_manifest.task("stitch")
    assert submit_mod.hard_limit(stitch) == stitch.timeout + celeryapp.HARD_LIMIT_GRACE
    assert submit_mod.hard_limit(stitch, 5) == 5 + celeryapp.HARD_LIMIT_GRACE
    assert submit_mod.hard_limit(stitch, 0) is None


def test_a_worker_is_read_from_what_it_announces() -> None:
    fields = {
        "node": "stitch-7@box",
        "host": "box",
        "env": "stitch",
        "lock": "0123456789abcdef",
        "concurrency": "2",
        "done": "5",
        "root": "/srv/signal4",
        "seen": "1.5",
    }
    assert submit_mod.WorkerInfo.from_fields(fields) == submit_mod.WorkerInfo(
        "stitch-7@box", "box", "stitch", "0123456789abcdef", "2", 5, "/srv/signal4"
    )
    # a worker that has not counted yet (or an older one): what is missing is unknown
    assert submit_mod.WorkerInfo.from_fields({"env": "convert", "done": ""}) == (
        submit_mod.WorkerInfo("?", "?", "convert", "?", "?", 0, "")
    )


def test_a_broker_that_does_not_answer_is_broker_unavailable(
    project_manifest: Manifest,
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(wire.BrokerUnavailable) as err:
        submit_mod.live_workers(down)
    assert err.value.code == codes.EXIT_BROKER
    assert f"the broker at {down} does not answer" in str(err.value)
    assert "start one with: inv broker" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(wire.BrokerUnavailable):  # before anything is sent
        submit_mod.submit(
            project_manifest, project_manifest.task("stitch"), ["--content", "x"], broker=down
        )


def test_publish_turns_a_lost_broker_into_one_error_and_lets_others_through() -> None:
    def lost() -> None:
        raise redis.exceptions.ConnectionError("Connection refused")

    with pytest.raises(wire.BrokerUnavailable, match="the broker at redis://b:1/0 does not"):
        submit_mod.publish(lost, "redis://b:1/0")

    def broken() -> None:
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError):
        submit_mod.publish(broken, "redis://b:1/0")
    assert submit_mod.publish(lambda: "sent", "redis://b:1/0") == "sent"


def test_a_signature_goes_to_the_envs_queue_with_the_tasks_limits(
    project_manifest: Manifest,
) -> None:
    stitch = project_manifest.task("stitch")
    app = submit_mod.submitter(project_manifest, "redis://127.0.0.1:1/0")  # never contacted
    try:
        sig = submit_mod.signature(app, stitch, ("--content", "a"))
        assert (sig.task, sig.args) == ("signal4.stitch", (["--content", "a"],))
        assert sig.options["queue"] == "signal4.stitch" == stitch.queue
        soft, hard = celeryapp.limits(stitch)
        assert (sig.options["soft_time_limit"], sig.options["time_limit"]) == (soft, hard)
        # --timeout replaces the manifest's; --timeout 0 means none
        timed = submit_mod.signature(app, stitch, [], timeout=5)
        assert (timed.options["soft_time_limit"], timed.options["time_limit"]) == (
            5,
            5 + celeryapp.HARD_LIMIT_GRACE,
        )
        unlimited = submit_mod.signature(app, stitch, [], timeout=0)
        assert (unlimited.options["soft_time_limit"], unlimited.options["time_limit"]) == (
            None,
            None,
        )
    finally:
        submit_mod.close_app(app)


class Result:
    """A Celery result whose backend answers with ``metas`` in turn (an exception: raised)."""

    id = "t-1"

    def __init__(self, *metas: Any) -> None:
        self.metas = list(metas)
        self.backend = self
        self.result = {"status": "completed", "step": "stitch"}

    def get_task_meta(self, task_id: str) -> Any:
        meta = self.metas.pop(0)
        if isinstance(meta, BaseException):
            raise meta
        return meta


def test_a_broker_outage_is_ridden_out_for_a_while_then_given_up() -> None:
    gone = redis.exceptions.ConnectionError("Connection refused")
    started = {"status": "STARTED", "result": {"hostname": "stitch-1@a", "pid": 7}}
    result = Result(gone, started, gone, gone)
    outage: dict[str, float] = {}
    assert submit_mod.meta_of(result, outage) is None  # restarting, perhaps: ask again
    assert "since" in outage
    assert submit_mod.meta_of(result, outage) == ("STARTED", started["result"])
    assert outage == {}  # it answered: the outage is over
    assert submit_mod.meta_of(result, outage) is None
    outage["since"] = time.monotonic() - submit_mod.OUTAGE_SECONDS - 1
    with pytest.raises(wire.BrokerUnavailable, match="stopped answering") as err:
        submit_mod.meta_of(result, outage)
    assert err.value.code == codes.EXIT_BROKER


def test_poll_waits_for_a_final_state_and_shows_the_watch_each_other_one() -> None:
    seen: list[tuple[str, Any]] = []

    class Watch:
        def see(self, state: str, info: Any) -> None:
            seen.append((state, info))

    started = {"hostname": "stitch-1@a", "pid": 7}
    result = Result(
        {"status": "PENDING", "result": None},
        redis.exceptions.ConnectionError("restarting"),
        {"status": "STARTED", "result": started},
        {"status": "SUCCESS", "result": {"ignored": "the result's own value counts"}},
    )
    got = submit_mod.poll(result, every=0.0, watch=Watch())  # type: ignore[arg-type]
    assert got == ("SUCCESS", result.result)
    assert seen == [("PENDING", None), ("STARTED", started)]
    assert submit_mod.poll(Result({"status": "REVOKED", "result": None}), every=0.0)[0] == (
        "REVOKED"
    )


def test_the_watch_says_where_a_task_is() -> None:
    watch = submit_mod.Watch("stitch", "signal4.stitch", "t-1", limit=20.0)
    assert watch.describe("PENDING", {}) == "PENDING (queued; no worker has started it)"
    started = {"hostname": "stitch-1@a", "pid": 7}
    assert watch.describe("STARTED", started) == "STARTED on worker stitch-1@a (pid 7)"
    assert watch.describe("STARTED", {}) == "STARTED"
    assert watch.describe("RETRY", started) == "RETRY"


def test_an_unknown_task_is_refused(m: manifest.Manifest) -> None:
    # refused before the broker is asked anything (it is down here)
    down = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(manifest.UnknownNameError):
        submit_mod.submit(m, m.task("no_such_task"), [], broker=down)
    got = inv("submit", "no_such_task", "--broker", down)
    assert got.returncode == 2 and "unknown task 'no_such_task'" in got.stderr
    assert "Traceback" not in got.stderr


def test_broker_down_at_submit_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from signal4.commands import pipeline as pipeline_cmd

    down = f"redis://127.0.0.1:{free_port()}/0"
    got = inv("submit", "convert", "--broker", down, "--", "--input", str(SAMPLE))
    assert got.returncode == wire.EXIT_BROKER, got.stderr
    assert "does not answer" in got.stderr and "Traceback" not in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
    # inv pipeline --workers: the same error, which inv turns into the same one line
    monkeypatch.chdir(ROOT)
    with pytest.raises(wire.BrokerUnavailable) as err:
        pipeline_cmd.main([], workers=True, broker=down)
    assert err.value.code == wire.EXIT_BROKER and "\n" not in str(err.value)


@pytest.mark.slow
def test_results_match_the_subprocess_path(shared: Cluster, m: manifest.Manifest) -> None:
    speech.converted("same", speech.silence(12.0))
    transcribed("same")
    local = dispatch.run(m, m.task("stitch"), ["--content", "same"])
    assert local.status == Status.COMPLETED, local
    local_files = {p.name: p.read_bytes() for p in store().folder("same").glob("transcript.*")}
    res = submit_mod.submit(
        m, m.task("stitch"), ["--content", "same", "--rewrite"], broker=shared.url()
    )
    warm = submit_mod.wait(m.task("stitch"), res)
    assert (warm.status, warm.exit_code) == (local.status, local.exit_code)
    assert {k: v for k, v in warm.result.items() if k not in ("seconds", "host")} == {
        k: v for k, v in local.result.items() if k != "seconds"
    }
    assert warm.result["host"] == socket.gethostname()  # where it ran, for the runner
    warm_files = {p.name: p.read_bytes() for p in store().folder("same").glob("transcript.*")}
    assert warm_files == local_files and "transcript.vtt" in warm_files
    # and a step that refuses its input is refused the same way
    local_bad = dispatch.run(m, m.task("stitch"), ["--content", "nothing-here"])
    warm_bad = submit_mod.wait(
        m.task("stitch"),
        submit_mod.submit(m, m.task("stitch"), ["--content", "nothing-here"], broker=shared.url()),
    )
    assert (warm_bad.status, warm_bad.exit_code, warm_bad.error) == (
        local_bad.status,
        local_bad.exit_code,
        local_bad.error,
    )


@pytest.mark.slow
def test_a_worker_synced_from_another_lock_is_refused(
    shared: Cluster, m: manifest.Manifest
) -> None:
    url = shared.url(db_index := shared.fresh_db())
    proc = shared.start_worker(
        "cleanup", db_index=db_index, extra={"SIGNAL4_WORKER_LOCK_HASH": "0123456789abcdef"}
    )
    with pytest.raises(wire.DriftError) as err:
        submit_mod.submit(m, m.task("cleanup_and_compress"), ["--content", "x"], broker=url)
    assert "0123456789abcdef" in str(err.value) and "'cleanup'" in str(err.value)
    assert socket.gethostname() in str(err.value)
    got = inv("submit", "cleanup_and_compress", "--broker", url, "--", "--content", "x")
    assert got.returncode == 2 and "0123456789abcdef" in got.stderr
    assert "Traceback" not in got.stderr
    listed = inv("workers", "--broker", url)
    assert listed.returncode == 0 and "cleanup" in listed.stdout
    assert shared.stop(proc) == 0


def _started_task(client: Any) -> str | None:
    """The id of a task whose state is STARTED on this Redis database, if any."""
    for key in client.scan_iter(match="celery-task-meta-*"):
        meta = json.loads(client.get(key) or "{}")
        if meta.get("status") == "STARTED":
            return str(meta["task_id"])
    return None


@pytest.mark.slow
def test_the_submitter_says_what_it_waits_for_and_gives_up(
    shared: Cluster, m: manifest.Manifest
) -> None:
    db_index = shared.fresh_db()
    url = shared.url(db_index)
    proc = shared.start_worker("stitch", db_index=db_index)
    transcribed("stranded")
    lock = Path(settings.get().data_dir) / "locks" / "stranded.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the step waits for the content's lock: it runs
        sub = subprocess.Popen(
            [
                *(sys.executable, "-m", "invoke", "-r", str(ROOT), "submit", "stitch"),
                *("--broker", url, "--timeout", "5", "--", "--content", "stranded"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )
        try:
            client = wire.redis_client(url)
            wait_for("the step to start", lambda: _started_task(client))
            proc.kill()  # its worker's main process dies mid-task; no other worker serves it
            proc.wait()
            out, err = sub.communicate(timeout=3 * GUARD)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.communicate()
    assert sub.returncode == codes.EXIT_TIMEOUT, (out, err)
    lines = err.strip().splitlines()
    waiting = [line for line in lines if "still waiting for task" in line]
    assert waiting and "on signal4.stitch" in waiting[0], err
    assert f"STARTED on worker stitch-{proc.pid}@" in waiting[0], err
    assert "no longer announces itself" in waiting[0], err
    assert lines[-1].startswith("error: gave up waiting for stitch (task "), err
    assert "past its time limit (15 s)" in lines[-1], err
    assert "Traceback" not in err and not out.strip()


@pytest.mark.slow
def test_a_relative_input_is_read_from_the_submitters_folder(shared: Cluster) -> None:
    # inv must run inside the project; the worker's folder is the project's root
    here = SAMPLE.parent.parent
    relative = SAMPLE.relative_to(here)
    assert here != ROOT and not (ROOT / relative).exists()  # where the worker would look
    step_args = ("--input", str(relative), "--content", "relative")
    got = inv("submit", "convert", "--broker", shared.url(), "--", *step_args, cwd=here)
    assert got.returncode == 0, (got.stdout, got.stderr)
    assert json.loads(got.stdout.strip().splitlines()[-1])["status"] == Status.COMPLETED
    item = db().get("relative")
    assert item is not None and item.meta["input"] == str(SAMPLE)
