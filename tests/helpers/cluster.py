"""A real Redis and warm workers for the tests (fixtures in tests/workers/conftest.py).

One Redis server runs for the whole session; each test that disturbs a worker (drift,
SIGTERM, a kill, two machines) asks the cluster for a Redis database of its own
(:meth:`Cluster.fresh_db`) and starts its workers there, so it never steals work from the
shared light workers on database 0. Timeouts here are failure guards, never assertions.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signal4.content.store import TMP_PREFIX
from signal4.envs import manifest
from signal4.stepkit import diarization
from signal4.workers import broker as broker_mod
from signal4.workers import celeryapp
from signal4.workers import submit as submit_mod
from tests.conftest import ROOT
from tests.helpers.steps import db, store

#: The envs of the shared workers: the light ones (no model to load).
LIGHT_ENVS = ("convert", "stitch", "cleanup")
GUARD = 120.0  # seconds: only ever a failure guard
#: Redis's default number of databases (``databases 16``): 0 is the shared workers'.
DATABASES = 16


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], guard: float = GUARD) -> Any:
    """Poll ``check`` until it returns something true and return that; fail past ``guard``."""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def inv(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``inv <args>`` of this checkout, as a user runs it (no colour, wide lines)."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        check=False,
        timeout=GUARD,
    )


@dataclass
class Cluster:
    """The session's Redis server and the workers started on it."""

    server: broker_mod.LocalBroker
    data: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)
    _dbs: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, db_index: int = 0) -> str:
        return f"redis://127.0.0.1:{self.server.port}/{db_index}"

    def fresh_db(self) -> int:
        """A Redis database no test used yet (0 is the shared workers')."""
        index = next(self._dbs)
        assert index < DATABASES, "every Redis database is taken: start another server"
        return index

    def start_worker(
        self,
        env: str,
        *,
        root: Path = ROOT,
        db_index: int = 0,
        data: Path | None = None,
        extra: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``inv worker <env>`` of the checkout at ``root``; wait until it announces itself.

        Its data folder is the cluster's unless ``data`` is given.
        """
        environ = {
            **os.environ,
            "SIGNAL4_DATA_DIR": str(data or self.data),
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
        self.logs[proc.pid] = log
        node = f"{env}-{proc.pid}@"

        def announced() -> bool:
            assert proc.poll() is None, f"worker {env} exited: see {log}"
            return any(w.node.startswith(node) for w in submit_mod.live_workers(self.url(db_index)))

        wait_for(f"worker {env} to announce itself", announced)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        """What worker ``proc`` logged so far."""
        return self.logs[proc.pid].read_text()

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

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)


SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"
READY = ("SUCCESS", "FAILURE", "REVOKED")
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


def transcribed(cid: str) -> None:
    """Register ``cid`` with words and turns as transcribe and diarize leave them."""
    db().register(cid, kind="file")
    store().folder(cid, create=True)
    store().write_json(
        store().path(cid, "transcript_words.json"), {"language": "en", "chunks": 1, "words": WORDS}
    )
    db().mark(cid, "transcribe", "done")
    diarization.write(store(), cid, TURNS, method="test")
    db().mark(cid, "diarize", "done")


def no_partial_output(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert not leftovers, leftovers


def meta_once(res: Any, states: tuple[str, ...]) -> dict[str, Any] | None:
    """The task's state and info read in one go, once it is in one of ``states``."""
    meta: dict[str, Any] = res.backend.get_task_meta(res.id)
    return meta if meta["status"] in states else None


def send(c: Cluster, name: str, args: tuple[Any, ...], queue: str, **options: Any) -> Any:
    """Send a raw Celery task (no drift check, no payload check) on the shared database."""
    app = celeryapp.create(manifest.load(ROOT), c.url())
    return app.send_task(name, args=args, queue=queue, **options)


def done_by(url: str, node: str) -> int:
    """The ``tasks done`` that the one live worker whose node starts with ``node`` announces.

    A worker counts a step in Celery's ``task_postrun``, after the step's result is stored:
    right after a result, the count may still be the old one. Wait for it with
    :func:`wait_for`, never read it once.
    """
    (me,) = [w for w in submit_mod.live_workers(url) if w.node.startswith(node)]
    return me.done
