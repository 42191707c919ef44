"""The errors of ``inv measure``. Standard library only (the way registry imports this)."""

from __future__ import annotations

from signal4.errors import Signal4Error


class MeasureError(Signal4Error, ValueError):
    """A bad option or baseline (exit 2); the message says what to do."""


class ProbeError(RuntimeError):
    """A launch did not exit 0 with a ready line; the message holds its stderr tail.

    Not a user error: it is caught and recorded as the task's (or the way's) failure.
    """
