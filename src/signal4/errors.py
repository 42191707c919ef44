"""The one error path: every mistake a user can fix is a :class:`Signal4Error`.

Library code raises a subclass with a one-line message that says what to do next, and
the exit code it should end with. Only ``tasks.py`` turns it into an exit, in one place;
no module under ``src/`` calls ``sys.exit`` or imports the command layer for its errors.

Exit codes shared by every command:

====  ==========================================================================
1     the work failed (a step failed, a check failed, a start-up regressed)
2     a usage or configuration mistake (unknown name, env not synced, bad input)
3     the broker does not answer
4     the state DB cannot be reached, opened or written
124   a step ran past its time limit
130   interrupted (Ctrl-C)
====  ==========================================================================

Standard library only: this module is on every start-up path.
"""

from __future__ import annotations

import signal
from typing import ClassVar, Final

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_BROKER: Final = 3
EXIT_STATE_DB: Final = 4
EXIT_TIMEOUT: Final = 124
EXIT_INTERRUPTED: Final = 130


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
        super().__init__(f"interrupted by {sig.name}", code=128 + sig.value)
        self.signal = sig
