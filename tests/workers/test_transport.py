"""The worker's Redis transport (signal4.workers.transport): bad messages, dead workers.

Fast tests drive the transport's pieces with stand-ins for kombu's message, channel and
Redis client. Slow ones put garbage on a real queue and kill a real worker mid-task, on the
session's Redis (tests/workers/conftest.py), each on a Redis database of its own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import pickle
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import serialization

from signal4.codes import Status
from signal4.envs import manifest
from signal4.workers import celeryapp, transport, wire
from signal4.workers import submit as submit_mod
from signal4.workers.wire import HEARTBEAT_PREFIX, ORPHAN_CONFIRM, OWNERS_KEY
from tests.helpers import speech
from tests.helpers.cluster import GUARD, Cluster, done_by, meta_once, transcribed, wait_for


def test_what_a_worker_takes_for_a_message_envelope() -> None:
    from signal4.workers import transport

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


def test_a_key_error_inside_a_delivery_is_not_a_lost_connection() -> None:
    # kombu counts KeyError as a lost connection (it would reconnect and get the same
    # message again, for ever); inside one delivery it is the message's fault
    assert transport._connection_errors((OSError, KeyError, ValueError)) == (OSError, ValueError)
    assert KeyError not in transport._connection_errors(transport.Transport.connection_errors)
    assert redis.exceptions.ConnectionError in transport._connection_errors(
        transport.Transport.connection_errors
    )


GOOD = {
    "body": "eA==",
    "headers": {"task": "signal4.stitch", "id": "1"},
    "properties": {"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}},
}


def _dropped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("signal4: dropped")]


def test_the_transport_drops_what_is_no_envelope_and_hands_on_the_rest(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[Any] = []
    monkeypatch.setattr(
        transport.kombu_redis.Transport, "_deliver", lambda self, m, q: handed.append(m)
    )
    t = transport.Transport.__new__(transport.Transport)
    caplog.set_level(logging.ERROR, logger="signal4.worker")
    t._deliver([1, 2], "signal4.stitch")
    assert handed == []
    assert _dropped(caplog) == [
        "signal4: dropped a message on signal4.stitch: not a message envelope (a JSON list): [1, 2]"
    ]
    t._deliver(GOOD, "signal4.stitch")
    assert handed == [GOOD] and len(_dropped(caplog)) == 1


def test_what_kombu_cannot_make_a_message_of_is_dropped_but_a_lost_connection_is_not(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deliver(self: Any, message: Any, queue: str) -> None:
        raise message["raise"]

    monkeypatch.setattr(transport.kombu_redis.Transport, "_deliver", deliver)
    t = transport.Transport.__new__(transport.Transport)
    caplog.set_level(logging.ERROR, logger="signal4.worker")
    t._deliver({**GOOD, "raise": ValueError("bad body")}, "q")
    assert len(_dropped(caplog)) == 1 and "ValueError: bad body" in _dropped(caplog)[0]
    t._deliver({**GOOD, "raise": KeyError("id")}, "q")  # the message's fault: dropped
    assert len(_dropped(caplog)) == 2 and "KeyError" in _dropped(caplog)[1]
    with pytest.raises(redis.exceptions.ConnectionError):
        t._deliver({**GOOD, "raise": redis.exceptions.ConnectionError("gone")}, "q")
    assert len(_dropped(caplog)) == 2


class Message:
    """What the consumer is handed: a body, its content type, and an ack."""

    def __init__(
        self, body: Any, content_type: str = "application/json", encoding: str = "utf-8"
    ) -> None:
        self.body = body
        self.content_type = content_type
        self.content_encoding = encoding
        self.acknowledged = False

    def ack(self) -> None:
        self.acknowledged = True


def _channel() -> transport.Channel:
    channel = transport.Channel.__new__(transport.Channel)
    channel.connection_errors = (OSError, KeyError, redis.exceptions.ConnectionError)
    return channel


def test_a_message_the_consumer_cannot_take_is_dropped_and_acknowledged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="signal4.worker")
    seen: list[Any] = []

    def callback(message: Message) -> str:
        seen.append(message.body)
        if message.body == '"boom"':
            raise KeyError("id")  # a task without an id, say
        if message.body == '"gone"':
            raise redis.exceptions.ConnectionError("Redis went away")
        return "handled"

    on_message = _channel()._guarded("signal4.stitch", callback)
    good = Message('{"a": 1}')
    assert on_message(good) == "handled" and not good.acknowledged
    pickled = Message(pickle.dumps({"a": 1}), "application/x-python-serialize", "binary")
    # JSON only, as Celery accepts: even where this process could unpickle
    serialization.enable_insecure_serializers(["pickle"])
    try:
        for bad in (Message("not json"), pickled):
            assert on_message(bad) is None
            assert bad.acknowledged  # gone from the queue, never delivered again
    finally:
        serialization.disable_insecure_serializers(["json"])
    assert seen == ['{"a": 1}']  # Celery never saw the undecodable ones
    failing = Message('"boom"')
    assert on_message(failing) is None and failing.acknowledged
    dropped = _dropped(caplog)
    assert len(dropped) == 3 and all("on signal4.stitch: " in d for d in dropped)
    assert "undecodable body" in dropped[0] and "KeyError" in dropped[2]
    with pytest.raises(redis.exceptions.ConnectionError):  # the connection: not a message's
        on_message(Message('"gone"'))


class Redis:
    """A stand-in for the Redis client, with the hashes and keys restore_orphans reads."""

    def __init__(self, hashes: dict[str, dict[str, str]], keys: set[str]) -> None:
        self.hashes = hashes
        self.keys = keys

    def hgetall(self, name: str) -> dict[str, str]:
        return dict(self.hashes.get(name, {}))

    def hget(self, name: str, key: str) -> str | None:
        return self.hashes.get(name, {}).get(key)

    def hdel(self, name: str, key: str) -> None:
        self.hashes.get(name, {}).pop(key, None)

    def pipeline(self, transaction: bool = True) -> Redis:
        self.asked: list[str] = []
        return self

    def exists(self, key: str) -> None:
        self.asked.append(key)

    def execute(self) -> list[int]:
        return [int(key in self.keys) for key in self.asked]


class Channel:
    """A stand-in for kombu's channel: its queues, its unacked hash, one client."""

    unacked_key = "unacked"
    do_restore = False  # kombu's QoS restores its deliveries at exit unless told not to

    def __init__(self, client: Redis, queues: list[str]) -> None:
        self.client = client
        self.active_queues = queues

    @contextlib.contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Redis]:
        yield self.client


def _unacked(task_id: str, queue: str) -> str:
    envelope = {"headers": {"id": task_id, "task": "signal4.stitch"}, "properties": {}}
    return json.dumps([envelope, "", queue])


def test_a_dead_workers_task_is_put_back_once_it_is_seen_orphaned_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Redis(
        {
            OWNERS_KEY: {
                "t-dead": "stitch-1@a",
                "t-live": "stitch-2@b",
                "t-other-env": "convert-3@c",
                "t-acked": "stitch-1@a",
                "t-garbled": "stitch-1@a",
            },
            "unacked": {
                "t-dead": _unacked("task-dead", "signal4.stitch"),
                "t-live": _unacked("task-live", "signal4.stitch"),
                "t-other-env": _unacked("task-convert", "signal4.convert"),
                "t-garbled": "not json",
            },
        },
        keys={HEARTBEAT_PREFIX + "stitch-2@b"},  # only b still announces itself
    )
    qos = transport.QoS(Channel(client, ["signal4.stitch"]))
    restored: list[str] = []
    qos.restore_by_tag = lambda tag, client=None, leftmost=False: restored.append(tag)  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="signal4.worker")
    # first seen orphaned: not yet (a live worker cut off for a moment beats again)
    assert qos.restore_orphans(now=100.0) == []
    assert qos.restore_orphans(now=100.0 + ORPHAN_CONFIRM - 0.1) == []
    got = qos.restore_orphans(now=100.0 + ORPHAN_CONFIRM)
    # only this queue's task of a dead owner; not the live worker's, not another env's
    assert got == restored == ["t-dead"]
    assert "t-acked" not in client.hashes[OWNERS_KEY]  # acknowledged meanwhile: forgotten
    assert "t-live" in client.hashes[OWNERS_KEY] and "t-garbled" in client.hashes[OWNERS_KEY]
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        "signal4: put task task-dead (signal4.stitch) back on signal4.stitch: "
        "its worker stitch-1@a is gone"
    )
    # a worker that consumes nothing takes nothing back
    idle = transport.QoS(Channel(client, []))
    assert idle.restore_orphans(now=1000.0) == []


class Recording(Redis):
    """The client, recording what is written and removed."""

    def __init__(self) -> None:
        super().__init__({}, set())
        self.done: list[tuple[str, ...]] = []

    def hset(self, name: str, key: str, value: str) -> None:
        self.done.append(("hset", name, key, value))

    def hdel(self, name: str, key: str) -> Recording:  # type: ignore[override]
        self.done.append(("hdel", name, key))
        return self


def test_a_worker_records_itself_as_the_owner_of_each_message_it_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Recording()
    monkeypatch.setattr(
        transport.kombu_redis.QoS,
        "append",
        lambda self, message, tag: client.done.append(("kombu holds", tag)),
    )
    monkeypatch.setattr(
        transport.kombu_redis.QoS,
        "_remove_from_indices",
        lambda self, tag, pipe=None: client,  # kombu's pipeline, on ack, reject and restore
    )
    qos = transport.QoS(Channel(client, ["signal4.stitch"]))
    monkeypatch.setitem(transport.OWNER, "node", "stitch-7@here")
    qos.append(object(), "t-1")
    # the owner first: every entry kombu keeps in ``unacked`` has its owner
    assert client.done == [("hset", OWNERS_KEY, "t-1", "stitch-7@here"), ("kombu holds", "t-1")]
    assert qos._remove_from_indices("t-1") is client
    assert client.done[-1] == ("hdel", OWNERS_KEY, "t-1")  # the owner goes with the entry
    # a process that never named itself (a submitter) records no owner
    monkeypatch.delitem(transport.OWNER, "node")
    qos.append(object(), "t-2")
    assert client.done[-1] == ("kombu holds", "t-2")
    transport.set_owner("convert-8@there")
    assert transport.OWNER["node"] == "convert-8@there"


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
    # (the worker counts the step after its result is stored: wait for the count)
    node = f"stitch-{proc.pid}@"
    wait_for("the worker to count the step it ran", lambda: done_by(url, node) >= 1)
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
