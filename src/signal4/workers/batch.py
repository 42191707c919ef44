"""The warm-worker runner: a plan's items as Celery chains, all sent at once.

``inv pipeline --workers`` executes the same :class:`~signal4.run.plan.Plan` as the local
runner (:mod:`signal4.run.batch`): each item with pending stages becomes one Celery chain
of those stages only (a done stage is not sent; an item with nothing pending sends
nothing), and every chain is sent before the first result is awaited. The env queues and
the workers' pool sizes do the limiting. A stage is "running" once its worker reports it
started; each finished stage is recorded in the state DB as the local runner records it
(``stage_run``, with the host the worker names), and the view gets the same
:class:`~signal4.run.runner.Event`\\ s.

One item's failure stops only its chain. A stage that the workers have not finished past
its hard time limit plus :data:`~signal4.workers.submit.WAIT_MARGIN` seconds without
progress (its worker died and no other took it back) is given up: that item ends
``timed_out`` and :attr:`WorkerBatch.gave_up` names it (``inv pipeline`` exits 124).
Ctrl-C or SIGTERM revokes every task of the batch that has not finished (a running one is
told to stop with SIGTERM), records what ends in the next seconds, and raises
:class:`~signal4.errors.Interrupted`. Revoking is best effort: a worker that starts later
does not know of it.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from signal4 import codes
from signal4.codes import ItemStatus, Status
from signal4.envs.manifest import Manifest
from signal4.errors import Interrupted
from signal4.run import dispatch
from signal4.run.plan import Item, Plan, Stage
from signal4.run.record import StageRecorder
from signal4.run.runner import Event, ItemResult, settle
from signal4.signals import handling

if TYPE_CHECKING:
    from signal4.content.state import StateDB

#: Seconds between two looks at the results.
POLL = 0.25
#: Seconds the runner waits, after Ctrl-C, for the revoked running stages to end.
STOP_WAIT = 15.0


def stage_args(item: Item, stage: Stage) -> list[str]:
    """The argv of ``stage`` as the local runner builds it (``--content`` when known).

    Without a known id (a video before its download), a worker takes it from the previous
    stage's result in the chain.
    """
    args = list(stage.args)
    if item.content is not None and "--content" not in args:
        args += ["--content", item.content]
    if getattr(stage, "rewrite", False) and "--rewrite" not in args:
        args.append("--rewrite")  # done, but to be made again (a rerun trigger)
    return args


def host_of(result: dict[str, Any], node: str | None) -> str | None:
    """The host a stage ran on: the result's ``host``, else the worker node's host part."""
    host = result.get("host")
    if isinstance(host, str) and host:
        return host
    if node and "@" in node:
        return node.rsplit("@", 1)[1] or None
    return node or None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Chain:
    """One item's chain as it is followed: its pending stages and their Celery results."""

    item: Item
    stages: list[Stage]
    results: list[Any] = field(default_factory=list)
    index: int = 0  # the stage awaited now
    began: float | None = None  # when the awaited stage was seen started
    node: str | None = None  # the worker node running it
    watch: Any = None

    @property
    def stage(self) -> Stage:
        return self.stages[self.index]

    @property
    def result(self) -> Any:
        return self.results[self.index]


class WorkerBatch:
    """Run a :class:`Plan` on warm workers: one chain per item, all sent at once."""

    def __init__(
        self,
        m: Manifest,
        plan: Plan,
        *,
        db: StateDB,
        broker: str | None = None,
        on_event: Callable[[Event], None] = lambda e: None,
        say: Callable[[str], None] = _say,
        poll: float = POLL,
    ) -> None:
        from signal4.workers import celeryapp

        self.m = m
        self.plan = plan
        #: The workers write each step's records and provenance; this side records each
        #: stage's run, and a failure no worker could report (a revoked or lost task).
        self.recorder = StageRecorder(db, None, records=False)
        self.url = celeryapp.broker_url(broker)
        self.on_event = on_event
        self.say = say
        self.poll = poll
        self.results = {id(i): ItemResult(i) for i in plan.items}
        #: The items whose stage the runner gave up waiting for (exit 124).
        self.gave_up: list[Item] = []
        #: The chains sent, one per item with stages to run.
        self.chains: list[_Chain] = []
        for item in plan.items:
            if item.error:
                result = self.results[id(item)]
                result.status, result.error = ItemStatus.FAILED, item.error
                result.exit_code = codes.EXIT_FAILED
            elif not item.pending:
                self.results[id(item)].status = ItemStatus.DONE

    def _todo(self) -> list[Item]:
        return [i for i in self.plan.items if self.results[id(i)].status == ItemStatus.WAITING]

    def check(self) -> None:
        """Refuse before anything is sent: the broker must answer, every env a worker have.

        Raises :class:`~signal4.workers.wire.BrokerUnavailable` (exit 3), or
        :class:`~signal4.workers.wire.NoWorkerError` / ``DriftError`` (exit 2).
        """
        from signal4.workers import submit

        envs = {s.task.env for item in self._todo() for s in item.pending}
        if envs:
            submit.preflight(self.m, envs, self.url)

    def run(self) -> list[ItemResult]:
        """Send every pending stage and follow them; return each item's result, in plan order."""
        from signal4.workers import submit

        todo = self._todo()
        if todo:
            self.check()
            app = submit.submitter(self.m, self.url)
            try:
                with handling(_raise_interrupted, [signal.SIGTERM]):
                    try:
                        self._send(app, todo)
                        self._follow(self.chains)
                    except (KeyboardInterrupt, Interrupted) as exc:
                        sig = exc.signal if isinstance(exc, Interrupted) else signal.SIGINT
                        with handling(lambda _s, _f: None):  # a second Ctrl-C: we are stopping
                            self._stop(app, self.chains)
                        raise Interrupted(sig) from None
            finally:
                submit.close_app(app)
        return [self.results[id(i)] for i in self.plan.items]

    # ----------------------------------------------------------------- sending

    def _send(self, app: Any, items: Sequence[Item]) -> None:
        """One chain per item, of its pending stages only; every chain sent now."""
        from celery import chain

        from signal4.workers import submit

        for item in items:
            stages = item.pending
            sigs = [submit.signature(app, s.task, stage_args(item, s)) for s in stages]
            last = submit.publish(chain(*sigs).apply_async, self.url)
            results: list[Any] = []
            node = last
            while node is not None:
                results.append(node)
                node = node.parent
            results.reverse()
            self.chains.append(_Chain(item, stages, results))

    # ----------------------------------------------------------------- following

    def _follow(self, chains: list[_Chain]) -> None:
        from signal4.workers import submit
        from signal4.workers.wire import WaitTimeout

        active = list(chains)
        outage: dict[str, float] = {}
        quiet = _Quiet(self.say)
        while active:
            for ch in list(active):
                got = submit.meta_of(ch.result, outage)
                if got is None:
                    continue
                state, info = got
                if state in submit.READY_STATES:
                    quiet.moved()
                    if not self._ready(ch, state):
                        active.remove(ch)
                    continue
                if state == "STARTED" and ch.began is None:
                    quiet.moved()
                    self._started(ch, info)
                if ch.watch is not None:
                    try:
                        ch.watch.see(state, info)
                    except WaitTimeout as exc:
                        quiet.moved()
                        self._give_up(ch, str(exc))
                        active.remove(ch)
            if active:
                quiet.check(active)
                time.sleep(self.poll)

    def _started(self, ch: _Chain, info: Any) -> None:
        from signal4.workers import submit

        ch.began = time.monotonic()
        ch.node = info.get("hostname") if isinstance(info, dict) else None
        # from now on the stage's time limit counts: give up past it (see Watch)
        ch.watch = submit.watch_for(ch.stage.task, ch.result, broker=self.url)
        ch.watch.say = self.say
        self.results[id(ch.item)].status = ItemStatus.RUNNING
        self.on_event(Event("start", ch.item, ch.stage, started=ch.began))

    def _ready(self, ch: _Chain, state: str) -> bool:
        """Record the awaited stage's end; True if the chain goes on to its next stage."""
        from signal4.workers import submit

        if ch.began is None:  # it started and ended between two looks
            self._started(ch, None)
        assert ch.began is not None
        outcome = submit.as_outcome(
            ch.stage.task, state, ch.result.result, time.monotonic() - ch.began
        )
        seconds = outcome.result.get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            outcome = replace(outcome, duration=float(seconds))
        self._finished(ch.item, ch.stage, outcome, ch.began, host_of(outcome.result, ch.node))
        ok = self.results[id(ch.item)].status not in (ItemStatus.FAILED, ItemStatus.INTERRUPTED)
        ch.index, ch.began, ch.node, ch.watch = ch.index + 1, None, None, None
        if ok and ch.index < len(ch.stages):
            return True
        if ok:
            self.results[id(ch.item)].status = ItemStatus.DONE
        return False

    def _give_up(self, ch: _Chain, why: str) -> None:
        assert ch.began is not None
        outcome = dispatch.Outcome(
            task=ch.stage.task.name,
            env=ch.stage.task.env,
            status=Status.TIMED_OUT,
            exit_code=codes.EXIT_TIMEOUT,
            returncode=None,
            duration=time.monotonic() - ch.began,
            error=why,
        )
        self.gave_up.append(ch.item)
        self._finished(ch.item, ch.stage, outcome, ch.began, host_of({}, ch.node))

    def _finished(
        self,
        item: Item,
        stage: Stage,
        outcome: dispatch.Outcome,
        began: float,
        host: str | None,
    ) -> None:
        """One stage ended on a worker: record its run, update its item, tell the view."""
        ticket = self.recorder.before(stage.task, item.content)
        ticket.started -= dt.timedelta(seconds=time.monotonic() - began)
        for note in self.recorder.after(ticket, outcome, item=item.label, host=host):
            self.on_event(Event("note", item, stage, outcome, note=note))
        settle(self.results[id(item)], stage, outcome)
        self.on_event(Event("end", item, stage, outcome, began))

    # ----------------------------------------------------------------- stopping

    def _stop(self, app: Any, chains: list[_Chain]) -> None:
        """Revoke every task not finished (SIGTERM to the running ones); record what ends."""
        from signal4.workers import submit
        from signal4.workers.wire import connection_errors

        open_chains = [
            ch
            for ch in chains
            if ch.index < len(ch.stages) and not self.results[id(ch.item)].status.finished
        ]
        ids = [str(r.id) for ch in open_chains for r in ch.results[ch.index :]]
        running = [ch for ch in open_chains if ch.began is not None]
        if ids:
            try:
                app.control.revoke(ids, terminate=True, signal="SIGTERM")
            except connection_errors() as exc:
                self.say(f"pipeline: could not revoke the batch's tasks ({exc}); they may run")
                running = []
            else:
                self.say(
                    f"pipeline: revoked {len(ids)} task(s) on the workers "
                    f"({len(running)} running, told to stop with SIGTERM); a worker that "
                    "starts later does not know of it"
                )
        deadline = time.monotonic() + STOP_WAIT
        outage: dict[str, float] = {}
        while running and time.monotonic() < deadline:
            for ch in list(running):
                got = submit.meta_of(ch.result, outage)
                if got is not None and got[0] in submit.READY_STATES:
                    running.remove(ch)
                    self._interrupted(ch, got[0])
            if running:
                time.sleep(self.poll)
        for result in self.results.values():
            if not result.status.finished:
                result.status = ItemStatus.INTERRUPTED

    def _interrupted(self, ch: _Chain, state: str) -> None:
        from signal4.workers import submit

        assert ch.began is not None
        outcome = submit.as_outcome(
            ch.stage.task, state, ch.result.result, time.monotonic() - ch.began
        )
        if state == "REVOKED":
            outcome = replace(
                outcome,
                status=Status.INTERRUPTED,
                exit_code=codes.EXIT_INTERRUPTED,
                error="interrupted: revoked",
            )
        self._finished(ch.item, ch.stage, outcome, ch.began, host_of(outcome.result, ch.node))


class _Quiet:
    """Say which queues hold the waiting stages when nothing has moved for a while."""

    def __init__(self, say: Callable[[str], None]) -> None:
        from signal4.workers.submit import PATIENCE

        self.say = say
        self.patience = PATIENCE
        self.since = self.told = time.monotonic()
        self.gap = self.patience

    def moved(self) -> None:
        self.since = self.told = time.monotonic()
        self.gap = self.patience

    def check(self, active: Sequence[_Chain]) -> None:
        now = time.monotonic()
        if now - self.told < self.gap:
            return
        self.told, self.gap = now, min(2 * self.gap, 20 * self.patience)
        queued: dict[str, int] = {}
        for ch in active:
            if ch.began is None:
                queued[ch.stage.task.queue] = queued.get(ch.stage.task.queue, 0) + 1
        running = len(active) - sum(queued.values())
        where = ", ".join(f"{n} on {q}" for q, n in sorted(queued.items())) or "none"
        self.say(
            f"pipeline: no stage has ended or started for {now - self.since:.0f} s; "
            f"{running} running, queued: {where} (inv workers lists who serves them)"
        )


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum))
