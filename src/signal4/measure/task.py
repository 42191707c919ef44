"""Measuring one task: its import profile, the floor, every launch way, the warm way.

Per task: one run of the probe under ``-X importtime`` (it also warms the page cache) and
one of ``python -c pass``, which give the import breakdown and the floor's module list;
then ``warmups`` rounds thrown away and ``runs`` timed rounds of every chosen launch way
(:func:`signal4.measure.launch.time_launches`); then the warm way's own round trips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from signal4.envs import layout, venv
from signal4.envs.manifest import FULL_ENV, Manifest, Task
from signal4.measure import importtime, stats, ways
from signal4.measure.doc import (
    FAILED,
    MEASURED,
    SKIPPED,
    Measurement,
    Target,
    TaskResult,
    UvOverhead,
    WarmTarget,
    WayResult,
)
from signal4.measure.errors import ProbeError
from signal4.measure.launch import launches, time_launches
from signal4.measure.profile import import_breakdown, probe_profile, startup_profile

#: Round trips timed per task for the warm way (each costs milliseconds).
WARM_RUNS: Final = 30
#: Rounds per task when ``runs`` is not given: more for quick tasks, fewer for heavy ones.
RUNS_LIGHT: Final = 5
RUNS_HEAVY: Final = 3
#: A task whose import-profile run takes longer than this counts as heavy.
HEAVY_SECONDS: Final = 2.0


def target(results: Mapping[str, WayResult]) -> Target:
    """Return sub-direct's pairwise ratio to the necessary floor and whether it meets the target."""

    def samples(way: str) -> Sequence[int]:
        result = results.get(way)
        return result.samples_ns if result else ()

    sub = samples(ways.SUB_DIRECT)
    ratio = stats.median_ratio(sub, samples(ways.FLOOR_IMPORTS))
    return Target(
        ratio_to_floor=ratio,
        ratio_to_pass=stats.median_ratio(sub, samples(ways.FLOOR_PASS)),
        limit=ways.TARGET_RATIO,
        met=None if ratio is None else ratio <= ways.TARGET_RATIO,
    )


def uv_overhead(results: Mapping[str, WayResult]) -> UvOverhead:
    """Median per-round (``uv run`` - direct) in the full env and in the sub-env."""

    def diff(a: str, b: str) -> float | None:
        if a not in results or b not in results:
            return None
        return stats.median_difference_s(results[a].samples_ns, results[b].samples_ns)

    return UvOverhead(
        full=diff(ways.FULL_UV, ways.FULL_DIRECT), sub=diff(ways.SUB_UV, ways.SUB_DIRECT)
    )


def warm_way(
    manifest: Manifest, task: Task, *, runs: int, broker: str | None
) -> tuple[WayResult | None, str | None]:
    """Time the warm way of ``task``: (its result, None), or (None, why it was skipped)."""
    from signal4.workers import celeryapp, submit
    from signal4.workers.wire import WorkerError

    url = celeryapp.broker_url(broker)
    try:
        samples = submit.warm_roundtrip(manifest, task.name, runs=runs, warmups=3, broker=url)
    except WorkerError as exc:
        return None, f"warm way skipped: {exc}"
    p50_ms = stats.median(samples) / 1e6
    return WayResult(
        command=("celery", celeryapp.PING, task.queue, url),
        samples_ns=tuple(samples),
        warm=WarmTarget(p50_ms, ways.WARM_TARGET_MS, p50_ms <= ways.WARM_TARGET_MS),
        summary=stats.summarise(samples, None),
    ), None


def measure_task(
    manifest: Manifest,
    task: Task,
    chosen: Sequence[str],
    *,
    uv: str,
    runs: int | None,
    warmups: int,
    lock: str,
    on_progress: Callable[[str], None] | None = None,
    broker: str | None = None,
) -> TaskResult:
    """Measure one task; return its entry (status ``measured``, ``skipped`` or ``failed``)."""
    say = on_progress or (lambda _msg: None)
    state = venv.status(manifest, layout.spec(manifest, task.env), lock=lock)
    if state is venv.State.UNSUPPORTED:
        reason = f"env {task.env!r} is not supported here"
        return TaskResult(task.env, task.module, SKIPPED, reason=reason)
    if state is not venv.State.UP_TO_DATE:
        reason = f"env {task.env!r} is {state.value}"
        hint = venv.sync_hint(task.env)
        return TaskResult(task.env, task.module, SKIPPED, reason=reason, sync_command=hint)
    cwd = manifest.root
    say(f"{task.name}: import profile")
    try:
        prof = probe_profile(manifest, task, cwd)
    except ProbeError as exc:
        (direct,) = launches(manifest, task, [ways.SUB_DIRECT], uv=uv)
        reason = f"the ready probe failed: {exc}"
        return TaskResult(task.env, task.module, FAILED, reason=reason, command=direct.argv)
    project = task.module.split(".", 1)[0]
    # Packages that Python's start-up itself loads (.pth hooks such as setuptools'
    # _distutils_hack) are paid by floor-pass too; they are not the task's needs.
    (bare,) = launches(manifest, task, [ways.FLOOR_PASS], uv=uv)
    try:
        startup = importtime.third_party_tops(startup_profile(bare, cwd), project)
    except ProbeError as exc:
        reason = f"`python -c pass` failed: {exc}"
        return TaskResult(task.env, task.module, FAILED, reason=reason)
    floor_imports = [m for m in prof.work_roots(project) if m.partition(".")[0] not in startup]

    notes = []
    if any(ways.get(name).full_env for name in chosen):
        full_state = venv.status(manifest, layout.spec(manifest, FULL_ENV), lock=lock)
        if full_state is not venv.State.UP_TO_DATE:
            chosen = [name for name in chosen if not ways.get(name).full_env]
            notes.append(f"full env is {full_state.value}; run: {venv.sync_hint(FULL_ENV)}")
    heavy = prof.elapsed_ns / 1e9 > HEAVY_SECONDS
    n_runs = runs or (RUNS_HEAVY if heavy else RUNS_LIGHT)
    items = launches(manifest, task, chosen, uv=uv, floor_modules=floor_imports)
    say(f"{task.name}: {len(items)} ways x ({warmups} warm-up + {n_runs}) rounds")
    results = time_launches(items, runs=n_runs, warmups=warmups, cwd=cwd)
    if ways.WARM in chosen:
        say(f"{task.name}: warm worker round trips")
        warm, note = warm_way(manifest, task, runs=max(n_runs, WARM_RUNS), broker=broker)
        if warm is not None:
            results[ways.WARM] = warm
        if note:
            notes.append(note)
    measurement = Measurement(
        startup_modules=tuple(startup),
        floor_modules=tuple(m for m in prof.third_party(project) if m not in startup),
        floor_imports=tuple(floor_imports),
        tried_not_loaded=tuple(
            sorted(set(importtime.third_party_tops(prof.records, project)) - prof.loaded)
        ),
        imports=import_breakdown(prof.records, project),
        import_profile_s=prof.elapsed_ns / 1e9,
        runs=n_runs,
        warmups=warmups,
        notes=tuple(notes),
        ways=results,
        target=target(results),
        uv_overhead_s=uv_overhead(results),
    )
    errors = [f"{name}: {r.error}" for name, r in results.items() if r.error]
    if errors:
        return TaskResult(task.env, task.module, FAILED, "; ".join(errors), measurement=measurement)
    return TaskResult(task.env, task.module, MEASURED, measurement=measurement)
