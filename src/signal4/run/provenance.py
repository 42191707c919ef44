"""Provenance: what made a stage's outputs, and whether the same would run now.

Each completed stage of ``inv pipeline`` gets one record, kept in the state DB
(``provenance`` table) and in the content's ``storage_manifest.json``::

    task, env, stage
    env: the env's fingerprint (its resolved packages on this machine, from uv.lock),
         the versions of all of them and of the ones it declares
    params: what the step says shapes its output (``--params``): the model's name and
            digest, chunk length and overlap, speaker counts, the backend, the bitrate
    code: a digest of the step's module and every project module it imports
    inputs: each file it read (the task's ``inputs`` in the manifest): digest, size, mtime
    host, lock (the uv.lock hash), started, ended, status

A stage *would run differently now* when, for a trigger asked for (``env``, ``params``,
``code``, ``input``), its record differs from what a run now would use
(:meth:`Checker.reasons`). What would be used now is cheap to learn: env fingerprints come
from the lock, code digests from the source files, params from one ``--params`` launch per
task (not per item), inputs from a ``stat`` per file (a file is hashed again only when its
size or mtime changed). A stage with no record (done before provenance existed) is
*unknown*, never stale.
"""

from __future__ import annotations

import ast
import datetime as dt
import gzip
import hashlib
import json
import socket
import subprocess
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.codes import Status
from signal4.content.store import kept, update_provenance
from signal4.envs.manifest import Manifest, Task
from signal4.errors import UsageError
from signal4.stepkit import protocol
from signal4.stepkit.digest import LENGTH, file_digest, stat_key

if TYPE_CHECKING:
    from signal4.content.state import StateDB

TRIGGERS = ("env", "params", "code", "input")
PROBE_TIMEOUT = 120.0
#: What reading an input (or its .gz) can raise when it is gone or broken.
UNREADABLE = (OSError, ValueError, EOFError, zlib.error)
#: The record's layout; a record of another version is compared as unknown.
VERSION = 1


def parse_triggers(text: str) -> tuple[str, ...]:
    """``--rerun-triggers``: a comma list of env, params, code, input; ``all``; or ``none``."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words in ([], ["all"]):
        return TRIGGERS
    if words == ["none"]:
        return ()
    unknown = [w for w in words if w not in TRIGGERS]
    if unknown:
        raise UsageError(
            f"--rerun-triggers: unknown trigger {unknown[0]!r}; use a comma list of "
            f"{', '.join(TRIGGERS)}, or all, or none"
        )
    return tuple(t for t in TRIGGERS if t in words)


# ---------------------------------------------------------------------------------- code


def _module_file(src: Path, module: str) -> Path | None:
    base = src.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (anywhere in it, function bodies too), absolute."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):  # being edited: its bytes still count, its imports not
        return set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def code_closure(src: Path, module: str, package: str = "signal4") -> list[Path]:
    """The files of ``module`` and of every ``package`` module it imports, transitively
    (with their parent packages' ``__init__.py``), sorted."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module's parents run first
            prefix = ".".join(parts[:i])
            if prefix in seen or not (prefix == package or prefix.startswith(package + ".")):
                continue
            path = _module_file(src, prefix)
            if path is None:
                continue
            seen[prefix] = path
            todo.extend(_imports(path, prefix))
    return sorted(seen.values())


def code_fingerprint(src: Path, module: str) -> dict[str, Any]:
    """``{"digest": ..., "files": {relative path: digest}}`` of :func:`code_closure`."""
    files = {p.relative_to(src).as_posix(): file_digest(p) for p in code_closure(src, module)}
    h = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode())
    return {"digest": h.hexdigest()[:LENGTH], "files": files}


# -------------------------------------------------------------------------------- inputs


def _fingerprint(path: Path, old: object) -> dict[str, Any]:
    """{digest, size, mtime_ns} of ``path`` (or of its ``.gz``, by its uncompressed bytes).

    OSError if neither is there. The digest is reused from ``old`` when size and mtime
    match it: the file is not read again.
    """
    if not path.exists() and (gz := path.with_name(path.name + ".gz")).is_file():
        size, mtime = stat_key(gz)
        if isinstance(old, Mapping) and [old.get("gz_size"), old.get("mtime_ns")] == [size, mtime]:
            return dict(old)
        data = gzip.decompress(gz.read_bytes())
        digest = hashlib.sha256(data).hexdigest()[:LENGTH]
        return {"digest": digest, "size": len(data), "gz_size": size, "mtime_ns": mtime}
    size, mtime = stat_key(path)
    same = isinstance(old, Mapping) and [old.get("size"), old.get("mtime_ns")] == [size, mtime]
    if same and isinstance(old, Mapping) and "gz_size" not in old:
        return dict(old)
    return {"digest": file_digest(path), "size": size, "mtime_ns": mtime}


def input_fingerprints(
    task: Task, folder: Path, before: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """name -> {digest, size, mtime_ns} of the task's inputs present in ``folder``.

    A file whose size and mtime match ``before`` (an earlier record's inputs) keeps its
    digest without being read again; a gzipped input (after cleanup_and_compress) is
    fingerprinted by its uncompressed bytes, so compressing it changes nothing.
    """
    found: dict[str, dict[str, Any]] = {}
    for name in task.inputs:
        try:
            found[name] = _fingerprint(folder / name, (before or {}).get(name))
        except UNREADABLE:  # not there (compressed away, never made), or a broken .gz
            continue
    return found


def missing_inputs(task: Task, folder: Path) -> list[str]:
    """The task's inputs that are gone (neither the file nor its ``.gz``)."""
    return [n for n in task.inputs if not kept(folder / n)]


# -------------------------------------------------------------------------------- params


def _comparable(value: Any) -> Any:
    """Params as compared: a model with a digest is that digest (a copy elsewhere is equal)."""
    if isinstance(value, Mapping):
        if set(value) == {"name", "digest"} and value.get("digest"):
            return {"digest": value["digest"]}
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, Mapping) and "name" in value:
        digest = value.get("digest")
        return f"{value['name']}" + (f" [{str(digest)[:8]}]" if digest else "")
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return json.dumps(value) if not isinstance(value, str) else value


def params_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name old → new`` for each parameter that differs (models compared by digest)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if _comparable(a) != _comparable(b):
            changes.append(f"{key} {_show(a)} → {_show(b)}")
    return changes


def probe_params(
    m: Manifest, task: Task, args: Sequence[str] = (), env_vars: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What ``task`` says shapes its output now: one ``--params`` launch in its env.

    Raises :class:`ProbeError` (one line) if the env cannot answer.
    """
    from signal4.envs import layout, venv
    from signal4.run import dispatch

    state = venv.status(m, layout.spec(m, task.env))
    if state is not venv.State.UP_TO_DATE:
        raise ProbeError(f"env {task.env} is {state.value}; run: inv sync {task.env}")
    cmd = dispatch.command(m, task, [*args, "--params"])
    try:
        proc = subprocess.run(
            cmd,
            env=dispatch.child_environ(m, env_vars),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"{task.name} --params: {exc}") from None
    result = protocol.parse_last_line(proc.stdout)
    params = result.get("params")
    if result.get("status") != Status.COMPLETED or not isinstance(params, dict):
        why = result.get("error") or (proc.stderr.strip().splitlines() or ["no result"])[-1]
        raise ProbeError(f"{task.name} --params: {why}")
    return params


class ProbeError(UsageError):
    """A task's env could not say which parameters it would use (exit 2)."""


# --------------------------------------------------------------------------------- check


@dataclass
class Now:
    """What a run of one task would use now (everything but its inputs)."""

    env: dict[str, Any]
    code: dict[str, Any]
    params: dict[str, Any] | None
    #: Why ``params`` is None (the env is not synced, say): params cannot be compared.
    params_error: str | None = None


@dataclass
class Checker:
    """Compares stages' records with what would run now, for the triggers asked for.

    The per-task parts (env fingerprint, code digest, params) are worked out once per
    task, on first use, and shared by every item.
    """

    m: Manifest
    triggers: tuple[str, ...] = TRIGGERS
    env_vars: Mapping[str, str] | None = None
    _now: dict[str, Now] = field(default_factory=dict)

    def prepare(self, tasks: Iterable[Task]) -> None:
        """Work out what would run now for ``tasks``, their ``--params`` launches at once."""
        todo = [t for t in dict.fromkeys(tasks) if not self._ready(t, probe=True)]
        if not todo:
            return
        # fingerprints and code digests here, one task after another (ast.parse is not safe
        # in several threads at once on CPython 3.11); only the launches run side by side
        nows = [self._work_out(task, probe=False) for task in todo]
        with ThreadPoolExecutor(max_workers=min(4, len(todo))) as pool:
            for task, now, (params, error) in zip(
                todo, nows, pool.map(self._probe, todo), strict=True
            ):
                self._now[task.name] = replace(now, params=params, params_error=error)

    def notes(self) -> list[str]:
        """What could not be checked, one line each (a task whose env could not say its
        params: its params are not compared)."""
        return [
            f"params not compared for {name}: {now.params_error}"
            for name, now in sorted(self._now.items())
            if now.params_error
        ]

    def now(self, task: Task, *, probe: bool = True) -> Now:
        """What a run of ``task`` would use now (``probe``: ask its env for its params)."""
        if not self._ready(task, probe=probe):
            self._now[task.name] = self._work_out(task, probe=probe)
        return self._now[task.name]

    def _ready(self, task: Task, *, probe: bool) -> bool:
        now = self._now.get(task.name)
        if now is None:
            return False
        wanted = probe and "params" in self.triggers
        return not wanted or now.params is not None or now.params_error is not None

    def _work_out(self, task: Task, probe: bool = True) -> Now:
        from signal4.envs.fingerprint import env_fingerprint

        fp = env_fingerprint(self.m, task.env)
        env = {
            "name": task.env,
            "fingerprint": fp.digest,
            "packages": dict(sorted(fp.packages.items())),
            "declared": sorted(fp.key),
        }
        code = code_fingerprint(self.m.root / "src", task.module)
        params, error = self._probe(task) if probe else (None, None)
        return Now(env, code, params, error)

    def _probe(self, task: Task) -> tuple[dict[str, Any] | None, str | None]:
        """(params, None), or (None, why not) from the task's ``--params`` launch, when the
        params trigger is on; (None, None) when it is off."""
        if "params" not in self.triggers:
            return None, None
        try:
            return probe_params(self.m, task, env_vars=self.env_vars), None
        except ProbeError as exc:
            return None, str(exc)

    def reasons(self, task: Task, record: Mapping[str, Any] | None, folder: Path) -> list[str]:
        """Why ``task``'s outputs (made as ``record`` says) are out of date; [] if they are
        not, or if there is no record to tell (unknown)."""
        if not record or record.get("version") != VERSION:
            return []
        now = self.now(task)
        found: list[str] = []
        if "env" in self.triggers:
            old_env = record.get("env") or {}
            if old_env.get("fingerprint") != now.env["fingerprint"]:
                found.append(f"env changed ({env_changes(old_env, now.env)})")
        changes = (
            params_changes(record.get("params") or {}, now.params)
            if "params" in self.triggers and now.params is not None and "params" in record
            else []
        )
        if changes:
            found.append(f"params changed ({'; '.join(changes)})")
        if "code" in self.triggers:
            old_code = record.get("code") or {}
            if old_code.get("digest") != now.code["digest"]:
                found.append(f"code changed ({code_changes(old_code, now.code)})")
        if "input" in self.triggers and (changed := inputs_changed(record, folder)):
            found.append(f"input changed ({', '.join(changed)})")
        return found


def env_changes(old: Mapping[str, Any], new: Mapping[str, Any], most: int = 3) -> str:
    """``faster-whisper 1.1.1 → 1.2.1, ...``: the declared packages first, then the rest."""
    a: Mapping[str, str] = old.get("packages") or {}
    b: Mapping[str, str] = new.get("packages") or {}
    declared = set(new.get("declared") or ()) | set(old.get("declared") or ())
    names = [n for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
    names.sort(key=lambda n: (n not in declared, n))
    shown = [f"{n} {a.get(n, 'none')} → {b.get(n, 'none')}" for n in names[:most]]
    if len(names) > most:
        shown.append(f"{len(names) - most} more")
    if not shown:  # same versions: a wheel or source changed under one of them
        shown.append(f"fingerprint {old.get('fingerprint')} → {new.get('fingerprint')}")
    return ", ".join(shown)


def code_changes(old: Mapping[str, Any], new: Mapping[str, Any], most: int = 3) -> str:
    """The source files that differ, by name."""
    a: Mapping[str, str] = old.get("files") or {}
    b: Mapping[str, str] = new.get("files") or {}
    names = [n for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
    shown = names[:most] + ([f"{len(names) - most} more"] if len(names) > most else [])
    return ", ".join(shown) or "digest"


def inputs_changed(record: Mapping[str, Any], folder: Path) -> list[str]:
    """The recorded inputs that are still there but no longer the same bytes."""
    changed = []
    for name, old in sorted((record.get("inputs") or {}).items()):
        try:
            if isinstance(old, Mapping) and _fingerprint(folder / name, old)["digest"] != old.get(
                "digest"
            ):
                changed.append(name)
        except UNREADABLE:  # gone, or unreadable: cannot be compared
            continue
    return changed


# -------------------------------------------------------------------------------- record


def build_record(
    task: Task,
    now: Now,
    *,
    params: Mapping[str, Any] | None,
    inputs: Mapping[str, Any],
    started: dt.datetime,
    ended: dt.datetime,
    status: str,
    lock: str | None,
    host: str | None = None,
) -> dict[str, Any]:
    """One stage's provenance record (see the module docstring)."""
    record: dict[str, Any] = {
        "version": VERSION,
        "task": task.name,
        "stage": task.stage,
        "env": now.env,
        "code": now.code,
        "inputs": dict(inputs),
        "host": host or socket.gethostname(),
        "lock": lock,
        "started": started.isoformat(timespec="seconds"),
        "ended": ended.isoformat(timespec="seconds"),
        "status": status,
    }
    if params is not None:  # a step that reported none: params unknown, not empty
        record["params"] = dict(params)
    return record


def save(db: StateDB, folder: Path, content_id: str, stage: str, record: dict[str, Any]) -> None:
    """Record ``stage``'s provenance in the DB, then in ``folder``'s storage manifest."""
    db.set_provenance(content_id, stage, record)
    update_provenance(folder, {stage: record})
