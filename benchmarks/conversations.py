"""The diarization evaluation set: generated espeak-ng conversations with 2, 3 and 4 voices.

``python -m benchmarks.conversations [--out DIR] [--clip NAME ...]`` writes each clip as
``<name>/audio.wav`` (16 kHz mono 16-bit) and ``<name>/truth.json`` (the same layout as
``samples/two_speakers``). ``benchmarks/quality.py`` calls :func:`build` and keeps the clips
in ``.measure/conversations/`` (rebuilt when this file or espeak-ng changes).

Every clip is fixed by its spec below: its voices, how many turns, a seed that picks the
sentences, the turn lengths and the gaps. The voices are espeak-ng variants with their own
pitch and speed; Debian main has no mbrola voices, so there are none of those. Needs
espeak-ng and sox (``apt-get install -y espeak-ng sox``). Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".measure" / "conversations"
RATE = 16_000

#: espeak-ng voices: a variant, a pitch (-p) and a speed (-s) each. M = male, F = female.
VOICES: dict[str, list[str]] = {
    "M1": ["-v", "en-us+m3", "-p", "35", "-s", "150"],  # the sample's speaker A
    "F1": ["-v", "en-us+f3", "-p", "75", "-s", "165"],  # the sample's speaker B
    "M2": ["-v", "en-gb+m7", "-p", "45", "-s", "160"],
    "F2": ["-v", "en-gb+f4", "-p", "62", "-s", "150"],
    "M3": ["-v", "en-us+m1", "-p", "50", "-s", "170"],
}

#: Sentences the turns are made of; short ones make short turns.
SHORT = [
    "Yes.",
    "Right.",
    "I see.",
    "Exactly.",
    "Go on.",
    "Not really.",
    "Of course.",
    "Why not?",
    "Really?",
    "That is true.",
    "I agree.",
    "Maybe later.",
]
SENTENCES = [
    "Good morning, and welcome back to the show.",
    "Today we talk about the weather and the river.",
    "The rain came early this year, and the river is very high.",
    "Is the town safe from the water?",
    "The new wall is strong, and the people are ready.",
    "We spoke with the mayor on Monday about the new bridge.",
    "She said the work will start in the spring if the money comes in time.",
    "The farmers are worried about the late frost.",
    "Most of the apple trees lost their flowers in one night.",
    "The market opens at seven and closes at noon on Saturdays.",
    "Prices for bread went up again last month.",
    "The school has a new library with a room for children.",
    "Many families came to the opening and stayed all afternoon.",
    "The trains were late because of the snow in the mountains.",
    "A small group of students built a robot that sorts plastic.",
    "It can tell bottles from cups by their shape and their weight.",
    "The hospital needs more nurses for the night shifts.",
    "Our next guest has walked across the country twice.",
    "He carried a tent, a stove and three books on the road.",
    "What was the hardest part of the journey?",
    "The wind on the high plains was the worst of it.",
    "Some nights the temperature fell far below zero.",
    "The museum will show old maps of the harbour next month.",
    "Fishermen used those maps for more than a hundred years.",
    "Tell us about the festival in the old town.",
    "There will be music on three stages and food from many countries.",
    "The city council voted to keep the park open at night.",
    "Lights will be added along the paths by the lake.",
    "Our listeners sent many questions about the new bus lines.",
    "The number twelve bus will now stop at the station.",
    "Let us take a short break and then talk about sports.",
    "The local team won their first match of the season.",
    "Their young goalkeeper saved two penalties in the last minutes.",
    "The coach said the players trained hard all summer.",
    "How do you think they will do against the champions?",
    "It will be difficult, but anything can happen in a cup final.",
    "The library will stay open late during the exam weeks.",
    "Volunteers will help older people with their computers.",
    "A new bakery opened next to the post office.",
    "Their bread is baked in a wood oven every morning.",
    "The forest fire in the north is now under control.",
    "Firefighters worked for four days without much rest.",
    "The roads to the lakes are open again since this morning.",
    "Scientists counted more birds on the island this spring.",
    "They think the quiet winter helped the young birds.",
    "That brings us to the end of our news for today.",
    "Thank you for listening, and have a good evening.",
    "I remember when the old factory still made bicycles.",
    "My grandfather worked there for almost forty years.",
    "The building is now full of small shops and studios.",
]


@dataclass(frozen=True)
class Clip:
    """One generated conversation."""

    name: str
    voices: tuple[str, ...]
    turns: int
    seed: int
    #: (shortest, longest) gap between turns, seconds
    gaps: tuple[float, float] = (0.6, 0.6)
    #: sentences per turn: (fewest, most); a turn of 0 sentences is a short interjection
    sentences: tuple[int, int] = (1, 2)
    #: who speaks next: "random" (never the same voice twice in a row) or "round" (in turn)
    order: str = "random"
    #: cut espeak-ng's own silence before and after each turn (so that gaps are exact)
    trim: bool = False


CLIPS: tuple[Clip, ...] = (
    Clip("two_mf", ("M1", "F1"), 10, seed=1, gaps=(0.3, 0.9), sentences=(0, 3)),
    Clip("two_mm", ("M1", "M2"), 10, seed=2, gaps=(0.3, 0.9), sentences=(0, 3)),
    Clip("two_ff", ("F1", "F2"), 8, seed=3, gaps=(0.4, 0.8), sentences=(1, 2)),
    # the case: two male voices and a female one, six turns, 0.6 s gaps, ~30 s
    Clip(
        "three_mmf", ("M1", "M2", "F1"), 6, seed=4, gaps=(0.6, 0.6), sentences=(1, 1), order="round"
    ),
    Clip("three_mff", ("M3", "F1", "F2"), 12, seed=5, gaps=(0.25, 0.8), sentences=(0, 3)),
    # no pause between turns (the VAD hears one region): speaker changes inside a region
    Clip(
        "three_tight", ("M1", "M2", "F1"), 12, seed=9, gaps=(0.0, 0.05), sentences=(1, 2), trim=True
    ),
    Clip("four", ("M1", "M2", "F1", "F2"), 14, seed=6, gaps=(0.3, 0.8), sentences=(0, 3)),
    Clip("four_b", ("M1", "M3", "F1", "F2"), 14, seed=7, gaps=(0.3, 0.8), sentences=(1, 2)),
    # the long one: about five minutes, three voices
    Clip("long_three", ("M1", "M2", "F1"), 58, seed=8, gaps=(0.3, 1.0), sentences=(0, 3)),
)


def check_tools() -> None:
    """SystemExit naming the package to install if espeak-ng or sox is missing."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed; run: apt-get install -y espeak-ng sox")


#: sox effects that cut leading and trailing silence (below 0.5% for 20 ms)
TRIM = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]


def say(voice: Sequence[str], text: str, path: Path, trim: bool = False) -> bytes:
    """Speak ``text`` with espeak-ng; return it as 16 kHz mono 16-bit frames."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", *voice, "-w", str(raw), text], check=True)
    effects = TRIM if trim else []
    subprocess.run(
        ["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path), *effects],
        check=True,
    )
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def script(clip: Clip) -> list[tuple[str, str, float]]:
    """The clip's turns: (voice, text, gap after it); no voice speaks twice in a row."""
    rng = random.Random(clip.seed)
    pool = list(SENTENCES)
    rng.shuffle(pool)
    order: list[str] = []
    for i in range(clip.turns):
        if i < len(clip.voices) or clip.order == "round":  # everyone speaks early on
            order.append(clip.voices[i % len(clip.voices)])
        else:
            order.append(rng.choice([v for v in clip.voices if v != order[-1]]))
    turns = []
    for voice in order:
        n = rng.randint(*clip.sentences)
        if n == 0:
            text = rng.choice(SHORT)
        else:
            if len(pool) < n:
                pool = list(SENTENCES)
                rng.shuffle(pool)
            text = " ".join(pool.pop() for _ in range(n))
        gap = round(rng.uniform(*clip.gaps), 2)
        turns.append((voice, text, gap))
    return turns


def write_clip(clip: Clip, folder: Path) -> dict[str, object]:
    """Write ``folder/audio.wav`` and ``folder/truth.json``; return the truth."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    truth = []
    lead = b"\x00\x00" * int(0.5 * RATE)
    frames += lead
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, text, gap) in enumerate(script(clip)):
            data = say(VOICES[voice], text, Path(tmp) / f"turn{i}.wav", clip.trim)
            start = len(frames) / 2 / RATE
            frames += data
            end = len(frames) / 2 / RATE
            truth.append(
                {"speaker": voice, "start": round(start, 3), "end": round(end, 3), "text": text}
            )
            frames += b"\x00\x00" * int(gap * RATE)
    with wave.open(str(folder / "audio.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    doc: dict[str, object] = {
        "sample_rate": RATE,
        "duration": round(len(frames) / 2 / RATE, 3),
        "speakers": sorted(set(clip.voices)),
        "turns": truth,
    }
    (folder / "truth.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def fingerprint() -> str:
    """What the clips depend on: this file and the espeak-ng version."""
    version = subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True, check=True
    ).stdout
    digest = hashlib.sha256(Path(__file__).read_bytes() + version.encode())
    return digest.hexdigest()[:16]


def build(out: Path = CACHE, names: Sequence[str] = ()) -> dict[str, Path]:
    """Make (or reuse) the clips under ``out``; return name -> folder."""
    check_tools()
    stamp = out / "fingerprint"
    fresh = fingerprint()
    if stamp.is_file() and stamp.read_text().strip() != fresh:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fresh + "\n")
    chosen = [c for c in CLIPS if not names or c.name in names]
    unknown = set(names) - {c.name for c in CLIPS}
    if unknown:
        raise SystemExit(f"unknown clip(s): {', '.join(sorted(unknown))}")
    folders = {}
    for clip in chosen:
        folder = out / clip.name
        if not (folder / "truth.json").is_file():
            write_clip(clip, folder)
        folders[clip.name] = folder
    return folders


def main() -> None:
    """Write the clips and print their lengths."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CACHE)
    parser.add_argument("--clip", action="append", default=[], help="only this clip; repeatable")
    args = parser.parse_args()
    for name, folder in build(args.out, args.clip).items():
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
        print(
            f"{name}: {truth['duration']:.1f} s, {len(truth['speakers'])} voices, "
            f"{len(truth['turns'])} turns -> {folder}"
        )


if __name__ == "__main__":
    main()
