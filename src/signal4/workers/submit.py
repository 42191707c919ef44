"""The submitter: send steps to warm workers' queues and follow them (the dev env).

:func:`submit`, :func:`wait`, :func:`as_outcome` (the same
:class:`~signal4.run.dispatch.Outcome` and JSON result as the subprocess path), the
pieces the batch runner (:mod:`signal4.workers.batch`) sends and follows chains with
(:func:`preflight`, :func:`signature`, :func:`publish`, :func:`meta_of`, :class:`Watch`),
:func:`live_workers` and :func:`check_route` (refuse a queue served by a worker synced
from another lock), :func:`warm_roundtrip` (``inv measure``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signal4 import codes
from signal4.codes import Status
from signal4.envs import layout
from signal4.envs.manifest import Manifest, Task
from signal4.run.dispatch import Outcome
from signal4.stepkit import protocol
from signal4.workers import celeryapp
from signal4.workers.wire import (
    HEARTBEAT_PREFIX,
    BrokerUnavailable,
    DriftError,
    NoWorkerError,
    WaitTimeout,
    WorkerError,
    connection_errors,
    redis_client,
)


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker as it announces itself."""

    node: str
    host: str
    env: str
    lock: str
    concurrency: str
    done: int
    root: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> WorkerInfo:
        return cls(
            node=fields.get("node", "?"),
            host=fields.get("host", "?"),
            env=fields.get("env", "?"),
            lock=fields.get("lock", "?"),
            concurrency=fields.get("concurrency", "?"),
            done=int(fields.get("done", "0") or 0),
            root=fields.get("root", ""),
        )


def live_workers(broker: str) -> list[WorkerInfo]:
    """Every worker announced on ``broker``; :class:`BrokerUnavailable` if it does not answer."""
    client = redis_client(broker)
    try:
        keys = sorted(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=200))
        pipe = client.pipeline()
        for key in keys:
            pipe.hgetall(key)
        rows = pipe.execute()
    except connection_errors() as exc:
        raise BrokerUnavailable(
            f"the broker at {broker} does not answer ({exc}); start one with: inv broker"
        ) from None
    finally:
        client.close()
    return [WorkerInfo.from_fields(r) for r in rows if r and "env" in r]


def check_route(
    env: str, workers: Iterable[WorkerInfo], lock: str, *, require_worker: bool = True
) -> None:
    """Refuse ``env``'s queue if a live worker there drifted from ``lock`` (or none is live)."""
    serving = [w for w in workers if w.env == env]
    for w in serving:
        if w.lock != lock:
            raise DriftError(
                f"worker {w.node} on host {w.host} serves env {env!r} from lock {w.lock}, "
                f"but this checkout's uv.lock is {lock}; on {w.host} run: git pull && "
                f"inv sync {env}, then restart the worker"
            )
    if require_worker and not serving:
        raise NoWorkerError(f"no live worker serves env {env!r}; start one: inv worker {env}")


def submitter(m: Manifest, broker: str | None = None) -> Any:
    """A Celery app for sending work (registers no task); :func:`close_app` it when done."""
    return celeryapp.create(m, broker)


def close_app(app: Any) -> None:
    """Close a submitter's connections: the broker pool and the Redis result backend's."""
    with contextlib.suppress(Exception):
        app.backend.client.connection_pool.disconnect()
    with contextlib.suppress(Exception):
        app.close()


def preflight(m: Manifest, env_names: Iterable[str], broker: str) -> list[WorkerInfo]:
    """Check the broker answers and every env has a live worker on our lock; return them."""
    workers = live_workers(broker)
    lock = layout.lock_hash(m)
    for env in sorted(set(env_names)):
        check_route(env, workers, lock)
    return workers


def signature(app: Any, task: Task, argv: Sequence[str], *, timeout: float | None = None) -> Any:
    """The Celery signature running ``task`` with ``argv`` on its env's queue."""
    soft, hard = celeryapp.limits(task)
    if timeout is not None:
        soft, hard = (timeout, timeout + celeryapp.HARD_LIMIT_GRACE) if timeout else (None, None)
    return app.signature(
        celeryapp.task_name(task),
        args=(list(argv),),
        queue=task.queue,
        soft_time_limit=soft,
        time_limit=hard,
    )


def publish(send: Callable[[], Any], broker: str) -> Any:
    """``send()``; :class:`BrokerUnavailable` if the broker does not take it."""
    try:
        return send()
    except connection_errors() as exc:
        raise BrokerUnavailable(
            f"the broker at {broker} does not answer ({exc}); start one with: inv broker"
        ) from None


def submit(
    m: Manifest,
    task: Task,
    argv: Sequence[str],
    *,
    broker: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Send one task to its env's queue after the drift check; return its AsyncResult.

    Raises :class:`WorkerError` subclasses for routing faults (nothing is sent).
    """
    url = celeryapp.broker_url(broker)
    preflight(m, [task.env], url)
    app = submitter(m, url)
    sig = signature(app, task, argv, timeout=timeout)
    return publish(sig.apply_async, url)


def path_options(task: Task) -> tuple[set[str], list[str]]:
    """(the options of ``task``'s step that take a path, all its long options).

    A path option is one whose ``type`` is :class:`~pathlib.Path` (convert's ``--input``,
    the download steps' ``--cookies``). Empty if the step cannot be loaded here.
    """
    import importlib

    from signal4.stepkit.step import Step

    try:
        step = getattr(importlib.import_module(task.module), "STEP", None)
    except ImportError:
        return set(), []
    if not isinstance(step, Step):
        return set(), []
    actions = step.parser()._actions
    paths = {o for a in actions if a.type is Path for o in a.option_strings}
    longs = [o for a in actions for o in a.option_strings if o.startswith("--")]
    return paths, longs


def _option(arg: str, longs: Sequence[str]) -> str:
    """The long option ``arg`` names, as argparse reads it (a unique prefix will do)."""
    if arg in longs:
        return arg
    found = [o for o in longs if o.startswith(arg)]
    return found[0] if len(found) == 1 else arg


def absolute_paths(task: Task, argv: Sequence[str], cwd: Path | None = None) -> list[str]:
    """``argv`` with every path option's relative value made absolute from ``cwd``.

    ``inv run`` reads a relative ``--input`` from the caller's folder; a worker would read it
    from its own. So the submitter resolves it (``~`` too) before sending.
    """
    paths, longs = path_options(task)
    if not paths:
        return list(argv)
    base = Path.cwd() if cwd is None else cwd

    def absolute(value: str) -> str:
        if not value or value == "-":
            return value
        path = Path(value).expanduser()
        return str(path) if path.is_absolute() else os.path.normpath(base / path)

    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        name, eq, value = arg.partition("=")
        if name.startswith("--") and _option(name, longs) in paths and eq:
            out.append(f"{name}={absolute(value)}")
        elif (_option(arg, longs) if arg.startswith("--") else arg) in paths and i + 1 < len(argv):
            out += [arg, absolute(argv[i + 1])]
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def as_outcome(task: Task, state: str, value: Any, duration: float) -> Outcome:
    """Map a finished Celery result to the :class:`Outcome` the subprocess path gives."""
    if state == "SUCCESS" and isinstance(value, dict) and value.get("status") in tuple(Status):
        status, code, error = protocol.verdict(value)
        return Outcome(
            task=task.name,
            env=task.env,
            status=status,
            exit_code=code,
            returncode=code,
            duration=duration,
            result=value,
            error=error,
        )
    if state == "FAILURE" and type(value).__name__ == "TimeLimitExceeded":
        status, error = Status.TIMED_OUT, f"timed out: killed at the hard time limit ({value})"
    elif state == "SUCCESS":
        status, error = Status.FAILED, f"the worker returned no result object: {value!r:.120}"
    else:
        status, error = Status.FAILED, f"{state}: {type(value).__name__}: {value}"
    return Outcome(
        task=task.name,
        env=task.env,
        status=status,
        exit_code=codes.EXIT_CODES[status],
        returncode=None,
        duration=duration,
        result={"status": status, "step": task.name, "error": error},
        error=error,
    )


#: How long a submitter waiting for results tolerates a broker that does not answer.
OUTAGE_SECONDS = 60.0
#: Seconds without progress before a submitter says on stderr what it is waiting for.
PATIENCE = 30.0
#: Seconds past a task's hard time limit (counted from its last progress) that a submitter
#: still waits: a task whose worker died is put back and started again within about 30 s
#: (:mod:`signal4.workers.transport`), and its result must still be written.
WAIT_MARGIN = 60.0
READY_STATES = ("SUCCESS", "FAILURE", "REVOKED")


def meta_of(result: Any, outage: dict[str, float]) -> tuple[str, Any] | None:
    """``result``'s (state, info), or None while the broker does not answer (restarting?).

    Polls the result key (no pub/sub subscription, which does not survive a Redis restart);
    raises :class:`BrokerUnavailable` once the broker has been silent for
    :data:`OUTAGE_SECONDS`. ``info`` is what the worker stored with the state (for
    ``STARTED``: its ``hostname`` and ``pid``).
    """
    try:
        meta = result.backend.get_task_meta(result.id)
    except connection_errors() as exc:
        since = outage.setdefault("since", time.monotonic())
        if time.monotonic() - since > OUTAGE_SECONDS:
            raise BrokerUnavailable(
                f"the broker stopped answering for {OUTAGE_SECONDS:g} s ({exc})"
            ) from None
        return None
    outage.pop("since", None)
    return str(meta.get("status")), meta.get("result")


def state_of(result: Any, outage: dict[str, float]) -> str | None:
    """``result``'s state, or None while the broker does not answer (see :func:`meta_of`)."""
    got = meta_of(result, outage)
    return None if got is None else got[0]


def hard_limit(task: Task, timeout: float | None = None) -> float | None:
    """Seconds after which a worker kills ``task`` (``timeout``: ``--timeout``); None: never."""
    if timeout is not None:
        return timeout + celeryapp.HARD_LIMIT_GRACE if timeout else None
    return celeryapp.limits(task)[1]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Watch:
    """A submitter waiting for one task: it reports when nothing moves, and gives up.

    Progress is a new state, or the task started again by another worker (a new host or
    pid). After :data:`PATIENCE` seconds without progress one line on stderr says what is
    awaited, then again after twice as long each time (at most every 10 minutes: a long
    step is not a fault); past the task's hard limit plus :data:`WAIT_MARGIN` seconds
    without progress, :class:`WaitTimeout` (exit 124).
    """

    task: str
    queue: str
    task_id: str
    limit: float | None
    broker: str | None = None
    patience: float = PATIENCE
    margin: float = WAIT_MARGIN
    say: Callable[[str], None] = _say
    progress: tuple[Any, ...] = ()
    since: float = field(default_factory=time.monotonic)
    told: float = field(default_factory=time.monotonic)
    gap: float = 0.0

    def see(self, state: str, info: Any, now: float | None = None) -> None:
        """Note the task's state; report or give up when it has not moved for long."""
        now = time.monotonic() if now is None else now
        where = info if isinstance(info, dict) else {}
        key = (state, where.get("hostname"), where.get("pid"))
        if key != self.progress:
            self.progress, self.since, self.told, self.gap = key, now, now, self.patience
            return
        quiet = now - self.since
        if self.limit is not None and quiet > self.limit + self.margin:
            raise WaitTimeout(
                f"gave up waiting for {self.task} (task {self.task_id} on {self.queue}): "
                f"no progress for {quiet:.0f} s, past its time limit ({self.limit:g} s) "
                f"plus {self.margin:g} s; last seen {self.describe(state, where)}"
            )
        if now - self.told >= (self.gap or self.patience):
            self.told, self.gap = now, min(2 * (self.gap or self.patience), 20 * self.patience)
            self.say(
                f"{self.task}: still waiting for task {self.task_id} on {self.queue} "
                f"(no progress for {quiet:.0f} s): {self.describe(state, where)}"
            )

    def describe(self, state: str, where: Mapping[str, Any]) -> str:
        if state == "PENDING":
            return "PENDING (queued; no worker has started it)"
        node = where.get("hostname")
        if state != "STARTED" or not node:
            return state
        said = f"STARTED on worker {node} (pid {where.get('pid', '?')})"
        if self.broker and not self._announced(str(node)):
            said += (
                ", which no longer announces itself: a live worker of the queue puts the "
                "task back (start one if none runs)"
            )
        return said

    def _announced(self, node: str) -> bool:
        assert self.broker is not None
        client = redis_client(self.broker)
        try:
            return bool(client.exists(HEARTBEAT_PREFIX + node))
        except connection_errors():
            return True  # unknown: say nothing
        finally:
            client.close()


def watch_for(
    task: Task, result: Any, *, timeout: float | None = None, broker: str | None = None
) -> Watch:
    """The :class:`Watch` of ``task`` sent as ``result`` (``timeout``: its ``--timeout``)."""
    return Watch(task.name, task.queue, str(result.id), hard_limit(task, timeout), broker)


def poll(result: Any, *, every: float = 0.05, watch: Watch | None = None) -> tuple[str, Any]:
    """Wait until ``result`` is ready, riding out broker restarts; return (state, value).

    With a ``watch``, say what is awaited when nothing moves, and give up
    (:class:`WaitTimeout`) past the task's time limit.
    """
    outage: dict[str, float] = {}
    while True:
        got = meta_of(result, outage)
        if got is not None:
            state, info = got
            if state in READY_STATES:
                return state, result.result
            if watch is not None:
                watch.see(state, info)
        time.sleep(every)


def wait(
    task: Task, result: Any, *, started: float | None = None, timeout: float | None = None
) -> Outcome:
    """Wait for ``result`` and return its :class:`Outcome` (``timeout``: its ``--timeout``).

    Raises :class:`WaitTimeout` when the task has not finished past its time limit plus
    :data:`WAIT_MARGIN` seconds (its worker died and no other took it back, say).
    """
    started = time.monotonic() if started is None else started
    broker = str(result.app.conf.broker_url)
    try:
        state, value = poll(result, watch=watch_for(task, result, timeout=timeout, broker=broker))
    finally:
        close_app(result.app)
    return as_outcome(task, state, value, time.monotonic() - started)


def warm_roundtrip(
    m: Manifest, task_name: str, *, runs: int, warmups: int = 1, broker: str | None = None
) -> list[int]:
    """Time ``runs`` pings of an idle warm worker for ``task_name``: submit to "step ready" (ns)."""
    task = m.task(task_name)
    url = celeryapp.broker_url(broker)
    preflight(m, [task.env], url)
    app = submitter(m, url)
    samples: list[int] = []
    try:
        for i in range(warmups + runs):
            started = time.perf_counter_ns()
            res = app.send_task(celeryapp.PING, args=(task.name,), queue=task.queue)
            value = res.get(timeout=60)
            elapsed = time.perf_counter_ns() - started
            if not (isinstance(value, dict) and value.get("ready")):
                raise WorkerError(
                    f"{task.name}: the warm worker did not report ready: {value!r:.200}"
                )
            if i >= warmups:
                samples.append(elapsed)
    finally:
        close_app(app)
    return samples
