"""The content store: ``<content_root>/<content_id>/…``, every file written atomically.

A file appears under its final name only once it is complete (temporary file in the same
folder, flushed and fsynced, then renamed), so a step that dies mid-write never leaves a
half-written output where the next step would read it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from signal4.errors import Signal4Error

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TMP_PREFIX = ".tmp-"


@functools.cache
def _umask() -> int:
    """The process umask (read once; os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp alone gives 0600)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a plain ``mkdir()`` would give a new folder (mkdtemp alone gives 0700)."""
    return 0o777 & ~_umask()


class InvalidContentId(Signal4Error, ValueError):
    """A content id that is not a safe folder name."""


def check_id(content_id: str) -> str:
    """Return ``content_id`` if it is a safe, single folder name."""
    if not _ID_RE.match(content_id) or content_id in (".", ".."):
        raise InvalidContentId(
            f"invalid content id {content_id!r}: use letters, digits, '.', '_' or '-' (max 128)"
        )
    return content_id


#: Each content folder's description of its item (kind, source, title, media file...):
#: written by the step that registers it, read by the steps after it.
ITEM_FILE = "item.json"

#: Each content folder's record of what cleanup kept and how each stage's outputs were
#: made (its ``provenance`` key: stage -> record, written by the pipeline's runner).
STORAGE_MANIFEST = "storage_manifest.json"


def update_provenance(
    folder: Path, records: dict[str, Any] | None = None, *, forget: str | None = None
) -> None:
    """Merge ``records`` (stage -> record) into ``folder``'s storage manifest, or drop the
    stage ``forget``; atomic. Nothing is written into a folder that does not exist."""
    path = folder / STORAGE_MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError):
        data = {}  # unreadable: rewritten with what is known
    if not isinstance(data, dict):
        data = {}
    provenance = dict(data.get("provenance") or {})
    if forget is not None:
        if forget not in provenance:
            return
        del provenance[forget]
    provenance.update(records or {})
    data["provenance"] = provenance
    if not folder.is_dir():
        return
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def kept(path: Path) -> bool:
    """Whether ``path`` exists, plain or gzipped by cleanup_and_compress."""
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


class ContentStore:
    """Folders of content items under one root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, content_id: str, *, create: bool = False) -> Path:
        """Return the folder of ``content_id`` (created if asked)."""
        path = self.root / check_id(content_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, content_id: str, *parts: str) -> Path:
        """Return a path inside the content's folder, refusing anything that escapes it."""
        base = self.folder(content_id).resolve()
        candidate = base.joinpath(*parts).resolve()
        if candidate != base and base not in candidate.parents:
            raise InvalidContentId(f"path {'/'.join(parts)!r} escapes the content folder")
        return candidate

    @contextlib.contextmanager
    def open_atomic(self, path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
        """Open a temporary file beside ``path``; rename it into place only on success."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
        try:
            os.fchmod(fd, file_mode())
            with os.fdopen(fd, mode) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def atomic_path(self, path: Path) -> Iterator[Path]:
        """Yield a temporary path for a tool (ffmpeg, yt-dlp…) to write; rename on success."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
        os.fchmod(fd, file_mode())
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically."""
        with self.open_atomic(path, "wb") as fh:
            fh.write(data)

    def write_json(self, path: Path, value: Any, *, compress: bool = False) -> None:
        """Write ``value`` as JSON (gzip-compressed if asked) atomically."""
        data = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        self.write_bytes(path, gzip.compress(data, mtime=0) if compress else data)

    @staticmethod
    def read_json(path: Path) -> Any:
        """Read JSON from ``path``, or from ``path`` + ``.gz`` if only the compressed one exists."""
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        gz = path.with_name(path.name + ".gz")
        return json.loads(gzip.decompress(gz.read_bytes()).decode("utf-8"))

    def leftovers(self, content_id: str) -> list[Path]:
        """Temporary files left by an interrupted write (for cleanup and tests)."""
        folder = self.folder(content_id)
        return sorted(folder.rglob(f"{TMP_PREFIX}*")) if folder.exists() else []
