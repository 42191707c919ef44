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

from signal4.content.state import StateDB
from signal4.run import record
from tests.conftest import ROOT


@pytest.fixture
def db(db_url: str) -> Iterator[StateDB]:
    """A new state DB, on SQLite and on PostgreSQL."""
    handle = StateDB(db_url)
    yield handle
    handle.engine.dispose()


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


def test_content_arg() -> None:
    assert record.content_arg(["--x", "1", "--content", "c1"]) == "c1"
    assert record.content_arg(["--content=c2"]) == "c2"
    assert record.content_arg(["--content"]) is None
    assert record.content_arg(["--input", "a.wav"]) is None


def test_inv_run_records_what_the_step_reports(tmp_path: Path) -> None:
    """A real ``inv run convert``: the step writes no DB, inv run writes its records."""
    import os

    from signal4.envs import layout, manifest, venv

    m = manifest.load(ROOT)
    inv = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]
    if venv.status(m, layout.spec(m, "convert")) is not venv.State.UP_TO_DATE:
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


# ------------------------------------------------------------------ the stage recorder


def _task(stage: str = "transcribe", inputs: tuple[str, ...] = ()) -> Any:
    from signal4.envs.manifest import Task

    return Task(stage, stage, "m", 1.0, 1, stage=stage, inputs=inputs)


def _outcome(status: str, *records: dict[str, Any], error: str | None = None) -> Any:
    from signal4.codes import EXIT_CODES
    from signal4.run.dispatch import Outcome

    result = _result(*records) if records else {}
    if result:
        result["status"] = status
    return Outcome("t", "e", status, EXIT_CODES[status], 0, 1.0, result, error)


def test_the_recorder_writes_what_the_runner_saw_of_a_stage_the_step_could_not_report(
    db: StateDB,
) -> None:
    db.register("c", kind="file")
    recorder = record.StageRecorder(db, None)
    task = _task()
    # ended on its own, completed: the step's records say it all
    done = _outcome("completed", {"content": "c", "stage": "transcribe", "status": "done"})
    assert recorder.after(recorder.before(task, "c"), done) == []
    assert db.stage_status("c", "transcribe") == "done"
    db.mark("c", "diarize", "failed", error="old")
    # timed out, killed or stopped: the stage takes the runner's account
    timed_out = _outcome("timed_out", error="timed out after 1 s")
    recorder.after(recorder.before(_task("diarize"), "c"), timed_out)
    assert db.stage_status("c", "diarize") == "timed_out"
    # Ctrl-C: interrupted, not failed
    recorder.after(recorder.before(_task("stitch"), "c"), _outcome("interrupted", error="by INT"))
    assert db.stage_status("c", "stitch") == "interrupted"
    assert [(r.stage, r.status) for r in db.runs("c")] == [
        ("transcribe", "completed"),
        ("diarize", "timed_out"),
        ("stitch", "interrupted"),
    ]
    # a done stage stays done, its outputs being kept: the attempt goes into its info
    recorder.after(recorder.before(task, "c"), _outcome("interrupted", error="by TERM"))
    row = next(r for r in db.get("c").steps if r.stage == "transcribe")  # type: ignore[union-attr]
    assert row.status == "done" and row.info["last_attempt"]["status"] == "interrupted"


def test_what_each_runner_writes(db: StateDB) -> None:
    db.register("c", kind="file")
    done = _outcome("completed", {"content": "c", "stage": "transcribe", "status": "done"})
    # the client of a warm batch: the run, not the step's records (its worker wrote them)
    client = record.StageRecorder(db, None, records=False)
    client.after(client.before(_task(), "c"), done, item="c", host="worker-host")
    assert db.stage_status("c", "transcribe") is None
    assert [(r.status, r.host) for r in db.runs("c")] == [("completed", "worker-host")]
    # a worker: the step's records, not the run (its client records that)
    worker = record.StageRecorder(db, None, runs=False)
    worker.after(worker.before(_task(), "c"), done)
    assert db.stage_status("c", "transcribe") == "done" and len(db.runs("c")) == 1
    # a run that names no item is not a stage run (inv run -- --help)
    worker = record.StageRecorder(db, None)
    worker.after(worker.before(_task(), None), _outcome("completed"))
    assert len(db.runs()) == 1


def test_a_worker_records_provenance_with_its_own_host_and_lock(
    db: StateDB, tmp_path: Path
) -> None:
    import socket

    from signal4.content.store import STORAGE_MANIFEST
    from signal4.envs import manifest
    from signal4.run.provenance import Checker
    from signal4.stepkit.digest import file_digest

    m = manifest.load(ROOT)
    task = m.task("diarize")
    db.register("c1", kind="file")
    folder = tmp_path / "c1"
    folder.mkdir()
    (folder / "audio.wav").write_bytes(b"RIFF-audio")
    recorder = record.StageRecorder(db, tmp_path, m=m, checker=Checker(m, ()), lock="lock-123")
    ticket = recorder.before(task, "c1")
    (folder / "audio.wav").write_bytes(b"RIFF-other")  # what it read is what was there before
    done = _outcome("completed", {"content": "c1", "stage": "diarize", "status": "done"})
    done.result.update(content="c1", params={"speakers": None})
    assert recorder.after(ticket, done) == []
    made = db.provenance()["c1"]["diarize"]
    assert (made["lock"], made["host"], made["task"]) == (
        "lock-123",
        socket.gethostname(),
        "diarize",
    )
    assert made["inputs"]["audio.wav"]["digest"] != file_digest(folder / "audio.wav")
    assert made["params"] == {"speakers": None}
    assert made["env"]["name"] == "diarize" and made["code"]["digest"]
    assert json.loads((folder / STORAGE_MANIFEST).read_text())["provenance"] == {"diarize": made}
    # a run that did not complete records none (and the done run's record stays)
    recorder.after(recorder.before(task, "c1"), _outcome("failed", error="boom"))
    assert db.provenance()["c1"]["diarize"]["lock"] == "lock-123"
    # nor does a dry run
    dry = _outcome("completed")
    dry.result.update(status="completed", content="c1", dry_run=True)
    other = record.StageRecorder(db, tmp_path, m=m, checker=Checker(m, ()), lock="other")
    other.after(other.before(task, "c1"), dry)
    assert db.provenance()["c1"]["diarize"]["lock"] == "lock-123"


def test_a_db_that_cannot_be_written_is_a_note_not_the_stages_failure(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")  # no folder can be made under it
    recorder = record.StageRecorder(f"sqlite:///{tmp_path / 'a-file' / 'x.db'}", tmp_path)
    ticket = recorder.before(_task(), "c")  # nothing to write yet: the DB is not opened
    notes = recorder.after(ticket, _outcome("timed_out", error="ran long"), item="c")
    assert [n.split(":")[0] for n in notes] == [
        "the state of transcribe not recorded",
        "the run of transcribe not recorded",
    ]
    bad = record.StageRecorder(StateDB(f"sqlite:///{tmp_path / 'ok.db'}"), tmp_path)
    notes = bad.after(bad.before(_task(), "c"), _outcome("completed"), item="c")
    assert notes == []
    garbage = _outcome("completed")
    garbage.result.update(status="completed", records="nope")
    notes = bad.after(bad.before(_task(), "c"), garbage, item="c")
    assert notes == ["the state of transcribe not recorded: records must be a list, not str"]


def test_old_items_are_described_once_when_the_db_is_first_used(
    db: StateDB, tmp_path: Path
) -> None:
    db.register("old", kind="podcast", title="Ep", meta={"media": "ep.mp3"})
    db.register("gone", kind="file")  # no folder: nothing to write
    db.register("own", kind="file", title="DB's")
    for name in ("old", "own", "new"):
        (tmp_path / name).mkdir()
    (tmp_path / "own" / "item.json").write_text(json.dumps({"kind": "file", "title": "Own"}))
    recorder = record.StageRecorder(db, tmp_path)
    recorder.before(_task(), "own")  # described: nothing to do
    assert not (tmp_path / "old" / "item.json").exists()
    recorder.before(_task(), "old")  # before its step runs: the step reads it
    described = json.loads((tmp_path / "old" / "item.json").read_text())
    assert described == {"kind": "podcast", "title": "Ep", "meta": {"media": "ep.mp3"}}
    assert json.loads((tmp_path / "own" / "item.json").read_text())["title"] == "Own"
    assert not (tmp_path / "new" / "item.json").exists()  # the DB knows nothing of it
    assert not (tmp_path / "gone").exists()
    # once per content root: a later change in the DB is not written out again
    (tmp_path / "old" / "item.json").unlink()
    assert record.describe_old_items(db, tmp_path) == 0
    assert not (tmp_path / "old" / "item.json").exists()


def test_a_register_that_saw_no_item_keeps_the_kind_another_process_gave_it(
    db: StateDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "item.json").write_text(json.dumps({"title": "Ep"}))  # no kind in it
    db.register("c", kind="podcast")  # another process, after this one looked
    real_get = db.get
    monkeypatch.setattr(db, "get", lambda cid: None)  # what this one saw a moment before
    record.apply(
        db, _result({"content": "c", "stage": "convert", "status": "done"}), content_root=tmp_path
    )
    record.apply(db, _result({"content": "c", "register": {"title": "T"}}))
    monkeypatch.setattr(db, "get", real_get)
    item = db.get("c")
    assert item is not None and (item.kind, item.title) == ("podcast", "T")


def test_a_failed_attempt_merges_into_the_info_the_stage_has_now(db: StateDB) -> None:
    db.register("c", kind="file")
    db.mark("c", "convert", "done", info={"chunks": 3})
    record.record_failure(db, "c", "convert", "failed", "boom", outputs_kept=True)
    [row] = db.get("c").steps  # type: ignore[union-attr]
    assert row.status == "done" and row.info["chunks"] == 3
    assert row.info["last_attempt"]["error"] == "boom"
    record.record_failure(db, "c", "convert", "timed_out", "slow", outputs_kept=False)
    [row] = db.get("c").steps  # type: ignore[union-attr]
    assert (row.status, row.error, row.info["chunks"]) == ("timed_out", "slow", 3)
    record.record_failure(db, "ghost", "convert", "failed", "x", outputs_kept=False)
    assert db.get("ghost") is None
