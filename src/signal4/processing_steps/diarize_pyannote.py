"""Who spoke when with a pyannote.audio pipeline (a local folder, or the hub with a token)."""

from __future__ import annotations

import argparse
import warnings
import wave
from pathlib import Path
from typing import Any

from signal4.stepkit import diarization
from signal4.stepkit.step import Context, InvalidInput, Step, StepFailure, keeps, number

HUB_PIPELINE = "pyannote/speaker-diarization-3.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speakers",
        type=number(int, ge=1),
        metavar="N",
        help="the number of speakers (default: automatic)",
    )


def _import_pipeline() -> Any:
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        from pyannote.audio import Pipeline

    return Pipeline


def ready() -> None:
    _import_pipeline()
    import torch  # noqa: F401  (the waveform handed to the pipeline)

    import signal4.content.settings  # noqa: F401


def pipeline_source(model: str | None, token: str | None) -> tuple[str, str | None]:
    """Where to load the pipeline from: (local config path or hub name, token)."""
    if model:
        path = Path(model).expanduser()
        config = path / "config.yaml" if path.is_dir() else path
        if not config.is_file():
            raise InvalidInput(
                f"SIGNAL4_PYANNOTE_MODEL={model}: no pyannote pipeline there (config.yaml missing)"
            )
        return str(config), None
    if token:
        return HUB_PIPELINE, token
    raise InvalidInput(
        "no pyannote model: set SIGNAL4_PYANNOTE_MODEL to a local pipeline folder, or "
        "SIGNAL4_PYANNOTE_TOKEN to a hub token where the hub is reachable; or use the diarize task"
    )


def waveform(wav: Path, uri: str) -> dict[str, Any]:
    """convert's 16 kHz mono WAV in memory, as pyannote takes it.

    Handing pyannote a path would make it decode the file with torchcodec, which needs
    FFmpeg's shared libraries on the system; the samples are already decoded.
    """
    import numpy as np
    import torch

    with wave.open(str(wav), "rb") as w:
        if (w.getnchannels(), w.getsampwidth()) != (1, 2):
            raise InvalidInput("audio.wav is not mono 16-bit; run convert again")
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    samples = torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None, :]
    return {"waveform": samples, "sample_rate": rate, "uri": uri}


def turns_of(annotation: Any) -> list[dict[str, Any]]:
    """A pyannote Annotation (or a 4.x DiarizeOutput) as start/end/speaker turns."""
    annotation = getattr(annotation, "speaker_diarization", annotation)
    return [
        {"start": float(seg.start), "end": float(seg.end), "speaker": str(label)}
        for seg, _, label in annotation.itertracks(yield_label=True)
    ]


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    cid = options.content
    diarization.require_registered(ctx, cid)
    source, token = pipeline_source(ctx.settings.pyannote_model, ctx.settings.pyannote_token)
    if done := diarization.skipped(ctx, cid, options.rewrite):
        return done
    wav = diarization.audio(ctx, cid)
    pipeline_cls = _import_pipeline()
    try:
        pipeline = pipeline_cls.from_pretrained(source, token=token)
    except Exception as exc:
        raise StepFailure(f"cannot load the pyannote pipeline {source!r}: {exc}") from exc
    if pipeline is None:
        raise StepFailure(f"cannot load the pyannote pipeline {source!r}: check the token's access")
    kwargs = {"num_speakers": options.speakers} if options.speakers else {}
    annotation = pipeline(waveform(wav, cid), **kwargs)
    return diarization.finish(ctx, cid, turns_of(annotation), method="pyannote")


def params(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """The pipeline (a local folder by its digest, or a hub name) and the speaker count."""
    from signal4.stepkit.digest import tree_digest

    model = ctx.settings.pyannote_model
    digest = None
    if model and Path(model).expanduser().is_dir():
        digest = tree_digest(Path(model).expanduser(), ctx.settings.digest_cache)
        model = Path(model).name
    return {
        "method": "pyannote",
        "model": {"name": model, "digest": digest},
        "speakers": options.speakers,
    }


STEP = Step(
    name="diarize_pyannote",
    description="Find who spoke when with a pyannote.audio pipeline into diarization.json/.rttm.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    params=params,
    stage="diarize",
    outputs_kept=keeps(diarization.JSON_NAME),
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
