"""What workers and submitters agree on (signal4.workers.wire): broker URLs, errors, Redis."""

from __future__ import annotations

import pytest

from signal4 import codes
from signal4.codes import EXIT_USAGE
from signal4.errors import Signal4Error
from signal4.workers import wire

BAD_URLS = [
    "notaurl",
    "redis://host:notaport/0",
    "redis://127.0.0.1:6379/x",
    "http://127.0.0.1:6379/0",
    "redis://[::1/0",
    " ",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_broker_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(wire.BadBrokerUrl) as err:
        wire.check_broker_url(url)
    assert err.value.code == EXIT_USAGE and "--broker" in str(err.value)
    assert "redis://" in str(err.value)  # says what a good one looks like


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://127.0.0.1:0/0", "port 0"),
        ("redis://host:6379/٣", "the database '٣' is not a number"),  # a digit, not ASCII
        ("amqp://host:5672//", "the scheme must be redis or rediss"),
    ],
)
def test_a_broker_url_says_what_is_wrong_with_it(url: str, why: str) -> None:
    with pytest.raises(wire.BadBrokerUrl) as err:
        wire.check_broker_url(url)
    assert why in str(err.value)
    assert str(err.value).endswith("use redis://[:password@]host[:port]/db")


def test_a_broker_url_in_an_error_names_its_source_and_hides_its_password() -> None:
    for good in ("redis://127.0.0.1:6379/0", "rediss://:s3cret@host:6380/15", "redis://host"):
        assert wire.check_broker_url(good, "SIGNAL4_BROKER_URL") == good
    with pytest.raises(wire.BadBrokerUrl) as err:
        wire.check_broker_url("redis://user:s3cret@host:notaport/0", "SIGNAL4_BROKER_URL")
    said = str(err.value)
    assert said.startswith("SIGNAL4_BROKER_URL 'redis://user:**@host:notaport/0' is not")
    assert "s3cret" not in said


def test_each_routing_fault_has_its_exit_code() -> None:
    assert issubclass(wire.WorkerError, Signal4Error)
    expected = {
        wire.BadBrokerUrl: EXIT_USAGE,
        wire.DriftError: EXIT_USAGE,
        wire.NoWorkerError: EXIT_USAGE,
        wire.BrokerUnavailable: codes.EXIT_BROKER,
        wire.WaitTimeout: codes.EXIT_TIMEOUT,
    }
    for cls, code in expected.items():
        assert issubclass(cls, wire.WorkerError)
        assert cls("x").code == code, cls
    assert codes.EXIT_BROKER == wire.EXIT_BROKER == 3


def test_a_client_gives_up_quickly_and_its_errors_are_known() -> None:
    import kombu.exceptions
    import redis

    client = wire.redis_client("redis://127.0.0.1:6390/2", timeout=1.5)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1.5, 1.5)
    assert (kwargs["port"], kwargs["db"], kwargs["decode_responses"]) == (6390, 2, True)
    client.close()
    errors = wire.connection_errors()
    for lost in (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        ConnectionRefusedError,
        kombu.exceptions.OperationalError,
    ):
        assert issubclass(lost, errors), lost
    assert not issubclass(ValueError, errors)


def test_an_orphaned_task_is_confirmed_within_a_heartbeat_of_its_worker_going_silent() -> None:
    # a live worker cut off for a moment beats again before its tasks are taken from it
    assert wire.HEARTBEAT_INTERVAL < wire.ORPHAN_CONFIRM < wire.HEARTBEAT_TTL
