"""The torch-free diarizer's parts against what the original libraries give.

The references in tests/fixtures/speakers were made once by tools/export_speaker_model.py
with Resemblyzer (torch), the official silero-vad and scikit-learn; none of them is in the
diarize env, where these tests run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import sys
import wave
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

try:
    import numpy as np
except ImportError:  # collected, then deselected, in the sessions of the other envs
    np = None

from signal4.stepkit.speakers import cluster, encoder, mel, runtime, vad
from signal4.stepkit.speakers.diarizer import Diarizer, Settings, pieces, turns_of, windows
from signal4.stepkit.step import InvalidInput

pytestmark = pytest.mark.env("diarize")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "speakers"
SAMPLE = ROOT / "samples" / "two_speakers"
RATE = 16_000


@pytest.fixture(scope="module")
def ref() -> Any:
    return np.load(FIXTURES / "references.npz")


@pytest.fixture(scope="module")
def sample() -> Any:
    with wave.open(str(SAMPLE / "audio.wav"), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def voice_encoder() -> encoder.VoiceEncoder:
    return encoder.VoiceEncoder(threads=1)


def truth() -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = json.loads((SAMPLE / "truth.json").read_text())["turns"]
    return turns


# --- the model files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "digest"),
    [(runtime.VAD_MODEL, runtime.VAD_SHA256), (runtime.ENCODER_MODEL, runtime.ENCODER_SHA256)],
)
def test_model_files_are_the_recorded_ones(path: Path, digest: str) -> None:
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    notice = (runtime.MODELS / "NOTICE").read_text()
    assert path.name in notice and digest in notice
    for licence in ("LICENSE.silero-vad", "LICENSE.resemblyzer"):
        assert (runtime.MODELS / licence).is_file()


# --- threads -------------------------------------------------------------------------------


def test_thread_budget_comes_from_the_setting_or_the_cpus_we_may_use() -> None:
    assert runtime.cpu_budget({"SIGNAL4_THREADS": "3"}) == 3
    may_use = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert runtime.cpu_budget({}) == may_use
    assert runtime.cpu_budget({"SIGNAL4_THREADS": " "}) == may_use
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(InvalidInput, match="SIGNAL4_THREADS"):
            runtime.cpu_budget({"SIGNAL4_THREADS": bad})


def test_the_encoder_session_uses_the_budget() -> None:
    assert encoder.VoiceEncoder(threads=3).session.get_session_options().intra_op_num_threads == 3


# --- mel front end -------------------------------------------------------------------------


def test_mel_front_end_matches_resemblyzer(ref: Any) -> None:
    ours = mel.mel_spectrogram(ref["signal"])
    theirs = ref["mel"]
    assert ours.shape == theirs.shape == (1 + len(ref["signal"]) // 160, 40)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * float(theirs.max()))


def test_mel_filterbank_is_slaney() -> None:
    fb = mel.filterbank()
    assert fb.shape == (40, 201) and (fb >= 0).all()
    # Slaney norm: each triangle has area 1 in Hz (height 2 / width); the peaks rise
    # and the bands widen above 1 kHz
    assert np.all(np.diff(fb.argmax(axis=1)) >= 0)
    assert mel.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert mel.mel_to_hz(mel.hz_to_mel(np.array([100.0, 2500.0, 8000.0]))) == pytest.approx(
        [100.0, 2500.0, 8000.0]
    )


# --- encoder -------------------------------------------------------------------------------


def test_partial_slices_match_resemblyzer(ref: Any) -> None:
    for n, bounds in zip(ref["slice_lengths"], ref["slice_bounds"], strict=True):
        expected = [(int(a), int(b)) for a, b in bounds if a >= 0]
        assert encoder.partial_slices(int(n)) == expected, n


def test_embedding_matches_resemblyzer(voice_encoder: encoder.VoiceEncoder, ref: Any) -> None:
    turn = ref["turn_embedding"]
    with wave.open(str(SAMPLE / "audio.wav"), "rb") as w:
        pcm = w.readframes(w.getnframes())
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    ours = voice_encoder.embed_utterance(audio[int(1.2 * RATE) : int(3.2 * RATE)])
    assert ours.shape == (256,)
    assert float(np.linalg.norm(ours)) == pytest.approx(1.0, abs=1e-5)
    assert float(ours @ turn) >= 0.9999


def test_window_embeddings_match_resemblyzer(
    voice_encoder: encoder.VoiceEncoder, ref: Any, sample: Any
) -> None:
    bounds = ref["window_bounds"]
    ours = voice_encoder.embed_utterances([sample[a : max(b, a + 1600)] for a, b in bounds])
    assert np.min(np.sum(ours * ref["window_embeddings"], axis=1)) >= 0.9999


def test_two_voices_are_further_apart_than_one_voice_twice(
    voice_encoder: encoder.VoiceEncoder, sample: Any
) -> None:
    """The sample's speaker A twice (turns 1 and 3), against A and B (turns 1 and 2)."""
    turns = truth()
    clips = [sample[int(t["start"] * RATE) : int(t["end"] * RATE)] for t in turns]
    a1, b1, a2, b2 = voice_encoder.embed_utterances(clips)
    same = min(float(a1 @ a2), float(b1 @ b2))
    different = max(float(a1 @ b1), float(a1 @ b2), float(a2 @ b1), float(a2 @ b2))
    assert [t["speaker"] for t in turns] == ["A", "B", "A", "B"]
    assert same > different + 0.1, (same, different)


def test_no_partials_no_embeddings(voice_encoder: encoder.VoiceEncoder) -> None:
    assert voice_encoder.embed_utterances([]).shape == (0, 256)
    assert voice_encoder.embed_partials(np.zeros((0, 160, 40))).shape == (0, 256)


# --- VAD -----------------------------------------------------------------------------------


def test_vad_probabilities_and_regions_match_silero(ref: Any, sample: Any) -> None:
    model = vad.SileroVAD()
    probs = model.probabilities(sample)
    np.testing.assert_allclose(probs, ref["vad_probs"], atol=1e-5)
    assert model.regions(sample) == [tuple(map(int, r)) for r in ref["vad_regions"]]
    assert model.probabilities(np.zeros(0, dtype=np.float32)).shape == (0,)


def test_vad_blocks_give_the_same_probabilities_as_one_block(sample: Any) -> None:
    blocks = list(vad.frame_blocks(sample[:40_000], max_frames=7))
    whole = np.concatenate(list(vad.frame_blocks(sample[:40_000])))
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    assert whole.shape == (-(-40_000 // 512), 576)


@pytest.mark.parametrize(
    "case",
    json.loads((FIXTURES / "vad_cases.json").read_text()),
    ids=lambda case: case["name"],
)
def test_speech_timestamps_match_silero(case: dict[str, Any]) -> None:
    found = vad.speech_timestamps(case["probs"], case["n_samples"], vad.Options(**case["options"]))
    assert [list(r) for r in found] == case["expected"]


# --- clustering ----------------------------------------------------------------------------


def test_scipy_clustering_makes_scikit_learns_choices_on_the_sample(ref: Any) -> None:
    """Same partitions for k = 2..8, same silhouettes, same k, on the sample's windows."""
    x = ref["window_embeddings"]
    partitions = cluster.linkage_partitions(x, range(2, 9))
    distances = cluster.cosine_distances(x)
    for i, k in enumerate(range(2, 9)):
        theirs = cluster.canonical(ref["sklearn_labels"][i])
        np.testing.assert_array_equal(partitions[k], theirs)
        assert cluster.silhouette(distances, partitions[k]) == pytest.approx(
            float(ref["sklearn_silhouettes"][i]), abs=1e-5
        )
    k, labels, scores = cluster.choose_k(x, 8)
    best = 2 + int(np.argmax(ref["sklearn_silhouettes"]))
    assert k == best == 2
    np.testing.assert_array_equal(labels, partitions[2])
    assert set(scores) == set(range(2, 9))


def test_silhouette_edge_cases() -> None:
    d = cluster.cosine_distances(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]))
    assert cluster.silhouette(d, np.array([0, 0, 1, 1])) > 0.8
    assert cluster.silhouette(d, np.array([0, 0, 0, 0])) == -1.0  # one cluster
    assert cluster.silhouette(d, np.array([0, 1, 2, 3])) == -1.0  # every point alone
    # a point alone in its cluster scores 0 (as scikit-learn has it)
    one_alone = cluster.silhouette(d, np.array([0, 0, 1, 2]))
    assert -1.0 < one_alone < 1.0


def test_canonical_numbers_by_first_appearance() -> None:
    assert cluster.canonical(np.array([5, 5, 2, 9, 2])).tolist() == [0, 0, 1, 2, 1]


def test_viterbi_pays_for_a_change_inside_a_region_only() -> None:
    scores = np.array([[0.9, 0.1], [0.4, 0.5], [0.9, 0.1], [0.1, 0.9]])
    same_region = np.array([0, 0, 0, 0])
    assert cluster.viterbi(scores, same_region, 0.0).tolist() == [0, 1, 0, 1]
    assert cluster.viterbi(scores, same_region, 0.2).tolist() == [0, 0, 0, 1]
    assert cluster.viterbi(scores, np.array([0, 1, 2, 3]), 5.0).tolist() == [0, 1, 0, 1]
    assert cluster.viterbi(np.zeros((0, 2)), np.zeros(0), 0.1).shape == (0,)


def _voices(centres: list[list[float]], per: int, noise: float, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    rows = [np.array(c) + noise * rng.standard_normal((per, len(c))) for c in centres]
    return np.abs(np.concatenate(rows))


def test_a_close_pair_of_voices_is_split_off_a_far_one() -> None:
    """Voices B and C are close, A far: the silhouette alone says two speakers."""
    dim = 16
    a = [1.0] * 4 + [0.0] * 12
    b = [0.0] * 4 + [1.0] * 8 + [0.0] * 4
    c = [0.0] * 4 + [1.0] * 7 + [0.0] + [1.0] + [0.0] * 3  # cosine 0.875 with b
    assert len(a) == len(b) == len(c) == dim
    x = _voices([a, b, c], per=12, noise=0.1)
    k_silhouette, _, _ = cluster.choose_k(x, 8)
    labels = cluster.speakers(x, np.full(len(x), 3.0), max_k=8)
    assert k_silhouette == 2
    assert labels.max() + 1 == 3
    truth_labels = np.repeat([0, 1, 2], 12)
    for j in range(3):  # each found speaker is one true voice
        assert len(set(truth_labels[labels == j])) == 1
    # a fixed count is taken as it is; too little speech is not a speaker
    assert cluster.speakers(x, np.full(len(x), 3.0), max_k=8, fixed_k=2).max() + 1 == 2
    assert cluster.speakers(x, np.full(len(x), 3.0), max_k=2).max() + 1 == 2


def test_one_voice_is_not_split() -> None:
    x = _voices([[1.0] * 8 + [0.2] * 8], per=30, noise=0.15)
    assert cluster.speakers(x, np.full(len(x), 3.0), max_k=8).max() == 0
    assert cluster.speakers(x[:2], np.ones(2), max_k=8).tolist() == [0, 0]
    assert cluster.speakers(x[:0], np.ones(0), max_k=8).shape == (0,)


def test_small_clusters_are_absorbed() -> None:
    xn = cluster.normalise(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]]))
    weights = np.array([5.0, 5.0, 5.0, 0.5])
    labels = cluster.absorb_small(xn, np.array([0, 0, 1, 2]), weights, min_weight=1.0)
    assert labels.tolist() == [0, 0, 1, 1]


# --- the diarizer --------------------------------------------------------------------------


def test_windows_and_pieces_cover_each_region() -> None:
    s = Settings()
    regions = [(0, 8_000), (16_000, 16_000 + 9 * RATE)]
    wins = windows(regions, s)
    assert wins[0] == (0, 8_000, 0)
    assert wins[-1][1] == regions[1][1] and {w[2] for w in wins} == {0, 1}
    parts = pieces(regions, wins, s)
    assert [p[:2] for p in parts][:1] == [(0, 8_000)]
    assert len(parts) == 1 + 3  # 9 s in pieces of at most 4 s
    assert sorted(i for p in parts for i in p[2]) == list(range(len(wins)))
    turns = turns_of(wins[:3], [0, 0, 1])
    assert turns[0]["start"] == 0
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(turns))


def test_the_diarizer_on_the_sample(sample: Any) -> None:
    turns = Diarizer(threads=1)(sample)
    assert {t["speaker"] for t in turns} == {"SPEAKER_00", "SPEAKER_01"}
    assert Diarizer(threads=1)(np.zeros(RATE, dtype=np.float32)) == []
    one = Diarizer(threads=1)(sample, speakers=1)
    assert {t["speaker"] for t in one} == {"SPEAKER_00"}


def _conversations() -> ModuleType:
    path = ROOT / "benchmarks" / "conversations.py"
    spec = importlib.util.spec_from_file_location("conversations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["conversations"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="the three-voice conversation is spoken by espeak-ng and resampled by sox "
    "(apt-get install -y espeak-ng sox)",
)
def test_three_voices_two_of_them_male(tmp_path: Path) -> None:
    """The issue's case: two male voices and a female one, six turns with 0.6 s gaps."""
    conversations = _conversations()
    clip = next(c for c in conversations.CLIPS if c.name == "three_mmf")
    truth_doc = conversations.write_clip(clip, tmp_path / "clip")
    with wave.open(str(tmp_path / "clip" / "audio.wav"), "rb") as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    turns = Diarizer(threads=1)(audio)
    assert len({t["speaker"] for t in turns}) == 3
    mapping: dict[str, str] = {}
    for t in truth_doc["turns"]:  # every turn is one found speaker, one voice each
        inner = [
            d["speaker"]
            for d in turns
            if d["start"] < t["end"] - 0.3 and d["end"] > t["start"] + 0.3
        ]
        assert len(set(inner)) == 1, (t, turns)
        assert mapping.setdefault(t["speaker"], inner[0]) == inner[0]
    assert len(set(mapping.values())) == 3
