"""Sync envs from the lock: in parallel, idempotent, with a progress display and a summary.

Developer-side module (uses rich); processing steps never import it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from signal4.envs.manifest import FULL_ENV, Manifest
from signal4.envs.venv import (
    EnvError,
    EnvSpec,
    State,
    begin_sync,
    find_uv,
    finish_sync,
    lock_hash,
    package_count,
    status,
    sync_command,
    sync_environ,
    sync_lock,
)

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


def sync_one(
    manifest: Manifest,
    env: EnvSpec,
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
        return SyncResult(env.name, before, "up to date", packages=package_count(env))
    started = time.monotonic()
    if on_event:
        on_event("installing from uv.lock")
    begin_sync(env)
    proc = subprocess.run(
        sync_command(manifest, env, uv=uv),
        env=sync_environ(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,  # the failure is reported per env, and the sync-all exits non-zero
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        output = "\n".join((proc.stderr or "").splitlines()[-ERROR_TAIL:])
        return SyncResult(env.name, before, "failed", seconds, error=explain_failure(output))
    finish_sync(manifest, env)
    return SyncResult(env.name, before, "synced", seconds, packages=package_count(env))


def check_all(manifest: Manifest, specs: Sequence[EnvSpec]) -> list[SyncResult]:
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
    specs: Sequence[EnvSpec],
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
    with sync_lock(manifest, on_wait=on_wait):
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
            pool.shutdown(wait=True, cancel_futures=True)


def select(manifest: Manifest, names: Sequence[str], *, full: bool = False) -> list[str]:
    """Return the env names to act on: ``names`` (validated) or every env, plus ``full``."""
    if names:
        for name in names:
            if name != FULL_ENV:
                manifest.env(name)
        return list(names)
    chosen = list(manifest.envs)
    if full:
        chosen.append(FULL_ENV)
    return chosen


__all__ = ["EnvError", "SyncResult", "check_all", "select", "sync_many", "sync_one"]
