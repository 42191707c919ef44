"""Quality on the bundled sample: WER of transcribe; speaker count, DER, boundary error of diarize.

Run with the dev env: ``.venv/bin/python benchmarks/quality.py [--chunk-seconds S]``.
The steps run in their own envs through the dispatcher, on a throw-away data folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import tempfile
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


def der(
    truth: list[dict[str, Any]], hyp: list[dict[str, Any]], duration: float, step: float = 0.01
) -> float:
    """Frame-level diarization error (missed + false alarm + confusion) / speech, best mapping."""

    def label(turns: list[dict[str, Any]], t: float) -> str | None:
        return next((x["speaker"] for x in turns if x["start"] <= t < x["end"]), None)

    frames = [i * step for i in range(int(duration / step))]
    ref = [label(truth, t) for t in frames]
    out = [label(hyp, t) for t in frames]
    ref_names = sorted({r for r in ref if r})
    hyp_names = sorted({h for h in out if h})
    speech = sum(r is not None for r in ref)
    best = float("inf")
    pad = hyp_names + [None] * max(0, len(ref_names) - len(hyp_names))
    for perm in itertools.permutations(pad, len(ref_names)):
        mapping = dict(zip(perm, ref_names, strict=True))
        errors = sum(
            (mapping.get(h) if h else None) != r
            for r, h in zip(ref, out, strict=True)
            if r is not None or h is not None
        )
        best = min(best, errors)
    return best / max(speech, 1)


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


def main() -> int:
    """Run the steps on the sample and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    args = parser.parse_args()
    from signal4.envs.manifest import load
    from signal4.run import dispatch

    m = load(ROOT)
    truth = json.loads((SAMPLE / "truth.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SIGNAL4_DATA_DIR": tmp}
        os.environ.update(env)

        def run(task: str, *a: str) -> dict[str, Any]:
            outcome = dispatch.run(m, m.task(task), list(a), env_vars=env)
            if not outcome.ok:
                raise SystemExit(f"{task} {outcome.status}: {outcome.error}")
            print(f"{task}: {outcome.status} in {outcome.duration:.1f} s")
            return outcome.result

        cid = run(
            "convert",
            "--input",
            str(SAMPLE / "audio.wav"),
            "--chunk-seconds",
            str(args.chunk_seconds),
            "--overlap",
            "2",
        )["content"]
        for task in ("transcribe", "diarize", "stitch"):
            run(task, "--content", cid)
        folder = Path(tmp) / "content" / cid
        stitched = json.loads((folder / "transcript.json").read_text(encoding="utf-8"))
        dia = json.loads((folder / "diarization.json").read_text(encoding="utf-8"))
    ref = words(" ".join(t["text"] for t in truth["turns"]))
    hyp = words(" ".join(w["word"] for w in stitched["words"]))
    print(f"WER (transcribe + overlap dedup): {wer(ref, hyp):.3f} ({len(ref)} reference words)")
    print(f"speakers: found {len(dia['speakers'])}, true {len(truth['speakers'])}")
    print(f"DER: {der(truth['turns'], dia['turns'], truth['duration']):.3f}")
    print(f"mean turn-boundary error: {boundary_error(truth['turns'], dia['turns']):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
