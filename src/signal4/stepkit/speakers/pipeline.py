"""The diarizer: local segmentation, voice prints of each stretch of speech, clustering, overlap.

1. **Local speakers.** pyannote's segmentation-3.0 (:mod:`.segmentation`) runs on 10 s
   chunks every ``step`` seconds; each frame of a chunk gives the probability that each of
   up to three local speakers talks (two at most at once). It is the speech detection and
   the overlap detection in one: a frame is speech when the chunks covering it give it a
   mean probability of speech of at least ``onset``, and two talk when their mean
   probability of a pair is at least ``onset`` too.
2. **Voice prints.** The CAM++ encoder's frame half runs once over the recording
   (:mod:`.embedding`). Each local speaker's speech in each chunk is cut into units of at
   most ``piece`` seconds; a unit's embedding is CAM++'s pooling over its frames where that
   speaker talks alone (over all its frames when that is less than ``min_embed``).
3. **Who is who.** Units with at least ``min_embed`` seconds of speech of their own, from
   chunks that do not overlap (so every moment is heard once), are clustered:
   average-linkage on cosine distance, cut at ``threshold``; clusters with less than
   ``min_speaker`` seconds are folded into their nearest neighbour. Every unit then goes
   to its nearest centroid, except that units of one chunk heard at the same time from
   two local speakers go to two different speakers (the best one-to-one matching).
4. **Turns.** Each unit's local activity is added to its speaker's track; at each frame
   the one or two strongest speakers talk. The exclusive track keeps only the strongest
   (one voice at a time, for readers that want no overlap).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from signal4.stepkit.speakers import embedding as emb
from signal4.stepkit.speakers import fbank as fb
from signal4.stepkit.speakers import segmentation as sg
from signal4.stepkit.speakers.embedding import SpeakerEncoder, normalise
from signal4.stepkit.speakers.segmentation import Segmenter

RATE = 16_000
FRAME_SECONDS = sg.FRAME_STEP / RATE


@dataclass(frozen=True)
class Settings:
    """The diarizer's knobs (seconds unless named otherwise)."""

    #: between the starts of two segmentation chunks (10 s long): every moment is heard twice
    step: float = 5.0
    #: a frame is speech (and a local speaker talks) from this probability on
    onset: float = 0.35
    #: a local speaker's speech is cut into units of at most this long, each embedded
    piece: float = 2.0
    #: a unit takes part in the clustering with at least this much speech of its own
    min_embed: float = 0.5
    #: cosine distance at which average-linkage clustering stops merging
    threshold: float = 0.6
    #: a speaker needs at least this much clustered speech; smaller clusters are folded in
    min_speaker: float = 1.0
    max_speakers: int = 8


@dataclass
class Result:
    """What the diarizer found: turns, exclusive turns, each speaker's voice print."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    exclusive: list[dict[str, Any]] = field(default_factory=list)
    #: label -> {"seconds": speech the embedding rests on, "embedding": unit vector}
    voiceprints: dict[str, dict[str, Any]] = field(default_factory=dict)


def overlap_add(values: Any, offsets: list[int], total: int) -> tuple[Any, Any]:
    """Sum of per-chunk [chunks, frames, ...] values on the global grid, and the coverage."""
    import numpy as np

    out = np.zeros((total, *values.shape[2:]), dtype=np.float64)
    cover = np.zeros(total, dtype=np.float64)
    for c, offset in enumerate(offsets):
        out[offset : offset + values.shape[1]] += values[c]
        cover[offset : offset + values.shape[1]] += 1
    return out, cover


def runs(active: Any) -> list[tuple[int, int]]:
    """[start, end) index runs where a boolean array is true."""
    import numpy as np

    padded = np.concatenate(([False], np.asarray(active, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def turns_from(tracks: Any, labels: list[str]) -> list[dict[str, Any]]:
    """Turns from binary [frames, speakers] tracks: frame middles as boundaries, in time order."""
    out = []
    for k, label in enumerate(labels):
        for a, b in runs(tracks[:, k]):
            out.append(
                {
                    "start": float(sg.frame_time(a)),
                    "end": float(sg.frame_time(b)),
                    "speaker": label,
                }
            )
    return sorted(out, key=lambda t: (t["start"], t["end"]))


def cluster(x: Any, weights: Any, s: Settings, fixed_k: int | None, max_k: int) -> Any:
    """Cluster labels of unit embeddings ``x`` (weighted by seconds): AHC, small ones folded."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(x)
    if n < 2:
        return np.zeros(n, dtype=int)
    tree = linkage(x.astype(np.float64), method="average", metric="cosine")
    if fixed_k is not None:
        labels = fcluster(tree, min(fixed_k, n), criterion="maxclust") - 1
    else:
        labels = fcluster(tree, s.threshold, criterion="distance") - 1
        while labels.max() + 1 > max_k:
            labels = fcluster(tree, labels.max(), criterion="maxclust") - 1
    labels = _canonical(labels)
    if fixed_k is None:
        labels = _fold_small(x, labels, weights, s.min_speaker)
    return labels


def _canonical(labels: Any) -> Any:
    """Labels renumbered 0, 1, ... in the order they first appear."""
    import numpy as np

    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(int)


def centroids(x: Any, labels: Any, weights: Any) -> Any:
    """Unit-length weighted mean embedding of each cluster ([k, dim])."""
    import numpy as np

    k = int(labels.max()) + 1
    onehot = np.eye(k)[labels] * weights[:, None]
    return normalise(onehot.T @ x)


def _fold_small(x: Any, labels: Any, weights: Any, least: float) -> Any:
    """Fold clusters with less than ``least`` seconds into their members' nearest other cluster."""
    import numpy as np

    labels = labels.copy()
    while labels.max() > 0:
        totals = np.bincount(labels, weights=weights)
        small = int(np.argmin(totals))
        if totals[small] >= least:
            break
        scores = x[labels == small] @ centroids(x, labels, weights).T
        scores[:, small] = -np.inf
        labels[labels == small] = np.argmax(scores, axis=1)
        labels = _canonical(labels)
    return labels


def assign(embeds: Any, units: list[Unit], centres: Any) -> Any:
    """Each unit's speaker: its nearest centroid, but two units heard at once are two people.

    Units of one chunk that overlap in time and come from different local speakers are
    matched to centroids one-to-one (the best of every matching: at most three units, so
    no need for scipy.optimize, whose import alone costs a step's start-up 0.3 s or more)
    when there are enough centroids.
    """
    import numpy as np

    scores = embeds @ centres.T
    out = np.argmax(scores, axis=1)
    if len(centres) < 2:
        return out
    by_chunk: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        by_chunk.setdefault(u.chunk, []).append(i)
    for rows in by_chunk.values():
        for group in _concurrent(rows, units):
            if len(group) < 2 or len(group) > len(centres):
                continue
            out[np.asarray(group)] = _best_matching(scores[group])
    return out


def _best_matching(scores: Any) -> Any:
    """The one-to-one column of each row [n, k] (n <= k, n small) with the largest total."""
    import numpy as np

    rows = np.arange(len(scores))
    options = np.array(list(itertools.permutations(range(scores.shape[1]), len(scores))))
    return options[np.argmax(scores[rows, options].sum(axis=1))]


def _concurrent(rows: list[int], units: list[Unit]) -> list[list[int]]:
    """Groups of units (of one chunk) linked by overlapping in time with another local speaker."""
    parent = {i: i for i in rows}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in rows:
        for j in rows:
            a, b = units[i], units[j]
            if i < j and a.local != b.local and a.first < b.last and b.first < a.last:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in rows:
        groups.setdefault(root(i), []).append(i)
    # a group with two units of one local speaker cannot be matched one-to-one: keep pairs
    return [g for g in groups.values() if len({units[i].local for i in g}) == len(g)]


@dataclass
class Analysis:
    """What the models say about one recording, before any speaker is decided."""

    offsets: list[int]  # first global frame of each chunk
    total: int  # global frames
    soft: Any  # [chunks, 589, 3] each local speaker's probability of talking
    speech: Any  # [total] mean probability that someone talks
    overlap: Any  # [total] mean probability that two talk
    units: list[Unit]  # stretches of one local speaker's speech, each with its embedding
    embeds: Any  # [units, 192] unit embeddings


@dataclass(frozen=True)
class Unit:
    """A stretch of one local speaker's speech in one chunk: what is clustered."""

    chunk: int
    local: int
    first: int  # chunk frames [first, last)
    last: int
    seconds: float  # of it, where this speaker talks alone
    features: frozenset[int]  # the feature frames its embedding was pooled over


class Diarizer:
    """The models, loaded once; :meth:`__call__` diarizes one recording."""

    def __init__(self, threads: int, settings: Settings | None = None) -> None:
        """Load both models; with two threads or more they run side by side.

        The segmentation model is a chain of small recurrent steps that a second thread
        barely speeds up, while the encoder's convolutions use every thread they get: so the
        segmenter runs on one thread while the encoder runs on all of them (its threads do
        not spin, so they take a core only when there is work), which keeps every core busy
        until both are done.
        """
        self.settings = settings or Settings()
        self.threads = threads
        self.segmenter = Segmenter(1)
        self.encoder = SpeakerEncoder(threads)

    def __call__(
        self, audio: Any, speakers: int | None = None, max_speakers: int | None = None
    ) -> Result:
        """Diarize 16 kHz mono float32 ``audio``."""
        analysis = self.analyse(audio)
        if analysis is None:
            return Result()
        return decide(analysis, self.settings, speakers, max_speakers)

    def analyse(self, audio: Any) -> Analysis | None:
        """Run both models over ``audio`` (None when it is too short to hold speech)."""
        import numpy as np

        s = self.settings
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if len(audio) < fb.FRAME:
            return None
        step_frames = max(1, round(s.step * RATE / sg.FRAME_STEP))
        starts = sg.chunk_starts(len(audio), step_frames)
        offsets = [start // sg.FRAME_STEP for start in starts]
        total = offsets[-1] + sg.FRAMES
        feats = fb.fbank(audio, normalise=False)
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1) as pool:
                encoded = pool.submit(self.encoder.frames, feats)
                probs = np.exp(self.segmenter(audio, starts))
                features = encoded.result()
        else:
            probs = np.exp(self.segmenter(audio, starts))
            features = self.encoder.frames(feats)
        soft = probs @ sg.mapping()
        pairs = np.array([len(c) == 2 for c in sg.CLASSES])
        both = np.stack([1.0 - probs[..., 0], probs[..., pairs].sum(axis=-1)], axis=-1)
        summed, cover = overlap_add(both, offsets, total)
        inside = sg.frame_time(np.arange(total)) * RATE < len(audio)
        mean = summed / np.maximum(cover, 1)[:, None] * inside[:, None]
        units, pooled = self._units(soft >= s.onset, offsets, features)
        return Analysis(
            offsets, total, soft, mean[:, 0], mean[:, 1], units, self.encoder.embed(pooled)
        )

    def _units(
        self, active: Any, offsets: list[int], features: Any
    ) -> tuple[list[Unit], list[Any]]:
        """Every local speaker's speech cut into units of at most ``piece`` s, and their stats."""
        import numpy as np

        s = self.settings
        alone = active.sum(axis=-1) == 1
        # feature frame t is centred at 320 t + 200 samples: the global frame it falls in
        centres = np.arange(features.shape[1]) * emb.FEATURE_HOP + emb.FEATURE_CENTRE
        global_of = np.rint((centres - sg.FRAME_CENTRE) / sg.FRAME_STEP).astype(int)
        longest = max(1, round(s.piece / FRAME_SECONDS))
        units, pooled = [], []
        for c, offset in enumerate(offsets):
            inside = np.flatnonzero((global_of >= offset) & (global_of < offset + sg.FRAMES))
            frame_of = global_of[inside] - offset
            for local in range(sg.LOCAL_SPEAKERS):
                for a, b in runs(active[c, :, local]):
                    parts = -(-(b - a) // longest)
                    edges = np.linspace(a, b, parts + 1).round().astype(int)
                    for first, last in itertools.pairwise(edges.tolist()):
                        mine = np.zeros(sg.FRAMES, dtype=bool)
                        mine[first:last] = True
                        clean = mine & alone[c]
                        own = float(clean.sum()) * FRAME_SECONDS
                        mask = clean if own >= s.min_embed else mine
                        picked = inside[mask[frame_of]]
                        if len(picked) < 2:
                            continue
                        units.append(Unit(c, local, first, last, own, frozenset(picked.tolist())))
                        pooled.append(emb.stats(features, picked))
        return units, pooled


def decide(
    a: Analysis, s: Settings, speakers: int | None = None, max_speakers: int | None = None
) -> Result:
    """Speakers, turns and voice prints from an analysis."""
    import numpy as np

    talking = a.speech >= s.onset
    count = talking.astype(int) + (talking & (a.overlap >= s.onset))
    if not talking.any() or not a.units:
        return Result()
    # chunks overlap: the clustering hears every moment once, from every stride-th chunk
    stride = max(1, round(sg.CHUNK / RATE / s.step))
    seconds = np.array([u.seconds for u in a.units])
    once = np.array([u.chunk % stride == 0 for u in a.units])
    reliable = once & (seconds >= s.min_embed)
    if not reliable.any():
        reliable = seconds >= seconds.max()
    max_k = max_speakers or s.max_speakers
    labels = np.zeros(len(a.units), dtype=int)
    labels[reliable] = cluster(a.embeds[reliable], seconds[reliable], s, speakers, max_k)
    centres = centroids(a.embeds[reliable], labels[reliable], seconds[reliable])
    labels = assign(a.embeds, a.units, centres)
    k = len(centres)

    # each unit's local activity onto its speaker's global track
    per_chunk = np.zeros((len(a.offsets), sg.FRAMES, k), dtype=np.float32)
    for u, j in zip(a.units, labels, strict=True):
        piece = per_chunk[u.chunk, u.first : u.last, j]
        np.maximum(piece, a.soft[u.chunk, u.first : u.last, u.local], out=piece)
    strength, cover = overlap_add(per_chunk, a.offsets, a.total)
    strength /= np.maximum(cover, 1)[:, None]
    ranking = np.argsort(-strength, axis=1, kind="stable")
    tracks = np.zeros((a.total, k), dtype=bool)
    exclusive = np.zeros((a.total, k), dtype=bool)
    frames = np.arange(a.total)
    for n in range(1, min(k, int(count.max())) + 1):
        on = count >= n
        tracks[frames[on], ranking[on, n - 1]] = True
    exclusive[frames[talking], ranking[talking, 0]] = True

    names = [f"SPEAKER_{j:02d}" for j in range(k)]
    prints = {}
    for j, name in enumerate(names):
        mine = np.flatnonzero(labels == j)
        if not tracks[:, j].any() or not len(mine):
            continue
        weight = np.maximum(seconds[mine], FRAME_SECONDS)
        centre = normalise((a.embeds[mine] * weight[:, None]).sum(axis=0))
        rests_on = frozenset().union(*(a.units[i].features for i in mine))
        prints[name] = {
            "seconds": round(len(rests_on) * emb.FEATURE_HOP / RATE, 2),
            "embedding": [round(float(v), 6) for v in centre],
        }
    return Result(turns_from(tracks, names), turns_from(exclusive, names), prints)
