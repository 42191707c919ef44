"""The step -> dispatcher progress channel: the emitter's lines, their throttle, the parsing."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import threading

import pytest

from signal4.codes import Status
from signal4.commands import pipeline as pipeline_cmd
from signal4.commands.pipeline import progress_text
from signal4.envs import manifest
from signal4.run import dispatch, runner
from signal4.run import plan as plan_mod
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
    "line",
    [
        '{"progress": {"done": 1, "total": 2}}',  # no unit
        '{"progress": {"done": 1, "total": 2, "unit": "frames"}}',
        '{"progress": {"done": -1, "total": 2, "unit": "bytes"}}',
        '{"progress": {"done": true, "total": 2, "unit": "bytes"}}',
        '{"progress": {"done": 1, "total": "2", "unit": "bytes"}}',
        '{"progress": {"done": 1, "total": 2, "unit": "bytes"}, "status": "completed"}',
        '{"progress": {"done": 1, "total": 2, "unit": "bytes"',
        "progress: 50%",
    ],
)
def test_a_line_that_only_looks_like_progress_is_ordinary_stderr(line: str) -> None:
    assert dispatch.parse_progress(line) is None


CHILD = r"""
import os, sys
asked = os.environ.get("SIGNAL4_PROGRESS")
print("loading the model", file=sys.stderr, flush=True)
if asked:
    for done in (1.5, 3.0, 4.5):
        print('{"progress": {"done": %s, "total": 4.5, "unit": "seconds"}}' % done,
              file=sys.stderr, flush=True)
print('{"progress": "not a count"}', file=sys.stderr, flush=True)
print("a real warning", file=sys.stderr, flush=True)
print('{"status": "completed", "asked": %s}' % ("true" if asked else "false"))
"""


def _run(**callbacks: object) -> dispatch.Outcome:
    return dispatch.run_command(
        [sys.executable, "-c", CHILD],
        task="t",
        env="e",
        timeout=60,
        **callbacks,  # type: ignore[arg-type]
    )


def test_the_dispatcher_hands_progress_to_its_callback_not_to_the_tail() -> None:
    got: list[dict[str, object]] = []
    seen: list[str] = []
    threads: set[int] = set()

    def on_progress(p: dict[str, object]) -> None:
        got.append(p)
        threads.add(threading.get_ident())

    outcome = _run(on_progress=on_progress, on_stderr=seen.append)
    assert outcome.status == Status.COMPLETED and outcome.result["asked"] is True
    assert got == [{"done": d, "total": 4.5, "unit": "seconds"} for d in (1.5, 3.0, 4.5)]
    expected = ["loading the model\n", '{"progress": "not a count"}\n', "a real warning\n"]
    assert outcome.stderr_tail.splitlines(keepends=True) == expected
    assert seen == expected
    assert threading.get_ident() not in threads  # called as lines arrive, by the reader


def test_no_listener_no_progress_asked() -> None:
    outcome = _run()
    assert outcome.result["asked"] is False
    assert "progress" not in outcome.stderr_tail.replace('{"progress": "not a count"}', "")


def test_a_callback_that_raises_does_not_stop_the_step() -> None:
    def broken(_p: dict[str, object]) -> None:
        raise RuntimeError("the view broke")

    outcome = _run(on_progress=broken)
    assert outcome.status == Status.COMPLETED
    assert "a real warning" in outcome.stderr_tail


def test_the_view_shows_seconds_and_megabytes() -> None:
    assert progress_text({"done": 12.0, "total": 20.5, "unit": "seconds"}) == "12.0/20.5 s"
    assert progress_text({"done": 3_100_000, "total": 10_000_000, "unit": "bytes"}) == (
        "3.1/10.0 MB"
    )
    assert progress_text({"done": 3_100_000, "total": None, "unit": "bytes"}) == "3.1 MB"


def _view_plan(m: manifest.Manifest) -> tuple[plan_mod.Plan, plan_mod.Item, plan_mod.Stage]:
    stage = plan_mod.Stage(m.task("transcribe"), [])
    item = plan_mod.Item("a.wav", "a.wav", [stage], content="file-a-1")
    return plan_mod.Plan([item]), item, stage


def _ended(stage: plan_mod.Stage) -> dispatch.Outcome:
    return dispatch.Outcome(
        task=stage.task.name,
        env=stage.task.env,
        status="completed",
        exit_code=0,
        returncode=0,
        duration=1.0,
    )


def test_the_live_view_shows_a_running_steps_progress(project_manifest: manifest.Manifest) -> None:
    from rich.console import Console

    plan, item, stage = _view_plan(project_manifest)
    out = io.StringIO()
    view = pipeline_cmd._View(Console(file=out, force_terminal=True, width=120), plan)
    view.event(runner.Event("start", item, stage, started=0.0))
    view.event(
        runner.Event(
            "progress", item, stage, progress={"done": 12.0, "total": 20.5, "unit": "seconds"}
        )
    )
    shown = io.StringIO()
    Console(file=shown, width=120).print(view._render())
    [line] = [x for x in shown.getvalue().splitlines() if "transcribe" in x]
    assert "file-a-1" in line and "12.0/20.5 s" in line
    view.event(runner.Event("end", item, stage, _ended(stage), 0.0))
    shown = io.StringIO()
    Console(file=shown, width=120).print(view._render())
    assert "12.0/20.5" not in shown.getvalue()


def test_off_a_terminal_progress_prints_nothing(project_manifest: manifest.Manifest) -> None:
    from rich.console import Console

    plan, item, stage = _view_plan(project_manifest)
    out = io.StringIO()
    with pipeline_cmd._View(Console(file=out, force_terminal=False, width=200), plan) as view:
        view.event(runner.Event("start", item, stage, started=0.0))
        for done in (1.0, 2.0, 3.0):
            view.event(
                runner.Event(
                    "progress",
                    item,
                    stage,
                    progress={"done": done, "total": 3.0, "unit": "seconds"},
                )
            )
        view.event(runner.Event("end", item, stage, _ended(stage), 0.0))
    assert out.getvalue().splitlines() == ["completed     transcribe             file-a-1 (1.0s)"]


def test_the_live_view_counts_done_running_waiting_and_failed(
    project_manifest: manifest.Manifest,
) -> None:
    from rich.console import Console

    m = project_manifest
    items = [
        plan_mod.Item(f"{n}.wav", f"{n}.wav", [plan_mod.Stage(t, []) for t in m.pipeline_tasks()])
        for n in ("a", "b", "c")
    ]
    plan = plan_mod.Plan(items)
    stages = len(m.pipeline_tasks())
    view = pipeline_cmd._View(Console(file=io.StringIO(), force_terminal=True, width=200), plan)

    def counts() -> str:
        shown = io.StringIO()
        Console(file=shown, width=200).print(view._render())
        return shown.getvalue().splitlines()[0].split("  ", 1)[1].strip()

    total = 3 * stages
    assert counts() == f"0/{total} stages · 0 running · {total} waiting · 0 failed"
    a, b = items[0].stages[0], items[1].stages[0]
    view.event(runner.Event("start", items[0], a, started=0.0))
    view.event(runner.Event("start", items[1], b, started=0.0))
    assert counts() == f"0/{total} stages · 2 running · {total - 2} waiting · 0 failed"
    a.done = True  # as the runner marks it before it tells the view
    view.event(runner.Event("end", items[0], a, _ended(a), 0.0))
    failed = dataclasses.replace(_ended(b), status="failed", exit_code=1, error="boom")
    view.event(runner.Event("end", items[1], b, failed, 0.0))
    # b failed: its later stages will not run, so they are not waiting
    assert counts() == f"1/{total} stages · 0 running · {2 * stages - 1} waiting · 1 failed"
