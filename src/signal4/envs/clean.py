"""What ``inv clean`` removes: env venvs, caches and build outputs, never the lock or data.

Standard library only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from signal4.envs.layout import spec
from signal4.envs.manifest import FULL_ENV, Manifest

#: Build, cache and measurement outputs removed by a full `inv clean` (relative to the root).
BUILD_OUTPUTS = (
    "build",
    "dist",
    ".nox",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".measure",
)
#: Folders never searched for __pycache__ (the dev env runs `inv clean` itself).
_SKIP = {".git", ".venv", "envs", "data", ".nox", "node_modules"}


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def clean_plan(manifest: Manifest, envs: Sequence[str] = ()) -> list[Path]:
    """Return the paths `inv clean` would remove, all inside the repository.

    With ``envs`` given, only those envs' venvs; otherwise every env venv (and the
    full env), ``__pycache__`` folders and build and measurement outputs. The lock,
    the dev env and the content data are never in the plan.
    """
    root = manifest.root
    names = list(envs) or [*manifest.envs, FULL_ENV]
    plan = [spec(manifest, name).venv for name in names]
    if not envs:
        plan += [root / name for name in BUILD_OUTPUTS]
        plan += sorted(_pycache_dirs(root))
    return [p for p in plan if (p.exists() or p.is_symlink()) and _inside(root, p.parent)]


def _pycache_dirs(root: Path) -> Iterable[Path]:
    for folder, dirs, _files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP or Path(folder) != root]
        if "__pycache__" in dirs:
            dirs.remove("__pycache__")
            yield Path(folder) / "__pycache__"


def remove(path: Path) -> None:
    """Remove one planned path (a symlink itself, never its target)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)
