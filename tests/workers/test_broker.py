"""The local Redis of ``inv broker`` (signal4.workers.broker).

Fast tests use a stand-in server (a socket that answers PING) and never start Redis; the
slow one starts and stops a real ``redis-server``.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from signal4.workers import broker, wire
from tests.helpers.cluster import free_port


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


def test_the_broker_of_a_checkout_keeps_its_files_in_its_folder(tmp_path: Path) -> None:
    local = broker.for_root(tmp_path)
    assert (local.folder, local.port) == (tmp_path / ".broker", broker.DEFAULT_PORT)
    other = broker.for_root(tmp_path, 6390)
    assert other.pidfile == tmp_path / ".broker" / "redis-6390.pid"
    assert other.logfile == tmp_path / ".broker" / "redis-6390.log"
    cmd = broker.command(other, "redis-server")
    for flag, value in (("--port", "6390"), ("--dir", str(other.folder))):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[cmd.index("--daemonize") + 1] == "yes"
    assert cmd[cmd.index("--appenddirname") + 1] == "aof-6390"  # two ports, two files


def test_the_pid_is_read_from_the_pidfile_only_while_it_runs(tmp_path: Path) -> None:
    local = broker.LocalBroker(tmp_path, 6390)
    assert local.pid() is None  # no pidfile
    local.pidfile.write_text("not a pid\n")
    assert local.pid() is None
    local.pidfile.write_text(f"{os.getpid()}\n")
    assert local.pid() == os.getpid()
    gone = _a_dead_pid()
    local.pidfile.write_text(f"{gone}\n")
    assert local.pid() is None  # a stale pidfile: not running
    assert broker.stop(local) is False


def _a_dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@contextmanager
def _server(reply: bytes) -> Iterator[int]:
    """A loopback server that answers every connection with ``reply``; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)  # so that the loop sees ``stop``
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            with conn:
                conn.recv(64)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def test_a_redis_is_what_answers_ping_with_pong() -> None:
    with _server(b"+PONG\r\n") as port:
        assert broker.answers(port)
    with _server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        assert not broker.answers(port)
    assert not broker.answers(free_port())


def test_a_port_taken_by_another_redis_is_refused_before_starting_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_server() -> str:
        raise AssertionError("no redis-server may be started")

    monkeypatch.setattr(broker, "find_server", no_server)
    with _server(b"+PONG\r\n") as port:
        local = broker.LocalBroker(tmp_path / "b", port)
        with pytest.raises(broker.BrokerError, match=f"port {port} is already taken"):
            broker.start(local)
    assert not local.folder.exists()


@pytest.mark.slow
def test_a_real_redis_starts_once_keeps_what_is_queued_and_stops(tmp_path: Path) -> None:
    try:
        broker.find_server()
    except broker.BrokerError as exc:
        pytest.skip(str(exc))
    local = broker.LocalBroker(tmp_path / "b", free_port())
    try:
        assert broker.start(local) is True
        assert broker.answers(local.port) and local.pid() is not None
        assert broker.start(local) is False  # running already: left alone
        client = wire.redis_client(local.url)
        client.lpush("signal4.stitch", "a queued task")
        client.close()
        assert broker.stop(local) is True
        assert not broker.answers(local.port) and local.pid() is None
        # the append-only file brings the queue back with the server
        assert broker.start(local) is True
        client = wire.redis_client(local.url)
        assert client.lrange("signal4.stitch", 0, -1) == ["a queued task"]
        client.close()
    finally:
        broker.stop(local)
    assert broker.stop(local) is False
    assert local.logfile.is_file()
