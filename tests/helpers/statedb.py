"""Several real processes on one state DB at once, and a folder the DB cannot write.

The process bodies are module functions so that ``multiprocessing``'s spawn start method
can import them in a new interpreter (no forked copy of the test's engines or threads).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: How long a process waits for the others at the start line (a safety net only).
BARRIER_TIMEOUT = 300.0
#: How long all of them may take together before the test gives up on them.
JOIN_TIMEOUT = 600.0


def open_and_register(urls: Sequence[str], barrier: Any, worker: int) -> None:
    """Open each (new) DB when every process is ready for it, then register our own item."""
    if any(url.startswith("postgresql") for url in urls):
        import psycopg  # noqa: F401  (loaded before the start line, so all start together)
    from signal4.content.state import StateDB

    for url in urls:
        barrier.wait(BARRIER_TIMEOUT)
        db = StateDB(url)
        db.register(f"item-{worker}", kind="file")
        db.mark(f"item-{worker}", "convert", "done")
        db.engine.dispose()


def hammer(url: str, barrier: Any, worker: int, rounds: int, items: int) -> None:
    """Write every kind of record on items that every process creates at the same moment."""
    from signal4.codes import StageState
    from signal4.content.state import StateDB

    db = StateDB(url)
    barrier.wait(BARRIER_TIMEOUT)
    t0 = dt.datetime.now(dt.UTC)
    for r in range(rounds):
        for i in range(items):
            cid = f"c{r}-{i}"  # new in this round: every process races to create it
            db.register(cid, kind="file", title=f"w{worker}")
            db.register(cid, kind="", duration=float(worker))  # kind kept
            db.mark(cid, "convert", "failed", error=f"w{worker}")
            db.mark(cid, "convert", StageState.DONE, info={"by": worker}, new_outputs=False)
            db.set_provenance(cid, "convert", {"by": worker, "round": r})
            db.mark(cid, "compress", StageState.DONE, info={"by": worker})
            db.record_run(
                item=cid,
                stage="compress",
                task="cleanup_and_compress",
                status="completed",
                started=t0,
                ended=dt.datetime.now(dt.UTC),
                content_id=cid,
                host=f"w{worker}",
            )


def run_at_once(target: Callable[..., None], args: Sequence[Any], processes: int) -> list[int]:
    """Run ``target(*args, barrier, worker)`` in ``processes`` new processes that start
    together; return their exit codes (0 each when it raised nothing)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    procs = [
        ctx.Process(target=_abort_on_error, args=(target, args[0], barrier, n, *args[1:]))
        for n in range(processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_TIMEOUT)
        if p.is_alive():
            p.kill()
            p.join()
    return [p.exitcode if p.exitcode is not None else -1 for p in procs]


def _abort_on_error(target: Callable[..., None], first: Any, barrier: Any, *rest: Any) -> None:
    """``target(first, barrier, *rest)``; an error breaks the barrier, so that the other
    processes stop at once rather than wait for this one at the next start line."""
    try:
        target(first, barrier, *rest)
    except BaseException:
        barrier.abort()
        raise


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only for this process for the block.

    As root, permissions stop nothing, so it becomes a read-only bind mount of itself (a
    real read-only file system, as a read-only share would be); otherwise its mode drops
    the write bits.
    """
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(mode)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)
