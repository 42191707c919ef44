"""The measurement document of ``inv measure``, typed: frozen dataclasses, JSON only at the edge.

The layout is ``benchmarks/README.md``'s (:data:`SCHEMA_VERSION`); each class below is one
object of it and its fields are that object's keys, in the order they are written. A few
objects are written *flat*: a way's summary (and the warm way's target) inside the way's
entry, a task's measurement inside the task's entry, an env's sizes inside its disk entry.
A field with a default may be missing from the JSON (a newer field, in an older file) and
reads as that default; a field without one is required.

:meth:`Document.to_json` and :meth:`Document.from_json` are the only places that see the
JSON; :func:`write_json` writes it. Light: the standard library and :mod:`.ways` only.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self, Union, get_args, get_origin, get_type_hints

from signal4.measure.ways import TARGET_RATIO

SCHEMA_VERSION: Final = 1

MEASURED: Final = "measured"
SKIPPED: Final = "skipped"
FAILED: Final = "failed"

#: Field metadata: leave the key out of the JSON when the value is None.
OPTIONAL: Final = MappingProxyType({"optional": True})


def flat(present_if: str | None = None) -> dict[str, Any]:
    """Field metadata: write the nested object's keys into this one's.

    ``present_if``: for an optional nested object, the key that says it was written.
    """
    return {"flat": True, "present_if": present_if}


class Record:
    """A dataclass that reads and writes itself as a JSON object, field by field."""

    def to_json(self) -> dict[str, Any]:
        """This object as JSON data, keys in field order."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("flat"):
                if value is not None:
                    out.update(value.to_json())
            elif value is not None or not f.metadata.get("optional"):
                out[f.name] = _encode(value)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Read this object from JSON data; raise KeyError, TypeError or ValueError if malformed."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__} wants a JSON object, not {type(data).__name__}")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.metadata.get("flat"):
                key = f.metadata["present_if"]
                if key is None or key in data:
                    values[f.name] = _decode(hints[f.name], data)
            elif f.name in data:
                values[f.name] = _decode(hints[f.name], data[f.name])
            elif not _has_default(f):
                raise KeyError(f"{cls.__name__} has no {f.name!r}")
        return cls(**values)


def _has_default(f: Field[Any]) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(tp: Any, data: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if data is None:
            return None
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _decode(inner, data)
    if origin is tuple:
        _need(data, list, tp)
        return tuple(_decode(get_args(tp)[0], item) for item in data)
    if origin is Mapping:
        _need(data, Mapping, tp)
        return {str(k): _decode(get_args(tp)[1], v) for k, v in data.items()}
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(data)
    if tp is float:
        _need(data, int | float, tp)
        return data
    _need(data, tp, tp)
    return data


def _need(data: Any, kind: Any, tp: Any) -> None:
    if isinstance(data, bool) and kind is not bool:
        raise TypeError(f"wanted {tp}, got {data!r}")
    if not isinstance(data, kind):
        raise TypeError(f"wanted {tp}, got {type(data).__name__} {data!r:.60}")


# --------------------------------------------------------------------------- one task


@dataclass(frozen=True)
class ImportRow(Record):
    """One module of the import trace."""

    module: str
    kind: str
    cumulative_us: int
    self_us: int


@dataclass(frozen=True)
class ImportBreakdown(Record):
    """Where the probe's import time goes, from its one ``-X importtime`` run."""

    total_us: int = 0
    #: Self time by kind (project, third-party, stdlib); adds up to ``total_us``.
    self_us_by_kind: Mapping[str, int] = field(default_factory=dict)
    top: tuple[ImportRow, ...] = ()
    top_project: tuple[ImportRow, ...] = ()
    third_party_self_us_by_package: Mapping[str, int] = field(default_factory=dict)
    modules_loaded: int = 0


@dataclass(frozen=True)
class Summary(Record):
    """One way's samples in seconds, and its median pairwise ratio to the reference way."""

    median_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    ratio_to_sub_direct: float | None = None


@dataclass(frozen=True)
class WarmTarget(Record):
    """The warm way's p50 against its target."""

    p50_ms: float
    target_ms: float
    met: bool


@dataclass(frozen=True)
class WayResult(Record):
    """One way of one task: every raw sample, in round order, and their summary."""

    command: tuple[str, ...]
    warmup_ns: tuple[int, ...] = ()
    samples_ns: tuple[int, ...] = ()
    #: Why the way stopped (it is not launched again), or None.
    error: str | None = None
    warm: WarmTarget | None = field(default=None, metadata=flat("p50_ms"))
    summary: Summary = field(default_factory=Summary, metadata=flat())


@dataclass(frozen=True)
class Target(Record):
    """Sub-direct's pairwise ratio to the necessary floor (and to ``-c pass``), and the verdict."""

    ratio_to_floor: float | None = None
    ratio_to_pass: float | None = None
    limit: float = TARGET_RATIO
    met: bool | None = None


@dataclass(frozen=True)
class UvOverhead(Record):
    """Median per-round (``uv run`` - direct), in seconds, in the full env and the sub-env."""

    full: float | None = None
    sub: float | None = None


@dataclass(frozen=True)
class Measurement(Record):
    """What a task whose probe ran has: its imports, the floor, and every way's samples."""

    #: Third-party packages ``python -c pass`` loads too (``.pth`` hooks).
    startup_modules: tuple[str, ...] = ()
    #: Third-party top-level packages the probe adds, in start order.
    floor_modules: tuple[str, ...] = ()
    #: What floor-imports imports, in order.
    floor_imports: tuple[str, ...] = ()
    #: In the trace, but the import failed (optional imports).
    tried_not_loaded: tuple[str, ...] = ()
    imports: ImportBreakdown = field(default_factory=ImportBreakdown)
    #: Wall time of the traced run.
    import_profile_s: float = 0.0
    runs: int = 0
    warmups: int = 0
    notes: tuple[str, ...] = ()
    ways: Mapping[str, WayResult] = field(default_factory=dict)
    target: Target = field(default_factory=Target)
    uv_overhead_s: UvOverhead = field(default_factory=UvOverhead)


@dataclass(frozen=True)
class TaskResult(Record):
    """One task's entry: ``measured``, ``skipped`` (with why) or ``failed`` (with why)."""

    env: str
    module: str
    status: str
    reason: str | None = field(default=None, metadata=OPTIONAL)
    #: The command that syncs the env, when it was skipped because it is not synced.
    sync_command: str | None = field(default=None, metadata=OPTIONAL)
    #: The probe's command, when the probe failed.
    command: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)
    measurement: Measurement | None = field(default=None, metadata=flat("ways"))

    def to_json(self) -> dict[str, Any]:
        """The task's JSON; a measured task's failure ``reason`` comes after its figures."""
        out = super().to_json()
        if self.measurement is not None and "reason" in out:
            out["reason"] = out.pop("reason")
        return out

    @property
    def ways(self) -> Mapping[str, WayResult]:
        """Every way measured for this task (none if its probe did not run)."""
        return self.measurement.ways if self.measurement else {}

    @property
    def notes(self) -> tuple[str, ...]:
        """What the run noted about this task (a way dropped or skipped, and why)."""
        return self.measurement.notes if self.measurement else ()


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class EnvSize(Record):
    """An env's size: apparent, unique (hard-linked files once), and its package count."""

    apparent_bytes: int
    unique_bytes: int
    packages: int


@dataclass(frozen=True)
class EnvDisk(Record):
    """One env's state, and its size when it exists."""

    state: str
    size: EnvSize | None = field(default=None, metadata=flat("apparent_bytes"))


@dataclass(frozen=True)
class UvCache(Record):
    """uv's cache: its size, and what no env links to."""

    path: str
    apparent_bytes: int
    unique_bytes: int
    beyond_envs_bytes: int


@dataclass(frozen=True)
class DiskReport(Record):
    """Env sizes, the union of the sub-envs against the full env, and uv's cache."""

    envs: Mapping[str, EnvDisk]
    sub_envs_apparent_bytes: int
    sub_envs_unique_bytes: int
    full_beyond_sub_envs_bytes: int | None = field(default=None, metadata=OPTIONAL)
    uv_cache: UvCache | None = field(default=None, metadata=OPTIONAL)
    #: Sub-envs + full env + cache, each inode once.
    all_unique_bytes: int = 0


@dataclass(frozen=True)
class Machine(Record):
    """The machine and tools the figures come from."""

    nproc: int | None
    cpu: str
    platform: str
    #: The envs' interpreter version (from ``pyvenv.cfg``).
    python: str
    uv: str
    uv_path: str
    loadavg_start: tuple[float, ...]
    loadavg_end: tuple[float, ...] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class Settings(Record):
    """The options of the run."""

    ways: tuple[str, ...]
    #: None: each task's default.
    runs: int | None
    warmups: int
    target_ratio: float
    reference: str


@dataclass(frozen=True)
class SeedFigures(Record):
    """The design note's start-up figures for one env (method unknown)."""

    full_s: float
    sub_s: float
    savings: float


@dataclass(frozen=True)
class Document(Record):
    """A whole ``inv measure`` run."""

    schema_version: int
    #: UTC, ISO 8601.
    created: str
    machine: Machine
    settings: Settings
    seed: Mapping[str, SeedFigures]
    seed_sizes: Mapping[str, str]
    tasks: Mapping[str, TaskResult]
    disk: DiskReport | None = field(default=None, metadata=OPTIONAL)
    #: The whole run, in seconds.
    wall_s: float = 0.0

    def failed_tasks(self) -> list[str]:
        """The tasks whose probe (or a launch) failed."""
        return [name for name, t in self.tasks.items() if t.status == FAILED]


def write_json(doc: Document, path: Path) -> None:
    """Write ``doc`` as JSON (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc.to_json(), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
