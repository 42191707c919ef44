"""The session's one Redis server and its shared warm workers (see tests/helpers/cluster.py).

``redis_server`` starts ``redis-server`` (found as ``inv broker`` finds it) on a free
loopback port, once per session; ``cluster`` adds one worker per light env
(``convert``, ``stitch``, ``cleanup``) on database 0, each with ``inv worker`` in its
env's own interpreter. Both are started only when a test asks for them (slow tests only).
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest

from signal4.content import settings
from signal4.envs.manifest import Manifest
from signal4.workers import broker as broker_mod
from tests.helpers.cluster import LIGHT_ENVS, Cluster, free_port


@pytest.fixture(scope="module", autouse=True)
def _drop_client_sockets() -> Iterator[None]:
    """Collect the Celery apps a module made, before pytest's own end-of-run collection.

    Their Redis result-backend sockets would otherwise be closed by the garbage collector at
    an arbitrary later point, as an unraisable ResourceWarning that fails the whole run.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[broker_mod.LocalBroker]:
    """A local Redis on a free port for this session (``inv broker``'s code)."""
    try:
        broker_mod.find_server()
    except broker_mod.BrokerError as exc:
        pytest.skip(str(exc))
    server = broker_mod.LocalBroker(tmp_path_factory.mktemp("broker"), free_port())
    broker_mod.start(server)
    try:
        yield server
    finally:
        broker_mod.stop(server)


@pytest.fixture(scope="session")
def cluster(
    redis_server: broker_mod.LocalBroker,
    synced: Manifest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The session's Redis with one warm worker per light env on database 0."""
    c = Cluster(redis_server, tmp_path_factory.mktemp("cluster") / "data")
    try:
        for env in LIGHT_ENVS:
            c.start_worker(env)
        yield c
    finally:
        c.stop_all()


@pytest.fixture
def shared(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The cluster, with this test's settings pointed at the workers' data folder."""
    monkeypatch.setenv("SIGNAL4_DATA_DIR", str(cluster.data))
    settings.get.cache_clear()
    return cluster


@pytest.fixture
def m(project_manifest: Manifest) -> Manifest:
    """The project's manifest (the name the worker tests use)."""
    return project_manifest
