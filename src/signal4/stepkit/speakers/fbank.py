"""Kaldi's log mel filterbank in numpy: the input of the CAM++ speaker encoder.

CAM++ was trained on ``torchaudio.compliance.kaldi.fbank(wav, num_mel_bins=80, dither=0)``
with Kaldi's other defaults, mean-normalised over the utterance. Spelled out: 16 kHz
audio; frames of 400 samples (25 ms) every 160 (10 ms), the first at sample 0 and none
past the end ("snip edges"); each frame's mean removed, then pre-emphasis 0.97, then
Povey's window (a Hann window to the power 0.85); a 512-point power spectrum; 80
triangular filters on Kaldi's mel scale (1127 ln(1 + f / 700)) from 20 Hz to 8 kHz; the
log of each band's energy (floored at float32's epsilon). Frames come out as rows:
[frames, 80]. ``tools/export_diarization_models.py`` compares it with torchaudio's.
"""

from __future__ import annotations

import functools
from typing import Any

RATE = 16_000
FRAME = 400
HOP = 160
FFT = 512
BANDS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
EPSILON = 1.1920928955078125e-07  # float32's machine epsilon, Kaldi's floor


def kaldi_mel(hz: Any) -> Any:
    """Hz on Kaldi's mel scale."""
    import numpy as np

    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.cache
def filterbank() -> Any:
    """The [80, 257] triangular filters over the power spectrum's bins."""
    import numpy as np

    low, high = kaldi_mel(LOW_HZ), kaldi_mel(RATE / 2)
    delta = (high - low) / (BANDS + 1)
    left = low + delta * np.arange(BANDS)[:, None]
    centre, right = left + delta, left + 2 * delta
    mel = kaldi_mel(np.arange(FFT // 2) * RATE / FFT)[None, :]
    weights = np.maximum(0.0, np.minimum((mel - left) / (centre - left), (right - mel) / delta))
    weights = np.pad(weights, ((0, 0), (0, 1)))  # the Nyquist bin has no filter
    weights.setflags(write=False)
    return weights


@functools.cache
def window() -> Any:
    """Povey's window of one frame."""
    import numpy as np

    n = np.arange(FRAME)
    w = ((0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1))) ** 0.85).astype(np.float32)
    w.setflags(write=False)
    return w


def fbank(audio: Any, normalise: bool = True) -> Any:
    """The [frames, 80] float32 log mel filterbank of 16 kHz float audio (mean-normalised).

    Audio shorter than one frame gives no frames.
    """
    import numpy as np

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    count = 1 + (len(audio) - FRAME) // HOP if len(audio) >= FRAME else 0
    if count == 0:
        return np.zeros((0, BANDS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - PREEMPHASIS * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * (1 - PREEMPHASIS)
    spectrum = np.fft.rfft(emphasised * window(), n=FFT, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    feats = np.log(np.maximum(power @ filterbank().T, EPSILON))
    if normalise:
        feats -= feats.mean(axis=0, keepdims=True)
    return feats.astype(np.float32)
