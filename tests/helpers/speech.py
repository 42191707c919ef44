"""Speech fixtures: the bundled two-speaker sample laid out as convert lays it out."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

from tests.helpers.steps import db, store

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "two_speakers"
RATE = 16_000


def truth() -> dict[str, Any]:
    """The sample's known turns, texts and speakers."""
    doc: dict[str, Any] = json.loads((SAMPLE / "truth.json").read_text(encoding="utf-8"))
    return doc


def sample_frames() -> bytes:
    """The sample's 16-bit PCM frames."""
    with wave.open(str(SAMPLE / "audio.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def _write_wav(path: Path, frames: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)


def converted(cid: str, frames: bytes, chunk_seconds: float = 300.0, overlap: float = 2.0) -> Path:
    """Register ``cid`` and write audio.wav, chunks.json and chunk WAVs like convert does."""
    folder = store().folder(cid, create=True)
    _write_wav(folder / "audio.wav", frames)
    duration = len(frames) / 2 / RATE
    chunks = []
    start, i = 0.0, 0
    while True:
        end = min(start + chunk_seconds, duration)
        s, e = round(start * RATE), round(end * RATE)
        name = f"chunks/chunk_{i:04d}.wav"
        _write_wav(folder / name, frames[2 * s : 2 * e])
        chunks.append(
            {
                "index": i,
                "file": name,
                "start": round(start, 6),
                "end": round(end, 6),
                "start_frame": s,
                "end_frame": e,
            }
        )
        if end >= duration:
            break
        start, i = end - overlap, i + 1
    plan = {
        "audio": "audio.wav",
        "sample_rate": RATE,
        "channels": 1,
        "duration": duration,
        "chunk_seconds": chunk_seconds,
        "overlap": overlap,
        "chunks": chunks,
    }
    (folder / "chunks.json").write_text(json.dumps(plan), encoding="utf-8")
    item = {"kind": "file", "duration": duration}
    (folder / "item.json").write_text(json.dumps(item), encoding="utf-8")
    db().register(cid, kind="file", duration=duration)
    db().mark(cid, "convert", "done")
    return folder


def silence(seconds: float) -> bytes:
    """Digital silence."""
    return b"\x00\x00" * int(seconds * RATE)
