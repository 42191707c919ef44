"""Throughput of a batch: N distinct copies of the bundled sample, run three ways in one run.

* ``sequential``: ``inv pipeline --jobs 1``;
* ``concurrent``: ``inv pipeline --jobs <CPU count>``;
* ``warm``: ``inv pipeline --workers`` per item (only when a broker and a worker per env
  answer; otherwise it is skipped with a note, never estimated).

Each way starts from an empty data folder, so every way does all the work. Reported per
way: wall time, items per minute, seconds of audio per wall-second, and CPU utilisation
(the CPU time of ``inv`` and everything it started / (wall x cores)), with ratios to the
sequential way.

Run with the dev env: ``.venv/bin/python -m benchmarks.throughput [--items 8]
[--json benchmarks/throughput.json --markdown benchmarks/throughput.md]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"
INV = [sys.executable, "-m", "invoke", "-r", str(ROOT)]


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def audio_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def make_items(folder: Path, n: int) -> list[Path]:
    """``n`` copies of the sample under distinct names (distinct content ids).

    The names carry this run's own token: warm workers keep their own state DB, and must
    not find an item done by an earlier run of this benchmark.
    """
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    paths = []
    for i in range(n):
        path = folder / f"talk-{token}-{i:02d}.wav"
        shutil.copy(SAMPLE, path)
        paths.append(path)
    return paths


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the command and its children, exit code, output tail)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
    return wall, cpu, proc.returncode, tail


def workers_up(env: dict[str, str]) -> str | None:
    """None when every env of the pipeline has a live warm worker, else why not."""
    proc = subprocess.run(
        [*INV, "workers"], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["the broker does not answer"])[-1]
    needed = {"convert", "transcribe", "diarize", "stitch", "cleanup"}
    missing = sorted(e for e in needed if f" {e} " not in proc.stdout)
    return f"no live worker for {', '.join(missing)}" if missing else None


def run_way(way: str, items: list[Path], scratch: Path) -> dict[str, Any]:
    data = scratch / f"data-{way}"
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1"}
    if way == "warm":
        why = workers_up(env)
        if why:
            return {"way": way, "skipped": why}
        sources = [a for p in items for a in ("--source", str(p))]
        # one chain per item, all sent at once; the workers' pools do the limiting
        wall, cpu, code, tail = timed([*INV, "pipeline", "--workers", *sources], env)
        if code:
            return {"way": way, "failed": tail}
    else:
        jobs = 1 if way == "sequential" else cpus()
        sources = [a for p in items for a in ("--source", str(p))]
        wall, cpu, code, tail = timed([*INV, "pipeline", "--jobs", str(jobs), *sources], env)
        if code:
            return {"way": way, "failed": tail}
    audio = sum(audio_seconds(p) for p in items)
    return {
        "way": way,
        "items": len(items),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "items_per_min": round(len(items) / wall * 60, 2),
        "audio_s_per_wall_s": round(audio / wall, 3),
        "cpu_utilisation": round(cpu / (wall * cpus()), 3),
    }


def markdown(doc: dict[str, Any]) -> str:
    base = next((w for w in doc["ways"] if w["way"] == "sequential" and "wall_s" in w), None)
    lines = [
        f"- Date: {doc['date']}; command: `{doc['command']}`",
        f"- Machine: {doc['machine']}; {doc['items']} items of {doc['item_seconds']:.1f} s",
        f"- Load average (1 min) at the start and the end: {doc['load'][0]}, {doc['load'][1]}",
        "",
        "| way | wall s | x sequential | items/min | audio s per wall s | CPU use |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in doc["ways"]:
        if "wall_s" not in w:
            lines.append(f"| {w['way']} | — | — | — | — | {w.get('skipped') or w.get('failed')} |")
            continue
        ratio = f"{w['wall_s'] / base['wall_s']:.2f}" if base else "—"
        lines.append(
            f"| {w['way']} | {w['wall_s']:.1f} | {ratio} | {w['items_per_min']:.1f} | "
            f"{w['audio_s_per_wall_s']:.2f} | {w['cpu_utilisation']:.0%} |"
        )
    lines += [
        "",
        "CPU use: the CPU time of `inv` and every process it started / (wall x cores). For",
        "`warm` that is the submitter alone: the warm workers' CPU time is not counted, so its",
        "CPU use is not comparable. `warm` sends every item's chain at once (`inv pipeline",
        "--workers`); each env's worker pool (its task's `concurrency`) limits how many run.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--ways", nargs="*", default=["sequential", "concurrent", "warm"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="signal4-throughput-") as tmp:
        scratch = Path(tmp)
        items = make_items(scratch / "media", args.items)
        ways = []
        for way in args.ways:
            result = run_way(way, items, scratch)
            print(json.dumps(result), flush=True)
            ways.append(result)
    doc = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.throughput " + " ".join(argv or sys.argv[1:]),
        "machine": f"{cpus()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        # other work on the machine (1-minute load average) when the run started and ended
        "load": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "items": args.items,
        "item_seconds": audio_seconds(SAMPLE),
        "ways": ways,
    }
    text = markdown(doc)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text("# Throughput of a batch\n\n" + text)
    return 0 if all("wall_s" in w or "skipped" in w for w in ways) else 1


if __name__ == "__main__":
    raise SystemExit(main())
