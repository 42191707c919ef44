"""uv.lock as a graph: which packages (and versions) an env reaches on a platform and python.

``inv check`` walks it for drift and platform coverage. Per target platform and every
python minor allowed by ``requires-python``, :meth:`LockGraph.reachable` follows the
dependency edges of the base plus one env's extra whose markers hold there. ``packaging``
(in the dev env) is imported only when a marker or specifier is evaluated.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from signal4.envs.layout import LOCK_FILE
from signal4.envs.manifest import PACKAGE

#: The platforms the lock must install on, as (name, sys_platform, platform_machine).
PLATFORMS: tuple[tuple[str, str, str], ...] = (
    ("linux-x86_64", "linux", "x86_64"),
    ("linux-aarch64", "linux", "aarch64"),
    ("darwin-arm64", "darwin", "arm64"),
)


def normalize(name: str) -> str:
    """Return the PEP 503 normalised form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_environment(sys_platform: str, machine: str, minor: int) -> dict[str, str]:
    """Return a PEP 508 marker environment for CPython 3.``minor`` on the platform."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"3.{minor}.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": {"linux": "Linux", "darwin": "Darwin"}[sys_platform],
        "platform_version": "",
        "python_full_version": f"3.{minor}.0",
        "python_version": f"3.{minor}",
        "sys_platform": sys_platform,
    }


def holds(marker: str | None, environment: Mapping[str, str]) -> bool:
    """Whether a PEP 508 ``marker`` holds in ``environment`` (no marker: always)."""
    if not marker:
        return True
    from packaging.markers import Marker, UndefinedEnvironmentName

    try:
        return bool(Marker(marker).evaluate(dict(environment)))
    except UndefinedEnvironmentName:  # a marker variable we do not model: keep the edge
        return True


def python_minors(lock: Mapping[str, Any]) -> list[int]:
    """Return the python 3 minors allowed by the lock's ``requires-python``."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(str(lock.get("requires-python", ">=3.11")))
    return [m for m in range(8, 20) if spec.contains(f"3.{m}.0")]


def read_lock(root: Path) -> dict[str, Any]:
    """Parse ``uv.lock`` under ``root``."""
    with (root / LOCK_FILE).open("rb") as fh:
        return tomllib.load(fh)


class LockGraph:
    """uv.lock's packages, walkable for one env and one marker environment."""

    def __init__(self, lock: Mapping[str, Any], project: str = PACKAGE) -> None:
        self.project = normalize(project)
        self.by_name: dict[str, list[Mapping[str, Any]]] = {}
        for pkg in lock.get("package", []):
            self.by_name.setdefault(normalize(pkg["name"]), []).append(pkg)
        if self.project not in self.by_name:
            raise ValueError(f"uv.lock has no package {project!r}; run: inv lock")

    def _pick(self, dep: Mapping[str, Any], environment: Mapping[str, str]) -> Mapping[str, Any]:
        candidates = self.by_name.get(normalize(dep["name"]), [])
        if "version" in dep:
            candidates = [c for c in candidates if c["version"] == dep["version"]]
        if len(candidates) > 1:
            candidates = [
                c
                for c in candidates
                if any(holds(m, environment) for m in c.get("resolution-markers", [""]))
            ]
        if not candidates:
            raise ValueError(f"uv.lock names {dep['name']!r} but holds no matching package")
        return candidates[0]

    def reachable(self, extra: str, environment: Mapping[str, str]) -> dict[str, set[str]]:
        """Return package -> versions reachable from the base plus ``extra`` (not the project)."""
        env = dict(environment)
        env["extra"] = f"extra-{len(self.project)}-{self.project}-{extra}"
        root = self.by_name[self.project][0]
        todo: list[Mapping[str, Any]] = [
            *root.get("dependencies", []),
            *root.get("optional-dependencies", {}).get(extra, []),
        ]
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        found: dict[str, set[str]] = {}
        while todo:
            dep = todo.pop()
            if not holds(dep.get("marker"), env):
                continue
            pkg = self._pick(dep, env)
            name = normalize(pkg["name"])
            extras = tuple(dep.get("extra", ()))
            key = (name, str(pkg["version"]), extras)
            if key in seen:
                continue
            seen.add(key)
            found.setdefault(name, set()).add(str(pkg["version"]))
            todo.extend(pkg.get("dependencies", []))
            for e in extras:
                todo.extend(pkg.get("optional-dependencies", {}).get(e, []))
        return found

    def package(self, name: str, version: str) -> Mapping[str, Any]:
        """Return the lock entry of ``name`` at ``version``."""
        return next(p for p in self.by_name[name] if str(p["version"]) == version)


def targets(lock: Mapping[str, Any]) -> Iterable[tuple[str, int, dict[str, str]]]:
    """Yield (platform, python minor, marker environment) for every target of ``lock``."""
    for plat, sys_platform, machine in PLATFORMS:
        for minor in python_minors(lock):
            yield plat, minor, marker_environment(sys_platform, machine, minor)


def wheel_fits(filename: str, sys_platform: str, machine: str, minor: int) -> bool:
    """Whether the wheel ``filename`` installs on CPython 3.``minor`` on the platform."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return False
    py_tags, abi_tags, plat_tags = (set(p.split(".")) for p in parts[-3:])
    py_ok = any(
        t in ("py3", f"py3{minor}", f"cp3{minor}")
        or (t.startswith("cp3") and t[3:].isdigit() and "abi3" in abi_tags and int(t[3:]) <= minor)
        for t in py_tags
    )
    if not py_ok:
        return False
    for tag in plat_tags:
        if tag == "any":
            return True
        if (
            sys_platform == "linux"
            and tag.startswith(("manylinux", "linux"))
            and tag.endswith(f"_{machine}")
        ):
            return True
        if (
            sys_platform == "darwin"
            and tag.startswith("macosx")
            and tag.endswith((f"_{machine}", "_universal2"))
        ):
            return True
    return False
