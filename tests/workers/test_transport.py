"""The worker's Redis transport (signal4.workers.transport): bad messages, dead workers.

The slow tests put garbage on a real queue and kill a real worker mid-task, on the
session's Redis (tests/workers/conftest.py), each on a Redis database of its own.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from signal4.codes import Status
from signal4.envs import manifest
from signal4.workers import celeryapp, transport, wire
from signal4.workers import submit as submit_mod
from tests.helpers import speech
from tests.helpers.cluster import GUARD, Cluster, meta_once, transcribed, wait_for


def test_what_a_worker_takes_for_a_message_envelope() -> None:

    good = {
        "body": "eA==",
        "headers": {"task": "signal4.stitch", "id": "1"},
        "properties": {"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}},
    }
    assert transport.envelope_problem(good) is None
    for bad in (
        42,
        [1],
        "text",
        {},
        {"properties": []},
        {"properties": {"delivery_info": {}}},
        {**good, "properties": {"delivery_tag": "t"}},
        {**good, "headers": [1]},
        {**good, "body": 12},
    ):
        assert transport.envelope_problem(bad), bad


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


@pytest.mark.slow
def test_garbage_on_a_queue_is_dropped_and_the_worker_serves_on(
    shared: Cluster, m: manifest.Manifest
) -> None:
    db_index = shared.fresh_db()
    url = shared.url(db_index)
    proc = shared.start_worker("stitch", db_index=db_index)
    client = wire.redis_client(url)
    garbage = _garbage("signal4.stitch")
    for _, raw in garbage:
        client.lpush("signal4.stitch", raw)
    speech.converted("after-garbage", speech.silence(12.0))
    transcribed("after-garbage")
    res = submit_mod.submit(
        m, m.task("stitch"), ["--content", "after-garbage", "--rewrite"], broker=url
    )
    wait_for("the task after the garbage", lambda: _alive(proc) and res.ready())
    outcome = submit_mod.wait(m.task("stitch"), res)
    assert outcome.status == Status.COMPLETED, outcome
    assert _alive(proc)
    # it was this worker, and the garbage is gone: neither queued nor waiting for an ack
    (me,) = [w for w in submit_mod.live_workers(url) if w.node.startswith(f"stitch-{proc.pid}@")]
    assert me.done >= 1
    wait_for(
        "nothing left to acknowledge",
        lambda: client.llen("signal4.stitch") == 0 and client.hlen("unacked") == 0,
    )
    log = shared.log(proc)
    assert log.count("signal4: dropped a message on signal4.stitch") == len(garbage), log
    assert "Unrecoverable error" not in log and "Connection to broker lost" not in log
    assert shared.stop(proc) == 0


@pytest.mark.slow
def test_a_killed_worker_main_process_has_its_task_taken_back(
    shared: Cluster, m: manifest.Manifest
) -> None:
    db_index = shared.fresh_db()
    url = shared.url(db_index)
    app = celeryapp.create(m, url)
    a = shared.start_worker("convert", db_index=db_index)
    res = app.send_task(celeryapp.PING, args=("convert", 3), queue="signal4.convert")
    first = wait_for("the ping to start", lambda: meta_once(res, ("STARTED",)))["result"]
    a.kill()  # kill -9 of the worker's main process, mid-task
    a.wait()
    killed = time.monotonic()
    wait_for("its pool process to die with it", lambda: not _running(int(first["pid"])))
    b = shared.start_worker("convert", db_index=db_index)  # a restarted worker
    again = wait_for(
        "the restarted worker to take the task back",
        lambda: (
            (meta := meta_once(res, ("STARTED", "SUCCESS")))
            and meta["result"].get("pid") != first["pid"]
            and meta
        ),
    )
    print(f"the task was started again {time.monotonic() - killed:.1f} s after the kill")
    assert again["result"]["pid"] != first["pid"]
    value = res.get(timeout=GUARD)
    assert value["ready"] is True and value["pid"] != first["pid"]
    client = wire.redis_client(url)
    wait_for(
        "nothing left unacknowledged",
        lambda: client.hlen("unacked") == 0 and client.hlen(wire.OWNERS_KEY) == 0,
    )
    log = shared.log(b)
    assert f"put task {res.id} (signal4.ping) back on signal4.convert" in log

    # a task whose worker lives is never taken from it, however long it runs
    c = shared.start_worker("convert", db_index=db_index)
    long = app.send_task(celeryapp.PING, args=("convert", 12), queue="signal4.convert")
    runs: set[tuple[str, int]] = set()

    def finished() -> bool:
        meta = meta_once(long, ("STARTED", "SUCCESS"))
        if meta and meta["status"] == "STARTED":
            runs.add((meta["result"]["hostname"], meta["result"]["pid"]))
        return bool(meta and meta["status"] == "SUCCESS")

    wait_for("the long ping", finished)
    assert len(runs) == 1, runs
    assert long.result["pid"] == next(iter(runs))[1]
    for proc in (b, c):
        assert shared.stop(proc) == 0
