"""Silero VAD without torch: the official ONNX model and a port of its timestamp rules.

The model is ``silero_vad_16k_sequence.onnx`` from the official ``silero-vad`` 6.2.3 wheel
(MIT, (c) Silero Team), unchanged: the same network as the streaming ``silero_vad.onnx``,
run over a block of 32 ms frames per call instead of one frame per call; its speech
probabilities are bit-identical to the streaming model's. The official package cannot be
a dependency here (it imports torch); this module reimplements its two torch-free parts:

* :meth:`SileroVAD.probabilities` -- ``SileroVADSequence.audio_forward``: 512-sample frames,
  each preceded by the previous frame's last 64 samples, the LSTM state carried across
  blocks;
* :func:`speech_timestamps` -- ``get_speech_timestamps_from_probs``, the state machine
  that turns probabilities into speech regions (thresholds, minimum speech and silence,
  maximum speech length, padding), in samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from signal4.stepkit.speakers import runtime

RATE = 16_000
FRAME = 512  # samples per probability (32 ms)
CONTEXT = 64  # samples of the previous frame in front of each frame
STATE = (1, 1, 128)
MAX_FRAMES = 512  # frames per onnxruntime call (16.4 s)


@dataclass(frozen=True)
class Options:
    """get_speech_timestamps' parameters (its defaults)."""

    threshold: float = 0.5
    min_speech_duration_ms: int = 250
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 100
    speech_pad_ms: int = 30
    neg_threshold: float | None = None
    min_silence_at_max_speech: int = 98
    use_max_poss_sil_at_max_speech: bool = True


def frame_blocks(audio: Any, max_frames: int = MAX_FRAMES) -> Iterator[Any]:
    """Blocks [frames, 64 + 512] of the audio: each frame after its context; zero-padded."""
    import numpy as np

    count = -(-audio.size // FRAME)
    context = np.zeros(CONTEXT, dtype=np.float32)
    for first in range(0, count, max_frames):
        n = min(max_frames, count - first)
        samples = audio[first * FRAME : min(audio.size, (first + n) * FRAME)]
        frames = np.zeros((n, FRAME), dtype=np.float32)
        frames.reshape(-1)[: samples.size] = samples
        contexts = np.empty((n, CONTEXT), dtype=np.float32)
        contexts[0] = context
        contexts[1:] = frames[:-1, -CONTEXT:]
        context = frames[-1, -CONTEXT:].copy()
        yield np.concatenate((contexts, frames), axis=1)


class SileroVAD:
    """Silero VAD's sequence model in one onnxruntime session.

    One thread: the model is a chain of small recurrent steps, and a second thread only
    adds hand-over costs (measured: 0.89 s on one thread, 1.25 s on two, for 310 s of audio).
    """

    def __init__(self) -> None:
        self.session = runtime.session(runtime.VAD_MODEL, threads=1)

    def probabilities(self, audio: Any) -> Any:
        """Speech probability of each 512-sample frame of 16 kHz float32 ``audio``."""
        import numpy as np

        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        h = np.zeros(STATE, dtype=np.float32)
        c = np.zeros(STATE, dtype=np.float32)
        out = []
        for block in frame_blocks(audio):
            probs, h, c = self.session.run(
                ["speech_probs", "hn", "cn"], {"input": block, "h": h, "c": c}
            )
            out.append(probs)
        return np.concatenate(out).reshape(-1) if out else np.zeros(0, dtype=np.float32)

    def regions(self, audio: Any, options: Options | None = None) -> list[tuple[int, int]]:
        """Speech regions of ``audio`` as [start, end) sample offsets."""
        return speech_timestamps(self.probabilities(audio), len(audio), options or Options())


def speech_timestamps(
    probs: Any, n_samples: int, options: Options | None = None
) -> list[tuple[int, int]]:
    """Speech regions [start, end) in samples from per-frame probabilities (16 kHz)."""
    o = options or Options()
    min_speech = RATE * o.min_speech_duration_ms / 1000
    pad = RATE * o.speech_pad_ms / 1000
    max_speech = RATE * o.max_speech_duration_s - FRAME - 2 * pad
    min_silence = RATE * o.min_silence_duration_ms / 1000
    min_silence_at_max = RATE * o.min_silence_at_max_speech / 1000
    neg = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)

    triggered = False
    speeches: list[dict[str, int]] = []
    current: dict[str, int] = {}
    temp_end = prev_end = next_start = 0
    possible_ends: list[tuple[int, int]] = []

    for i, p in enumerate(float(x) for x in probs):
        sample = FRAME * i
        if p >= o.threshold and temp_end:
            silence = sample - temp_end
            if silence > min_silence_at_max:
                possible_ends.append((temp_end, silence))
            temp_end = 0
            if next_start < prev_end:
                next_start = sample
        if p >= o.threshold and not triggered:
            triggered = True
            current["start"] = sample
            continue
        if triggered and sample - current["start"] > max_speech:
            if o.use_max_poss_sil_at_max_speech and possible_ends:
                prev_end, duration = max(possible_ends, key=lambda x: x[1])
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                next_start = prev_end + duration
                if next_start < prev_end + sample:
                    current["start"] = next_start
                else:
                    triggered = False
                prev_end = next_start = temp_end = 0
                possible_ends = []
            elif prev_end:
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    current["start"] = next_start
                prev_end = next_start = temp_end = 0
                possible_ends = []
            else:
                current["end"] = sample
                speeches.append(current)
                current = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                possible_ends = []
                continue
        if p < neg and triggered:
            if not temp_end:
                temp_end = sample
            silence_now = sample - temp_end
            if not o.use_max_poss_sil_at_max_speech and silence_now > min_silence_at_max:
                prev_end = temp_end
            if silence_now < min_silence:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech:
                speeches.append(current)
            current = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            possible_ends = []
            continue

    if current and n_samples - current["start"] > min_speech:
        current["end"] = n_samples
        speeches.append(current)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            gap = speeches[i + 1]["start"] - speech["end"]
            if gap < 2 * pad:
                speech["end"] += int(gap // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - gap // 2))
            else:
                speech["end"] = int(min(n_samples, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(n_samples, speech["end"] + pad))
    return [(s["start"], s["end"]) for s in speeches]
