"""`inv pipeline`: download -> convert -> transcribe -> diarize -> stitch -> compress, resumable.

Each step runs in its own env through :func:`signal4.run.dispatch.run`; a step whose stage the
state DB records as done is skipped without being launched.

With ``--workers`` the same steps go to warm Celery workers instead, as one chain routed
by the manifest (:func:`run_workers`); the results and the output are the same.

Exit codes: 0 done; 1 a step failed; 2 bad input or configuration (unknown file, env not
synced: run with --sync; with --workers: no live worker for an env, or a worker synced from
another lock); 3 (--workers) the broker does not answer; 124 a step timed out; 130
interrupted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal4.envs import venv as envs
from signal4.envs.manifest import Manifest
from signal4.run import dispatch, protocol
from signal4.stepkit.fetch import on_site

SAMPLE = Path("samples") / "two_speakers" / "audio.wav"
#: The steps after the content id is known: (task, stage it records).
STEPS: tuple[tuple[str, str], ...] = (
    ("convert", "convert"),
    ("transcribe", "transcribe"),
    ("diarize", "diarize"),
    ("stitch", "stitch"),
    ("cleanup_and_compress", "compress"),
)


class PipelineError(Exception):
    """A step did not complete; ``code`` is the exit code to end with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StepRow:
    """One line of the progress view."""

    task: str
    state: str = "waiting"
    seconds: float = 0.0
    note: str = ""


def download_task(source: str) -> tuple[str, list[str]] | None:
    """The download task and its args for ``source``, or None for a local file."""
    if "://" not in source:
        return None
    lowered = source.lower()
    if any(k in lowered for k in ("rss", "feed", ".xml", "atom")):
        return "download_podcast", ["--feed", source]
    if on_site(source, "rumble.com"):
        return "download_rumble", ["--url", source]
    # yt-dlp knows YouTube and many other video sites; download_youtube takes them all.
    return "download_youtube", ["--url", source]


def tasks_needed(source: str) -> list[str]:
    """Every task the pipeline will run for ``source``."""
    first = download_task(source)
    return ([first[0]] if first else []) + [task for task, _ in STEPS]


def _content_of(result: dict[str, Any]) -> str | None:
    if result.get("content"):
        return str(result["content"])
    contents = result.get("contents") or []
    return str(contents[0]) if contents else None


def run(
    m: Manifest,
    source: str,
    *,
    on_update: Callable[[list[StepRow]], None] = lambda rows: None,
    env_vars: dict[str, str] | None = None,
) -> tuple[str, list[StepRow]]:
    """Run the pipeline on ``source``; return the content id and the step rows."""
    from signal4.content import settings
    from signal4.content.state import StateDB

    download = download_task(source)
    if download is None and not Path(source).expanduser().is_file():
        raise PipelineError(
            f"{source}: no such file (give a URL, a media file, or nothing for the bundled sample)",
            protocol.EXIT_INVALID,
        )
    rows = [StepRow(t) for t in tasks_needed(source)]
    db = StateDB(settings.get().db_url)

    def step(row: StepRow, args: list[str]) -> dict[str, Any]:
        row.state = "running"
        on_update(rows)
        outcome = dispatch.run(m, row.task, args, env_vars=env_vars)
        row.seconds = outcome.duration
        row.state = outcome.status
        on_update(rows)
        if not outcome.ok:
            tail = outcome.stderr_tail.strip().splitlines()[-1:] if not outcome.error else []
            raise PipelineError(
                f"{row.task} {outcome.status}: {outcome.error or ''.join(tail)}", outcome.exit_code
            )
        return outcome.result

    it = iter(rows)
    cid: str | None = None
    if download is not None:
        result = step(next(it), download[1])
        cid = _content_of(result)
        if cid is None:
            raise PipelineError(f"{download[0]} reported no content id", protocol.EXIT_FAILED)
    for row, (task, stage) in zip(it, STEPS, strict=True):
        if cid is not None and db.is_done(cid, stage):
            row.state, row.note = protocol.SKIPPED, "done before"
            on_update(rows)
            continue
        if task == "convert" and cid is None:
            args = ["--input", str(Path(source).expanduser().resolve())]
        else:
            assert cid is not None
            args = ["--content", cid]
        result = step(row, args)
        cid = cid or _content_of(result)
        if cid is None:
            raise PipelineError("convert reported no content id", protocol.EXIT_FAILED)
        # convert of an already converted file: the later stages may all be done
    assert cid is not None
    return cid, rows


def run_workers(
    m: Manifest,
    source: str,
    *,
    broker: str | None = None,
    on_update: Callable[[list[StepRow]], None] = lambda rows: None,
) -> tuple[str, list[StepRow]]:
    """Run the pipeline on warm workers as one Celery chain; return the content id and rows.

    Raises :class:`~signal4.workers.worker.WorkerError` when no live worker can take a step.
    """
    from signal4.content import settings
    from signal4.content.state import StateDB
    from signal4.processing_steps.convert import input_content_id
    from signal4.workers import worker

    download = download_task(source)
    if download is None and not Path(source).expanduser().is_file():
        raise PipelineError(
            f"{source}: no such file (give a URL, a media file, or nothing for the bundled sample)",
            protocol.EXIT_INVALID,
        )
    known: str | None = None
    steps: list[tuple[str, list[str]]] = []
    done_before: list[str] = []
    if download is not None:
        steps.append(download)
        for task, _stage in STEPS:
            steps.append((task, []))  # the worker adds --content from the previous result
    else:
        # a local file's content id is known up front: skip the stages already done, as the
        # local path does; the convert worker reads this path (on several machines, put it
        # where all of them see it)
        src = Path(source).expanduser().resolve()
        known = input_content_id(src)
        db = StateDB(settings.get().db_url)
        for task, stage in STEPS:
            if db.is_done(known, stage):
                done_before.append(task)
                continue
            args = ["--input", str(src)] if task == "convert" else []
            steps.append((task, [*args, "--content", known]))
        if not steps:
            rows = [StepRow(t, protocol.SKIPPED, note="done before") for t in done_before]
            on_update(rows)
            return known, rows
    skipped = [StepRow(t, protocol.SKIPPED, note="done before") for t in done_before]
    rows = [StepRow(t) for t, _ in steps]

    def update(chain_rows: list[worker.ChainStep]) -> None:
        for row, crow in zip(rows, chain_rows, strict=True):
            row.state = crow.state
            if crow.outcome is not None:
                row.seconds = crow.outcome.duration
                if crow.outcome.status == protocol.SKIPPED:
                    row.note = "done before"
        on_update(ordered())

    def ordered() -> list[StepRow]:
        by_task = {r.task: r for r in (*skipped, *rows)}
        return [by_task[t] for t in tasks_needed(source)]

    done = worker.run_chain(m, steps, broker=broker, on_update=update)
    cid = known
    for crow in done:
        out = crow.outcome
        if out is None:
            continue
        if not out.ok:
            raise PipelineError(f"{crow.task} {out.status}: {out.error or ''}", out.exit_code)
        cid = cid or worker.content_of(out.result)
    if cid is None:
        raise PipelineError("no step reported a content id", protocol.EXIT_FAILED)
    return cid, ordered()


def transcript_paths(content_folder: Path) -> list[Path]:
    """The transcript files of a finished content folder (JSON may be gzipped by cleanup)."""
    names = ("transcript.vtt", "transcript.srt", "transcript.json", "transcript.json.gz")
    return [content_folder / n for n in names if (content_folder / n).exists()]


def main(
    source: str | None, *, sync_first: bool = False, workers: bool = False, broker: str = ""
) -> int:
    """Run the pipeline with a rich progress view; print where the transcript is.

    ``workers``: send the steps to warm Celery workers on ``broker`` instead of running
    them here (the envs then need to be synced where the workers run, not here).
    """
    from rich.live import Live
    from rich.table import Table

    from signal4.commands import cli
    from signal4.console import console
    from signal4.content import settings

    m = cli.manifest()
    # the steps default to <root>/data (dispatch.child_environ); read the same state DB here
    os.environ.setdefault("SIGNAL4_DATA_DIR", str(m.root / "data"))
    settings.get.cache_clear()
    source = source or str(m.root / SAMPLE)
    if download_task(source) is None and not Path(source).expanduser().is_file():
        raise cli.UserError(
            f"{source}: no such file (give a URL, a media file, or nothing for the bundled sample)"
        )
    needed = tasks_needed(source)
    env_names = sorted({m.task(t).env for t in needed})
    if sync_first:
        code = cli.sync(env_names)
        if code:
            return code
    for name in [] if workers else env_names:
        if envs.status(m, envs.spec(m, name)) is not envs.State.UP_TO_DATE:
            raise cli.UserError(
                f"env {name!r} is not synced; run: inv pipeline --sync (or inv sync {name})"
            )
    out = console()
    out.print(f"pipeline: {source}" + (" (on warm workers)" if workers else ""))
    started = time.monotonic()

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

    with Live(render([StepRow(t) for t in needed]), console=out, refresh_per_second=4) as live:
        try:
            if workers:
                cid, _rows = run_workers(
                    m,
                    source,
                    broker=broker or None,
                    on_update=lambda rows: live.update(render(rows)),
                )
            else:
                cid, _rows = run(m, source, on_update=lambda rows: live.update(render(rows)))
        except PipelineError as exc:
            live.stop()
            raise cli.UserError(str(exc), code=exc.code) from None
        except envs.EnvError as exc:
            live.stop()
            raise cli.UserError(str(exc)) from None
        except Exception as exc:
            from signal4.workers.worker import WorkerError

            if not isinstance(exc, WorkerError):
                raise
            live.stop()
            raise cli.UserError(str(exc), code=exc.code) from None
    out.line()  # a non-terminal Live leaves its last frame without a newline
    folder = settings.get().content_root / cid
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
