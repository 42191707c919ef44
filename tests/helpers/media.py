"""Real media for tests, made with the bundled ffmpeg (tones, silent video, broken files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from signal4.stepkit import media


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error", *args], check=True
    )


def tone(
    path: Path, seconds: float = 3.0, *, freq: int = 440, rate: int = 44_100, channels: int = 2
) -> Path:
    """Write a sine tone (format from the suffix: .mp3, .m4a, .wav, .ogg…) and return it."""
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}",
        "-ac",
        str(channels),
        str(path),
    )
    return path


def video_with_tone(path: Path, seconds: float = 2.0) -> Path:
    """Write a small MP4 with a test picture and a tone."""
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=64x48:rate=10:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=330:duration={seconds}",
        "-c:v",
        "mpeg4",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    )
    return path


def video_without_audio(path: Path, seconds: float = 2.0) -> Path:
    """Write a small MP4 with a picture and no audio stream."""
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=64x48:rate=10:duration={seconds}",
        "-c:v",
        "mpeg4",
        "-an",
        str(path),
    )
    return path


def truncated(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def cut_at_last_ogg_page(src: Path, dst: Path) -> Path:
    """Copy ``src`` without its last Ogg page: the rest ends exactly on a page boundary."""
    data = src.read_bytes()
    dst.write_bytes(data[: data.rfind(b"OggS")])
    return dst


def video_and_audio(
    path: Path, video_seconds: float, audio_seconds: float, *, faststart: bool = False
) -> Path:
    """Write an MP4 whose picture and AAC sound last as long as asked (each its own length).

    ``faststart`` puts the index (moov) first, as web video does: such a file cut short
    still opens, and only its packets run out.
    """
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=64x48:rate=10:duration={video_seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=330:duration={audio_seconds}",
        "-c:v",
        "mpeg4",
        "-c:a",
        "aac",
        *(["-movflags", "+faststart"] if faststart else []),
        str(path),
    )
    return path
