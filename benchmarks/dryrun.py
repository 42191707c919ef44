"""What the rerun check costs: ``inv pipeline --dry-run`` over N done items, with and without it.

The sample goes through the pipeline once for real; its state DB rows, provenance and
content folder are then cloned for N distinct copies of the file (distinct content ids),
so every item is done and has a record to compare. Timed side by side, interleaved,
``--repeat`` times each, in one run:

* ``--dry-run --rerun-triggers none``: the plan without the check (hashing each file for
  its content id, reading the state DB);
* ``--dry-run`` (all four triggers): the same plus the check (one ``--params`` launch per
  pipeline task, env fingerprints, code digests, a ``stat`` per recorded input);
* ``inv status --stale``: the same check over everything in the state DB.

Run with the dev env: ``.venv/bin/python -m benchmarks.dryrun [--items 100]
[--json benchmarks/dryrun.json --markdown benchmarks/dryrun.md]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"
INV = [sys.executable, "-m", "invoke", "-r", str(ROOT)]
TABLES = ("content", "step_state", "provenance")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    got = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    return time.perf_counter() - started, got


def clone(data: Path, files: list[Path]) -> None:
    """Give each of ``files`` the first item's rows, records and content folder."""
    from signal4.stepkit.fetch import file_content_id

    con = sqlite3.connect(data / "state.db")
    (first,) = [r[0] for r in con.execute("SELECT id FROM content")]
    for path in files:
        cid = file_content_id(path)
        for table in TABLES:
            key = "id" if table == "content" else "content_id"
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {key} = ?", (first,))
            for row in rows.fetchall():
                values = [cid if c == key else v for c, v in zip(cols, row, strict=True)]
                marks = ", ".join("?" for _ in cols)
                con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", values)
        shutil.copytree(data / "content" / first, data / "content" / cid)
    con.commit()
    con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="signal4-dryrun-") as tmp:
        data, media = Path(tmp) / "data", Path(tmp) / "media"
        media.mkdir()
        env = {**os.environ, "SIGNAL4_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "200"}
        _took, got = run([*INV, "pipeline", "--source", str(SAMPLE)], env)
        if got.returncode != 0:
            print(got.stdout + got.stderr, file=sys.stderr)
            return 1
        files = []
        for i in range(args.items):
            path = media / f"talk-{i:03d}.wav"
            shutil.copy(SAMPLE, path)
            files.append(path)
        clone(data, files)
        ways = {
            "plan only (--rerun-triggers none)": [
                *INV,
                "pipeline",
                "--source",
                str(media),
                "--dry-run",
                "--rerun-triggers",
                "none",
            ],
            "plan + rerun check (all triggers)": [
                *INV,
                "pipeline",
                "--source",
                str(media),
                "--dry-run",
            ],
            "inv status --stale": [*INV, "status", "--stale"],
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeat):
            for name, cmd in ways.items():
                took, got = run(cmd, env)
                # every item is done and up to date: a way that plans any work is wrong
                if got.returncode != 0 or "convert →" in got.stdout:
                    print(got.stdout + got.stderr, file=sys.stderr)
                    return 1
                times[name].append(took)
        stale = run([*INV, "status", "--stale"], env)[1].stdout
        if "no items out of date" not in stale:
            print(stale, file=sys.stderr)
            return 1

    base = statistics.median(times["plan only (--rerun-triggers none)"])
    doc: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "python": platform.python_version(),
        "items": args.items,
        "repeat": args.repeat,
        "ways": {
            name: {
                "median_s": round(statistics.median(ts), 3),
                "min_s": round(min(ts), 3),
                "max_s": round(max(ts), 3),
                "ratio": round(statistics.median(ts) / base, 2),
            }
            for name, ts in times.items()
        },
    }
    lines = [
        f"# Dry-run cost over {args.items} done items",
        "",
        f"{doc['date']}, {doc['machine']}, Python {doc['python']}; medians of {args.repeat} "
        "interleaved runs (`benchmarks/dryrun.py`). Every item is done and has provenance; "
        "nothing is out of date, so each way checks everything and runs nothing.",
        "",
        "| way | median | min | max | ratio to plan only |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in doc["ways"].items():
        lines.append(
            f"| {name} | {row['median_s']:.2f} s | {row['min_s']:.2f} s | {row['max_s']:.2f} s | "
            f"{row['ratio']:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
