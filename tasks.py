"""Invoke tasks: thin wrappers over signal4.commands. Run `inv --list` for the one-line help."""

from __future__ import annotations

import sys

from invoke.context import Context
from invoke.tasks import task

from signal4.commands import cli, flags
from signal4.commands import envs as env_cmd
from signal4.measure import baseline as measure_baseline
from signal4.measure import ways as measure_ways

cli.install()  # usage mistakes exit 2, `inv run --help` is run's help, SIGTERM says so


@task(help=flags.SYNC_ALL)
def sync_all(
    c: Context,
    check: bool = False,
    full: bool = False,
    force: bool = False,
    jobs: int = 2,
    all_: bool = False,
) -> None:
    """Create or update every env from uv.lock, in parallel (optional envs with --all)."""
    cli.call(
        lambda: env_cmd.sync((), full=full, check=check, force=force, jobs=jobs, optional=all_)
    )


@task(help=flags.SYNC)
def sync(c: Context, env: str, check: bool = False, force: bool = False) -> None:
    """Create or update one env from uv.lock."""
    cli.call(lambda: env_cmd.sync([env], check=check, force=force, jobs=1))


@task(help=flags.RUN)
def run(c: Context, task: str, sync: bool = False, timeout: str = "") -> None:
    """Run one task in its own env (args after -- pass through)."""
    from signal4.commands import run as run_cmd

    args = run_cmd.passthrough_args(sys.argv, c.remainder)
    cli.call(lambda: run_cmd.run(task, args, sync_first=sync, timeout=run_cmd.seconds(timeout)))


@task(
    iterable=["env"],
    help=flags.CLEAN,
)
def clean(c: Context, env: list[str] | None = None, dry_run: bool = False) -> None:
    """Remove env venvs, __pycache__ and build outputs (never the lock or data)."""
    cli.call(lambda: env_cmd.clean(env or [], dry_run=dry_run))


@task(help=flags.LOCK)
def lock(c: Context, check: bool = False, upgrade: bool = False) -> None:
    """Resolve every env together into the one uv.lock."""
    cli.call(lambda: env_cmd.lock(check=check, upgrade=upgrade))


@task(help=flags.ENVS)
def envs(c: Context, no_sizes: bool = False, markdown: bool = False) -> None:
    """Show every env: its tasks, packages, sync state and size."""
    cli.call(lambda: env_cmd.show_envs(sizes=not no_sizes, markdown=markdown))


@task(
    iterable=["tasks", "ways"],
    help={**flags.MEASURE, "ways": measure_ways.help_text()},
)
def measure(
    c: Context,
    tasks: list[str] | None = None,
    ways: list[str] | None = None,
    runs: int = 0,
    warmups: int = 1,
    json: str = "",
    markdown: str = "",
    check: str = "",
    tolerance: float = measure_baseline.DEFAULT_TOLERANCE,
    no_disk: bool = False,
    broker: str = "",
) -> None:
    """Measure start-up per task and launch way, the import breakdown and env sizes."""
    from signal4.commands import measure as measure_cmd

    cli.call(
        lambda: measure_cmd.from_flags(
            sys.argv[1:],
            tasks=tasks or [],
            ways=ways or [],
            runs=runs,
            warmups=warmups,
            json=json,
            markdown=markdown,
            check=check,
            tolerance=tolerance,
            no_disk=no_disk,
            broker=broker,
        )
    )


@task(help=flags.CHECK)
def check(c: Context, strict: bool = False, sync: bool = False) -> None:
    """Check lock, drift, import coverage, unused packages, task map and platform markers."""
    from signal4.commands import check as check_cmd

    cli.call(lambda: check_cmd.main(strict=strict, sync=sync))


@task(
    iterable=["source"],
    help=flags.PIPELINE,
)
def pipeline(
    c: Context,
    source: list[str] | None = None,
    from_: str = "",
    recursive: bool = False,
    latest: int = 0,
    jobs: int = 0,
    dry_run: bool = False,
    sync: bool = False,
    workers: bool = False,
    broker: str = "",
    rerun_triggers: str = "all",
) -> None:
    """Run the pipeline on every item of the sources, several at once, resuming."""
    from signal4.commands import pipeline as pipeline_mod

    cli.call(
        lambda: pipeline_mod.main(
            source or [],
            from_file=from_,
            recursive=recursive,
            latest=latest,
            jobs=jobs,
            dry_run=dry_run,
            sync_first=sync,
            workers=workers,
            broker=broker,
            rerun_triggers=rerun_triggers,
        )
    )


@task(help=flags.STATUS)
def status(
    c: Context,
    failed: bool = False,
    json: bool = False,
    stale: bool = False,
    rerun_triggers: str = "all",
) -> None:
    """Show every content item's stages from the state DB: done, failed (why) or pending."""
    from signal4.commands import status as status_cmd

    cli.call(lambda: status_cmd.main(failed, json, stale, rerun_triggers))


@task(help=flags.BROKER)
def broker(c: Context, port: int = 6379, stop: bool = False) -> None:
    """Start (or --stop) a local Redis broker for warm workers, on 127.0.0.1 only."""
    from signal4.commands import workers as workercli

    cli.call(lambda: workercli.broker(port, stop=stop))


@task(help=flags.WORKER)
def worker(
    c: Context,
    env: str,
    concurrency: int = 0,
    broker: str = "",
    max_tasks_per_child: int = 100,
    loglevel: str = "INFO",
) -> None:
    """Run a warm Celery worker for one env's queue (foreground; Ctrl-C stops it warmly)."""
    from signal4.commands import workers as workercli

    cli.call(
        lambda: workercli.worker(
            env,
            concurrency=concurrency,
            broker_url=broker,
            max_tasks_per_child=max_tasks_per_child,
            loglevel=loglevel,
        )
    )


@task(help=flags.WORKERS)
def workers(c: Context, broker: str = "") -> None:
    """List the live workers: host, env, lock hash, concurrency, tasks done."""
    from signal4.commands import workers as workercli

    cli.call(lambda: workercli.workers(broker))


@task(help=flags.SUBMIT)
def submit(c: Context, task: str, broker: str = "", timeout: str = "") -> None:
    """Send one task to a warm worker of its env, wait, print its JSON result line."""
    from signal4.commands import workers as workercli
    from signal4.commands.run import passthrough_args, seconds

    args = passthrough_args(sys.argv, c.remainder)
    cli.call(lambda: workercli.submit(task, args, broker_url=broker, timeout=seconds(timeout)))


@task(iterable=["words"], help=flags.VOICES)
@cli.words("words")
def voices(
    c: Context,
    words: list[str] | None = None,
    item: str = "",
    speaker: str = "",
    clip: str = "",
    all_: bool = False,
    json: bool = False,
) -> None:
    """Name the voices diarize finds: list, enroll, rename, merge, forget, relabel."""
    from signal4.commands import voices as voices_cmd

    cli.call(
        lambda: voices_cmd.main(
            words or [], item=item, speaker=speaker, clip=clip, all_=all_, json=json
        )
    )
