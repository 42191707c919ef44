"""The local Redis of ``inv broker`` (signal4.workers.broker), without starting one."""

from __future__ import annotations

from pathlib import Path

import pytest

from signal4.workers import broker


def test_the_local_broker_listens_on_loopback_only(tmp_path: Path) -> None:
    local = broker.LocalBroker(tmp_path, 6390)
    cmd = broker.command(local, "/usr/bin/redis-server")
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert local.url == "redis://127.0.0.1:6390/0"
    assert local.pid() is None and not broker.stop(local)


def test_a_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker.shutil, "which", lambda _name: None)
    monkeypatch.setattr(broker, "Path", lambda _p: Path("/nonexistent/redis-server"))
    with pytest.raises(broker.BrokerError, match="apt-get install redis-server"):
        broker.find_server()
