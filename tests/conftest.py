"""Shared test set-up: per-env selection from the manifest, and an isolated data folder.

Tests of processing steps live in ``tests/processing_steps/test_<task>.py``; each is
marked ``env(<env>)`` from the manifest's task map, so nothing here copies that map.
Other tests may mark themselves ``@pytest.mark.env("<env>")``.

``pytest --env NAME`` keeps only the tests for env NAME (run inside that env by
``nox -s NAME``); ``--env none`` keeps the tests that need no sub-env (``nox -s unit``
runs the fast ones, ``nox -s integration`` those marked ``slow``).
Without ``--env`` every test is collected.

State DB tests take ``db_url``: each runs once on a SQLite file and once on a fresh
database of a real PostgreSQL server this session starts (``tests/helpers/postgres.py``).

The fixtures every slow test shares live here (:func:`synced`, :func:`second_checkout`);
the Redis server and warm workers in ``tests/workers/conftest.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from signal4.content import settings
from signal4.envs import layout, syncer
from signal4.envs import manifest as manifest_mod

ROOT = Path(__file__).resolve().parents[1]
STEP_TESTS = ROOT / "tests" / "processing_steps"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--env",
        default=None,
        help="only tests for this sub-env ('none': tests that need no sub-env)",
    )


def _env_of(item: pytest.Item, tasks: dict[str, str]) -> str | None:
    marker = item.get_closest_marker("env")
    if marker is not None:
        return str(marker.args[0])
    path = Path(str(item.fspath))
    if path.parent == STEP_TESTS and path.stem.startswith("test_"):
        return tasks.get(path.stem.removeprefix("test_"))
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = config.getoption("--env")
    m = manifest_mod.load(ROOT)
    tasks = {t.name: t.env for t in m.tasks.values()}
    keep, drop = [], []
    for item in items:
        env = _env_of(item, tasks)
        if env is not None and item.get_closest_marker("env") is None:
            item.add_marker(pytest.mark.env(env))
        target = env or "none"
        (keep if wanted is None or wanted == target else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def isolated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every setting at a fresh data folder; no test touches the real one."""
    import os

    for key in list(os.environ):
        if key.startswith("SIGNAL4_"):
            monkeypatch.delenv(key)
    data = tmp_path / "data"
    monkeypatch.setenv("SIGNAL4_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)  # no stray .env file is read
    settings.get.cache_clear()
    yield data
    settings.get.cache_clear()


@pytest.fixture(scope="session")
def project_manifest() -> manifest_mod.Manifest:
    """The project's real manifest."""
    return manifest_mod.load(ROOT)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for this session (skips, or fails in CI, where there is none)."""
    from tests.helpers import postgres

    try:
        server = postgres.start()
    except postgres.Unavailable as exc:
        if postgres.required():
            pytest.fail(f"PostgreSQL is required here ({postgres.REQUIRE_VAR} or CI): {exc}")
        pytest.skip(f"{exc} (CI and {postgres.REQUIRE_VAR}=1 make this a failure)")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """The URL of a fresh database on the session's PostgreSQL server."""
    from tests.helpers import postgres

    with postgres.database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty state DB: a SQLite file, or a fresh database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


def sync_envs(root: Path, names: Sequence[str] = ()) -> manifest_mod.Manifest:
    """Sync the envs of the checkout at ``root`` from its lock with the project's own API.

    ``names``: those envs; none: what ``inv sync-all`` syncs (every env but the optional
    ones). An env that is fresh already is not touched, so this is a no-op when all are.
    """
    m = manifest_mod.load(root)
    chosen = syncer.select(m, names)
    results = syncer.sync_many(m, [layout.spec(m, name) for name in chosen], jobs=2)
    failed = [r for r in results if not r.ok]
    assert not failed, failed
    return m


@pytest.fixture(scope="session")
def synced() -> manifest_mod.Manifest:
    """This checkout's envs, synced as ``inv sync-all`` leaves them: a fresh clone has none."""
    return sync_envs(ROOT)


@pytest.fixture(scope="session")
def second_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another checkout of this project (the files a clone has), no env synced.

    Tracked files and new ones not ignored: what a clone has once they are committed.
    """
    other = tmp_path_factory.mktemp("machine-b") / "signal4"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (other / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, other / name)
    return other
