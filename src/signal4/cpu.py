"""CPUs and thread shares: what a process may use, and each step's share of it.

A step sizes its own thread pools (Whisper's, onnxruntime's) from :func:`budget`:
``SIGNAL4_THREADS`` where its runner or the user set it, else every CPU it may use. A
runner that starts several steps at once sets the variable to each one's share
(:func:`share`). Standard library only: every step imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

#: The environment variable that gives a step its thread budget.
THREADS_VAR: Final = "SIGNAL4_THREADS"


class BadThreads(ValueError):
    """``SIGNAL4_THREADS`` is set to something that is not a whole number >= 1."""


def available() -> int:
    """The CPUs this process may use: its affinity mask (a container's or ``taskset``'s
    limit), or the machine's count where there is no such call."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def budget(environ: Mapping[str, str] | None = None) -> int:
    """How many threads a step's pools may use: ``SIGNAL4_THREADS``, else :func:`available`.

    :class:`BadThreads` names a value that is not a whole number >= 1.
    """
    raw = (os.environ if environ is None else environ).get(THREADS_VAR, "").strip()
    if not raw:
        return available()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise BadThreads(f"{THREADS_VAR}={raw!r}: must be a whole number >= 1")
    return value


def share(running: int) -> int:
    """Each step's thread share when ``running`` steps run at once (at least 1)."""
    return max(1, available() // max(1, running))
