"""Run a processing step's real CLI in-process and read its result line."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from signal4.content import settings
from signal4.content.state import StateDB
from signal4.content.store import ContentStore
from signal4.run import protocol
from signal4.run.steprunner import Step


def run_step(step: Step, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``step.main(args)``; return its exit code and its parsed result line."""
    settings.get.cache_clear()  # pick up env vars set by the test
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = step.main(list(args))
    result = protocol.parse_last_line(out.getvalue())
    assert protocol.EXIT_CODES[result["status"]] == code
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
