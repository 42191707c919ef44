"""Tables of an ``inv measure`` JSON document, for the terminal (rich) and for Markdown.

Each table is built once as plain rows (:func:`tables`) and then rendered either way, so
the terminal and ``benchmarks/startup.md`` never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal4.envs import housekeeping
from signal4.envs.housekeeping import human_bytes
from signal4.envs.manifest import FULL_ENV
from signal4.measure.core import (
    DEFAULT_TOLERANCE,
    DEFAULT_WARMUPS,
    FLOOR_IMPORTS,
    FLOOR_PASS,
    FULL_DIRECT,
    FULL_UV,
    SUB_DIRECT,
    SUB_UV,
    TARGET_RATIO,
    WARM,
    WARM_TARGET_MS,
    MeasureError,
    Verdict,
    check,
    failed_tasks,
    load_baseline,
    measure,
    select_tasks,
    select_ways,
    write_json,
)

#: Where ``inv measure`` writes by default (removed by ``inv clean``); the committed record
#: is written with ``--json benchmarks/startup.json --markdown benchmarks/startup.md``.
DEFAULT_OUTPUT = ".measure"


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


def _way(entry: Mapping[str, Any], way: str) -> Mapping[str, Any]:
    return entry.get("ways", {}).get(way) or {}


def _median(entry: Mapping[str, Any], way: str) -> str:
    data = _way(entry, way)
    if data.get("error"):
        return "failed"
    return _s(data.get("median_s"))


def _savings(entry: Mapping[str, Any], way: str) -> str:
    ratio = _way(entry, way).get("ratio_to_sub_direct")
    return "—" if not ratio else f"{1 - 1 / ratio:.0%}"


def _ms(us: int) -> str:
    return f"{us / 1000:.0f} ms"


def _measured(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(n, t) for n, t in doc["tasks"].items() if t["status"] != "skipped" and "ways" in t]


def startup_table(doc: Mapping[str, Any]) -> TableData:
    """The design note's table: the old way (full env, uv run) against ours (sub-env, direct)."""
    rows = []
    for name, t in _measured(doc):
        seed = doc.get("seed", {}).get(t["env"])
        rows.append(
            (
                name,
                _median(t, FULL_UV),
                _median(t, SUB_DIRECT),
                _savings(t, FULL_UV),
                f"{seed['full_s']:.2f}" if seed else "—",
                f"{seed['sub_s']:.2f}" if seed else "—",
                f"{seed['savings']:.0%}" if seed else "—",
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


def ways_table(doc: Mapping[str, Any]) -> TableData:
    """Every launch way: median seconds and the pairwise ratio to sub-env direct."""

    def cell(t: Mapping[str, Any], way: str) -> str:
        ratio = _way(t, way).get("ratio_to_sub_direct")
        text = _median(t, way)
        return text if not ratio or way == SUB_DIRECT else f"{text} ({ratio:.2f}x)"

    rows = []
    for name, t in _measured(doc):
        rows.append(
            (
                name,
                t["env"],
                str(t.get("runs", "")),
                cell(t, FULL_UV),
                cell(t, FULL_DIRECT),
                cell(t, SUB_UV),
                cell(t, SUB_DIRECT),
                _savings(t, FULL_DIRECT),
                " / ".join(_s(t.get("uv_overhead_s", {}).get(k)) for k in ("full", "sub")),
            )
        )
    columns = (
        "task",
        "env",
        "runs",
        "full uv run",
        "full direct",
        "sub uv run",
        "sub direct",
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
        "per-round (uv run - direct); with this project's `compile-bytecode = true`, each "
        "`uv run` also re-checks the bytecode of every file in the env.",
    )


def warm_table(doc: Mapping[str, Any]) -> TableData:
    """The warm way (a ping to an idle warm worker) next to the cold sub-env and the monolith."""

    def ms(t: Mapping[str, Any], way: str) -> str:
        data = _way(t, way)
        value = data.get("median_s")
        return "—" if data.get("error") or value is None else f"{value * 1000:.0f}"

    rows = []
    for name, t in _measured(doc):
        warm = _way(t, WARM)
        if not warm.get("samples_ns"):
            continue
        p50 = warm["median_s"] * 1000
        cold = _way(t, SUB_DIRECT).get("median_s")
        rows.append(
            (
                name,
                t["env"],
                str(len(warm["samples_ns"])),
                f"{p50:.1f}",
                f"{warm['min_s'] * 1000:.1f} / {warm['max_s'] * 1000:.1f}",
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


def floors_table(doc: Mapping[str, Any]) -> TableData:
    """Sub-env direct against Python's own start-up and the necessary floor."""
    rows = []
    for name, t in _measured(doc):
        tgt = t.get("target", {})
        ratio = tgt.get("ratio_to_floor")
        verdict = "—" if ratio is None else ("met" if tgt.get("met") else "missed")
        mods = t.get("floor_modules", [])
        shown = ", ".join(mods[:6]) + (f" +{len(mods) - 6}" if len(mods) > 6 else "")
        rows.append(
            (
                name,
                _median(t, FLOOR_PASS),
                _median(t, FLOOR_IMPORTS),
                _median(t, SUB_DIRECT),
                "—" if ratio is None else f"{ratio:.2f}x",
                verdict,
                shown or "(none)",
            )
        )
    return TableData(
        title="floors: median seconds",
        columns=(
            "task",
            "-c pass",
            "floor",
            "sub direct",
            "sub / floor",
            f"≤ {TARGET_RATIO}x",
            "third-party packages the task imports",
        ),
        rows=tuple(rows),
        right=frozenset({"-c pass", "floor", "sub direct", "sub / floor"}),
        note="-c pass: the sub-env's Python starting and exiting. floor (the necessary floor): "
        "it importing only the third-party modules the probe's code imported, read from its "
        "-X importtime trace. Target: sub direct within 1.15x of the floor.",
    )


def imports_table(doc: Mapping[str, Any]) -> TableData:
    """Where import time goes: project, third-party, stdlib; the slowest project module."""
    rows = []
    for name, t in _measured(doc):
        imp = t.get("imports")
        if not imp:
            continue
        kinds = imp["self_us_by_kind"]
        project = imp.get("top_project") or []
        slow = f"{project[0]['module']} ({_ms(project[0]['cumulative_us'])})" if project else "—"
        pkgs = ", ".join(
            f"{k} {_ms(v)}" for k, v in list(imp["third_party_self_us_by_package"].items())[:3]
        )
        rows.append(
            (
                name,
                _ms(imp["total_us"]),
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


def disk_table(doc: Mapping[str, Any]) -> TableData | None:
    """Env sizes next to the design note's."""
    disk = doc.get("disk")
    if not disk:
        return None
    seed = doc.get("seed_sizes", {})
    rows = []
    for name, e in disk["envs"].items():
        if "apparent_bytes" not in e:
            rows.append((name, e["state"], "—", "—", "—", seed.get(name, "—")))
            continue
        rows.append(
            (
                "full (monolithic)" if name == FULL_ENV else name,
                e["state"],
                str(e["packages"]),
                human_bytes(e["apparent_bytes"]),
                human_bytes(e["unique_bytes"]),
                seed.get(name, "—"),
            )
        )
    rows.append(
        (
            "all sub-envs together",
            "",
            "",
            human_bytes(disk["sub_envs_apparent_bytes"]),
            human_bytes(disk["sub_envs_unique_bytes"]),
            "",
        )
    )
    if "full_beyond_sub_envs_bytes" in disk:
        rows.append(
            (
                "full env beyond the sub-envs",
                "",
                "",
                "",
                human_bytes(disk["full_beyond_sub_envs_bytes"]),
                "",
            )
        )
    if "uv_cache" in disk:
        c = disk["uv_cache"]
        rows.append(
            (
                f"uv cache ({c['path']})",
                "",
                "",
                human_bytes(c["apparent_bytes"]),
                human_bytes(c["unique_bytes"]),
                "",
            )
        )
        rows.append(
            ("uv cache beyond the envs", "", "", "", human_bytes(c["beyond_envs_bytes"]), "")
        )
    rows.append(("envs + cache on disk", "", "", "", human_bytes(disk["all_unique_bytes"]), ""))
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


def problems(doc: Mapping[str, Any]) -> list[str]:
    """One line per skipped or failed task, saying what to do."""
    lines = []
    for name, t in doc["tasks"].items():
        if t["status"] == "skipped":
            hint = f"; run: {t['sync_command']}" if t.get("sync_command") else ""
            lines.append(f"skipped {name}: {t['reason']}{hint}")
        elif t["status"] == "failed":
            lines.append(f"FAILED {name}: {t['reason']}")
        for note in t.get("notes", []):
            lines.append(f"{name}: {note}")
    return lines


def tables(doc: Mapping[str, Any]) -> list[TableData]:
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


def markdown(doc: Mapping[str, Any], command: str) -> str:
    """Return the whole report as Markdown (what ``benchmarks/startup.md`` holds)."""
    m = doc["machine"]
    load = ", ".join(f"{x:.2f}" for x in m.get("loadavg_start", []))
    header = [
        "<!-- generated by `inv measure`; do not edit by hand -->",
        "## Start-up and size measurements",
        "",
        f"- Date: {doc['created']}; command: `{command}`; wall time {doc['wall_s']:.0f} s",
        f"- Machine: {m['nproc']} CPUs, {m['cpu']}, {m['platform']}; "
        f"Python {m['python']}; {m['uv']}; load average at start {load}",
        f"- Each way: {doc['settings']['warmups']} warm-up round(s), then the runs shown per task "
        "in rotating order; what each way runs is in `benchmarks/README.md`.",
        "",
    ]
    body = [to_markdown(t) for t in tables(doc)]
    issues = problems(doc)
    if issues:
        body.append("### problems\n\n" + "\n".join(_list_item(issue) for issue in issues))
    return "\n".join(header) + "\n" + "\n\n".join(body) + "\n"


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
    """The body of ``inv measure``: measure, print, write JSON and Markdown, check; exit code."""
    from signal4.commands.cli import UserError, manifest
    from signal4.console import banner, console, err_console

    m = manifest()
    try:
        chosen_tasks = select_tasks(m, tasks)
        chosen_ways = select_ways(ways)
        baseline = load_baseline(check_path) if check_path else None
        if baseline is not None and not {SUB_DIRECT, FLOOR_IMPORTS} <= set(chosen_ways):
            raise MeasureError("--check needs the ways sub-direct and floor-imports")
        if tolerance < 0:
            raise MeasureError("--tolerance must be 0 or more")
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
    except MeasureError as exc:
        raise UserError(str(exc)) from None
    for table in tables(doc):
        out.print(to_rich(table))
    for line in problems(doc):
        out.print(f"[yellow]{line}[/]" if line.startswith("skipped") else f"[bold red]{line}[/]")
    json_path = json_path or m.root / DEFAULT_OUTPUT / "startup.json"
    markdown_path = markdown_path or m.root / DEFAULT_OUTPUT / "startup.md"
    write_json(doc, json_path)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(markdown(doc, command), encoding="utf-8")
    out.print(f"wrote {json_path} and {markdown_path}; wall time {doc['wall_s']:.0f} s")
    if markdown_path.resolve() == (m.root / housekeeping.MEASURE_RECORD).resolve():
        readme = m.root / "README.md"
        text = readme.read_text(encoding="utf-8")
        readme.write_text(
            housekeeping.readme_with_measurements(text, markdown_path.read_text("utf-8")),
            encoding="utf-8",
        )
        out.print(f"updated the measurements in {readme}")
    code = 0
    if baseline is not None:
        verdicts = check(baseline, doc, tolerance)
        out.print(to_rich(check_table(verdicts, tolerance)))
        regressed = [v.task for v in verdicts if v.regressed]
        if regressed:
            out.print(
                f"[bold red]start-up regressed beyond {tolerance:.0%}: {', '.join(regressed)}[/]"
            )
            code = 1
    failed = failed_tasks(doc)
    if failed:
        out.print(f"[bold red]probe failed for: {', '.join(failed)}[/]")
        code = 1
    return code
