"""The body of inv pipeline (signal4.commands.pipeline): the plan it prints, its live view,
its refusals, and (slow) whole runs on the bundled sample through the real envs.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signal4.commands import pipeline as pipeline_cmd
from signal4.commands.pipeline import progress_text
from signal4.envs import manifest
from signal4.errors import UsageError
from signal4.run import dispatch, runner
from signal4.run import plan as plan_mod
from tests.conftest import ROOT


def _printed(plan: plan_mod.Plan, how: str) -> str:
    # rich is a dev-env thing: imported here, not when a step env collects this file
    from rich.console import Console

    out = io.StringIO()
    pipeline_cmd._print_plan(Console(file=out, width=200), plan, [("bad://x", "no")], how)
    return out.getvalue()


def test_the_dry_run_names_how_it_runs_each_stage_to_run_and_why() -> None:
    m = manifest.load(ROOT)
    stages = [plan_mod.Stage(t, []) for t in m.pipeline_tasks()]
    stages[0].done = True
    stages[1].rerun("env changed (faster-whisper 1.1.1 → 1.2.1)")
    item = plan_mod.Item("a.wav", "a.wav", stages, content="file-a-1")
    text = _printed(plan_mod.Plan([item]), "on warm workers")
    assert "plan: 1 item(s), on warm workers" in text
    assert "convert" in text.split("│")[-2]  # done before
    assert "  file-a-1 transcribe: env changed (faster-whisper 1.1.1 → 1.2.1)" in text
    assert "file-a-1 diarize:" not in text  # not done before: it runs, with nothing to explain
    assert "cannot plan bad://x: no" in text


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


def _inv(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=900,  # a failure guard only
    )


@pytest.mark.parametrize(
    ("flag", "given"), [("--jobs", {"jobs": 2}), ("--sync", {"sync_first": True})]
)
def test_flags_of_the_local_runner_are_refused_in_one_line(
    flag: str, given: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a UsageError, which inv prints as one line with exit 2 (test_missing_file_is_exit_2)
    monkeypatch.chdir(ROOT)  # where inv runs it
    with pytest.raises(UsageError) as err:
        pipeline_cmd.main([], workers=True, **given)
    assert err.value.code == 2 and "\n" not in str(err.value)
    assert str(err.value).startswith(f"{flag} does not apply to --workers")


def test_missing_file_is_exit_2(isolated_data: Path) -> None:
    got = _inv("--source", "no-such-file.wav", data=isolated_data)
    assert got.returncode == 2 and "no such file" in got.stderr


@pytest.mark.slow
def test_pipeline_on_the_sample_then_resumed(isolated_data: Path) -> None:
    # --sync: on a fresh clone the envs do not exist yet (the README's main job syncs them).
    done = _inv("--sync", data=isolated_data)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = next((isolated_data / "content").iterdir())
    assert str(folder / "transcript.vtt") in done.stdout
    doc = json.loads(gzip.decompress((folder / "transcript.json.gz").read_bytes()))
    assert len(doc["speakers"]) == 2
    text = {
        s["speaker"]: " ".join(x["text"] for x in doc["segments"] if x["speaker"] == s["speaker"])
        for s in doc["segments"]
    }
    assert "weather" in text[doc["segments"][0]["speaker"]].lower()
    assert any("wall" in t.lower() for sp, t in text.items() if sp != doc["segments"][0]["speaker"])
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")

    kept = sorted(p.name for p in folder.iterdir())
    again = _inv("--source", str(ROOT / plan_mod.SAMPLE), data=isolated_data)
    assert again.returncode == 0, again.stdout + again.stderr
    # a finished item is skipped whole: convert too, so audio.wav and chunks do not come back
    assert "0 stage(s) to run, 5 done before" in again.stdout
    assert sorted(p.name for p in folder.iterdir()) == kept
    assert "audio.wav" not in kept


@pytest.mark.slow
def test_two_pipelines_on_one_file_take_turns(
    synced: manifest.Manifest, isolated_data: Path, tmp_path: Path
) -> None:
    import shutil

    from signal4.content.state import StateDB

    src = tmp_path / "same.wav"
    shutil.copy(ROOT / plan_mod.SAMPLE, src)
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(isolated_data), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "invoke", "-r", str(ROOT), "pipeline", "--source", str(src)]
    runs = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=600)[0].decode() for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    [folder] = list((isolated_data / "content").iterdir())
    item = StateDB(f"sqlite:///{isolated_data / 'state.db'}").get(folder.name)
    assert item is not None
    assert {s.stage: s.status for s in item.steps} == dict.fromkeys(
        ("convert", "transcribe", "diarize", "stitch", "compress"), "done"
    )
    assert (folder / "transcript.json.gz").is_file()
    assert not (folder / "chunks.json").exists()  # compressed away, not written back
