"""The body of ``inv pipeline``: the steps with a live progress table, here or on workers."""

from __future__ import annotations

import time
from pathlib import Path

from signal4.commands.envs import sync
from signal4.envs import venv as envs
from signal4.envs.manifest import load
from signal4.errors import UsageError
from signal4.run.pipeline import (
    SAMPLE,
    StepRow,
    download_task,
    no_such_source,
    run,
    run_workers,
    tasks_needed,
    transcript_paths,
)


def main(
    source: str | None, *, sync_first: bool = False, workers: bool = False, broker: str = ""
) -> int:
    """Run the pipeline with a rich progress view; print where the transcript is.

    ``workers``: send the steps to warm Celery workers on ``broker`` instead of running
    them here (the envs then need to be synced where the workers run, not here).
    """
    from rich.live import Live
    from rich.table import Table

    from signal4.console import console
    from signal4.content.settings import Settings
    from signal4.content.state import StateDB

    m = load()
    # the same data dir the dispatcher gives the steps (Manifest.data_dir)
    conf = Settings(data_dir=m.data_dir)
    if source is None:
        source = str(m.root / SAMPLE)
    elif not source.strip():
        raise UsageError("--source is empty: give a media file or a URL, or leave it out")
    if download_task(source) is None and not Path(source).expanduser().is_file():
        raise no_such_source(source)
    needed = tasks_needed(m, source)
    env_names = sorted({t.env for t in needed})
    if sync_first:
        code = sync(env_names)
        if code:
            return code
    for name in [] if workers else env_names:
        if envs.status(m, envs.spec(m, name)) is not envs.State.UP_TO_DATE:
            raise UsageError(
                f"env {name!r} is not synced; run: inv pipeline --sync (or inv sync {name})"
            )
    out = console()
    out.print(f"pipeline: {source}" + (" (on warm workers)" if workers else ""))
    started = time.monotonic()
    db = StateDB(conf.db_url)

    def render(rows: list[StepRow]) -> Table:
        table = Table(title="pipeline")
        for col in ("step", "state", "time", "note"):
            table.add_column(col)
        style = {"completed": "green", "skipped": "yellow", "running": "cyan"}
        for r in rows:
            s = style.get(r.state, "red" if r.state != "waiting" else "dim")
            table.add_row(
                r.task, f"[{s}]{r.state}[/]", f"{r.seconds:.1f}s" if r.seconds else "", r.note
            )
        return table

    with Live(render([StepRow(t.name) for t in needed]), console=out, refresh_per_second=4) as live:
        try:
            if workers:
                cid, _rows = run_workers(
                    m,
                    source,
                    db=db,
                    broker=broker or None,
                    on_update=lambda rows: live.update(render(rows)),
                )
            else:
                cid, _rows = run(m, source, db=db, on_update=lambda rows: live.update(render(rows)))
        except BaseException:
            live.stop()
            raise
    out.line()  # a non-terminal Live leaves its last frame without a newline
    folder = conf.content_root / cid
    out.print(f"done in {time.monotonic() - started:.1f} s: content {cid}")
    found = transcript_paths(folder)
    for path in found:
        out.print(f"  {path}")
    if not found:
        # The steps ran elsewhere (warm workers) and wrote to their own content folder.
        out.print(
            f"[yellow]note:[/] no transcript of {cid} in {folder}: the workers write to their "
            "own SIGNAL4_DATA_DIR; give this machine and the workers the same one to see it here"
        )
    return 0
