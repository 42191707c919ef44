"""What every runner of a plan shares: each item's result, the events a view gets, and how
one finished stage is settled.

Two runners execute a :class:`~signal4.run.plan.Plan`: the local one
(:class:`signal4.run.batch.Batch`: each step a process of its env's interpreter) and the
warm-worker one (:class:`signal4.workers.batch.WorkerBatch`: each item a Celery chain).
Both are a :class:`Runner`: they report :class:`Event`\\ s to a view while they run, and
return one :class:`ItemResult` per item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from signal4 import codes
from signal4.codes import ItemStatus
from signal4.run import dispatch
from signal4.run.plan import Item, Stage
from signal4.stepkit import protocol

if TYPE_CHECKING:
    pass


@dataclass
class ItemResult:
    """How one item ended."""

    item: Item
    status: ItemStatus = ItemStatus.WAITING
    error: str | None = None
    exit_code: int = 0
    seconds: float = 0.0
    ran: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == ItemStatus.DONE


@dataclass
class Event:
    """What the runner tells its view: a step started, reported progress, or finished.

    ``progress`` events come from the step's own thread (the dispatcher's stderr reader),
    with ``progress`` = ``{"done", "total", "unit"}`` (see :mod:`signal4.stepkit.progress`).
    """

    kind: str  # "start", "progress", "end" or "note"
    item: Item
    stage: Stage
    outcome: dispatch.Outcome | None = None
    started: float = 0.0
    note: str = ""
    progress: dict[str, Any] | None = None


def settle(result: ItemResult, stage: Stage, outcome: dispatch.Outcome) -> None:
    """One stage of ``result``'s item ended (here or on a worker): update the item.

    The stage is done when it succeeded with a content id; otherwise the item takes the
    failure (or the interruption) and its error. (What goes into the state DB, the runner's
    :class:`~signal4.run.record.StageRecorder` writes.)
    """
    item = result.item
    result.seconds += outcome.duration
    result.ran.append(stage.task.name)
    if item.content is None and outcome.ok:
        item.content = protocol.content_of(outcome.result)
    if outcome.ok and item.content is not None:
        stage.done = True
    elif outcome.ok:
        result.status, result.exit_code = ItemStatus.FAILED, codes.EXIT_FAILED
        result.error = f"{stage.task.name} reported no content id"
    elif outcome.interrupted:
        result.status, result.exit_code = ItemStatus.INTERRUPTED, outcome.exit_code
        result.error = f"{stage.task.name}: {outcome.error}"
    else:
        result.status, result.exit_code = ItemStatus.FAILED, outcome.exit_code
        result.error = f"{stage.task.name} {outcome.status}: {outcome.reason}"


class Runner(Protocol):
    """A way to run a plan: follow it to the end, telling ``on_event`` as it goes."""

    on_event: Callable[[Event], None]

    def run(self) -> list[ItemResult]:
        """Run every pending stage; return each item's result, in plan order."""
        ...
