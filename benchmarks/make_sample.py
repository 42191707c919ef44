"""Regenerate samples/two_speakers: a two-voice espeak-ng dialogue, 16 kHz mono, with truth."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "samples" / "two_speakers"
RATE = 16_000
GAP = 0.6  # seconds of silence between turns
VOICES = {
    "A": ["-v", "en-us+m3", "-p", "35", "-s", "150"],
    "B": ["-v", "en-us+f3", "-p", "75", "-s", "165"],
}
TURNS = [
    ("A", "Good morning. Today we talk about the weather and the river."),
    ("B", "Thank you. The rain came early this year, and the river is very high."),
    ("A", "Is the town safe from the water?"),
    ("B", "Yes. The new wall is strong, and the people are ready."),
]


def _say(voice: list[str], text: str, path: Path) -> None:
    """Speak ``text`` with espeak-ng and resample it to 16 kHz mono with sox."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", *voice, "-w", str(raw), text], check=True)
    subprocess.run(
        ["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path)], check=True
    )


def main() -> None:
    """Write audio.wav and truth.json."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed; run: apt-get install -y espeak-ng sox")
    OUT.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    silence = b"\x00\x00" * int(GAP * RATE)
    truth = []
    with tempfile.TemporaryDirectory() as tmp:
        frames += silence
        for i, (speaker, text) in enumerate(TURNS):
            part = Path(tmp) / f"turn{i}.wav"
            _say(VOICES[speaker], text, part)
            with wave.open(str(part), "rb") as w:
                data = w.readframes(w.getnframes())
            start = len(frames) / 2 / RATE
            frames += data
            end = len(frames) / 2 / RATE
            truth.append(
                {"speaker": speaker, "start": round(start, 3), "end": round(end, 3), "text": text}
            )
            frames += silence
    with wave.open(str(OUT / "audio.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    doc = {
        "sample_rate": RATE,
        "duration": round(len(frames) / 2 / RATE, 3),
        "speakers": sorted(VOICES),
        "turns": truth,
    }
    (OUT / "truth.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'audio.wav'} ({doc['duration']} s) and truth.json")


if __name__ == "__main__":
    main()
