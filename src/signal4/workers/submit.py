"""The submitter: send steps to warm workers' queues and follow them (the dev env).

:func:`submit`, :func:`run_chain`, :func:`as_outcome` (the same
:class:`~signal4.run.dispatch.Outcome` and JSON result as the subprocess path),
:func:`live_workers` and :func:`check_route` (refuse a queue served by a worker synced
from another lock), :func:`warm_roundtrip` (``inv measure``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from signal4.envs import venv as envs
from signal4.envs.manifest import Manifest, Task
from signal4.run import protocol
from signal4.run.dispatch import Outcome
from signal4.workers import celeryapp
from signal4.workers.wire import (
    HEARTBEAT_PREFIX,
    BrokerUnavailable,
    DriftError,
    NoWorkerError,
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
    lock = envs.lock_hash(m)
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


def _publish(send: Callable[[], Any], broker: str) -> Any:
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
    return _publish(sig.apply_async, url)


def as_outcome(task: Task, state: str, value: Any, duration: float) -> Outcome:
    """Map a finished Celery result to the :class:`Outcome` the subprocess path gives."""
    if (
        state == "SUCCESS"
        and isinstance(value, dict)
        and value.get("status") in protocol.ALL_STATUSES
    ):
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
        status, error = protocol.TIMED_OUT, f"timed out: killed at the hard time limit ({value})"
    elif state == "SUCCESS":
        status, error = protocol.FAILED, f"the worker returned no result object: {value!r:.120}"
    else:
        status, error = protocol.FAILED, f"{state}: {type(value).__name__}: {value}"
    return Outcome(
        task=task.name,
        env=task.env,
        status=status,
        exit_code=protocol.EXIT_CODES[status],
        returncode=None,
        duration=duration,
        result={"status": status, "step": task.name, "error": error},
        error=error,
    )


#: How long a submitter waiting for results tolerates a broker that does not answer.
OUTAGE_SECONDS = 60.0


def state_of(result: Any, outage: dict[str, float]) -> str | None:
    """``result``'s state, or None while the broker does not answer (it may be restarting).

    Polls the result key (no pub/sub subscription, which does not survive a Redis restart);
    raises :class:`BrokerUnavailable` once the broker has been silent for
    :data:`OUTAGE_SECONDS`.
    """
    try:
        state = str(result.state)
    except connection_errors() as exc:
        since = outage.setdefault("since", time.monotonic())
        if time.monotonic() - since > OUTAGE_SECONDS:
            raise BrokerUnavailable(
                f"the broker stopped answering for {OUTAGE_SECONDS:g} s ({exc})"
            ) from None
        return None
    outage.pop("since", None)
    return state


def poll(result: Any, *, every: float = 0.05) -> tuple[str, Any]:
    """Wait until ``result`` is ready, riding out broker restarts; return (state, value)."""
    outage: dict[str, float] = {}
    while True:
        state = state_of(result, outage)
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            return state, result.result
        time.sleep(every)


def wait(task: Task, result: Any, *, started: float | None = None) -> Outcome:
    """Wait for ``result`` and return its :class:`Outcome`."""
    started = time.monotonic() if started is None else started
    try:
        state, value = poll(result)
    finally:
        close_app(result.app)
    return as_outcome(task, state, value, time.monotonic() - started)


@dataclass
class ChainStep:
    """One step of a chain as it is being followed."""

    task: str
    argv: list[str]
    state: str = "waiting"
    outcome: Outcome | None = None


def run_chain(
    m: Manifest,
    steps: Sequence[tuple[Task, Sequence[str]]],
    *,
    broker: str | None = None,
    on_update: Callable[[list[ChainStep]], None] = lambda rows: None,
    poll: float = 0.1,
) -> list[ChainStep]:
    """Send ``steps`` as one Celery chain across the env queues and follow it to the end.

    Each step after the first gets the previous one's result (its content id). A step that
    does not complete stops the chain; the steps after it stay ``not run``.
    """
    tasks = [task for task, _ in steps]
    url = celeryapp.broker_url(broker)
    preflight(m, [t.env for t in tasks], url)
    app = submitter(m, url)
    try:
        return _follow_chain(app, url, tasks, steps, on_update=on_update, poll=poll)
    finally:
        close_app(app)


def _follow_chain(
    app: Any,
    url: str,
    tasks: Sequence[Task],
    steps: Sequence[tuple[Task, Sequence[str]]],
    *,
    on_update: Callable[[list[ChainStep]], None],
    poll: float,
) -> list[ChainStep]:
    from celery import chain

    rows = [ChainStep(t.name, list(argv)) for t, (_, argv) in zip(tasks, steps, strict=True)]
    sigs = [signature(app, t, r.argv) for t, r in zip(tasks, rows, strict=True)]
    last = _publish(lambda: chain(*sigs).apply_async(), url)
    results: list[Any] = []
    node = last
    while node is not None:
        results.append(node)
        node = node.parent
    results.reverse()
    on_update(rows)
    begun: dict[int, float] = {}
    outage: dict[str, float] = {}
    i = 0
    while i < len(rows):
        res, row, task = results[i], rows[i], tasks[i]
        state = state_of(res, outage)
        if state == "STARTED" and i not in begun:
            begun[i] = time.monotonic()
            row.state = "running"
            on_update(rows)
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            start = begun.get(i, time.monotonic())
            row.outcome = as_outcome(task, state, res.result, time.monotonic() - start)
            seconds = row.outcome.result.get("seconds")
            if isinstance(seconds, (int, float)):
                row.outcome = _with_duration(row.outcome, float(seconds))
            row.state = row.outcome.status
            on_update(rows)
            if not row.outcome.ok:
                for rest in rows[i + 1 :]:
                    rest.state = "not run"
                on_update(rows)
                return rows
            i += 1
            continue
        time.sleep(poll)
    return rows


def _with_duration(outcome: Outcome, seconds: float) -> Outcome:
    from dataclasses import replace

    return replace(outcome, duration=seconds)


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
