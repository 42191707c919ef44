"""Quality: the bundled sample through the pipeline, and diarize on the conversation set.

Run with the dev env: ``.venv/bin/python -m benchmarks.quality [--chunk-seconds S]
[--clip NAME ...] [--no-sample] [--no-set] [--json FILE]``. The steps run in their own envs
through the dispatcher, on a throw-away data folder.

* **The sample** (``samples/two_speakers``): convert, transcribe, diarize and stitch; the
  word error rate of the transcript, and the speaker count, DER and boundary error of the
  diarization.
* **The conversation set** (``benchmarks/conversations.py``: espeak-ng conversations with
  2, 3 and 4 voices, one of about five minutes): convert and diarize each clip; per clip
  the speaker count, DER, mean boundary error and diarize's wall time (the step's whole
  process, start-up included) and real-time factor; then the means. Needs espeak-ng and
  sox.

DER here is frame-level (10 ms) missed speech + false alarm + speaker confusion over the
true speech, with the best one-to-one mapping of speakers and no forgiveness collar. (The
earlier version of this script let an extra, unmapped found speaker's false alarms go
uncounted; with no more speakers found than there are, the two agree exactly.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "two_speakers"


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(ref: list[str], hyp: list[str]) -> float:
    """Word error rate: (substitutions + deletions + insertions) / len(ref)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def frame_labels(turns: Sequence[dict[str, Any]], n: int, step: float) -> list[str | None]:
    """The speaker at each frame time ``i * step``: the first turn with start <= t < end."""
    out: list[str | None] = [None] * n
    for t in turns:
        first = max(0, int(t["start"] / step) - 1)
        last = min(n, int(t["end"] / step) + 2)
        for i in range(first, last):
            if out[i] is None and t["start"] <= i * step < t["end"]:
                out[i] = t["speaker"]
    return out


def der(
    truth: list[dict[str, Any]], hyp: list[dict[str, Any]], duration: float, step: float = 0.01
) -> float:
    """Frame-level diarization error (missed + false alarm + confusion) / speech, best mapping."""
    n = int(duration / step)
    ref = frame_labels(truth, n, step)
    out = frame_labels(hyp, n, step)
    ref_names = sorted({r for r in ref if r})
    hyp_names = sorted({h for h in out if h})
    scored = sum(1 for r, h in zip(ref, out, strict=True) if r is not None or h is not None)
    together: dict[tuple[str, str], int] = {}
    for r, h in zip(ref, out, strict=True):
        if r is not None and h is not None:
            together[(h, r)] = together.get((h, r), 0) + 1
    pad: list[str | None] = [*hyp_names, *[None] * max(0, len(ref_names) - len(hyp_names))]
    best = max(
        sum(together.get((h, r), 0) for h, r in zip(perm, ref_names, strict=True) if h)
        for perm in itertools.permutations(pad, len(ref_names))
    )
    speech = sum(r is not None for r in ref)
    return (scored - best) / max(speech, 1)


def boundary_error(truth: list[dict[str, Any]], hyp: list[dict[str, Any]]) -> float:
    """Mean distance (s) from each true speaker change to the nearest found one."""
    true_changes = [(a["end"] + b["start"]) / 2 for a, b in itertools.pairwise(truth)]
    found = [
        (a["end"] + b["start"]) / 2
        for a, b in itertools.pairwise(hyp)
        if a["speaker"] != b["speaker"]
    ]
    if not found:
        return float("inf")
    return sum(min(abs(c - f) for f in found) for c in true_changes) / len(true_changes)


def scores(truth: dict[str, Any], dia: dict[str, Any]) -> dict[str, Any]:
    """Speaker count, DER and boundary error of a diarization against its truth."""
    return {
        "speakers": len(dia["speakers"]),
        "true_speakers": len(truth["speakers"]),
        "der": round(der(truth["turns"], dia["turns"], truth["duration"]), 4),
        "boundary_error_s": round(boundary_error(truth["turns"], dia["turns"]), 3),
    }


class Runner:
    """Runs steps in their envs through the dispatcher, on one data folder."""

    def __init__(self, data: str) -> None:
        from signal4.envs.manifest import load

        self.manifest = load(ROOT)
        self.env = {"SIGNAL4_DATA_DIR": data}
        os.environ.update(self.env)
        self.data = Path(data)

    def run(self, task: str, *args: str, quiet: bool = False) -> tuple[dict[str, Any], float]:
        """The step's result and its wall time; SystemExit if it failed."""
        from signal4.run import dispatch

        m = self.manifest
        outcome = dispatch.run(m, m.task(task), list(args), env_vars=self.env)
        if not outcome.ok:
            raise SystemExit(f"{task} {outcome.status}: {outcome.error}")
        if not quiet:
            print(f"{task}: {outcome.status} in {outcome.duration:.1f} s")
        return outcome.result, outcome.duration

    def folder(self, cid: str) -> Path:
        return self.data / "content" / cid


def sample(chunk_seconds: float) -> dict[str, Any]:
    """The sample through convert, transcribe, diarize and stitch: WER and diarization."""
    truth = json.loads((SAMPLE / "truth.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(tmp)
        result, _ = runner.run(
            "convert",
            "--input",
            str(SAMPLE / "audio.wav"),
            "--chunk-seconds",
            str(chunk_seconds),
            "--overlap",
            "2",
        )
        cid = result["content"]
        for task in ("transcribe", "diarize", "stitch"):
            runner.run(task, "--content", cid)
        folder = runner.folder(cid)
        stitched = json.loads((folder / "transcript.json").read_text(encoding="utf-8"))
        dia = json.loads((folder / "diarization.json").read_text(encoding="utf-8"))
    ref = words(" ".join(t["text"] for t in truth["turns"]))
    hyp = words(" ".join(w["word"] for w in stitched["words"]))
    out = {"wer": round(wer(ref, hyp), 4), "reference_words": len(ref), **scores(truth, dia)}
    print(f"WER (transcribe + overlap dedup): {out['wer']:.3f} ({len(ref)} reference words)")
    print(f"speakers: found {out['speakers']}, true {out['true_speakers']}")
    print(f"DER: {out['der']:.3f}")
    print(f"mean turn-boundary error: {out['boundary_error_s']:.3f} s")
    return out


def conversation_set(names: Sequence[str], task: str) -> dict[str, Any]:
    """Diarize every clip of the conversation set; per-clip scores and the means."""
    from benchmarks import conversations

    folders = conversations.build(names=names)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(tmp)
        for name, folder in folders.items():
            truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
            result, _ = runner.run("convert", "--input", str(folder / "audio.wav"), quiet=True)
            cid = result["content"]
            _, seconds = runner.run(task, "--content", cid, quiet=True)
            dia = json.loads((runner.folder(cid) / "diarization.json").read_text("utf-8"))
            row = {
                "duration_s": truth["duration"],
                "turns": len(truth["turns"]),
                **scores(truth, dia),
                "diarize_s": round(seconds, 2),
                "real_time_factor": round(seconds / truth["duration"], 4),
            }
            rows[name] = row
            print(
                f"{name:12s} {row['true_speakers']} voices {row['duration_s']:6.1f} s: "
                f"speakers {row['speakers']}/{row['true_speakers']}  DER {row['der']:.3f}  "
                f"boundary {row['boundary_error_s']:.3f} s  diarize {seconds:.2f} s",
                flush=True,
            )
    summary = summarise(rows)
    print_table(rows, summary)
    return {"clips": rows, "summary": summary}


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The means over the set, and the long clip's speed."""
    n = len(rows)
    right = [r["speakers"] == r["true_speakers"] for r in rows.values()]
    upto3 = [r for r in rows.values() if r["true_speakers"] <= 3]
    bounds = [r["boundary_error_s"] for r in rows.values() if math.isfinite(r["boundary_error_s"])]
    longest = max(rows, key=lambda name: rows[name]["duration_s"]) if rows else None
    return {
        "clips": n,
        "mean_der": round(sum(r["der"] for r in rows.values()) / max(n, 1), 4),
        "speaker_count_right": sum(right),
        "speaker_count_right_2_3_voices": sum(r["speakers"] == r["true_speakers"] for r in upto3),
        "clips_2_3_voices": len(upto3),
        "mean_boundary_error_s": round(sum(bounds) / max(len(bounds), 1), 3),
        "clips_without_any_change_found": n - len(bounds),
        "long_clip": longest,
        "long_clip_diarize_s": rows[longest]["diarize_s"] if longest else None,
        "long_clip_real_time_factor": rows[longest]["real_time_factor"] if longest else None,
    }


def print_table(rows: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    """The set as a Markdown table, as the README has it."""
    print()
    print("| clip | voices | length | turns | speakers found | DER | boundary error | diarize |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| `{name}` | {r['true_speakers']} | {r['duration_s']:.0f} s | {r['turns']} | "
            f"{r['speakers']} | {r['der']:.3f} | {r['boundary_error_s']:.3f} s | "
            f"{r['diarize_s']:.1f} s |"
        )
    s = summary
    print(
        f"| **mean** | | | | {s['speaker_count_right']}/{s['clips']} right "
        f"({s['speaker_count_right_2_3_voices']}/{s['clips_2_3_voices']} of 2-3 voices) | "
        f"{s['mean_der']:.3f} | {s['mean_boundary_error_s']:.3f} s | |"
    )
    if s["long_clip"]:
        print(
            f"\nlong clip {s['long_clip']}: diarize {s['long_clip_diarize_s']:.2f} s "
            f"(the step's process, start-up included), real-time factor "
            f"{s['long_clip_real_time_factor']:.4f}"
        )


def main() -> int:
    """Run the sample and the conversation set; print the numbers."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--clip", action="append", default=[], help="only this clip; repeatable")
    parser.add_argument("--no-sample", action="store_true", help="skip the pipeline sample")
    parser.add_argument("--no-set", action="store_true", help="skip the conversation set")
    parser.add_argument(
        "--task", default="diarize", help="the diarize task for the set (default: diarize)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    doc: dict[str, Any] = {}
    if not args.no_sample:
        doc["sample"] = sample(args.chunk_seconds)
    if not args.no_set:
        print()
        doc["set"] = conversation_set(args.clip, args.task)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
