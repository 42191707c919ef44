"""Small typed measurement documents for the tests of the baseline check and the report."""

from __future__ import annotations

from collections.abc import Mapping

from signal4.measure import stats
from signal4.measure.doc import (
    MEASURED,
    SKIPPED,
    Document,
    Machine,
    Measurement,
    Settings,
    Target,
    TaskResult,
    WayResult,
)
from signal4.measure.ways import REFERENCE, TARGET_RATIO


def way(seconds: float, n: int = 3) -> WayResult:
    """A way whose ``n`` samples all took ``seconds``."""
    samples = [int(seconds * 1e9)] * n
    return WayResult(("python",), (), tuple(samples), None, summary=stats.summarise(samples, None))


def measured(
    ratio: float | None = None, ways: Mapping[str, WayResult] | None = None, env: str = "x"
) -> TaskResult:
    """A measured task with sub-direct / floor ``ratio`` and the given ways."""
    met = None if ratio is None else ratio <= TARGET_RATIO
    measurement = Measurement(ways=ways or {}, target=Target(ratio_to_floor=ratio, met=met))
    return TaskResult(env, f"m.{env}", MEASURED, measurement=measurement)


def skipped(env: str = "x") -> TaskResult:
    return TaskResult(env, f"m.{env}", SKIPPED, reason=f"env {env!r} is missing")


def document(tasks: Mapping[str, TaskResult]) -> Document:
    """A document of ``tasks`` from a made-up machine."""
    machine = Machine(2, "cpu", "Linux", "3.11.7", "uv 0", "/bin/uv", (0.5, 0.5, 0.5))
    settings = Settings((), None, 1, TARGET_RATIO, REFERENCE)
    return Document(1, "2026-01-01T00:00:00+00:00", machine, settings, {}, {}, tasks)


def with_ratios(ratios: Mapping[str, float | None]) -> Document:
    """A document whose tasks have these sub-direct / floor ratios (None: skipped)."""
    return document({n: skipped() if r is None else measured(r) for n, r in ratios.items()})
