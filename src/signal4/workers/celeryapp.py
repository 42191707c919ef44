"""The Celery app, built from the manifest: one queue per env, routes and limits per task.

The same configuration is used by a worker (inside its env's interpreter) and by a
submitter (the dev env): queue names, routes and time limits all come from
:mod:`signal4.envs.manifest`, never from a copy.

* Queue of a task: ``signal4.<env>`` (:attr:`signal4.envs.manifest.Task.queue`).
* Task name on the wire: ``signal4.<task>``; ``signal4.ping`` answers on every queue.
* ``acks_late`` + ``task_reject_on_worker_lost``: a task whose worker process dies is put
  back on its queue and runs again (steps are idempotent and write atomically). If the
  worker's main process dies, a live worker of the queue puts its task back once the dead
  worker's heartbeat has expired (:mod:`signal4.workers.transport`; about 20-30 s).
* Prefetch 1: a worker never holds more tasks than it runs.
* Soft time limit = the manifest's timeout (the step ends as ``timed_out``); the hard one
  kills the pool process :data:`HARD_LIMIT_GRACE` seconds later. A timeout of 0 = none.
* Results are kept on the same Redis.

Imported only inside task bodies (Celery is not on the ``inv --list`` start-up path).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Queue

from signal4.envs.manifest import PACKAGE, Manifest, Task

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
#: Seconds between the soft time limit (the step is told) and the hard one (it is killed).
HARD_LIMIT_GRACE = 10.0
PING = f"{PACKAGE}.ping"
#: How long a result stays on Redis.
RESULT_EXPIRES = 24 * 3600
#: Pool processes import their steps' heavy modules at start (diarize: ~15 s on 2 cores).
PROCESS_INIT_TIMEOUT = 600.0


def broker_url(explicit: str | None = None) -> str:
    """The broker URL: ``explicit`` (``--broker``), else ``SIGNAL4_BROKER_URL``, else local.

    A malformed URL is a :class:`~signal4.workers.wire.BadBrokerUrl` (exit 2) naming where
    it came from; an empty one means the default.
    """
    from signal4.workers.wire import check_broker_url

    if explicit:
        return check_broker_url(explicit, "--broker")
    from signal4.content import settings

    configured = settings.get().broker_url
    if configured:
        return check_broker_url(configured, "SIGNAL4_BROKER_URL")
    return DEFAULT_BROKER


def task_name(task: Task) -> str:
    """The Celery name of a manifest task."""
    return f"{PACKAGE}.{task.name}"


def limits(task: Task) -> tuple[float | None, float | None]:
    """(soft, hard) time limits of ``task`` in seconds; (None, None) for timeout 0."""
    if not task.timeout:
        return None, None
    return task.timeout, task.timeout + HARD_LIMIT_GRACE


def queues(m: Manifest) -> list[str]:
    """Every env's queue, in manifest order."""
    return [env.queue for env in m.envs.values()]


def visibility_timeout(m: Manifest) -> int:
    """How long Redis waits before it hands an unacknowledged task to another worker.

    It must outlast the longest task, or a long task would run twice. It is only the last
    resort: a worker puts the task of a dead worker back as soon as that worker's heartbeat
    is gone (:mod:`signal4.workers.transport`); this timeout is for a message that names no
    owner (one delivered by a worker older than that).
    """
    longest = max((t.timeout for t in m.tasks.values()), default=0.0)
    return int(longest + HARD_LIMIT_GRACE + 600)


def config(m: Manifest, broker: str) -> dict[str, Any]:
    """The Celery settings for the project ``m`` on ``broker``."""
    routes = {task_name(t): {"queue": t.queue} for t in m.tasks.values()}
    return {
        "broker_url": broker,
        "result_backend": broker,
        "result_expires": RESULT_EXPIRES,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_queues": [Queue(q) for q in queues(m)],  # type: ignore[no-untyped-call]
        "task_routes": routes,
        "task_default_queue": f"{PACKAGE}.default",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "worker_prefetch_multiplier": 1,
        "worker_proc_alive_timeout": PROCESS_INIT_TIMEOUT,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": {"visibility_timeout": visibility_timeout(m)},
        "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
        # A result written while Redis restarts is retried, not turned into a FAILURE that
        # carries the ConnectionError (the step itself had completed).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 20,
        "result_backend_base_sleep_between_retries_ms": 50,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "redis_socket_connect_timeout": 5,
        "redis_backend_health_check_interval": 10,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    }


def create(m: Manifest, broker: str | None = None) -> Any:
    """A Celery app configured for the project ``m``."""
    app = Celery(PACKAGE, set_as_current=False)
    app.conf.update(config(m, broker_url(broker)))
    return app
