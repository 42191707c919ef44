"""transcribe with the real bundled Whisper model on the espeak two-speaker sample."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from signal4.processing_steps.transcribe import STEP
from tests.helpers import probe, speech
from tests.helpers.steps import db, run_step, store


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _truth_words() -> set[str]:
    return _words(" ".join(t["text"] for t in speech.truth()["turns"]))


def test_one_chunk_recognises_the_words() -> None:
    folder = speech.converted("one", speech.sample_frames())
    code, result = run_step(STEP, "--content", "one")
    assert code == 0, result
    assert result["language"] == "en"
    doc = json.loads((folder / "transcript_words.json").read_text())
    got = _words(" ".join(w["word"] for w in doc["words"]))
    assert len(got & _truth_words()) >= 0.7 * len(_truth_words())
    per_chunk = json.loads((folder / "transcript" / "chunk_0000.json").read_text())
    assert per_chunk["language"] == "en" and per_chunk["words"]
    w = per_chunk["words"][0]
    assert 0 <= w["start"] <= w["end"] and 0 <= w["probability"] <= 1
    assert db().is_done("one", "transcribe")
    code, again = run_step(STEP, "--content", "one")
    assert (code, again["status"]) == (0, "skipped")


def test_several_chunks_have_absolute_times() -> None:
    folder = speech.converted("several", speech.sample_frames(), chunk_seconds=10.0, overlap=2.0)
    code, result = run_step(STEP, "--content", "several")
    assert code == 0, result
    second = json.loads((folder / "transcript" / "chunk_0001.json").read_text())
    assert second["words"] and min(w["start"] for w in second["words"]) >= 8.0 - 0.01
    # "water" is said at ~11.9 s of the sample, so only in the second chunk
    water = [w for w in second["words"] if "water" in w["word"].lower()]
    assert water and 11.0 < water[0]["start"] < 13.0


def test_missing_chunk_is_invalid_input() -> None:
    folder = speech.converted("gap", speech.sample_frames(), chunk_seconds=6.0, overlap=1.0)
    (folder / "chunks" / "chunk_0001.wav").unlink()
    code, result = run_step(STEP, "--content", "gap")
    assert code == 2 and "chunk 1" in result["error"]


def test_short_clip_is_invalid_input() -> None:
    speech.converted("short", speech.sample_frames()[: 2 * 8000])
    code, result = run_step(STEP, "--content", "short")
    assert code == 2 and "at least 1 s" in result["error"]


def test_silence_gives_an_empty_transcript() -> None:
    folder = speech.converted("quiet", speech.silence(3.0))
    code, result = run_step(STEP, "--content", "quiet")
    assert code == 0 and result["status"] == "completed", result
    assert json.loads((folder / "transcript_words.json").read_text())["words"] == []


def test_bad_model_dir_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    speech.converted("bad", speech.sample_frames())
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    monkeypatch.setenv("SIGNAL4_WHISPER_MODEL", str(bad))
    code, result = run_step(STEP, "--content", "bad")
    assert code == 2 and "SIGNAL4_WHISPER_MODEL" in result["error"]
    (bad / "model.bin").write_bytes(b"garbage")
    code, result = run_step(STEP, "--content", "bad")
    assert code == 2 and "SIGNAL4_WHISPER_MODEL" in result["error"]
    assert not store().path("bad", "transcript_words.json").exists()


def test_ready_probe_covers_a_real_run_on_the_sample() -> None:
    speech.converted("probe", speech.sample_frames())
    real = probe.assert_probe_covers("transcribe", "--content", "probe")
    assert "faster_whisper" in real and "ctranslate2" in real
    assert "sqlalchemy" not in real  # the runner records the state, not the step
    assert store().path("probe", "transcript_words.json").is_file()


def test_reports_the_seconds_of_audio_done(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from signal4.run.dispatch import parse_progress

    frames = speech.sample_frames()
    speech.converted("told", frames, chunk_seconds=10.0, overlap=2.0)
    monkeypatch.setenv("SIGNAL4_PROGRESS", "1")  # what the dispatcher sets when it listens
    code, result = run_step(STEP, "--content", "told")
    assert code == 0, result
    lines = capsys.readouterr().err.splitlines()
    got = [p for p in map(parse_progress, lines) if p is not None]
    seconds = len(frames) / 2 / speech.RATE
    assert len(got) >= 2 and {p["unit"] for p in got} == {"seconds"}
    assert [p["total"] for p in got] == [pytest.approx(seconds)] * len(got)
    done = [p["done"] for p in got]
    assert done == sorted(done) and done[0] < seconds and done[-1] == pytest.approx(seconds)
