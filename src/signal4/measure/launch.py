"""Launching a task each way and timing the launches in rotating rounds.

A round launches every way once; the order rotates from round to round (A B C, B C A,
C A B…) so that drift in the machine's load hits every way alike. Each launch is timed
with ``time.perf_counter_ns`` around ``subprocess.run``. pyperf's ``command`` benchmark
and hyperfine both run all samples of one command before the next, so they cannot
interleave; hence this small loop.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from signal4.envs import layout
from signal4.envs.manifest import FULL_ENV, Manifest, Task
from signal4.measure import stats, ways
from signal4.measure.doc import WayResult
from signal4.measure.errors import ProbeError
from signal4.measure.proc import expect_ready, failed_exit, timed_run
from signal4.measure.ways import Launch, LaunchContext
from signal4.run import dispatch


def real_uv(uv: str) -> str:
    """Return the uv binary itself, not a pyenv shim (a shell script that adds its own time)."""
    try:
        with open(uv, "rb") as fh:
            is_script = fh.read(2) == b"#!"
    except OSError:
        return uv
    if not is_script:
        return uv
    try:
        out = subprocess.run(
            ["pyenv", "which", "uv"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return uv
    return out or uv


def launch_context(
    manifest: Manifest, task: Task, *, uv: str, floor_modules: Sequence[str] = ()
) -> LaunchContext:
    """What the ways' builders need to launch ``task``: its envs, the dispatcher's argv."""
    sub = layout.spec(manifest, task.env)
    environ = dispatch.child_environ(manifest)
    environ.setdefault("UV_NO_PROGRESS", "1")
    return LaunchContext(
        root=manifest.root,
        uv=uv,
        module=task.module,
        sub=sub,
        full=layout.spec(manifest, FULL_ENV),
        environ=environ,
        dispatched=tuple(dispatch.command(manifest, task, ["--ready"], sub)),
        floor_modules=tuple(floor_modules),
    )


def launches(
    manifest: Manifest,
    task: Task,
    names: Sequence[str],
    *,
    uv: str,
    floor_modules: Sequence[str] = (),
) -> list[Launch]:
    """Return the launches of ``task`` for each of ``names``, in canonical order (no warm)."""
    ctx = launch_context(manifest, task, uv=uv, floor_modules=floor_modules)
    return [way.launch(ctx) for way in ways.all_ways() if way.name in names and way.is_launch]


def launch(item: Launch, cwd: Path, *, extra_args: Sequence[str] = ()) -> tuple[int, str]:
    """Run ``item`` once; return (nanoseconds, stderr). Raise :class:`ProbeError` if it failed."""
    argv = list(item.argv)
    if extra_args:
        # Interpreter options go right after the interpreter (direct launches only).
        argv[1:1] = list(extra_args)
    try:
        proc, elapsed = timed_run(argv, item.environ, cwd)
    except OSError as exc:
        raise ProbeError(f"cannot start {argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise failed_exit(proc.returncode, proc.stderr)
    if item.expects_ready:
        expect_ready(proc.stdout, proc.stderr)
    return elapsed, proc.stderr


def time_launches(
    items: Sequence[Launch],
    *,
    runs: int,
    warmups: int,
    cwd: Path,
    on_sample: Callable[[str, int, bool], None] | None = None,
) -> dict[str, WayResult]:
    """Time every launch over ``warmups`` + ``runs`` rotating rounds; return results by way.

    A launch that fails is recorded with its error and not launched again. Each way is
    summarised against :data:`~signal4.measure.ways.REFERENCE`, round by round.
    """
    warmup: dict[str, list[int]] = {i.way: [] for i in items}
    samples: dict[str, list[int]] = {i.way: [] for i in items}
    errors: dict[str, str] = {}
    for rnd in range(warmups + runs):
        warm = rnd < warmups
        for item in stats.rotated(items, rnd):
            if item.way in errors:
                continue
            try:
                ns, _ = launch(item, cwd)
            except ProbeError as exc:
                errors[item.way] = str(exc)
                continue
            (warmup if warm else samples)[item.way].append(ns)
            if on_sample:
                on_sample(item.way, ns, warm)
    reference = samples.get(ways.REFERENCE)
    return {
        i.way: WayResult(
            command=i.argv,
            warmup_ns=tuple(warmup[i.way]),
            samples_ns=tuple(samples[i.way]),
            error=errors.get(i.way),
            summary=stats.summarise(samples[i.way], reference),
        )
        for i in items
    }
