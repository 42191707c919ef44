"""The state DB on a real SQLite file: register, mark, states, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from signal4.content.state import DONE, StateDB


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'sub' / 'state.db'}")


def test_creates_the_file_and_its_folder(tmp_path: Path, db: StateDB) -> None:
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
    db.mark("c", "convert", DONE, info={"chunks": 3})
    item = db.get("c")
    assert item is not None
    [row] = item.steps
    assert (row.status, row.error, row.info) == (DONE, None, {"chunks": 3})  # error cleared
    assert db.is_done("c", "convert")
    db.mark("c", "download", DONE)
    item = db.get("c")
    assert item is not None
    assert {s.stage: s.status for s in item.steps} == {"convert": DONE, "download": DONE}


def test_mark_takes_any_stage_but_refuses_unknown_content(db: StateDB) -> None:
    db.register("c", kind="file")
    db.mark("c", "a_new_stage", DONE)  # stage names come from the manifest, not from here
    assert db.is_done("c", "a_new_stage")
    with pytest.raises(KeyError):
        db.mark("ghost", "convert", DONE)


def test_two_handles_share_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    a, b = StateDB(url), StateDB(url)
    a.register("c", kind="youtube")
    b.mark("c", "download", DONE)
    assert a.is_done("c", "download")
    a.engine.dispose()
    b.engine.dispose()


def test_a_table_another_process_just_created_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pipelines starting on a new DB both create its tables; the slower one looks again."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from signal4.content import state

    real = state.Base.metadata.create_all
    calls: list[int] = []

    def racing(engine: object, **kw: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            real(engine)  # the other process wins
            raise OperationalError(
                "CREATE TABLE content", {}, sqlite3.OperationalError("table content already exists")
            )
        real(engine)

    monkeypatch.setattr(state.Base.metadata, "create_all", racing)
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    assert db.all() == [] and len(calls) == 2

    def broken(engine: object, **kw: object) -> None:
        raise OperationalError(
            "CREATE TABLE content", {}, sqlite3.OperationalError("disk I/O error")
        )

    monkeypatch.setattr(state.Base.metadata, "create_all", broken)
    with pytest.raises(OperationalError, match="disk I/O error"):
        StateDB(f"sqlite:///{tmp_path / 'other.db'}")
