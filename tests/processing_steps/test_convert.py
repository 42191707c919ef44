"""convert on real media made with ffmpeg: WAV format, chunk plan, chunk files, bad input."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.processing_steps import cleanup_and_compress
from signal4.processing_steps.convert import STEP, plan_chunks
from signal4.run import plan as pipeline
from signal4.stepkit import protocol
from signal4.stepkit.step import InvalidInput
from tests.helpers import media, probe
from tests.helpers.steps import db, run_step, small_filesystem, states, store

SAMPLE = probe.ROOT / pipeline.SAMPLE


def _wav(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / 16_000


def _no_leftovers(cid: str) -> None:
    assert store().leftovers(cid) == []


def test_plan_chunks_overlap_and_cover() -> None:
    assert plan_chunks(10.0, 4.0, 1.0) == [(0.0, 4.0), (3.0, 7.0), (6.0, 10.0)]
    assert plan_chunks(3.0, 300.0, 2.0) == [(0.0, 3.0)]
    assert plan_chunks(600.0, 300.0, 2.0) == [(0.0, 300.0), (298.0, 598.0), (596.0, 600.0)]
    assert plan_chunks(10.0, 4.0, 2.0) == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 10.0)]
    with pytest.raises(InvalidInput, match="at most half"):
        plan_chunks(10.0, 2.0, 2.0)
    with pytest.raises(InvalidInput, match="at most half"):
        plan_chunks(10.0, 4.0, 2.5)


#: A child process with its address space capped: if a bad number slips through to the
#: chunk plan again (NaN made it loop forever, growing a list), it dies of MemoryError in
#: seconds instead of eating the machine. Each case prints its status.
_UNDER_A_MEMORY_LIMIT = """
import json, resource, sys
limit = 1 << 30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from signal4.processing_steps.convert import STEP, plan_chunks
from signal4.stepkit.step import InvalidInput
kind, args = sys.argv[1], json.loads(sys.argv[2])
try:
    if kind == "plan":
        plan_chunks(*args)
        print(json.dumps({"status": "completed"}))
    else:
        print(json.dumps(STEP.run_argv(args)))
except InvalidInput as exc:
    print(json.dumps({"status": "invalid_input", "error": str(exc)}))
except MemoryError:
    print(json.dumps({"status": "failed", "error": "MemoryError"}))
"""


@pytest.mark.parametrize(
    ("kind", "args", "env", "needle"),
    [
        ("argv", ["--chunk-seconds", "nan"], {}, "argument --chunk-seconds"),
        ("argv", ["--chunk-seconds", "inf"], {}, "argument --chunk-seconds"),
        ("argv", ["--chunk-seconds", "0"], {}, "argument --chunk-seconds"),
        ("argv", ["--chunk-seconds=-4"], {}, "argument --chunk-seconds"),
        ("argv", ["--chunk-seconds", "1e-9", "--overlap", "0"], {}, "argument --chunk-seconds"),
        ("argv", ["--overlap", "nan"], {}, "argument --overlap"),
        ("argv", ["--overlap", "inf"], {}, "argument --overlap"),
        ("argv", ["--overlap=-1"], {}, "argument --overlap"),
        ("argv", ["--chunk-seconds", "4", "--overlap", "4"], {}, "at most half"),
        ("argv", ["--chunk-seconds", "2.0000001", "--overlap", "2"], {}, "at most half"),
        ("argv", [], {"SIGNAL4_CHUNK_SECONDS": "nan"}, "SIGNAL4_CHUNK_SECONDS='nan'"),
        ("argv", [], {"SIGNAL4_CHUNK_SECONDS": "inf"}, "SIGNAL4_CHUNK_SECONDS='inf'"),
        ("argv", [], {"SIGNAL4_CHUNK_OVERLAP": "nan"}, "SIGNAL4_CHUNK_OVERLAP='nan'"),
        ("argv", [], {"SIGNAL4_CHUNK_OVERLAP": "400"}, "SIGNAL4_CHUNK_OVERLAP and"),
        ("plan", [17.0, float("nan"), 2.0], {}, "chunk length must be a finite"),
        ("plan", [17.0, 4.0, float("nan")], {}, "overlap must be a finite"),
        ("plan", [17.0, float("inf"), 2.0], {}, "chunk length must be a finite"),
        ("plan", [float("nan"), 4.0, 1.0], {}, "cannot cut audio of nan s"),
    ],
)
def test_bad_chunking_is_invalid_under_a_memory_limit(
    tmp_path: Path, kind: str, args: list[object], env: dict[str, str], needle: str
) -> None:
    argv = ["--input", str(SAMPLE), "--content", "nums", *args] if kind == "argv" else args
    proc = subprocess.run(
        [sys.executable, "-c", _UNDER_A_MEMORY_LIMIT, kind, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["status"] == Status.INVALID_INPUT, result
    assert needle in result["error"]
    assert not store().folder("nums").exists()  # refused before anything was copied in


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
    assert (code, again["status"]) == (0, Status.SKIPPED)
    code, again = run_step(STEP, "--content", cid)  # other chunking: redone
    assert again["status"] == Status.COMPLETED
    assert again["chunks"] == 1
    assert sorted(p.name for p in (folder / "chunks").iterdir()) == ["chunk_0000.wav"]
    code, again = run_step(STEP, "--content", cid, "--rewrite")
    assert again["status"] == Status.COMPLETED
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
        # every page whole, but the one that ends the stream is gone
        (
            lambda d: media.cut_at_last_ogg_page(media.tone(d / "t.ogg", 6.0), d / "cut.ogg"),
            "no end-of-stream page",
            False,
        ),
    ],
    ids=[
        "no-audio",
        "truncated-m4a",
        "text",
        "empty",
        "truncated-mp3",
        "cut-wav",
        "cut-ogg",
        "ogg-cut-at-a-page",
    ],
)
def test_bad_input_is_invalid(tmp_path: Path, make: object, reason: str, registered: bool) -> None:
    src = make(tmp_path)  # type: ignore[operator]
    code, result = run_step(STEP, "--input", str(src), "--content", "bad")
    assert code == codes.EXIT_INVALID, result
    assert reason in result["error"]
    if registered:
        assert db().stage_status("bad", "convert") == "invalid_input"
        assert reason in (db().get("bad").steps[0].error or "")  # type: ignore[union-attr]
    else:  # refused before it was copied in or registered
        assert db().all() == []
    # either way nothing is left in the store: a copy made before decoding is taken away
    assert not store().folder("bad").exists()
    _no_leftovers("bad")


def test_a_failed_input_leaves_a_folder_that_held_something(tmp_path: Path) -> None:
    """Only what the failed run made goes: its copy, not the folder nor what was there."""
    db().register("keep", kind="file")
    store().write_bytes(store().path("keep", "notes.txt"), b"mine")
    src = media.truncated(media.tone(tmp_path / "t.mp3", 10.0), tmp_path / "cut.mp3")
    code, result = run_step(STEP, "--input", str(src), "--content", "keep")
    assert code == codes.EXIT_INVALID, result
    assert sorted(p.name for p in store().folder("keep").iterdir()) == ["notes.txt"]


def test_video_longer_than_its_audio_converts(tmp_path: Path) -> None:
    """The file's duration is its video's (25 s): the audio (20 s) is measured on its own."""
    src = media.video_and_audio(tmp_path / "talk.mp4", 25.0, 20.0)
    code, result = run_step(STEP, "--input", str(src), "--content", "talk")
    assert code == 0, result
    assert result["duration"] == pytest.approx(20.0, abs=0.1)
    _, _, _, seconds = _wav(store().path("talk", "audio.wav"))
    assert seconds == pytest.approx(20.0, abs=0.1)


def test_a_cut_off_video_is_still_truncated(tmp_path: Path) -> None:
    whole = media.video_and_audio(tmp_path / "whole.mp4", 25.0, 20.0, faststart=True)
    src = media.truncated(whole, tmp_path / "cut.mp4", 0.6)
    code, result = run_step(STEP, "--input", str(src), "--content", "cut")
    assert code == codes.EXIT_INVALID, result
    assert "looks truncated" in result["error"]
    assert not store().folder("cut").exists()


def test_a_full_disk_is_failed_and_blames_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data folder on a 1 MB file system: the copy fits, the WAV does not."""
    with small_filesystem(tmp_path / "small", "1m") as small:
        monkeypatch.setenv("SIGNAL4_DATA_DIR", str(small / "data"))
        code, result = run_step(STEP, "--input", str(SAMPLE), "--content", "full")
        assert (code, result["status"]) == (codes.EXIT_FAILED, Status.FAILED), result
        error = result["error"]
        assert "no space left on device" in error
        assert f"the file system at {small} is full" in error
        assert "truncated or corrupt" not in error
        assert states("full") == {"convert": "failed"}
        assert "no space left on device" in (db().get("full").steps[0].error or "")  # type: ignore[union-attr]
        assert not store().folder("full").exists()  # the copy made for it is gone too


def test_a_compressed_item_is_skipped_whole(tmp_path: Path) -> None:
    """convert --input of a finished item (converted, compressed) is skipped: nothing comes back."""
    src = media.tone(tmp_path / "done.wav", 6.0)
    code, first = run_step(STEP, "--input", str(src), "--chunk-seconds", "4", "--overlap", "1")
    assert code == 0, first
    cid = first["content"]
    for output in cleanup_and_compress.LATER_STAGES.values():  # the later stages' outputs
        store().write_json(store().path(cid, output), {})
    code, result = run_step(cleanup_and_compress.STEP, "--content", cid)
    assert code == 0, result
    folder = store().folder(cid)
    kept = sorted(p.name for p in folder.iterdir())
    assert "audio.wav" not in kept and "chunks" not in kept and "chunks.json.gz" in kept

    for args in ([], ["--chunk-seconds", "4", "--overlap", "1"]):
        code, again = run_step(STEP, "--input", str(src), *args)
        assert (code, again["status"]) == (0, Status.SKIPPED), again
        assert again["content"] == cid
        assert sorted(p.name for p in folder.iterdir()) == kept
    code, again = run_step(STEP, "--content", cid)
    assert (code, again["status"]) == (0, Status.SKIPPED), again
    assert "--rewrite" in again["note"]  # other chunking than it was compressed with
    assert sorted(p.name for p in folder.iterdir()) == kept
    assert states(cid)["convert"] == "done"

    code, again = run_step(STEP, "--input", str(src), "--rewrite")
    assert (code, again["status"]) == (0, Status.COMPLETED), again
    assert (folder / "audio.wav").is_file()


def test_a_bad_content_id_is_invalid_input_in_one_line(tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 1.0)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signal4.processing_steps.convert",
            "--input",
            str(src),
            "--content",
            "../x",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == codes.EXIT_INVALID, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "invalid content id '../x'" in proc.stderr
    assert protocol.parse_last_line(proc.stdout)["status"] == Status.INVALID_INPUT
    assert db().all() == []


def test_bad_downloaded_media_is_recorded(tmp_path: Path) -> None:
    # as download_podcast leaves it: the media, and the item's description
    store().write_json(
        store().path("dl", "item.json"), {"kind": "podcast", "meta": {"media": "ep.mp3"}}
    )
    store().write_bytes(store().path("dl", "ep.mp3"), b"<html>not audio</html>" * 20)
    code, result = run_step(STEP, "--content", "dl")
    assert code == codes.EXIT_INVALID
    assert "not a media file" in result["error"]
    assert states("dl") == {"convert": "invalid_input"}


def test_unknown_content_and_missing_args() -> None:
    code, result = run_step(STEP, "--content", "nope")
    assert code == codes.EXIT_INVALID
    assert "not registered" in result["error"]
    code, result = run_step(STEP)
    assert code == codes.EXIT_INVALID
    assert "--content" in result["error"]
    code, result = run_step(STEP, "--input", "/does/not/exist.mp3")
    assert "no such file" in result["error"]


@pytest.mark.parametrize(
    "name",
    # convert's own output; later steps' outputs (diarize, stitch); the item's description
    ["audio.wav", "diarization.rttm", "transcript.vtt", "transcript.json", "item.json"],
)
def test_an_input_named_like_an_output_keeps_its_own_copy(tmp_path: Path, name: str) -> None:
    src = media.tone(tmp_path / "tone.wav", 2.0).rename(tmp_path / name)
    code, result = run_step(STEP, "--input", str(src), "--content", "same")
    assert code == 0, result
    folder = store().folder("same")
    kept = f"source-{Path(name).stem}{Path(name).suffix}"
    assert (folder / kept).read_bytes() == src.read_bytes()  # the input, intact
    assert _wav(folder / "audio.wav")[:2] == (16_000, 1)  # the converted WAV beside it
    assert json.loads((folder / "item.json").read_text())["meta"]["media"] == kept
    if name != "item.json":  # what a later step writes under that name leaves the copy alone
        (folder / name).write_bytes(b"an output")
    code, again = run_step(STEP, "--content", "same", "--rewrite")  # from the kept input
    assert (code, again["status"], again["source"]) == (0, Status.COMPLETED, kept)


def test_no_output_of_a_step_can_be_taken_for_a_sources_copy() -> None:
    from signal4.stepkit import diarization
    from signal4.stepkit.fetch import SOURCE_PREFIX, safe_filename

    outputs = ["audio.wav", "audio.opus", "chunks.json", "item.json", "storage_manifest.json"]
    outputs += [diarization.JSON_NAME, diarization.RTTM_NAME, "transcript_words.json"]
    outputs += ["transcript.json", "transcript.vtt", "transcript.srt"]
    assert not any(o.startswith(SOURCE_PREFIX) for o in outputs)
    assert all(safe_filename(f"https://x.test/{o}").startswith(SOURCE_PREFIX) for o in outputs)


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
    assert (result["status"], result["chunks"]) == (Status.COMPLETED, 1)


def test_ready_probe_covers_a_real_run_on_the_sample() -> None:
    real = probe.assert_probe_covers(
        "convert", "--input", str(probe.ROOT / pipeline.SAMPLE), "--content", "probe"
    )
    assert real == ["imageio_ffmpeg"]  # no ORM, no settings library: the runner records
    result = json.loads(store().path("probe", "item.json").read_text())
    assert result["kind"] == "file" and result["meta"]["input"].endswith(str(pipeline.SAMPLE))
