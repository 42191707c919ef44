"""`inv broker`: a local Redis (Debian's ``redis-server``) for warm workers on one machine.

It listens on 127.0.0.1 only, runs daemonized and keeps its pid file, log and data in
``<root>/.broker/``. Its append-only file is on, so a restarted broker still holds the
queued tasks. Several machines need a Redis that all their workers can reach: run one
there and pass its URL (``--broker``/``SIGNAL4_BROKER_URL``).

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from signal4.errors import Signal4Error

DEFAULT_PORT = 6379
HOST = "127.0.0.1"
FOLDER = ".broker"


class BrokerError(Signal4Error, RuntimeError):
    """The local broker cannot be started or stopped; the message says what to do."""


@dataclass(frozen=True)
class LocalBroker:
    """One local Redis: its port and the folder with its pid file, log and data."""

    folder: Path
    port: int = DEFAULT_PORT

    @property
    def pidfile(self) -> Path:
        return self.folder / f"redis-{self.port}.pid"

    @property
    def logfile(self) -> Path:
        return self.folder / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def pid(self) -> int | None:
        """The pid of the running server, or None."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid


def for_root(root: Path, port: int = DEFAULT_PORT) -> LocalBroker:
    """The local broker of the project at ``root``."""
    return LocalBroker(root / FOLDER, port)


def find_server() -> str:
    """Return the redis-server executable or raise :class:`BrokerError` saying how to get it."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if not found:
        raise BrokerError("redis-server not found; install it: sudo apt-get install redis-server")
    return found


def answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when a Redis at ``host:port`` answers PING."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def command(broker: LocalBroker, server: str) -> list[str]:
    """The redis-server argument list: loopback only, daemonized, append-only, files in folder."""
    return [
        server,
        "--bind",
        HOST,
        "--port",
        str(broker.port),
        "--protected-mode",
        "yes",
        "--daemonize",
        "yes",
        "--pidfile",
        str(broker.pidfile),
        "--logfile",
        str(broker.logfile),
        "--dir",
        str(broker.folder),
        "--dbfilename",
        f"dump-{broker.port}.rdb",
        "--appendonly",
        "yes",
        "--appendfilename",
        f"appendonly-{broker.port}.aof",
        "--appenddirname",
        f"aof-{broker.port}",
    ]


def start(broker: LocalBroker, *, wait: float = 10.0) -> bool:
    """Start the broker unless it already runs; return False if it was running already."""
    if broker.pid() is not None and answers(broker.port):
        return False
    if answers(broker.port):
        raise BrokerError(
            f"port {broker.port} is already taken by another Redis; pick another with --port"
        )
    server = find_server()
    broker.folder.mkdir(parents=True, exist_ok=True)
    started = subprocess.run(
        command(broker, server), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if started.returncode:
        said = started.stderr.decode(errors="replace").strip().splitlines()
        raise BrokerError(
            f"redis-server did not start on port {broker.port} (exit {started.returncode}"
            f"{': ' + said[-1] if said else ''}); see {broker.logfile}"
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if answers(broker.port):
            return True
        time.sleep(0.05)
    raise BrokerError(f"redis-server did not answer on port {broker.port}; see {broker.logfile}")


def stop(broker: LocalBroker, *, wait: float = 20.0) -> bool:
    """Stop the broker cleanly (SIGTERM: Redis saves and exits); False if it was not running."""
    pid = broker.pid()
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    raise BrokerError(f"redis-server (pid {pid}) did not stop within {wait:g} s")
