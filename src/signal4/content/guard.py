"""The per-content lock: one step at a time works on a content item, here or on a worker.

Standard library only at import time.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

from signal4.content.store import ContentStore, InvalidContentId, check_id


@contextlib.contextmanager
def content_guard(cid: str | None) -> Iterator[list[Path]]:
    """Hold ``cid``'s lock while a step works on it; sweep what a killed run left.

    A pool process killed mid-write (SIGKILL, OOM) leaves its temporary files behind
    (never a partial output: steps write atomically). The lock is a ``flock`` that dies
    with its holder, and every step takes it (:meth:`Step.run_argv`, whether the dispatcher
    or a warm worker runs it), so whoever holds it knows that every temporary file in the
    content folder belongs to a dead writer, and removes them. Two steps on one content
    item take turns. Yields the paths removed.
    """
    from signal4.content import settings

    try:
        check_id(cid or "")
    except InvalidContentId:
        yield []
        return
    assert cid is not None
    conf = settings.get()
    locks = Path(conf.data_dir) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{cid}.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            swept = ContentStore(conf.content_root).leftovers(cid)
            for path in swept:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            yield swept
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
