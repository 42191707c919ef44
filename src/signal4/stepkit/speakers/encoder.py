"""Resemblyzer's GE2E voice encoder on onnxruntime: 256-d voice embeddings of utterances.

The ONNX model (``models/voice_encoder.onnx``, made by ``tools/export_speaker_model.py``)
maps mel frames [batch, frames, 40] to L2-normalised embeddings [batch, 256]. An utterance
is cut into partials of 160 frames (1.6 s) as ``VoiceEncoder.embed_utterance`` cuts it
(:func:`partial_slices`), and its embedding is the L2-normalised mean of its partials'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signal4.stepkit.speakers import mel, runtime

PARTIAL_FRAMES = 160  # 1.6 s
EMBEDDING = 256
#: embed_utterance's defaults: partials per second, and how much of a last partial must be
#: audio for it to count.
RATE = 1.3
MIN_COVERAGE = 0.75
#: Partials per onnxruntime call: large enough to use every thread, small enough for memory.
BATCH = 128


def partial_slices(
    n_samples: int, rate: float = RATE, min_coverage: float = MIN_COVERAGE
) -> list[tuple[int, int]]:
    """Mel frame ranges [start, stop) of an utterance's partials (compute_partial_slices).

    There is always at least one; the last may reach past the audio, which is then
    zero-padded to ``stop * 160`` samples before its mel spectrogram is taken.
    """
    if not 0 < min_coverage <= 1:
        raise ValueError("min_coverage must be in (0, 1]")
    n_frames = -(-(n_samples + 1) // mel.HOP)  # ceil((n_samples + 1) / hop)
    frame_step = round((mel.RATE / rate) / mel.HOP)
    if not 0 < frame_step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} is out of range")
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    slices = [(i, i + PARTIAL_FRAMES) for i in range(0, steps, frame_step)]
    start, stop = slices[-1]
    coverage = (n_samples - start * mel.HOP) / ((stop - start) * mel.HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices.pop()
    return slices


def utterance_mels(wav: Any) -> Any:
    """The [partials, 160, 40] mel frames of one utterance's partials."""
    import numpy as np

    slices = partial_slices(len(wav))
    need = slices[-1][1] * mel.HOP
    if need >= len(wav):
        wav = np.pad(wav, (0, need - len(wav)))
    frames = mel.mel_spectrogram(wav)
    return np.stack([frames[a:b] for a, b in slices])


def normalise(rows: Any) -> Any:
    """Each row divided by its L2 norm (a zero row stays zero)."""
    import numpy as np

    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


class VoiceEncoder:
    """The ONNX GE2E encoder in one onnxruntime session."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or runtime.cpu_budget()
        self.session = runtime.session(runtime.ENCODER_MODEL, self.threads)

    def embed_partials(self, mels: Any) -> Any:
        """Embeddings [n, 256] of mel partials [n, frames, 40]."""
        import numpy as np

        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if len(mels) == 0:
            return np.zeros((0, EMBEDDING), dtype=np.float32)
        out = [
            self.session.run(["embeds"], {"mels": mels[i : i + BATCH]})[0]
            for i in range(0, len(mels), BATCH)
        ]
        return np.concatenate(out)

    def embed_utterances(self, wavs: Sequence[Any]) -> Any:
        """One embedding per waveform [n, 256], as ``embed_utterance`` gives it, batched."""
        import numpy as np

        if not wavs:
            return np.zeros((0, EMBEDDING), dtype=np.float32)
        per = [utterance_mels(np.asarray(w, dtype=np.float32)) for w in wavs]
        partials = self.embed_partials(np.concatenate(per))
        owner = np.repeat(np.arange(len(per)), [len(p) for p in per])
        sums = np.zeros((len(per), EMBEDDING), dtype=np.float64)
        np.add.at(sums, owner, partials)
        return normalise(sums / np.bincount(owner)[:, None]).astype(np.float32)

    def embed_utterance(self, wav: Any) -> Any:
        """The embedding [256] of one waveform."""
        return self.embed_utterances([wav])[0]
