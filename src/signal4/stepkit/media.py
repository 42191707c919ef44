"""ffmpeg helpers shared by the download, convert and cleanup steps.

Standard library only at import time; ``imageio_ffmpeg`` (which ships the ffmpeg binary)
is imported on first use. ffmpeg always runs from an argument list, never a shell string.
"""

from __future__ import annotations

import errno
import functools
import re
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: What every WAV we write looks like: 16 kHz, mono, 16-bit PCM.
SAMPLE_RATE = 16_000
CHANNELS = 1
SAMPLE_WIDTH = 2

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM_RE = re.compile(
    r"^\s*Stream #\d+:\d+.*?: (Audio|Video|Subtitle|Data|Attachment): (.*)$", re.MULTILINE
)
_INPUT_RE = re.compile(r"^Input #0, ([^,]+(?:,[^,]+)*?), from", re.MULTILINE)
_TIME_RE = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")
#: What ffmpeg prints when the disk it writes to is full.
_NO_SPACE = "No space left on device"
#: ffmpeg's exit code for AVERROR(ENOSPC): -28 as an unsigned byte.
_EXIT_NO_SPACE = 256 - errno.ENOSPC


class MediaError(Exception):
    """ffmpeg could not read or write a media file; the message says why."""


class TruncatedMedia(MediaError):
    """The media file is cut short: its own bookkeeping announces more than it holds."""


@functools.cache
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says about a media file."""

    duration: float | None
    audio: list[str] = field(default_factory=list)
    video: list[str] = field(default_factory=list)
    container: str = ""

    @property
    def has_audio(self) -> bool:
        """Whether the file has at least one audio stream."""
        return bool(self.audio)

    @property
    def moving_video(self) -> list[str]:
        """The video streams that run alongside the audio (not cover art: attached pictures)."""
        return [v for v in self.video if "(attached pic)" not in v]

    @property
    def one_audio_stream(self) -> bool:
        """Whether the first audio stream is the only timed stream, so the file's duration
        (what its header announces) is that stream's own."""
        return len(self.audio) == 1 and not self.moving_video


def _last_lines(text: str, n: int = 2) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-n:]) or "no output"


def run_ffmpeg(
    args: list[str], *, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg with ``args``; raise :class:`MediaError` with its last error lines on failure.

    A full disk is not the input's fault: it raises ``OSError(ENOSPC)`` naming the output
    (ffmpeg's last argument), which no caller mistakes for bad media.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
    )
    if proc.returncode != 0:
        if _NO_SPACE in proc.stderr or proc.returncode == _EXIT_NO_SPACE:
            output = args[-1] if args and args[-1] != "-" else None
            raise OSError(errno.ENOSPC, f"{_NO_SPACE} (ffmpeg)", output)
        raise MediaError(f"ffmpeg exited {proc.returncode}: {_last_lines(proc.stderr)}")
    return proc


def probe(path: Path) -> MediaInfo:
    """Return the duration and streams of ``path`` (MediaError if ffmpeg cannot read it)."""
    if not path.is_file():
        raise MediaError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name} is empty (0 bytes)")
    # `ffmpeg -i FILE` with no output prints the file's description and exits 1 by design.
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    err = proc.stderr
    if "Input #0" not in err:
        raise MediaError(f"{path.name} is not a media file ffmpeg can read: {_last_lines(err, 1)}")
    duration = None
    if m := _DURATION_RE.search(err):
        h, mi, s = m.groups()
        duration = int(h) * 3600 + int(mi) * 60 + float(s)
    audio = [d for kind, d in _STREAM_RE.findall(err) if kind == "Audio"]
    video = [d for kind, d in _STREAM_RE.findall(err) if kind == "Video"]
    container = m.group(1) if (m := _INPUT_RE.search(err)) else ""
    return MediaInfo(duration=duration, audio=audio, video=video, container=container)


def container_truncation(path: Path) -> str | None:
    """Say why ``path`` is cut short, from its container's own bookkeeping, or None.

    ffmpeg estimates the duration of WAV and Ogg files from their size, so a truncated one
    decodes "completely". Their containers still tell: a WAV's data chunk announces its
    length, and an Ogg stream ends with a page flagged end-of-stream.
    """
    with path.open("rb") as fh:
        head = fh.read(12)
        size = path.stat().st_size
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav_truncation(fh, size)
        if head[:4] == b"OggS":
            fh.seek(max(0, size - 65_536))
            return _ogg_truncation(fh.read(), size)
    return None


def _wav_truncation(fh: Any, size: int) -> str | None:
    offset = 12
    while offset + 8 <= size:
        fh.seek(offset)
        chunk_id, declared = fh.read(4), int.from_bytes(fh.read(4), "little")
        if chunk_id == b"data":
            have = size - offset - 8
            # 0 and 0xFFFFFFFF: a streamed WAV whose writer could not go back to fill it in
            if declared not in (0, 0xFFFFFFFF) and have < declared:
                return f"its WAV header announces {declared} bytes of audio, the file holds {have}"
            return None
        offset += 8 + declared + (declared & 1)
    return "its WAV header has no data chunk"


def _ogg_truncation(tail: bytes, size: int) -> str | None:
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        return "its last Ogg page is cut off"
    flags, segments = tail[at + 5], tail[at + 26]
    table = tail[at + 27 : at + 27 + segments]
    if len(table) < segments or at + 27 + segments + sum(table) > len(tail):
        return "its last Ogg page is cut off"
    if not flags & 0x04:
        return "its Ogg stream has no end-of-stream page"
    return None


def to_wav(src: Path, dst: Path, *, rate: int = SAMPLE_RATE, channels: int = CHANNELS) -> None:
    """Decode the first audio stream of ``src`` into a 16-bit PCM WAV at ``dst``."""
    run_ffmpeg(
        [
            "-i",
            str(src),
            "-map",
            "0:a:0",
            "-vn",
            "-ac",
            str(channels),
            "-ar",
            str(rate),
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            str(dst),
        ]
    )


def to_opus(src: Path, dst: Path, *, bitrate: str = "32k") -> None:
    """Encode ``src`` as Opus (speech-tuned) in an Ogg container at ``dst``."""
    run_ffmpeg(
        [
            "-i",
            str(src),
            "-map",
            "0:a:0",
            "-c:a",
            "libopus",
            "-b:a",
            bitrate,
            "-application",
            "voip",
            "-f",
            "ogg",
            str(dst),
        ]
    )


def _last_time(stderr: str, path: Path, what: str) -> float:
    times = _TIME_RE.findall(stderr)
    if not times:
        raise MediaError(f"ffmpeg {what} no audio from {path.name}")
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def decoded_seconds(path: Path) -> float:
    """Decode all of ``path``'s audio and return how many seconds it holds."""
    proc = run_ffmpeg(["-v", "info", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"])
    return _last_time(proc.stderr, path, "decoded")


@dataclass(frozen=True)
class StreamLength:
    """How long the first audio stream's packets run (read without decoding them)."""

    seconds: float
    #: The demuxer found packets that lie past the end of the file (a cut-off download).
    partial: bool


def audio_stream_length(path: Path) -> StreamLength:
    """Copy the first audio stream's packets to ffmpeg's null muxer: their length.

    Unlike the file's duration (the longest stream's: a video may run on after the
    sound), this is the audio stream's own.
    """
    proc = run_ffmpeg(
        ["-v", "info", "-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "null", "-"]
    )
    return StreamLength(_last_time(proc.stderr, path, "found"), "partial file" in proc.stderr)


def expected_audio_seconds(path: Path, info: MediaInfo) -> tuple[float | None, str]:
    """How long ``path``'s first audio stream should decode to, and where that figure is from.

    For a file whose only timed stream is that audio, the duration its header announces
    (a cut-off MP3 still announces its whole length). Otherwise the file's duration is its
    longest stream's, so the audio stream's packets are measured instead; packets that lie
    past the end of the file mean it was cut off (:class:`TruncatedMedia`).
    """
    if info.one_audio_stream:
        return info.duration, "its header announces"
    length = audio_stream_length(path)
    if length.partial:
        raise TruncatedMedia(
            f"its audio stream breaks off at {length.seconds:.1f} s (the file is cut short)"
        )
    return length.seconds, "its audio stream holds"


@dataclass(frozen=True)
class WavInfo:
    """The format and length of a PCM WAV file."""

    rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate if self.rate else 0.0


def wav_info(path: Path) -> WavInfo:
    """Return the format and length of the PCM WAV at ``path``."""
    with wave.open(str(path), "rb") as w:
        return WavInfo(w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())


def write_wav_slice(src: Path, dst: Path, start_frame: int, end_frame: int) -> int:
    """Copy frames ``[start_frame, end_frame)`` of WAV ``src`` into a new WAV ``dst``."""
    with wave.open(str(src), "rb") as r, wave.open(str(dst), "wb") as w:
        w.setnchannels(r.getnchannels())
        w.setsampwidth(r.getsampwidth())
        w.setframerate(r.getframerate())
        r.setpos(start_frame)
        left = max(0, end_frame - start_frame)
        written = 0
        while left > 0:
            block = r.readframes(min(left, 1 << 16))
            if not block:
                break
            w.writeframes(block)
            n = len(block) // (r.getnchannels() * r.getsampwidth())
            written += n
            left -= n
        return written
