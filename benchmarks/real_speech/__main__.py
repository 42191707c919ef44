"""Run the diarization benchmark: ``python -m benchmarks.real_speech [options]``.

Needs the scorers (the ``bench`` group) and the step envs: ``nox -s bench -- [options]``
syncs both and runs this (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.real_speech import CLIPS, HELD_OUT, NOTICE, REFERENCE, clip_names
from benchmarks.real_speech import score as sc
from benchmarks.real_speech.run import ROOT, Runner, concatenate, read_json

DEFAULT_JSON = ROOT / "benchmarks" / "real_speech.json"
DEFAULT_MARKDOWN = ROOT / "benchmarks" / "real_speech.md"
LONG_CLIPS = [*clip_names(), "dev00"]  # 300 s of real meeting speech


def hypothesis(runner: Runner, cid: str, uri: str) -> tuple[Any, dict[str, Any]]:
    """The step's diarization of ``cid`` as an Annotation named ``uri``, and its JSON."""
    doc = read_json(runner.folder(cid) / "diarization.json")
    return sc.annotation(doc["turns"], uri), doc


def real_clips(runner: Runner, names: list[str], task: str) -> dict[str, Any]:
    """Convert and diarize each AMI clip; DER per clip and over the set, speaker counts."""
    from pyannote.core import Segment

    refs = sc.load_rttm(REFERENCE.read_text(encoding="utf-8"))
    scorer, parts = sc.Scorer(), {"tuned": sc.Scorer(), "held_out": sc.Scorer()}
    rows: dict[str, Any] = {}
    for name in names:
        cid, times = runner.convert_and(CLIPS / f"{name}.flac", task)
        hyp, doc = hypothesis(runner, cid, name)
        ref, uem = refs[name], Segment(0.0, 30.0)
        figures = scorer.add(ref, hyp, uem)
        parts["held_out" if name in HELD_OUT else "tuned"].add(ref, hyp, uem)
        rows[name] = {
            **figures,
            "fold": "held_out" if name in HELD_OUT else "tuned",
            "speakers": len(doc["speakers"]),
            "true_speakers": len(ref.labels()),
            "overlap_floor": sc.overlap_floor(ref),
            "overlap_turns": overlapping(doc["turns"]),
            "seconds": {step: round(s, 3) for step, s in times.items()},
            "real_time_factor": {step: round(s / 30.0, 4) for step, s in times.items()},
        }
        row = rows[name]
        print(
            f"{name}: DER {figures['collar_0']['der']:.3f} (floor {row['overlap_floor']:.3f})"
            f"  speakers {row['speakers']}/{row['true_speakers']}"
            f"  {task} {times[task]:.2f} s",
            flush=True,
        )
    n = max(len(rows), 1)
    return {
        "clips": rows,
        "set": scorer.total(),
        "mean_der": sum(r["collar_0"]["der"] for r in rows.values()) / n,
        "mean_overlap_floor": sum(r["overlap_floor"] for r in rows.values()) / n,
        "set_overlap_floor": set_floor(refs, names),
        "speaker_count_right": sum(r["speakers"] == r["true_speakers"] for r in rows.values()),
        "folds": {
            fold: {
                "clips": [c for c in names if (c in HELD_OUT) == (fold == "held_out")],
                **s.total(),
            }
            for fold, s in parts.items()
        },
    }


def set_floor(refs: dict[str, Any], names: list[str]) -> float:
    """The overlap floor over the whole set (speaker time weighted)."""
    total = speech = 0.0
    for name in names:
        ref = refs[name]
        total += sum(ref.label_timeline(x).support().duration() for x in ref.labels())
        speech += ref.get_timeline().support().duration()
    return (total - speech) / total if total else 0.0


def overlapping(turns: list[dict[str, Any]]) -> int:
    """How many pairs of turns of different speakers overlap in time."""
    count = 0
    for i, a in enumerate(turns):
        for b in turns[i + 1 :]:
            if b["start"] >= a["end"]:
                break
            count += a["speaker"] != b["speaker"]
    return count


def long_recording(runner: Runner, task: str, folder: Path) -> dict[str, Any]:
    """The clips one after another (300 s): each step's real-time factor, start-up included."""
    from pyannote.core import Annotation, Segment

    wav = folder / "long.wav"
    starts = concatenate([CLIPS / f"{name}.flac" for name in LONG_CLIPS], wav)
    cid, times = runner.convert_and(wav, task)
    duration = starts[-1] + 30.0
    refs = sc.load_rttm(REFERENCE.read_text(encoding="utf-8"))
    reference = Annotation(uri="long")
    for name, offset in zip(LONG_CLIPS, starts, strict=True):
        for segment, track, label in refs[name].itertracks(yield_label=True):
            moved = Segment(segment.start + offset, segment.end + offset)
            reference[moved, (name, track)] = label
    hyp, doc = hypothesis(runner, cid, "long")
    figures = sc.Scorer(collars=(0.0,)).add(reference, hyp, Segment(0.0, duration))
    return {
        "duration_s": duration,
        "clips": LONG_CLIPS,
        "seconds": {step: round(s, 3) for step, s in times.items()},
        "real_time_factor": {step: round(s / duration, 4) for step, s in times.items()},
        "der": figures["collar_0"]["der"],
        "speakers": len(doc["speakers"]),
        "true_speakers": len(reference.labels()),
        "load_average": os.getloadavg(),
    }


def espeak_set(runner: Runner, task: str) -> dict[str, Any]:
    """The generated espeak-ng conversations (benchmarks/conversations.py) and the sample."""
    from pyannote.core import Segment

    from benchmarks import conversations

    rows: dict[str, Any] = {}
    folders = {"sample": ROOT / "samples" / "two_speakers", **conversations.build()}
    for name, folder in folders.items():
        truth = read_json(folder / "truth.json")
        cid, times = runner.convert_and(folder / "audio.wav", task)
        hyp, doc = hypothesis(runner, cid, name)
        ref = sc.annotation(truth["turns"], name)
        figures = sc.Scorer(collars=(0.0,)).add(ref, hyp, Segment(0.0, truth["duration"]))
        rows[name] = {
            "der": figures["collar_0"]["der"],
            "missed": figures["collar_0"]["missed"],
            "false_alarm": figures["collar_0"]["false_alarm"],
            "confusion": figures["collar_0"]["confusion"],
            "speakers": len(doc["speakers"]),
            "true_speakers": len(truth["speakers"]),
            "duration_s": truth["duration"],
            "seconds": round(times[task], 3),
        }
        print(
            f"{name}: DER {rows[name]['der']:.3f} speakers {rows[name]['speakers']}/"
            f"{rows[name]['true_speakers']}",
            flush=True,
        )
    conv = {k: v for k, v in rows.items() if k != "sample"}
    small = [r for r in conv.values() if r["true_speakers"] <= 3]
    return {
        "clips": rows,
        "mean_der": sum(r["der"] for r in conv.values()) / max(len(conv), 1),
        "speaker_count_right": sum(r["speakers"] == r["true_speakers"] for r in conv.values()),
        "speaker_count_right_2_3": sum(r["speakers"] == r["true_speakers"] for r in small),
        "clips_2_3": len(small),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its record."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clip", action="append", default=[], help="only this AMI clip")
    parser.add_argument("--task", default="diarize", help="the diarize task (default: diarize)")
    parser.add_argument("--no-long", action="store_true", help="skip the 5-minute recording")
    parser.add_argument("--no-espeak", action="store_true", help="skip the espeak-ng set")
    parser.add_argument("--no-words", action="store_true", help="skip the cpWER conversation")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="the record (JSON)")
    parser.add_argument(
        "--markdown", type=Path, default=DEFAULT_MARKDOWN, help="the record (Markdown)"
    )
    args = parser.parse_args(argv)
    names = args.clip or clip_names()
    started = time.monotonic()
    doc: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.real_speech "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "task": args.task,
        "notice": NOTICE.name,
    }
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(Path(tmp) / "data")
        doc["real"] = real_clips(runner, names, args.task)
        if not args.no_long:
            doc["long"] = long_recording(runner, args.task, Path(tmp))
        if not args.no_espeak:
            doc["espeak"] = espeak_set(runner, args.task)
        if not args.no_words:
            from benchmarks.real_speech import words

            doc["words"] = words.conversation(runner, Path(tmp))
    doc["wall_s"] = round(time.monotonic() - started, 1)
    from benchmarks.real_speech import report

    args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    args.markdown.write_text(report.markdown(doc), encoding="utf-8")
    print(report.markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
