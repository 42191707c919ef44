"""Statuses and exit codes: the one place they are named.

Three kinds of status, three enums (each a ``str``, so it compares equal to the word and
goes into JSON and the state DB as the word):

* :class:`Status`: how one run of a step ended, as its result line says it (the runner
  adds ``timed_out``, and names a run stopped by a signal ``interrupted``);
* :class:`StageState`: a stage of an item in the state DB (``pending``: no record yet);
* :class:`ItemStatus`: an item as a batch runner follows it.

Exit codes shared by every command and step:

====  ==========================================================================
0     done (a step completed or skipped)
1     the work failed (a step failed, a check failed, a start-up regressed)
2     a usage or configuration mistake (unknown name, env not synced, bad input)
3     the broker does not answer
4     the state DB cannot be reached, opened or written
124   a step ran past its time limit
130   interrupted by Ctrl-C (128 + the signal's number: 143 for SIGTERM)
====  ==========================================================================

Standard library only: every step and every task imports this module.
"""

from __future__ import annotations

import enum
import signal
from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
#: A step's bad input is a usage mistake too.
EXIT_INVALID: Final = EXIT_USAGE
EXIT_BROKER: Final = 3
EXIT_STATE_DB: Final = 4
EXIT_TIMEOUT: Final = 124
#: What a shell reports for a command ended by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED: Final = 128 + signal.SIGINT


def exit_for_signal(sig: int) -> int:
    """The exit code of a command stopped by ``sig``: 128 + its number, as shells say."""
    return 128 + int(sig)


class Status(enum.StrEnum):
    """How one run of a step ended."""

    COMPLETED = "completed"
    SKIPPED = "skipped"
    INVALID_INPUT = "invalid_input"
    FAILED = "failed"
    #: Added by the runner: the step ran past its time limit and was stopped.
    TIMED_OUT = "timed_out"
    #: Added by the runner: Ctrl-C or SIGTERM stopped the step (it did not fail).
    INTERRUPTED = "interrupted"

    @property
    def ok(self) -> bool:
        """Whether the run left the stage done."""
        return self in (Status.COMPLETED, Status.SKIPPED)

    @property
    def exit_code(self) -> int:
        """The exit code that goes with this status."""
        return EXIT_CODES[self]


#: What a step itself may report on its result line.
STEP_STATUSES: Final = (Status.COMPLETED, Status.SKIPPED, Status.INVALID_INPUT, Status.FAILED)

EXIT_CODES: Final[dict[str, int]] = {
    Status.COMPLETED: EXIT_OK,
    Status.SKIPPED: EXIT_OK,
    Status.INVALID_INPUT: EXIT_INVALID,
    Status.FAILED: EXIT_FAILED,
    Status.TIMED_OUT: EXIT_TIMEOUT,
    Status.INTERRUPTED: EXIT_INTERRUPTED,
}


class StageState(enum.StrEnum):
    """A stage of an item in the state DB."""

    DONE = "done"
    FAILED = "failed"
    INVALID_INPUT = "invalid_input"
    TIMED_OUT = "timed_out"
    #: Stopped by Ctrl-C or SIGTERM: it did not fail, it was not let finish.
    INTERRUPTED = "interrupted"
    #: Never recorded (shown only; the DB has no row for it).
    PENDING = "pending"


#: What a record of a stage may say (everything but ``pending``, which is no record).
RECORDED_STATES: Final = frozenset(s for s in StageState if s is not StageState.PENDING)


class ItemStatus(enum.StrEnum):
    """An item of a batch, as its runner follows it."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """Whether nothing more of the item will run in this batch."""
        return self in (ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.INTERRUPTED)
