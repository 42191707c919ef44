"""Resemblyzer's mel spectrogram (``resemblyzer.audio.wav_to_mel_spectrogram``) in numpy.

Resemblyzer calls ``librosa.feature.melspectrogram`` with librosa's defaults; spelled out:
16 kHz audio; 400-sample frames (25 ms) every 160 samples (10 ms); each frame centred on
its hop (the signal padded with 200 zeros at both ends); a periodic Hann window; the power
spectrum ``|rfft|^2`` (not its log); a Slaney-style mel filterbank of 40 bands over
0-8000 Hz with Slaney's area normalisation. Frames come out as rows: [frames, 40].
"""

from __future__ import annotations

import functools
from typing import Any

RATE = 16_000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40

# Slaney's mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = 0.06875177742094912  # log(6.4) / 27


def hz_to_mel(hz: Any) -> Any:
    """Hz to Slaney mels."""
    import numpy as np

    hz = np.asanyarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mels: Any) -> Any:
    """Slaney mels to Hz."""
    import numpy as np

    mels = np.asanyarray(mels, dtype=np.float64)
    linear = _F_SP * mels
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mels, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mels >= _MIN_LOG_MEL, log, linear)


@functools.cache
def filterbank() -> Any:
    """The [40, 201] mel filterbank (librosa.filters.mel with Slaney scale and norm)."""
    import numpy as np

    fft_freqs = np.fft.rfftfreq(N_FFT, d=1.0 / RATE)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


@functools.cache
def window() -> Any:
    """The periodic Hann window of one frame."""
    import numpy as np

    n = np.arange(N_FFT)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    w.setflags(write=False)
    return w


def mel_spectrogram(wav: Any) -> Any:
    """The [frames, 40] float32 mel power spectrogram of a 16 kHz float waveform.

    ``frames = 1 + len(wav) // 160``, as Resemblyzer (librosa) has it.
    """
    import numpy as np

    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    padded = np.pad(wav, N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    spectrum = np.fft.rfft(frames * window(), n=N_FFT, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    return (power @ filterbank().T).astype(np.float32)
