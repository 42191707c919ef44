"""The bodies of ``inv broker``, ``inv worker``, ``inv workers`` and ``inv submit``.

Typed functions called by tasks.py; they raise :class:`~signal4.errors.Signal4Error`
subclasses for what a user can fix. Celery is imported only inside them.

Exit codes: 0 done; 1 the step failed; 2 a usage or routing mistake (unknown task, env
not synced, no live worker, a worker synced from another lock); 3 the broker does not
answer; 124 the step ran past its time limit (or did not finish by then: its worker died and
no other took it back).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from signal4 import codes
from signal4.envs import layout, venv
from signal4.envs.manifest import Manifest, load
from signal4.errors import UsageError
from signal4.run import dispatch
from signal4.stepkit import protocol
from signal4.workers import broker as broker_mod

#: A pool process is replaced after this many tasks (memory held by a library is returned).
DEFAULT_MAX_TASKS_PER_CHILD = 100


def broker(port: int = broker_mod.DEFAULT_PORT, *, stop: bool = False) -> int:
    """Start (or stop) the local Redis broker of this checkout."""
    from signal4.console import console

    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: give a TCP port from 1 to 65535")
    m = load()
    local = broker_mod.for_root(m.root, port)
    if stop:
        if broker_mod.stop(local):
            console().print(f"stopped the broker on port {port}")
        else:
            console().print(f"no broker of this checkout runs on port {port}")
        return 0
    started = broker_mod.start(local)
    what = "started" if started else "already running:"
    console().print(f"{what} {local.url} (127.0.0.1 only; log: {local.logfile})")
    return 0


def worker_command(
    m: Manifest,
    env: str,
    *,
    concurrency: int,
    max_tasks_per_child: int = DEFAULT_MAX_TASKS_PER_CHILD,
    loglevel: str = "INFO",
) -> list[str]:
    """The argument list of a Celery worker in ``env``'s own interpreter on its queue."""
    spec = layout.spec(m, env)
    queue = m.env(env).queue
    return [
        str(spec.python),
        "-m",
        "celery",
        "--workdir",
        str(m.root),
        "-A",
        "signal4.workers.workerapp",
        "worker",
        "--queues",
        queue,
        "--concurrency",
        str(concurrency),
        "--max-tasks-per-child",
        str(max_tasks_per_child),
        "--hostname",
        f"{env}-{os.getpid()}@%h",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


def worker_environ(m: Manifest, env: str, *, concurrency: int, url: str) -> dict[str, str]:
    """The environment of a worker process.

    Each pool process's steps get their share of the CPUs as ``SIGNAL4_THREADS`` (the CPUs
    // ``concurrency``, at least 1), as the local runner gives each of its ``--jobs``,
    unless ``SIGNAL4_THREADS`` is set already: two transcribes of two threads each on two
    cores would fight over them.
    """
    from signal4 import cpu
    from signal4.workers.wire import CONCURRENCY_VAR, ENV_VAR

    extra = {ENV_VAR: env, CONCURRENCY_VAR: str(concurrency), "SIGNAL4_BROKER_URL": url}
    if not os.environ.get(cpu.THREADS_VAR):
        extra[cpu.THREADS_VAR] = str(cpu.share(concurrency))
    return dispatch.child_environ(m, extra)


def worker(
    env: str,
    *,
    concurrency: int = 0,
    broker_url: str = "",
    max_tasks_per_child: int = DEFAULT_MAX_TASKS_PER_CHILD,
    loglevel: str = "INFO",
) -> int:
    """Replace this process with a Celery worker for ``env`` (returns only on a mistake)."""
    from signal4.workers import celeryapp

    m = load()
    tasks = m.tasks_of(env)
    if not tasks:
        raise UsageError(f"env {env!r} has no task to serve")
    for task in tasks:
        if not _is_step(task.module):
            raise UsageError(
                f"env {env!r} cannot have a warm worker: its task {task.name!r} is a service "
                f"({task.module}), not a step; run it with: inv run {task.name}"
            )
    if concurrency < 0 or max_tasks_per_child < 1:
        raise UsageError("--concurrency must be >= 1 and --max-tasks-per-child >= 1")
    url = celeryapp.broker_url(broker_url or None)
    venv.require_ready(m, layout.spec(m, env))
    # a broker that does not answer now is exit 3, not a worker retrying in silence
    from signal4.workers import submit as submit_mod

    submit_mod.live_workers(url)
    n = concurrency or m.pool_size(env)
    cmd = worker_command(
        m, env, concurrency=n, max_tasks_per_child=max_tasks_per_child, loglevel=loglevel
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # the worker holds its env in use for its whole life (the lock survives the exec):
    # inv clean refuses to remove the env under it
    os.set_inheritable(venv.hold_in_use(m, env), True)
    os.execve(cmd[0], cmd, worker_environ(m, env, concurrency=n, url=url))
    return 0  # pragma: no cover - execve does not return


def _is_step(module: str) -> bool:
    """Whether ``module`` defines a ``STEP`` (a service such as mlx_server does not)."""
    import importlib

    from signal4.stepkit.step import Step

    return isinstance(getattr(importlib.import_module(module), "STEP", None), Step)


def workers(broker_url: str = "") -> int:
    """Print the live workers: host, env, lock hash, concurrency, tasks done."""
    from rich.table import Table

    from signal4.console import console
    from signal4.workers import celeryapp
    from signal4.workers import submit as submit_mod

    m = load()
    url = celeryapp.broker_url(broker_url or None)
    live = submit_mod.live_workers(url)
    lock = layout.lock_hash(m)
    table = Table(title=f"workers on {url} (this checkout's lock: {lock})")
    for col in ("host", "env", "lock hash", "concurrency", "tasks done", "worker"):
        table.add_column(
            col,
            justify="right" if col in ("concurrency", "tasks done") else "left",
            no_wrap=col in ("lock hash", "env"),
        )
    for w in sorted(live, key=lambda w: (w.env, w.host, w.node)):
        style = "green" if w.lock == lock else "bold red"
        table.add_row(w.host, w.env, f"[{style}]{w.lock}[/]", w.concurrency, str(w.done), w.node)
    console().print(table)
    if not live:
        console().print("no live worker; start one: inv worker <env>")
    return 0


def result_line(result: dict[str, Any]) -> str:
    """The JSON line printed for a result (the step's own line; timed_out is added here)."""
    import json

    if result.get("status") in codes.STEP_STATUSES:
        return protocol.encode(result)
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)


def submit(
    task: str, args: Sequence[str], *, broker_url: str = "", timeout: float | None = None
) -> int:
    """Send one task to its env's queue, wait, print its JSON result line; return its code."""
    from signal4.workers import submit as submit_mod

    m = load()
    t = m.task(task)
    # a relative --input (any path option) means the same as with inv run: from here
    argv = submit_mod.absolute_paths(t, args)
    res = submit_mod.submit(m, t, argv, broker=broker_url or None, timeout=timeout)
    outcome = submit_mod.wait(t, res, timeout=timeout)
    if not outcome.ok:
        print(f"{task}: {outcome.status}: {outcome.error}", file=sys.stderr)
    print(result_line(outcome.result), flush=True)
    return outcome.exit_code
