"""Sub-environments on disk: where they live, whether they are fresh, and how to sync them.

An env is *up to date* when its interpreter exists and its sync stamp names the same
selection of extras and groups and either the current ``uv.lock`` hash or, when the lock
changed, the env's current fingerprint (:mod:`signal4.envs.fingerprint`): a lock change
that does not touch an env's own packages leaves it fresh. The stamp is removed before a
sync starts and written only after ``uv sync`` succeeds, so an env whose sync was
interrupted is never taken for a usable one.

Standard library only: :func:`status` is on the ``inv run`` start-up path. Its fast path
(the stamp names the current lock) reads two files; only a changed lock loads the
fingerprint module, which reads its cache, or parses the lock once per lock.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from signal4.envs.layout import (
    EnvError,
    Venv,
    envs_dir,
    lock_hash,
    read_stamp,
)
from signal4.envs.manifest import FULL_ENV, Manifest


class State(enum.Enum):
    """How an env on disk relates to the lock."""

    UP_TO_DATE = "up to date"
    MISSING = "missing"
    STALE = "stale"
    BROKEN = "broken"
    UNSUPPORTED = "unsupported"


def status(manifest: Manifest, env: Venv, *, lock: str | None = None) -> State:
    """Return the :class:`State` of ``env`` against the current lock."""
    if env.name != FULL_ENV and not manifest.env(env.name).supported():
        return State.UNSUPPORTED
    if not env.venv.exists():
        return State.MISSING
    if not env.python.exists():
        return State.BROKEN
    stamp = read_stamp(env)
    if stamp is None or stamp.get("selection") != env.selection():
        return State.STALE
    current = lock or lock_hash(manifest)
    if stamp.get("lock") == current:
        return State.UP_TO_DATE
    recorded = stamp.get("fingerprint")
    if not isinstance(recorded, str) or not recorded:
        return State.STALE  # a stamp from before fingerprints: only its lock can vouch
    return (
        State.UP_TO_DATE if current_fingerprint(manifest, env, current) == recorded else State.STALE
    )


def current_fingerprint(manifest: Manifest, env: Venv, lock: str | None = None) -> str | None:
    """The digest of what ``env`` resolves to in the current lock; None if it cannot be had.

    ``lock`` is the current lock hash when the caller has it (the cache is keyed by it).
    """
    from signal4.envs import fingerprint

    try:
        return fingerprint.venv_digest(manifest, env, lock=lock)
    except (EnvError, ImportError, LookupError, ValueError, OSError):
        return None  # a lock we cannot read vouches for nothing: the env counts as stale


def sync_hint(env: str) -> str:
    """The command that brings ``env`` up to date."""
    return "inv sync-all" if env == "*" else f"inv sync {env}"


def require_ready(manifest: Manifest, env: Venv) -> None:
    """Raise :class:`EnvError` with the fixing command unless ``env`` is up to date."""
    state = status(manifest, env)
    if state is State.UP_TO_DATE:
        return
    if state is State.UNSUPPORTED:
        raise EnvError(f"env {env.name!r} is not supported on this platform")
    why = {
        State.MISSING: "is not synced",
        State.STALE: "is stale against uv.lock (or its last sync did not finish)",
        State.BROKEN: "is broken (its interpreter is gone)",
    }[state]
    raise EnvError(f"env {env.name!r} {why}; run: {sync_hint(env.name)}")


def find_uv() -> str:
    """Return the uv executable: the one running us, the dev env's, or the one on PATH."""
    candidates = [os.environ.get("UV"), str(Path(sys.executable).parent / "uv"), shutil.which("uv")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EnvError("uv not found; install it with: python3 -m pip install uv")


def sync_command(manifest: Manifest, env: Venv, *, uv: str | None = None) -> list[str]:
    """Return the ``uv sync`` argument list that installs ``env`` from the lock, never resolving."""
    cmd = [
        uv or find_uv(),
        "sync",
        "--locked",
        "--no-default-groups",
        "--compile-bytecode",
        "--project",
        str(manifest.root),
    ]
    if env.all_extras:
        cmd.append("--all-extras")
    else:
        for extra in env.extras:
            cmd += ["--extra", extra]
    for group in env.groups:
        cmd += ["--group", group]
    return cmd


def sync_environ(env: Venv, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the process environment for syncing ``env``: uv targets its venv."""
    environ = dict(os.environ if base is None else base)
    environ["UV_PROJECT_ENVIRONMENT"] = str(env.venv)
    environ.pop("VIRTUAL_ENV", None)
    environ.setdefault("UV_NO_PROGRESS", "1")
    return environ


def begin_sync(env: Venv) -> None:
    """Invalidate ``env`` before uv touches it, so a half-done sync is never used."""
    with contextlib.suppress(FileNotFoundError):
        env.stamp.unlink()
    if env.venv.exists() and not env.python.exists():
        # A venv without an interpreter cannot be repaired in place by uv.
        shutil.rmtree(env.venv)


def finish_sync(manifest: Manifest, env: Venv) -> None:
    """Record that ``env`` now matches the current lock and its fingerprint (atomically)."""
    lock = lock_hash(manifest)
    payload: dict[str, object] = {
        "lock": lock,
        "selection": env.selection(),
        "python": sys.version.split()[0],
    }
    digest = current_fingerprint(manifest, env, lock)
    if digest:
        payload["fingerprint"] = digest
    tmp = env.stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    os.replace(tmp, env.stamp)


@contextlib.contextmanager
def sync_lock(manifest: Manifest, *, on_wait: object = None) -> Iterator[None]:
    """Hold the project's sync lock; a second syncer waits (calling ``on_wait`` once)."""
    folder = envs_dir(manifest)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".sync.lock").open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if callable(on_wait):
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _use_lock(manifest: Manifest, name: str) -> Path:
    """The file whose lock says env ``name`` is in use (beside the env, not inside it)."""
    folder = envs_dir(manifest)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".in-use-{name}.lock"


def hold_in_use(manifest: Manifest, name: str) -> int:
    """Take a shared lock saying env ``name`` is in use; return its file descriptor.

    It lasts as long as the descriptor is open: close it when done, or keep it across an
    ``execve`` (``os.set_inheritable``) for the process that replaces this one.
    """
    fd = os.open(_use_lock(manifest, name), os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


@contextlib.contextmanager
def in_use(manifest: Manifest, names: Iterable[str]) -> Iterator[None]:
    """Hold each env of ``names`` in use (shared): ``inv clean`` refuses to remove it."""
    fds = [hold_in_use(manifest, name) for name in sorted(set(names))]
    try:
        yield
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def exclusive(manifest: Manifest, names: Iterable[str]) -> Iterator[None]:
    """Hold each env of ``names`` alone (nothing may run from it) while the block runs.

    :class:`EnvError` names the envs in use (a step, a pipeline or a warm worker runs from
    them) and takes none.
    """
    fds: list[int] = []
    busy: list[str] = []
    try:
        for name in sorted(set(names)):
            fd = os.open(_use_lock(manifest, name), os.O_RDWR | os.O_CREAT, 0o666)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                busy.append(name)
        if busy:
            raise EnvError(
                f"env {', '.join(busy)} is in use (a step, a pipeline or a warm worker runs "
                "from it); stop it or let it finish, then run this again"
            )
        yield
    finally:
        for fd in fds:
            os.close(fd)


def site_packages(env: Venv) -> Path | None:
    """Return the venv's site-packages folder, if it has one."""
    lib = env.venv / "lib"
    if not lib.is_dir():
        return None
    for child in sorted(lib.glob("python3*/site-packages")):
        return child
    return None


def package_count(env: Venv) -> int:
    """Count the distributions installed in ``env``."""
    site = site_packages(env)
    return len(list(site.glob("*.dist-info"))) if site else 0


def disk_usage(path: Path, seen: set[tuple[int, int]] | None = None) -> tuple[int, int]:
    """Return (apparent bytes, unique bytes with hard-linked files counted once) under ``path``.

    Pass the same ``seen`` set to several calls to count a file shared between them once
    (the union of several envs: ``inv measure``).
    """
    apparent = unique = 0
    seen = set() if seen is None else seen
    for folder, _dirs, files in os.walk(path):
        for fname in files:
            try:
                st = os.lstat(os.path.join(folder, fname))
            except OSError:
                continue
            apparent += st.st_size
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                unique += st.st_size
    return apparent, unique
