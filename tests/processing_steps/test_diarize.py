"""diarize on the two-speaker sample: the step, its options, its outputs and its imports.

The models run for real (Silero VAD and the GE2E encoder on onnxruntime); the parts are
tested on their own in test_diarize_speakers.py.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from typing import Any

import pytest

from signal4.processing_steps.diarize import METHOD, STEP
from signal4.stepkit import diarization
from tests.helpers import probe, speech
from tests.helpers.steps import db, run_step, store


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One automatic diarize run of the sample, shared by the tests that read it."""
    mp = pytest.MonkeyPatch()
    data = tmp_path_factory.mktemp("diarize") / "data"
    mp.setenv("SIGNAL4_DATA_DIR", str(data))
    try:
        folder = speech.converted("sample", speech.sample_frames())
        code, result = run_step(STEP, "--content", "sample")
        doc = json.loads((folder / "diarization.json").read_text())
        rttm = (folder / "diarization.rttm").read_text()
        done = db().is_done("sample", "diarize")
    finally:
        mp.undo()
    return {"code": code, "result": result, "doc": doc, "rttm": rttm, "done": done}


def test_turns_are_within_half_a_second_of_the_truth(sample_run: dict[str, Any]) -> None:
    """Every true turn has a found turn of its speaker starting and ending within 0.5 s."""
    doc = sample_run["doc"]
    truth = speech.truth()["turns"]
    names: dict[str, str] = {}
    for t in truth:
        match = [
            d
            for d in doc["turns"]
            if abs(d["start"] - t["start"]) <= 0.5 and abs(d["end"] - t["end"]) <= 0.5
        ]
        assert len(match) == 1, (t, doc["turns"])
        assert names.setdefault(t["speaker"], match[0]["speaker"]) == match[0]["speaker"]
    assert len(set(names.values())) == 2
    assert len(doc["turns"]) == len(truth)


def test_two_speakers_found_on_the_sample(sample_run: dict[str, Any]) -> None:
    assert sample_run["code"] == 0, sample_run["result"]
    assert sample_run["done"]
    doc = sample_run["doc"]
    assert len(doc["speakers"]) == 2
    # each true turn's midpoint is covered by a turn; speakers alternate like the truth
    truth = speech.truth()["turns"]
    found = []
    for t in truth:
        mid = (t["start"] + t["end"]) / 2
        covering = [d for d in doc["turns"] if d["start"] <= mid <= d["end"]]
        assert covering, (t, doc["turns"])
        found.append(covering[0]["speaker"])
    assert found[0] == found[2] and found[1] == found[3] and found[0] != found[1]
    assert found[:2] == ["SPEAKER_00", "SPEAKER_01"]  # named in the order they first speak
    lines = sample_run["rttm"].splitlines()
    assert len(lines) == len(doc["turns"]) and lines[0].startswith("SPEAKER sample 1 ")


def test_speakers_are_named_in_order_of_first_turn() -> None:
    turns = [
        {"start": 4.0, "end": 5.0, "speaker": "0"},
        {"start": 0.0, "end": 2.0, "speaker": "1"},
        {"start": 2.5, "end": 3.0, "speaker": "0"},
        {"start": 6.0, "end": 7.0, "speaker": "7"},
    ]
    assert [t["speaker"] for t in diarization.relabel(turns)] == [
        "SPEAKER_01",
        "SPEAKER_00",
        "SPEAKER_01",
        "SPEAKER_02",
    ]


def test_one_voice_is_one_speaker() -> None:
    """Speaker A's two turns of the sample, with a pause between: one speaker."""
    frames = speech.sample_frames()
    a = [t for t in speech.truth()["turns"] if t["speaker"] == "A"]
    pieces = [frames[2 * int(t["start"] * 16000) : 2 * int(t["end"] * 16000)] for t in a]
    speech.converted("solo", pieces[0] + speech.silence(0.6) + pieces[1])
    code, result = run_step(STEP, "--content", "solo")
    assert code == 0 and result["speakers"] == 1, result


def test_a_bad_thread_count_is_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    speech.converted("threads", speech.silence(2.0))
    monkeypatch.setenv("SIGNAL4_THREADS", "zero")
    code, result = run_step(STEP, "--content", "threads")
    assert code == 2 and "SIGNAL4_THREADS" in result["error"], result


def test_silence_has_zero_speakers() -> None:
    folder = speech.converted("quiet", speech.silence(3.0))
    code, result = run_step(STEP, "--content", "quiet")
    assert code == 0 and result["speakers"] == 0, result
    assert json.loads((folder / "diarization.json").read_text())["turns"] == []


def test_speakers_option_and_its_check() -> None:
    speech.converted("one", speech.sample_frames())
    code, result = run_step(STEP, "--content", "one", "--speakers", "1")
    assert code == 0 and result["speakers"] == 1, result
    code, result = run_step(STEP, "--content", "one", "--speakers", "0", "--rewrite")
    assert code == 2 and "--speakers" in result["error"]


def test_a_failed_rewrite_of_a_compressed_item_keeps_diarize_done() -> None:
    """diarize --rewrite after cleanup_and_compress (no audio.wav, diarization.json.gz)."""
    folder = speech.converted("finished", speech.silence(3.0))
    code, result = run_step(STEP, "--content", "finished")
    assert code == 0, result
    # what cleanup_and_compress leaves: the JSON gzipped, audio.wav and chunks/ removed,
    # audio.opus in their place (this env has no encoder; the step only looks for the file)
    doc = json.loads((folder / "diarization.json").read_text())
    store().write_json(folder / "diarization.json.gz", doc, compress=True)
    (folder / "diarization.json").unlink()
    (folder / "audio.wav").rename(folder / "audio.opus")
    shutil.rmtree(folder / "chunks")
    db().mark("finished", "compress", "done")

    code, result = run_step(STEP, "--content", "finished", "--rewrite")
    assert code == 2 and "--rewrite first" in result["error"], result
    row = next(r for r in db().get("finished").steps if r.stage == "diarize")  # type: ignore[union-attr]
    assert (row.status, row.error) == ("done", None)
    assert row.info["method"] == METHOD  # the successful run's record stays
    assert row.info["last_attempt"]["status"] == "invalid_input"
    assert "was compressed" in row.info["last_attempt"]["error"]
    code, result = run_step(STEP, "--content", "finished")  # and it is still done
    assert (code, result["status"]) == (0, "skipped")


def test_unconverted_content_is_invalid_input() -> None:
    code, result = run_step(STEP, "--content", "nothing")
    assert code == 2 and "'nothing' has no folder in the store" in result["error"]
    assert not store().folder("nothing").exists()


def test_ready_probe_covers_a_real_run_on_the_sample() -> None:
    speech.converted("probe", speech.sample_frames())
    real = probe.assert_probe_covers("diarize", "--content", "probe")
    assert {"numpy", "onnxruntime", "scipy"} <= set(real)
    # torch-free: none of the old stack is loaded, or even installed
    assert not {"torch", "resemblyzer", "sklearn", "librosa", "numba"} & set(real)
    for gone in ("torch", "resemblyzer", "sklearn", "librosa", "silero_vad"):
        assert importlib.util.find_spec(gone) is None, gone
    assert not {"sqlalchemy", "pydantic"} & set(real)  # the runner records the state
    assert store().path("probe", "diarization.json").is_file()
