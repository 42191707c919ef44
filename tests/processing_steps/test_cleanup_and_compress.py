"""cleanup_and_compress on converted real audio: Opus, gzip, removal only when allowed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.processing_steps import convert
from signal4.processing_steps.cleanup_and_compress import LATER_STAGES, STEP
from signal4.stepkit import media as media_mod
from signal4.stepkit import protocol
from tests.helpers import media, probe
from tests.helpers.steps import db, run_step, store


@pytest.fixture
def converted(tmp_path: Path) -> str:
    src = media.tone(tmp_path / "talk.wav", 6.0)
    code, result = run_step(
        convert.STEP,
        "--input",
        str(src),
        "--content",
        "talk",
        "--chunk-seconds",
        "4",
        "--overlap",
        "1",
    )
    assert code == 0, result
    return "talk"


def _finish(cid: str, *stages: str) -> None:
    """Write what the later stages write last (their real outputs are JSON files): a
    stage is done when its output is kept."""
    for stage in stages or LATER_STAGES:
        body = {"words": ["hi"] * 200} if stage == "stitch" else {"stage": stage}
        store().write_json(store().path(cid, LATER_STAGES[stage]), body)


def _finish_later_stages(cid: str) -> None:
    _finish(cid)


def test_refuses_to_remove_what_later_steps_need(converted: str) -> None:
    folder = store().folder(converted)
    _finish(converted, "transcribe")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    code, result = run_step(STEP, "--content", converted)
    assert code == codes.EXIT_INVALID
    assert "diarize, stitch not done yet" in result["error"]
    assert "audio.opus was written, nothing removed" in result["error"]
    after = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert set(before) <= set(after)  # nothing deleted
    assert set(after) - set(before) == {Path("audio.opus")}  # only the Opus added
    assert (folder / "chunks.json").exists()
    assert db().stage_status(converted, "compress") == "invalid_input"
    assert store().leftovers(converted) == []

    # once the later steps are done, a re-run finishes the job and accounts for the Opus
    opus_bytes = (folder / "audio.opus").stat().st_size
    _finish_later_stages(converted)
    code, result = run_step(STEP, "--content", converted)
    assert code == 0, result
    manifest = json.loads((folder / "storage_manifest.json").read_text())
    assert manifest["files"][0] == {
        "path": "audio.opus",
        "action": "encoded",
        "from": "audio.wav",
        "bytes_before": 0,
        "bytes_after": opus_bytes,
    }
    assert not (folder / "audio.wav").exists()


def test_dry_run_changes_nothing(converted: str) -> None:
    _finish_later_stages(converted)
    folder = store().folder(converted)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    code, result = run_step(STEP, "--content", converted, "--dry-run")
    assert code == 0
    assert result["remove"] == ["audio.wav", "chunks"]
    assert result["gzip"] == [
        "chunks.json",
        "diarization.json",
        "transcript.json",
        "transcript_words.json",
    ]  # not item.json: every step reads it
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_compresses_and_removes_once_later_steps_are_done(converted: str) -> None:
    folder = store().folder(converted)
    wav_bytes = (folder / "audio.wav").stat().st_size
    _finish_later_stages(converted)
    code, result = run_step(STEP, "--content", converted)
    assert code == 0, result
    assert not (folder / "audio.wav").exists()
    assert not (folder / "chunks").exists()
    assert not (folder / "chunks.json").exists()
    opus = folder / "audio.opus"
    assert 0 < opus.stat().st_size < wav_bytes / 5
    info = media_mod.probe(opus)
    assert info.audio and "opus" in info.audio[0]
    assert media_mod.decoded_seconds(opus) == pytest.approx(6.0, abs=0.1)
    # JSON outputs are gzipped and still readable through the store's .gz fallback
    assert store().read_json(folder / "transcript.json") == {"words": ["hi"] * 200}
    assert store().read_json(folder / "chunks.json")["chunk_seconds"] == 4.0
    manifest = json.loads((folder / "storage_manifest.json").read_text())
    by_path = {e["path"]: e for e in manifest["files"]}
    assert by_path["audio.wav"] == {
        "path": "audio.wav",
        "action": "removed",
        "bytes_before": wav_bytes,
        "bytes_after": 0,
    }
    assert by_path["audio.opus"]["bytes_after"] == opus.stat().st_size
    assert by_path["transcript.json"]["bytes_after"] < by_path["transcript.json"]["bytes_before"]
    assert by_path["chunks/"]["bytes_before"] > wav_bytes  # three overlapping chunks
    assert manifest["bytes_after"] < manifest["bytes_before"]
    assert db().is_done(converted, "compress")
    assert store().leftovers(converted) == []

    code, again = run_step(STEP, "--content", converted)
    assert (code, again["status"]) == (0, Status.SKIPPED)
    code, again = run_step(STEP, "--content", converted, "--rewrite")
    assert (code, again["status"]) == (0, Status.COMPLETED)
    assert json.loads((folder / "storage_manifest.json").read_text()) == manifest


def test_unconverted_content_is_invalid() -> None:
    store().folder("raw", create=True)
    code, result = run_step(STEP, "--content", "raw")
    assert code == codes.EXIT_INVALID
    assert "has no audio.wav (nor audio.opus); run convert first" in result["error"]
    code, result = run_step(STEP, "--content", "ghost")
    assert code == codes.EXIT_INVALID
    assert "'ghost' has no folder in the store; download and convert it first" in result["error"]
    assert not store().folder("ghost").exists()


def test_cli_subprocess(converted: str, tmp_path: Path) -> None:
    _finish_later_stages(converted)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signal4.processing_steps.cleanup_and_compress",
            "--content",
            converted,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert protocol.parse_last_line(proc.stdout)["status"] == Status.COMPLETED


def test_ready_probe_covers_a_real_run(converted: str) -> None:
    _finish_later_stages(converted)
    real = probe.assert_probe_covers("cleanup_and_compress", "--content", converted)
    assert "imageio_ffmpeg" in real
    assert "sqlalchemy" not in real  # the runner records the state, not the step
    folder = store().folder(converted)
    assert (folder / "audio.opus").is_file() and not (folder / "audio.wav").exists()
