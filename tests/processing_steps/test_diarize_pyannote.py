"""diarize_pyannote: no model configured is invalid input; output goes through the shared writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from signal4.processing_steps import diarize_pyannote
from signal4.processing_steps.diarize_pyannote import STEP
from signal4.stepkit import diarization
from tests.helpers import speech
from tests.helpers.steps import db, run_step, store


def test_no_model_says_what_to_configure() -> None:
    speech.converted("c", speech.silence(2.0))
    code, result = run_step(STEP, "--content", "c")
    assert code == 2
    assert (
        "SIGNAL4_PYANNOTE_MODEL" in result["error"] and "SIGNAL4_PYANNOTE_TOKEN" in result["error"]
    )
    assert db().stage_status("c", "diarize") == "invalid_input"


def test_model_folder_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    speech.converted("c", speech.silence(2.0))
    monkeypatch.setenv("SIGNAL4_PYANNOTE_MODEL", str(tmp_path))
    code, result = run_step(STEP, "--content", "c")
    assert code == 2 and "config.yaml missing" in result["error"]


def test_shared_writer_is_the_one_used() -> None:
    assert diarize_pyannote.diarization is diarization
    speech.converted("w", speech.silence(2.0))
    doc = diarization.write(store(), "w", [{"start": 0.5, "end": 1.5, "speaker": "S1"}], "pyannote")
    assert diarization.read(store(), "w") == doc
    assert store().path("w", "diarization.rttm").read_text() == (
        "SPEAKER w 1 0.500 1.000 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
    )


def test_a_local_pipeline_runs_and_its_turns_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The success path, end to end, with a real pyannote Pipeline loaded from config.yaml."""
    (tmp_path / "config.yaml").write_text(
        "pipeline:\n"
        "  name: tests.helpers.pyannote_pipeline.FixedTurns\n"
        "  params:\n"
        '    turns: [[0.5, 4.0, "B"], [4.5, 9.0, "A"], [9.5, 12.0, "B"]]\n'
    )
    monkeypatch.setenv("SIGNAL4_PYANNOTE_MODEL", str(tmp_path))
    speech.converted("p", speech.sample_frames())
    code, result = run_step(STEP, "--content", "p")
    assert code == 0, result
    assert (result["speakers"], result["turns"]) == (2, 3)
    doc = diarization.read(store(), "p")
    assert doc is not None and doc["method"] == "pyannote"
    assert doc["turns"] == [
        {"start": 0.5, "end": 4.0, "speaker": "SPEAKER_00"},
        {"start": 4.5, "end": 9.0, "speaker": "SPEAKER_01"},
        {"start": 9.5, "end": 12.0, "speaker": "SPEAKER_00"},
    ]
    assert db().stage_status("p", "diarize") == "done"
