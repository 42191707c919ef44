"""The runner's side of a step's records: what ``record.apply`` writes to a real state DB."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signal4.content import settings
from signal4.content.state import StateDB
from signal4.run import record
from tests.conftest import ROOT


@pytest.fixture
def db(db_url: str) -> Iterator[StateDB]:
    """A new state DB, on SQLite and on PostgreSQL."""
    handle = StateDB(db_url)
    yield handle
    handle.engine.dispose()


@pytest.fixture
def conf_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> StateDB:
    """The state DB the settings name (what Recorder and on_worker open), on each backend."""
    monkeypatch.setenv("SIGNAL4_DATABASE_URL", db_url)
    settings.get.cache_clear()
    return StateDB(settings.get().db_url)


def _result(*records: dict[str, Any]) -> dict[str, Any]:
    return {"status": "completed", "step": "demo", "records": list(records)}


def test_register_then_done_with_its_info(db: StateDB, tmp_path: Path) -> None:
    written = record.apply(
        db,
        _result(
            {"content": "c", "register": {"kind": "file", "title": "T", "meta": {"media": "a"}}},
            {"content": "c", "register": {"kind": "file", "duration": 2.5}},
            {"content": "c", "stage": "convert", "status": "done", "info": {"chunks": 3}},
        ),
    )
    assert written == 3
    item = db.get("c")
    assert item is not None
    # a later register keeps the fields it does not name
    assert (item.kind, item.title, item.duration, item.meta) == ("file", "T", 2.5, {"media": "a"})
    assert [(r.stage, r.status, r.info) for r in item.steps] == [("convert", "done", {"chunks": 3})]


def test_a_done_stage_of_an_unknown_item_registers_it_from_its_folder(
    db: StateDB, tmp_path: Path
) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "item.json").write_text(
        json.dumps({"kind": "podcast", "title": "Ep", "other": "ignored"})
    )
    record.apply(
        db, _result({"content": "c", "stage": "download", "status": "done"}), content_root=tmp_path
    )
    item = db.get("c")
    assert item is not None and (item.kind, item.title) == ("podcast", "Ep")
    # no folder to describe it: registered all the same, of an unknown kind
    record.apply(
        db, _result({"content": "d", "stage": "download", "status": "done"}), content_root=tmp_path
    )
    assert db.get("d").kind == "unknown"  # type: ignore[union-attr]


def test_a_skipped_stage_keeps_what_the_db_says_of_it(db: StateDB) -> None:
    db.register("c", kind="file")
    db.mark("c", "convert", "done", info={"chunks": 3})
    db.set_provenance("c", "convert", {"params": {"n": 1}})
    skipped = {"content": "c", "stage": "convert", "status": "done", "skipped": True}
    assert record.apply(db, _result(skipped)) == 0
    assert db.get("c").steps[0].info == {"chunks": 3}  # type: ignore[union-attr]
    assert db.provenance(["c"]) == {"c": {"convert": {"params": {"n": 1}}}}
    # a stage the DB does not know done (its DB was replaced): done now, outputs unchanged
    db.register("e", kind="file")
    db.mark("e", "convert", "failed", error="old")
    db.set_provenance("e", "convert", {"params": {"n": 2}})
    assert record.apply(db, _result({**skipped, "content": "e"})) == 1
    assert db.stage_status("e", "convert") == "done"
    assert db.provenance(["e"]) == {"e": {"convert": {"params": {"n": 2}}}}


def test_a_new_done_drops_the_provenance_of_the_outputs_it_replaced(db: StateDB) -> None:
    db.register("c", kind="file")
    db.mark("c", "convert", "done")
    db.set_provenance("c", "convert", {"params": {"n": 1}})
    record.apply(db, _result({"content": "c", "stage": "convert", "status": "done"}))
    assert db.provenance(["c"]) == {}


def test_a_failure_keeps_a_done_stage_done_only_while_its_outputs_are_kept(db: StateDB) -> None:
    db.register("c", kind="file")
    db.mark("c", "convert", "done", info={"chunks": 3})
    failure = {"content": "c", "stage": "convert", "status": "failed", "error": "disk full"}
    record.apply(db, _result({**failure, "outputs_kept": True}))
    row = db.get("c").steps[0]  # type: ignore[union-attr]
    assert (row.status, row.error, row.info["chunks"]) == ("done", None, 3)
    assert (row.info["last_attempt"]["status"], row.info["last_attempt"]["error"]) == (
        "failed",
        "disk full",
    )
    record.apply(db, _result({**failure, "outputs_kept": False}))
    row = db.get("c").steps[0]  # type: ignore[union-attr]
    assert (row.status, row.error) == ("failed", "disk full")
    # "true", 1: only the JSON true counts as kept
    db.mark("c", "convert", "done")
    record.apply(db, _result({**failure, "status": "timed_out", "outputs_kept": "true"}))
    assert db.stage_status("c", "convert") == "timed_out"


def test_a_failure_on_an_id_that_names_nothing_is_not_recorded(db: StateDB, tmp_path: Path) -> None:
    failure = {"content": "ghost", "stage": "convert", "status": "invalid_input", "error": "x"}
    record.apply(db, _result(failure), content_root=tmp_path)
    assert db.all() == []
    # its folder describes it (the DB was replaced, say): registered, and the failure kept
    (tmp_path / "ghost").mkdir()
    (tmp_path / "ghost" / "item.json").write_text(json.dumps({"kind": "file"}))
    record.apply(db, _result(failure), content_root=tmp_path)
    assert db.stage_status("ghost", "convert") == "invalid_input"
    assert db.get("ghost").steps[0].error == "x"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ("nope", "records must be a list"),
        ([{"stage": "convert", "status": "done"}], "without a content id"),
        ([{"content": "", "stage": "convert", "status": "done"}], "without a content id"),
        ([{"content": "c", "register": {"colour": "red"}}], "unknown fields"),
        ([{"content": "c", "register": ["kind"]}], "unknown fields"),
        ([{"content": "c", "stage": "convert", "status": "pending"}], "known status"),
        ([{"content": "c", "status": "done"}], "without a stage"),
    ],
)
def test_a_bad_record_is_refused_and_nothing_is_written(
    db: StateDB, records: Any, needle: str
) -> None:
    good = {"content": "ok", "register": {"kind": "file"}}
    result = {
        "status": "completed",
        "records": [good, *records] if isinstance(records, list) else records,
    }
    with pytest.raises(record.BadRecord, match=needle):
        record.apply(db, result)
    assert db.all() == []  # checked whole before the first write
    assert record.records_of({"status": "completed"}) == []


def test_describe_from_db_writes_item_json_for_content_stored_before_it(
    db: StateDB, tmp_path: Path
) -> None:
    db.register("old", kind="podcast", title="Ep", meta={"media": "ep.mp3"})
    assert record.describe_from_db(db, tmp_path, "old") is False  # no folder: nothing to do
    (tmp_path / "old").mkdir()
    assert record.describe_from_db(db, tmp_path, "old") is True
    described = json.loads((tmp_path / "old" / "item.json").read_text())
    assert described == {"kind": "podcast", "title": "Ep", "meta": {"media": "ep.mp3"}}
    db.register("old", kind="podcast", title="Changed")
    assert record.describe_from_db(db, tmp_path, "old") is False  # the folder's own stays
    assert json.loads((tmp_path / "old" / "item.json").read_text())["title"] == "Ep"
    (tmp_path / "new").mkdir()
    assert record.describe_from_db(db, tmp_path, "new") is False  # the DB knows nothing
    assert record.describe_from_db(db, tmp_path, "../old") is False  # no id: the step says so
    assert not (tmp_path / "new" / "item.json").exists()


def test_content_arg() -> None:
    assert record.content_arg(["--x", "1", "--content", "c1"]) == "c1"
    assert record.content_arg(["--content=c2"]) == "c2"
    assert record.content_arg(["--content"]) is None
    assert record.content_arg(["--input", "a.wav"]) is None


def test_on_worker_writes_the_records_and_a_bad_db_is_only_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], conf_db: StateDB
) -> None:
    conf = settings.get()
    db = conf_db
    db.register("old", kind="file", title="Old")
    (conf.content_root / "old").mkdir(parents=True)
    seen: list[bool] = []

    def run() -> dict[str, Any]:
        seen.append((conf.content_root / "old" / "item.json").is_file())  # described first
        return _result({"content": "old", "stage": "convert", "status": "done"})

    result = record.on_worker(["--content", "old"], run)
    assert seen == [True]
    assert result["records"] and db.stage_status("old", "convert") == "done"
    # a record the DB refuses: the step's result still comes back, with a warning
    bad = record.on_worker([], lambda: {"step": "demo", "records": "nope"})
    assert bad == {"step": "demo", "records": "nope"}
    err = capsys.readouterr().err
    assert "warning: the state of demo not recorded: records must be a list" in err
    assert "could not describe" not in err  # no --content: nothing to describe
    # a bad setting: the step runs (and says what is wrong) without the DB
    monkeypatch.setenv("SIGNAL4_CHUNK_SECONDS", "nan")
    settings.get.cache_clear()
    assert record.on_worker([], lambda: {"status": "invalid_input"}) == {"status": "invalid_input"}


def test_inv_run_records_what_the_step_reports(tmp_path: Path) -> None:
    """A real ``inv run convert``: the step writes no DB, inv run writes its records."""
    import os

    from signal4.envs import manifest
    from signal4.envs import venv as envs

    m = manifest.load(ROOT)
    inv = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]
    if envs.status(m, envs.spec(m, "convert")) is not envs.State.UP_TO_DATE:
        synced = subprocess.run([*inv, "sync", "convert"], cwd=ROOT, capture_output=True, text=True)
        assert synced.returncode == 0, synced.stdout + synced.stderr
    src = tmp_path / "talk.wav"  # the bundled sample (the dev env has no ffmpeg to make one)
    shutil.copyfile(ROOT / "samples" / "two_speakers" / "audio.wav", src)
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path / "data")}
    env.pop("SIGNAL4_CONTENT_DIR", None)
    env.pop("SIGNAL4_DB_URL", None)
    proc = subprocess.run(
        [*inv, "run", "convert", "--", "--input", str(src), "--content", "talk"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r.get("stage") for r in result["records"]] == [None, None, "convert"]
    db = StateDB(f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    item = db.get("talk")
    assert item is not None and (item.kind, item.title) == ("file", "talk")
    assert db.stage_status("talk", "convert") == "done"


def test_a_failure_the_step_did_not_report_is_recorded_by_the_runner(db: StateDB) -> None:
    db.register("c", kind="file")
    # timed out: no records of its own; the stage takes the runner's status and error
    assert record.unreported(db, {}, "c", "transcribe", "timed_out", "ran past 1 s")
    row = db.get("c").steps[0]  # type: ignore[union-attr]
    assert (row.stage, row.status, row.error) == ("transcribe", "timed_out", "ran past 1 s")
    # a done stage stays done: the step was stopped from outside, its outputs are intact
    db.mark("c", "convert", "done", info={"chunks": 1})
    assert record.unreported(db, {}, "c", "convert", "interrupted", "")
    row = next(r for r in db.get("c").steps if r.stage == "convert")  # type: ignore[union-attr]
    assert row.status == "done" and row.info["last_attempt"]["status"] == "interrupted"
    assert row.info["last_attempt"]["error"] == "interrupted"  # no error: the status says it
    # the step's own record of the stage wins; success and unknown items write nothing
    own = {"records": [{"content": "c", "stage": "stitch", "status": "failed", "error": "x"}]}
    assert not record.unreported(db, own, "c", "stitch", "failed", "exit 1")
    assert not record.unreported(db, {}, "c", "stitch", "completed", "")
    assert not record.unreported(db, {}, "c", "stitch", "skipped", "")
    assert not record.unreported(db, {}, "ghost", "stitch", "failed", "boom")
    assert db.stage_status("c", "stitch") is None and db.get("ghost") is None
    # a result whose records are garbage: the runner's account still goes in
    assert record.unreported(db, {"records": "nope"}, "c", "stitch", "failed", "boom")
    assert db.stage_status("c", "stitch") == "failed"


def test_settle_records_a_timed_out_stage(db: StateDB) -> None:
    from signal4.envs.manifest import Task
    from signal4.run import batch, dispatch
    from signal4.run.plan import Item, Stage

    task = Task("transcribe", "transcribe", "m", 1.0, 1, stage="transcribe")
    stage = Stage(task, ["--content", "c"])
    item = Item("c.wav", "c", [stage], content="c")
    db.register("c", kind="file")
    outcome = dispatch.Outcome(
        "transcribe", "transcribe", "timed_out", 124, -15, 1.0, error="timed out after 1 s"
    )
    result = batch.ItemResult(item)
    batch.settle(db, result, stage, outcome, host="h")
    assert (result.status, stage.done) == ("failed", False)
    assert db.stage_status("c", "transcribe") == "timed_out"
    assert db.get("c").steps[0].error == "timed out after 1 s"  # type: ignore[union-attr]
    assert [r.status for r in db.runs()] == ["timed_out"]


def test_register_fills_in_the_kind_and_a_new_item_from_its_folder(
    db: StateDB, tmp_path: Path
) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "item.json").write_text(json.dumps({"kind": "podcast", "title": "Ep"}))
    every = {"kind": "file", "source_url": "u", "title": "T", "duration": 1.0, "meta": {}}
    assert record.apply(db, _result({"content": "a", "register": every})) == 1  # all five
    # new here: its folder's description first, then what the step says
    record.apply(
        db, _result({"content": "c", "register": {"duration": 3.0}}), content_root=tmp_path
    )
    item = db.get("c")
    assert item is not None and (item.kind, item.title, item.duration) == ("podcast", "Ep", 3.0)
    # known: a record without a kind keeps the item's kind, and the folder is not read again
    (tmp_path / "c" / "item.json").write_text(json.dumps({"kind": "file", "title": "Other"}))
    record.apply(db, _result({"content": "c", "register": {"title": "New"}}), content_root=tmp_path)
    item = db.get("c")
    assert item is not None and (item.kind, item.title) == ("podcast", "New")
    # neither known nor described: of an unknown kind
    record.apply(db, _result({"content": "d", "register": {"title": "D"}}), content_root=tmp_path)
    assert db.get("d").kind == "unknown"  # type: ignore[union-attr]


def test_apply_counts_what_it_wrote_and_goes_on_after_a_skip(db: StateDB, tmp_path: Path) -> None:
    db.register("c", kind="file")
    db.mark("c", "convert", "done")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "item.json").write_text("[1, 2]")  # no object: describes nothing
    written = record.apply(
        db,
        _result(
            {"content": "c", "stage": "convert", "status": "done", "skipped": True},
            {"content": "c", "stage": "transcribe", "status": "failed", "error": "e1"},
            {"content": "c", "stage": "diarize", "status": "failed", "error": "e2"},
            {"content": "odd", "stage": "convert", "status": "done"},
        ),
        content_root=tmp_path,
    )
    assert written == 3  # the skip of a done stage writes nothing
    assert db.stage_status("c", "transcribe") == "failed"
    assert db.stage_status("c", "diarize") == "failed"
    assert db.get("odd").kind == "unknown"  # type: ignore[union-attr]


def test_unreported_says_whether_it_wrote(db: StateDB) -> None:
    db.register("c", kind="file")
    own_other_stage = {"records": [{"content": "c", "stage": "convert", "status": "done"}]}
    own_other_item = {"records": [{"content": "x", "stage": "stitch", "status": "done"}]}
    assert record.unreported(db, {}, "c", "stitch", "completed", "") is False
    assert record.unreported(db, {}, "ghost", "stitch", "failed", "e") is False
    assert record.unreported(db, own_other_stage, "c", "stitch", "failed", "e") is True
    assert record.unreported(db, own_other_item, "c", "diarize", "failed", "e") is True
    own = {"records": [{"content": "c", "stage": "stitch", "status": "failed", "error": "x"}]}
    assert record.unreported(db, own, "c", "stitch", "failed", "e") is False


def test_the_recorder_writes_what_the_runner_saw_only_with_its_stage_and_item(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], conf_db: StateDB
) -> None:
    db = conf_db
    db.register("c", kind="file")
    # ended on its own (status None): nothing of the runner's to add
    record.Recorder(["--content", "c"], "transcribe").after({})
    assert db.stage_status("c", "transcribe") is None
    # timed out: the stage takes the runner's account
    record.Recorder(["--content", "c"], "transcribe").after({}, "timed_out", "ran past 1 s")
    assert db.stage_status("c", "transcribe") == "timed_out"
    assert db.get("c").steps[0].error == "ran past 1 s"  # type: ignore[union-attr]
    # without a stage, or without an item, there is nothing to write it on
    record.Recorder(["--content", "c"]).after({}, "failed", "boom")
    record.Recorder([], "diarize").after({}, "failed", "boom")
    assert db.stage_status("c", "diarize") is None
    # a bad setting when it was made: the DB is left alone, records or not
    monkeypatch.setenv("SIGNAL4_CHUNK_SECONDS", "nan")
    settings.get.cache_clear()
    blind = record.Recorder(["--content", "c"], "diarize")
    monkeypatch.delenv("SIGNAL4_CHUNK_SECONDS")
    settings.get.cache_clear()
    blind.after({"records": [{"content": "c", "stage": "diarize", "status": "done"}]}, "failed")
    assert db.stage_status("c", "diarize") is None
    assert capsys.readouterr().err == ""


def test_the_recorder_warns_when_the_db_cannot_describe_an_item(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (settings.get().content_root / "c").mkdir(parents=True)
    (tmp_path / "a-file").write_text("")  # no folder can be made under it
    monkeypatch.setenv("SIGNAL4_DATABASE_URL", f"sqlite:///{tmp_path / 'a-file' / 'x.db'}")
    settings.get.cache_clear()
    recorder = record.Recorder(["--content", "c"], "convert")
    assert "warning: could not describe c from the state DB: " in capsys.readouterr().err
    # nothing to write: the DB is not opened (so no second warning)
    stageless = record.Recorder(["--content", "c"])
    capsys.readouterr()  # its own describe warning
    recorder.after({})
    record.Recorder([], "convert").after({}, "failed", "boom")
    stageless.after({}, "failed", "boom")
    assert capsys.readouterr().err == ""
    recorder.after({}, "timed_out", "ran long")  # something to write: it tries, and says so
    assert "warning: the state of convert not recorded: " in capsys.readouterr().err
