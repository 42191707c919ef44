"""Running steps for the benchmark: each in its own env, through the dispatcher, timed."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message names it and why."""


@dataclass
class Runner:
    """Runs steps in their envs (as ``inv run`` does) on a throw-away data folder."""

    data: Path
    timings: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from signal4.envs.manifest import load

        self.manifest = load(ROOT)
        self.env = {"SIGNAL4_DATA_DIR": str(self.data)}

    def run(self, task: str, *args: str) -> tuple[dict[str, Any], float]:
        """The step's result and its wall time (the whole process: start-up included)."""
        from signal4.run import dispatch

        m = self.manifest
        outcome = dispatch.run(m, m.task(task), list(args), env_vars={**os.environ, **self.env})
        if not outcome.ok:
            raise BenchError(f"{task} {' '.join(args)}: {outcome.status}: {outcome.error}")
        return outcome.result, outcome.duration

    def folder(self, cid: str) -> Path:
        """The content folder of ``cid``."""
        return self.data / "content" / cid

    def convert_and(self, media: Path, *tasks: str) -> tuple[str, dict[str, float]]:
        """Convert ``media``, then run ``tasks`` on it; the content id and each step's seconds."""
        result, seconds = self.run("convert", "--input", str(media))
        cid = str(result["content"])
        times = {"convert": seconds}
        for task in tasks:
            _, times[task] = self.run(task, "--content", cid)
        return cid, times


def ffmpeg() -> str:
    """The ffmpeg binary the convert env ships (imageio-ffmpeg)."""
    python = ROOT / "envs" / "convert" / ".venv" / "bin" / "python"
    if not python.is_file():
        raise BenchError("the convert env is missing; run: inv sync convert")
    out = subprocess.run(
        [str(python), "-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def concatenate(clips: Sequence[Path], out: Path) -> list[float]:
    """Decode ``clips`` and write them one after another as a 16 kHz 16-bit WAV; their starts."""
    starts, frames = [], bytearray()
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            wav = Path(tmp) / (clip.stem + ".wav")
            subprocess.run(
                [
                    ffmpeg(),
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    str(clip),
                    "-ac",
                    "1",
                    "-ar",
                    "16000",
                    "-c:a",
                    "pcm_s16le",
                    str(wav),
                ],
                check=True,
            )
            with wave.open(str(wav), "rb") as w:
                starts.append(len(frames) / 2 / 16000)
                frames += w.readframes(w.getnframes())
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(frames))
    return starts


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc
