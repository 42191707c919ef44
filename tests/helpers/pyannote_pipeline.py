"""A pyannote.audio pipeline with no model, for tests of the diarize_pyannote step.

It is a real :class:`pyannote.audio.Pipeline`, loaded by ``Pipeline.from_pretrained`` from
a real ``config.yaml`` and called the way the step calls any pipeline; it only answers
with the turns its config gives instead of running models (the hub, where the real
pipelines' weights live, is out of reach here). Import it in the pyannote env only.
"""

from __future__ import annotations

from typing import Any

from pyannote.audio import Pipeline
from pyannote.core import Annotation, Segment


class FixedTurns(Pipeline):  # type: ignore[misc]
    """Answers every file with the same speaker turns: ``[[start, end, label], ...]``."""

    def __init__(self, turns: Any = (), token: Any = None, cache_dir: Any = None) -> None:
        super().__init__()
        self.turns = [(float(s), float(e), str(label)) for s, e, label in turns]
        self.seen: list[dict[str, Any]] = []

    def apply(self, file: dict[str, Any], num_speakers: int | None = None) -> Annotation:
        self.seen.append({"sample_rate": file["sample_rate"], "samples": file["waveform"].shape})
        annotation = Annotation(uri=file.get("uri"))
        for start, end, label in self.turns:
            annotation[Segment(start, end)] = label
        return annotation
