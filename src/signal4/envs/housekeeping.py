"""What `inv clean` removes, and the facts `inv envs` shows. Standard library only."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from signal4.envs.manifest import FULL_ENV, Manifest, requirement_name
from signal4.envs.venv import EnvSpec, State, disk_usage, package_count, spec, status

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
        env: EnvSpec = spec(manifest, name)
        tasks = tuple(t.name for t in manifest.tasks_of(name)) if name != FULL_ENV else ("(all)",)
        apparent = unique = 0
        if sizes and env.venv.exists():
            apparent, unique = disk_usage(env.venv)
        rows.append(
            EnvRow(name, tasks, status(manifest, env), package_count(env), apparent, unique)
        )
    return rows


def human_bytes(n: float) -> str:
    """Format a byte count the way `du -h` does."""
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit in ("B", "K") else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}G"  # pragma: no cover


README_TABLE_BEGIN = (
    "<!-- env-table:begin (generated from pyproject.toml by `inv envs --markdown`) -->"
)
README_TABLE_END = "<!-- env-table:end -->"


def env_table_markdown(manifest: Manifest) -> str:
    """The README's table of envs, generated from the manifest."""
    lines = [
        "| env | tasks | its own packages (on top of the base) | platforms |",
        "|---|---|---|---|",
    ]
    for env in manifest.envs.values():
        tasks = ", ".join(f"`{t.name}`" for t in manifest.tasks_of(env.name)) or "—"
        packages = ", ".join(_describe(req) for req in env.requirements)
        platforms = ", ".join(env.platforms) or "all"
        lines.append(f"| `{env.name}` | {tasks} | {packages} | {platforms} |")
    lines.append("")
    lines.append(f"Base, in every env: {', '.join(manifest.base_packages)}.")
    return "\n".join(lines)


def _describe(requirement: str) -> str:
    name = requirement_name(requirement)
    if ";" not in requirement:
        return name
    marker = requirement.split(";", 1)[1].strip()
    if "darwin" in marker and "arm64" in marker:
        return f"{name} (Apple silicon only)"
    return f"{name} (`{marker}`)"


def readme_with_env_table(readme: str, manifest: Manifest) -> str:
    """Return ``readme`` with the generated env table put between its markers."""
    start = readme.index(README_TABLE_BEGIN) + len(README_TABLE_BEGIN)
    end = readme.index(README_TABLE_END)
    return readme[:start] + "\n" + env_table_markdown(manifest) + "\n" + readme[end:]


#: The committed measurement record and the part of it the README shows.
MEASURE_RECORD = Path("benchmarks") / "startup.md"
README_MEASURE_BEGIN = "<!-- measure:begin (copied from benchmarks/startup.md by `inv measure`) -->"
README_MEASURE_END = "<!-- measure:end -->"
_EMBEDDED_SECTIONS = ("### start-up to ready", "### warm workers", "### environment sizes")
#: Shown when the record has it: a run with no live worker has no warm table.
_OPTIONAL_SECTIONS = ("### warm workers",)


def measure_summary(record: str) -> str:
    """Return what the README shows of a ``startup.md``: when/where, start-up and sizes."""
    lines = record.splitlines()
    header = [line for line in lines if line.startswith(("- Date:", "- Machine:"))]
    parts = ["\n".join(header)]
    for title in _EMBEDDED_SECTIONS:
        start = next((i for i, line in enumerate(lines) if line.startswith(title)), None)
        if start is None and title in _OPTIONAL_SECTIONS:
            continue
        if start is None:
            raise ValueError(f"the measurement record has no {title!r} section")
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines)
        )
        parts.append("\n".join(["#" + lines[start], *lines[start + 1 : end]]).strip())
    return "\n\n".join(parts)


def readme_with_measurements(readme: str, record: str) -> str:
    """Return ``readme`` with :func:`measure_summary` of ``record`` between its markers."""
    start = readme.index(README_MEASURE_BEGIN) + len(README_MEASURE_BEGIN)
    end = readme.index(README_MEASURE_END)
    return readme[:start] + "\n" + measure_summary(record) + "\n" + readme[end:]
