"""The bodies of ``inv sync-all``, ``inv sync``, ``inv clean``, ``inv envs`` and ``inv lock``.

Typed functions that tasks.py calls with parsed flags; they print through the rich console
and raise :class:`~signal4.errors.Signal4Error` subclasses for what a user can fix.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence

from signal4 import readme
from signal4.console import human_bytes
from signal4.envs import clean as clean_mod
from signal4.envs import inventory, layout, syncer, venv
from signal4.envs.manifest import FULL_ENV, Manifest, load


def _states_style(action: str) -> str:
    return {
        "synced": "green",
        "up to date": "green",
        "skipped": "yellow",
        "would sync": "yellow",
        "failed": "bold red",
    }.get(action, "")


def sync(
    names: Sequence[str],
    *,
    full: bool = False,
    check: bool = False,
    force: bool = False,
    jobs: int = 2,
    optional: bool = False,
) -> int:
    """Sync the named envs (all but the optional ones by default) and print a summary.

    ``optional`` (``inv sync-all --all``) includes the optional envs; a plain
    ``inv sync-all`` names what it left out in one line. Returns the exit code.
    """
    from rich.live import Live
    from rich.table import Table

    from signal4.console import console

    m = load()
    chosen = syncer.select(m, names, full=full, optional=optional)
    specs = [layout.spec(m, name) for name in chosen]
    out = console()
    if check:
        results = syncer.check_all(m, specs)
    else:
        results = _sync_with_progress(m, specs, force=force, jobs=jobs, live_cls=Live)

    table = Table(title="sync check" if check else "sync summary")
    for col in ("env", "state before", "result", "packages", "time"):
        table.add_column(col, justify="right" if col in ("packages", "time") else "left")
    for r in results:
        table.add_row(
            r.env,
            r.before.value,
            f"[{_states_style(r.action)}]{r.action}[/]" + (f" — {r.error}" if r.error else ""),
            str(r.packages or ""),
            f"{r.seconds:.1f}s" if r.seconds else "",
        )
    out.print(table)
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.action == "skipped":
            out.print(f"[yellow]skipped[/] {r.env}: {r.error}")
    if not names and (left := syncer.left_out(m, chosen)):
        out.print(syncer.left_out_line(m, left), markup=False, soft_wrap=True)
    if failed:
        for r in failed:
            out.print(f"[bold red]✘ {r.env}[/]: {r.error}")
        return 1
    if check and any(r.action == "would sync" for r in results):
        return 1
    return 0


def _sync_with_progress(
    m: Manifest, specs: Sequence[layout.Venv], *, force: bool, jobs: int, live_cls: type
) -> list[syncer.SyncResult]:
    import threading
    import time

    from rich.spinner import Spinner
    from rich.table import Table

    from signal4.console import console, err_console

    lock = threading.Lock()
    rows: dict[str, tuple[str, float, str]] = {}

    def render() -> Table:
        grid = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name, (msg, started, style) in rows.items():
            icon = Spinner("dots") if style == "run" else ("✔" if style == "ok" else "✘")
            grid.add_row(icon, name, msg, f"{now - started:.0f}s" if style == "run" else "")
        return grid

    def on_start(name: str) -> None:
        with lock:
            rows[name] = ("checking", time.monotonic(), "run")

    def on_event(name: str, msg: str) -> None:
        with lock:
            rows[name] = (msg, rows[name][1], "run")

    def on_done(result: syncer.SyncResult) -> None:
        with lock:
            rows[result.env] = (result.action, rows[result.env][1], "ok" if result.ok else "bad")

    def on_wait() -> None:
        err_console().print("another sync holds the env lock; waiting for it to finish…")

    with live_cls(get_renderable=render, console=console(), transient=True, refresh_per_second=8):
        return syncer.sync_many(
            m,
            specs,
            jobs=jobs,
            force=force,
            on_start=on_start,
            on_event=on_event,
            on_done=on_done,
            on_wait=on_wait,
        )


def clean(names: Sequence[str], *, dry_run: bool = False) -> int:
    """Remove env venvs (and, with no names, caches and build outputs); print each path."""
    from signal4.console import console

    m = load()
    for name in names:
        if name != FULL_ENV:
            m.env(name)
    out = console()
    plan = clean_mod.clean_plan(m, names)
    if not plan:
        out.print("nothing to clean")
        return 0
    venvs = [name for name in names or [*m.envs, FULL_ENV] if layout.spec(m, name).venv in plan]
    with (
        venv.sync_lock(m, on_wait=lambda: out.print("waiting for a running sync to finish…")),
        venv.exclusive(m, venvs) if not dry_run else contextlib.nullcontext(),
    ):
        for path in plan:
            rel = path.relative_to(m.root)
            out.print(f"{'would remove' if dry_run else 'removing'} {rel}")
            if not dry_run:
                clean_mod.remove(path)
    return 0


#: How much of an env's fingerprint ``inv envs`` shows.
FINGERPRINT_SHOWN = 12


def show_envs(*, sizes: bool = True, markdown: bool = False) -> int:
    """Print a table of envs: tasks, sync state, package count, size on disk, fingerprint.

    The fingerprint is the current lock's for this machine (``—`` where the env is not
    built). Within 80 columns: the package count is headed ``pkgs``, and the size is the
    apparent one (a venv's hard-linked files are its cache's, so its unique size is the same).
    """
    from rich.table import Table

    from signal4.console import console
    from signal4.envs.fingerprint import fingerprints

    m = load()
    if markdown:
        _refresh_env_table(m)
        return 0
    table = Table(title="sub-environments", show_edge=False)
    rows = inventory.env_rows(m, sizes=sizes)
    prints = fingerprints(m)
    widest = max((len(t) for row in rows for t in row.tasks), default=5)
    for col in ("env", "tasks", "state", "pkgs", "size", "fingerprint"):
        table.add_column(
            col,
            justify="right" if col in ("pkgs", "size") else "left",
            min_width=widest if col == "tasks" else None,
            no_wrap=col == "fingerprint",
        )
    for row in rows:
        style = "green" if row.state is venv.State.UP_TO_DATE else "yellow"
        fp = prints.get(row.env)
        table.add_row(
            row.env,
            "\n".join(row.tasks) or "—",  # one per line: a narrow terminal cuts none off
            f"[{style}]{row.state.value}[/]",
            str(row.packages) if row.packages else "—",
            human_bytes(row.apparent_bytes) if row.apparent_bytes else "—",
            fp.digest[:FINGERPRINT_SHOWN] if fp else "—",
        )
    console().print(table)
    return 0


def _refresh_env_table(m: Manifest) -> None:
    """Regenerate the README's env table from the manifest, if the README has one."""
    from signal4.console import console

    path = m.root / "README.md"
    try:
        text = path.read_text(encoding="utf-8")
        fresh = readme.readme_with_env_table(text, m)
    except (OSError, ValueError):  # no README, or no table markers in it
        return
    if fresh != text:
        path.write_text(fresh, encoding="utf-8")
        console().print(f"updated the env table in {path}")


def lock(*, check: bool = False, upgrade: bool = False) -> int:
    """Refresh uv.lock from pyproject.toml (or only check that it matches).

    A real lock also regenerates the README's env table, so that a new env needs no
    separate step for it.
    """
    m = load()
    cmd = [venv.find_uv(), "lock", "--project", str(m.root)]
    if check:
        cmd.append("--check")
    if upgrade:
        cmd.append("--upgrade")
    code = subprocess.run(cmd, check=False).returncode
    if code == 0 and not check:
        _refresh_env_table(m)
    return code
