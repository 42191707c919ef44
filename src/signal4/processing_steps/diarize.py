"""Who spoke when, torch-free: pyannote's segmentation and CAM++ voice prints on onnxruntime.

The models are ONNX files shipped in ``signal4/stepkit/models`` (see its NOTICE); the
method is described in :mod:`signal4.stepkit.speakers.pipeline`. Besides the turns (which
may overlap where two people talk at once), diarization.json holds the exclusive turns
(one voice at a time: the strongest) and each speaker's voice print.
"""

from __future__ import annotations

import argparse
import wave
from typing import Any

from signal4.stepkit import diarization
from signal4.stepkit.step import Context, InvalidInput, Step, keeps, number

RATE = 16_000
MAX_SPEAKERS = 8
METHOD = "segmentation3-campplus"


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
    """Import what a real run imports (its models load in the run)."""
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401
    import scipy.cluster.hierarchy  # noqa: F401

    import signal4.content.settings
    import signal4.stepkit.speakers.pipeline  # noqa: F401


def read_audio(path: str) -> Any:
    """A 16 kHz mono 16-bit WAV as float32 samples in [-1, 1)."""
    import numpy as np

    with wave.open(path, "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise InvalidInput("audio.wav is not 16 kHz mono 16-bit; run convert again")
        pcm = w.readframes(w.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def diarize(wav_path: str, speakers: int | None, max_k: int) -> tuple[list[Any], diarization.Extra]:
    """Return speaker turns (start, end, speaker) of a 16 kHz mono WAV, and the rest."""
    from signal4.stepkit.speakers import runtime
    from signal4.stepkit.speakers.pipeline import Diarizer

    threads = runtime.cpu_budget()  # a bad SIGNAL4_THREADS is invalid input, before any work
    audio = read_audio(wav_path)
    found = Diarizer(threads)(audio, speakers=speakers, max_speakers=max_k)
    return found.turns, diarization.Extra(found.exclusive, found.voiceprints, runtime.EMBEDDING_ID)


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    cid = options.content
    diarization.require_registered(ctx, cid)
    if options.speakers is not None and options.speakers < 1:
        raise InvalidInput("--speakers must be 1 or more")
    if done := diarization.skipped(ctx, cid, options.rewrite):
        return done
    wav = diarization.audio(ctx, cid)
    turns, extra = diarize(str(wav), options.speakers, options.max_speakers)
    return diarization.finish(ctx, cid, turns, method=METHOD, extra=extra)


def params(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """The method, its ONNX models (by content) and the speaker counts asked for."""
    from signal4.stepkit.digest import tree_digest
    from signal4.stepkit.speakers.runtime import MODELS

    return {
        "method": METHOD,
        "models": tree_digest(MODELS, ctx.settings.digest_cache),
        "speakers": options.speakers,
        "max_speakers": options.max_speakers,
    }


STEP = Step(
    name="diarize",
    description="Find who spoke when (segmentation, voice prints, clustering): diarization.json.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="diarize",
    outputs_kept=keeps(diarization.JSON_NAME),
    params=params,
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
