"""What ``inv envs`` shows of each env on disk: its tasks, state, packages and size.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from signal4.envs.layout import Venv, spec
from signal4.envs.manifest import FULL_ENV, Manifest
from signal4.envs.venv import State, disk_usage, package_count, status


@dataclass(frozen=True)
class EnvRow:
    """One row of `inv envs`."""

    env: str
    tasks: tuple[str, ...]
    state: State
    packages: int
    apparent_bytes: int
    unique_bytes: int


def env_rows(manifest: Manifest, *, sizes: bool = True) -> list[EnvRow]:
    """Describe every env (and the full env) as it is on disk."""
    rows = []
    for name in [*manifest.envs, FULL_ENV]:
        env: Venv = spec(manifest, name)
        tasks = tuple(t.name for t in manifest.tasks_of(name)) if name != FULL_ENV else ("(all)",)
        apparent = unique = 0
        if sizes and env.venv.exists():
            apparent, unique = disk_usage(env.venv)
        rows.append(
            EnvRow(name, tasks, status(manifest, env), package_count(env), apparent, unique)
        )
    return rows
