"""The body of ``inv measure``: measure, print the tables, write JSON and Markdown, check.

Mistakes a user can fix raise :class:`~signal4.measure.errors.MeasureError` (a
:class:`~signal4.errors.Signal4Error`); tasks.py turns them into a one-line message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from signal4 import readme
from signal4.envs.manifest import Manifest, load
from signal4.measure import report
from signal4.measure.baseline import (
    DEFAULT_TOLERANCE,
    Baseline,
    check_tolerance,
    check_ways,
    load_baseline,
)
from signal4.measure.doc import Document, write_json
from signal4.measure.session import DEFAULT_WARMUPS, measure, select_tasks
from signal4.measure.ways import select as select_ways

#: Where ``inv measure`` writes by default (removed by ``inv clean``); the committed record
#: is written with ``--json benchmarks/startup.json --markdown benchmarks/startup.md``.
DEFAULT_OUTPUT: Final = ".measure"


def _write(
    m: Manifest, doc: Document, command: str, json_path: Path | None, markdown_path: Path | None
) -> list[str]:
    """Write the JSON and the Markdown (and the benchmarks page's copy of the record); say
    what was."""
    json_path = json_path or m.root / DEFAULT_OUTPUT / "startup.json"
    markdown_path = markdown_path or m.root / DEFAULT_OUTPUT / "startup.md"
    write_json(doc, json_path)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(report.markdown(doc, command), encoding="utf-8")
    said = [f"wrote {json_path} and {markdown_path}; wall time {doc.wall_s:.0f} s"]
    if markdown_path.resolve() == (m.root / readme.MEASURE_RECORD).resolve():
        path = m.root / readme.MEASURE_PAGE
        text = path.read_text(encoding="utf-8")
        path.write_text(
            readme.readme_with_measurements(text, markdown_path.read_text("utf-8")),
            encoding="utf-8",
        )
        said.append(f"updated the measurements in {path}")
    return said


def from_flags(
    argv: Sequence[str],
    *,
    tasks: Sequence[str],
    ways: Sequence[str],
    runs: int,
    warmups: int,
    json: str,
    markdown: str,
    check: str,
    tolerance: float,
    no_disk: bool,
    broker: str,
) -> int:
    """``inv measure`` as typed (empty: the default), ``argv`` being its command line."""
    return run(
        tasks=tasks,
        ways=ways,
        runs=runs or None,
        warmups=warmups,
        json_path=Path(json) if json else None,
        markdown_path=Path(markdown) if markdown else None,
        check_path=Path(check) if check else None,
        tolerance=tolerance,
        disk=not no_disk,
        command="inv " + " ".join(argv) if argv else "inv measure",
        broker=broker or None,
    )


def run(
    *,
    tasks: Sequence[str] = (),
    ways: Sequence[str] = (),
    runs: int | None = None,
    warmups: int = DEFAULT_WARMUPS,
    json_path: Path | None = None,
    markdown_path: Path | None = None,
    check_path: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    disk: bool = True,
    command: str = "inv measure",
    broker: str | None = None,
) -> int:
    """Measure, print, write JSON and Markdown, check against a baseline; return the exit code."""
    from signal4.console import banner, console, err_console

    m = load()
    chosen_tasks = select_tasks(m, tasks)
    chosen_ways = select_ways(ways)
    baseline: Baseline | None = None
    if check_path:
        baseline = load_baseline(check_path, tolerance)
        check_ways(chosen_ways)
    check_tolerance(tolerance)
    out = console()
    banner("inv measure")
    err = err_console()
    doc = measure(
        m,
        chosen_tasks,
        chosen_ways,
        runs=runs,
        warmups=warmups,
        disk=disk,
        on_progress=lambda msg: err.print(f"[dim]… {msg}[/]"),
        broker=broker,
    )
    for table in report.tables(doc):
        out.print(report.to_rich(table))
    for line in report.problems(doc):
        out.print(f"[yellow]{line}[/]" if line.startswith("skipped") else f"[bold red]{line}[/]")
    for line in _write(m, doc, command, json_path, markdown_path):
        out.print(line)
    code = 0
    if baseline is not None:
        verdicts = baseline.check(doc)
        out.print(report.to_rich(report.check_table(verdicts, baseline.tolerance)))
        regressed = [v.task for v in verdicts if v.regressed]
        if regressed:
            out.print(
                f"[bold red]start-up regressed beyond {tolerance:.0%}: {', '.join(regressed)}[/]"
            )
            code = 1
    failed = doc.failed_tasks()
    if failed:
        out.print(f"[bold red]probe failed for: {', '.join(failed)}[/]")
        code = 1
    return code
