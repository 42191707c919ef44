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
