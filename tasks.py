"""Invoke tasks: thin wrappers over signal4.commands. Run `inv --list` for the one-line help."""

from __future__ import annotations

import sys

from invoke.context import Context
from invoke.tasks import task

from signal4.commands import cli
from signal4.commands import envs as env_cmd
from signal4.commands.voices import voices  # noqa: F401  (inv voices: its flags and body there)
from signal4.measure import baseline as measure_baseline
from signal4.measure import ways as measure_ways

cli.install()  # usage mistakes exit 2, `inv run --help` is run's help, SIGTERM says so


@task(
    help={
        "check": "Report each env as missing / stale / up to date; change nothing.",
        "full": "Also build the monolithic 'full' env (the measurement baseline).",
        "force": "Run uv sync even for envs that are up to date.",
        "jobs": "How many envs to sync at once.",
        "all": "Also build the optional envs (`optional = true` in the manifest).",
    }
)
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


@task(
    help={
        "env": "The env to sync ('full' for the monolithic baseline).",
        "check": "Report the env's state; change nothing.",
        "force": "Run uv sync even if the env is up to date.",
    }
)
def sync(c: Context, env: str, check: bool = False, force: bool = False) -> None:
    """Create or update one env from uv.lock."""
    cli.call(lambda: env_cmd.sync([env], check=check, force=force, jobs=1))


@task(
    help={
        "task": "The processing step to run; arguments after -- go to it.",
        "sync": "Sync the task's env first if it is missing or stale.",
        "timeout": "Seconds before the step is stopped (default: the manifest's).",
    }
)
def run(c: Context, task: str, sync: bool = False, timeout: str = "") -> None:
    """Run one task in its own env (args after -- pass through)."""
    from signal4.commands import run as run_cmd

    args = run_cmd.passthrough_args(sys.argv, c.remainder)
    cli.call(lambda: run_cmd.run(task, args, sync_first=sync, timeout=run_cmd.seconds(timeout)))


@task(
    iterable=["env"],
    help={
        "env": "Only remove this env's venv; repeatable (default: every env, caches, outputs).",
        "dry_run": "Print what would be removed; remove nothing.",
    },
)
def clean(c: Context, env: list[str] | None = None, dry_run: bool = False) -> None:
    """Remove env venvs, __pycache__ and build outputs (never the lock or data)."""
    cli.call(lambda: env_cmd.clean(env or [], dry_run=dry_run))


@task(
    help={
        "check": "Only check that uv.lock matches pyproject.toml.",
        "upgrade": "Let every package move to its newest allowed version.",
    }
)
def lock(c: Context, check: bool = False, upgrade: bool = False) -> None:
    """Resolve every env together into the one uv.lock."""
    cli.call(lambda: env_cmd.lock(check=check, upgrade=upgrade))


@task(
    help={
        "no_sizes": "Skip measuring disk sizes (faster).",
        "markdown": "Regenerate the README's env table from the manifest instead.",
    }
)
def envs(c: Context, no_sizes: bool = False, markdown: bool = False) -> None:
    """Show every env: its tasks, packages, sync state and size."""
    cli.call(lambda: env_cmd.show_envs(sizes=not no_sizes, markdown=markdown))


@task(
    iterable=["tasks", "ways"],
    help={
        "tasks": "Only this task; repeatable (default: every task).",
        "ways": measure_ways.help_text(),
        "runs": "Timed rounds per task (default: 5, or 3 for tasks whose imports take > 2 s).",
        "warmups": "Untimed rounds before the timed ones.",
        "json": "Write every raw sample here (default: .measure/startup.json).",
        "markdown": "Write the Markdown report here (default: .measure/startup.md).",
        "check": "Exit 1 if a task's start-up / floor ratio grew past this baseline JSON's.",
        "tolerance": "Allowed growth of that ratio for --check (0.2 = 20%).",
        "no_disk": "Skip measuring env sizes.",
        "broker": "The broker of the warm workers timed by the warm way (default: local Redis).",
    },
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


@task(
    help={
        "strict": "Treat unused packages as errors, not warnings.",
        "sync": "Sync the envs the import checks need first (otherwise unsynced envs are named).",
    }
)
def check(c: Context, strict: bool = False, sync: bool = False) -> None:
    """Check lock, drift, import coverage, unused packages, task map and platform markers."""
    from signal4.commands import check as check_cmd

    cli.call(lambda: check_cmd.main(strict=strict, sync=sync))


@task(
    iterable=["source"],
    help={
        "source": "A media file or folder, a feed or video URL; repeatable (default: the sample).",
        "from": "Read more sources from this file, one per line ('#' starts a comment line).",
        "recursive": "Take a folder's media files from its subfolders too.",
        "latest": "Take only the newest N episodes of each feed (default: all).",
        "jobs": "Run at most N steps at once (default: the CPU count; not with --workers).",
        "dry_run": "Print the plan (each item's stages, what is done) and run nothing.",
        "sync": "Sync the envs the pipeline needs first.",
        "workers": "Run the plan on warm workers (inv worker): a chain per item, all sent at once.",
        "broker": "The broker URL for --workers (default: SIGNAL4_BROKER_URL or local Redis).",
        "rerun_triggers": "Re-run done stages whose env, params, code, input changed (or none).",
    },
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


@task(
    help={
        "failed": "Only the items with a failed stage.",
        "json": "Print JSON (each stage's status, error, time, info, provenance), not a table.",
        "stale": "Only the items whose done outputs are out of date, and why.",
        "rerun_triggers": "With --stale: what counts (env, params, code, input; default all).",
    }
)
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


@task(
    help={
        "port": "The port to listen on (127.0.0.1 only).",
        "stop": "Stop the broker this checkout started on that port.",
    }
)
def broker(c: Context, port: int = 6379, stop: bool = False) -> None:
    """Start (or --stop) a local Redis broker for warm workers, on 127.0.0.1 only."""
    from signal4.commands import workers as workercli

    cli.call(lambda: workercli.broker(port, stop=stop))


@task(
    help={
        "env": "The env whose queue this worker serves, in that env's own interpreter.",
        "concurrency": "Pool processes (default: the manifest's concurrency of its tasks).",
        "broker": "The broker URL (default: SIGNAL4_BROKER_URL or redis://127.0.0.1:6379/0).",
        "max_tasks_per_child": "Replace a pool process after this many tasks.",
        "loglevel": "Celery's log level.",
    }
)
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


@task(help={"broker": "The broker URL (default: SIGNAL4_BROKER_URL or local Redis)."})
def workers(c: Context, broker: str = "") -> None:
    """List the live workers: host, env, lock hash, concurrency, tasks done."""
    from signal4.commands import workers as workercli

    cli.call(lambda: workercli.workers(broker))


@task(
    help={
        "task": "The processing step to send; arguments after -- go to it.",
        "broker": "The broker URL (default: SIGNAL4_BROKER_URL or local Redis).",
        "timeout": "Seconds before the step is stopped (default: the manifest's).",
    }
)
def submit(c: Context, task: str, broker: str = "", timeout: str = "") -> None:
    """Send one task to a warm worker of its env, wait, print its JSON result line."""
    from signal4.commands import workers as workercli
    from signal4.commands.run import passthrough_args, seconds

    args = passthrough_args(sys.argv, c.remainder)
    cli.call(lambda: workercli.submit(task, args, broker_url=broker, timeout=seconds(timeout)))
