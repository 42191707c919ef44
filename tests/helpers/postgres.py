"""A real PostgreSQL server for the tests: Debian's binaries, a throw-away cluster.

:func:`start` runs ``initdb`` and ``postgres`` from ``/usr/lib/postgresql/<version>/bin``
(the newest there, or the folder ``TESTS_PG_BIN`` names) with its data in a new temp
folder, listening on 127.0.0.1 on a free port only, with password authentication. Both
refuse to run as root, so as root they run as the ``postgres`` user (or nobody) through
``setpriv``, which also stops the server if the test process dies. ``fsync`` is off: a
test cluster needs no durability, and ``CREATE DATABASE`` is then fast.

Where the binaries are missing the tests skip, unless ``TESTS_REQUIRE_POSTGRES`` or
``CI`` is set (``.ci/run`` sets the first, CI runners the second): then they fail with
the line that installs them. (No ``SIGNAL4_*`` names: each test starts with those
cleared.)
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: What to install where the server is missing (the one line a failed run prints).
INSTALL = "apt-get install -y postgresql"
#: Set (to anything) to make a missing server a failure rather than a skip.
REQUIRE_VAR = "TESTS_REQUIRE_POSTGRES"
USER = "signal4"
PASSWORD = "s3cret-pw"
#: How long the server may take to accept connections (a safety net, not a measurement).
READY_WITHIN = 120.0


class Unavailable(Exception):
    """No PostgreSQL server can be started here; ``str()`` says why and what to install."""


def required() -> bool:
    """Whether a missing server must fail the tests (CI) rather than skip them."""
    return bool(os.environ.get(REQUIRE_VAR) or os.environ.get("CI"))


def find_bin() -> Path:
    """The folder of ``initdb`` and ``postgres``; :class:`Unavailable` if there is none."""
    given = os.environ.get("TESTS_PG_BIN")
    candidates = [Path(given)] if given else []
    root = Path("/usr/lib/postgresql")
    if not given and root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates += [v / "bin" for v in reversed(versions)]
    on_path = shutil.which("initdb")  # Homebrew's, on a macOS runner
    if not given and on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise Unavailable(f"no PostgreSQL server binaries (initdb, postgres) here: {INSTALL}")


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs the server unprivileged, and that user's uid and gid."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        entry = pwd.getpwnam("postgres")
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        uid = gid = 65534  # nobody
    prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return [*prefix, "--pdeathsig", "SIGINT", "--"], uid, gid


@dataclass
class Server:
    """A running test cluster: its port, folder and process; databases made on demand."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        """A ``postgresql://`` URL (no driver named, as a user writes it) of ``database``."""
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=PASSWORD,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, ending the connections still open to it."""
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (a fast shutdown) and remove its folder."""
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Server:
    """Start a throw-away server; :class:`Unavailable` where it cannot be."""
    bindir = find_bin()
    prefix, uid, gid = _as_user()
    if prefix and shutil.which("setpriv") is None:
        raise Unavailable("setpriv (util-linux) is needed to run PostgreSQL as non-root")
    folder = Path(tempfile.mkdtemp(prefix="signal4-pg-"))
    data, log = folder / "data", folder / "server.log"
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if uid is not None and gid is not None:
        os.chown(folder, uid, gid)
        os.chown(pwfile, uid, gid)
    init = subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    for _attempt in range(3):  # a free port can be taken before the server binds it
        port = _free_port()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [
                    *prefix,
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={folder}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(port, folder, process)
        if _wait_ready(server):
            return server
        server.process.kill()
        server.process.wait()
    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
    shutil.rmtree(folder, ignore_errors=True)
    raise Unavailable(f"PostgreSQL did not start: {' | '.join(tail)}")


def _wait_ready(server: Server) -> bool:
    """Whether the server accepts connections (False if it exits first)."""
    import psycopg

    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server._admin().close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


#: Every engine that connected in this process (a StateDB's, a test's own).
_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()


def _track(conn: Any) -> None:
    _ENGINES.add(conn.engine)


@contextmanager
def database(server: Server) -> Iterator[str]:
    """A fresh database's URL for the block; dropped after it, once every engine that
    connected to it has closed its pooled connections (a connection left to the garbage
    collector is a ResourceWarning, which the suite turns into an error)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "engine_connect", _track):
        event.listen(Engine, "engine_connect", _track)
    url = server.create_database()
    name = url.rsplit("/", 1)[1]
    try:
        yield url
    finally:
        for engine in list(_ENGINES):
            if engine.url.database == name:
                engine.dispose()
        server.drop_database(url)
