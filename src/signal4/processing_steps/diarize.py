"""Who spoke when: silero VAD, Resemblyzer embeddings on sliding windows, clustering."""

from __future__ import annotations

import argparse
import warnings
import wave
from typing import Any

from signal4.run.steprunner import Context, InvalidInput, Step, keeps, number
from signal4.stepkit import diarization

RATE = 16_000
WINDOW = 1.5  # seconds of speech per embedding
HOP = 0.75
MAX_SPEAKERS = 8
#: Below this mean silhouette, one speaker is assumed.
MIN_SILHOUETTE = 0.15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speakers",
        type=number(int, ge=1),
        metavar="N",
        help="the number of speakers (default: automatic)",
    )
    parser.add_argument(
        "--max-speakers",
        type=number(int, ge=1),
        default=MAX_SPEAKERS,
        metavar="N",
        help=f"most speakers to consider (default {MAX_SPEAKERS})",
    )


def ready() -> None:
    import numpy  # noqa: F401

    _quiet_imports()
    import sklearn.cluster
    import sklearn.metrics  # noqa: F401

    # librosa loads its submodules on first use; Resemblyzer's mel spectrogram pulls in
    # librosa.feature, and with it numba, soundfile, soxr and audioread. A real run pays
    # for them, so the probe must too.
    from librosa.feature import melspectrogram  # noqa: F401

    import signal4.content.settings
    import signal4.content.state  # noqa: F401


def choose_k(embeddings: Any, max_k: int) -> tuple[int, Any]:
    """Pick the speaker count by silhouette score; return (k, labels)."""
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    n = len(embeddings)
    best: tuple[float, int, Any] = (MIN_SILHOUETTE, 1, np.zeros(n, dtype=int))
    for k in range(2, min(max_k, n - 1) + 1):
        labels = AgglomerativeClustering(
            n_clusters=k, metric="cosine", linkage="average"
        ).fit_predict(embeddings)
        score = float(silhouette_score(embeddings, labels, metric="cosine"))
        if score > best[0]:
            best = (score, k, labels)
    return best[1], best[2]


def _quiet_imports() -> tuple[Any, Any, Any, Any, Any]:
    """Import the models' packages, hiding their own deprecation noise (not ours to fix)."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        import torch
        from resemblyzer import VoiceEncoder
        from silero_vad import get_speech_timestamps, load_silero_vad

        return torch, VoiceEncoder, get_speech_timestamps, load_silero_vad, warnings


def diarize(wav_path: str, speakers: int | None, max_k: int) -> list[dict[str, Any]]:
    """Return speaker turns (start, end, speaker) of a 16 kHz mono WAV."""
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering

    torch, VoiceEncoder, get_speech_timestamps, load_vad, _ = _quiet_imports()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load, inside silero-vad
        vad = load_vad()

    torch.set_num_threads(2)
    with wave.open(wav_path, "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise InvalidInput("audio.wav is not 16 kHz mono 16-bit; run convert again")
        pcm = w.readframes(w.getnframes())
    audio = torch.from_numpy(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)
    regions = get_speech_timestamps(audio, vad, sampling_rate=RATE, return_seconds=True)
    if not regions:
        return []
    wav = audio.numpy().astype(np.float32)
    windows: list[tuple[float, float]] = []
    for r in regions:
        start, end = float(r["start"]), float(r["end"])
        t = start
        while True:
            w_end = min(t + WINDOW, end)
            windows.append((t, w_end))
            if w_end >= end:
                break
            t += HOP
    encoder = VoiceEncoder("cpu", verbose=False)
    embeds = np.stack(
        [
            encoder.embed_utterance(wav[int(s * RATE) : max(int(e * RATE), int(s * RATE) + 1600)])
            for s, e in windows
        ]
    )
    if speakers is not None:
        k = min(speakers, len(windows))
        labels = (
            np.zeros(len(windows), dtype=int)
            if k <= 1
            else AgglomerativeClustering(
                n_clusters=k, metric="cosine", linkage="average"
            ).fit_predict(embeds)
        )
    else:
        _, labels = choose_k(embeds, max_k)
    # each window speaks for its centre half-hop either side; turns are then merged
    turns = []
    for (s, e), label in zip(windows, labels, strict=True):
        turns.append({"start": s, "end": e, "speaker": f"SPEAKER_{int(label):02d}"})
    return _resolve_overlaps(turns)


def _resolve_overlaps(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cut overlapping windows at the midpoint of their overlap."""
    out: list[dict[str, Any]] = []
    for t in sorted(turns, key=lambda t: t["start"]):
        if out and t["start"] < out[-1]["end"]:
            mid = (t["start"] + out[-1]["end"]) / 2
            out[-1]["end"] = mid
            t = {**t, "start": mid}
        out.append(dict(t))
    return [t for t in out if t["end"] > t["start"]]


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    cid = options.content
    diarization.require_registered(ctx, cid)
    if options.speakers is not None and options.speakers < 1:
        raise InvalidInput("--speakers must be 1 or more")
    if done := diarization.skipped(ctx, cid, options.rewrite):
        return done
    wav = diarization.audio(ctx, cid)
    turns = diarize(str(wav), options.speakers, options.max_speakers)
    return diarization.finish(ctx, cid, turns, method="silero-resemblyzer")


STEP = Step(
    name="diarize",
    description="Find who spoke when (VAD, voice embeddings, clustering): diarization.json, .rttm.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="diarize",
    outputs_kept=keeps(diarization.JSON_NAME),
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
