"""pyannote's segmentation-3.0 on onnxruntime: who of up to three local speakers talks when.

The model (``models/segmentation.onnx``, made by ``tools/export_diarization_models.py``)
reads 10 s of 16 kHz audio and gives 589 frames, one every 270 samples (16.9 ms), each a
log-probability over seven "powerset" classes: nobody, one of three local speakers, or
one of the three pairs. A chunk's local speakers are numbered per chunk: speaker 1 of one
chunk need not be speaker 1 of the next; :mod:`.diarizer` matches them across chunks.

Chunks start every ``step`` frames of 270 samples, so every chunk's frames fall on one
global frame grid: frame ``j`` of the recording is centred at ``j * 270 + 495`` samples.
"""

from __future__ import annotations

from typing import Any

from signal4.stepkit.speakers import runtime

RATE = 16_000
CHUNK = 10 * RATE
FRAMES = 589  # per chunk
FRAME_STEP = 270  # samples between frames
FRAME_CENTRE = 495  # samples from a frame's start to the centre of its receptive field
LOCAL_SPEAKERS = 3
#: The powerset classes' local speakers, in the model's order.
CLASSES = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
#: Chunks per onnxruntime call.
BATCH = 8


def mapping() -> Any:
    """The [7, 3] matrix from powerset classes to local speakers."""
    import numpy as np

    out = np.zeros((len(CLASSES), LOCAL_SPEAKERS), dtype=np.float32)
    for i, members in enumerate(CLASSES):
        out[i, list(members)] = 1.0
    return out


def chunk_starts(n_samples: int, step_frames: int) -> list[int]:
    """First sample of each chunk: every ``step_frames`` frames, the last reaching the end."""
    step = step_frames * FRAME_STEP
    starts = list(range(0, max(n_samples - CHUNK, 0) + 1, step))
    if starts[-1] + CHUNK < n_samples:
        starts.append(starts[-1] + step)
    return starts


def total_frames(n_samples: int) -> int:
    """Global frames needed to cover ``n_samples`` (at least one chunk's worth)."""
    return max(FRAMES, -(-(n_samples - FRAME_CENTRE) // FRAME_STEP) + 1)


def frame_time(frames: Any) -> Any:
    """The time (s) of the centre of global frame(s) ``frames``."""
    return (frames * FRAME_STEP + FRAME_CENTRE) / RATE


class Segmenter:
    """The ONNX segmentation model in one onnxruntime session."""

    def __init__(self, threads: int) -> None:
        self.session = runtime.session(runtime.SEGMENTATION_MODEL, threads)

    def __call__(self, audio: Any, starts: list[int]) -> Any:
        """Log-probabilities [chunks, 589, 7] of the chunks at ``starts`` (zero-padded)."""
        import numpy as np

        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        out = []
        for i in range(0, len(starts), BATCH):
            group = starts[i : i + BATCH]
            batch = np.zeros((len(group), 1, CHUNK), dtype=np.float32)
            for row, start in enumerate(group):
                piece = audio[start : start + CHUNK]
                batch[row, 0, : len(piece)] = piece
            out.append(self.session.run(["log_probs"], {"waveforms": batch})[0])
        return np.concatenate(out) if out else np.zeros((0, FRAMES, len(CLASSES)), np.float32)
