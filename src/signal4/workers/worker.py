"""The warm worker: one env's steps as Celery tasks, inside that env's own interpreter.

Started by ``inv worker <env>`` (``python -m celery -A signal4.workers.workerapp worker``).

* one Celery task per manifest task of the env, ``signal4.<task>``; its payload is the
  step's argv (a list of strings), optionally preceded by the previous step's result in a
  chain. :meth:`Step.run_argv` parses it and runs the step, the same entry point as the
  step's CLI, so a step has one implementation and one argv -> result mapping;
* ``signal4.ping``: "is this task's step ready here?", the probe of ``inv measure``'s
  ``warm`` way;
* pool processes import their steps' heavy modules when they start (``Step.ready``), so
  even the first task is warm;
* a malformed payload gives an ``invalid_input`` result; the worker keeps running;
* a message that is no task at all (not JSON, not a kombu envelope, an undecodable body) is
  logged and dropped, and the worker keeps serving; the unacknowledged tasks of a dead worker
  go back on their queue (:mod:`signal4.workers.transport`);
* the soft time limit ends the step as ``timed_out``, even when the step wraps the
  exception it raises (:class:`SoftLimitFlag`);
* a step's result names the host it ran on (``host``), which the batch runner records;
* every worker announces itself on Redis (:data:`~signal4.workers.wire.HEARTBEAT_PREFIX`
  ``<node>``: host, env, lock hash, concurrency, tasks done).

Celery is imported inside functions: nothing here is on a step's ``--help`` path.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from signal4.codes import Status
from signal4.envs import layout
from signal4.envs.manifest import Manifest, Task
from signal4.run.dispatch import Outcome
from signal4.run.record import StageRecorder, content_arg
from signal4.stepkit import protocol
from signal4.stepkit.step import InvalidInput, Step
from signal4.workers import celeryapp
from signal4.workers.wire import (
    CONCURRENCY_VAR,
    ENV_VAR,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_PREFIX,
    HEARTBEAT_TTL,
    OK_STATUSES,
    redis_client,
)

#: The kombu transport a worker uses (:mod:`signal4.workers.transport`).
TRANSPORT = "signal4.workers.transport:Transport"


def load_step(task: Task) -> Step:
    """The :class:`Step` of a manifest task (imports its light module only)."""
    step = getattr(importlib.import_module(task.module), "STEP", None)
    if not isinstance(step, Step):
        raise InvalidInput(f"{task.module} defines no STEP")
    return step


def split_payload(payload: Sequence[Any], extra: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """(previous result or None, argv) from a task's positional args; InvalidInput if malformed.

    A task's args are ``[argv]``, or ``[previous_result, argv]`` inside a chain (Celery puts
    the parent's return value first).
    """
    if extra:
        raise InvalidInput(f"unexpected keyword arguments: {', '.join(sorted(extra))}")
    if len(payload) == 1:
        previous, argv = None, payload[0]
    elif len(payload) == 2 and isinstance(payload[0], dict):
        previous, argv = payload
    else:
        raise InvalidInput(
            f"expected [argv] or [previous result, argv], got {len(payload)} arguments"
        )
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise InvalidInput(f"argv must be a list of strings, got {type(argv).__name__}")
    return previous, list(argv)


def run_payload(
    task: Task,
    payload: Sequence[Any],
    extra: Mapping[str, Any],
    *,
    reraise: tuple[type[BaseException], ...] = (),
    m: Manifest | None = None,
) -> dict[str, Any]:
    """Run ``task``'s step on a Celery payload; always return a result dict.

    The step's records (its state changes) are written to the state DB here, as the
    local runner writes them, by this worker's :class:`~signal4.run.record.StageRecorder`.
    With the manifest ``m``, a completed stage's provenance is recorded too, with this
    worker's host and announced lock.
    """
    try:
        previous, argv = split_payload(payload, extra)
    except InvalidInput as exc:
        return {
            "status": Status.INVALID_INPUT,
            "step": task.name,
            "error": f"malformed task payload: {exc}",
        }
    if previous is not None:
        if previous.get("status") not in OK_STATUSES:
            return {
                "status": Status.FAILED,
                "step": task.name,
                "error": f"not run: {previous.get('step')} ended {previous.get('status')}",
            }
        cid = protocol.content_of(previous)
        if cid and "--content" not in argv:
            argv = ["--content", cid, *argv]
    step = load_step(task)
    recorder = _recorder(m, task.env)
    ticket = recorder.before(task, content_arg(argv)) if recorder is not None else None
    started = time.monotonic()
    result = step.run_argv(argv, reraise=reraise)
    if recorder is not None and ticket is not None:
        outcome = Outcome.of_result(task, result, time.monotonic() - started)
        for note in recorder.after(ticket, outcome):
            print(f"warning: {note}", file=sys.stderr)
    return result


_RECORDERS: dict[tuple[str, str], StageRecorder] = {}


def _recorder(m: Manifest | None, env: str) -> StageRecorder | None:
    """This worker's recorder of ``env``'s stages: the step's records and, with the manifest
    ``m``, its provenance, with this worker's host and announced lock (the client of the
    batch records each run). None where a setting is unusable: the step says which."""
    from signal4.content import settings

    try:
        conf = settings.get()
    except settings.SettingsError:
        return None
    key = (str(m.root) if m is not None else "", env)
    if key not in _RECORDERS:
        from signal4.run.provenance import Checker

        _RECORDERS[key] = StageRecorder(
            conf.db_url,
            conf.content_root,
            m=m,
            checker=Checker(m, ()) if m is not None else None,
            lock=announced_lock(m, env) if m is not None else None,
            runs=False,
        )
    return _RECORDERS[key]


def timed_out(
    task: Task, limit: float | None, result: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The result of a step stopped by its soft time limit (keeps ``result``'s content id)."""
    out = {
        "status": Status.TIMED_OUT,
        "step": task.name,
        "error": f"timed out after {limit or task.timeout:g} s (soft time limit)",
    }
    for key in ("content", "seconds"):
        if result and key in result:
            out[key] = result[key]
    return out


class SoftLimitFlag:
    """Whether the soft time limit fired during the current task (in a pool process).

    Celery's pool signals the soft limit (SIGUSR1) and its handler raises
    ``SoftTimeLimitExceeded`` wherever the step is. A step that catches it, or wraps it
    (``StepFailure("Whisper failed…: SoftTimeLimitExceeded()")``), would end ``failed``; the
    worker asks this flag instead, whatever the exception became. The pool installs its
    handler after a process starts, so :meth:`arm` wraps it when a task starts.
    """

    def __init__(self) -> None:
        self.fired = False
        self.previous: Any = None

    def arm(self) -> None:
        """A task starts: clear the flag and make sure the soft-limit signal sets it."""
        import signal

        self.fired = False
        try:
            from billiard.pool import SIG_SOFT_TIMEOUT
        except ImportError:  # pragma: no cover - billiard comes with celery
            return
        if SIG_SOFT_TIMEOUT is None:
            return
        current = signal.getsignal(SIG_SOFT_TIMEOUT)
        if current == self.on_signal:
            return
        try:
            signal.signal(SIG_SOFT_TIMEOUT, self.on_signal)
        except ValueError:  # not the main thread (a thread pool): no signal to watch
            return
        self.previous = current

    def on_signal(self, signum: int, frame: Any) -> None:
        self.fired = True
        if callable(self.previous):
            self.previous(signum, frame)


def ping(
    m: Manifest, env: str, payload: Sequence[Any], *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Answer ``[task]`` or ``[task, seconds]``: the task's step is ready here (after a nap)."""
    try:
        if not 1 <= len(payload) <= 2 or not isinstance(payload[0], str):
            raise InvalidInput("expected [task] or [task, seconds]")
        task = m.task(payload[0])
        if task.env != env:
            raise InvalidInput(f"task {task.name!r} runs in env {task.env!r}, not {env!r}")
        nap = float(payload[1]) if len(payload) == 2 else 0.0
    except (InvalidInput, KeyError, TypeError, ValueError) as exc:
        return {"status": Status.INVALID_INPUT, "step": "ping", "error": f"ping: {exc}"}
    load_step(task).ready()
    if nap > 0:
        sleep(nap)
    return {
        "status": Status.COMPLETED,
        "step": task.name,
        "ready": True,
        "env": env,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.executable,
    }


def announced_lock(m: Manifest, env: str) -> str:
    """The lock hash a worker of ``env`` announces: its env's sync stamp (or the override)."""
    from signal4.content import settings

    override = settings.get().worker_lock_hash
    if override:
        return override
    stamp = layout.read_stamp(layout.spec(m, env)) or {}
    return str(stamp.get("lock") or layout.lock_hash(m))


class Heartbeat:
    """Announce a worker on Redis until it stops (a daemon thread in the main process)."""

    def __init__(self, broker: str, node: str, fields: Mapping[str, str]) -> None:
        self.key = HEARTBEAT_PREFIX + node
        self.fields = dict(fields)
        self.client = redis_client(broker)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="signal4-heartbeat", daemon=True)

    def beat(self) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self.key, mapping={**self.fields, "seen": f"{time.time():.3f}"})
        pipe.hsetnx(self.key, "done", "0")
        pipe.expire(self.key, int(HEARTBEAT_TTL))
        pipe.execute()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self.beat()
            except Exception as exc:  # Redis restarting: try again next beat
                print(f"signal4: heartbeat failed: {exc}", file=sys.stderr)
            self.stopped.wait(HEARTBEAT_INTERVAL)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.client.delete(self.key)
        except Exception as exc:
            print(f"signal4: could not remove the heartbeat: {exc}", file=sys.stderr)


def build_worker_app(env: str | None = None, m: Manifest | None = None) -> Any:
    """The Celery app of a worker for ``env`` (default: ``$SIGNAL4_WORKER_ENV``)."""
    from celery import signals
    from celery.exceptions import SoftTimeLimitExceeded

    from signal4.envs import manifest

    m = m or manifest.load()
    env = env or os.environ.get(ENV_VAR) or ""
    if not env:
        raise RuntimeError(f"{ENV_VAR} is not set; start a worker with: inv worker <env>")
    tasks = m.tasks_of(env)
    app = celeryapp.create(m)
    broker = str(app.conf.broker_url)
    # kombu's Redis transport, hardened: bad messages are dropped, dead workers' tasks are
    # put back (see signal4.workers.transport); the sweep for those runs every heartbeat
    app.conf.broker_transport = TRANSPORT
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "unacked_restore_interval": HEARTBEAT_INTERVAL,
    }
    counters: dict[str, Any] = {}

    soft_limit = SoftLimitFlag()

    def register(task: Task) -> None:
        soft, hard = celeryapp.limits(task)

        def body(self: Any, *payload: Any, **extra: Any) -> dict[str, Any]:
            soft_limit.arm()
            result: dict[str, Any] | None
            try:
                result = run_payload(task, payload, extra, reraise=(SoftTimeLimitExceeded,), m=m)
            except SoftTimeLimitExceeded:
                result = None
            if result is None or (soft_limit.fired and result.get("status") not in OK_STATUSES):
                # the soft limit fired, whatever the step made of the exception
                given = (self.request.timelimit or (None, None))[1]
                result = timed_out(task, given or soft, result)
            if result.get("status") not in OK_STATUSES:
                self.request.chain = None  # the rest of a chain needs this step's output
            result.setdefault("host", socket.gethostname())  # the runner records where it ran
            return result

        body.__name__ = body.__qualname__ = task.name
        app.task(
            bind=True,
            name=celeryapp.task_name(task),
            soft_time_limit=soft,
            time_limit=hard,
            acks_late=True,
            reject_on_worker_lost=True,
        )(body)

    for task in tasks:
        register(task)

    def ping_body(self: Any, *payload: Any) -> dict[str, Any]:
        try:
            return ping(m, env, payload)
        except SoftTimeLimitExceeded:
            name = payload[0] if payload and isinstance(payload[0], str) else "ping"
            return {
                "status": Status.TIMED_OUT,
                "step": name,
                "error": "timed out (soft time limit)",
            }

    app.task(bind=True, name=celeryapp.PING, acks_late=True, reject_on_worker_lost=True)(ping_body)

    def warm_up(**_: Any) -> None:
        for task in tasks:
            load_step(task).ready()

    def count_done(sender: Any = None, **_: Any) -> None:
        node = getattr(getattr(sender, "request", None), "hostname", None)
        if not node or getattr(sender, "name", None) == celeryapp.PING:
            return  # "tasks done" counts steps, not pings
        try:
            if "client" not in counters:
                counters["client"] = redis_client(broker)
            counters["client"].hincrby(HEARTBEAT_PREFIX + node, "done", 1)
        except Exception as exc:
            print(f"signal4: could not count the task: {exc}", file=sys.stderr)

    def announce(sender: Any = None, **_: Any) -> None:
        node = str(getattr(sender, "hostname", "") or socket.gethostname())
        beat = Heartbeat(
            broker,
            node,
            {
                "node": node,
                "host": socket.gethostname(),
                "env": env,
                "queue": m.env(env).queue,
                "lock": announced_lock(m, env),
                "concurrency": os.environ.get(CONCURRENCY_VAR, "?"),
                "pid": str(os.getpid()),
                "root": str(m.root),
            },
        )
        counters["heartbeat"] = beat
        beat.start()

    def farewell(**_: Any) -> None:
        beat = counters.pop("heartbeat", None)
        if beat is not None:
            beat.stop()

    def own_messages(sender: Any = None, **_: Any) -> None:
        from signal4.workers import transport

        transport.set_owner(str(sender))

    signals.celeryd_init.connect(own_messages, weak=False)
    signals.worker_process_init.connect(warm_up, weak=False)
    signals.task_postrun.connect(count_done, weak=False)
    signals.worker_ready.connect(announce, weak=False)
    signals.worker_shutdown.connect(farewell, weak=False)
    return app
