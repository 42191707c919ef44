"""diarize on real meeting speech: the AMI excerpts of benchmarks/real_speech, as 16-bit WAVs.

``tests/fixtures/real_speech/*.wav`` are the benchmark's clips (its FLACs, decoded; the
diarize env has no FLAC decoder). AMI is CC BY 4.0, see benchmarks/real_speech/NOTICE.md.
The reference turns come from the benchmark's reference.rttm.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import wave
from pathlib import Path
from typing import Any

import pytest

try:
    import numpy as np
except ImportError:  # collected, then deselected, in the sessions of the other envs
    np = None

from signal4.processing_steps.diarize import STEP
from signal4.stepkit.speakers import embedding, fbank, runtime, segmentation
from tests.helpers import speech
from tests.helpers.steps import run_step

pytestmark = pytest.mark.env("diarize")

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "tests" / "fixtures" / "real_speech"
REFERENCE = ROOT / "benchmarks" / "real_speech" / "reference.rttm"
FBANK = ROOT / "tests" / "fixtures" / "speakers" / "kaldi_fbank.npz"
NAMES = sorted(p.stem for p in CLIPS.glob("*.wav"))


def reference(clip: str) -> list[tuple[float, float, str]]:
    """The clip's true turns (start, end, speaker)."""
    out = []
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        f = line.split()
        if f[1] == clip:
            out.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return out


def diarized(clip: str) -> dict[str, Any]:
    """The step's diarization.json of a real clip (content id = the clip's name)."""
    with wave.open(str(CLIPS / f"{clip}.wav"), "rb") as w:
        folder = speech.converted(clip, w.readframes(w.getnframes()))
    code, result = run_step(STEP, "--content", clip)
    assert code == 0, result
    doc: dict[str, Any] = json.loads((folder / "diarization.json").read_text())
    doc["rttm"] = (folder / "diarization.rttm").read_text()
    return doc


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One step run per real clip, shared by the tests that read them."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SIGNAL4_DATA_DIR", str(tmp_path_factory.mktemp("real") / "data"))
    try:
        return {clip: diarized(clip) for clip in NAMES}
    finally:
        mp.undo()


def test_the_fixtures_are_the_nine_clips() -> None:
    assert [f"dev0{i}" for i in (0, 1)] + [f"trn0{i}" for i in (1, 2, 3, 4, 5, 6, 9)] == NAMES
    assert {clip for clip in NAMES if reference(clip)} == set(NAMES)


def test_speech_is_found_in_every_real_clip(runs: dict[str, dict[str, Any]]) -> None:
    """The old diarizer heard nothing at all in trn01 (its VAD was too strict for meetings)."""
    for clip, doc in runs.items():
        assert doc["speakers"] and doc["turns"], clip


@pytest.mark.parametrize(("clip", "count"), [("dev00", 2), ("trn06", 3)])
def test_the_right_speaker_count(runs: dict[str, dict[str, Any]], clip: str, count: int) -> None:
    assert len({s for _, _, s in reference(clip)}) == count
    assert len(runs[clip]["speakers"]) == count


def test_two_voices_at_once_give_overlapping_turns(runs: dict[str, dict[str, Any]]) -> None:
    """trn09: MEE094 talks over FEE083 for a third of the clip; the RTTM says so."""
    turns = runs["trn09"]["turns"]
    overlaps = [
        (max(a["start"], b["start"]), min(a["end"], b["end"]))
        for i, a in enumerate(turns)
        for b in turns[i + 1 :]
        if a["speaker"] != b["speaker"] and b["start"] < a["end"]
    ]
    assert sum(end - start for start, end in overlaps) > 2.0, turns
    # and they fall where the reference has two speakers at once
    ref = reference("trn09")

    def talking(t: float) -> int:
        return sum(start <= t < end for start, end, _ in ref)

    inside = [talking((start + end) / 2) >= 2 for start, end in overlaps]
    assert sum(inside) >= len(inside) / 2, (overlaps, ref)
    # the RTTM holds the same overlapping turns
    lines = runs["trn09"]["rttm"].splitlines()
    assert len(lines) == len(turns)


def test_exclusive_turns_never_overlap(runs: dict[str, dict[str, Any]]) -> None:
    for clip, doc in runs.items():
        exclusive = doc["exclusive_turns"]
        assert exclusive, clip
        for a, b in itertools.pairwise(exclusive):
            assert b["start"] >= a["end"] - 1e-6, (clip, a, b)
        assert {t["speaker"] for t in exclusive} <= set(doc["speakers"])


def test_every_speaker_has_a_voice_print(runs: dict[str, dict[str, Any]]) -> None:
    model = runtime.EMBEDDING_ID
    both = runtime.FRAMES_MODEL.read_bytes() + runtime.HEAD_MODEL.read_bytes()
    assert model["digest"] == "sha256:" + hashlib.sha256(both).hexdigest()
    for clip, doc in runs.items():
        assert doc["embedding_model"] == model, clip
        assert sorted(doc["voiceprints"]) == doc["speakers"], clip
        for print_ in doc["voiceprints"].values():
            assert len(print_["embedding"]) == embedding.DIMENSION
            assert math.isclose(math.hypot(*print_["embedding"]), 1.0, abs_tol=1e-4)
            assert 0 < print_["seconds"] <= 30.0
    # dev00's two men are told apart by their prints
    a, b = (np.array(p["embedding"]) for p in runs["dev00"]["voiceprints"].values())
    assert float(a @ b) < 0.5


def test_model_files_are_the_recorded_ones() -> None:
    notice = (runtime.MODELS / "NOTICE").read_text()
    for path, digest in (
        (runtime.SEGMENTATION_MODEL, runtime.SEGMENTATION_SHA256),
        (runtime.FRAMES_MODEL, runtime.FRAMES_SHA256),
        (runtime.HEAD_MODEL, runtime.HEAD_SHA256),
    ):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert path.name in notice and digest in notice
    for licence in ("LICENSE.pyannote", "LICENSE.campplus"):
        assert (runtime.MODELS / licence).is_file()


def test_fbank_matches_torchaudio_kaldi() -> None:
    ref = np.load(FBANK)
    ours = fbank.fbank(ref["signal"], normalise=False)
    assert ours.shape == ref["fbank"].shape
    np.testing.assert_allclose(ours, ref["fbank"], atol=2e-3)
    normalised = fbank.fbank(ref["signal"])
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-4)
    assert fbank.fbank(np.zeros(399, dtype=np.float32)).shape == (0, fbank.BANDS)


def test_chunks_cover_the_recording_on_one_frame_grid() -> None:
    step = 148  # frames: 5 s
    starts = segmentation.chunk_starts(31 * 16_000, step)
    assert starts[0] == 0 and all(s % segmentation.FRAME_STEP == 0 for s in starts)
    assert starts[-1] + segmentation.CHUNK >= 31 * 16_000
    assert segmentation.chunk_starts(5 * 16_000, step) == [0]


def test_pooling_is_the_models_own_over_all_frames() -> None:
    """The numpy pooling plus the head give the whole model's embedding (checked by the export
    against torch); here: the pooling's statistics are means then unbiased deviations."""
    frames = np.arange(12, dtype=np.float32).reshape(2, 6)
    stats = embedding.stats(frames, np.array([0, 2, 4]))
    np.testing.assert_allclose(stats, [2, 8, 2, 2])
    with pytest.raises(ValueError, match="two frames"):
        embedding.stats(frames, np.array([1]))
    assert embedding.pieces(2_150) == [(0, 1000), (1000, 2150)]
    assert embedding.pieces(2_500) == [(0, 1000), (1000, 2000), (2000, 2500)]


def test_two_voices_heard_at_once_go_to_two_speakers() -> None:
    from signal4.stepkit.speakers.pipeline import _best_matching

    # each unit is nearest to speaker 0, but together they are best as 1 and 0
    scores = np.array([[0.9, 0.8, 0.1], [0.85, 0.1, 0.2]])
    assert _best_matching(scores).tolist() == [1, 0]
    assert _best_matching(np.array([[0.2, 0.7]])).tolist() == [1]
