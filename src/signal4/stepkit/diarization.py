"""What both diarize steps share: speaker turns to diarization.json and RTTM."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal4.codes import StageState, Status
from signal4.content.store import kept
from signal4.stepkit.step import InvalidInput

JSON_NAME = "diarization.json"


@dataclass(frozen=True)
class Extra:
    """What a diarizer knows beyond the turns (see :func:`write`)."""

    #: one speaker at a time: at each moment the strongest voice
    exclusive: Sequence[dict[str, Any]]
    #: speaker -> {"seconds": speech the embedding rests on, "embedding": unit vector}
    voiceprints: dict[str, dict[str, Any]]
    #: {"name": ..., "digest": ...} of the embedding model the voice prints come from
    model: dict[str, str]


RTTM_NAME = "diarization.rttm"


def merge_turns(turns: Sequence[dict[str, Any]], gap: float = 0.3) -> list[dict[str, Any]]:
    """Sort turns and merge neighbours of one speaker closer than ``gap`` seconds."""
    merged: list[dict[str, Any]] = []
    for t in sorted(turns, key=lambda t: (t["start"], t["end"])):
        if (
            merged
            and merged[-1]["speaker"] == t["speaker"]
            and t["start"] - merged[-1]["end"] <= gap
        ):
            merged[-1]["end"] = max(merged[-1]["end"], t["end"])
        else:
            merged.append({"start": t["start"], "end": t["end"], "speaker": t["speaker"]})
    return [{**t, "start": round(t["start"], 3), "end": round(t["end"], 3)} for t in merged]


def names(turns: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each speaker's new name, SPEAKER_00, SPEAKER_01, ..., in the order they first speak."""
    out: dict[str, str] = {}
    for t in sorted(turns, key=lambda t: (t["start"], t["end"])):
        out.setdefault(str(t["speaker"]), f"SPEAKER_{len(out):02d}")
    return out


def relabel(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rename speakers SPEAKER_00, SPEAKER_01, ... in the order they first speak."""
    new = names(turns)
    return [{**t, "speaker": new[str(t["speaker"])]} for t in turns]


def rttm(content_id: str, turns: Sequence[dict[str, Any]]) -> str:
    """Return ``turns`` as RTTM lines."""
    return "".join(
        f"SPEAKER {content_id} 1 {t['start']:.3f} {t['end'] - t['start']:.3f} "
        f"<NA> <NA> {t['speaker']} <NA> <NA>\n"
        for t in turns
    )


def write(
    store: Any,
    content_id: str,
    turns: Sequence[dict[str, Any]],
    method: str,
    extra: Extra | None = None,
) -> dict[str, Any]:
    """Write diarization.json and diarization.rttm; return the JSON document.

    ``extra`` (the torch-free diarizer's) adds the exclusive turns, each speaker's voice
    print and the embedding model's id, under the same speaker names as the turns.
    """
    merged = merge_turns(turns)
    new = names(merged)
    turns = [{**t, "speaker": new[str(t["speaker"])]} for t in merged]
    speakers = sorted({t["speaker"] for t in turns})
    doc: dict[str, Any] = {"method": method, "speakers": speakers, "turns": turns}
    if extra is not None:
        doc["exclusive_turns"] = [
            {**t, "speaker": new[str(t["speaker"])]}
            for t in merge_turns(extra.exclusive)
            if str(t["speaker"]) in new
        ]
        doc["voiceprints"] = {
            new[label]: extra.voiceprints[label]
            for label in sorted(extra.voiceprints, key=lambda label: new.get(label, label))
            if label in new
        }
        doc["embedding_model"] = extra.model
    store.write_bytes(store.path(content_id, RTTM_NAME), rttm(content_id, turns).encode("utf-8"))
    # the JSON last: it is the stage's "done" mark (Context.is_done)
    store.write_json(store.path(content_id, JSON_NAME), doc)
    return doc


def read(store: Any, content_id: str) -> dict[str, Any] | None:
    """The diarization of ``content_id``, or None if there is none yet."""
    path: Path = store.path(content_id, JSON_NAME)
    if not kept(path):
        return None
    doc: dict[str, Any] = store.read_json(path)
    return doc


# The steps' shared frame: what both diarizers check before their model and do after it.


def require_registered(ctx: Any, cid: str) -> None:
    """InvalidInput unless ``cid`` has a folder in the content store."""
    if not ctx.store.folder(cid).is_dir():
        raise InvalidInput(
            f"content {cid!r} has no folder in the store; download and convert it first"
        )


def skipped(ctx: Any, cid: str, rewrite: bool) -> dict[str, Any] | None:
    """The ``skipped`` result if ``cid`` is diarized already (and not ``rewrite``), else None."""
    if not rewrite and ctx.is_done(cid, JSON_NAME):
        return {"status": Status.SKIPPED, "content": cid, "diarization": JSON_NAME}
    return None


def audio(ctx: Any, cid: str) -> Path:
    """The converted ``audio.wav`` of ``cid`` (InvalidInput if convert has not run)."""
    wav: Path = ctx.store.path(cid, "audio.wav")
    if wav.is_file():
        return wav
    if wav.with_name("audio.opus").is_file():  # cleanup_and_compress removed it
        raise InvalidInput(
            f"content {cid!r} was compressed (audio.wav removed); "
            f"run convert --content {cid} --rewrite first"
        )
    raise InvalidInput(f"content {cid!r} has no audio.wav; run convert first")


def finish(
    ctx: Any, cid: str, turns: Sequence[dict[str, Any]], method: str, extra: Extra | None = None
) -> dict[str, Any]:
    """Write the turns, record the stage as done, and return the step's result."""
    doc = write(ctx.store, cid, turns, method, extra)
    info = {"speakers": len(doc["speakers"]), "method": method}
    ctx.mark(cid, "diarize", StageState.DONE, info=info)
    return {
        "status": Status.COMPLETED,
        "content": cid,
        "diarization": JSON_NAME,
        "speakers": len(doc["speakers"]),
        "turns": len(doc["turns"]),
    }
