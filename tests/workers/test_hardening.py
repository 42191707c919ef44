"""The worker's and the submitter's guards, without a broker: broker URLs, path arguments,
the submitter's patience, the soft-limit flag, what counts as a message envelope.

The same guards on a real Redis with real workers: tests/workers/test_worker.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from signal4.codes import EXIT_TIMEOUT, EXIT_USAGE
from signal4.envs.manifest import Manifest
from signal4.workers import celeryapp, wire
from signal4.workers import submit as submit_mod
from signal4.workers import worker as worker_mod
from tests.conftest import ROOT

BAD_URLS = [
    "notaurl",
    "redis://host:notaport/0",
    "redis://127.0.0.1:6379/x",
    "http://127.0.0.1:6379/0",
    "redis://[::1/0",
    " ",
]


def _inv(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **env},
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_broker_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(wire.BadBrokerUrl) as err:
        celeryapp.broker_url(url)
    assert err.value.code == EXIT_USAGE and "--broker" in str(err.value)
    assert "redis://" in str(err.value)  # says what a good one looks like


def test_good_broker_urls_pass_and_an_empty_one_is_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from signal4.content import settings

    for url in (
        "redis://127.0.0.1:6379/0",
        "redis://:secret@host:6380/2",
        "rediss://host/0",
        "redis://host",
    ):
        assert celeryapp.broker_url(url) == url
    assert celeryapp.broker_url("") == celeryapp.DEFAULT_BROKER
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "")
    settings.get.cache_clear()
    assert celeryapp.broker_url() == celeryapp.DEFAULT_BROKER
    monkeypatch.setenv("SIGNAL4_BROKER_URL", "redis://:secret@host:notaport/0")
    settings.get.cache_clear()
    with pytest.raises(wire.BadBrokerUrl) as err:
        celeryapp.broker_url()
    assert "SIGNAL4_BROKER_URL" in str(err.value) and "secret" not in str(err.value)


def test_inv_with_a_malformed_broker_url_says_so_on_one_line() -> None:
    for args in (
        ("submit", "--broker", "notaurl", "stitch", "--", "--content", "x"),
        ("submit", "--broker", "redis://host:notaport/0", "stitch", "--", "--content", "x"),
        ("workers", "--broker", "notaurl"),
        ("worker", "stitch", "--broker", "redis://host:notaport/0"),
        ("pipeline", "--workers", "--broker", "notaurl"),
    ):
        got = _inv(*args)
        assert got.returncode == EXIT_USAGE, (args, got.stderr)
        assert len(got.stderr.strip().splitlines()) == 1, (args, got.stderr)
        assert "is not a broker URL" in got.stderr and "Traceback" not in got.stderr
    got = _inv("workers", SIGNAL4_BROKER_URL="notaurl")
    assert got.returncode == EXIT_USAGE and "SIGNAL4_BROKER_URL" in got.stderr, got.stderr


def test_path_arguments_are_made_absolute_from_the_callers_folder(
    project_manifest: Manifest,
) -> None:
    convert = project_manifest.task("convert")
    here = Path("/somewhere/else")
    home = str(Path("~").expanduser())
    cases = {
        ("--input", "a.wav", "--content", "x"): ["--input", "/somewhere/else/a.wav"],
        ("--input=../a.wav",): ["--input=/somewhere/a.wav"],
        ("--inp", "a.wav"): ["--inp", "/somewhere/else/a.wav"],  # argparse takes a prefix
        ("--input", "/abs/a.wav"): ["--input", "/abs/a.wav"],
        ("--input", "~/a.wav"): ["--input", f"{home}/a.wav"],
        ("--content", "a.wav"): ["--content", "a.wav"],  # not a path
        ("--input",): ["--input"],  # the step says what is missing
    }
    for argv, start in cases.items():
        got = submit_mod.absolute_paths(convert, argv, here)
        assert got[: len(start)] == start, (argv, got)
        assert len(got) == len(argv)
    cookies = submit_mod.absolute_paths(
        project_manifest.task("download_youtube"), ["--url", "u", "--cookies", "c.txt"], here
    )
    assert cookies == ["--url", "u", "--cookies", "/somewhere/else/c.txt"]
    stitch = ["--content", "a"]
    assert submit_mod.absolute_paths(project_manifest.task("stitch"), stitch, here) == stitch


def test_the_watch_reports_when_nothing_moves_and_gives_up_past_the_limit() -> None:
    said: list[str] = []
    watch = submit_mod.Watch(
        "stitch", "signal4.stitch", "t-1", limit=20.0, patience=30.0, margin=60.0, say=said.append
    )
    watch.see("PENDING", None, now=0.0)
    watch.see("PENDING", None, now=29.0)
    assert not said
    watch.see("PENDING", None, now=30.0)
    assert len(said) == 1 and "t-1" in said[0] and "signal4.stitch" in said[0]
    assert "PENDING" in said[0]
    started = {"hostname": "stitch-1@a", "pid": 7}
    watch.see("STARTED", started, now=40.0)  # progress: the clock starts again
    watch.see("STARTED", started, now=100.0)
    assert len(said) == 2 and "STARTED on worker stitch-1@a (pid 7)" in said[1]
    again = {"hostname": "stitch-2@b", "pid": 9}  # put back and started by another worker
    watch.see("STARTED", again, now=110.0)
    watch.see("STARTED", again, now=190.0)  # 80 s: exactly the limit plus the margin
    with pytest.raises(wire.WaitTimeout) as err:
        watch.see("STARTED", again, now=190.5)
    assert err.value.code == EXIT_TIMEOUT
    assert "gave up waiting for stitch (task t-1 on signal4.stitch)" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_task_without_a_time_limit_is_awaited_for_ever(project_manifest: Manifest) -> None:
    said: list[float] = []
    watch = submit_mod.Watch("x", "q", "t", limit=None, patience=30.0)
    watch.say = lambda _: said.append(now)
    for now in range(0, 3600, 5):
        watch.see("STARTED", {"hostname": "x@h", "pid": 1}, now=float(now))  # no WaitTimeout
    assert said[:4] == [30, 90, 210, 450]  # less and less often: a long step is no fault
    assert said[-1] - said[-2] == 600
    stitch = project_manifest.task("stitch")
    assert submit_mod.hard_limit(stitch) == stitch.timeout + celeryapp.HARD_LIMIT_GRACE
    assert submit_mod.hard_limit(stitch, 5) == 5 + celeryapp.HARD_LIMIT_GRACE
    assert submit_mod.hard_limit(stitch, 0) is None


def test_the_soft_limit_flag_sees_the_signal_whatever_the_step_does() -> None:
    from billiard.pool import SIG_SOFT_TIMEOUT

    class Soft(Exception):
        pass

    def pool_handler(signum: int, frame: Any) -> None:
        raise Soft

    before = signal.signal(SIG_SOFT_TIMEOUT, pool_handler)
    try:
        flag = worker_mod.SoftLimitFlag()
        flag.arm()
        assert not flag.fired
        with pytest.raises(RuntimeError):
            try:
                os.kill(os.getpid(), SIG_SOFT_TIMEOUT)
                time.sleep(5)  # the handler raises before this ends
            except Soft as exc:  # a step wrapping it, as transcribe does
                raise RuntimeError("Whisper failed") from exc
        assert flag.fired
        flag.arm()  # the next task starts clean, with the handler kept once
        assert not flag.fired and signal.getsignal(SIG_SOFT_TIMEOUT) == flag.on_signal
    finally:
        signal.signal(SIG_SOFT_TIMEOUT, before)


def test_what_a_worker_takes_for_a_message_envelope() -> None:
    from signal4.workers import transport

    good = {
        "body": "eA==",
        "headers": {"task": "signal4.stitch", "id": "1"},
        "properties": {"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}},
    }
    assert transport.envelope_problem(good) is None
    for bad in (
        42,
        [1],
        "text",
        {},
        {"properties": []},
        {"properties": {"delivery_info": {}}},
        {**good, "properties": {"delivery_tag": "t"}},
        {**good, "headers": [1]},
        {**good, "body": 12},
    ):
        assert transport.envelope_problem(bad), bad
