"""Scoring with the field's tools: pyannote.metrics for DER, MeetEval for cpWER.

Everything here is plumbing into those libraries (tested in
``tests/benchmarks/test_real_speech_score.py`` on a hand-made reference with a known
DER); no error rate is computed by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The headline setting (pyannote.audio's own benchmark tables), and the older papers' one.
COLLARS = (0.0, 0.25)


def load_rttm(text: str) -> dict[str, Any]:
    """RTTM lines to one pyannote ``Annotation`` per file (uri)."""
    from pyannote.core import Annotation, Segment

    out: dict[str, Any] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        uri, start, duration, speaker = fields[1], float(fields[3]), float(fields[4]), fields[7]
        annotation = out.setdefault(uri, Annotation(uri=uri))
        annotation[Segment(start, start + duration), len(annotation)] = speaker
    return out


def annotation(turns: Iterable[dict[str, Any]], uri: str) -> Any:
    """Speaker turns ({start, end, speaker}) as a pyannote ``Annotation``."""
    from pyannote.core import Annotation, Segment

    out = Annotation(uri=uri)
    for i, t in enumerate(turns):
        if t["end"] > t["start"]:
            out[Segment(t["start"], t["end"]), i] = t["speaker"]
    return out


def overlap_floor(reference: Any) -> float:
    """The least DER a one-speaker-at-a-time diarizer can reach: overlapped speech's share.

    Where n speakers talk at once such a diarizer misses at least n - 1 of them, so the
    floor is (speaker time - speech time) / speaker time.
    """
    total = sum(
        reference.label_timeline(label).support().duration() for label in reference.labels()
    )
    speech = reference.get_timeline().support().duration()
    return (total - speech) / total if total else 0.0


@dataclass
class Scorer:
    """DER over a set of files, at each collar, with its missed / false alarm / confusion split."""

    collars: Sequence[float] = COLLARS
    metrics: dict[float, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from pyannote.metrics.diarization import DiarizationErrorRate

        self.metrics = {c: DiarizationErrorRate(collar=c, skip_overlap=False) for c in self.collars}

    def add(self, reference: Any, hypothesis: Any, uem: Any) -> dict[str, Any]:
        """Score one file (accumulated into the set); its figures at every collar."""
        out: dict[str, Any] = {}
        for collar, metric in self.metrics.items():
            parts = metric(reference, hypothesis, uem=uem, detailed=True)
            out[key(collar)] = split(parts)
        return out

    def total(self) -> dict[str, Any]:
        """The set's figures at every collar: total errors over total reference speech."""
        out: dict[str, Any] = {}
        for collar, metric in self.metrics.items():
            parts = {name: metric[name] for name in COMPONENTS}
            out[key(collar)] = {**split(parts), "der": abs(metric)}
        return out


COMPONENTS = ("missed detection", "false alarm", "confusion", "total")


def key(collar: float) -> str:
    """The JSON key of a collar's figures."""
    return f"collar_{collar:g}"


def split(parts: dict[str, float]) -> dict[str, float]:
    """DER and its three parts, each as a share of the reference speech."""
    total = parts["total"] or 1.0
    missed, false_alarm, confusion = (
        parts["missed detection"],
        parts["false alarm"],
        parts["confusion"],
    )
    return {
        "der": (missed + false_alarm + confusion) / total,
        "missed": missed / total,
        "false_alarm": false_alarm / total,
        "confusion": confusion / total,
        "speech_s": parts["total"],
    }


def cp_wer(reference: dict[str, str], hypothesis: dict[str, str]) -> dict[str, Any]:
    """MeetEval's concatenated minimum-permutation WER of per-speaker transcripts."""
    from meeteval.wer import cp_word_error_rate

    result = cp_word_error_rate(reference, hypothesis)
    return {
        "cpwer": float(result.error_rate),
        "errors": int(result.errors),
        "length": int(result.length),
        "insertions": int(result.insertions),
        "deletions": int(result.deletions),
        "substitutions": int(result.substitutions),
        "missed_speaker": int(result.missed_speaker),
        "falarm_speaker": int(result.falarm_speaker),
    }
