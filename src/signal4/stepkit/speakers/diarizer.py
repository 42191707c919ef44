"""The torch-free diarizer: speech regions, voice embeddings, speakers, turns.

1. Silero VAD finds the speech regions (:mod:`.vad`).
2. Each region is cut into windows of 1.5 s every 0.75 s, and each window gets a GE2E
   embedding (:mod:`.encoder`): one 1.6 s partial, as the torch diarizer had it.
3. A speaker rarely changes inside a short speech region, so regions (cut into pieces of
   at most 4 s) are what is clustered: a piece's embedding is the mean of its windows',
   which is steadier than any one window's. Pieces under 1 s are too noisy to vote.
4. :func:`.cluster.speakers` finds the speakers among the pieces, weighted by length.
5. Every window is then labelled along time by :func:`.cluster.viterbi`: its similarity to
   each speaker's centroid, and a cost for changing speaker inside a region; centroids are
   re-estimated from the windows and the pass is run again. A window speaks for its span,
   and overlapping spans are cut at the middle of their overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signal4.stepkit.speakers import cluster
from signal4.stepkit.speakers.encoder import VoiceEncoder
from signal4.stepkit.speakers.vad import Options, SileroVAD

RATE = 16_000


@dataclass(frozen=True)
class Settings:
    """The diarizer's knobs (seconds unless named otherwise)."""

    window: float = 1.5
    hop: float = 0.75
    #: the shortest window embedded as it is (shorter ones are extended to this)
    min_window: float = 0.1
    #: pieces of a region that are clustered: at most this long ...
    max_piece: float = 4.0
    #: ... and only those at least this long take part
    min_piece: float = 1.0
    #: what a change of speaker inside one speech region costs the time smoothing, in
    #: cosine similarity (between regions a change is free)
    switch_cost: float = 0.1
    #: time-smoothing passes (each re-estimates the centroids from the windows' labels)
    passes: int = 2
    max_speakers: int = 8
    vad: Options = field(default_factory=Options)
    rule: cluster.SplitRule = field(default_factory=cluster.SplitRule)


def windows(regions: list[tuple[int, int]], s: Settings) -> list[tuple[int, int, int]]:
    """(start, end, region index) of each window, in samples, in time order."""
    size, hop = int(s.window * RATE), int(s.hop * RATE)
    out = []
    for index, (start, end) in enumerate(regions):
        t = start
        while True:
            w_end = min(t + size, end)
            out.append((t, w_end, index))
            if w_end >= end:
                break
            t += hop
    return out


def pieces(
    regions: list[tuple[int, int]], wins: list[tuple[int, int, int]], s: Settings
) -> list[tuple[int, int, list[int]]]:
    """Each region cut into equal pieces of at most ``max_piece``: (start, end, windows).

    A piece's windows are those whose centre falls in it (at least the nearest one).
    """
    import itertools
    import math

    by_region: dict[int, list[int]] = {}
    for i, (_, _, r) in enumerate(wins):
        by_region.setdefault(r, []).append(i)
    out = []
    for index, (start, end) in enumerate(regions):
        members = by_region.get(index, [])
        count = max(1, math.ceil((end - start) / (s.max_piece * RATE)))
        edges = [start + (end - start) * j / count for j in range(count + 1)]
        centres = {i: (wins[i][0] + wins[i][1]) / 2 for i in members}
        for a, b in itertools.pairwise(edges):
            inside = [i for i in members if a <= centres[i] < b or (b == end and centres[i] == b)]
            if not inside and members:
                inside = [min(members, key=lambda i: abs(centres[i] - (a + b) / 2))]
            out.append((int(a), int(b), inside))
    return out


def turns_of(wins: list[tuple[int, int, int]], labels: Any) -> list[dict[str, Any]]:
    """Speaker turns from labelled windows: overlaps cut at their middle."""
    out: list[dict[str, Any]] = []
    for (start, end, _), label in sorted(zip(wins, labels, strict=True), key=lambda x: x[0][0]):
        turn = {"start": start / RATE, "end": end / RATE, "speaker": f"SPEAKER_{int(label):02d}"}
        if out and turn["start"] < out[-1]["end"]:
            middle = (turn["start"] + out[-1]["end"]) / 2
            out[-1]["end"] = middle
            turn["start"] = middle
        out.append(turn)
    return [t for t in out if t["end"] > t["start"]]


class Diarizer:
    """The models, loaded once; :meth:`__call__` diarizes one recording."""

    def __init__(self, threads: int | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.vad = SileroVAD()
        self.encoder = VoiceEncoder(threads)

    def __call__(
        self, audio: Any, speakers: int | None = None, max_speakers: int | None = None
    ) -> list[dict[str, Any]]:
        """Speaker turns (start, end, speaker; seconds) of 16 kHz mono float32 ``audio``."""
        import numpy as np

        s = self.settings
        max_k = max_speakers or s.max_speakers
        regions = self.vad.regions(audio, s.vad)
        if not regions:
            return []
        wins = windows(regions, s)
        shortest = int(s.min_window * RATE)
        embeds = cluster.normalise(
            self.encoder.embed_utterances([audio[a : max(b, a + shortest)] for a, b, _ in wins])
        )
        parts = pieces(regions, wins, s)
        x = cluster.normalise(np.stack([embeds[m].mean(axis=0) for _, _, m in parts]))
        seconds = np.array([(b - a) / RATE for a, b, _ in parts])
        voting = seconds >= s.min_piece
        if not voting.any():
            voting[:] = True
        labels = cluster.speakers(
            x[voting], seconds[voting], max_k=max_k, fixed_k=speakers, rule=s.rule
        )
        k = int(labels.max()) + 1
        if k == 1:
            return turns_of(wins, np.zeros(len(wins), dtype=int))
        centres = cluster.centroids(x[voting], labels, seconds[voting], k)
        region_of = np.array([r for _, _, r in wins])
        path = np.zeros(len(wins), dtype=int)
        for _ in range(s.passes):
            path = cluster.viterbi(embeds @ centres.T, region_of, s.switch_cost)
            present = np.bincount(path, minlength=k) > 0
            fresh = cluster.centroids(embeds, path, np.ones(len(path)), k)
            centres = np.where(present[:, None], fresh, centres)
        return turns_of(wins, path)
