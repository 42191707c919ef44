"""download_youtube / download_rumble: real yt-dlp (generic extractor) on a loopback server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.processing_steps import download_rumble, download_youtube
from signal4.stepkit import media as media_mod
from signal4.stepkit import protocol
from signal4.stepkit.step import Step
from tests.helpers import httpserver, media, probe
from tests.helpers.httpserver import Route
from tests.helpers.steps import db, run_step, small_filesystem, states, store


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL4_ALLOW_LOOPBACK", "1")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("media")
    return {
        "mp3": media.tone(d / "t.mp3", 3.0).read_bytes(),
        "mp4": media.video_with_tone(d / "v.mp4", 2.0).read_bytes(),
        "silent": media.video_without_audio(d / "s.mp4", 2.0).read_bytes(),
    }


@pytest.fixture
def server(files: dict[str, bytes]):  # type: ignore[no-untyped-def]
    with httpserver.serve(
        {
            "/tone.mp3": Route(files["mp3"], content_type="audio/mpeg"),
            "/clip.mp4": Route(files["mp4"], content_type="video/mp4"),
            "/silent.mp4": Route(files["silent"], content_type="video/mp4"),
            "/text.mp3": Route(b"hello, not audio\n" * 50, content_type="audio/mpeg"),
        }
    ) as srv:
        yield srv


@pytest.mark.parametrize(
    "step", [download_youtube.STEP, download_rumble.STEP], ids=["youtube", "rumble"]
)
def test_audio_download_recorded(step: Step, server: httpserver.Server) -> None:
    kind = step.name.removeprefix("download_")
    code, result = run_step(step, "--url", server.url("/tone.mp3"))
    assert code == 0, result
    cid = result["content"]
    assert cid.startswith(f"{kind}-tone-")
    folder = store().folder(cid)
    assert result["file"] == "media.mp3"
    info = media_mod.probe(folder / "media.mp3")
    assert info.audio and not info.video
    assert info.duration == pytest.approx(3.0, abs=0.2)
    meta = store().read_json(folder / "meta.json")
    assert meta["webpage_url"] == server.url("/tone.mp3")
    assert "formats" not in meta
    item = db().get(cid)
    assert item is not None
    assert (item.kind, item.source_url) == (kind, server.url("/tone.mp3"))
    assert item.duration == pytest.approx(3.0, abs=0.2)
    assert states(cid) == {"download": "done"}
    assert sorted(p.name for p in folder.iterdir()) == ["item.json", "media.mp3", "meta.json"]
    described = json.loads((folder / "item.json").read_text())  # what the next steps read
    assert (described["kind"], described["meta"]["media"]) == (kind, "media.mp3")
    assert described["source_url"] == server.url("/tone.mp3")

    code, again = run_step(step, "--url", server.url("/tone.mp3"))
    assert (code, again["status"], again["content"]) == (0, Status.SKIPPED, cid)


def test_audio_only_by_default_video_on_request(server: httpserver.Server) -> None:
    code, result = run_step(
        download_youtube.STEP, "--url", server.url("/clip.mp4"), "--content", "clip"
    )
    assert code == 0, result
    info = media_mod.probe(store().path("clip", result["file"]))
    assert info.audio and not info.video
    code, result = run_step(
        download_youtube.STEP,
        "--url",
        server.url("/clip.mp4"),
        "--content",
        "clip",
        "--video",
        "--rewrite",
    )
    assert code == 0, result
    info = media_mod.probe(store().path("clip", result["file"]))
    assert info.audio and info.video
    assert store().leftovers("clip") == []


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/missing.mp3", "404"),
        ("/silent.mp4", "no audio stream"),
        ("/text.mp3", "not audio or video"),
    ],
    ids=["404", "no-audio", "text-as-mp3"],
)
def test_bad_urls_are_invalid(server: httpserver.Server, path: str, reason: str) -> None:
    code, result = run_step(download_rumble.STEP, "--url", server.url(path), "--content", "bad")
    assert code == codes.EXIT_INVALID, result
    assert reason in result["error"]
    assert not store().folder("bad").exists()  # a folder it made is taken away


def test_a_failed_download_keeps_a_folder_that_held_something(server: httpserver.Server) -> None:
    store().write_bytes(store().path("mine", "notes.txt"), b"mine")
    code, result = run_step(
        download_youtube.STEP, "--url", server.url("/silent.mp4"), "--content", "mine"
    )
    assert code == codes.EXIT_INVALID, result
    assert sorted(p.name for p in store().folder("mine").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/x.mp3"])
def test_a_url_that_does_not_parse_is_invalid_input(url: str) -> None:
    code, result = run_step(download_youtube.STEP, "--url", url)
    assert code == codes.EXIT_INVALID, result
    assert "not a valid URL" in result["error"]


# yt-dlp drops its HTTP response unclosed when the write fails (ENOSPC); the socket's
# ResourceWarning then surfaces wherever the garbage collector runs next. Python ignores
# ResourceWarning by default, so users never see it; only this suite turns it into an error.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_full_disk_is_failed_not_bad_media(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = media.tone(tmp_path / "big.wav", 20.0).read_bytes()  # 3.5 MB
    with (
        small_filesystem(tmp_path / "small", "1m") as small,
        httpserver.serve({"/big.wav": Route(big, content_type="audio/wav")}) as srv,
    ):
        monkeypatch.setenv("SIGNAL4_CONTENT_DIR", str(small / "content"))
        code, result = run_step(
            download_youtube.STEP, "--url", srv.url("/big.wav"), "--content", "big"
        )
        assert (code, result["status"]) == (codes.EXIT_FAILED, Status.FAILED), result
        assert "no space left on device" in result["error"]
        assert db().stage_status("big", "download") == "failed"
        assert not store().folder("big").exists()


def test_rumble_refuses_another_site() -> None:
    code, result = run_step(download_rumble.STEP, "--url", "https://www.youtube.com/watch?v=x")
    assert code == codes.EXIT_INVALID, result
    assert "not a Rumble URL" in result["error"] and "download_youtube" in result["error"]
    assert db().all() == []


def test_url_checks_and_cookies(
    server: httpserver.Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, result = run_step(download_youtube.STEP, "--url", "ftp://127.0.0.1/x.mp3")
    assert (code, "only http and https" in result["error"]) == (codes.EXIT_INVALID, True)
    code, result = run_step(
        download_youtube.STEP,
        "--url",
        server.url("/tone.mp3"),
        "--cookies",
        str(tmp_path / "none.txt"),
    )
    assert "no such file" in result["error"]
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n")
    sent = len(server.requests)
    code, result = run_step(
        download_youtube.STEP, "--url", server.url("/tone.mp3"), "--cookies", str(cookies)
    )
    assert code == 0, result
    # yt-dlp was handed the cookies: the download carried them
    assert "session=abc" in server.cookies[sent:], server.cookies[sent:]
    monkeypatch.delenv("SIGNAL4_ALLOW_LOOPBACK")
    code, result = run_step(download_youtube.STEP, "--url", server.url("/tone.mp3"), "--rewrite")
    assert code == codes.EXIT_INVALID
    assert "non-public address" in result["error"]


def test_cli_subprocess_keeps_stdout_clean(server: httpserver.Server, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signal4.processing_steps.download_rumble",
            "--url",
            server.url("/tone.mp3"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    assert protocol.parse_last_line(proc.stdout)["status"] == Status.COMPLETED


@pytest.mark.parametrize("task", ["download_youtube", "download_rumble"])
def test_ready_probe_covers_a_real_run(server: httpserver.Server, task: str) -> None:
    real = probe.assert_probe_covers(task, "--url", server.url("/tone.mp3"))
    assert "yt_dlp" in real


def test_a_download_reports_its_bytes_to_the_dispatcher(
    server: httpserver.Server, files: dict[str, bytes], tmp_path: Path
) -> None:
    from signal4.run import dispatch

    got: list[dict[str, object]] = []
    outcome = dispatch.run_command(
        [
            sys.executable,
            "-m",
            "signal4.processing_steps.download_youtube",
            "--url",
            server.url("/tone.mp3"),
        ],
        task="download_youtube",
        env="download",
        timeout=120,
        cwd=tmp_path,
        on_progress=got.append,
    )
    assert outcome.status == Status.COMPLETED, outcome
    assert got, outcome.stderr_tail
    assert {p["unit"] for p in got} == {"bytes"}
    assert got[-1]["done"] == got[-1]["total"] == len(files["mp3"])
    assert "progress" not in outcome.stderr_tail
