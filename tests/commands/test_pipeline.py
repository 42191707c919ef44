"""The body of inv pipeline without the envs: the dry run's plan table and its reasons."""

from __future__ import annotations

import io

from signal4.envs import manifest
from signal4.run import plan as plan_mod
from tests.conftest import ROOT


def _printed(plan: plan_mod.Plan, how: str) -> str:
    # rich and the command layer are dev-env things: imported here, not when a step env
    # collects this file
    from rich.console import Console

    from signal4.commands import pipeline as pipeline_cmd

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
