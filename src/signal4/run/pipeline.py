"""The pipeline: a download (or a local file), then the manifest's ``pipeline`` tasks, resumable.

By default: download -> convert -> transcribe -> diarize -> stitch -> cleanup_and_compress
(``[tool.signal4] pipeline`` in pyproject.toml). Each step runs in its own env through
:func:`signal4.run.dispatch.run`; a step whose stage the state DB records as done is
skipped without being launched.

With ``--workers`` the same steps go to warm Celery workers instead, as one chain routed
by the manifest (:func:`run_workers`); the results and the output are the same.

Exit codes: 0 done; 1 a step failed; 2 bad input or configuration (unknown file, env not
synced: run with --sync; with --workers: no live worker for an env, or a worker synced from
another lock); 3 (--workers) the broker does not answer; 124 a step timed out; 130
interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.envs.manifest import Manifest, Task
from signal4.errors import Signal4Error
from signal4.run import dispatch, protocol
from signal4.stepkit.fetch import on_site

if TYPE_CHECKING:
    from signal4.content.state import StateDB

SAMPLE = Path("samples") / "two_speakers" / "audio.wav"


class PipelineError(Signal4Error):
    """A step did not complete; ``code`` is the exit code to end with."""


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


def tasks_needed(m: Manifest, source: str) -> list[Task]:
    """Every task the pipeline will run for ``source``: its download, then the manifest's."""
    first = download_task(source)
    return ([m.task(first[0])] if first else []) + list(m.pipeline_tasks())


def no_such_source(source: str) -> PipelineError:
    """The error for a source that is neither a URL nor a file."""
    return PipelineError(
        f"{source}: no such file (give a URL, a media file, or nothing for the bundled sample)",
        protocol.EXIT_INVALID,
    )


def run(
    m: Manifest,
    source: str,
    *,
    db: StateDB,
    on_update: Callable[[list[StepRow]], None] = lambda rows: None,
    env_vars: dict[str, str] | None = None,
) -> tuple[str, list[StepRow]]:
    """Run the pipeline on ``source``; return the content id and the step rows."""
    download = download_task(source)
    if download is None and not Path(source).expanduser().is_file():
        raise no_such_source(source)
    tasks = tasks_needed(m, source)
    rows = [StepRow(t.name) for t in tasks]

    def step(row: StepRow, task: Task, args: list[str]) -> dict[str, Any]:
        row.state = "running"
        on_update(rows)
        outcome = dispatch.run(m, task, args, env_vars=env_vars)
        row.seconds = outcome.duration
        row.state = outcome.status
        on_update(rows)
        if not outcome.ok:
            tail = outcome.stderr_tail.strip().splitlines()[-1:] if not outcome.error else []
            raise PipelineError(
                f"{row.task} {outcome.status}: {outcome.error or ''.join(tail)}", outcome.exit_code
            )
        return outcome.result

    it = iter(zip(rows, tasks, strict=True))
    first: list[str] = []  # what the first stage gets besides --content
    if download is not None:
        result = step(*next(it), download[1])
        found = protocol.content_of(result)
        if found is None:
            raise PipelineError(f"{download[0]} reported no content id", protocol.EXIT_FAILED)
        cid = found
    else:
        # a local file's content id is known before anything runs: every stage, convert
        # included, is skipped when done, and runs under that content's lock
        src, cid = local_source(source)
        first = ["--input", str(src)]
    for i, (row, task) in enumerate(it):
        if db.is_done(cid, task.stage):
            row.state, row.note = protocol.SKIPPED, "done before"
            on_update(rows)
            continue
        step(row, task, [*(first if i == 0 else []), "--content", cid])
    return cid, rows


def local_source(source: str) -> tuple[Path, str]:
    """The absolute path of a local media file and the content id it is registered under."""
    from signal4.processing_steps.convert import input_content_id

    src = Path(source).expanduser().resolve()
    return src, input_content_id(src)


def run_workers(
    m: Manifest,
    source: str,
    *,
    db: StateDB,
    broker: str | None = None,
    on_update: Callable[[list[StepRow]], None] = lambda rows: None,
) -> tuple[str, list[StepRow]]:
    """Run the pipeline on warm workers as one Celery chain; return the content id and rows.

    Raises :class:`~signal4.workers.wire.WorkerError` when no live worker can take a step.
    """
    from signal4.workers import submit

    download = download_task(source)
    if download is None and not Path(source).expanduser().is_file():
        raise no_such_source(source)
    known: str | None = None
    steps: list[tuple[Task, list[str]]] = []
    done_before: list[str] = []
    if download is not None:
        steps.append((m.task(download[0]), download[1]))
        for task in m.pipeline_tasks():
            steps.append((task, []))  # the worker adds --content from the previous result
    else:
        # a local file's content id is known up front: skip the stages already done, as the
        # local path does; the convert worker reads this path (on several machines, put it
        # where all of them see it)
        src, known = local_source(source)
        for i, task in enumerate(m.pipeline_tasks()):
            if db.is_done(known, task.stage):
                done_before.append(task.name)
                continue
            args = ["--input", str(src)] if i == 0 else []
            steps.append((task, [*args, "--content", known]))
        if not steps:
            rows = [StepRow(t, protocol.SKIPPED, note="done before") for t in done_before]
            on_update(rows)
            return known, rows
    skipped = [StepRow(t, protocol.SKIPPED, note="done before") for t in done_before]
    rows = [StepRow(t.name) for t, _ in steps]

    def update(chain_rows: list[submit.ChainStep]) -> None:
        for row, crow in zip(rows, chain_rows, strict=True):
            row.state = crow.state
            if crow.outcome is not None:
                row.seconds = crow.outcome.duration
                if crow.outcome.status == protocol.SKIPPED:
                    row.note = "done before"
        on_update(ordered())

    def ordered() -> list[StepRow]:
        by_task = {r.task: r for r in (*skipped, *rows)}
        return [by_task[t.name] for t in tasks_needed(m, source)]

    done = submit.run_chain(m, steps, broker=broker, on_update=update)
    cid = known
    for crow in done:
        out = crow.outcome
        if out is None:
            continue
        if not out.ok:
            raise PipelineError(f"{crow.task} {out.status}: {out.error or ''}", out.exit_code)
        cid = cid or protocol.content_of(out.result)
    if cid is None:
        raise PipelineError("no step reported a content id", protocol.EXIT_FAILED)
    return cid, ordered()


def transcript_paths(content_folder: Path) -> list[Path]:
    """The transcript files of a finished content folder (JSON may be gzipped by cleanup)."""
    names = ("transcript.vtt", "transcript.srt", "transcript.json", "transcript.json.gz")
    return [content_folder / n for n in names if (content_folder / n).exists()]
