"""The manifest: envs, their packages and the task -> env map, read from pyproject.toml.

Everything that iterates over envs or tasks (tasks.py, noxfile.py, the dispatcher, CI)
goes through :func:`load`. The data lives in two places of one file:

* ``[project.dependencies]`` is the shared base, ``[project.optional-dependencies]``
  holds one extra per env (its own packages);
* ``[tool.signal4]`` describes each env and maps every task to one env, with its
  module, default timeout and concurrency limit.

Only the standard library is imported here: this module is on every start-up path.
"""

from __future__ import annotations

import math
import platform
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signal4.errors import Signal4Error

PACKAGE = "signal4"
FULL_ENV = "full"
STEP_PACKAGE = f"{PACKAGE}.processing_steps"
#: What a download task may fetch (``downloads = ...``).
DOWNLOAD_KINDS = ("feed", "url")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


class ManifestError(Signal4Error, ValueError):
    """The manifest is malformed; the message names the fault."""

    def __str__(self) -> str:
        return f"manifest error: {super().__str__()}"


class UnknownNameError(Signal4Error, KeyError):
    """An env or task name that the manifest does not know."""

    def __init__(self, kind: str, name: str, valid: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = tuple(valid)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown {self.kind} {self.name!r}; valid {self.kind}s: {', '.join(self.valid)}"


def current_platform() -> str:
    """Return this machine's platform tag as the manifest spells it, e.g. ``linux-x86_64``."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64"}.get(machine, machine)  # Linux on ARM stays aarch64
    return f"{sys.platform}-{machine}"


def queue_name(env: str) -> str:
    """The queue of env ``env``: the one place its name is built."""
    return f"{PACKAGE}.{env}"


def requirement_name(requirement: str) -> str:
    """Return the normalised distribution name of a PEP 508 requirement string."""
    match = _NAME_RE.match(requirement.strip())
    if not match:
        raise ManifestError(f"cannot read a package name from requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


@dataclass(frozen=True)
class Env:
    """One sub-environment: its own packages on top of the base."""

    name: str
    description: str
    requirements: tuple[str, ...]
    platforms: tuple[str, ...] = ()
    #: (package, reason) pairs: own packages needed at run time though no task imports them.
    runtime_only: tuple[tuple[str, str], ...] = ()
    #: Built only when asked for by name (``inv sync <env>``, ``inv sync-all --all``), never
    #: by a plain ``inv sync-all``: an env too heavy for every machine (``optional = true``).
    optional: bool = False

    @property
    def packages(self) -> tuple[str, ...]:
        """Normalised names of the env's own packages (not the base)."""
        return tuple(requirement_name(r) for r in self.requirements)

    @property
    def queue(self) -> str:
        """The warm workers' queue of this env (every task of the env is sent there)."""
        return queue_name(self.name)

    def supported(self, plat: str | None = None) -> bool:
        """Whether the env can be built on ``plat`` (this machine by default)."""
        return not self.platforms or (plat or current_platform()) in self.platforms


@dataclass(frozen=True)
class Task:
    """One processing step (or service) and the env it runs in."""

    name: str
    env: str
    module: str
    timeout: float
    #: The most copies of this task that run at once; a warm worker's pool size comes from it.
    concurrency: int
    #: The stage it records in the state DB (tasks of one family share one: ``download``).
    stage: str = ""
    #: The files (relative to the content folder) it reads: their digests go into its
    #: provenance, and a changed one re-runs it (``--rerun-triggers input``).
    inputs: tuple[str, ...] = ()
    #: What a download task fetches: ``feed`` (every episode of a podcast feed) or ``url``
    #: (a page or a media file); empty for the other tasks. ``inv pipeline`` routes a URL
    #: source by it.
    downloads: str = ""
    #: The sites (domains, their subdomains too) whose URLs go to this download task before
    #: anything is fetched, whatever they serve.
    sites: tuple[str, ...] = ()

    @property
    def queue(self) -> str:
        """The work queue of this task's env (:attr:`Env.queue`)."""
        return queue_name(self.env)


@dataclass(frozen=True)
class Manifest:
    """The whole manifest, validated."""

    root: Path
    base: tuple[str, ...]
    envs: Mapping[str, Env]
    tasks: Mapping[str, Task]
    conflicts: tuple[frozenset[str], ...] = field(default=())
    #: The tasks ``inv pipeline`` runs after a download (or on a local file), in order.
    pipeline: tuple[str, ...] = ()

    def env(self, name: str) -> Env:
        """Return the env called ``name`` or raise :class:`UnknownNameError`."""
        try:
            return self.envs[name]
        except KeyError:
            raise UnknownNameError("env", name, sorted(self.envs)) from None

    def task(self, name: str) -> Task:
        """Return the task called ``name`` or raise :class:`UnknownNameError`."""
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownNameError("task", name, sorted(self.tasks)) from None

    def tasks_of(self, env: str) -> tuple[Task, ...]:
        """Return the tasks mapped to ``env``, in manifest order."""
        self.env(env)
        return tuple(t for t in self.tasks.values() if t.env == env)

    def pool_size(self, env: str) -> int:
        """A warm worker's default pool size for ``env``: its tasks' smallest concurrency.

        A task's ``concurrency`` is how many copies of it may run at once; a pool serves
        every task of its env, so it takes the strictest of them.
        """
        return min((t.concurrency for t in self.tasks_of(env)), default=1)

    def supported_envs(self, plat: str | None = None) -> Iterator[Env]:
        """Yield the envs buildable on ``plat`` (this machine by default)."""
        return (e for e in self.envs.values() if e.supported(plat))

    @property
    def optional_envs(self) -> tuple[Env, ...]:
        """The envs a plain ``inv sync-all`` leaves out (``optional = true``), in order."""
        return tuple(e for e in self.envs.values() if e.optional)

    def pipeline_tasks(self) -> tuple[Task, ...]:
        """The tasks of ``inv pipeline`` after the download, in order."""
        return tuple(self.tasks[name] for name in self.pipeline)

    def download_tasks(self) -> tuple[Task, ...]:
        """The tasks that fetch sources (``downloads = ...``), in manifest order."""
        return tuple(t for t in self.tasks.values() if t.downloads)

    def downloader(self, kind: str) -> Task:
        """The download task of every source of ``kind`` (``feed`` or ``url``) that no
        task's ``sites`` claim; :class:`ManifestError` if the manifest names none."""
        for task in self.download_tasks():
            if task.downloads == kind and not task.sites:
                return task
        raise ManifestError(
            f"no task downloads a {kind} source: give one task downloads = {kind!r} in "
            "[[tool.signal4.tasks]]"
        )

    @property
    def base_packages(self) -> tuple[str, ...]:
        """Normalised names of the base packages."""
        return tuple(requirement_name(r) for r in self.base)


def _runtime_only(env: str, raw: Any, packages: set[str]) -> tuple[tuple[str, str], ...]:
    """Validate an env's ``runtime-only = [{ package = ..., reason = ... }]`` allow-list."""
    where = f"[tool.signal4.envs.{env}] runtime-only"
    if not isinstance(raw, list):
        raise ManifestError(f"{where} must be a list of {{ package = ..., reason = ... }} tables")
    pairs = []
    for item in raw:
        if not isinstance(item, dict) or not item.get("package") or not item.get("reason"):
            raise ManifestError(f"{where}: each entry needs a package and a reason, got {item!r}")
        pkg = requirement_name(str(item["package"]))
        if pkg not in packages:
            raise ManifestError(f"{where} names {pkg!r}, which env {env!r} does not declare")
        pairs.append((pkg, str(item["reason"])))
    return tuple(pairs)


def _seconds(value: Any, what: str) -> float:
    """A timeout from the manifest: a finite number of seconds >= 0 (0 = none)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ManifestError(f"{what} must be >= 0 seconds (0 = no limit), got {value!r}")
    return float(value)


def _flag(value: Any, what: str) -> bool:
    """A yes/no from the manifest: a TOML boolean."""
    if not isinstance(value, bool):
        raise ManifestError(f"{what} must be true or false, got {value!r}")
    return value


def _count(value: Any, what: str) -> int:
    """A concurrency from the manifest: a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ManifestError(f"{what} must be a whole number >= 1, got {value!r}")
    return value


def find_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above ``start`` holding a signal4 pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "[tool.signal4]" in candidate.read_text(encoding="utf-8"):
            return folder
    raise ManifestError(f"no pyproject.toml with a [tool.signal4] table at or above {here}")


def load(root: Path | None = None) -> Manifest:
    """Read and validate the manifest of the project at ``root`` (found from cwd if None)."""
    root = find_root(root) if root is None else root.resolve()
    path = root / "pyproject.toml"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path} is not valid TOML: {exc}") from None
    return parse(data, root)


def _inputs(value: object, task: str) -> tuple[str, ...]:
    """A task's ``inputs``: relative paths inside a content folder."""
    where = f"task {task!r}: inputs"
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"{where} must be a list of file names, not {value!r}")
    for v in value:
        if v.startswith("/") or ".." in v.split("/"):
            raise ManifestError(f"{where}: {v!r} must be a path inside the content folder")
    return tuple(value)


def _downloads(entry: Mapping[str, Any], task: str) -> str:
    """A task's ``downloads`` kind (empty for a task that is not a download)."""
    kind = entry.get("downloads", "")
    if kind and kind not in DOWNLOAD_KINDS:
        raise ManifestError(
            f"task {task!r}: downloads must be one of {', '.join(DOWNLOAD_KINDS)}, got {kind!r}"
        )
    if entry.get("sites") and not kind:
        raise ManifestError(f"task {task!r}: sites needs downloads = ...")
    return str(kind)


def _sites(raw: Any, task: str) -> tuple[str, ...]:
    """A download task's ``sites``: domain names."""
    if not isinstance(raw, list) or not all(
        isinstance(s, str) and re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", s) for s in raw
    ):
        raise ManifestError(f"task {task!r}: sites must be a list of domain names, got {raw!r}")
    return tuple(raw)


def parse(data: Mapping[str, Any], root: Path) -> Manifest:
    """Validate the parsed pyproject ``data`` and build the :class:`Manifest`."""
    project = data.get("project", {})
    tool = data.get("tool", {}).get(PACKAGE)
    if not isinstance(tool, dict):
        raise ManifestError("pyproject.toml has no [tool.signal4] table")

    base = tuple(project.get("dependencies", []))
    base_names = {requirement_name(r): r for r in base}
    extras: dict[str, list[str]] = dict(project.get("optional-dependencies", {}))
    env_tables: dict[str, Any] = dict(tool.get("envs", {}))

    if not env_tables:
        raise ManifestError("[tool.signal4.envs] declares no env")
    if FULL_ENV in env_tables:
        raise ManifestError(f"env name {FULL_ENV!r} is reserved for the monolithic baseline")
    for name in extras:
        if name not in env_tables:
            raise ManifestError(
                f"extra {name!r} has no [tool.signal4.envs.{name}] table; every extra is an env"
            )

    envs: dict[str, Env] = {}
    for name, table in env_tables.items():
        if not isinstance(table, dict):
            raise ManifestError(f"[tool.signal4.envs.{name}] must be a table")
        requirements = extras.get(name)
        if requirements is None:
            raise ManifestError(
                f"env {name!r} has no packages: add [project.optional-dependencies].{name}"
            )
        if not requirements:
            raise ManifestError(f"env {name!r} is empty: its extra lists no package")
        seen: set[str] = set()
        for req in requirements:
            pkg = requirement_name(req)
            if pkg in base_names:
                raise ManifestError(
                    f"package {pkg!r} is declared both in the base and in env {name!r}; "
                    "declare it once"
                )
            if pkg in seen:
                raise ManifestError(f"package {pkg!r} is declared twice in env {name!r}")
            seen.add(pkg)
        envs[name] = Env(
            name=name,
            description=str(table.get("description", "")),
            requirements=tuple(requirements),
            platforms=tuple(table.get("platforms", ())),
            runtime_only=_runtime_only(name, table.get("runtime-only", []), seen),
            optional=_flag(table.get("optional", False), f"[tool.signal4.envs.{name}] optional"),
        )

    default_timeout = _seconds(tool.get("default-timeout", 3600), "default-timeout")
    default_concurrency = _count(tool.get("default-concurrency", 1), "default-concurrency")
    tasks: dict[str, Task] = {}
    raw_tasks = tool.get("tasks", [])
    if not isinstance(raw_tasks, list):
        raise ManifestError(
            "[tool.signal4] tasks must be an array of tables ([[tool.signal4.tasks]])"
        )
    for entry in raw_tasks:
        name = entry.get("name")
        if not name:
            raise ManifestError(f"a task entry has no name: {entry!r}")
        if name in tasks:
            raise ManifestError(f"task {name!r} is mapped twice; map each task to one env")
        env = entry.get("env")
        if env not in envs:
            raise ManifestError(
                f"task {name!r} maps to unknown env {env!r}; known envs: {', '.join(envs)}"
            )
        timeout = _seconds(entry.get("timeout", default_timeout), f"task {name!r}: timeout")
        concurrency = _count(
            entry.get("concurrency", default_concurrency), f"task {name!r}: concurrency"
        )
        tasks[name] = Task(
            name=name,
            env=env,
            module=str(entry.get("module", f"{STEP_PACKAGE}.{name}")),
            timeout=timeout,
            concurrency=concurrency,
            stage=str(entry.get("stage", name)),
            inputs=_inputs(entry.get("inputs", []), name),
            downloads=_downloads(entry, name),
            sites=_sites(entry.get("sites", []), name),
        )
    for kind in DOWNLOAD_KINDS:
        general = [n for n, t in tasks.items() if t.downloads == kind and not t.sites]
        if len(general) > 1:
            raise ManifestError(
                f"tasks {' and '.join(general)} both download every {kind} source; give one "
                "of them sites = [...]"
            )

    conflicts = tuple(
        frozenset(item.get("extra", "") for item in group)
        for group in data.get("tool", {}).get("uv", {}).get("conflicts", [])
    )
    pipeline = tuple(tool.get("pipeline", ()))
    for name in pipeline:
        if name not in tasks:
            raise ManifestError(f"[tool.signal4] pipeline names unknown task {name!r}")
    if len(set(pipeline)) != len(pipeline):
        raise ManifestError("[tool.signal4] pipeline names a task twice")
    return Manifest(
        root=root, base=base, envs=envs, tasks=tasks, conflicts=conflicts, pipeline=pipeline
    )
