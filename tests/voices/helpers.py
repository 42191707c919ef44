"""Synthetic voices for the registry's tests: unit prints near a person's own direction."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DIM = 192
MODEL = {"name": "test-model", "digest": "sha256:test"}


def person(seed: int) -> list[float]:
    """A person's own direction (random, unit length)."""
    rng = random.Random(seed)
    vec = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = sum(v * v for v in vec) ** 0.5
    return [v / norm for v in vec]


def heard(base: list[float], seed: int, noise: float = 0.04) -> list[float]:
    """One hearing of a person: its direction plus noise (cosine with it about 0.75)."""
    rng = random.Random(seed)
    vec = [b + rng.gauss(0, noise) for b in base]
    norm = sum(v * v for v in vec) ** 0.5
    return [v / norm for v in vec]


def diarized(
    db: Any, content_root: Path, cid: str, voices: dict[str, tuple[list[float], float]]
) -> None:
    """Register ``cid`` and give it a diarization with these voices (label -> print,
    seconds), one turn each, and a transcript of one word per turn."""
    db.register(cid, kind="file", title=cid)
    folder = content_root / cid
    folder.mkdir(parents=True, exist_ok=True)
    turns, words = [], []
    for i, label in enumerate(sorted(voices)):
        turns.append({"start": 2.0 * i, "end": 2.0 * i + 1.5, "speaker": label})
        words.append({"word": f"w{i}.", "start": 2.0 * i, "end": 2.0 * i + 1.0, "speaker": label})
    doc = {
        "method": "test",
        "speakers": sorted(voices),
        "turns": turns,
        "voiceprints": {
            label: {"embedding": vec, "seconds": seconds}
            for label, (vec, seconds) in voices.items()
        },
        "embedding_model": MODEL,
    }
    (folder / "diarization.json").write_text(json.dumps(doc))
    segments = [{**w, "text": w["word"]} for w in words]
    (folder / "transcript.json").write_text(
        json.dumps(
            {"language": "en", "speakers": sorted(voices), "segments": segments, "words": words}
        )
    )


def shown(content_root: Path, cid: str) -> dict[str, str]:
    """label -> the speaker the item's transcript.json shows for it."""
    doc = json.loads((content_root / cid / "transcript.json").read_text())
    return {s.get("label", s["speaker"]): s["speaker"] for s in doc["segments"]}
