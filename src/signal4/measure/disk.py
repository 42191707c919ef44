"""Disk: each env's size, the sub-envs together against the full env, and uv's cache.

uv installs by hard-linking files from its cache, so an env's files mostly share inodes
with the cache and with the other envs: the *unique* figures (each inode once) say what
deleting envs would really free.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from signal4.envs import layout, venv
from signal4.envs.manifest import FULL_ENV, Manifest
from signal4.measure.doc import DiskReport, EnvDisk, EnvSize, UvCache


def _uv_cache_dir(uv: str) -> str:
    try:
        return subprocess.run(
            [uv, "cache", "dir"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def disk_report(manifest: Manifest, *, uv: str, lock: str) -> DiskReport:
    """Return env sizes, the union of the sub-envs against the full env, and uv's cache size."""
    names = [e.name for e in manifest.supported_envs()]
    per_env: dict[str, EnvDisk] = {}
    union_seen: set[tuple[int, int]] = set()
    union_apparent = union_unique = 0
    for name in [*names, FULL_ENV]:
        env = layout.spec(manifest, name)
        if not env.venv.exists():
            per_env[name] = EnvDisk(venv.State.MISSING.value)
            continue
        apparent, unique = venv.disk_usage(env.venv)
        state = venv.status(manifest, env, lock=lock).value
        per_env[name] = EnvDisk(state, EnvSize(apparent, unique, venv.package_count(env)))
        if name != FULL_ENV:
            a, u = venv.disk_usage(env.venv, union_seen)
            union_apparent += a
            union_unique += u
    full_beyond: int | None = None
    full = layout.spec(manifest, FULL_ENV)
    if full.venv.exists():
        # What the full env holds that no sub-env shares (by inode).
        _a, full_beyond = venv.disk_usage(full.venv, union_seen)
    cache: UvCache | None = None
    cache_dir = _uv_cache_dir(uv)
    if cache_dir and Path(cache_dir).is_dir():
        apparent, unique = venv.disk_usage(Path(cache_dir))
        _a, beyond = venv.disk_usage(Path(cache_dir), union_seen)
        cache = UvCache(cache_dir, apparent, unique, beyond)
    return DiskReport(
        envs=per_env,
        sub_envs_apparent_bytes=union_apparent,
        sub_envs_unique_bytes=union_unique,
        full_beyond_sub_envs_bytes=full_beyond,
        uv_cache=cache,
        # What the envs and the cache really occupy together, each inode once.
        all_unique_bytes=union_unique
        + (full_beyond or 0)
        + (cache.beyond_envs_bytes if cache else 0),
    )
