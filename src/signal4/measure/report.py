"""Tables of an ``inv measure`` JSON document, for the terminal (rich) and for Markdown.

Each table is built once as plain rows (:func:`tables`) and then rendered either way, so
the terminal and ``benchmarks/startup.md`` never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signal4.console import human_bytes
from signal4.envs.manifest import FULL_ENV
from signal4.measure import ways
from signal4.measure.baseline import Verdict
from signal4.measure.doc import FAILED, SKIPPED, Document, Measurement, TaskResult
from signal4.measure.ways import (
    FULL_DIRECT,
    FULL_UV,
    REFERENCE,
    SUB_DIRECT,
    TARGET_RATIO,
    WARM,
    WARM_TARGET_MS,
)


@dataclass(frozen=True)
class TableData:
    """A titled table of strings; ``right`` names the right-aligned columns."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: frozenset[str] = frozenset()
    note: str = ""


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _median(t: TaskResult, way: str) -> str:
    result = t.ways.get(way)
    if result is None:
        return _s(None)
    return "failed" if result.error else _s(result.summary.median_s)


def _savings(t: TaskResult, way: str) -> str:
    result = t.ways.get(way)
    ratio = result.summary.ratio_to_sub_direct if result else None
    return "—" if not ratio else f"{1 - 1 / ratio:.0%}"


def _ms(us: int) -> str:
    return f"{us / 1000:.0f} ms"


def _measured(doc: Document) -> list[tuple[str, TaskResult, Measurement]]:
    """The tasks whose probe ran, with their measurements."""
    return [
        (n, t, t.measurement)
        for n, t in doc.tasks.items()
        if t.status != SKIPPED and t.measurement is not None
    ]


def startup_table(doc: Document) -> TableData:
    """The design note's table: the old way (full env, uv run) against ours (sub-env, direct)."""
    rows = []
    for name, t, _ in _measured(doc):
        seed = doc.seed.get(t.env)
        rows.append(
            (
                name,
                _median(t, FULL_UV),
                _median(t, SUB_DIRECT),
                _savings(t, FULL_UV),
                f"{seed.full_s:.2f}" if seed else "—",
                f"{seed.sub_s:.2f}" if seed else "—",
                f"{seed.savings:.0%}" if seed else "—",
            )
        )
    columns = ("task", "full env", "sub-env", "savings", "note: full", "note: sub", "note: savings")
    return TableData(
        title="start-up to ready: median seconds, against the design note",
        columns=columns,
        rows=tuple(rows),
        right=frozenset(columns[1:]),
        note="full env: `uv run` in the monolithic env, the original worker's way. sub-env: the "
        "task's env's interpreter, the dispatcher's way. savings = 1 - sub-env / full env, "
        "from the median of per-round ratios. note: the design note's figures (method unknown).",
    )


def ways_table(doc: Document) -> TableData:
    """Every launch way of the registry's launches table: median seconds, ratio to sub direct."""
    shown = ways.in_table(ways.LAUNCHES_TABLE)

    def cell(t: TaskResult, way: str) -> str:
        result = t.ways.get(way)
        ratio = result.summary.ratio_to_sub_direct if result else None
        text = _median(t, way)
        return text if not ratio or way == REFERENCE else f"{text} ({ratio:.2f}x)"

    rows = []
    for name, t, m in _measured(doc):
        overhead = m.uv_overhead_s
        rows.append(
            (
                name,
                t.env,
                str(m.runs),
                *(cell(t, way.name) for way in shown),
                _savings(t, FULL_DIRECT),
                f"{_s(overhead.full)} / {_s(overhead.sub)}",
            )
        )
    columns = (
        "task",
        "env",
        "runs",
        *(way.column for way in shown),
        "saved vs full direct",
        "uv's own time: full / sub",
    )
    return TableData(
        title="every launch way: median seconds (ratio to sub direct)",
        columns=columns,
        rows=tuple(rows),
        right=frozenset(columns[2:]),
        note="uv run: `uv run --locked` (checks the lock and the env at each launch); direct: the "
        "env's interpreter. Ratios are medians of per-round ratios. uv's own time: median of "
        "per-round (uv run - direct). The step envs are compiled when they are synced; "
        "`[tool.uv]` sets no `compile-bytecode`, so `uv run` does not re-check it.",
    )


def warm_table(doc: Document) -> TableData:
    """The warm way (a ping to an idle warm worker) next to the cold sub-env and the monolith."""

    def ms(t: TaskResult, way: str) -> str:
        result = t.ways.get(way)
        value = result.summary.median_s if result else None
        return "—" if result is None or result.error or value is None else f"{value * 1000:.0f}"

    def ms1(seconds: float | None) -> str:
        return "—" if seconds is None else f"{seconds * 1000:.1f}"

    rows = []
    for name, t, _ in _measured(doc):
        warm = t.ways.get(WARM)
        if warm is None or not warm.samples_ns or warm.summary.median_s is None:
            continue
        p50 = warm.summary.median_s * 1000
        sub = t.ways.get(SUB_DIRECT)
        cold = sub.summary.median_s if sub else None
        rows.append(
            (
                name,
                t.env,
                str(len(warm.samples_ns)),
                f"{p50:.1f}",
                f"{ms1(warm.summary.min_s)} / {ms1(warm.summary.max_s)}",
                ms(t, SUB_DIRECT),
                ms(t, FULL_DIRECT),
                ms(t, FULL_UV),
                "—" if not cold else f"{1 - p50 / 1000 / cold:.1%}",
                "yes" if p50 <= WARM_TARGET_MS else "no",
            )
        )
    columns = (
        "task",
        "env",
        "runs",
        "warm p50 ms",
        "warm min / max ms",
        "cold sub direct ms",
        "monolith direct ms",
        "monolith uv run ms",
        "saved vs cold sub",
        f"p50 <= {WARM_TARGET_MS:.0f} ms",
    )
    return TableData(
        title="warm workers: submit to step ready",
        columns=columns,
        rows=tuple(rows),
        right=frozenset(columns[2:]),
        note="warm: `signal4.ping` sent to the env's queue, answered by an idle `inv worker` "
        "whose pool process imported the step at start, timed until its reply is back (Redis "
        "broker and result backend). cold: a new process in the sub-env to the step's ready "
        "line. Medians; a way not measured in this run shows —.",
    )


def floors_table(doc: Document) -> TableData:
    """Sub-env direct against the registry's floors: Python's own start-up, the necessary floor."""
    floors = (*ways.in_table(ways.FLOORS_TABLE), ways.get(REFERENCE))
    rows = []
    for name, t, m in _measured(doc):
        tgt = m.target
        ratio = tgt.ratio_to_floor
        verdict = "—" if ratio is None else ("met" if tgt.met else "missed")
        mods = m.floor_modules
        shown = ", ".join(mods[:6]) + (f" +{len(mods) - 6}" if len(mods) > 6 else "")
        rows.append(
            (
                name,
                *(_median(t, way.name) for way in floors),
                "—" if ratio is None else f"{ratio:.2f}x",
                verdict,
                shown or "(none)",
            )
        )
    figures = (*(way.column for way in floors), "sub / floor")
    return TableData(
        title="floors: median seconds",
        columns=("task", *figures, f"≤ {TARGET_RATIO}x", "third-party packages the task imports"),
        rows=tuple(rows),
        right=frozenset(figures),
        note="-c pass: the sub-env's Python starting and exiting. floor (the necessary floor): "
        "it importing only the task's work imports (the third-party modules the probe's code "
        "imported, and the stdlib modules our own code imported), read from its -X importtime "
        "trace; sub / floor is what our own code costs. Target: sub direct within 1.15x of "
        "the floor.",
    )


def imports_table(doc: Document) -> TableData:
    """Where import time goes: project, third-party, stdlib; the slowest project module."""
    rows = []
    for name, _, m in _measured(doc):
        imp = m.imports
        kinds = imp.self_us_by_kind
        project = imp.top_project
        slow = f"{project[0].module} ({_ms(project[0].cumulative_us)})" if project else "—"
        pkgs = ", ".join(
            f"{k} {_ms(v)}" for k, v in list(imp.third_party_self_us_by_package.items())[:3]
        )
        rows.append(
            (
                name,
                _ms(imp.total_us),
                _ms(kinds["project"]),
                _ms(kinds["third-party"]),
                _ms(kinds["stdlib"]),
                slow,
                pkgs or "—",
            )
        )
    return TableData(
        title="import time: one -X importtime run of sub direct",
        columns=(
            "task",
            "all",
            "project",
            "third-party",
            "stdlib",
            "slowest project module (cumulative)",
            "heaviest third-party packages",
        ),
        rows=tuple(rows),
        right=frozenset({"all", "project", "third-party", "stdlib"}),
        note="project / third-party / stdlib: self time of those modules; they add up to all. "
        "-X importtime adds overhead of its own.",
    )


def disk_table(doc: Document) -> TableData | None:
    """Env sizes next to the design note's."""
    disk = doc.disk
    if not disk:
        return None
    seed = doc.seed_sizes
    rows = []
    for name, e in disk.envs.items():
        if e.size is None:
            rows.append((name, e.state, "—", "—", "—", seed.get(name, "—")))
            continue
        rows.append(
            (
                "full (monolithic)" if name == FULL_ENV else name,
                e.state,
                str(e.size.packages),
                human_bytes(e.size.apparent_bytes),
                human_bytes(e.size.unique_bytes),
                seed.get(name, "—"),
            )
        )
    rows.append(
        (
            "all sub-envs together",
            "",
            "",
            human_bytes(disk.sub_envs_apparent_bytes),
            human_bytes(disk.sub_envs_unique_bytes),
            "",
        )
    )
    if disk.full_beyond_sub_envs_bytes is not None:
        beyond = human_bytes(disk.full_beyond_sub_envs_bytes)
        rows.append(("full env beyond the sub-envs", "", "", "", beyond, ""))
    if disk.uv_cache is not None:
        c = disk.uv_cache
        rows.append(
            (
                f"uv cache ({c.path})",
                "",
                "",
                human_bytes(c.apparent_bytes),
                human_bytes(c.unique_bytes),
                "",
            )
        )
        rows.append(("uv cache beyond the envs", "", "", "", human_bytes(c.beyond_envs_bytes), ""))
    rows.append(("envs + cache on disk", "", "", "", human_bytes(disk.all_unique_bytes), ""))
    return TableData(
        title="environment sizes",
        columns=("env", "state", "packages", "size", "unique size", "design note"),
        rows=tuple(rows),
        right=frozenset({"packages", "size", "unique size"}),
        note="unique size counts each hard-linked file once. uv hard-links envs' files from its "
        "cache, so envs share most bytes with the cache and with each other; each env's "
        'compiled bytecode is its own. The "beyond" rows count only inodes not seen in the '
        "rows above them; the last row is what envs and cache really occupy together.",
    )


def problems(doc: Document) -> list[str]:
    """One line per skipped or failed task, saying what to do."""
    lines = []
    for name, t in doc.tasks.items():
        if t.status == SKIPPED:
            hint = f"; run: {t.sync_command}" if t.sync_command else ""
            lines.append(f"skipped {name}: {t.reason}{hint}")
        elif t.status == FAILED:
            lines.append(f"FAILED {name}: {t.reason}")
        for note in t.notes:
            lines.append(f"{name}: {note}")
    return lines


def tables(doc: Document) -> list[TableData]:
    """Every table of the report, in order."""
    result = [
        startup_table(doc),
        ways_table(doc),
        warm_table(doc),
        floors_table(doc),
        imports_table(doc),
    ]
    disk = disk_table(doc)
    if disk:
        result.append(disk)
    return [t for t in result if t.rows]


def check_table(verdicts: Sequence[Verdict], tolerance: float) -> TableData:
    """The baseline comparison."""
    rows = []
    for v in verdicts:
        state = "REGRESSED" if v.regressed else (v.note or "ok")
        rows.append(
            (
                v.task,
                "—" if v.baseline is None else f"{v.baseline:.2f}x",
                "—" if v.current is None else f"{v.current:.2f}x",
                state,
            )
        )
    return TableData(
        title=f"check against baseline (sub-env direct / floor, tolerance {tolerance:.0%})",
        columns=("task", "baseline", "now", "verdict"),
        rows=tuple(rows),
        right=frozenset({"baseline", "now"}),
    )


def to_rich(table: TableData) -> Any:
    """Return a rich Table."""
    from rich.table import Table

    out = Table(title=table.title, caption=table.note or None)
    for col in table.columns:
        out.add_column(col, justify="right" if col in table.right else "left")
    for row in table.rows:
        out.add_row(*row)
    return out


def to_markdown(table: TableData) -> str:
    """Return a Markdown table with its title as a heading and its note below."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---:" if c in table.right else "---" for c in table.columns) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines)


def _list_item(text: str) -> str:
    """A Markdown list item: the first line, then any further lines as a code block."""
    head, _, rest = text.partition("\n")
    if not rest:
        return f"- {head}"
    block = "\n".join(f"  {line}" for line in ["```", *rest.splitlines(), "```"])
    return f"- {head}\n\n{block}\n"


def markdown(doc: Document, command: str) -> str:
    """Return the whole report as Markdown (what ``benchmarks/startup.md`` holds)."""
    machine = doc.machine
    load = ", ".join(f"{x:.2f}" for x in machine.loadavg_start)
    header = [
        "<!-- generated by `inv measure`; do not edit by hand -->",
        "## Start-up and size measurements",
        "",
        f"- Date: {doc.created}; command: `{command}`; wall time {doc.wall_s:.0f} s",
        f"- Machine: {machine.nproc} CPUs, {machine.cpu}, {machine.platform}; "
        f"Python {machine.python}; {machine.uv}; load average at start {load}",
        f"- Each way: {doc.settings.warmups} warm-up round(s), then the runs shown per task "
        "in rotating order; what each way runs is in `benchmarks/README.md`.",
        "",
    ]
    body = [to_markdown(t) for t in tables(doc)]
    issues = problems(doc)
    if issues:
        body.append("### problems\n\n" + "\n".join(_list_item(issue) for issue in issues))
    return "\n".join(header) + "\n" + "\n\n".join(body) + "\n"
