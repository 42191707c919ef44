"""The help of every ``inv`` task's flags: what ``inv --help <task>`` prints.

Kept apart from ``tasks.py`` (whose functions stay thin) and from the command bodies (which
import more than ``inv --list`` should pay for). Standard library only; the launch ways of
``inv measure`` say their own help (:func:`signal4.measure.ways.help_text`).
"""

from __future__ import annotations

from typing import Final

#: The broker flag, as every warm-worker task has it.
BROKER_URL: Final = "The broker URL (default: SIGNAL4_BROKER_URL or local Redis)."

SYNC_ALL: Final = {
    "check": "Report each env as missing / stale / up to date; change nothing.",
    "full": "Also build the monolithic 'full' env (the measurement baseline).",
    "force": "Run uv sync even for envs that are up to date.",
    "jobs": "How many envs to sync at once.",
    "all": "Also build the optional envs (`optional = true` in the manifest).",
}

SYNC: Final = {
    "env": "The env to sync ('full' for the monolithic baseline).",
    "check": "Report the env's state; change nothing.",
    "force": "Run uv sync even if the env is up to date.",
}

RUN: Final = {
    "task": "The processing step to run; arguments after -- go to it.",
    "sync": "Sync the task's env first if it is missing or stale.",
    "timeout": "Seconds before the step is stopped (default: the manifest's).",
}

CLEAN: Final = {
    "env": "Only remove this env's venv; repeatable (default: every env, caches, outputs).",
    "dry_run": "Print what would be removed; remove nothing.",
}

LOCK: Final = {
    "check": "Only check that uv.lock matches pyproject.toml.",
    "upgrade": "Let every package move to its newest allowed version.",
}

ENVS: Final = {
    "no_sizes": "Skip measuring disk sizes (faster).",
    "markdown": "Regenerate the README's env table from the manifest instead.",
}

MEASURE: Final = {
    "tasks": "Only this task; repeatable (default: every task).",
    "runs": "Timed rounds per task (default: 5, or 3 for tasks whose imports take > 2 s).",
    "warmups": "Untimed rounds before the timed ones.",
    "json": "Write every raw sample here (default: .measure/startup.json).",
    "markdown": "Write the Markdown report here (default: .measure/startup.md).",
    "check": "Exit 1 if a task's start-up / floor ratio grew past this baseline JSON's.",
    "tolerance": "Allowed growth of that ratio for --check (0.2 = 20%).",
    "no_disk": "Skip measuring env sizes.",
    "broker": "The broker of the warm workers timed by the warm way (default: local Redis).",
}

CHECK: Final = {
    "strict": "Treat unused packages as errors, not warnings.",
    "sync": "Sync the envs the import checks need first (otherwise unsynced envs are named).",
}

PIPELINE: Final = {
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
}

STATUS: Final = {
    "failed": "Only the items with a failed stage.",
    "json": "Print JSON (each stage's status, error, time, info, provenance), not a table.",
    "stale": "Only the items whose done outputs are out of date, and why.",
    "rerun_triggers": "With --stale: what counts (env, params, code, input; default all).",
}

BROKER: Final = {
    "port": "The port to listen on (127.0.0.1 only).",
    "stop": "Stop the broker this checkout started on that port.",
}

WORKER: Final = {
    "env": "The env whose queue this worker serves, in that env's own interpreter.",
    "concurrency": "Pool processes (default: the manifest's concurrency of its tasks).",
    "broker": "The broker URL (default: SIGNAL4_BROKER_URL or redis://127.0.0.1:6379/0).",
    "max_tasks_per_child": "Replace a pool process after this many tasks.",
    "loglevel": "Celery's log level.",
}

WORKERS: Final = {"broker": BROKER}

SUBMIT: Final = {
    "task": "The processing step to send; arguments after -- go to it.",
    "broker": BROKER_URL,
    "timeout": "Seconds before the step is stopped (default: the manifest's).",
}

VOICES: Final = {
    "words": (
        "What to do, then its names: list | enroll NAME (--item ID --speaker LABEL, or --clip "
        "FILE) | rename NAME NEW | merge NAME OTHER | forget NAME | relabel. A NAME may be a "
        "name or an unnamed voice's id (voice-0007)."
    ),
    "item": "enroll: the item (content id) whose speaker is NAME; relabel: only this item.",
    "speaker": "enroll: the speaker's label in that item (SPEAKER_01).",
    "clip": "enroll: a media file holding one voice, NAME's.",
    "all": "list: also the unnamed voices heard in one item only.",
    "json": "list: print JSON, not a table.",
}
