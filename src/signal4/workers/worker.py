"""Warm workers: the Celery side of a step (worker) and the side that sends it work (submitter).

**Worker** (runs inside an env's own interpreter, started by ``inv worker <env>``):

* one Celery task per manifest task of the env, ``signal4.<task>``; its payload is the
  step's argv (a list of strings), optionally preceded by the previous step's result in a
  chain. It parses the argv with the step's own parser and calls :meth:`Step.call`, the
  same entry point as the step's CLI, so a step has one implementation;
* ``signal4.ping``: "is this task's step ready here?", the probe of ``inv measure``'s
  ``warm`` way;
* pool processes import their steps' heavy modules when they start (``Step.ready``), so
  even the first task is warm;
* a malformed payload gives an ``invalid_input`` result; the worker keeps running;
* the soft time limit ends the step as ``timed_out``;
* every worker announces itself on Redis (:data:`HEARTBEAT_PREFIX` ``<node>``: host, env,
  lock hash, concurrency, tasks done), refreshed every :data:`HEARTBEAT_INTERVAL` s.

**Submitter** (the dev env): :func:`submit`, :func:`run_chain`, :func:`as_outcome` (the
same :class:`~signal4.run.dispatch.Outcome` and JSON result as the subprocess path),
:func:`live_workers` and :func:`check_route` (refuse a queue served by a worker synced
from another lock), :func:`warm_roundtrip` (``inv measure``).

Celery is imported inside functions: nothing here is on a step's ``--help`` path.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal4.envs import venv as envs
from signal4.envs.manifest import Manifest, Task
from signal4.run import protocol
from signal4.run.dispatch import Outcome
from signal4.run.steprunner import InvalidInput, Step
from signal4.workers import celeryapp

#: Environment variables ``inv worker`` hands to the worker process.
ENV_VAR = "SIGNAL4_WORKER_ENV"
CONCURRENCY_VAR = "SIGNAL4_WORKER_CONCURRENCY"
HEARTBEAT_PREFIX = "signal4:worker:"
HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 3 * HEARTBEAT_INTERVAL
#: Exit code when the broker cannot be reached.
EXIT_BROKER = 3
OK_STATUSES = (protocol.COMPLETED, protocol.SKIPPED)


class WorkerError(Exception):
    """Work cannot be routed; ``code`` is the exit code, ``str()`` the one-line message."""

    code = protocol.EXIT_INVALID


class BrokerUnavailable(WorkerError):
    """The broker does not answer."""

    code = EXIT_BROKER


class DriftError(WorkerError):
    """A live worker was synced from another lock than the submitter's."""


class NoWorkerError(WorkerError):
    """No live worker serves the queue."""


# --------------------------------------------------------------------------- worker side


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


def content_of(result: Mapping[str, Any]) -> str | None:
    """The content id a step's result names (a download may name several: the first)."""
    if result.get("content"):
        return str(result["content"])
    contents = result.get("contents") or []
    return str(contents[0]) if contents else None


@contextlib.contextmanager
def content_guard(cid: str | None) -> Iterator[list[Path]]:
    """Hold ``cid``'s worker lock while a step works on it; sweep what a killed run left.

    A pool process killed mid-write (SIGKILL, OOM) leaves its temporary files behind
    (never a partial output: steps write atomically). The lock is a ``flock`` that dies
    with its holder, so whoever holds it knows that every temporary file in the content
    folder belongs to a dead writer, and removes them (a step run by hand with ``inv run``
    on the same item at the same moment does not take the lock). Two worker steps on one
    content item take turns. Yields the paths removed.
    """
    from signal4.content import settings
    from signal4.content.store import ContentStore, InvalidContentId, check_id

    try:
        check_id(cid or "")
    except InvalidContentId:
        yield []
        return
    assert cid is not None
    conf = settings.get()
    locks = Path(conf.data_dir) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{cid}.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            swept = ContentStore(conf.content_root).leftovers(cid)
            for path in swept:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            yield swept
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_payload(
    task: Task,
    payload: Sequence[Any],
    extra: Mapping[str, Any],
    *,
    reraise: tuple[type[BaseException], ...] = (),
) -> dict[str, Any]:
    """Run ``task``'s step on a Celery payload; always return a result dict."""
    try:
        previous, argv = split_payload(payload, extra)
    except InvalidInput as exc:
        return {
            "status": protocol.INVALID_INPUT,
            "step": task.name,
            "error": f"malformed task payload: {exc}",
        }
    if previous is not None:
        if previous.get("status") not in OK_STATUSES:
            return {
                "status": protocol.FAILED,
                "step": task.name,
                "error": f"not run: {previous.get('step')} ended {previous.get('status')}",
            }
        cid = content_of(previous)
        if cid and "--content" not in argv:
            argv = ["--content", cid, *argv]
    step = load_step(task)
    try:
        options = step.parser().parse_args(argv)
    except InvalidInput as exc:
        return {"status": protocol.INVALID_INPUT, "step": task.name, "error": str(exc)}
    with content_guard(getattr(options, "content", None)) as swept:
        if swept:
            names = ", ".join(p.name for p in swept)
            print(f"{task.name}: removed what a killed run left: {names}", file=sys.stderr)
        return step.call(options, reraise=reraise)


def timed_out(task: Task, limit: float | None) -> dict[str, Any]:
    """The result of a step stopped by its soft time limit."""
    return {
        "status": protocol.TIMED_OUT,
        "step": task.name,
        "error": f"timed out after {limit or task.timeout:g} s (soft time limit)",
    }


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
        return {"status": protocol.INVALID_INPUT, "step": "ping", "error": f"ping: {exc}"}
    load_step(task).ready()
    if nap > 0:
        sleep(nap)
    return {
        "status": protocol.COMPLETED,
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
    stamp = envs.read_stamp(envs.spec(m, env)) or {}
    return str(stamp.get("lock") or envs.lock_hash(m))


def redis_client(url: str, timeout: float = 2.0) -> Any:
    """A Redis client on ``url`` that gives up quickly when it is down."""
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, decode_responses=True
    )


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
    counters: dict[str, Any] = {}

    def register(task: Task) -> None:
        soft, hard = celeryapp.limits(task)

        def body(self: Any, *payload: Any, **extra: Any) -> dict[str, Any]:
            try:
                result = run_payload(task, payload, extra, reraise=(SoftTimeLimitExceeded,))
            except SoftTimeLimitExceeded:
                given = (self.request.timelimit or (None, None))[1]
                result = timed_out(task, given or soft)
            if result.get("status") not in OK_STATUSES:
                self.request.chain = None  # the rest of a chain needs this step's output
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
                "status": protocol.TIMED_OUT,
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
                "queue": f"{manifest.PACKAGE}.{env}",
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

    signals.worker_process_init.connect(warm_up, weak=False)
    signals.task_postrun.connect(count_done, weak=False)
    signals.worker_ready.connect(announce, weak=False)
    signals.worker_shutdown.connect(farewell, weak=False)
    return app


# --------------------------------------------------------------------------- submitter side


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


def _connection_errors() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis

    return (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        OSError,
        kombu.exceptions.OperationalError,
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
    except _connection_errors() as exc:
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
    except _connection_errors() as exc:
        raise BrokerUnavailable(
            f"the broker at {broker} does not answer ({exc}); start one with: inv broker"
        ) from None


def submit(
    m: Manifest,
    task_name: str,
    argv: Sequence[str],
    *,
    broker: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Send one task to its env's queue after the drift check; return its AsyncResult.

    Raises :class:`~signal4.envs.manifest.UnknownNameError` for a task the manifest does not
    know (nothing is sent), and :class:`WorkerError` subclasses for routing faults.
    """
    task = m.task(task_name)
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
        status = str(value["status"])
        error = value.get("error") if status not in OK_STATUSES else None
        return Outcome(
            task=task.name,
            env=task.env,
            status=status,
            exit_code=protocol.EXIT_CODES[status],
            returncode=protocol.EXIT_CODES[status],
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
    except _connection_errors() as exc:
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


def wait(m: Manifest, task_name: str, result: Any, *, started: float | None = None) -> Outcome:
    """Wait for ``result`` and return its :class:`Outcome`."""
    task = m.task(task_name)
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
    steps: Sequence[tuple[str, Sequence[str]]],
    *,
    broker: str | None = None,
    on_update: Callable[[list[ChainStep]], None] = lambda rows: None,
    poll: float = 0.1,
) -> list[ChainStep]:
    """Send ``steps`` as one Celery chain across the env queues and follow it to the end.

    Each step after the first gets the previous one's result (its content id). A step that
    does not complete stops the chain; the steps after it stay ``not run``.
    """
    tasks = [m.task(name) for name, _ in steps]
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
    steps: Sequence[tuple[str, Sequence[str]]],
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
