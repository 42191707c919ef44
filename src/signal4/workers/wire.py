"""What a warm worker and its submitters agree on: env variables, heartbeat keys, errors.

Both sides import this: the worker inside its env's interpreter (:mod:`signal4.workers.worker`)
and the submitter in the dev env (:mod:`signal4.workers.submit`). Celery and redis are
imported inside functions only.
"""

from __future__ import annotations

from typing import Any

from signal4.codes import EXIT_BROKER, EXIT_TIMEOUT, Status
from signal4.errors import Signal4Error

#: Environment variables ``inv worker`` hands to the worker process.
ENV_VAR = "SIGNAL4_WORKER_ENV"
CONCURRENCY_VAR = "SIGNAL4_WORKER_CONCURRENCY"
HEARTBEAT_PREFIX = "signal4:worker:"
HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 3 * HEARTBEAT_INTERVAL
#: Hash: delivery tag of an unacknowledged message -> the node of the worker holding it.
OWNERS_KEY = "signal4:unacked-owner"
#: Seconds a task must look orphaned (its owner's heartbeat gone) before it is put back: a
#: live worker that lost Redis for a moment announces itself again within an interval.
ORPHAN_CONFIRM = 1.5 * HEARTBEAT_INTERVAL
#: URL schemes a broker may have (Redis: heartbeats and the result backend live there too).
BROKER_SCHEMES = ("redis", "rediss")
OK_STATUSES = (Status.COMPLETED, Status.SKIPPED)


class WorkerError(Signal4Error):
    """Work cannot be routed (exit 2); ``str()`` is the one-line message."""


class BrokerUnavailable(WorkerError):
    """The broker does not answer."""

    code = EXIT_BROKER


class BadBrokerUrl(WorkerError):
    """The broker URL is malformed (a usage mistake, exit 2)."""


class WaitTimeout(WorkerError):
    """A submitted task did not finish by its time limit plus a margin (exit 124)."""

    code = EXIT_TIMEOUT


class DriftError(WorkerError):
    """A live worker was synced from another lock than the submitter's."""


class NoWorkerError(WorkerError):
    """No live worker serves the queue."""


def check_broker_url(url: str, source: str = "--broker") -> str:
    """``url`` if it is a usable Redis URL, else :class:`BadBrokerUrl` naming ``source``."""
    import re
    from urllib.parse import urlsplit

    form = "redis://[:password@]host[:port]/db"
    try:
        parts = urlsplit(url)
        if parts.scheme not in BROKER_SCHEMES:
            raise ValueError(f"the scheme must be {' or '.join(BROKER_SCHEMES)}")
        port = parts.port  # ValueError if it is not a number
        db = parts.path.strip("/")
        if port == 0:
            raise ValueError("port 0")
        if db and not (db.isdigit() and db.isascii()):
            raise ValueError(f"the database {db!r} is not a number")
    except ValueError as exc:
        shown = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1**@", url)  # no password in a message
        raise BadBrokerUrl(f"{source} {shown!r} is not a broker URL ({exc}); use {form}") from None
    return url


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
