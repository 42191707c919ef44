"""Run a processing step's real CLI in-process and read its result line; a small disk."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signal4 import codes
from signal4.content import settings
from signal4.content.state import StateDB
from signal4.content.store import ContentStore
from signal4.run import record
from signal4.stepkit import protocol
from signal4.stepkit.step import Step


def run_step(step: Step, *args: str, record_state: bool = True) -> tuple[int, dict[str, Any]]:
    """Run ``step.main(args)``; return its exit code and its parsed result line.

    As a runner does, the result's records are then written to the state DB
    (``record_state=False``: not, to see what the step alone leaves).
    """
    settings.get.cache_clear()  # pick up env vars set by the test
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = step.main(list(args))
    result = protocol.parse_last_line(out.getvalue())
    assert codes.EXIT_CODES[result["status"]] == code
    if record_state:
        try:
            conf = settings.get()
        except settings.SettingsError:
            return code, result
        record.apply(db(), result, content_root=conf.content_root)
    return code, result


def store() -> ContentStore:
    """The content store of the current (isolated) settings."""
    return ContentStore(settings.get().content_root)


def db() -> StateDB:
    """The state DB of the current (isolated) settings."""
    return StateDB(settings.get().db_url)


def states(content_id: str) -> dict[str, str]:
    """Stage -> status of ``content_id`` in the test's state DB."""
    item = db().get(content_id)
    return {row.stage: row.status for row in item.steps} if item else {}


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``path`` for the block: a disk that fills up.

    Skips the test, saying why, where this machine does not let us mount one.
    """
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs a small tmpfs, and mounting one needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)
