"""The state DB on a real SQLite file and a real PostgreSQL server: register, mark,
states, several writers at once, a file removed under it, errors that say what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from signal4.codes import EXIT_STATE_DB, StageState
from signal4.content.state import StateDB, StateDBError
from tests.conftest import ROOT
from tests.helpers import statedb


@pytest.fixture
def db(db_url: str) -> Iterator[StateDB]:
    handle = StateDB(db_url)
    yield handle
    handle.engine.dispose()


def test_creates_the_file_and_its_folder(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'sub' / 'state.db'}")
    assert (tmp_path / "sub" / "state.db").is_file()
    assert db.all() == []


def test_register_creates_then_updates_only_given_fields(db: StateDB) -> None:
    db.register("c1", kind="podcast", source_url="http://x/a.mp3", title="A", meta={"k": 1})
    db.register("c1", kind="podcast", duration=12.5)
    item = db.get("c1")
    assert item is not None
    assert (item.kind, item.source_url, item.title, item.duration, item.meta) == (
        "podcast",
        "http://x/a.mp3",
        "A",
        12.5,
        {"k": 1},
    )
    assert item.created_at is not None
    db.register("c1", kind="", title="B")  # no kind: the item keeps its own
    item = db.get("c1")
    assert item is not None and (item.kind, item.title, item.duration) == ("podcast", "B", 12.5)
    db.register("c2", kind="file")
    assert [i.id for i in db.all()] == ["c1", "c2"]
    assert db.get("nope") is None


def test_mark_and_read_states(db: StateDB) -> None:
    db.register("c", kind="file")
    assert db.stage_status("c", "convert") is None
    assert not db.is_done("c", "convert")
    db.mark("c", "convert", "failed", error="boom")
    item = db.get("c")
    assert item is not None
    assert [(s.stage, s.status, s.error) for s in item.steps] == [("convert", "failed", "boom")]
    db.mark("c", "convert", StageState.DONE, info={"chunks": 3})
    item = db.get("c")
    assert item is not None
    [row] = item.steps
    assert (row.status, row.error, row.info) == (
        StageState.DONE,
        None,
        {"chunks": 3},
    )  # error cleared
    assert db.is_done("c", "convert")
    db.mark("c", "convert", "failed", error="again")  # no info: the info recorded stays
    row = db.get("c").steps[0]  # type: ignore[union-attr]
    assert (row.status, row.error, row.info) == ("failed", "again", {"chunks": 3})
    assert row.updated_at is not None
    db.mark("c", "convert", StageState.DONE, info={"chunks": 3})
    db.mark("c", "download", StageState.DONE)
    item = db.get("c")
    assert item is not None
    assert {s.stage: s.status for s in item.steps} == {
        "convert": StageState.DONE,
        "download": StageState.DONE,
    }


def test_mark_takes_any_stage_but_refuses_unknown_content(db: StateDB) -> None:
    db.register("c", kind="file")
    db.mark(
        "c", "a_new_stage", StageState.DONE
    )  # stage names come from the manifest, not from here
    assert db.is_done("c", "a_new_stage")
    with pytest.raises(KeyError):
        db.mark("ghost", "convert", StageState.DONE)


def test_two_handles_share_one_db(db_url: str) -> None:
    a, b = StateDB(db_url), StateDB(db_url)
    a.register("c", kind="youtube")
    b.mark("c", "download", StageState.DONE)
    assert a.is_done("c", "download")
    a.engine.dispose()
    b.engine.dispose()


def test_a_postgresql_url_gets_the_installed_driver_and_never_shows_its_password() -> None:
    from signal4.content import state

    url = "postgresql://me:hunter2@db.example:5433/signal4"
    assert state.engine_url(url).drivername == "postgresql+psycopg"
    assert state.engine_url("postgres://me@h/db").drivername == "postgresql+psycopg"
    assert state.engine_url("postgresql+psycopg://me@h/db").drivername == "postgresql+psycopg"
    assert state.shown(url) == "postgresql://me:***@db.example:5433/signal4"
    assert state.sqlite_path(url) is None and state.sqlite_path("sqlite://") is None
    with pytest.raises(StateDBError, match="not a database URL") as bad:
        state.engine_url("me:hunter2@nowhere")
    assert "hunter2" not in str(bad.value) and bad.value.code == 2
    with pytest.raises(StateDBError, match="must be a SQLite or PostgreSQL URL"):
        StateDB("mysql://me:hunter2@h/db")
    with pytest.raises(StateDBError, match="driver that is not installed") as missing:
        StateDB("postgresql+pg8000://me:hunter2@h/db")
    assert "hunter2" not in str(missing.value)


def test_only_a_postgresql_url_imports_the_driver(tmp_path: Path) -> None:
    """A SQLite state DB (every runner's default) never loads psycopg; a PostgreSQL URL
    loads it when it is opened, not before."""
    code = (
        "import sys\n"
        "from signal4.content.state import StateDB, engine_url\n"
        f"db = StateDB('sqlite:///{tmp_path / 'state.db'}')\n"
        "db.register('c', kind='file'); db.mark('c', 'convert', 'done')\n"
        "db.set_provenance('c', 'convert', {}); db.all()\n"
        "assert 'psycopg' not in sys.modules, 'sqlite loaded psycopg'\n"
        "from sqlalchemy import create_engine\n"
        "create_engine(engine_url('postgresql://u:p@127.0.0.1:1/db'))\n"
        "assert 'psycopg' in sys.modules, 'no psycopg for postgresql'\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert got.returncode == 0, got.stderr


def test_processes_opening_a_new_db_at_once_all_find_its_tables(
    db_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Four processes create the schema of a new DB at the same moment, on new DBs in turn
    (PostgreSQL's create_all from two processes can fail with a duplicate type or table;
    two turning a new SQLite file to WAL at once, one could fail: "database is locked")."""
    if db_url.startswith("sqlite"):
        urls = [f"sqlite:///{tmp_path / f'new{n}' / 'state.db'}" for n in range(20)]
    else:
        server = request.getfixturevalue("postgres_server")
        urls = [db_url, *(server.create_database() for _ in range(4))]
    codes = statedb.run_at_once(statedb.open_and_register, [urls], processes=4)
    assert codes == [0, 0, 0, 0]
    for url in urls:
        db = StateDB(url)
        assert sorted(i.id for i in db.all()) == [f"item-{n}" for n in range(4)]
        assert db.statuses() == {f"item-{n}": {"convert": StageState.DONE} for n in range(4)}
        db.engine.dispose()
    if not db_url.startswith("sqlite"):
        for url in urls[1:]:
            server.drop_database(url)


def test_turning_a_new_sqlite_db_to_wal_tries_again_while_another_process_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two connections turning a new file to WAL at once: SQLite fails one of them at once
    ("database is locked", no busy wait); it tries again rather than fail its process."""
    import sqlite3
    import time

    from signal4.content import state

    class Racing:
        tries = 0

        def execute(self, sql: str) -> None:
            assert sql == "PRAGMA journal_mode=WAL"
            self.tries += 1
            if self.tries < 3:
                raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    racing = Racing()
    state._turn_to_wal(racing)
    assert racing.tries == 3

    class Broken(Racing):
        def execute(self, sql: str) -> None:
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        state._turn_to_wal(Broken())  # only a lock is waited out


def test_concurrent_writers_never_lose_a_record(db_url: str) -> None:
    """Defect 6: four processes register, mark, set provenance and record runs on the same
    new items at once. Each write is one upsert: none fails, none is lost."""
    workers, rounds, items = 4, 6, 3
    codes = statedb.run_at_once(statedb.hammer, [db_url, rounds, items], processes=workers)
    assert codes == [0] * workers  # a process that hit an error exits 1 (traceback above)
    db = StateDB(db_url)
    ids = sorted(f"c{r}-{i}" for r in range(rounds) for i in range(items))
    everything = db.all()
    assert sorted(item.id for item in everything) == ids
    byworker = {f"w{n}" for n in range(workers)}
    for item in everything:
        assert item.kind == "file" and item.title in byworker
        assert item.duration in {float(n) for n in range(workers)}
        states = {row.stage: row for row in item.steps}
        assert sorted(states) == ["compress", "convert"]
        for row in states.values():  # the last writer's info, never NULL
            assert (row.status, row.error) == (StageState.DONE, None)
            assert row.info is not None and row.info["by"] in range(workers)
    records = db.provenance()
    assert sorted(records) == ids  # convert was marked done keeping its outputs
    assert all(set(stages) == {"convert"} for stages in records.values())
    runs = db.runs()
    assert len(runs) == workers * rounds * items
    assert {r.host for r in runs} == byworker
    db.engine.dispose()


def test_a_long_lived_handle_follows_its_file_when_it_is_removed_or_remade(
    tmp_path: Path,
) -> None:
    """Defect 2: a warm worker's StateDB outlives ``rm -rf D/*``; its next write goes to the
    file now at that path (made anew, or made by another process first), never to the
    deleted one it still held open."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'state.db'}"
    worker = StateDB(url)
    worker.register("before", kind="file")
    shutil.rmtree(data)  # the folder and the DB with it
    worker.register("after", kind="file")
    worker.mark("after", "convert", StageState.DONE)
    status = StateDB(url)  # what `inv status` sees
    assert [i.id for i in status.all()] == ["after"]
    assert status.is_done("after", "convert")
    status.engine.dispose()
    for name in os.listdir(data):  # removed again; another pipeline makes it first
        os.unlink(data / name)
    other = StateDB(url)
    other.register("theirs", kind="podcast")
    worker.mark("theirs", "download", StageState.DONE)  # the worker's next write: the same file
    assert other.is_done("theirs", "download")
    assert [i.id for i in worker.all()] == ["theirs"]
    other.engine.dispose()
    worker.engine.dispose()


def test_a_read_only_state_db_reads_but_a_write_is_one_error_that_says_what_to_do(
    tmp_path: Path,
) -> None:
    """Defect 10: a DB on a read-only file system (as root: a read-only bind mount)."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'state.db'}"
    keeper = StateDB(url)  # another process has it open: its WAL files stay
    keeper.register("c", kind="file")
    with statedb.read_only(data):
        db = StateDB(url)
        assert db.get("c") is not None  # `inv status` can still read it
        with pytest.raises(StateDBError) as written:
            db.mark("c", "convert", StageState.DONE)
        db.engine.dispose()
    keeper.engine.dispose()
    error = written.value
    why = "permission denied" if os.geteuid() else "read-only file system"
    assert str(error).startswith(f"the state DB at {data / 'state.db'} cannot be written ({why}): ")
    assert str(error).endswith(
        "; fix the permissions of the file and folder, or set SIGNAL4_DATABASE_URL "
        "to a database elsewhere"
    )
    assert error.code == EXIT_STATE_DB and "\n" not in str(error)
    assert StateDB(url).get("c") is not None  # writable again: all as it was


def _inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inv = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]
    return subprocess.run(
        [*inv, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300
    )


def test_inv_status_and_pipeline_on_a_read_only_db_print_one_line_and_exit_4(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db = StateDB(f"sqlite:///{data / 'state.db'}")
    db.register("c", kind="file")
    db.engine.dispose()  # no process has it open: even a read must create its WAL index
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL4_")}
    env["SIGNAL4_DATA_DIR"] = str(data)
    with statedb.read_only(data):
        got = [_inv("status", env=env), _inv("pipeline", "--dry-run", env=env)]
    for proc in got:
        assert proc.returncode == EXIT_STATE_DB, proc.stderr
        assert "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"error: the state DB at {data / 'state.db'} cannot be written (")
        assert "SIGNAL4_DATABASE_URL" in line


def test_an_unreachable_postgresql_is_one_error_without_its_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://me:hunter2@127.0.0.1:{port}/signal4"
    with pytest.raises(StateDBError) as caught:
        StateDB(url)
    message = str(caught.value)
    assert message.startswith(
        f"cannot connect to the state DB at postgresql://me:***@127.0.0.1:{port}/signal4: "
    )
    assert "is the server running" in message and "hunter2" not in message
    assert caught.value.code == EXIT_STATE_DB and "\n" not in message
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL4_")}
    env.update(SIGNAL4_DATA_DIR=str(tmp_path / "data"), SIGNAL4_DATABASE_URL=url)
    proc = _inv("status", env=env)
    assert proc.returncode == EXIT_STATE_DB
    assert proc.stderr.strip() == f"error: {message}"


def test_a_wrong_password_is_one_error_that_does_not_repeat_it(postgres_server: object) -> None:
    from tests.helpers.postgres import Server

    assert isinstance(postgres_server, Server)
    url = postgres_server.url("postgres", password="not-the-password")
    with pytest.raises(StateDBError, match="cannot connect to the state DB at ") as caught:
        StateDB(url)
    assert "not-the-password" not in str(caught.value)
    assert "password authentication failed" in str(caught.value)
