"""The CAM++ speaker encoder on onnxruntime: 192-d voice prints of any set of frames.

3D-Speaker's CAM++ (``speech_campplus_sv_zh_en_16k-common_advanced``) is exported by
``tools/export_diarization_models.py`` in two halves:

* ``models/speaker_frames.onnx``: mean-normalised Kaldi fbanks [batch, frames, 80]
  (:mod:`.fbank`, 10 ms apart) to frame features [batch, 512, frames / 2] (20 ms apart);
* ``models/speaker_head.onnx``: the features' statistics [batch, 1024] (the mean of each
  of the 512 channels, then its standard deviation) to the embedding [batch, 192].

The model's own pooling takes the statistics over all its frames; taking them over a
chosen subset instead (the frames where one speaker talks alone) gives that speaker's
embedding, so the frame half runs once over the recording and every voice print after
that costs a mean and a deviation. We L2-normalise the embeddings.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from signal4.stepkit.speakers import fbank as fb
from signal4.stepkit.speakers import runtime

DIMENSION = 192
CHANNELS = 512
#: fbank frames per call of the frame model (10 s): it normalises and sees each piece alone
PIECE = 1000
#: a last piece shorter than this is run together with the one before it
SHORTEST = 200
#: one feature frame every two fbank frames: 320 samples
FEATURE_HOP = 2 * fb.HOP
#: samples from a feature frame's start to its centre
FEATURE_CENTRE = fb.FRAME // 2


def normalise(rows: Any) -> Any:
    """Each row divided by its L2 norm (a zero row stays zero)."""
    import numpy as np

    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def stats(frames: Any, chosen: Any) -> Any:
    """CAM++'s pooling over some frames of [512, time] features: means, then deviations.

    ``chosen`` picks the frames (indices or a boolean mask). The deviation is the unbiased
    one, as the model was trained with; at least two frames must be chosen.
    """
    import numpy as np

    chosen = frames[:, chosen].astype(np.float64)
    if chosen.shape[1] < 2:
        raise ValueError("pooling needs at least two frames")
    return np.concatenate([chosen.mean(axis=1), chosen.std(axis=1, ddof=1)])


def pieces(n_frames: int) -> list[tuple[int, int]]:
    """[start, end) fbank frame ranges the frame model is run on: even lengths, 10 s each."""
    out = list(itertools.pairwise([*range(0, n_frames, PIECE), n_frames]))
    if len(out) > 1 and out[-1][1] - out[-1][0] < SHORTEST:
        out[-2:] = [(out[-2][0], out[-1][1])]
    return out


class SpeakerEncoder:
    """The two ONNX halves of CAM++ in two onnxruntime sessions."""

    def __init__(self, threads: int) -> None:
        self.frame_model = runtime.session(runtime.FRAMES_MODEL, threads)
        self.head = runtime.session(runtime.HEAD_MODEL, threads)

    def frames(self, feats: Any) -> Any:
        """Frame features [512, time] of a recording's fbanks [frames, 80] (not normalised).

        Feature frame ``t`` is centred on fbank frame ``2 t``; each 10 s piece is
        mean-normalised and encoded on its own.
        """
        import numpy as np

        out = []
        for start, end in pieces(len(feats)):
            piece = feats[start:end].astype(np.float32)
            piece = piece - piece.mean(axis=0, keepdims=True)
            out.append(self.frame_model.run(["frames"], {"fbank": piece[None]})[0][0])
        if not out:
            return np.zeros((CHANNELS, 0), dtype=np.float32)
        return np.concatenate(out, axis=1)

    def embed(self, pooled: Sequence[Any]) -> Any:
        """Unit-length embeddings [n, 192] of pooled statistics (each [1024])."""
        import numpy as np

        if not len(pooled):
            return np.zeros((0, DIMENSION), dtype=np.float64)
        batch = np.stack(pooled).astype(np.float32)
        return normalise(self.head.run(["embedding"], {"stats": batch})[0].astype(np.float64))
