"""A step's progress lines (signal4.stepkit.progress): their form, throttle and silence.

How the dispatcher reads them: tests/run/test_dispatch.py; how inv pipeline shows them:
tests/commands/test_pipeline.py.
"""

from __future__ import annotations

import io
import json

import pytest

from signal4.run import dispatch
from signal4.stepkit import progress as progress_mod
from signal4.stepkit.progress import Progress


class Clock:
    """A clock the test moves by hand: the throttle is tested without waiting."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_a_line_has_the_defined_form_and_the_dispatcher_reads_it() -> None:
    buf = io.StringIO()
    Progress("seconds", 20.5, stream=buf, enabled=True).update(12.0)
    [text] = buf.getvalue().splitlines()
    assert json.loads(text) == {"progress": {"done": 12.0, "total": 20.5, "unit": "seconds"}}
    assert dispatch.parse_progress(text + "\n") == {"done": 12.0, "total": 20.5, "unit": "seconds"}
    unknown = io.StringIO()
    Progress("bytes", stream=unknown, enabled=True).update(4096)
    assert _lines(unknown) == [{"progress": {"done": 4096, "total": None, "unit": "bytes"}}]


def test_lines_are_throttled_and_the_last_value_is_told_once() -> None:
    buf, clock = io.StringIO(), Clock()
    p = Progress("bytes", 1000, stream=buf, enabled=True, clock=clock, interval=0.25)
    for at, done in ((0.0, 100), (0.1, 200), (0.2, 300), (0.3, 400), (0.4, 500), (0.6, 600)):
        clock.now = 100.0 + at
        p.update(done)
    # the first at once, then one per interval: 0.0, 0.3, 0.6
    assert [d["progress"]["done"] for d in _lines(buf)] == [100, 400, 600]  # type: ignore[index]
    clock.now += 0.01
    p.update(1000)  # too soon after the last line...
    p.finish()  # ...but the end is always told
    p.finish()  # once
    assert [d["progress"]["done"] for d in _lines(buf)] == [100, 400, 600, 1000]  # type: ignore[index]


def test_silent_unless_the_runner_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.delenv(progress_mod.ENV_VAR, raising=False)
    Progress("bytes", stream=buf).update(10)
    assert buf.getvalue() == ""
    monkeypatch.setenv(progress_mod.ENV_VAR, "1")
    Progress("bytes", stream=buf).update(10)
    assert len(buf.getvalue().splitlines()) == 1


def test_the_emitter_never_raises() -> None:
    class Broken(io.StringIO):
        def write(self, _s: str) -> int:
            raise OSError("stderr is gone")

    p = Progress("seconds", 5.0, stream=Broken(), enabled=True)
    p.update(1.0)
    p.finish()
    buf = io.StringIO()
    q = Progress("seconds", float("nan"), stream=buf, enabled=True)
    for bad in (float("nan"), float("inf"), -1.0, "3", None, True):
        q.update(bad)  # type: ignore[arg-type]
    assert buf.getvalue() == ""  # nothing that is not a count is told
    q.update(2.0)
    assert _lines(buf) == [{"progress": {"done": 2.0, "total": None, "unit": "seconds"}}]
