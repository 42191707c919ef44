"""Words to speakers, sentences and turns: transcript.json, .vtt, .srt and .rttm.

Where the runner has put the names of known voices in the item's ``speakers.json``
(:mod:`signal4.voices.names`), the outputs show each named speaker's name, and the
diarizer's label elsewhere. The words are grouped by label, never by name, so the names
can change later without a new stitch: :func:`relabel` rewrites the outputs from
transcript.json with new names, and gives what a new stitch would (the runner calls it
when names change; see docs/voices.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from signal4.codes import StageState, Status
from signal4.stepkit import diarization
from signal4.stepkit.step import Context, InvalidInput, Step, keeps
from signal4.voices import names as voice_names

WORDS = "transcript_words.json"
TRANSCRIPT = "transcript.json"
RTTM = "transcript.rttm"
UNKNOWN = "UNKNOWN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The step has no options of its own."""


def ready() -> None:
    import pysbd  # noqa: F401

    import signal4.content.settings  # noqa: F401


def dedup_overlap(words: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop words repeated by chunk overlap: a later chunk's word starting inside the previous
    chunk's last word time is a duplicate, unless the previous chunk has nothing there."""
    out: list[dict[str, Any]] = []
    last_end_by_chunk: dict[int, float] = {}
    for w in words:
        last_end_by_chunk[w.get("chunk", 0)] = max(
            last_end_by_chunk.get(w.get("chunk", 0), 0.0), w["end"]
        )
    for w in words:
        chunk = w.get("chunk", 0)
        prev_end = last_end_by_chunk.get(chunk - 1)
        if prev_end is not None and w["start"] < prev_end - 0.05:
            continue
        out.append(dict(w))
    return sorted(out, key=lambda w: (w["start"], w["end"]))


#: Overlaps of a word with two turns closer than this are a tie (a word's times are 10 ms).
TIE = 0.01


def assign_speakers(
    words: Sequence[dict[str, Any]], turns: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Give each word the speaker whose turn overlaps it most (nearest turn if none does).

    Where two people talk at once their turns overlap, and a word inside both is a tie:
    it goes to the speaker who held the floor, whose turn started first. A transcriber
    follows one voice through an overlap, the one already talking; on the benchmark's
    conversation with overlaps (benchmarks/real_speech/words.py) this rule gives every
    word the speaker the true turns give it, where the diarizer's strongest voice at
    each moment (its exclusive turns) lost five words in 254.
    """
    out = []
    for w in words:
        best, best_overlap, best_start, best_dist = UNKNOWN, 0.0, float("inf"), float("inf")
        for t in turns:
            overlap = min(w["end"], t["end"]) - max(w["start"], t["start"])
            tie = overlap > 0 and abs(overlap - best_overlap) <= TIE
            if overlap > best_overlap + TIE or (tie and t["start"] < best_start):
                best, best_overlap, best_start = t["speaker"], overlap, t["start"]
            elif best_overlap <= 0:
                dist = max(t["start"] - w["end"], w["start"] - t["end"], 0.0)
                if dist < best_dist:
                    best, best_dist = t["speaker"], dist
        out.append({**w, "speaker": best})
    return out


def segments(words: Sequence[dict[str, Any]], language: str | None) -> list[dict[str, Any]]:
    """Group words into speaker turns, then split each turn into sentences (pysbd)."""
    import pysbd

    seg = pysbd.Segmenter(
        language=language if language in {"en", "de", "fr", "es", "it"} else "en", clean=False
    )
    turns: list[list[dict[str, Any]]] = []
    for w in words:
        if turns and turns[-1][-1]["speaker"] == w["speaker"]:
            turns[-1].append(w)
        else:
            turns.append([w])
    out = []
    for turn in turns:
        text = " ".join(w["word"] for w in turn)
        sentences = [s.strip() for s in seg.segment(text) if s.strip()]
        i = 0
        for sentence in sentences:
            n = len(sentence.split())
            part = turn[i : i + n] or turn[-1:]
            i += n
            out.append(
                {
                    "speaker": turn[0]["speaker"],
                    "start": part[0]["start"],
                    "end": part[-1]["end"],
                    "text": sentence,
                }
            )
    return out


def _ts(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_vtt(segs: Sequence[dict[str, Any]]) -> str:
    """Return the segments as WebVTT."""
    cues = [
        f"{_ts(s['start'], '.')} --> {_ts(s['end'], '.')}\n<v {s['speaker']}>{s['text']}\n"
        for s in segs
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def to_srt(segs: Sequence[dict[str, Any]]) -> str:
    """Return the segments as SubRip."""
    return "\n".join(
        f"{i}\n{_ts(s['start'], ',')} --> {_ts(s['end'], ',')}\n[{s['speaker']}] {s['text']}\n"
        for i, s in enumerate(segs, 1)
    )


def to_rttm(content_id: str, turns: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    """The diarization's turns as RTTM, each speaker under its name where it has one
    (spaces as underscores: a field of RTTM cannot hold one)."""
    shown = [
        {**t, "speaker": voice_names.rttm_name(names.get(t["speaker"], t["speaker"]))}
        for t in turns
    ]
    return diarization.rttm(content_id, shown)


def named(transcript: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``transcript`` with each segment's and word's ``speaker`` the name of its ``label``
    where it has one, else the label (a transcript from before names: its speakers are
    the labels)."""

    def show(part: dict[str, Any]) -> dict[str, Any]:
        label = str(part.get("label", part["speaker"]))
        return {**part, "speaker": names.get(label, label), "label": label}

    segs = [show(s) for s in transcript["segments"]]
    return {
        **transcript,
        "speakers": sorted({s["speaker"] for s in segs}),
        "names": {label: names[label] for label in sorted(names)},
        "segments": segs,
        "words": [show(w) for w in transcript["words"]],
    }


def publish(
    store: Any,
    cid: str,
    transcript: dict[str, Any],
    turns: Sequence[dict[str, Any]],
    names: dict[str, str],
    *,
    as_found: bool = False,
) -> dict[str, Any]:
    """Write the transcript with ``names``: .vtt, .srt, .rttm, then transcript.json (the
    stage's done mark; with ``as_found``, gzipped where compression left it so)."""
    doc = named(transcript, names)
    segs = doc["segments"]
    store.write_bytes(store.path(cid, "transcript.vtt"), to_vtt(segs).encode("utf-8"))
    store.write_bytes(store.path(cid, "transcript.srt"), to_srt(segs).encode("utf-8"))
    store.write_bytes(store.path(cid, RTTM), to_rttm(cid, turns, names).encode("utf-8"))
    out = store.path(cid, TRANSCRIPT)
    if as_found:
        voice_names.write_like(store, out, doc)
    else:
        store.write_json(out, doc)
    return doc


def relabel(store: Any, cid: str) -> bool:
    """Write ``cid``'s transcript again with the names its speakers.json gives now; False
    where it has no transcript yet (its stitch will use them)."""
    if not store.folder(cid).is_dir():
        return False
    path = store.path(cid, TRANSCRIPT)
    dia = diarization.read(store, cid)
    if dia is None or not (path.exists() or path.with_name(TRANSCRIPT + ".gz").exists()):
        return False
    transcript = store.read_json(path)
    names = voice_names.display(voice_names.read(store, cid))
    publish(store, cid, transcript, dia["turns"], names, as_found=True)
    return True


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    cid = options.content
    store = ctx.store
    if not store.folder(cid).is_dir():
        raise InvalidInput(
            f"content {cid!r} has no folder in the store; download and convert it first"
        )
    out = store.path(cid, TRANSCRIPT)
    if not options.rewrite and ctx.is_done(cid, out.name):
        return {"status": Status.SKIPPED, "content": cid, "transcript": out.name}
    words_path = store.path(cid, WORDS)
    if not (words_path.exists() or words_path.with_name(WORDS + ".gz").exists()):
        raise InvalidInput(f"content {cid!r} has no {WORDS}; run transcribe first")
    dia = diarization.read(store, cid)
    if dia is None:
        raise InvalidInput(f"content {cid!r} has no diarization; run diarize first")
    doc = store.read_json(words_path)
    words = assign_speakers(dedup_overlap(doc["words"]), dia["turns"])
    segs = segments(words, doc.get("language"))
    transcript = {"language": doc.get("language"), "segments": segs, "words": words}
    names = voice_names.display(voice_names.read(store, cid))
    published = publish(store, cid, transcript, dia["turns"], names)
    speakers = published["speakers"]
    ctx.mark(
        cid, "stitch", StageState.DONE, info={"segments": len(segs), "speakers": len(speakers)}
    )
    return {
        "status": Status.COMPLETED,
        "content": cid,
        "transcript": str(out),
        "segments": len(segs),
        "speakers": len(speakers),
        "named": len(published["names"]),
        "words": len(words),
    }


STEP = Step(
    name="stitch",
    description="Attribute words to speakers; write transcript.json, .vtt, .srt and .rttm.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="stitch",
    outputs_kept=keeps(TRANSCRIPT),
    params=lambda _options, _ctx: {},  # no options: its code and inputs are what matter
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
