"""Provenance pieces without the envs: triggers, code digests, inputs, params, the records."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from signal4.codes import StageState
from signal4.content.state import StateDB
from signal4.content.store import STORAGE_MANIFEST, update_provenance
from signal4.envs import manifest
from signal4.errors import UsageError
from signal4.run import provenance
from signal4.run.plan import Item, Stage, mark_done
from tests.conftest import ROOT


@pytest.fixture
def m() -> manifest.Manifest:
    return manifest.load(ROOT)


def test_triggers_parse_to_the_four_in_order_or_fail_in_one_line() -> None:
    assert provenance.parse_triggers("all") == ("env", "params", "code", "input")
    assert provenance.parse_triggers("") == provenance.TRIGGERS
    assert provenance.parse_triggers("input, ENV") == ("env", "input")
    assert provenance.parse_triggers("none") == ()
    with pytest.raises(UsageError, match="unknown trigger 'model'"):
        provenance.parse_triggers("env,model")


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_code_closure_follows_imports_anywhere_and_takes_parent_packages(
    tmp_path: Path,
) -> None:
    src = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/steps/__init__.py": "",
            "pkg/steps/a.py": "from pkg.lib import b\ndef f():\n    from . import c\n",
            "pkg/steps/c.py": "import json\n",
            "pkg/lib/__init__.py": "",
            "pkg/lib/b.py": "from .deep import d\n",
            "pkg/lib/deep.py": "",
            "pkg/lib/unused.py": "",
        },
    )
    got = [
        p.relative_to(src).as_posix() for p in provenance.code_closure(src, "pkg.steps.a", "pkg")
    ]
    assert got == [
        "pkg/__init__.py",
        "pkg/lib/__init__.py",
        "pkg/lib/b.py",
        "pkg/lib/deep.py",
        "pkg/steps/__init__.py",
        "pkg/steps/a.py",
        "pkg/steps/c.py",
    ]


def test_a_step_code_digest_changes_with_a_module_it_imports_and_names_it(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "signal4/__init__.py": "",
            "signal4/s.py": "import signal4.u\n",
            "signal4/u.py": "X = 1\n",
        },
    )
    before = provenance.code_fingerprint(src, "signal4.s")
    (src / "signal4" / "u.py").write_text("X = 2\n")
    after = provenance.code_fingerprint(src, "signal4.s")
    assert before["digest"] != after["digest"]
    assert provenance.code_changes(before, after) == "signal4/u.py"
    (src / "signal4" / "other.py").write_text("")  # not imported: no change
    assert provenance.code_fingerprint(src, "signal4.s") == after


def test_the_real_transcribe_closure_holds_its_module_and_the_step_runner() -> None:
    files = provenance.code_fingerprint(ROOT / "src", "signal4.processing_steps.transcribe")
    assert "signal4/processing_steps/transcribe.py" in files["files"]
    assert "signal4/stepkit/step.py" in files["files"]
    assert "signal4/processing_steps/stitch.py" not in files["files"]


def test_params_compare_models_by_digest_not_by_folder() -> None:
    old = {"model": {"name": "bundled", "digest": "aa"}, "chunk_seconds": 300.0}
    copy = {"model": {"name": "my-copy", "digest": "aa"}, "chunk_seconds": 300.0}
    assert provenance.params_changes(old, copy) == []
    other = {"model": {"name": "bundled", "digest": "bb"}, "chunk_seconds": 10.0}
    assert provenance.params_changes(old, other) == [
        "chunk_seconds 300 → 10",
        "model bundled [aa] → bundled [bb]",
    ]
    # a hub name has no digest: then the name is what is compared
    hub = {"model": {"name": "small", "digest": None}}
    assert provenance.params_changes(hub, {"model": {"name": "base", "digest": None}})
    assert provenance.params_changes({"speakers": None}, {"speakers": 2}) == ["speakers null → 2"]


def test_inputs_are_fingerprinted_by_bytes_and_compressing_them_changes_nothing(
    m: manifest.Manifest, tmp_path: Path
) -> None:
    stitch = m.task("stitch")
    (tmp_path / "transcript_words.json").write_text('{"words": []}')
    (tmp_path / "diarization.json").write_text('{"turns": []}')
    got = provenance.input_fingerprints(stitch, tmp_path)
    assert sorted(got) == ["diarization.json", "transcript_words.json"]
    record = {"inputs": got}
    assert provenance.inputs_changed(record, tmp_path) == []
    # touched with the same bytes: not a change
    os.utime(tmp_path / "diarization.json", ns=(1, 1))
    assert provenance.inputs_changed(record, tmp_path) == []
    # gzipped by cleanup_and_compress: the same bytes inside
    words = tmp_path / "transcript_words.json"
    (tmp_path / "transcript_words.json.gz").write_bytes(gzip.compress(words.read_bytes()))
    words.unlink()
    assert provenance.inputs_changed(record, tmp_path) == []
    assert (
        provenance.input_fingerprints(stitch, tmp_path)["transcript_words.json"]["digest"]
        == (got["transcript_words.json"]["digest"])
    )
    # other bytes: a change, by name
    (tmp_path / "diarization.json").write_text('{"turns": [1]}')
    assert provenance.inputs_changed(record, tmp_path) == ["diarization.json"]
    # gone altogether: cannot be compared, so not a change
    (tmp_path / "diarization.json").unlink()
    assert provenance.inputs_changed(record, tmp_path) == []
    assert provenance.missing_inputs(stitch, tmp_path) == ["diarization.json"]


def test_an_unchanged_input_is_not_read_again(m: manifest.Manifest, tmp_path: Path) -> None:
    (tmp_path / "audio.wav").write_bytes(b"RIFF....")
    first = provenance.input_fingerprints(m.task("diarize"), tmp_path)
    fake = {"audio.wav": {**first["audio.wav"], "digest": "remembered"}}
    again = provenance.input_fingerprints(m.task("diarize"), tmp_path, fake)
    assert again["audio.wav"]["digest"] == "remembered"


def test_env_changes_name_the_declared_packages_first() -> None:
    old = {
        "fingerprint": "1",
        "declared": ["faster-whisper"],
        "packages": {"av": "12", "faster-whisper": "1.1.1", "tokenizers": "0.20"},
    }
    new = {
        "fingerprint": "2",
        "declared": ["faster-whisper"],
        "packages": {"av": "13", "faster-whisper": "1.2.1", "tokenizers": "0.20", "x": "1"},
    }
    assert (
        provenance.env_changes(old, new) == "faster-whisper 1.1.1 → 1.2.1, av 12 → 13, x none → 1"
    )
    assert provenance.env_changes(old, new, most=1) == "faster-whisper 1.1.1 → 1.2.1, 2 more"
    same = {**new, "fingerprint": "3"}
    assert provenance.env_changes(new, same) == "fingerprint 2 → 3"


def test_the_storage_manifest_merges_records_and_forgets_one(tmp_path: Path) -> None:
    (tmp_path / STORAGE_MANIFEST).write_text(json.dumps({"files": [1], "bytes_after": 3}))
    update_provenance(tmp_path, {"convert": {"v": 1}})
    update_provenance(tmp_path, {"stitch": {"v": 2}})
    data = json.loads((tmp_path / STORAGE_MANIFEST).read_text())
    assert data["files"] == [1]  # cleanup's part is kept
    assert data["provenance"] == {"convert": {"v": 1}, "stitch": {"v": 2}}
    update_provenance(tmp_path, forget="convert")
    data = json.loads((tmp_path / STORAGE_MANIFEST).read_text())
    assert data["provenance"] == {"stitch": {"v": 2}}
    assert sorted(p.name for p in tmp_path.iterdir()) == [STORAGE_MANIFEST]  # no temp left
    update_provenance(tmp_path / "gone", {"x": {}})  # no folder: nothing written
    assert not (tmp_path / "gone").exists()


@pytest.fixture
def db(db_url: str) -> Iterator[StateDB]:
    """A new state DB holding item c1, on SQLite and on PostgreSQL."""
    handle = StateDB(db_url)
    handle.register("c1", kind="file")
    yield handle
    handle.engine.dispose()


def test_a_new_done_drops_the_record_and_a_kept_done_does_not(db: StateDB) -> None:
    db.mark("c1", "convert", StageState.DONE)
    db.set_provenance("c1", "convert", {"version": 1})
    db.mark("c1", "convert", StageState.DONE, new_outputs=False)  # a failed attempt that kept them
    assert db.provenance() == {"c1": {"convert": {"version": 1}}}
    db.mark("c1", "convert", StageState.DONE)  # new outputs
    assert db.provenance() == {}
    db.set_provenance("c1", "convert", {"version": 1})
    db.set_provenance("c1", "convert", {"version": 2})
    assert db.provenance(["c1"]) == {"c1": {"convert": {"version": 2}}}
    assert db.provenance(["other"]) == {}
    assert db.statuses(["c1"]) == {"c1": {"convert": StageState.DONE}}
    with pytest.raises(KeyError):
        db.set_provenance("nope", "convert", {})


class _Fixed(provenance.Checker):
    """A checker whose 'now' is given: the plan's logic without the envs."""

    def __init__(self, m: manifest.Manifest, now: provenance.Now, triggers: tuple[str, ...]):
        super().__init__(m, triggers)
        self.fixed = now

    def prepare(self, tasks: object) -> None:
        pass

    def now(self, task: manifest.Task, *, probe: bool = True) -> provenance.Now:
        return self.fixed


def _item(m: manifest.Manifest) -> Item:
    return Item("x", "x", [Stage(t, []) for t in m.pipeline_tasks()], content="c1")


def _after(m: manifest.Manifest, name: str) -> list[str]:
    """The pipeline's tasks after ``name`` (the manifest's, which a project may extend)."""
    names = [t.name for t in m.pipeline_tasks()]
    return names[names.index(name) + 1 :]


def _all_done(db: StateDB, m: manifest.Manifest, record: dict[str, object]) -> None:
    for t in m.pipeline_tasks():
        db.mark("c1", t.stage, StageState.DONE)
        db.set_provenance("c1", t.stage, {**record, "params": {"p": t.name}})


NOW = provenance.Now(
    env={"fingerprint": "e1", "packages": {}, "declared": []},
    code={"digest": "c1", "files": {}},
    params=None,
)
RECORD = {"version": provenance.VERSION, "env": NOW.env, "code": NOW.code, "inputs": {}}


def test_a_changed_stage_and_every_one_after_it_run_again(
    m: manifest.Manifest, tmp_path: Path, db: StateDB
) -> None:
    _all_done(db, m, RECORD)
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "audio.wav").write_bytes(b"x")  # diarize's input is still there
    db.set_provenance("c1", "diarize", {**RECORD, "env": {**NOW.env, "fingerprint": "old"}})
    item = _item(m)
    mark_done([item], db, checker=_Fixed(m, NOW, provenance.TRIGGERS), content_root=tmp_path)
    runs = {s.task.name: (s.reason, s.rewrite) for s in item.stages if not s.done}
    assert runs == {
        "diarize": ("env changed (fingerprint old → e1)", True),
        **{name: ("after diarize", True) for name in _after(m, "diarize")},
    }
    # the env trigger turned off: nothing runs
    item = _item(m)
    mark_done([item], db, checker=_Fixed(m, NOW, ("code", "input")), content_root=tmp_path)
    assert item.pending == []


def test_a_stage_without_a_record_is_unknown_not_stale(
    m: manifest.Manifest, tmp_path: Path, db: StateDB
) -> None:
    for t in m.pipeline_tasks():
        db.mark("c1", t.stage, StageState.DONE)
    item = _item(m)
    changed = dataclasses.replace(NOW, code={"digest": "new", "files": {}})
    mark_done([item], db, checker=_Fixed(m, changed, provenance.TRIGGERS), content_root=tmp_path)
    assert item.pending == []


def test_a_stage_whose_inputs_were_compressed_away_brings_back_the_first_stage(
    m: manifest.Manifest, tmp_path: Path, db: StateDB
) -> None:
    _all_done(db, m, RECORD)
    db.set_provenance("c1", "transcribe", {**RECORD, "code": {"digest": "old", "files": {}}})
    (tmp_path / "c1").mkdir()  # audio.wav and chunks.json are gone (compressed)
    item = _item(m)
    mark_done([item], db, checker=_Fixed(m, NOW, provenance.TRIGGERS), content_root=tmp_path)
    runs = [(s.task.name, s.reason) for s in item.stages if not s.done]
    assert runs[0] == (
        "convert",
        "transcribe needs audio.wav, chunks.json, removed by compression",
    )
    assert runs[1][0] == "transcribe" and runs[1][1].startswith("code changed")
    assert [name for name, _ in runs] == [t.name for t in m.pipeline_tasks()]
    assert all(s.rewrite for s in item.stages)


def test_only_the_first_stage_comes_back_for_inputs_the_stages_between_stay_done(
    m: manifest.Manifest, tmp_path: Path, db: StateDB
) -> None:
    _all_done(db, m, RECORD)
    db.set_provenance("c1", "diarize", {**RECORD, "code": {"digest": "old", "files": {}}})
    (tmp_path / "c1").mkdir()
    item = _item(m)
    mark_done([item], db, checker=_Fixed(m, NOW, provenance.TRIGGERS), content_root=tmp_path)
    runs = [s.task.name for s in item.stages if not s.done]
    assert runs == ["convert", "diarize", *_after(m, "diarize")]


def test_a_changed_input_file_is_a_new_item_and_the_old_one_stays(
    m: manifest.Manifest, tmp_path: Path, db: StateDB
) -> None:
    """Decided: an input file's bytes are part of its content id (not an input trigger)."""
    from signal4.run.plan import build

    talk = tmp_path / "talk.wav"
    talk.write_bytes(b"RIFF-one")

    def plan_of() -> Item:
        plan, failed = build(m, [str(talk)], db=db, list_feed=lambda url: [])
        assert failed == []
        (item,) = plan.items
        return item

    first = plan_of()
    db.register(str(first.content), kind="file")
    for t in m.pipeline_tasks():
        db.mark(str(first.content), t.stage, StageState.DONE)
    assert plan_of().pending == []
    talk.write_bytes(b"RIFF-two")
    second = plan_of()
    assert second.content != first.content
    assert [s.task.name for s in second.pending] == [t.name for t in m.pipeline_tasks()]
    assert all(not s.rewrite for s in second.stages)
    assert db.is_done(str(first.content), "compress")  # the old item is left as it was


def test_an_env_that_cannot_say_its_params_is_a_note_and_params_are_not_compared(
    m: manifest.Manifest, tmp_path: Path
) -> None:
    (tmp_path / "uv.lock").write_bytes((ROOT / "uv.lock").read_bytes())
    (tmp_path / "src").symlink_to(ROOT / "src")
    elsewhere = dataclasses.replace(m, root=tmp_path)  # no env is synced there
    checker = provenance.Checker(elsewhere)
    now = checker.now(m.task("stitch"))
    assert now.params is None
    assert checker.notes() == [
        "params not compared for stitch: env stitch is missing; run: inv sync stitch"
    ]
    record = {**RECORD, "env": now.env, "code": now.code, "params": {"anything": 1}}
    assert checker.reasons(m.task("stitch"), record, tmp_path) == []


def test_a_broken_gz_input_or_module_is_not_a_crash(m: manifest.Manifest, tmp_path: Path) -> None:
    (tmp_path / "transcript_words.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert provenance.input_fingerprints(m.task("stitch"), tmp_path) == {}
    record = {"inputs": {"transcript_words.json": {"digest": "x", "size": 1, "mtime_ns": 1}}}
    assert provenance.inputs_changed(record, tmp_path) == []
    src = _tree(tmp_path / "src", {"signal4/__init__.py": "", "signal4/s.py": "def (:\n"})
    assert provenance.code_fingerprint(src, "signal4.s")["files"].keys() == {
        "signal4/__init__.py",
        "signal4/s.py",
    }
