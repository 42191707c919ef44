"""A long step's progress, told to whoever runs it: JSON lines on stderr.

The form (one line each, results stay on stdout)::

    {"progress": {"done": <number>, "total": <number or null>, "unit": "bytes"|"seconds"}}

``done`` is how much is done so far, ``total`` how much there is (null when unknown: a
download without a Content-Length), ``unit`` what they count: ``bytes`` (downloads) or
``seconds`` (of audio, transcribe). The dispatcher (:mod:`signal4.run.dispatch`) takes
these lines out of the step's stderr, keeps them out of the stderr tail of its error
reports, and hands them to its ``on_progress`` callback; ``inv pipeline`` shows them on
the running step's line of its live view.

A step writes them only when its runner asks, with ``SIGNAL4_PROGRESS=1`` in its
environment (the dispatcher sets it when someone listens): a step run by hand, or on a
warm worker, prints none. :class:`Progress` writes at most one line per
:data:`INTERVAL` seconds (and a last one on :meth:`Progress.finish`) and never raises:
progress is never worth failing a step for.

Standard library only: this is imported by light steps.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import IO

#: The environment variable by which a runner asks a step for its progress.
ENV_VAR = "SIGNAL4_PROGRESS"
KEY = "progress"
UNITS = ("bytes", "seconds")
#: Seconds between two lines, at least.
INTERVAL = 0.25


def wanted(environ: dict[str, str] | None = None) -> bool:
    """Whether the runner asked for progress lines (``SIGNAL4_PROGRESS=1``)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return value.strip().lower() in ("1", "true", "yes")


def line(done: float, total: float | None, unit: str) -> str:
    """One progress line (without its newline)."""
    return json.dumps({KEY: {"done": done, "total": total, "unit": unit}}, separators=(", ", ": "))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return value if isinstance(value, int) else number


class Progress:
    """Report how far a step is, throttled; silent unless the runner asked for it.

    ``stream`` defaults to the current ``sys.stderr``; ``clock`` to ``time.monotonic``;
    ``enabled`` to :func:`wanted`.
    """

    def __init__(
        self,
        unit: str,
        total: float | None = None,
        *,
        interval: float = INTERVAL,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool | None = None,
    ) -> None:
        self.unit = unit if unit in UNITS else "bytes"
        self.total = _number(total)
        self.interval = interval
        self.stream = stream
        self.clock = clock
        try:
            self.enabled = wanted() if enabled is None else enabled
        except Exception:
            self.enabled = False
        self.done = 0.0
        self._last: float | None = None  # when the last line was written
        self._said: tuple[float, float | None] | None = None  # what it said

    def update(self, done: float, total: float | None = None) -> None:
        """``done`` so far (of ``total``, if given now); a line if the last is old enough."""
        try:
            number = _number(done)
            if number is None:
                return
            self.done = number
            if total is not None:
                self.total = _number(total)
            if not self.enabled:
                return
            now = self.clock()
            if self._last is not None and now - self._last < self.interval:
                return
            self._write(now)
        except Exception:
            return

    def finish(self) -> None:
        """Write the last value if it was not written yet (the end of a download, say)."""
        try:
            if self.enabled and self._said != (self.done, self.total):
                self._write(self.clock())
        except Exception:
            return

    def _write(self, now: float) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(line(self.done, self.total, self.unit) + "\n")
        stream.flush()
        self._last, self._said = now, (self.done, self.total)
