"""``inv measure --check``: each task's start-up against a committed baseline's.

What is compared is sub-direct's pairwise ratio to the necessary floor, measured in the
same run (never absolute times, which depend on the machine); a task regressed when that
ratio grew by more than the tolerance. A task missing on either side is listed and not
counted as a regression.

Light (standard library and the document types): ``tasks.py`` takes
:data:`DEFAULT_TOLERANCE` from here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from signal4.measure.doc import MEASURED, SCHEMA_VERSION, Document, TaskResult
from signal4.measure.errors import MeasureError
from signal4.measure.ways import FLOOR_IMPORTS, SUB_DIRECT

#: Allowed growth of the ratio (0.2 = 20 %).
DEFAULT_TOLERANCE: Final = 0.20
#: The ways the compared ratio is made of.
CHECK_WAYS: Final = (SUB_DIRECT, FLOOR_IMPORTS)


@dataclass(frozen=True)
class Verdict:
    """One task's start-up ratio against the baseline's."""

    task: str
    baseline: float | None
    current: float | None
    regressed: bool
    note: str = ""


def check_tolerance(tolerance: float) -> None:
    """Raise :class:`MeasureError` for a negative tolerance."""
    if tolerance < 0:
        raise MeasureError("--tolerance must be 0 or more")


def check_ways(ways: Sequence[str]) -> None:
    """Raise :class:`MeasureError` unless ``ways`` include what the check compares."""
    if not set(CHECK_WAYS) <= set(ways):
        raise MeasureError(f"--check needs the ways {' and '.join(CHECK_WAYS)}")


def _ratio(entry: TaskResult | None) -> float | None:
    if entry is None or entry.status != MEASURED or entry.measurement is None:
        return None
    return entry.measurement.target.ratio_to_floor


@dataclass(frozen=True)
class Baseline:
    """A baseline document and the tolerance it is checked with."""

    doc: Document
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        check_tolerance(self.tolerance)

    def check(self, current: Document) -> list[Verdict]:
        """Compare each task's sub-direct/floor ratio with the baseline's."""
        verdicts = []
        for name, entry in current.tasks.items():
            now = _ratio(entry)
            before = _ratio(self.doc.tasks.get(name))
            if now is None:
                verdicts.append(Verdict(name, before, None, False, "not measured now"))
            elif before is None:
                verdicts.append(Verdict(name, None, now, False, "no baseline figure"))
            else:
                regressed = now > before * (1 + self.tolerance)
                verdicts.append(Verdict(name, before, now, regressed))
        return verdicts


def load_baseline(path: Path, tolerance: float = DEFAULT_TOLERANCE) -> Baseline:
    """Read a baseline JSON written by ``inv measure``; raise :class:`MeasureError` if unusable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MeasureError(f"cannot read baseline {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise MeasureError(f"baseline {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise MeasureError(f"baseline {path} is not an `inv measure` JSON file (no schema_version)")
    if raw["schema_version"] != SCHEMA_VERSION:
        raise MeasureError(
            f"baseline {path} has schema_version {raw['schema_version']!r}, this version reads "
            f"{SCHEMA_VERSION}; re-create it with: inv measure --json {path}"
        )
    if not isinstance(raw.get("tasks"), dict):
        raise MeasureError(f"baseline {path} has no 'tasks' table")
    try:
        doc = Document.from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise MeasureError(
            f"baseline {path} is not a complete `inv measure` document ({exc}); "
            f"re-create it with: inv measure --json {path}"
        ) from None
    return Baseline(doc, tolerance)
