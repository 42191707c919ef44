"""Enrol a real speaker from one AMI clip, find the same person in another (diarize env).

The clips are the benchmark's (tests/fixtures/real_speech, AMI, CC BY 4.0: see
benchmarks/real_speech/NOTICE.md): MEE009 talks in dev00 and in dev01. Each clip goes
through the diarize step (in process), then the registry as the runner uses it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from signal4.content.state import StateDB
from signal4.processing_steps.diarize import STEP
from signal4.stepkit import diarization
from signal4.voices import registry
from tests.helpers import speech
from tests.helpers.steps import run_step, store

pytestmark = [pytest.mark.env("diarize"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "tests" / "fixtures" / "real_speech"
REFERENCE = ROOT / "benchmarks" / "real_speech" / "reference.rttm"


def _reference(clip: str) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in REFERENCE.read_text(encoding="utf-8").splitlines()]
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows if r[1] == clip]


def _who(doc: dict[str, object], label: str, clip: str) -> str:
    """The reference speaker who talks most during ``label``'s turns."""
    heard: Counter[str] = Counter()
    for t in doc["turns"]:  # type: ignore[attr-defined]
        if t["speaker"] == label:
            for start, end, who in _reference(clip):
                heard[who] += max(0.0, min(end, t["end"]) - max(start, t["start"]))
    return heard.most_common(1)[0][0]


def _diarized(clip: str) -> dict[str, object]:
    import wave

    with wave.open(str(CLIPS / f"{clip}.wav"), "rb") as w:
        pcm = w.readframes(w.getnframes())
    speech.converted(clip, pcm)
    code, result = run_step(STEP, "--content", clip)
    assert code == 0, result
    doc = diarization.read(store(), clip)
    assert doc is not None
    return doc


def test_a_speaker_enrolled_from_one_clip_is_named_in_another(tmp_path: Path) -> None:
    registry.forget_cache()
    voices = StateDB(f"sqlite:///{tmp_path / 'voices.db'}")
    root = store().root
    docs = {clip: _diarized(clip) for clip in ("dev00", "dev01", "trn06")}
    for clip in docs:
        voices.register(clip, kind="file")
        registry.register_item(voices, root, clip)
    # MEE009: the speaker of dev00 whose turns hold most of MEE009's speech
    label = next(
        v.speaker
        for v in sorted(voices.voices("dev00"), key=lambda v: -v.seconds)
        if _who(docs["dev00"], v.speaker, "dev00") == "MEE009"
    )
    change = registry.enroll(voices, root, "MEE009", "dev00", label)
    assert "dev01" in change.items
    named = registry.write_speakers(voices, root, ["dev01", "trn06"])
    assert len(named["dev01"]) == 1 and named["trn06"] == []
    assert _who(docs["dev01"], named["dev01"][0], "dev01") == "MEE009"
