"""An env on disk: where it lives, what it installs, the lock it is synced from.

What the rest of ``signal4.envs`` stands on: :mod:`~signal4.envs.venv` decides whether an
env is fresh and syncs it, :mod:`~signal4.envs.fingerprint` says what it holds. Standard
library only: this is on the ``inv run`` start-up path.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from signal4.envs.manifest import FULL_ENV, Manifest
from signal4.errors import Signal4Error

STAMP_NAME = ".signal4-sync.json"
LOCK_FILE = "uv.lock"


class EnvError(Signal4Error, RuntimeError):
    """An env cannot be used or built; the message says what to run next."""


@dataclass(frozen=True)
class Venv:
    """What to install into one venv: an env's extra (or all of them) plus dependency groups."""

    name: str
    venv: Path
    extras: tuple[str, ...]
    groups: tuple[str, ...] = ()
    all_extras: bool = False

    @property
    def python(self) -> Path:
        """The venv's own interpreter."""
        if sys.platform == "win32":  # pragma: no cover - not a target platform
            return self.venv / "Scripts" / "python.exe"
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        """The file recording the lock hash this venv was last synced from."""
        return self.venv / STAMP_NAME

    def selection(self) -> dict[str, object]:
        """What this spec installs, as recorded in the stamp."""
        return {
            "extras": ["*"] if self.all_extras else list(self.extras),
            "groups": list(self.groups),
        }


def envs_dir(manifest: Manifest) -> Path:
    """The folder holding every sub-env."""
    return manifest.root / "envs"


def spec(
    manifest: Manifest, name: str, *, groups: Sequence[str] = (), venv: Path | None = None
) -> Venv:
    """Return the :class:`Venv` of env ``name`` (``full`` is the monolithic baseline)."""
    if name == FULL_ENV:
        return Venv(
            name=name,
            venv=venv or envs_dir(manifest) / FULL_ENV / ".venv",
            extras=tuple(e.name for e in manifest.supported_envs()),
            groups=tuple(groups),
            all_extras=True,
        )
    env = manifest.env(name)
    return Venv(
        name=env.name,
        venv=venv or envs_dir(manifest) / env.name / ".venv",
        extras=(env.name,),
        groups=tuple(groups),
    )


def lock_hash(manifest: Manifest) -> str:
    """Return a short hash of ``uv.lock``; the stamp compares against it."""
    path = manifest.root / LOCK_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EnvError(f"{path} is missing; run: inv lock") from None
    return hashlib.sha256(data).hexdigest()[:16]


def read_stamp(env: Venv) -> dict[str, object] | None:
    """Return the env's sync stamp, or None when it has none or it is unreadable."""
    try:
        data = json.loads(env.stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
