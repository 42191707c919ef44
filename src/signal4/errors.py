"""The one error path: every mistake a user can fix is a :class:`Signal4Error`.

Library code raises a subclass with a one-line message that says what to do next, and
the exit code it should end with (:mod:`signal4.codes` names them). Only ``tasks.py``
turns it into an exit, in one place; no module under ``src/`` calls ``sys.exit`` or
imports the command layer for its errors.

Standard library only: this module is on every start-up path.
"""

from __future__ import annotations

import signal
from typing import ClassVar

from signal4.codes import EXIT_USAGE, exit_for_signal


class Signal4Error(Exception):
    """A fault the user can act on: ``str()`` is the one-line message, ``code`` the exit code."""

    code: ClassVar[int] = EXIT_USAGE

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may override the class default


class UsageError(Signal4Error):
    """A usage mistake: an unknown name, a bad flag value, a missing file (exit 2)."""


class Interrupted(Signal4Error):
    """A signal told us to stop (exit 128 + its number: 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(f"interrupted by {sig.name}", code=exit_for_signal(sig))
        self.signal = sig
