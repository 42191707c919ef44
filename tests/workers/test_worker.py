"""Warm workers on a real Redis with real worker processes in the light envs.

A module fixture starts ``redis-server`` on a free loopback port (the code behind
``inv broker``) and one worker per light env (``convert``, ``stitch``, ``cleanup``) with
``inv worker``, in each env's own interpreter. Tests that disturb a worker (drift,
SIGTERM, two machines) use their own Redis database on the same server, so they never
steal work from the shared workers. Timeouts here are failure guards, never assertions.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.content import settings
from signal4.content.guard import content_guard
from signal4.content.store import TMP_PREFIX
from signal4.envs import layout, manifest, syncer, venv
from signal4.errors import Interrupted
from signal4.run import dispatch
from signal4.run import plan as plan_mod
from signal4.run.runner import Event
from signal4.stepkit import diarization
from signal4.workers import batch as warm
from signal4.workers import broker as broker_mod
from signal4.workers import celeryapp, wire
from signal4.workers import submit as submit_mod
from tests.conftest import ROOT
from tests.helpers import speech
from tests.helpers.steps import db, store

pytestmark = pytest.mark.slow

LIGHT_ENVS = ("convert", "stitch", "cleanup")
GUARD = 120.0  # seconds: only ever a failure guard
READY = ("SUCCESS", "FAILURE", "REVOKED")
SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"
WORDS = [
    {"word": "Hello", "start": 0.5, "end": 0.9, "probability": 0.9, "chunk": 0},
    {"word": "there.", "start": 1.0, "end": 1.4, "probability": 0.9, "chunk": 0},
    {"word": "Fine,", "start": 9.8, "end": 10.1, "probability": 0.9, "chunk": 0},
    {"word": "thanks.", "start": 10.2, "end": 10.6, "probability": 0.9, "chunk": 0},
]
TURNS = [
    {"start": 0.0, "end": 9.6, "speaker": "SPEAKER_00"},
    {"start": 9.6, "end": 17.0, "speaker": "SPEAKER_01"},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(what: str, check: Callable[[], Any], guard: float = GUARD) -> Any:
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@dataclass
class Cluster:
    """The Redis server and the workers started for this module."""

    server: broker_mod.LocalBroker
    data: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, db_index: int = 0) -> str:
        return f"redis://127.0.0.1:{self.server.port}/{db_index}"

    def start_worker(
        self,
        env: str,
        *,
        root: Path = ROOT,
        db_index: int = 0,
        extra: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``inv worker <env>`` of the checkout at ``root``; wait until it announces itself."""
        environ = {
            **os.environ,
            "SIGNAL4_DATA_DIR": str(self.data),
            "NO_COLOR": "1",
            **(extra or {}),
        }
        log = self.data.parent / f"worker-{env}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "invoke", "-r", str(root), "worker", env),
                    *("--broker", self.url(db_index), "--concurrency", "1", "--loglevel", "INFO"),
                ],
                cwd=root,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        node = f"{env}-{proc.pid}@"

        def announced() -> bool:
            assert proc.poll() is None, f"worker {env} exited: see {log}"
            return any(w.node.startswith(node) for w in submit_mod.live_workers(self.url(db_index)))

        _wait_for(f"worker {env} to announce itself", announced)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM (warm shutdown) and wait; SIGKILL only as a guard."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=GUARD)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return int(proc.returncode)


def _sync(root: Path, names: tuple[str, ...]) -> None:
    """Sync envs of the checkout at ``root`` with the project's own sync API."""
    m = manifest.load(root)
    results = syncer.sync_many(m, [layout.spec(m, n) for n in names], jobs=2)
    assert all(r.ok for r in results), results


@pytest.fixture(scope="module", autouse=True)
def _drop_client_sockets() -> Iterator[None]:
    """Collect the Celery apps these tests made, before pytest's own end-of-run collection.

    Their Redis result-backend sockets would otherwise be closed by the garbage collector at
    an arbitrary later point, as an unraisable ResourceWarning that fails the whole run.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    _sync(ROOT, LIGHT_ENVS)
    base = tmp_path_factory.mktemp("cluster")
    server = broker_mod.LocalBroker(base / "broker", _free_port())
    broker_mod.start(server)
    c = Cluster(server, base / "data")
    try:
        for env in LIGHT_ENVS:
            c.start_worker(env)
        yield c
    finally:
        for proc in c.procs:
            c.stop(proc)
        broker_mod.stop(server)


@pytest.fixture(scope="module")
def second_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another checkout of this project (the files a clone has), no env synced.

    Tracked files and new ones not ignored: what a clone has once they are committed.
    """
    other = tmp_path_factory.mktemp("machine-b") / "signal4"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (other / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, other / name)
    return other


@pytest.fixture
def shared(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """Point this test's settings at the workers' data folder."""
    monkeypatch.setenv("SIGNAL4_DATA_DIR", str(cluster.data))
    settings.get.cache_clear()
    return cluster


@pytest.fixture
def m() -> manifest.Manifest:
    return manifest.load(ROOT)


def _transcribed(cid: str) -> None:
    """Register ``cid`` with words and turns as transcribe and diarize leave them."""
    db().register(cid, kind="file")
    store().folder(cid, create=True)
    store().write_json(
        store().path(cid, "transcript_words.json"), {"language": "en", "chunks": 1, "words": WORDS}
    )
    db().mark(cid, "transcribe", "done")
    diarization.write(store(), cid, TURNS, method="test")
    db().mark(cid, "diarize", "done")


def _no_partial_output(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert not leftovers, leftovers


def _meta_once(res: Any, states: tuple[str, ...]) -> dict[str, Any] | None:
    """The task's state and info read in one go, once it is in one of ``states``."""
    meta: dict[str, Any] = res.backend.get_task_meta(res.id)
    return meta if meta["status"] in states else None


def _send(c: Cluster, name: str, args: tuple[Any, ...], queue: str, **options: Any) -> Any:
    app = celeryapp.create(manifest.load(ROOT), c.url())
    return app.send_task(name, args=args, queue=queue, **options)


def _light_plan(m: manifest.Manifest, cid: str) -> plan_mod.Plan:
    """One item: convert (of the sample), stitch and cleanup_and_compress of ``cid``."""
    stages = [
        plan_mod.Stage(m.task("convert"), ["--input", str(SAMPLE)]),
        plan_mod.Stage(m.task("stitch"), []),
        plan_mod.Stage(m.task("cleanup_and_compress"), []),
    ]
    return plan_mod.Plan([plan_mod.Item(str(SAMPLE), "sample", stages, content=cid)])


def test_a_chain_across_three_envs_completes(shared: Cluster, m: manifest.Manifest) -> None:
    _transcribed("talk")
    events: list[Event] = []
    runner = warm.WorkerBatch(
        m, _light_plan(m, "talk"), db=db(), broker=shared.url(), on_event=events.append
    )
    [result] = runner.run()
    assert result.status == "done", result
    assert result.ran == ["convert", "stitch", "cleanup_and_compress"]
    ends = [e.outcome for e in events if e.kind == "end"]
    assert [o.status for o in ends if o is not None] == ["completed"] * 3
    assert ends[0] is not None and ends[0].result["chunks"] == 1
    # the runner records every stage's run, with the host the worker named
    runs = [r for r in db().runs() if r.content_id == "talk"]
    assert sorted(r.task for r in runs) == ["cleanup_and_compress", "convert", "stitch"]
    assert {r.host for r in runs} == {socket.gethostname()}
    # the workers recorded each stage's provenance: their host, the lock they announce
    records = db().provenance()["talk"]
    assert sorted(records) == ["compress", "convert", "stitch"]
    assert {(r["host"], r["lock"]) for r in records.values()} == {
        (socket.gethostname(), layout.lock_hash(m))
    }
    assert records["convert"]["params"] == {"chunk_seconds": 300.0, "chunk_overlap": 2.0}
    stored = json.loads((store().folder("talk") / "storage_manifest.json").read_text())
    assert stored["provenance"] == records
    # a done stage is not sent; an item with nothing to run sends nothing (no broker needed)
    again = _light_plan(m, "talk")
    again.items[0].stages[0].done = True
    [result] = warm.WorkerBatch(m, again, db=db(), broker=shared.url()).run()
    assert (result.status, result.ran) == ("done", ["stitch", "cleanup_and_compress"])
    for stage in again.items[0].stages:
        stage.done = True
    down = f"redis://127.0.0.1:{_free_port()}/0"
    [result] = warm.WorkerBatch(m, again, db=db(), broker=down).run()
    assert (result.status, result.ran) == ("done", [])
    assert len([r for r in db().runs() if r.content_id == "talk"]) == 5
    folder = store().folder("talk")
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")
    assert (folder / "audio.opus").is_file() and (folder / "transcript.json.gz").is_file()
    assert not (folder / "audio.wav").exists() and not (folder / "chunks").exists()
    assert db().is_done("talk", "compress")
    _no_partial_output(folder)


def test_ctrl_c_revokes_what_the_batch_sent(shared: Cluster, m: manifest.Manifest) -> None:
    for cid in ("stop-a", "stop-b"):
        _transcribed(cid)
    plan = plan_mod.Plan([*_light_plan(m, "stop-a").items, *_light_plan(m, "stop-b").items])

    def ctrl_c_at_the_first_start(e: Event) -> None:
        if e.kind == "start":
            raise KeyboardInterrupt

    said: list[str] = []
    runner = warm.WorkerBatch(
        m, plan, db=db(), broker=shared.url(), on_event=ctrl_c_at_the_first_start, say=said.append
    )
    # holding stop-a's lock keeps its convert running (waiting for the lock) on the one
    # convert worker, and stop-b's queued behind it, until the Ctrl-C
    with content_guard("stop-a"), pytest.raises(Interrupted) as err:
        runner.run()
    assert err.value.code == 130
    assert any("revoked 6 task(s)" in line and "1 running" in line for line in said), said
    assert [r.status for r in runner.results.values()] == ["interrupted"] * 2
    running, queued = (ch.results[0] for ch in runner.chains)
    assert _meta_once(running, READY)["status"] == "REVOKED"  # type: ignore[index]
    # the item still queued is discarded by its worker when it reaches it, never run
    meta = _wait_for("the queued convert to end", lambda: _meta_once(queued, READY))
    assert meta["status"] == "REVOKED"
    stopped = ("stop-a", "stop-b")
    runs = [(r.content_id, r.task, r.status) for r in db().runs() if r.content_id in stopped]
    # the runner recorded the stopped one: interrupted, not failed
    assert runs == [("stop-a", "convert", "interrupted")]


def test_results_match_the_subprocess_path(shared: Cluster, m: manifest.Manifest) -> None:
    speech.converted("same", speech.silence(12.0))
    _transcribed("same")
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


def test_malformed_payload_is_an_error_result_and_the_worker_lives_on(
    shared: Cluster, m: manifest.Manifest
) -> None:
    bad = _send(shared, "signal4.stitch", (42,), "signal4.stitch").get(timeout=GUARD)
    assert bad["status"] == Status.INVALID_INPUT and "malformed task payload" in bad["error"]
    flag = _send(
        shared, "signal4.stitch", (["--content", "x", "--no-such-flag"],), "signal4.stitch"
    ).get(timeout=GUARD)
    assert flag["status"] == Status.INVALID_INPUT and "--no-such-flag" in flag["error"]
    # a task name no worker knows is dropped by the worker (submit refuses it up front)
    _send(shared, "signal4.no_such_task", ([],), "signal4.stitch")
    ping = _send(shared, celeryapp.PING, ("stitch",), "signal4.stitch").get(timeout=GUARD)
    assert ping["ready"] is True
    assert all(p.poll() is None for p in shared.procs[: len(LIGHT_ENVS)])


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


def test_a_killed_worker_process_gets_its_task_again(shared: Cluster, m: manifest.Manifest) -> None:
    # a nap: deterministic proof that the task is redelivered to a new pool process
    res = _send(shared, celeryapp.PING, ("convert", 3), "signal4.convert")
    info = _wait_for("the ping to start", lambda: res.state == "STARTED" and res.info)
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
    meta = _wait_for("convert to start", lambda: _meta_once(res, ("STARTED", "SUCCESS")))
    if meta["status"] == "STARTED":  # (a very fast machine may be done already)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(meta["result"]["pid"]), signal.SIGKILL)
    outcome = submit_mod.wait(m.task("convert"), res)
    assert outcome.status == Status.COMPLETED, outcome
    folder = store().folder("long")
    assert (folder / "audio.wav").is_file() and len(list((folder / "chunks").iterdir())) == 3
    _no_partial_output(folder)


def test_an_unknown_task_is_refused(shared: Cluster, m: manifest.Manifest) -> None:
    with pytest.raises(manifest.UnknownNameError):
        submit_mod.submit(m, m.task("no_such_task"), [], broker=shared.url())
    got = _inv("submit", "no_such_task", "--broker", shared.url())
    assert got.returncode == 2 and "unknown task 'no_such_task'" in got.stderr
    assert "Traceback" not in got.stderr


def test_broker_down_at_submit_is_one_clear_line(shared: Cluster) -> None:
    down = f"redis://127.0.0.1:{_free_port()}/0"
    got = _inv("submit", "convert", "--broker", down, "--", "--input", str(SAMPLE))
    assert got.returncode == wire.EXIT_BROKER, got.stderr
    assert "does not answer" in got.stderr and "Traceback" not in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
    piped = _inv("pipeline", "--workers", "--broker", down)
    assert piped.returncode == wire.EXIT_BROKER and "Traceback" not in piped.stderr


def test_the_pipeline_refuses_an_env_no_worker_serves(shared: Cluster) -> None:
    # the light workers run, transcribe and diarize have none: refused before anything is sent
    got = _inv("pipeline", "--workers", "--broker", shared.url())
    assert got.returncode == 2 and "no live worker serves env" in got.stderr, got.stderr
    assert "inv worker " in got.stderr and "Traceback" not in got.stderr
    listed = _inv("workers", "--broker", shared.url())
    assert listed.returncode == 0
    assert all(env in listed.stdout for env in LIGHT_ENVS), listed.stdout


def test_a_worker_synced_from_another_lock_is_refused(
    shared: Cluster, m: manifest.Manifest
) -> None:
    proc = shared.start_worker(
        "cleanup", db_index=1, extra={"SIGNAL4_WORKER_LOCK_HASH": "0123456789abcdef"}
    )
    with pytest.raises(wire.DriftError) as err:
        submit_mod.submit(
            m, m.task("cleanup_and_compress"), ["--content", "x"], broker=shared.url(1)
        )
    assert "0123456789abcdef" in str(err.value) and "'cleanup'" in str(err.value)
    assert socket.gethostname() in str(err.value)
    got = _inv("submit", "cleanup_and_compress", "--broker", shared.url(1), "--", "--content", "x")
    assert got.returncode == 2 and "0123456789abcdef" in got.stderr
    assert "Traceback" not in got.stderr
    listed = _inv("workers", "--broker", shared.url(1))
    assert listed.returncode == 0 and "cleanup" in listed.stdout
    assert shared.stop(proc) == 0


def test_sigterm_is_a_warm_shutdown(shared: Cluster, m: manifest.Manifest) -> None:
    proc = shared.start_worker("stitch", db_index=2)
    app = celeryapp.create(m, shared.url(2))
    res = app.send_task(celeryapp.PING, args=("stitch", 2), queue="signal4.stitch")
    _wait_for("the ping to start", lambda: res.state == "STARTED")
    proc.send_signal(signal.SIGTERM)
    assert res.get(timeout=GUARD)["ready"] is True  # the running task finished
    assert proc.wait(timeout=GUARD) == 0
    assert not [w for w in submit_mod.live_workers(shared.url(2)) if w.env == "stitch"]


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


def test_two_machines_serve_one_pipeline(
    shared: Cluster, m: manifest.Manifest, second_checkout: Path
) -> None:
    # machine B: a second checkout with its own synced envs
    other = second_checkout
    _sync(other, ("stitch", "cleanup"))
    a = shared.start_worker("convert", db_index=3)
    b_stitch = shared.start_worker("stitch", root=other, db_index=3)
    b_cleanup = shared.start_worker("cleanup", root=other, db_index=3)
    announced = {w.env: w for w in submit_mod.live_workers(shared.url(3))}
    assert announced["stitch"].root == str(other) and announced["convert"].root == str(ROOT)

    _transcribed("shared-talk")
    runner = warm.WorkerBatch(m, _light_plan(m, "shared-talk"), db=db(), broker=shared.url(3))
    [result] = runner.run()
    assert result.status == "done", result
    done = {w.env: w.done for w in submit_mod.live_workers(shared.url(3))}
    assert done["convert"] >= 1 and done["stitch"] >= 1 and done["cleanup"] >= 1
    folder = store().folder("shared-talk")
    assert (folder / "transcript.vtt").is_file() and (folder / "audio.opus").is_file()
    for proc in (a, b_stitch, b_cleanup):
        assert shared.stop(proc) == 0


def _inv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
        timeout=GUARD,
    )


def test_workers_reconnect_when_redis_restarts(
    cluster: Cluster, m: manifest.Manifest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = broker_mod.LocalBroker(tmp_path_factory.mktemp("restarted"), _free_port())
    broker_mod.start(own)
    c = Cluster(own, cluster.data)
    try:
        proc = c.start_worker("stitch")
        app = celeryapp.create(m, c.url())
        running = app.send_task(celeryapp.PING, args=("stitch", 2), queue="signal4.stitch")
        queued = app.send_task(celeryapp.PING, args=("stitch",), queue="signal4.stitch")
        _wait_for("the ping to start", lambda: running.state == "STARTED")
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


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, f"the worker exited with {proc.returncode}"
    return True


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _garbage(queue: str) -> list[tuple[str, bytes]]:
    """Messages no worker can run, of every kind a worker must drop and survive."""

    def envelope(body: str, headers: Any = None, **props: Any) -> bytes:
        properties = {
            "delivery_info": {"exchange": "", "routing_key": queue},
            "body_encoding": "base64",
            "delivery_tag": f"garbage-{len(props)}-{body[:8]}",
            "delivery_mode": 2,
            "priority": 0,
            **props,
        }
        return json.dumps(
            {
                "body": body,
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {} if headers is None else headers,
                "properties": properties,
            }
        ).encode()

    b64 = base64.b64encode
    return [
        ("not JSON", b"this is not json"),
        ("not UTF-8", b"\xff\xfe\xfd"),
        ("a JSON number", b"42"),
        ("a JSON list", b"[1, 2, 3]"),
        ("an empty object", b"{}"),
        ("no delivery tag", json.dumps({"body": "", "properties": {}}).encode()),
        ("no delivery info", envelope("eA==", delivery_info=None)),
        ("headers not an object", envelope("eA==", headers=[1])),
        ("a body that is not base64", envelope("!!!not base64!!!")),
        ("an unknown body encoding", envelope("eA==", body_encoding="rot13")),
        ("a body that is not JSON", envelope(b64(b"not json").decode())),
        # a known task without an id: a KeyError, which kombu takes for a lost connection
        ("a task without id", envelope(b64(b"[[], {}, {}]").decode(), {"task": "signal4.stitch"})),
    ]


def test_garbage_on_a_queue_is_dropped_and_the_worker_serves_on(
    shared: Cluster, m: manifest.Manifest
) -> None:
    url = shared.url(4)
    proc = shared.start_worker("stitch", db_index=4)
    client = wire.redis_client(url)
    garbage = _garbage("signal4.stitch")
    for _, raw in garbage:
        client.lpush("signal4.stitch", raw)
    speech.converted("after-garbage", speech.silence(12.0))
    _transcribed("after-garbage")
    res = submit_mod.submit(
        m, m.task("stitch"), ["--content", "after-garbage", "--rewrite"], broker=url
    )
    _wait_for("the task after the garbage", lambda: _alive(proc) and res.ready())
    outcome = submit_mod.wait(m.task("stitch"), res)
    assert outcome.status == Status.COMPLETED, outcome
    assert _alive(proc)
    # it was this worker, and the garbage is gone: neither queued nor waiting for an ack
    (me,) = [w for w in submit_mod.live_workers(url) if w.node.startswith(f"stitch-{proc.pid}@")]
    assert me.done >= 1
    _wait_for(
        "nothing left to acknowledge",
        lambda: client.llen("signal4.stitch") == 0 and client.hlen("unacked") == 0,
    )
    log = (shared.data.parent / f"worker-stitch-{shared.procs.index(proc)}.log").read_text()
    assert log.count("signal4: dropped a message on signal4.stitch") == len(garbage), log
    assert "Unrecoverable error" not in log and "Connection to broker lost" not in log
    assert shared.stop(proc) == 0


def test_a_killed_worker_main_process_has_its_task_taken_back(
    shared: Cluster, m: manifest.Manifest
) -> None:
    url = shared.url(5)
    app = celeryapp.create(m, url)
    a = shared.start_worker("convert", db_index=5)
    res = app.send_task(celeryapp.PING, args=("convert", 3), queue="signal4.convert")
    first = _wait_for("the ping to start", lambda: _meta_once(res, ("STARTED",)))["result"]
    a.kill()  # kill -9 of the worker's main process, mid-task
    a.wait()
    killed = time.monotonic()
    _wait_for("its pool process to die with it", lambda: not _running(int(first["pid"])))
    b = shared.start_worker("convert", db_index=5)  # a restarted worker
    again = _wait_for(
        "the restarted worker to take the task back",
        lambda: (
            (meta := _meta_once(res, ("STARTED", "SUCCESS")))
            and meta["result"].get("pid") != first["pid"]
            and meta
        ),
    )
    print(f"the task was started again {time.monotonic() - killed:.1f} s after the kill")
    assert again["result"]["pid"] != first["pid"]
    value = res.get(timeout=GUARD)
    assert value["ready"] is True and value["pid"] != first["pid"]
    client = wire.redis_client(url)
    _wait_for(
        "nothing left unacknowledged",
        lambda: client.hlen("unacked") == 0 and client.hlen(wire.OWNERS_KEY) == 0,
    )
    log = (shared.data.parent / f"worker-convert-{shared.procs.index(b)}.log").read_text()
    assert f"put task {res.id} (signal4.ping) back on signal4.convert" in log

    # a task whose worker lives is never taken from it, however long it runs
    c = shared.start_worker("convert", db_index=5)
    long = app.send_task(celeryapp.PING, args=("convert", 12), queue="signal4.convert")
    runs: set[tuple[str, int]] = set()

    def finished() -> bool:
        meta = _meta_once(long, ("STARTED", "SUCCESS"))
        if meta and meta["status"] == "STARTED":
            runs.add((meta["result"]["hostname"], meta["result"]["pid"]))
        return bool(meta and meta["status"] == "SUCCESS")

    _wait_for("the long ping", finished)
    assert len(runs) == 1, runs
    assert long.result["pid"] == next(iter(runs))[1]
    for proc in (b, c):
        assert shared.stop(proc) == 0


def _started_task(client: Any) -> str | None:
    """The id of a task whose state is STARTED on this Redis database, if any."""
    for key in client.scan_iter(match="celery-task-meta-*"):
        meta = json.loads(client.get(key) or "{}")
        if meta.get("status") == "STARTED":
            return str(meta["task_id"])
    return None


def test_the_submitter_says_what_it_waits_for_and_gives_up(
    shared: Cluster, m: manifest.Manifest
) -> None:
    url = shared.url(6)
    proc = shared.start_worker("stitch", db_index=6)
    _transcribed("stranded")
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
            _wait_for("the step to start", lambda: _started_task(client))
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


def test_a_soft_time_limit_is_timed_out_whatever_the_step_makes_of_it(
    shared: Cluster, m: manifest.Manifest
) -> None:
    # transcribe wraps every Whisper error in StepFailure("Whisper failed…: <exc>"), the
    # soft time limit's SoftTimeLimitExceeded too
    if venv.status(m, layout.spec(m, "transcribe")) is not venv.State.UP_TO_DATE:
        pytest.skip("the transcribe env is not synced (inv sync transcribe)")
    url = shared.url(7)
    proc = shared.start_worker("transcribe", db_index=7)
    speech.converted("long-talk", speech.sample_frames() * 16)  # one chunk of 280 s of speech
    sent = ("submit", "transcribe", "--broker", url, "--timeout", "3")
    got = _inv(*sent, "--", "--content", "long-talk", "--rewrite")
    assert got.returncode == codes.EXIT_TIMEOUT, (got.stdout, got.stderr)
    result = json.loads(got.stdout.strip().splitlines()[-1])
    assert result["status"] == Status.TIMED_OUT and "soft time limit" in result["error"]
    assert result["content"] == "long-talk"
    assert shared.stop(proc) == 0


def test_a_relative_input_is_read_from_the_submitters_folder(shared: Cluster) -> None:
    # inv must run inside the project; the worker's folder is the project's root
    here = SAMPLE.parent.parent
    relative = SAMPLE.relative_to(here)
    assert here != ROOT and not (ROOT / relative).exists()  # where the worker would look
    step_args = ("--input", str(relative), "--content", "relative")
    got = _inv("submit", "convert", "--broker", shared.url(), "--", *step_args, cwd=here)
    assert got.returncode == 0, (got.stdout, got.stderr)
    assert json.loads(got.stdout.strip().splitlines()[-1])["status"] == Status.COMPLETED
    item = db().get("relative")
    assert item is not None and item.meta["input"] == str(SAMPLE)
