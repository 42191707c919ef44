"""The result protocol every processing step speaks.

A step prints exactly one JSON object as the **last line** of its stdout, with a
``status`` key, and exits with the matching code:

========================  =========
status                    exit code
========================  =========
``completed``             0
``skipped``               0
``invalid_input``         2
``failed``                1
========================  =========

The dispatcher adds ``timed_out`` (the step ran past its timeout and was stopped) and
treats a missing or garbled result line, or one that disagrees with the exit code,
as ``failed``. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from signal4.codes import EXIT_CODES, STEP_STATUSES, Status


class ProtocolError(ValueError):
    """A step's output does not follow the result protocol."""


def encode(result: dict[str, Any]) -> str:
    """Return ``result`` as the single line a step prints last."""
    if result.get("status") not in STEP_STATUSES:
        wanted = ", ".join(STEP_STATUSES)
        raise ProtocolError(f"status must be one of {wanted}, got {result.get('status')!r}")
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)


def parse_last_line(stdout: str) -> dict[str, Any]:
    """Return the result object from the last non-empty line of ``stdout``."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ProtocolError("the step printed no result line on stdout")
    return parse_line(lines[-1])


def parse_line(line: str) -> dict[str, Any]:
    """Return the result object encoded in ``line``."""
    try:
        value = json.loads(line)
    except ValueError:
        raise ProtocolError(f"the last stdout line is not JSON: {line[:120]!r}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"the last stdout line is not a JSON object: {line[:120]!r}")
    if value.get("status") not in STEP_STATUSES:
        raise ProtocolError(f"the result has no valid status: {line[:120]!r}")
    return value


def content_of(result: Mapping[str, Any]) -> str | None:
    """The content id a step's result names (a download may name several: the first)."""
    if result.get("content"):
        return str(result["content"])
    contents = result.get("contents") or []
    return str(contents[0]) if contents else None


def verdict(result: Mapping[str, Any]) -> tuple[Status, int, str | None]:
    """(status, exit code, error) of a well-formed result: the one result -> outcome rule.

    The dispatcher (a step's last stdout line) and the submitter (a warm worker's return
    value) both use it; ``error`` is the step's own message for a failure, else None.
    """
    try:
        status = Status(result["status"])
    except ValueError:
        raise ProtocolError(f"the result has no valid status: {result['status']!r}") from None
    error = result.get("error") if not status.ok else None
    return status, EXIT_CODES[status], None if error is None else str(error)
