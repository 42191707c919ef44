"""download_podcast against a real loopback HTTP server serving real (ffmpeg-made) media."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.processing_steps.download_podcast import STEP
from signal4.stepkit import protocol
from tests.helpers import httpserver, media, probe
from tests.helpers.httpserver import Route
from tests.helpers.steps import db, run_step, small_filesystem, states, store


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL4_ALLOW_LOOPBACK", "1")


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return media.tone(tmp_path_factory.mktemp("m") / "t.mp3", 3.0).read_bytes()


def _no_leftovers() -> None:
    root = store().root
    if root.exists():
        assert not list(root.rglob(".tmp-*")), list(root.rglob(".tmp-*"))


def test_rss_newest_episode_downloaded_and_recorded(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(
            httpserver.rss(
                [
                    ("g2", "Second Episode", srv.url("/ep2.mp3")),
                    ("g1", "First Episode", srv.url("/ep1.mp3")),
                ]
            ),
            content_type="application/rss+xml",
        )
        srv.routes["/ep2.mp3"] = Route(mp3, content_type="audio/mpeg")
        srv.routes["/ep1.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"))
        assert code == 0, result
        assert result["status"] == Status.COMPLETED
        [cid] = result["contents"]
        assert cid.startswith("podcast-second-episode-")
        path = store().path(cid, "source-ep2.mp3")
        assert path.read_bytes() == mp3
        item = db().get(cid)
        assert item is not None
        assert item.kind == "podcast"
        assert item.title == "Second Episode"
        assert item.source_url == srv.url("/ep2.mp3")
        assert item.duration == pytest.approx(3.0, abs=0.2)
        assert states(cid) == {"download": "done"}
        assert "GET /ep1.mp3" not in srv.requests

        # idempotent: a re-run is skipped and fetches no media; --rewrite downloads again
        code, again = run_step(STEP, "--feed", srv.url("/feed.xml"))
        assert (code, again["status"], again["contents"]) == (0, Status.SKIPPED, [cid])
        assert srv.requests.count("GET /ep2.mp3") == 1
        code, again = run_step(STEP, "--feed", srv.url("/feed.xml"), "--rewrite")
        assert again["status"] == Status.COMPLETED
        assert srv.requests.count("GET /ep2.mp3") == 2
    _no_leftovers()


def test_all_episodes_atom_and_redirect(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/atom.xml"] = Route(
            httpserver.atom(
                [
                    ("urn:e2", "Two", srv.url("/moved.mp3")),
                    ("urn:e1", "One", srv.url("/one.mp3")),
                ]
            ),
            content_type="application/atom+xml",
        )
        srv.routes["/moved.mp3"] = Route(status=302, headers={"Location": "/real/two.mp3"})
        srv.routes["/real/two.mp3"] = Route(mp3, content_type="audio/mpeg")
        srv.routes["/one.mp3"] = Route(mp3, content_type="application/octet-stream")
        code, result = run_step(STEP, "--feed", srv.url("/atom.xml"), "--all")
        assert code == 0, result
        assert len(result["contents"]) == 2
        assert {d["file"] for d in result["downloads"]} == {"source-moved.mp3", "source-one.mp3"}
        for cid in result["contents"]:
            assert db().is_done(cid, "download")
        code, pick = run_step(STEP, "--feed", srv.url("/atom.xml"), "--guid", "urn:e1")
        assert pick["status"] == Status.SKIPPED
        assert pick["contents"] == [result["contents"][1]]


def test_all_tries_every_episode_and_reports_the_failures(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(
            httpserver.rss(
                [
                    ("g3", "Three", srv.url("/three.mp3")),
                    ("g2", "Two", srv.url("/gone.mp3")),  # 404 in the middle
                    ("g1", "One", srv.url("/one.mp3")),
                ]
            )
        )
        srv.routes["/three.mp3"] = Route(mp3, content_type="audio/mpeg")
        srv.routes["/one.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--all")
        assert (code, result["status"]) == (codes.EXIT_FAILED, Status.FAILED), result
        assert "1 of 3 episodes failed" in result["error"] and "404" in result["error"]
        statuses = [d["status"] for d in result["downloads"]]
        assert statuses == [Status.COMPLETED, Status.INVALID_INPUT, Status.COMPLETED]
        assert len(result["contents"]) == 2
        for cid in result["contents"]:
            assert db().is_done(cid, "download")
        bad = result["downloads"][1]["content"]
        assert db().stage_status(bad, "download") == "invalid_input"
        assert "404" in (db().get(bad).steps[0].error or "")  # type: ignore[union-attr]

        # a re-run skips the two done episodes and tries the failed one again
        srv.routes["/gone.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, again = run_step(STEP, "--feed", srv.url("/feed.xml"), "--all")
        assert (code, again["status"]) == (0, Status.COMPLETED), again
        assert [d["status"] for d in again["downloads"]] == [
            Status.SKIPPED,
            Status.COMPLETED,
            Status.SKIPPED,
        ]
    _no_leftovers()


def test_relative_enclosure_and_raw_guid(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/pod/feed.xml"] = Route(httpserver.rss([("ep-7", "Seven", "media/7.mp3")]))
        srv.routes["/pod/media/7.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, result = run_step(STEP, "--feed", srv.url("/pod/feed.xml"))
        assert code == 0, result
        [cid] = result["contents"]
        item = db().get(cid)
        assert item is not None
        assert item.source_url == srv.url("/pod/media/7.mp3")
        assert (item.meta or {})["guid"] == "ep-7"  # as written, not resolved against the host


def test_unsafe_enclosure_names_are_sanitised(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        evil = srv.url("/a/b/..%2F..%2Fx%20y%C3%A9.mp3?token=1&x=../../z")
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Evil", evil)]))
        srv.routes["/a/b/..%2F..%2Fx%20y%C3%A9.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "evil")
        assert code == 0, result
        name = result["downloads"][0]["file"]
        assert name == "source-x-ye.mp3"
        assert (store().folder("evil") / name).is_file()
        assert sorted(p.name for p in store().root.iterdir()) == ["evil"]


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (Route(b"<html>nope</html>", status=404, content_type="text/html"), "HTTP 404"),
        (Route(b"oops", status=500, content_type="text/plain"), "HTTP 500"),
        (Route(b"", content_type="audio/mpeg"), "empty"),
        (Route(b"just some text, not audio\n" * 40, content_type="text/plain"), "not audio"),
        (Route(b"just some text, not audio\n" * 40, content_type="audio/mpeg"), "not audio"),
        (
            Route(b"x" * 10, content_type="audio/mpeg", length=10**12, cut_after=10),
            "over the limit",
        ),
    ],
    ids=["404", "500", "zero-bytes", "text-plain", "text-as-mp3", "huge-length"],
)
def test_bad_media_is_invalid_input(route: Route, reason: str) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Bad", srv.url("/bad.mp3"))]))
        srv.routes["/bad.mp3"] = route
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "bad")
    assert code == codes.EXIT_INVALID
    assert reason in result["error"]
    assert db().stage_status("bad", "download") == "invalid_input"
    assert reason in (db().get("bad").steps[0].error or "")  # type: ignore[union-attr]
    assert not store().folder("bad").exists()  # the folder it made for the episode is gone


def test_over_size_limit_while_streaming(mp3: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL4_MAX_DOWNLOAD_BYTES", str(len(mp3) // 2))
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Big", srv.url("/big.mp3"))]))
        # no usable Content-Length: the limit must hold while streaming too
        srv.routes["/big.mp3"] = Route(mp3, content_type="audio/mpeg", length=-1)
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "big")
    assert code == codes.EXIT_INVALID
    assert "larger than the limit" in result["error"]
    assert not store().folder("big").exists()


@pytest.mark.parametrize(
    ("feed", "reason"),
    [
        (b"<rss><channel><item><title>broken</title></channel>", "not well-formed"),
        (httpserver.rss([]), "no episodes"),
        (b"<html><body>hello</body></html>", "not"),
    ],
    ids=["malformed", "no-enclosures", "html"],
)
def test_bad_feed_is_invalid_and_db_unchanged(feed: bytes, reason: str) -> None:
    with httpserver.serve({"/feed.xml": Route(feed, content_type="text/xml")}) as srv:
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"))
    assert code == codes.EXIT_INVALID
    assert reason in result["error"]
    assert db().all() == []


def test_feed_http_errors_and_url_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    with httpserver.serve() as srv:
        code, result = run_step(STEP, "--feed", srv.url("/missing.xml"))
        assert code == codes.EXIT_INVALID
        assert "HTTP 404" in result["error"]
        code, result = run_step(STEP, "--feed", "file:///etc/passwd")
        assert code == codes.EXIT_INVALID
        assert "only http and https" in result["error"]
        monkeypatch.delenv("SIGNAL4_ALLOW_LOOPBACK")
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"))
        assert code == codes.EXIT_INVALID
        assert "non-public address" in result["error"]
        assert srv.requests == ["GET /missing.xml"]
    assert db().all() == []


@pytest.mark.parametrize(
    "feed",
    ["http://[::1", "http://[::1/feed.xml", "http://127.0.0.1:99999/feed.xml", "http://[nope]/"],
)
def test_a_feed_url_that_does_not_parse_is_invalid_input(tmp_path: Path, feed: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "signal4.processing_steps.download_podcast", "--feed", feed],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == codes.EXIT_INVALID, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    result = protocol.parse_last_line(proc.stdout)
    assert result["status"] == Status.INVALID_INPUT
    assert "not a valid URL" in result["error"]


def test_an_enclosure_url_that_does_not_parse_is_invalid_input(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Odd", "http://[::1/ep.mp3")]))
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "odd")
    assert code == codes.EXIT_INVALID, result
    assert not store().folder("odd").exists()


def test_a_bad_content_id_is_invalid_input_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signal4.processing_steps.download_podcast",
            "--feed",
            "http://127.0.0.1:9/feed.xml",
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


def test_a_failed_download_keeps_a_folder_that_held_something(mp3: bytes) -> None:
    store().write_bytes(store().path("mine", "notes.txt"), b"mine")
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Gone", srv.url("/gone.mp3"))]))
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "mine")
    assert code == codes.EXIT_INVALID, result
    assert sorted(p.name for p in store().folder("mine").iterdir()) == ["notes.txt"]


def test_a_failed_rewrite_keeps_the_download_done(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Once", srv.url("/once.mp3"))]))
        srv.routes["/once.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "once")
        assert code == 0, result
        del srv.routes["/once.mp3"]  # gone from the server now
        code, result = run_step(
            STEP, "--feed", srv.url("/feed.xml"), "--content", "once", "--rewrite"
        )
    assert code == codes.EXIT_INVALID, result
    assert store().path("once", "source-once.mp3").read_bytes() == mp3  # the earlier download
    row = db().get("once").steps[0]  # type: ignore[union-attr]
    assert (row.status, row.error) == ("done", None)
    assert "404" in row.info["last_attempt"]["error"]
    assert row.info["file"] == "source-once.mp3"


def test_a_full_disk_is_failed_not_bad_media(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = media.tone(tmp_path / "big.wav", 20.0).read_bytes()  # 3.5 MB
    with small_filesystem(tmp_path / "small", "1m") as small:
        monkeypatch.setenv("SIGNAL4_CONTENT_DIR", str(small / "content"))
        with httpserver.serve() as srv:
            srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Big", srv.url("/big.wav"))]))
            srv.routes["/big.wav"] = Route(big, content_type="audio/wav")
            code, result = run_step(STEP, "--feed", srv.url("/feed.xml"), "--content", "big")
        assert (code, result["status"]) == (codes.EXIT_FAILED, Status.FAILED), result
        assert "no space left on device" in result["error"]
        assert f"the file system at {small} is full" in result["error"]
        assert db().stage_status("big", "download") == "failed"
        assert not store().folder("big").exists()


def test_every_request_and_redirect_hop_is_checked(mp3: bytes) -> None:
    from types import SimpleNamespace

    from signal4.processing_steps.download_podcast import fetch_feed, http_client
    from signal4.stepkit.step import InvalidInput

    strict = SimpleNamespace(allow_loopback=False, http_timeout=10.0)
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "x", srv.url("/x.mp3"))]))
        srv.routes["/away"] = Route(status=302, headers={"Location": "ftp://127.0.0.1/feed"})
        with http_client(strict) as client, pytest.raises(InvalidInput, match="non-public"):
            fetch_feed(client, srv.url("/feed.xml"))
        assert srv.requests == []  # refused before anything was sent
        code, result = run_step(STEP, "--feed", srv.url("/away"))
    assert code == codes.EXIT_INVALID, result
    assert "only http and https" in result["error"]


def test_connection_reset_leaves_nothing_and_rerun_completes(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Flaky", srv.url("/flaky.mp3"))]))
        srv.routes["/flaky.mp3"] = Route(mp3, content_type="audio/mpeg", cut_after=len(mp3) // 3)
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"))
        assert code == codes.EXIT_FAILED, result
        assert "broke off" in result["error"]
        [item] = db().all()
        assert db().stage_status(item.id, "download") == "failed"
        assert not store().folder(item.id).exists()

        srv.routes["/flaky.mp3"] = Route(mp3, content_type="audio/mpeg")
        code, result = run_step(STEP, "--feed", srv.url("/feed.xml"))
        assert code == 0, result
        assert result["contents"] == [item.id]
        assert store().path(item.id, "source-flaky.mp3").read_bytes() == mp3
        assert states(item.id) == {"download": "done"}
    _no_leftovers()


def test_cli_subprocess(mp3: bytes, tmp_path: Path) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Sub", srv.url("/sub.mp3"))]))
        srv.routes["/sub.mp3"] = Route(mp3, content_type="audio/mpeg")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "signal4.processing_steps.download_podcast",
                "--feed",
                srv.url("/feed.xml"),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr
    result = protocol.parse_last_line(proc.stdout)
    assert result["status"] == Status.COMPLETED
    assert "\x1b[" not in proc.stderr  # no progress bar when stderr is not a terminal


def test_ready_probe_covers_a_real_run(mp3: bytes) -> None:
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Probe", srv.url("/p.mp3"))]))
        srv.routes["/p.mp3"] = Route(mp3, content_type="audio/mpeg")
        real = probe.assert_probe_covers("download_podcast", "--feed", srv.url("/feed.xml"))
    assert {"feedparser", "httpx", "imageio_ffmpeg"} <= set(real)


def test_a_download_reports_its_bytes_to_the_dispatcher(mp3: bytes, tmp_path: Path) -> None:
    from signal4.run import dispatch

    body = mp3 * 8  # several blocks; still a playable MP3 (frames after frames)
    with httpserver.serve() as srv:
        srv.routes["/feed.xml"] = Route(httpserver.rss([("g", "Big", srv.url("/big.mp3"))]))
        srv.routes["/big.mp3"] = Route(body, content_type="audio/mpeg")
        got: list[dict[str, object]] = []
        outcome = dispatch.run_command(
            [
                sys.executable,
                "-m",
                "signal4.processing_steps.download_podcast",
                "--feed",
                srv.url("/feed.xml"),
            ],
            task="download_podcast",
            env="download",
            timeout=120,
            cwd=tmp_path,
            on_progress=got.append,
        )
    assert outcome.status == Status.COMPLETED, outcome
    assert got, outcome.stderr_tail
    assert {p["unit"] for p in got} == {"bytes"} and {p["total"] for p in got} == {len(body)}
    done = [p["done"] for p in got]
    assert done == sorted(done) and done[-1] == len(body)
    assert "progress" not in outcome.stderr_tail
