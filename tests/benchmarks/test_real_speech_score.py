"""The benchmark's plumbing into pyannote.metrics and MeetEval, on hand-made cases.

These run in the ``bench`` venv (``nox -s scorers``), the only one with the scorers. The
module under test is imported when a test runs, not when this file is collected: in the
stitch env, pysbd installs a top-level ``benchmarks`` package of its own that hides ours.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

pytestmark = pytest.mark.env("bench")


@pytest.fixture
def score() -> ModuleType:
    return importlib.import_module("benchmarks.real_speech.score")


# 10 s of reference: A talks 0-4 s, B 3-8 s (one second of overlap), silence 8-10 s.
REFERENCE = (
    "SPEAKER clip 1 0.000 4.000 <NA> <NA> A <NA> <NA>\n"
    "SPEAKER clip 1 3.000 5.000 <NA> <NA> B <NA> <NA>\n"
)


def test_der_and_its_parts_on_a_known_case(score: ModuleType) -> None:
    from pyannote.core import Segment

    ref = score.load_rttm(REFERENCE)["clip"]
    # one speaker at a time: x 0-3.5 s, y 3.5-6 s, x 6-9 s. Against A 0-4 and B 3-8 (9 s of
    # speech), with the best mapping x = A, y = B: missed 1 s (one voice of the overlap),
    # confusion 2 s (6-8 s: B heard as x), false alarm 1 s (8-9 s): DER = 4 / 9.
    hyp = score.annotation(
        [
            {"start": 0.0, "end": 3.5, "speaker": "x"},
            {"start": 3.5, "end": 6.0, "speaker": "y"},
            {"start": 6.0, "end": 9.0, "speaker": "x"},
        ],
        "clip",
    )
    scorer = score.Scorer()
    figures = scorer.add(ref, hyp, Segment(0.0, 10.0))
    c0 = figures["collar_0"]
    assert c0["speech_s"] == pytest.approx(9.0)
    assert c0["missed"] == pytest.approx(1.0 / 9)
    assert c0["false_alarm"] == pytest.approx(1.0 / 9)
    assert c0["confusion"] == pytest.approx(2.0 / 9)
    assert c0["der"] == pytest.approx(4.0 / 9)
    # a 0.25 s collar forgives 0.25 s either side of every reference boundary
    assert figures["collar_0.25"]["der"] < c0["der"]
    assert scorer.total()["collar_0"]["der"] == pytest.approx(4.0 / 9)


def test_the_set_total_weighs_clips_by_their_speech(score: ModuleType) -> None:
    from pyannote.core import Segment

    ref = score.load_rttm(REFERENCE)["clip"]
    perfect = score.annotation(
        [{"start": 0.0, "end": 4.0, "speaker": "x"}, {"start": 3.0, "end": 8.0, "speaker": "y"}],
        "clip",
    )
    empty = score.annotation([], "other")
    other = score.load_rttm("SPEAKER other 1 0.0 1.0 <NA> <NA> C <NA> <NA>\n")["other"]
    scorer = score.Scorer()
    assert scorer.add(ref, perfect, Segment(0.0, 10.0))["collar_0"]["der"] == 0.0
    assert scorer.add(other, empty, Segment(0.0, 10.0))["collar_0"]["der"] == 1.0
    # total errors (1 s missed) over total speech (9 + 1 s), not the mean of 0 and 1
    assert scorer.total()["collar_0"]["der"] == pytest.approx(0.1)


def test_overlap_floor(score: ModuleType) -> None:
    ref = score.load_rttm(REFERENCE)["clip"]
    assert score.overlap_floor(ref) == pytest.approx(1.0 / 9)


def test_cp_wer_finds_the_best_speaker_permutation(score: ModuleType) -> None:
    result = score.cp_wer(
        {"A": "hello there how are you", "B": "fine thanks"},
        {"s1": "fine thanks", "s0": "hello there how are"},
    )
    assert result["errors"] == 1 and result["length"] == 7
    assert result["cpwer"] == pytest.approx(1 / 7)
