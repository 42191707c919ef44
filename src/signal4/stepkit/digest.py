"""Content hashes of files and folders, for provenance (standard library only).

A file's digest is the sha256 of its bytes. A folder's (a model's files) is the sha256 of
its files' relative paths and digests, so a copy of a model in another folder has the same
digest. Hashing a large model on every run would cost seconds, so folder digests are
cached in a JSON file keyed by the folder's path and each file's size and mtime: a file
that changed in place is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

CHUNK = 1024 * 1024
#: The digests shown and recorded (hex characters of the sha256).
LENGTH = 16


def file_digest(path: Path) -> str:
    """The sha256 of ``path``'s bytes (OSError if it cannot be read)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()[:LENGTH]


def stat_key(path: Path) -> list[int]:
    """What tells a file changed without reading it: [size, mtime in ns]."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def tree_digest(folder: Path, cache: Path | None = None) -> str:
    """The digest of every (non-hidden) file under ``folder``, by relative path.

    ``cache`` is a JSON file remembering each file's digest by its size and mtime; a
    missing or unreadable cache only costs time.
    """
    folder = folder.resolve()
    known: dict[str, list[object]] = {}
    if cache is not None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(cache.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                known = data
    h = hashlib.sha256()
    changed = False
    for path in _files(folder):
        key = str(path)
        stamp = stat_key(path)
        entry = known.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp:
            digest = str(entry[1])
        else:
            digest = file_digest(path)
            known[key] = [stamp, digest]
            changed = True
        h.update(f"{path.relative_to(folder).as_posix()}\0{digest}\n".encode())
    if cache is not None and changed:
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
            os.replace(tmp, cache)
    return h.hexdigest()[:LENGTH]
