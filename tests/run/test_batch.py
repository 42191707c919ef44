"""The local runner (signal4.run.batch) through the real envs: feeds, folders, --from
lists, limits, Ctrl-C and resuming.

Slow: every item runs the whole pipeline (convert -> compress) on the bundled sample's
sound. A loopback HTTP server plays the feeds and the media. How sources are routed and
planned, without envs: tests/run/test_plan.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from signal4.content.state import StateDB
from signal4.envs import manifest
from tests.conftest import ROOT
from tests.helpers import httpserver
from tests.helpers.httpserver import Route

pytestmark = pytest.mark.slow

SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"


@pytest.fixture(autouse=True)
def _synced(synced: manifest.Manifest) -> None:
    """The pipeline's envs, synced (tests/conftest.py; a no-op when they are fresh)."""


def _inv(*args: str, data: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", *args],
        capture_output=True,
        text=True,
        env=_environ(data),
        cwd=cwd,
        check=False,
        timeout=900,
    )


def _environ(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SIGNAL4_DATA_DIR": str(data),
        "SIGNAL4_ALLOW_LOOPBACK": "1",
        "NO_COLOR": "1",
        "COLUMNS": "250",
    }


def _processes_using(data: Path) -> list[int]:
    """The live processes whose environment points at the data folder ``data``."""
    wanted = f"SIGNAL4_DATA_DIR={data}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in env and state != "Z":
            found.append(int(proc.name))
    return found


def _db(data: Path) -> StateDB:
    return StateDB(f"sqlite:///{data / 'state.db'}")


@pytest.fixture
def feed_server() -> Iterator[httpserver.Server]:
    """A podcast feed of three episodes, newest first; the middle one's media is gone."""
    wav = SAMPLE.read_bytes()
    with httpserver.serve() as srv:
        srv.routes["/show"] = Route(
            httpserver.rss(
                [
                    ("g3", "Third Talk", srv.url("/ep3.wav")),
                    ("g2", "Second Talk", srv.url("/missing.wav")),
                    ("g1", "First Talk", srv.url("/ep1.wav")),
                ],
                item_type="audio/wav",
            ),
            content_type="application/rss+xml",
        )
        srv.routes["/ep3.wav"] = Route(wav + b"\0\0", content_type="audio/wav")
        srv.routes["/ep1.wav"] = Route(wav, content_type="audio/wav")
        yield srv


def test_a_whole_feed_is_processed_and_a_rerun_skips_what_is_done(
    isolated_data: Path, feed_server: httpserver.Server
) -> None:
    got = _inv("--source", feed_server.url("/show"), data=isolated_data)
    assert got.returncode == 1, got.stdout + got.stderr
    failed_line = next(line for line in got.stdout.splitlines() if line.startswith("failed:"))
    assert "podcast-second-talk" in failed_line and "third" not in failed_line
    db = _db(isolated_data)
    done = sorted(i.id for i in db.all() if db.is_done(i.id, "compress"))
    assert [d.split("-")[1] for d in done] == ["first", "third"]
    again = _inv("--source", feed_server.url("/show"), data=isolated_data)
    assert again.returncode == 1
    # only the failed episode ran again (its download); the two done ones ran nothing
    runs = db.runs()
    assert sum(1 for r in runs if r.content_id in done) == 2 * 6  # six stages each, once
    assert "0 stage(s) to run" not in again.stdout


def test_a_folder_with_a_bad_file(isolated_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        shutil.copy(SAMPLE, folder / name)
    (folder / "d.mp3").write_bytes(b"this is not audio at all\n" * 20)
    (folder / "notes.txt").write_text("not media: ignored")
    got = _inv("--source", str(folder), "--jobs", "2", data=isolated_data)
    assert got.returncode == 1, got.stdout + got.stderr
    rows = [line for line in got.stdout.splitlines() if "file-" in line]
    assert sum("done" in r for r in rows if r.lstrip("│ ").startswith("file-")) >= 3
    assert any("file-d-" in r and "invalid_input" in r for r in rows), got.stdout
    # the runner never ran more than --jobs steps, nor more copies of a task than its limit
    runs = _db(isolated_data).runs()
    m = manifest.load(ROOT)
    events = sorted(
        [(r.started_at, 1, r.task) for r in runs] + [(r.ended_at, -1, r.task) for r in runs]
    )
    total, per_task = 0, dict.fromkeys(m.tasks, 0)
    for _at, step, task in events:
        total += step
        per_task[task] += step
        assert total <= 2
        assert per_task[task] <= m.task(task).concurrency


def test_sources_from_a_list_file(
    isolated_data: Path, tmp_path: Path, feed_server: httpserver.Server
) -> None:
    one = tmp_path / "one.wav"
    shutil.copy(SAMPLE, one)
    listing = tmp_path / "sources.txt"
    listing.write_text(
        f"# my sources\n{one}\n\n   # indented comment\n{feed_server.url('/show')}\n"
    )
    got = _inv("--from", str(listing), "--latest", "1", "--dry-run", data=isolated_data)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "plan: 2 item(s)" in got.stdout
    assert "file-one-" in got.stdout and "podcast-third-talk" in got.stdout
    assert "second-talk" not in got.stdout  # --latest 1: the newest episode only
    assert _db(isolated_data).all() == []  # a dry run changes nothing


def test_ctrl_c_stops_every_step_and_a_rerun_finishes(isolated_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        shutil.copy(SAMPLE, folder / name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", "--source", str(folder)],
        env=_environ(isolated_data),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    db = _db(isolated_data)
    deadline = time.monotonic() + 300
    while not any(r.task == "transcribe" for r in db.runs() if r.status == "completed"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    # no step is left running, and no half-written file is left in the store
    assert _processes_using(isolated_data) == []
    assert not list((isolated_data / "content").rglob(".tmp-*"))
    before = {(r.content_id, r.stage) for r in db.runs() if r.status == "completed"}
    again = _inv("--source", str(folder), data=isolated_data)
    assert again.returncode == 0, again.stdout + again.stderr
    redone = [
        (r.content_id, r.stage)
        for r in db.runs()
        if r.status == "completed" and (r.content_id, r.stage) in before
    ]
    assert len(redone) == len(before)  # nothing done before ran a second time
    for item in db.all():
        assert db.is_done(item.id, "compress")
