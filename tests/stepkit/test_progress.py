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


@pytest.mark.parametrize(
    ("value", "asked"),
    [("1", True), ("true", True), (" YES ", True), ("0", False), ("", False), ("no", False)],
)
def test_the_runner_asks_with_an_env_variable(value: str, asked: bool) -> None:
    assert progress_mod.wanted({progress_mod.ENV_VAR: value}) is asked
    assert progress_mod.wanted({}) is False


def test_a_count_keeps_its_type_and_an_unknown_unit_counts_bytes() -> None:
    assert progress_mod.line(4096, None, "bytes") == (
        '{"progress": {"done": 4096, "total": null, "unit": "bytes"}}'
    )
    buf = io.StringIO()
    p = Progress("frames", 10, stream=buf, enabled=True)
    assert p.unit == "bytes"
    p.update(3)
    assert buf.getvalue() == '{"progress": {"done": 3, "total": 10, "unit": "bytes"}}\n'
    p.update(3.5)  # (a float stays a float)
    p.finish()
    assert buf.getvalue().endswith('{"progress": {"done": 3.5, "total": 10, "unit": "bytes"}}\n')


def test_a_total_learned_later_is_told_with_the_next_line() -> None:
    buf, clock = io.StringIO(), Clock()
    p = Progress("bytes", stream=buf, enabled=True, clock=clock, interval=1.0)
    p.update(100)
    clock.now += 1.0
    p.update(200, total=5000)  # a Content-Length seen late
    assert [d["progress"]["total"] for d in _lines(buf)] == [None, 5000]  # type: ignore[index]
    p.update(300, total=float("nan"))  # a total that is not a count is unknown again
    assert p.total is None


def test_finish_says_nothing_new_and_nothing_when_silent() -> None:
    buf = io.StringIO()
    p = Progress("seconds", 4.0, stream=buf, enabled=True)
    p.finish()  # nothing done yet: it says where it is once
    p.update(4.0)
    p.finish()  # already said
    assert [d["progress"]["done"] for d in _lines(buf)] == [0.0, 4.0]  # type: ignore[index]
    quiet = io.StringIO()
    q = Progress("seconds", 4.0, stream=quiet, enabled=False)
    q.update(4.0)
    q.finish()
    assert quiet.getvalue() == "" and q.done == 4.0  # it still knows how far it is
