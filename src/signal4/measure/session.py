"""A whole ``inv measure`` run: every chosen task, then the disk, as one :class:`Document`."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Final

from signal4.envs import layout, venv
from signal4.envs.manifest import FULL_ENV, Manifest, Task, UnknownNameError
from signal4.measure import ways
from signal4.measure.disk import disk_report
from signal4.measure.doc import SCHEMA_VERSION, Document, SeedFigures, Settings
from signal4.measure.errors import MeasureError
from signal4.measure.launch import real_uv
from signal4.measure.machine import machine_info
from signal4.measure.task import measure_task

DEFAULT_WARMUPS: Final = 1

#: The design note's figures (method unknown), by env: full env s, sub-env s, savings.
SEED: Final[Mapping[str, SeedFigures]] = {
    "cleanup": SeedFigures(2.10, 0.85, 0.60),
    "download": SeedFigures(1.70, 0.45, 0.74),
    "transcribe": SeedFigures(2.10, 1.09, 0.48),
    "diarize": SeedFigures(10.68, 4.41, 0.59),
}
#: The design note's env sizes.
SEED_SIZES: Final[Mapping[str, str]] = {
    FULL_ENV: "2.5G",
    "cleanup": "201M",
    "convert": "171M",
    "download": "213M",
    "transcribe": "1.2G",
    "diarize": "922M",
    "stitch": "1.1G",
    "mlx-server": "698M",
}


def select_tasks(manifest: Manifest, names: Sequence[str]) -> list[Task]:
    """Return the named tasks (all by default); raise :class:`MeasureError` for unknown ones."""
    if not names:
        return list(manifest.tasks.values())
    try:
        return [manifest.task(name) for name in names]
    except UnknownNameError as exc:
        raise MeasureError(str(exc)) from None


def check_rounds(runs: int | None, warmups: int) -> None:
    """Raise :class:`MeasureError` for a number of rounds that cannot be run."""
    if runs is not None and runs < 1:
        raise MeasureError("--runs must be at least 1")
    if warmups < 0:
        raise MeasureError("--warmups must be 0 or more")


def measure(
    manifest: Manifest,
    tasks: Sequence[Task],
    chosen: Sequence[str],
    *,
    runs: int | None = None,
    warmups: int = DEFAULT_WARMUPS,
    disk: bool = True,
    on_progress: Callable[[str], None] | None = None,
    broker: str | None = None,
) -> Document:
    """Measure ``tasks`` the ``chosen`` ways (and, with ``disk``, every env's size)."""
    check_rounds(runs, warmups)
    started = time.monotonic()
    uv = real_uv(venv.find_uv())
    lock = layout.lock_hash(manifest)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    machine = machine_info(manifest, uv)
    results = {
        task.name: measure_task(
            manifest,
            task,
            chosen,
            uv=uv,
            runs=runs,
            warmups=warmups,
            lock=lock,
            on_progress=on_progress,
            broker=broker,
        )
        for task in tasks
    }
    report = None
    if disk:
        if on_progress:
            on_progress("disk usage")
        report = disk_report(manifest, uv=uv, lock=lock)
    return Document(
        schema_version=SCHEMA_VERSION,
        created=created,
        machine=replace(machine, loadavg_end=os.getloadavg()),
        settings=Settings(
            ways=tuple(chosen),
            runs=runs,
            warmups=warmups,
            target_ratio=ways.TARGET_RATIO,
            reference=ways.REFERENCE,
        ),
        seed=SEED,
        seed_sizes=SEED_SIZES,
        tasks=results,
        disk=report,
        wall_s=round(time.monotonic() - started, 1),
    )
