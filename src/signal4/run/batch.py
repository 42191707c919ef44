"""The local runner: a plan's steps run at the same time, within the manifest's limits.

A stage starts when its item's previous stage is done and there is room:

* at most the task's ``concurrency`` (from the manifest) copies of one task at once;
* at most ``jobs`` steps in all.

Each step runs in its env through the dispatcher, in a thread of this process, with
``SIGNAL4_THREADS`` set to its share of the CPUs (``cpus // jobs``, at least 1), so that
steps that use several threads themselves do not oversubscribe the cores. One item's
failure stops only that item. Every run is recorded in the state DB (``stage_run``: item,
stage, start, end, status, host).

Ctrl-C or SIGTERM: no new step starts, every running step's process group gets SIGTERM
(the dispatcher's grace period and SIGKILL follow if it does not stop), the runner waits
for all of them, then raises :class:`~signal4.errors.Interrupted`. Steps write
atomically, so the store and the state DB stay consistent; running the same batch again
resumes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from signal4 import codes, cpu
from signal4.codes import ItemStatus
from signal4.envs import layout, venv
from signal4.envs.manifest import Manifest
from signal4.errors import Interrupted
from signal4.run import dispatch, record
from signal4.run.plan import Item, Plan, Stage
from signal4.run.runner import Event, ItemResult, settle
from signal4.signals import handling

if TYPE_CHECKING:
    from signal4.content.state import StateDB
    from signal4.run.provenance import Checker


class Batch:
    """Run a :class:`Plan` with ``jobs`` steps at most at once."""

    def __init__(
        self,
        m: Manifest,
        plan: Plan,
        *,
        db: StateDB,
        jobs: int,
        on_event: Callable[[Event], None] = lambda e: None,
        env_vars: dict[str, str] | None = None,
        checker: Checker | None = None,
        content_root: Path | None = None,
    ) -> None:
        self.m = m
        self.plan = plan
        self.db = db
        self.jobs = max(1, jobs)
        self.on_event = on_event
        self.env_vars = {cpu.THREADS_VAR: str(cpu.share(self.jobs)), **(env_vars or {})}
        self.results = {id(i): ItemResult(i) for i in plan.items}
        self._pids: dict[int, int] = {}  # thread id -> step pid
        self._lock = threading.Lock()
        self._stopping = False
        #: Records each stage: the step's records, its run, its provenance (with a checker).
        self.recorder = record.StageRecorder(
            db,
            content_root,
            m=m,
            checker=checker,
            lock=layout.lock_hash(m) if checker is not None else None,
        )
        self._tickets: dict[tuple[int, str], record.Ticket] = {}

    # ----------------------------------------------------------------- scheduling

    def _next_stage(self, item: Item) -> Stage | None:
        return next((s for s in item.stages if not s.done), None)

    def _args(self, item: Item, stage: Stage) -> list[str]:
        args = list(stage.args)
        if item.content is not None and "--content" not in args:
            args += ["--content", item.content]
        if stage.rewrite and "--rewrite" not in args:
            args.append("--rewrite")
        return args

    def _startable(
        self, running: dict[Future[dispatch.Outcome], tuple[Item, Stage, float]]
    ) -> Iterator[tuple[Item, Stage]]:
        """The (item, next stage) pairs that may start now, within the limits."""
        busy_items = {id(item) for item, _s, _t in running.values()}
        per_task: dict[str, int] = {}
        for _item, stage, _t in running.values():
            per_task[stage.task.name] = per_task.get(stage.task.name, 0) + 1
        slots = self.jobs - len(running)
        for item in self.plan.items:
            result = self.results[id(item)]
            if id(item) in busy_items or result.status.finished:
                continue
            nxt = self._next_stage(item)
            if nxt is None:
                result.status = ItemStatus.DONE
                continue
            if slots <= 0:
                return
            if per_task.get(nxt.task.name, 0) >= nxt.task.concurrency:
                continue
            per_task[nxt.task.name] = per_task.get(nxt.task.name, 0) + 1
            busy_items.add(id(item))
            slots -= 1
            yield item, nxt

    def _run_step(self, item: Item, stage: Stage) -> dispatch.Outcome:
        me = threading.get_ident()

        def started(pid: int) -> None:
            with self._lock:
                self._pids[me] = pid
                stopping = self._stopping
            if stopping:  # the batch was interrupted while this step was starting
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)

        # what the step reads, as it is before it runs (its provenance's inputs)
        ticket = self.recorder.before(stage.task, item.content)
        with self._lock:
            self._tickets[(id(item), stage.task.name)] = ticket
        try:
            return dispatch.run(
                self.m,
                stage.task,
                self._args(item, stage),
                env_vars=self.env_vars,
                on_start=started,
                on_progress=lambda p: self.on_event(Event("progress", item, stage, progress=p)),
            )
        finally:
            with self._lock:
                self._pids.pop(me, None)

    def _finished(self, item: Item, stage: Stage, outcome: dispatch.Outcome, began: float) -> None:
        with self._lock:
            ticket = self._tickets.pop((id(item), stage.task.name), None)
        if ticket is None:  # it never started (stopped while starting)
            ticket = self.recorder.before(stage.task, item.content)
        for note in self.recorder.after(ticket, outcome, item=item.label):
            self.on_event(Event("note", item, stage, outcome, note=note))
        settle(self.results[id(item)], stage, outcome)
        self.on_event(Event("end", item, stage, outcome, began))

    def run(self) -> list[ItemResult]:
        """Run every pending stage; return each item's result, in plan order.

        Raises :class:`~signal4.errors.Interrupted` after stopping every running step on
        Ctrl-C or SIGTERM.
        """
        for item in self.plan.items:
            if item.error:
                self.results[id(item)].status = ItemStatus.FAILED
                self.results[id(item)].error = item.error
                self.results[id(item)].exit_code = codes.EXIT_FAILED
        running: dict[Future[dispatch.Outcome], tuple[Item, Stage, float]] = {}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="signal4-step")
        # the batch's envs stay in use between its steps too: inv clean leaves them alone
        used = {s.task.env for item in self.plan.items for s in item.pending}
        try:
            with _stop_on_signals(), venv.in_use(self.m, used):
                while True:
                    for item, stage in list(self._startable(running)):
                        self.results[id(item)].status = ItemStatus.RUNNING
                        began = time.monotonic()
                        running[pool.submit(self._run_step, item, stage)] = (item, stage, began)
                        self.on_event(Event("start", item, stage, started=began))
                    if not running:
                        break
                    done, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                    for future in done:
                        item, stage, began = running.pop(future)
                        self._finished(item, stage, future.result(), began)
        except (KeyboardInterrupt, Interrupted) as exc:
            sig = exc.signal if isinstance(exc, Interrupted) else signal.SIGINT
            with _repeat_stop(self):
                self._stop(sig)
                for future, (item, stage, began) in list(running.items()):
                    self._finished(item, stage, future.result(), began)
            for result in self.results.values():
                if not result.status.finished:
                    result.status = ItemStatus.INTERRUPTED
            raise Interrupted(sig) from None
        finally:
            pool.shutdown(wait=True)
        return [self.results[id(i)] for i in self.plan.items]

    def _stop(self, _sig: signal.Signals | None = None) -> None:
        """SIGTERM every running step's process group (the dispatcher escalates to SIGKILL)."""
        with self._lock:
            self._stopping = True
            pids = list(self._pids.values())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)


def _stop_on_signals() -> contextlib.AbstractContextManager[None]:
    """While a batch runs, SIGTERM (like Ctrl-C) raises Interrupted in the main thread."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum))

    return handling(handler, [signal.SIGTERM])


def _repeat_stop(batch: Batch) -> contextlib.AbstractContextManager[None]:
    """While the batch waits for its stopped steps, another signal only repeats the stop."""
    return handling(lambda _signum, _frame: batch._stop())
