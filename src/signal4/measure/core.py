"""``inv measure``: start-up time of every task by launch way, its import breakdown, env sizes.

What is timed is a task's **ready probe**, ``python -m <task module> --ready``: it imports
exactly what a real run imports, prints one result line and exits (see
:mod:`signal4.run.steprunner`). Each task is launched these ways (``--ways``):

``full-uv``
    The original way: ``uv run --project <root> --locked --all-extras --no-default-groups
    python -m <module> --ready`` with ``UV_PROJECT_ENVIRONMENT=envs/full/.venv``. uv checks
    the lock and the env on every launch, as the original worker's plain ``uv run`` did.
    ``--locked`` does the same check but refuses to rewrite ``uv.lock`` if it is out of date
    (plain ``uv run`` would relock); ``--no-default-groups`` keeps uv from installing the dev
    group into the full env. Otherwise identical work.
``full-direct``
    The full env's interpreter, directly.
``sub-uv``
    The design note's way: ``uv run --project <root> --locked --extra <env>
    --no-default-groups python -m <module> --ready`` with
    ``UV_PROJECT_ENVIRONMENT=envs/<env>/.venv``.
``sub-direct``
    The dispatcher's way (:func:`signal4.run.dispatch.command`): the sub-env's interpreter.
    Every ratio is taken against this way.
``floor-pass``
    The sub-env's interpreter running ``-c pass``: Python's own start-up.
``warm``
    Not a launch: the time from submitting ``signal4.ping`` for the task to an idle warm
    worker of its env (``inv worker <env>``) to its "step ready" reply, over the broker
    (:func:`signal4.workers.worker.warm_roundtrip`). Skipped with a note when no broker or worker
    answers. Target: a p50 of :data:`WARM_TARGET_MS` ms or less.
``floor-imports``
    The *necessary floor*: the sub-env's interpreter importing nothing but the third-party
    modules the probe's own code imported (full names: ``sqlalchemy.orm``, not only
    ``sqlalchemy``), in the order it started them. The list comes from the probe's own
    ``-X importtime`` output, never from a hand-kept list.

**Timing.** One ``-X importtime`` run of the probe (which also warms the page cache), then
``warmups`` rounds that are thrown away, then ``runs`` rounds. A round launches every way
once; the order rotates from round to round (A B C, B C A, C A B…) so that drift in the
machine's load hits every way alike. Each launch is timed with ``time.perf_counter_ns``
around ``subprocess.run``. pyperf's ``command`` benchmark and hyperfine both run all
samples of one command before the next, so they cannot interleave; hence this small loop.
Reported per way: median, min, max, and the *pairwise* ratio to ``sub-direct``: the ratio
of round i of way X to round i of sub-direct, then the median of those ratios.

**Performance target** (reported, not asserted): sub-direct within 1.15x of floor-imports.
``--check BASELINE.json`` compares that same ratio (never absolute times, which depend on
the machine) with the baseline's and fails when it grew by more than ``--tolerance``.

**Disk.** Apparent and unique size per env (hard-linked files counted once), the union of
all sub-envs against the full env, and uv's cache; the JSON layout is in
``benchmarks/README.md`` (:data:`SCHEMA_VERSION`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signal4.envs import venv as envs
from signal4.envs.manifest import FULL_ENV, PACKAGE, Manifest, Task, UnknownNameError
from signal4.errors import Signal4Error
from signal4.measure import importtime
from signal4.run import dispatch, protocol

SCHEMA_VERSION = 1

FULL_UV = "full-uv"
FULL_DIRECT = "full-direct"
SUB_UV = "sub-uv"
SUB_DIRECT = "sub-direct"
FLOOR_PASS = "floor-pass"
FLOOR_IMPORTS = "floor-imports"
WARM = "warm"
WAYS = (FULL_UV, FULL_DIRECT, SUB_UV, SUB_DIRECT, FLOOR_PASS, FLOOR_IMPORTS, WARM)
REFERENCE = SUB_DIRECT
FULL_WAYS = frozenset({FULL_UV, FULL_DIRECT})

#: Round trips timed per task for the warm way (each costs milliseconds).
WARM_RUNS = 30
#: The warm way's target p50, in milliseconds.
WARM_TARGET_MS = 20.0
#: Sub-direct should reach ready within this factor of the necessary floor.
TARGET_RATIO = 1.15
DEFAULT_TOLERANCE = 0.20
DEFAULT_WARMUPS = 1
#: Rounds per task when ``runs`` is not given: more for quick tasks, fewer for heavy ones.
RUNS_LIGHT = 5
RUNS_HEAVY = 3
#: A task whose import-profile run takes longer than this counts as heavy.
HEAVY_SECONDS = 2.0
STDERR_TAIL_CHARS = 1500
TOP_MODULES = 8

#: The design note's figures (method unknown), by env: full env s, sub-env s, savings.
SEED: Mapping[str, tuple[float, float, float]] = {
    "cleanup": (2.10, 0.85, 0.60),
    "download": (1.70, 0.45, 0.74),
    "transcribe": (2.10, 1.09, 0.48),
    "diarize": (10.68, 4.41, 0.59),
}
#: The design note's env sizes.
SEED_SIZES: Mapping[str, str] = {
    FULL_ENV: "2.5G",
    "cleanup": "201M",
    "convert": "171M",
    "download": "213M",
    "transcribe": "1.2G",
    "diarize": "922M",
    "stitch": "1.1G",
    "mlx-server": "698M",
}


class MeasureError(Signal4Error, ValueError):
    """A bad option or baseline; the message says what to do."""


class ProbeError(RuntimeError):
    """A launch did not exit 0 with a ready line; the message holds its stderr tail."""


@dataclass(frozen=True)
class Launch:
    """One way of starting one task: an argument list and its environment."""

    way: str
    argv: tuple[str, ...]
    environ: Mapping[str, str] = field(repr=False)
    #: Whether the launch must print a ready result line (floors print nothing).
    expects_ready: bool = True


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (the mean of the middle two for an even count)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def pairwise_ratios(samples: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Return sample i / reference i for each round both have."""
    return [s / r for s, r in zip(samples, reference, strict=False) if r > 0]


def summarise(samples_ns: Sequence[int], reference_ns: Sequence[int] | None) -> dict[str, Any]:
    """Return median/min/max in seconds and the median pairwise ratio to the reference."""
    if not samples_ns:
        return {"median_s": None, "min_s": None, "max_s": None, "ratio_to_sub_direct": None}
    ratios = pairwise_ratios(samples_ns, reference_ns or [])
    return {
        "median_s": median(samples_ns) / 1e9,
        "min_s": min(samples_ns) / 1e9,
        "max_s": max(samples_ns) / 1e9,
        "ratio_to_sub_direct": median(ratios) if ratios else None,
    }


def pairwise_difference_s(ways: Mapping[str, Mapping[str, Any]], a: str, b: str) -> float | None:
    """Return the median over rounds of (way ``a`` - way ``b``), in seconds; None if unpaired."""
    xs = ways.get(a, {}).get("samples_ns") or []
    ys = ways.get(b, {}).get("samples_ns") or []
    diffs = [x - y for x, y in zip(xs, ys, strict=False)]
    return median(diffs) / 1e9 if diffs else None


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """Return ``items`` rotated left by ``shift``: round i starts with the i-th item."""
    if not items:
        return []
    k = shift % len(items)
    return [*items[k:], *items[:k]]


# --------------------------------------------------------------------------- launching


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


def launches(
    manifest: Manifest, task: Task, ways: Sequence[str], *, uv: str, floor_modules: Sequence[str]
) -> list[Launch]:
    """Return the launches of ``task`` for each of ``ways``, in the order of :data:`WAYS`."""
    sub = envs.spec(manifest, task.env)
    full = envs.spec(manifest, FULL_ENV)
    probe = ["-m", task.module, "--ready"]
    base = dispatch.child_environ(manifest)
    base.setdefault("UV_NO_PROGRESS", "1")

    def uv_run(env: envs.EnvSpec) -> tuple[tuple[str, ...], dict[str, str]]:
        selection = ["--all-extras"] if env.all_extras else ["--extra", env.name]
        argv = [
            uv,
            "run",
            "--project",
            str(manifest.root),
            "--locked",
            *selection,
            "--no-default-groups",
            "python",
            *probe,
        ]
        return tuple(argv), {**base, "UV_PROJECT_ENVIRONMENT": str(env.venv)}

    result = []
    for way in WAYS:
        if way not in ways:
            continue
        if way == FULL_UV:
            argv, environ = uv_run(full)
            result.append(Launch(way, argv, environ))
        elif way == FULL_DIRECT:
            result.append(Launch(way, (str(full.python), *probe), base))
        elif way == SUB_UV:
            argv, environ = uv_run(sub)
            result.append(Launch(way, argv, environ))
        elif way == SUB_DIRECT:
            result.append(
                Launch(way, tuple(dispatch.command(manifest, task, ["--ready"], sub)), base)
            )
        elif way == FLOOR_PASS:
            result.append(Launch(way, (str(sub.python), "-c", "pass"), base, expects_ready=False))
        elif way == FLOOR_IMPORTS:
            code = floor_code(floor_modules)
            result.append(Launch(way, (str(sub.python), "-c", code), base, expects_ready=False))
    return result


def floor_code(modules: Sequence[str]) -> str:
    """Return the ``-c`` program of the necessary floor: import ``modules``, in order."""
    if not modules:
        return "pass"
    return f"import importlib\nfor name in {list(modules)!r}:\n    importlib.import_module(name)\n"


def _tail(text: str) -> str:
    """The end of a stderr text, without ``-X importtime`` lines."""
    lines = [
        line for line in text.splitlines() if not line.startswith(("import time:", LOADED_MARK))
    ]
    return "\n".join(lines)[-STDERR_TAIL_CHARS:].strip()


def _timed_run(
    argv: Sequence[str], environ: Mapping[str, str] | None, cwd: Path | None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``argv`` to the end with its output captured; return it and its wall time (ns)."""
    started = time.perf_counter_ns()
    proc = subprocess.run(
        list(argv),
        env=dict(environ) if environ is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return proc, time.perf_counter_ns() - started


def launch(item: Launch, cwd: Path, *, extra_args: Sequence[str] = ()) -> tuple[int, str]:
    """Run ``item`` once; return (nanoseconds, stderr). Raise :class:`ProbeError` if it failed."""
    argv = list(item.argv)
    if extra_args:
        # Interpreter options go right after the interpreter (direct launches only).
        argv[1:1] = list(extra_args)
    try:
        proc, elapsed = _timed_run(argv, item.environ, cwd)
    except OSError as exc:
        raise ProbeError(f"cannot start {argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise ProbeError(f"exit code {proc.returncode}; stderr tail:\n{_tail(proc.stderr)}")
    if item.expects_ready:
        try:
            result = protocol.parse_last_line(proc.stdout)
        except protocol.ProtocolError as exc:
            raise ProbeError(f"{exc}; stderr tail:\n{_tail(proc.stderr)}") from None
        if not result.get("ready"):
            raise ProbeError(f"the probe's result line has no 'ready': {json.dumps(result)[:200]}")
    return elapsed, proc.stderr


#: The line the profiling wrapper prints last on stderr: the top-level modules loaded.
LOADED_MARK = "signal4-measure-loaded:"


def profile_code(module: str) -> str:
    """Return a ``-c`` program that runs ``module`` as ``python -m`` does, then lists what loaded.

    ``-X importtime`` also reports imports that failed (optional ``try: import x``), so the
    list of modules still in ``sys.modules`` at exit tells which ones really loaded.
    """
    return (
        "import runpy, sys\n"
        f"sys.argv[0] = {module!r}\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
        "finally:\n"
        f"    print({LOADED_MARK!r}, *sorted(sys.modules), file=sys.stderr)\n"
    )


@dataclass(frozen=True)
class Profile:
    """One run of a module under ``-X importtime``."""

    records: list[importtime.ImportRecord]
    loaded: frozenset[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed_ns: int

    def third_party(self, project: str = PACKAGE) -> list[str]:
        """Third-party top-level packages that loaded (not merely tried), in start order."""
        tops = importtime.third_party_tops(self.records, project)
        return [name for name in tops if name in self.loaded]

    def third_party_roots(self, project: str = PACKAGE) -> list[str]:
        """Third-party modules our code (or the stdlib) imported and that loaded, in order."""
        roots = importtime.third_party_roots(self.records, project)
        return [name for name in roots if name in self.loaded]


def profile(
    python: str | Path,
    module: str,
    args: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Profile:
    """Run ``python -m module args`` under ``-X importtime``, whatever its exit code."""
    argv = [str(python), "-X", "importtime", "-c", profile_code(module), *args]
    proc, elapsed = _timed_run(argv, environ, cwd)
    loaded: frozenset[str] = frozenset()
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith(LOADED_MARK):
            loaded = frozenset(line[len(LOADED_MARK) :].split())
            break
    return Profile(
        importtime.parse(proc.stderr), loaded, proc.returncode, proc.stdout, proc.stderr, elapsed
    )


def probe_profile(manifest: Manifest, task: Task, cwd: Path) -> Profile:
    """Profile the task's ready probe in its env; raise :class:`ProbeError` if it failed."""
    environ = dispatch.child_environ(manifest)
    result = profile(
        envs.spec(manifest, task.env).python, task.module, ["--ready"], environ=environ, cwd=cwd
    )
    if result.returncode != 0:
        if f"No module named {task.module}" in result.stderr:
            raise ProbeError(f"its module {task.module} does not exist in env {task.env!r}")
        raise ProbeError(f"exit code {result.returncode}; stderr tail:\n{_tail(result.stderr)}")
    try:
        line = protocol.parse_last_line(result.stdout)
    except protocol.ProtocolError as exc:
        raise ProbeError(f"{exc}; stderr tail:\n{_tail(result.stderr)}") from None
    if not line.get("ready"):
        raise ProbeError(f"the probe's result line has no 'ready': {json.dumps(line)[:200]}")
    return result


@dataclass(frozen=True)
class Coverage:
    """A real run's third-party packages against its ready probe's."""

    real: Profile
    probe: Profile
    project: str

    @property
    def missing(self) -> list[str]:
        """Packages a real run loads that the probe does not (should be empty)."""
        probe = set(self.probe.third_party(self.project))
        return [m for m in self.real.third_party(self.project) if m not in probe]


def probe_coverage(
    python: str | Path,
    module: str,
    real_args: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Coverage:
    """Run ``module`` for real with ``real_args`` and as ``--ready``, both under ``-X importtime``.

    The caller checks that both exited as expected and that :attr:`Coverage.missing` is empty.
    """
    project = module.split(".", 1)[0]
    real = profile(python, module, real_args, environ=environ, cwd=cwd)
    probe = profile(python, module, ["--ready"], environ=environ, cwd=cwd)
    return Coverage(real, probe, project)


def startup_profile(item: Launch, cwd: Path) -> list[importtime.ImportRecord]:
    """Run a direct launch under ``-X importtime``; return its import records."""
    _elapsed, stderr = launch(item, cwd, extra_args=["-X", "importtime"])
    return importtime.parse(stderr)


def time_launches(
    items: Sequence[Launch],
    *,
    runs: int,
    warmups: int,
    cwd: Path,
    on_sample: Callable[[str, int, bool], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time every launch over ``warmups`` + ``runs`` rotating rounds; return raw results by way.

    A launch that fails is recorded with its error and not launched again.
    """
    out: dict[str, dict[str, Any]] = {
        i.way: {"command": list(i.argv), "warmup_ns": [], "samples_ns": [], "error": None}
        for i in items
    }
    for rnd in range(warmups + runs):
        warm = rnd < warmups
        for item in rotated(items, rnd):
            entry = out[item.way]
            if entry["error"]:
                continue
            try:
                ns, _ = launch(item, cwd)
            except ProbeError as exc:
                entry["error"] = str(exc)
                continue
            entry["warmup_ns" if warm else "samples_ns"].append(ns)
            if on_sample:
                on_sample(item.way, ns, warm)
    return out


# --------------------------------------------------------------------------- one task


def import_breakdown(
    records: Sequence[importtime.ImportRecord], project: str = PACKAGE
) -> dict[str, Any]:
    """Return the JSON import breakdown of one probe (``project``: our own top-level package)."""

    def rows(chosen: Iterable[importtime.ImportRecord]) -> list[dict[str, Any]]:
        return [
            {
                "module": r.module,
                "kind": importtime.kind_of(r.module, project),
                "cumulative_us": r.cumulative_us,
                "self_us": r.self_us,
            }
            for r in chosen
        ]

    packages = importtime.by_package(
        r for r in records if importtime.kind_of(r.module, project) == importtime.THIRD_PARTY
    )
    return {
        "total_us": importtime.total_us(records),
        "self_us_by_kind": importtime.self_time_by_kind(records, project),
        "top": rows(importtime.top_cumulative(records, limit=TOP_MODULES, project=project)),
        "top_project": rows(
            importtime.top_cumulative(
                records, limit=TOP_MODULES, kind=importtime.PROJECT, project=project
            )
        ),
        "third_party_self_us_by_package": dict(list(packages.items())[:TOP_MODULES]),
        "modules_loaded": len(records),
    }


def measure_task(
    manifest: Manifest,
    task: Task,
    ways: Sequence[str],
    *,
    uv: str,
    runs: int | None,
    warmups: int,
    lock: str,
    on_progress: Callable[[str], None] | None = None,
    broker: str | None = None,
) -> dict[str, Any]:
    """Measure one task; return its JSON entry (status ``measured``, ``skipped`` or ``failed``)."""
    say = on_progress or (lambda _msg: None)
    entry: dict[str, Any] = {"env": task.env, "module": task.module, "status": "measured"}
    sub = envs.spec(manifest, task.env)
    state = envs.status(manifest, sub, lock=lock)
    if state is envs.State.UNSUPPORTED:
        return {**entry, "status": "skipped", "reason": f"env {task.env!r} is not supported here"}
    if state is not envs.State.UP_TO_DATE:
        hint = envs.sync_hint(task.env)
        return {
            **entry,
            "status": "skipped",
            "reason": f"env {task.env!r} is {state.value}",
            "sync_command": hint,
        }
    cwd = manifest.root
    say(f"{task.name}: import profile")
    try:
        prof = probe_profile(manifest, task, cwd)
    except ProbeError as exc:
        direct = launches(manifest, task, [SUB_DIRECT], uv=uv, floor_modules=())[0]
        return {
            **entry,
            "status": "failed",
            "reason": f"the ready probe failed: {exc}",
            "command": list(direct.argv),
        }
    records = prof.records
    project = task.module.split(".", 1)[0]
    # Packages that Python's start-up itself loads (.pth hooks such as setuptools'
    # _distutils_hack) are paid by floor-pass too; they are not the task's needs.
    bare = launches(manifest, task, [FLOOR_PASS], uv=uv, floor_modules=())[0]
    try:
        startup = importtime.third_party_tops(startup_profile(bare, cwd), project)
    except ProbeError as exc:
        return {**entry, "status": "failed", "reason": f"`python -c pass` failed: {exc}"}
    floor_modules = [m for m in prof.third_party(project) if m not in startup]
    floor_imports = [
        m for m in prof.third_party_roots(project) if m.partition(".")[0] not in startup
    ]
    entry["startup_modules"] = startup
    entry["floor_modules"] = floor_modules
    entry["floor_imports"] = floor_imports
    entry["tried_not_loaded"] = sorted(
        set(importtime.third_party_tops(records, project)) - prof.loaded
    )
    entry["imports"] = import_breakdown(records, project)
    entry["import_profile_s"] = prof.elapsed_ns / 1e9
    profile_ns = prof.elapsed_ns

    chosen = list(ways)
    notes = []
    if FULL_WAYS & set(chosen):
        full_state = envs.status(manifest, envs.spec(manifest, FULL_ENV), lock=lock)
        if full_state is not envs.State.UP_TO_DATE:
            chosen = [w for w in chosen if w not in FULL_WAYS]
            notes.append(f"full env is {full_state.value}; run: {envs.sync_hint(FULL_ENV)}")
    n_runs = runs or (RUNS_HEAVY if profile_ns / 1e9 > HEAVY_SECONDS else RUNS_LIGHT)
    entry["runs"] = n_runs
    entry["warmups"] = warmups
    entry["notes"] = notes
    items = launches(manifest, task, chosen, uv=uv, floor_modules=floor_imports)
    say(f"{task.name}: {len(items)} ways x ({warmups} warm-up + {n_runs}) rounds")
    raw = time_launches(items, runs=n_runs, warmups=warmups, cwd=cwd)
    reference = raw.get(REFERENCE, {}).get("samples_ns")
    for data in raw.values():
        data.update(summarise(data["samples_ns"], reference))
    if WARM in chosen:
        say(f"{task.name}: warm worker round trips")
        warm, note = warm_way(manifest, task, runs=max(n_runs, WARM_RUNS), broker=broker)
        if warm is not None:
            warm.update(summarise(warm["samples_ns"], None))
            raw[WARM] = warm
        if note:
            notes.append(note)
    entry["ways"] = raw
    entry["target"] = target(raw)
    entry["uv_overhead_s"] = {
        "full": pairwise_difference_s(raw, FULL_UV, FULL_DIRECT),
        "sub": pairwise_difference_s(raw, SUB_UV, SUB_DIRECT),
    }
    if any(d["error"] for d in raw.values()):
        entry["status"] = "failed"
        entry["reason"] = "; ".join(f"{w}: {d['error']}" for w, d in raw.items() if d["error"])
    return entry


def warm_way(
    manifest: Manifest, task: Task, *, runs: int, broker: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """Time the warm way of ``task``: (raw entry, None), or (None, why it was skipped)."""
    from signal4.workers import celeryapp, worker

    url = celeryapp.broker_url(broker)
    try:
        samples = worker.warm_roundtrip(manifest, task.name, runs=runs, warmups=3, broker=url)
    except worker.WorkerError as exc:
        return None, f"warm way skipped: {exc}"
    p50_ms = median(samples) / 1e6
    return {
        "command": ["celery", celeryapp.PING, task.queue, url],
        "warmup_ns": [],
        "samples_ns": samples,
        "error": None,
        "p50_ms": p50_ms,
        "target_ms": WARM_TARGET_MS,
        "met": p50_ms <= WARM_TARGET_MS,
    }, None


def target(ways: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Return sub-direct's pairwise ratio to the necessary floor and whether it meets the target."""
    sub = ways.get(SUB_DIRECT, {}).get("samples_ns") or []
    floor = ways.get(FLOOR_IMPORTS, {}).get("samples_ns") or []
    ratios = pairwise_ratios(sub, floor)
    ratio = median(ratios) if ratios else None
    over_pass = pairwise_ratios(sub, ways.get(FLOOR_PASS, {}).get("samples_ns") or [])
    return {
        "ratio_to_floor": ratio,
        "ratio_to_pass": median(over_pass) if over_pass else None,
        "limit": TARGET_RATIO,
        "met": None if ratio is None else ratio <= TARGET_RATIO,
    }


# --------------------------------------------------------------------------- disk


def disk_report(manifest: Manifest, *, uv: str, lock: str) -> dict[str, Any]:
    """Return env sizes, the union of the sub-envs against the full env, and uv's cache size."""
    names = [e.name for e in manifest.supported_envs()]
    per_env: dict[str, Any] = {}
    union_seen: set[tuple[int, int]] = set()
    union_apparent = union_unique = 0
    for name in [*names, FULL_ENV]:
        env = envs.spec(manifest, name)
        if not env.venv.exists():
            per_env[name] = {"state": envs.State.MISSING.value}
            continue
        apparent, unique = envs.disk_usage(env.venv)
        per_env[name] = {
            "state": envs.status(manifest, env, lock=lock).value,
            "apparent_bytes": apparent,
            "unique_bytes": unique,
            "packages": envs.package_count(env),
        }
        if name != FULL_ENV:
            a, u = envs.disk_usage(env.venv, union_seen)
            union_apparent += a
            union_unique += u
    report: dict[str, Any] = {
        "envs": per_env,
        "sub_envs_apparent_bytes": union_apparent,
        "sub_envs_unique_bytes": union_unique,
    }
    full = envs.spec(manifest, FULL_ENV)
    if full.venv.exists():
        # What the full env holds that no sub-env shares (by inode).
        _a, extra = envs.disk_usage(full.venv, union_seen)
        report["full_beyond_sub_envs_bytes"] = extra
    try:
        cache = subprocess.run(
            [uv, "cache", "dir"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        cache = ""
    if cache and Path(cache).is_dir():
        apparent, unique = envs.disk_usage(Path(cache))
        _a, beyond = envs.disk_usage(Path(cache), union_seen)
        report["uv_cache"] = {
            "path": cache,
            "apparent_bytes": apparent,
            "unique_bytes": unique,
            "beyond_envs_bytes": beyond,
        }
    # What the envs and the cache really occupy together, each inode once.
    report["all_unique_bytes"] = (
        union_unique
        + report.get("full_beyond_sub_envs_bytes", 0)
        + report.get("uv_cache", {}).get("beyond_envs_bytes", 0)
    )
    return report


# --------------------------------------------------------------------------- the whole run


def machine_info(manifest: Manifest, uv: str) -> dict[str, Any]:
    """Describe the machine and tools the figures come from."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    try:
        uv_version = subprocess.run(
            [uv, "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        uv_version = "unknown"
    python = platform.python_version()
    for env in manifest.supported_envs():
        cfg = envs.spec(manifest, env.name).venv / "pyvenv.cfg"
        if cfg.is_file():
            for line in cfg.read_text(encoding="utf-8").splitlines():
                if line.startswith("version_info"):
                    python = line.split("=", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": f"{platform.system()} {platform.machine()} {platform.release()}",
        "python": python,
        "uv": uv_version,
        "uv_path": uv,
        "loadavg_start": list(os.getloadavg()),
    }


def select_tasks(manifest: Manifest, names: Sequence[str]) -> list[Task]:
    """Return the named tasks (all by default); raise :class:`MeasureError` for unknown ones."""
    if not names:
        return list(manifest.tasks.values())
    try:
        return [manifest.task(name) for name in names]
    except UnknownNameError as exc:
        raise MeasureError(str(exc)) from None


def select_ways(names: Sequence[str]) -> list[str]:
    """Return the chosen ways (all by default) in canonical order; reject unknown names."""
    unknown = [n for n in names if n not in WAYS]
    if unknown:
        raise MeasureError(f"unknown way {unknown[0]!r}; valid ways: {', '.join(WAYS)}")
    return [w for w in WAYS if not names or w in names]


def measure(
    manifest: Manifest,
    tasks: Sequence[Task],
    ways: Sequence[str],
    *,
    runs: int | None = None,
    warmups: int = DEFAULT_WARMUPS,
    disk: bool = True,
    on_progress: Callable[[str], None] | None = None,
    broker: str | None = None,
) -> dict[str, Any]:
    """Measure ``tasks`` (and, with ``disk``, every env's size); return the JSON document."""
    if runs is not None and runs < 1:
        raise MeasureError("--runs must be at least 1")
    if warmups < 0:
        raise MeasureError("--warmups must be 0 or more")
    started = time.monotonic()
    try:
        uv = real_uv(envs.find_uv())
        lock = envs.lock_hash(manifest)
    except envs.EnvError as exc:
        raise MeasureError(str(exc)) from None
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(manifest, uv),
        "settings": {
            "ways": list(ways),
            "runs": runs,
            "warmups": warmups,
            "target_ratio": TARGET_RATIO,
            "reference": REFERENCE,
        },
        "seed": {env: {"full_s": f, "sub_s": s, "savings": sv} for env, (f, s, sv) in SEED.items()},
        "seed_sizes": dict(SEED_SIZES),
        "tasks": {},
    }
    for task in tasks:
        doc["tasks"][task.name] = measure_task(
            manifest,
            task,
            ways,
            uv=uv,
            runs=runs,
            warmups=warmups,
            lock=lock,
            on_progress=on_progress,
            broker=broker,
        )
    if disk:
        if on_progress:
            on_progress("disk usage")
        doc["disk"] = disk_report(manifest, uv=uv, lock=lock)
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["wall_s"] = round(time.monotonic() - started, 1)
    return doc


def failed_tasks(doc: Mapping[str, Any]) -> list[str]:
    """Return the tasks whose probe (or a launch) failed."""
    return [name for name, t in doc["tasks"].items() if t["status"] == "failed"]


# --------------------------------------------------------------------------- baseline check


@dataclass(frozen=True)
class Verdict:
    """One task's start-up ratio against the baseline's."""

    task: str
    baseline: float | None
    current: float | None
    regressed: bool
    note: str = ""


def load_baseline(path: Path) -> dict[str, Any]:
    """Read a baseline JSON written by ``inv measure``; raise :class:`MeasureError` if unusable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MeasureError(f"cannot read baseline {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise MeasureError(f"baseline {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise MeasureError(f"baseline {path} is not an `inv measure` JSON file (no schema_version)")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise MeasureError(
            f"baseline {path} has schema_version {doc['schema_version']!r}, this version reads "
            f"{SCHEMA_VERSION}; re-create it with: inv measure --json {path}"
        )
    if not isinstance(doc.get("tasks"), dict):
        raise MeasureError(f"baseline {path} has no 'tasks' table")
    return doc


def _ratio(entry: Mapping[str, Any] | None) -> float | None:
    if not entry or entry.get("status") != "measured":
        return None
    value = (entry.get("target") or {}).get("ratio_to_floor")
    return float(value) if isinstance(value, int | float) else None


def check(
    baseline: Mapping[str, Any], current: Mapping[str, Any], tolerance: float
) -> list[Verdict]:
    """Compare each task's sub-direct/floor ratio with the baseline's; flag growth > tolerance."""
    if tolerance < 0:
        raise MeasureError("--tolerance must be 0 or more")
    verdicts = []
    for name, entry in current["tasks"].items():
        now = _ratio(entry)
        before = _ratio(baseline["tasks"].get(name))
        if now is None:
            verdicts.append(Verdict(name, before, None, False, "not measured now"))
        elif before is None:
            verdicts.append(Verdict(name, None, now, False, "no baseline figure"))
        else:
            regressed = now > before * (1 + tolerance)
            verdicts.append(Verdict(name, before, now, regressed))
    return verdicts


def write_json(doc: Mapping[str, Any], path: Path) -> None:
    """Write the JSON document (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
