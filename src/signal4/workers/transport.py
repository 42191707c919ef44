"""The Redis transport of a warm worker: kombu's, hardened against bad messages and dead workers.

A worker loads it by name (``broker_transport``, see :func:`signal4.workers.worker.
build_worker_app`); submitters keep kombu's own. It changes two things:

* **Any bytes on a queue.** kombu decodes a message in the consumer's event loop: bytes that
  are not JSON, JSON that is not a kombu envelope, or a body it cannot decode raise there
  and end the worker ("Unrecoverable error"), or, for a ``KeyError`` (which kombu counts as
  a lost connection), make it reconnect and get the same message again, forever. Here such
  a message is logged on one line and dropped (acknowledged if it was delivered), and the
  worker keeps serving. A message Celery itself refuses (an unknown task) is handled by
  Celery as before.
* **Tasks of dead workers.** kombu keeps a delivered, unacknowledged message in the
  ``unacked`` hash (and ``unacked_index``) until it is acknowledged, and puts it back on its
  queue only after the visibility timeout, which must outlast the longest task (about two
  hours here). So a task whose worker's main process was killed waited that long. Here a
  worker also records itself as the message's owner (:data:`~signal4.workers.wire.
  OWNERS_KEY`, in the same place kombu records it), and every
  :data:`~signal4.workers.wire.HEARTBEAT_INTERVAL` seconds it puts back on its own queues
  the unacknowledged tasks whose owner's heartbeat is gone, once it has seen them orphaned
  for :data:`~signal4.workers.wire.ORPHAN_CONFIRM` seconds (a live worker cut off from Redis
  for a moment beats again by then). Putting a task back is kombu's own
  ``QoS.restore_by_tag``, in a transaction, so two workers never requeue it twice.

Only a worker's interpreter imports this module (kombu is one of its env's packages).
"""
# kombu's Redis transport has no annotations: every call into it is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import time
from queue import Empty
from typing import Any

from kombu.serialization import loads as kombu_loads
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from signal4.workers.wire import HEARTBEAT_PREFIX, ORPHAN_CONFIRM, OWNERS_KEY

logger = logging.getLogger("signal4.worker")

#: The content types a worker decodes (Celery's ``accept_content``: json).
ACCEPT = frozenset({"application/json"})

#: The node name of this worker (``env-pid@host``), set when the worker starts.
OWNER: dict[str, str] = {}


def set_owner(node: str) -> None:
    """Record ``node`` as the owner of the messages this process is delivered."""
    OWNER["node"] = node


def _show(raw: Any, limit: int = 120) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[:limit] + "…"


def dropped(queue: str, why: str, raw: Any) -> None:
    """Log, on one line, that a message was dropped and why."""
    logger.error("signal4: dropped a message on %s: %s: %s", queue, why, _show(raw))


def envelope_problem(raw: Any) -> str | None:
    """Why ``raw`` (a decoded Redis list item) is not a kombu message envelope, or None."""
    if not isinstance(raw, dict):
        return f"not a message envelope (a JSON {type(raw).__name__})"
    props = raw.get("properties")
    if not isinstance(props, dict):
        return "not a message envelope (no 'properties' object)"
    tag = props.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        return "not a message envelope (no delivery tag)"
    if not isinstance(props.get("delivery_info"), dict):
        return "not a message envelope (no 'delivery_info' object)"
    if not isinstance(raw.get("headers", {}), (dict, type(None))):
        return "not a message envelope ('headers' is not an object)"
    body = raw.get("body")
    if body is not None and not isinstance(body, str):
        return "not a message envelope ('body' is not a string)"
    return None


def _connection_errors(errors: tuple[type[BaseException], ...]) -> tuple[type[BaseException], ...]:
    """kombu's connection errors without ``KeyError``, which it counts as one (kombu #2582).

    Inside one message's delivery a ``KeyError`` is the message's fault: counted as a lost
    connection, the consumer would reconnect and get the same message again, forever.
    """
    return tuple(e for e in errors if e is not KeyError)


class QoS(kombu_redis.QoS):
    """kombu's acknowledgement emulation, plus the owner of each delivered message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: delivery tag -> when it was first seen with its owner's heartbeat gone
        self.orphans_seen: dict[str, float] = {}

    def append(self, message: Any, delivery_tag: str) -> None:
        node = OWNER.get("node")
        if node:
            # before kombu's own entry: every entry in ``unacked`` has its owner
            with self.channel.conn_or_acquire() as client:
                client.hset(OWNERS_KEY, delivery_tag, node)
        super().append(message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        # kombu removes a message from ``unacked`` here, on ack, reject and restore, in the
        # same pipeline (a transaction): its owner goes with it
        return super()._remove_from_indices(delivery_tag, pipe).hdel(OWNERS_KEY, delivery_tag)

    def restore_visible(self, *args: Any, **kwargs: Any) -> Any:
        # kombu calls this from the event loop every ``unacked_restore_interval`` seconds
        self.restore_orphans()
        return super().restore_visible(*args, **kwargs)

    def restore_orphans(self, now: float | None = None) -> list[str]:
        """Put back on this worker's queues the tasks of dead workers; return their tags."""
        queues = set(self.channel.active_queues)
        if not queues:
            return []
        now = time.monotonic() if now is None else now
        restored: list[str] = []
        with self.channel.conn_or_acquire() as client:
            owners = {
                bytes_to_str(tag): bytes_to_str(node)
                for tag, node in (client.hgetall(OWNERS_KEY) or {}).items()
            }
            nodes = sorted(set(owners.values()))
            pipe = client.pipeline(transaction=False)
            for node in nodes:
                pipe.exists(HEARTBEAT_PREFIX + node)
            alive = {node for node, there in zip(nodes, pipe.execute(), strict=True) if there}
            dead = {tag: node for tag, node in owners.items() if node not in alive}
            self.orphans_seen = {tag: self.orphans_seen.get(tag, now) for tag in dead}
            for tag, node in dead.items():
                if now - self.orphans_seen[tag] < ORPHAN_CONFIRM:
                    continue
                raw = client.hget(self.unacked_key, tag)
                if raw is None:  # acknowledged, or restored by another worker
                    client.hdel(OWNERS_KEY, tag)
                    continue
                try:
                    payload, _exchange, routing_key = loads(bytes_to_str(raw))
                except (TypeError, ValueError):
                    continue  # not ours to judge; the visibility timeout will
                if routing_key not in queues:
                    continue  # another env's task: its workers take it back
                self.restore_by_tag(tag, client)
                self.orphans_seen.pop(tag, None)
                restored.append(tag)
                headers = (payload.get("headers") or {}) if isinstance(payload, dict) else {}
                logger.warning(
                    "signal4: put task %s (%s) back on %s: its worker %s is gone",
                    headers.get("id", tag),
                    headers.get("task", "?"),
                    routing_key,
                    node,
                )
        return restored


class Channel(kombu_redis.Channel):
    """kombu's Redis channel that drops what it cannot decode instead of failing."""

    QoS = QoS

    def _decode_failed(self, exc: ValueError, queue: str) -> None:
        raw = getattr(exc, "doc", None) or getattr(exc, "object", None)
        dropped(queue, f"not JSON ({exc})", raw)

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)
        except ValueError as exc:
            # kombu decodes the item it popped before it delivers it (and delivery never
            # raises this, see Transport._deliver): the item is gone from the list
            self._decode_failed(exc, ", ".join(self.active_queues) or "a queue")
            raise Empty() from None

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        try:
            return super()._get(queue)
        except ValueError as exc:
            self._decode_failed(exc, queue)
            raise Empty() from None

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        """Consume ``queue``; a message the consumer fails on is dropped, not fatal."""
        if "callback" in kwargs:
            kwargs["callback"] = self._guarded(queue, kwargs["callback"])
        elif len(args) >= 2:
            args = (args[0], self._guarded(queue, args[1]), *args[2:])
        return super().basic_consume(queue, *args, **kwargs)

    def _guarded(self, queue: str, callback: Any) -> Any:
        errors = _connection_errors(self.connection_errors)

        def on_message(message: Any) -> Any:
            try:
                # JSON only, as Celery accepts: a body that is not is dropped here, on one
                # line (Celery would log its traceback, then drop it too)
                kombu_loads(
                    message.body,
                    message.content_type,
                    message.content_encoding,
                    accept=ACCEPT,
                )
            except Exception as exc:
                dropped(queue, f"undecodable body ({type(exc).__name__}: {exc})", message.body)
                if not message.acknowledged:
                    message.ack()
                return None
            try:
                return callback(message)
            except errors:
                raise
            except Exception as exc:
                dropped(queue, f"{type(exc).__name__}: {exc}", getattr(message, "body", None))
                if not message.acknowledged:
                    message.ack()
                return None

        return on_message


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        problem = envelope_problem(message)
        if problem:
            dropped(queue, problem, message)
            return
        try:
            super()._deliver(message, queue)
        except _connection_errors(self.connection_errors):
            raise
        except Exception as exc:  # kombu could not make a message of it (its body, say)
            dropped(queue, f"{type(exc).__name__}: {exc}", message)
