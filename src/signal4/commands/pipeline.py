"""The body of ``inv pipeline``: plan the sources, run the batch, show progress and a summary.

Exit codes: 0 every item done; 1 an item failed (each is named); 2 a usage mistake (no
usable source, an env not synced, a bad flag); 3 (``--workers``) the broker does not
answer; 124 (``--workers``) a stage was given up: no worker finished it past its time
limit; 130 interrupted (143 for SIGTERM).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4 import codes, cpu
from signal4.codes import EXIT_TIMEOUT, ItemStatus
from signal4.commands.envs import sync
from signal4.envs import layout, venv
from signal4.envs.manifest import Manifest, load
from signal4.errors import UsageError
from signal4.run import dispatch
from signal4.run.batch import Batch
from signal4.run.plan import SAMPLE, Plan, SourceError, build, read_source_file
from signal4.run.runner import Event, ItemResult

if TYPE_CHECKING:
    from rich.console import Console


def _sources(sources: Sequence[str], from_file: str, m: Manifest) -> list[str]:
    raw = list(sources)
    for s in raw:
        if not s.strip():
            raise UsageError("--source is empty: give a media file, a folder or a URL")
    if from_file:
        raw += read_source_file(Path(from_file))
    return raw or [str(m.root / SAMPLE)]


def _list_feed(m: Manifest) -> Any:
    def list_feed(url: str) -> list[dict[str, Any]]:
        outcome = dispatch.run(m, m.downloader("feed"), ["--feed", url, "--list"])
        if not outcome.ok:
            raise SourceError(f"{url}: {outcome.error or outcome.status}")
        episodes: list[dict[str, Any]] = outcome.result.get("episodes", [])
        return episodes

    return list_feed


def _list_feed_on_workers(m: Manifest, broker: str | None) -> Any:
    """``list_feed`` for ``--workers``: the download env's worker lists the feed."""
    from signal4.workers import submit

    def list_feed(url: str) -> list[dict[str, Any]]:
        task = m.downloader("feed")
        outcome = submit.wait(
            task, submit.submit(m, task, ["--feed", url, "--list"], broker=broker)
        )
        if not outcome.ok:
            raise SourceError(f"{url}: {outcome.error or outcome.status}")
        episodes: list[dict[str, Any]] = outcome.result.get("episodes", [])
        return episodes

    return list_feed


def _require_envs(m: Manifest, names: set[str]) -> None:
    """UsageError naming the first env of ``names`` that is not up to date."""
    for name in sorted(names):
        if venv.status(m, layout.spec(m, name)) is not venv.State.UP_TO_DATE:
            raise UsageError(
                f"env {name!r} is not synced; run: inv pipeline --sync (or inv sync {name})"
            )


def main(
    sources: Sequence[str] = (),
    *,
    from_file: str = "",
    recursive: bool = False,
    latest: int = 0,
    jobs: int = 0,
    dry_run: bool = False,
    sync_first: bool = False,
    workers: bool = False,
    broker: str = "",
    rerun_triggers: str = "all",
) -> int:
    """Plan the sources, run every pending stage, print a summary; return the exit code."""
    from signal4.console import console
    from signal4.content import settings
    from signal4.content.state import StateDB
    from signal4.run.provenance import Checker, parse_triggers

    m = load()
    if jobs < 0 or latest < 0:
        raise UsageError("--jobs and --latest must be 0 (automatic / all) or more")
    checker = Checker(m, parse_triggers(rerun_triggers))
    raw = _sources(sources, from_file, m)
    conf = settings.for_project(m.root)  # what the dispatcher hands the steps
    db = StateDB(conf.db_url)
    out = console()
    if workers and jobs:
        raise UsageError(
            "--jobs does not apply to --workers: each worker's pool size limits its env "
            "(inv worker <env> --concurrency N)"
        )
    if workers and sync_first:
        raise UsageError(
            "--sync does not apply to --workers: sync the envs where the workers run "
            "(inv sync <env>), then start them"
        )
    if sync_first and not dry_run:
        downloads = {t.env for t in m.download_tasks()}
        code = sync(sorted({t.env for t in m.pipeline_tasks()} | downloads))
        if code:
            return code
    plan, failed = build(
        m,
        raw,
        db=db,
        recursive=recursive,
        latest=latest or None,
        list_feed=_list_feed_on_workers(m, broker or None) if workers else _list_feed(m),
        checker=checker,
        content_root=conf.content_root,
        allow_loopback=conf.allow_loopback,
    )
    if not plan.items and failed:
        more = "" if len(failed) == 1 else f" (and {len(failed) - 1} more)"
        raise SourceError(failed[0][1] + more)
    jobs = jobs or cpu.available()
    if dry_run:
        _print_plan(
            out, plan, failed, "on warm workers" if workers else f"up to {jobs} steps at once"
        )
        for note in checker.notes():
            out.print(f"[yellow]note:[/] {note}", soft_wrap=True, highlight=False)
        return 0
    if workers:
        return _on_workers(m, plan, failed, db=db, conf=conf, broker=broker, out=out)
    _require_envs(m, {s.task.env for item in plan.items for s in item.pending})
    out.print(
        f"pipeline: {len(plan.items)} item(s), {plan.stages_total - plan.stages_done} "
        f"stage(s) to run, {plan.stages_done} done before; {jobs} at once"
    )
    started = time.monotonic()
    batch = Batch(
        m,
        plan,
        db=db,
        jobs=jobs,
        on_event=lambda e: None,
        checker=checker,
        content_root=conf.content_root,
    )
    with _View(out, plan) as view:
        batch.on_event = view.event
        results = batch.run()
    return _summary(out, results, failed, time.monotonic() - started, conf.content_root)


def _print_plan(out: Console, plan: Plan, failed: list[tuple[str, str]], how: str) -> None:
    from rich.table import Table

    table = Table(title=f"plan: {len(plan.items)} item(s), {how}")
    for col in ("item", "source", "stages to run", "done before"):
        table.add_column(col, overflow="fold")
    for item in plan.items:
        done = [s.label for s in item.stages if s.done]
        todo = [s.label for s in item.pending]
        table.add_row(item.label, item.title, " → ".join(todo) or "—", ", ".join(done) or "—")
    out.print(table)
    for item in plan.items:  # why stages that are done run again
        for stage in item.pending:
            if stage.reason:
                out.print(
                    f"  {item.label} {stage.label}: {stage.reason}", markup=False, soft_wrap=True
                )
    for source, error in failed:
        out.print(f"[red]cannot plan[/] {source}: {error}", soft_wrap=True)


def progress_text(progress: dict[str, Any]) -> str:
    """A step's reported progress for the view: ``12.0/20.5 s``, ``3.1/10.0 MB``."""
    done, total = progress.get("done") or 0, progress.get("total")
    if progress.get("unit") == "seconds":
        scale, unit = 1.0, "s"
    else:
        scale, unit = 1e6, "MB"
    shown = f"{done / scale:.1f}" + (f"/{total / scale:.1f}" if total else "")
    return f"{shown} {unit}"


class _View:
    """Progress: a live view on a terminal, one plain line per finished step elsewhere.

    On a terminal a running step's line shows the progress it reports (its ``progress``
    events); elsewhere those are not printed.
    """

    def __init__(self, out: Console, plan: Plan) -> None:
        self.out = out
        self.plan = plan
        self.done = plan.stages_done
        self.failed = 0
        self.running: dict[tuple[int, str], tuple[str, str, float]] = {}
        self.progress: dict[tuple[int, str], dict[str, Any]] = {}
        self.failed_items: set[int] = {id(i) for i in plan.items if i.error}
        self.live: Any = None

    def __enter__(self) -> _View:
        if self.out.is_terminal:
            from rich.live import Live

            self.live = Live(get_renderable=self._render, console=self.out, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def waiting(self) -> int:
        """Stages still to run: of the items that are not failed, those not done or running."""
        running = {key[0] for key in self.running}
        return sum(
            len(item.pending) - (id(item) in running)
            for item in self.plan.items
            if id(item) not in self.failed_items
        )

    def event(self, e: Event) -> None:
        key = (id(e.item), e.stage.task.name)
        if e.kind == "start":
            self.running[key] = (e.item.label, e.stage.task.name, e.started)
            return
        if e.kind == "progress":  # from the step's thread; only the live view shows it
            if e.progress is not None and key in self.running:
                self.progress[key] = e.progress
            return
        if e.kind == "note":
            self.out.print(f"[yellow]note:[/] {e.item.label} {e.stage.task.name}: {e.note}")
            return
        self.running.pop(key, None)
        self.progress.pop(key, None)
        outcome = e.outcome
        assert outcome is not None
        if outcome.ok:
            self.done += 1
        else:
            self.failed += 1
            self.failed_items.add(id(e.item))
        if self.live is None:
            note = "" if outcome.ok else f": {outcome.error}"
            self.out.print(
                f"{outcome.status:<13} {e.stage.task.name:<22} {e.item.label} "
                f"({outcome.duration:.1f}s){note}",
                markup=False,
                soft_wrap=True,
            )

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        total = self.plan.stages_total or 1
        grid = Table.grid(padding=(0, 2))
        grid.add_row(
            ProgressBar(total=total, completed=self.done, width=40),
            f"{self.done}/{total} stages · {len(self.running)} running · "
            f"{self.waiting()} waiting · {self.failed} failed",
        )
        now = time.monotonic()
        for key, (label, task, began) in list(self.running.items()):
            reported = self.progress.get(key)
            shown = f"  {progress_text(reported)}" if reported else ""
            grid.add_row(f"  {task}", f"{label}  {now - began:.0f}s{shown}")
        return Group(grid)


def _summary(
    out: Console,
    results: list[ItemResult],
    failed_sources: list[tuple[str, str]],
    seconds: float,
    content_root: Path,
) -> int:
    from rich.table import Table

    table = Table(title=f"pipeline summary ({seconds:.1f} s)")
    for col in ("item", "title or file", "stages", "time", "status", "error"):
        table.add_column(col, overflow="fold")
    for r in results:
        total = len(r.item.stages)
        done = total - len(r.item.pending)
        style = "green" if r.ok else "red"
        table.add_row(
            r.item.label,
            r.item.title,
            f"{done}/{total}",
            f"{r.seconds:.1f}s",
            f"[{style}]{r.status}[/]",
            r.error or "",
        )
    for source, error in failed_sources:
        table.add_row(source, "", "0/0", "", "[red]failed[/]", error)
    out.print(table)
    for r in results:
        if r.ok and r.item.content:
            for path in transcript_paths(content_root / r.item.content):
                out.print(f"  {path}", markup=False, soft_wrap=True)
    bad = [r for r in results if not r.ok]
    if any(r.status is ItemStatus.INTERRUPTED for r in bad):
        return codes.EXIT_INTERRUPTED
    if bad or failed_sources:
        names = [r.item.label for r in bad] + [s for s, _ in failed_sources]
        out.print(f"[red]failed:[/] {', '.join(names)}", soft_wrap=True)
        return 1
    return 0


def _on_workers(
    m: Manifest,
    plan: Plan,
    failed: list[tuple[str, str]],
    *,
    db: Any,
    conf: Any,
    broker: str,
    out: Console,
) -> int:
    """Run the plan on warm workers: one chain per item, all sent at once."""
    from signal4.workers.batch import WorkerBatch

    runner = WorkerBatch(m, plan, db=db, broker=broker or None)
    runner.check()  # the broker answers, every env has a worker: before the view starts
    out.print(
        f"pipeline: {len(plan.items)} item(s), {plan.stages_total - plan.stages_done} "
        f"stage(s) to run, {plan.stages_done} done before; on warm workers"
    )
    started = time.monotonic()
    with _View(out, plan) as view:
        runner.on_event = view.event
        runner.say = lambda line: out.print(line, markup=False, soft_wrap=True, highlight=False)
        results = runner.run()
    code = _summary(out, results, failed, time.monotonic() - started, conf.content_root)
    unseen = [
        r.item.content
        for r in results
        if r.ok and r.item.content and not transcript_paths(conf.content_root / r.item.content)
    ]
    if unseen:
        out.print(
            f"[yellow]note:[/] no transcript of {', '.join(unseen)} in {conf.content_root}: the "
            "workers write to their own SIGNAL4_DATA_DIR; give this machine and the workers "
            "the same one to see it here",
            soft_wrap=True,
        )
    if runner.gave_up and code == codes.EXIT_FAILED:
        names = ", ".join(i.label for i in runner.gave_up)
        out.print(f"[red]gave up waiting for:[/] {names} (their tasks may still run)")
        return EXIT_TIMEOUT
    return code


def transcript_paths(content_folder: Path) -> list[Path]:
    """The transcript files of a finished content folder (JSON may be gzipped by cleanup)."""
    names = ("transcript.vtt", "transcript.srt", "transcript.json", "transcript.json.gz")
    return [content_folder / n for n in names if (content_folder / n).exists()]
