"""Sync envs from the lock: in parallel, idempotent, with a progress display and a summary.

Developer-side module (uses rich); processing steps never import it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType

from signal4.envs.layout import EnvError, Venv, lock_hash, read_stamp
from signal4.envs.manifest import FULL_ENV, Manifest
from signal4.envs.venv import (
    State,
    begin_sync,
    find_uv,
    finish_sync,
    package_count,
    status,
    sync_command,
    sync_environ,
    sync_lock,
)
from signal4.errors import Interrupted
from signal4.signals import handling

#: Lines of uv's output kept to explain a failed sync.
ERROR_TAIL = 12


@dataclass(frozen=True)
class SyncResult:
    """The outcome of syncing one env."""

    env: str
    before: State
    action: str  # "synced", "up to date", "skipped", "failed", "would sync"
    seconds: float = 0.0
    packages: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the sync failed."""
        return self.action != "failed"


def explain_failure(output: str) -> str:
    """Turn uv's output for a failed sync into one line that says what to do next."""
    lowered = output.lower()
    if "needs to be updated" in lowered or ("lockfile" in lowered and "--locked" in lowered):
        return "uv.lock does not match pyproject.toml; run: inv lock"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    # uv marks its errors with a multiplication sign.
    markers = ("error", "\u00d7", "caused by")
    errors = [line for line in lines if line.lower().startswith(markers)]
    return (errors or lines or ["uv sync failed with no output"])[-1][:300]


class _Children:
    """The running ``uv sync`` processes, so that a signal to us reaches them too.

    SIGTERM (or SIGINT sent to this process alone) would otherwise kill the syncer and
    leave uv writing into an env after the sync lock is released. :func:`sync_many`
    forwards the signal to every live child, waits for them, and only then lets go of
    the lock; the interrupted envs keep no stamp, so they are stale.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[str]] = set()

    def run(self, cmd: Sequence[str], environ: dict[str, str]) -> tuple[int, str]:
        """Run ``cmd`` to the end; return its exit code and stderr."""
        proc = subprocess.Popen(
            list(cmd),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with self._lock:
            self._live.add(proc)
        try:
            _out, err = proc.communicate()
        finally:
            with self._lock:
                self._live.discard(proc)
        return proc.returncode, err or ""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every running child."""
        with self._lock:
            live = list(self._live)
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)


_CHILDREN = _Children()


@contextlib.contextmanager
def _forwarding_signals() -> Iterator[None]:
    """On SIGINT or SIGTERM: pass it to the running uv processes, then stop with Interrupted."""
    stopping: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        _CHILDREN.signal(signum)
        if not stopping:  # a second signal only reaches the children: we are already stopping
            stopping.append(signum)
            raise Interrupted(signal.Signals(signum))

    with handling(handler):
        yield


def sync_one(
    manifest: Manifest,
    env: Venv,
    *,
    force: bool = False,
    uv: str | None = None,
    lock: str | None = None,
    on_event: Callable[[str], None] | None = None,
) -> SyncResult:
    """Bring ``env`` up to date with the lock; a no-op (no uv call) when it already is."""
    before = status(manifest, env, lock=lock)
    if before is State.UNSUPPORTED:
        return SyncResult(env.name, before, "skipped", error="not supported on this platform")
    if before is State.UP_TO_DATE and not force:
        stamp = read_stamp(env) or {}
        if stamp.get("lock") != (lock or lock_hash(manifest)):
            # fresh by its fingerprint under a new lock: stamp it with this lock (no uv
            # needed), so that its warm worker announces the lock the submitter checks
            finish_sync(manifest, env)
        return SyncResult(env.name, before, "up to date", packages=package_count(env))
    started = time.monotonic()
    if on_event:
        on_event("installing from uv.lock")
    begin_sync(env)
    # the failure is reported per env, and the sync-all exits non-zero
    returncode, stderr = _CHILDREN.run(sync_command(manifest, env, uv=uv), sync_environ(env))
    seconds = time.monotonic() - started
    if returncode != 0:
        output = "\n".join(stderr.splitlines()[-ERROR_TAIL:])
        return SyncResult(env.name, before, "failed", seconds, error=explain_failure(output))
    finish_sync(manifest, env)
    return SyncResult(env.name, before, "synced", seconds, packages=package_count(env))


def check_all(manifest: Manifest, specs: Sequence[Venv]) -> list[SyncResult]:
    """Report each env as missing / stale / up to date without changing anything."""
    lock = lock_hash(manifest)
    results = []
    for env in specs:
        state = status(manifest, env, lock=lock)
        action = {State.UP_TO_DATE: "up to date", State.UNSUPPORTED: "skipped"}.get(
            state, "would sync"
        )
        error = "not supported on this platform" if state is State.UNSUPPORTED else None
        results.append(
            SyncResult(env.name, state, action, packages=package_count(env), error=error)
        )
    return results


def sync_many(
    manifest: Manifest,
    specs: Sequence[Venv],
    *,
    jobs: int = 2,
    force: bool = False,
    on_start: Callable[[str], None] | None = None,
    on_event: Callable[[str, str], None] | None = None,
    on_done: Callable[[SyncResult], None] | None = None,
    on_wait: Callable[[], None] | None = None,
) -> list[SyncResult]:
    """Sync ``specs`` in parallel under the project's sync lock, in order of the results."""
    uv = find_uv()
    lock = lock_hash(manifest)
    with sync_lock(manifest, on_wait=on_wait), _forwarding_signals():
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        futures: list[Future[SyncResult]] = []
        try:
            for env in specs:
                if on_start:
                    on_start(env.name)

                def event(msg: str, name: str = env.name) -> None:
                    if on_event:
                        on_event(name, msg)

                future = pool.submit(
                    sync_one, manifest, env, force=force, uv=uv, lock=lock, on_event=event
                )
                if on_done:
                    future.add_done_callback(lambda f: on_done(f.result()))
                futures.append(future)
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            # a running uv (told to stop, if we were interrupted) finishes before the lock
            # is released
            pool.shutdown(wait=True, cancel_futures=True)


def select(
    manifest: Manifest, names: Sequence[str], *, full: bool = False, optional: bool = False
) -> list[str]:
    """Return the env names to act on: ``names`` (validated) or every env, plus ``full``.

    With no names, the optional envs (``optional = true``) are left out unless ``optional``
    is set (``inv sync-all --all``); a name always selects its env.
    """
    if names:
        for name in names:
            if name != FULL_ENV:
                manifest.env(name)
        return list(names)
    chosen = [e.name for e in manifest.envs.values() if optional or not e.optional]
    if full:
        chosen.append(FULL_ENV)
    return chosen


def left_out(manifest: Manifest, chosen: Sequence[str]) -> list[str]:
    """The optional envs buildable here that ``chosen`` leaves out."""
    return [e.name for e in manifest.optional_envs if e.supported() and e.name not in chosen]


def left_out_line(manifest: Manifest, names: Sequence[str]) -> str:
    """One line: which optional envs were left out, what runs there, how to build them."""

    def described(name: str) -> str:
        tasks = ", ".join(t.name for t in manifest.tasks_of(name))
        return f"{name} ({tasks})" if tasks else name

    what = ", ".join(described(name) for name in names)
    one = names[0] if len(names) == 1 else "<env>"
    noun = "env" if len(names) == 1 else "envs"
    return (
        f"left out the optional {noun} {what}; build with: inv sync {one} (or inv sync-all --all)"
    )


__all__ = [
    "EnvError",
    "SyncResult",
    "check_all",
    "left_out",
    "left_out_line",
    "select",
    "sync_many",
    "sync_one",
]
