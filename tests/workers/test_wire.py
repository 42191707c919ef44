"""What workers and submitters agree on (signal4.workers.wire): broker URLs, errors, Redis."""

from __future__ import annotations

import pytest

from signal4.codes import EXIT_USAGE
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
