"""What a warm worker and its submitters agree on: env variables, heartbeat keys, errors.

Both sides import this: the worker inside its env's interpreter (:mod:`signal4.workers.worker`)
and the submitter in the dev env (:mod:`signal4.workers.submit`). Celery and redis are
imported inside functions only.
"""

from __future__ import annotations

from typing import Any

from signal4.errors import EXIT_BROKER, Signal4Error
from signal4.run import protocol

#: Environment variables ``inv worker`` hands to the worker process.
ENV_VAR = "SIGNAL4_WORKER_ENV"
CONCURRENCY_VAR = "SIGNAL4_WORKER_CONCURRENCY"
HEARTBEAT_PREFIX = "signal4:worker:"
HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 3 * HEARTBEAT_INTERVAL
OK_STATUSES = (protocol.COMPLETED, protocol.SKIPPED)


class WorkerError(Signal4Error):
    """Work cannot be routed (exit 2); ``str()`` is the one-line message."""


class BrokerUnavailable(WorkerError):
    """The broker does not answer."""

    code = EXIT_BROKER


class DriftError(WorkerError):
    """A live worker was synced from another lock than the submitter's."""


class NoWorkerError(WorkerError):
    """No live worker serves the queue."""


def redis_client(url: str, timeout: float = 2.0) -> Any:
    """A Redis client on ``url`` that gives up quickly when it is down."""
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, decode_responses=True
    )


def connection_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the broker does not answer"."""
    import kombu.exceptions
    import redis

    return (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        OSError,
        kombu.exceptions.OperationalError,
    )
