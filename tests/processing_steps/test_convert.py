"""convert on real media made with ffmpeg: WAV format, chunk plan, chunk files, bad input."""

from __future__ import annotations

import itertools
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from signal4.processing_steps.convert import STEP, plan_chunks
from signal4.run import pipeline, protocol
from signal4.run.steprunner import InvalidInput
from tests.helpers import media, probe
from tests.helpers.steps import db, run_step, states, store


def _wav(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / 16_000


def _no_leftovers(cid: str) -> None:
    assert store().leftovers(cid) == []


def test_plan_chunks_overlap_and_cover() -> None:
    assert plan_chunks(10.0, 4.0, 1.0) == [(0.0, 4.0), (3.0, 7.0), (6.0, 10.0)]
    assert plan_chunks(3.0, 300.0, 2.0) == [(0.0, 3.0)]
    assert plan_chunks(600.0, 300.0, 2.0) == [(0.0, 300.0), (298.0, 598.0), (596.0, 600.0)]
    with pytest.raises(InvalidInput, match="larger than"):
        plan_chunks(10.0, 2.0, 2.0)


def test_input_file_to_wav_and_chunks(tmp_path: Path) -> None:
    src = media.tone(tmp_path / "my talk é.mp3", 10.0)
    code, result = run_step(STEP, "--input", str(src), "--chunk-seconds", "4", "--overlap", "1")
    assert code == 0, result
    cid = result["content"]
    assert cid.startswith("file-my-talk-e-")
    folder = store().folder(cid)
    rate, channels, width, seconds = _wav(folder / "audio.wav")
    assert (rate, channels, width) == (16_000, 1, 2)
    assert seconds == pytest.approx(10.0, abs=0.1)

    plan = store().read_json(folder / "chunks.json")
    assert (plan["sample_rate"], plan["chunk_seconds"], plan["overlap"]) == (16_000, 4.0, 1.0)
    spans = [(c["start"], c["end"]) for c in plan["chunks"]]
    assert len(spans) == 3
    for (_, prev_end), (start, _) in itertools.pairwise(spans):
        assert prev_end - start == pytest.approx(1.0)
    assert spans[-1][1] == pytest.approx(seconds)
    for c in plan["chunks"]:
        r, ch, _, sec = _wav(folder / c["file"])
        assert (r, ch) == (16_000, 1)
        assert sec == pytest.approx(c["end"] - c["start"], abs=1e-3)
    assert sorted(p.name for p in (folder / "chunks").iterdir()) == [
        "chunk_0000.wav",
        "chunk_0001.wav",
        "chunk_0002.wav",
    ]
    # chunk 1 starts 3 s in: its first samples are the WAV's samples at 3 s exactly
    with (
        wave.open(str(folder / "audio.wav")) as whole,
        wave.open(str(folder / "chunks" / "chunk_0001.wav")) as part,
    ):
        whole.setpos(3 * 16_000)
        assert whole.readframes(800) == part.readframes(800)

    item = db().get(cid)
    assert item is not None
    assert item.kind == "file"
    assert item.duration == pytest.approx(10.0, abs=0.1)
    assert states(cid) == {"convert": "done"}
    _no_leftovers(cid)

    code, again = run_step(STEP, "--content", cid, "--chunk-seconds", "4", "--overlap", "1")
    assert (code, again["status"]) == (0, protocol.SKIPPED)
    code, again = run_step(STEP, "--content", cid)  # other chunking: redone
    assert again["status"] == protocol.COMPLETED
    assert again["chunks"] == 1
    assert sorted(p.name for p in (folder / "chunks").iterdir()) == ["chunk_0000.wav"]
    code, again = run_step(STEP, "--content", cid, "--rewrite")
    assert again["status"] == protocol.COMPLETED
    _no_leftovers(cid)


def test_video_input_keeps_its_audio(tmp_path: Path) -> None:
    src = media.video_with_tone(tmp_path / "clip.mp4", 2.0)
    code, result = run_step(STEP, "--input", str(src), "--content", "clip")
    assert code == 0, result
    rate, channels, _, seconds = _wav(store().path("clip", "audio.wav"))
    assert (rate, channels) == (16_000, 1)
    assert seconds == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(
    ("make", "reason", "registered"),
    [
        (lambda d: media.video_without_audio(d / "silent.mp4"), "video stream only", False),
        (
            lambda d: media.truncated(media.tone(d / "t.m4a", 6.0), d / "cut.m4a"),
            "Invalid data",
            False,
        ),
        (
            lambda d: (d / "notes.mp3").write_bytes(b"not audio\n" * 50) and d / "notes.mp3",
            "not a media file",
            False,
        ),
        (lambda d: (d / "empty.wav").write_bytes(b"") or d / "empty.wav", "empty", False),
        # decodes, but to half the length its header announces: found while converting
        (
            lambda d: media.truncated(media.tone(d / "t.mp3", 10.0), d / "cut.mp3"),
            "truncated",
            True,
        ),
        # ffmpeg decodes these "completely"; their containers tell
        (
            lambda d: media.truncated(media.tone(d / "t.wav", 6.0), d / "cut.wav"),
            "WAV header announces",
            False,
        ),
        (
            lambda d: media.truncated(media.tone(d / "t.ogg", 6.0), d / "cut.ogg"),
            "Ogg",
            False,
        ),
    ],
    ids=["no-audio", "truncated-m4a", "text", "empty", "truncated-mp3", "cut-wav", "cut-ogg"],
)
def test_bad_input_is_invalid(tmp_path: Path, make: object, reason: str, registered: bool) -> None:
    src = make(tmp_path)  # type: ignore[operator]
    code, result = run_step(STEP, "--input", str(src), "--content", "bad")
    assert code == protocol.EXIT_INVALID, result
    assert reason in result["error"]
    if registered:
        assert db().stage_status("bad", "convert") == "invalid_input"
        assert reason in (db().get("bad").steps[0].error or "")  # type: ignore[union-attr]
    else:  # refused before it was copied in or registered
        assert db().all() == []
        assert not store().folder("bad").exists()
    folder = store().folder("bad")
    assert not (folder / "audio.wav").exists()
    assert not (folder / "chunks").exists()
    _no_leftovers("bad")


def test_bad_downloaded_media_is_recorded(tmp_path: Path) -> None:
    db().register("dl", kind="podcast", meta={"media": "ep.mp3"})
    store().write_bytes(store().path("dl", "ep.mp3"), b"<html>not audio</html>" * 20)
    code, result = run_step(STEP, "--content", "dl")
    assert code == protocol.EXIT_INVALID
    assert "not a media file" in result["error"]
    assert states("dl") == {"convert": "invalid_input"}


def test_unknown_content_and_missing_args() -> None:
    code, result = run_step(STEP, "--content", "nope")
    assert code == protocol.EXIT_INVALID
    assert "not registered" in result["error"]
    code, result = run_step(STEP)
    assert code == protocol.EXIT_INVALID
    assert "--content" in result["error"]
    code, result = run_step(STEP, "--input", "/does/not/exist.mp3")
    assert "no such file" in result["error"]


def test_cli_subprocess(tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 1.0)
    proc = subprocess.run(
        [sys.executable, "-m", "signal4.processing_steps.convert", "--input", str(src)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = protocol.parse_last_line(proc.stdout)
    assert (result["status"], result["chunks"]) == (protocol.COMPLETED, 1)


def test_ready_probe_covers_a_real_run_on_the_sample() -> None:
    real = probe.assert_probe_covers(
        "convert", "--input", str(probe.ROOT / pipeline.SAMPLE), "--content", "probe"
    )
    assert "imageio_ffmpeg" in real and "sqlalchemy" in real
