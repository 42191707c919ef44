"""``inv check``: the manifest, the lock and the code agree with each other.

Six checks, each a function returning a :class:`CheckResult`:

1. **lock** -- ``uv lock --check``: uv.lock matches pyproject.toml.
2. **drift** -- no package is locked at two versions for the same marker environment
   across envs. uv's universal lock legitimately *forks* a package by python version or
   platform (numpy 2.4 for python < 3.12, 2.5 above): those versions are never reachable
   together, so they are not drift. The rule: for every target platform (linux-x86_64,
   linux-aarch64, darwin-arm64) and every python minor allowed by ``requires-python``, walk
   the lock from the project's base dependencies plus one env's extra, following only the
   dependency edges whose markers hold there (a multi-version package is picked by its
   ``version`` pin or its ``resolution-markers``). Each env thus gets one set of
   (package, version) for that marker environment. Drift is a package reachable at two
   versions in the same marker environment -- inside one env, or in two envs that no
   declared ``[tool.uv] conflicts`` group separates. (With one universal resolution uv only
   produces such forks for declared conflicts, so this check guards that invariant and
   names the packages if it ever breaks, e.g. after a hand edit or a conflicts entry.)
3. **imports** -- for each task, the transitive closure of its imports (its module, the
   project modules it imports, their parent packages, imports inside functions; not
   ``if TYPE_CHECKING:`` ones) comes from the import graph built by grimp. Every
   third-party top-level module in it must map (``packages_distributions()`` run inside the
   env's own interpreter) to a distribution installed in the env. Standard-library modules
   and the project's own modules are fine. A module provided by a requirement whose marker
   keeps it off this platform (mlx-whisper on Linux) is accepted by name. A processing
   step's closure must not reach the state DB's module (``content.state``, the ORM): a
   step reports its state changes in its result and the runner writes them.
4. **unused** -- an env's own packages (its extra, not the base) that none of its tasks
   imports directly or transitively: a warning, an error with ``--strict``. Packages needed
   at run time without an import are listed in the manifest with a reason
   (``[tool.signal4.envs.<env>] runtime-only``).
5. **task map** -- every task's module exists, and every module under
   ``src/signal4/processing_steps`` (not starting with ``_``) is mapped to a task.
6. **platforms** -- every package reachable on a target platform (by the same walk as 2)
   has an sdist or a wheel for that platform and python; otherwise its requirement needs a
   marker that keeps it off the platform.

Env inspection (3, 4) is injectable: :func:`run_checks` takes an ``inspect`` callable
returning :class:`EnvInfo`, so tests use small fixture projects without syncing envs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signal4.envs import layout, venv
from signal4.envs.lockgraph import (
    PLATFORMS,
    LockGraph,
    marker_environment,
    normalize,
    read_lock,
    targets,
    wheel_fits,
)
from signal4.envs.manifest import PACKAGE, STEP_PACKAGE, Env, Manifest

CHECK_NAMES = ("lock", "drift", "imports", "unused", "taskmap", "platforms")
TITLES = {
    "lock": "lock matches manifest",
    "drift": "no version drift across envs",
    "imports": "every task's imports are installed in its env",
    "unused": "every env package is used",
    "taskmap": "task map complete",
    "platforms": "platform markers",
}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: errors fail it, warnings do not (unless strict)."""

    name: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """The check's one-line description."""
        return TITLES.get(self.name, self.name)

    def failed(self, strict: bool = False) -> bool:
        """Whether this check fails the run."""
        return bool(self.errors or (strict and self.warnings))


@dataclass(frozen=True)
class EnvInfo:
    """What an env's interpreter reports: stdlib names, module -> dists, installed dists."""

    stdlib: frozenset[str]
    modules: Mapping[str, frozenset[str]]
    installed: frozenset[str]


# ---------------------------------------------------------------------------
# The lock walk (checks 2 and 6): signal4.envs.lockgraph
# ---------------------------------------------------------------------------


def _conflicting(m: Manifest, a: str, b: str) -> bool:
    return any(a in group and b in group for group in m.conflicts)


def check_drift(m: Manifest, lock: Mapping[str, Any]) -> CheckResult:
    """Report packages reachable at two versions for one platform and python."""
    graph = LockGraph(lock)
    errors: dict[str, str] = {}
    for plat, minor, environment in targets(lock):
        versions: dict[str, dict[str, set[str]]] = {}  # package -> version -> envs
        for env in m.envs.values():
            if not env.supported(plat):
                continue
            for name, vs in graph.reachable(env.name, environment).items():
                if len(vs) > 1:
                    errors.setdefault(
                        name,
                        f"{name}: {' and '.join(sorted(vs))} both in env {env.name!r} "
                        f"on {plat} python 3.{minor}",
                    )
                for v in vs:
                    versions.setdefault(name, {}).setdefault(v, set()).add(env.name)
        for name, by_version in versions.items():
            if len(by_version) < 2 or name in errors:
                continue
            items = sorted(by_version.items())
            clash = [
                (va, a, vb, b)
                for i, (va, ea) in enumerate(items)
                for vb, eb in items[i + 1 :]
                for a in sorted(ea)
                for b in sorted(eb)
                if a != b and not _conflicting(m, a, b)
            ]
            if clash:
                va, a, vb, b = clash[0]
                errors[name] = (
                    f"{name}: {va} in env {a!r} but {vb} in env {b!r} on {plat} python 3.{minor}; "
                    "align the requirements (or declare the envs in [tool.uv] conflicts)"
                )
    return CheckResult("drift", errors=tuple(errors[k] for k in sorted(errors)))


def check_platforms(m: Manifest, lock: Mapping[str, Any]) -> CheckResult:
    """Report packages reachable on a platform that have no sdist or wheel for it."""
    graph = LockGraph(lock)
    errors: dict[tuple[str, str], str] = {}
    machines = {p: (s, mach) for p, s, mach in PLATFORMS}
    for plat, minor, environment in targets(lock):
        sys_platform, machine = machines[plat]
        for env in m.envs.values():
            if not env.supported(plat):
                continue
            for name, versions in graph.reachable(env.name, environment).items():
                for version in versions:
                    pkg = graph.package(name, version)
                    source = pkg.get("source", {})
                    if "registry" not in source or "sdist" in pkg:
                        continue
                    wheels = [w["url"].rsplit("/", 1)[-1] for w in pkg.get("wheels", [])]
                    if any(wheel_fits(w, sys_platform, machine, minor) for w in wheels):
                        continue
                    errors.setdefault(
                        (name, plat),
                        f"{name} {version} (env {env.name!r}) has no wheel or sdist for {plat} "
                        f"python 3.{minor}; add a marker to its requirement that keeps it off "
                        f"{plat} (e.g. ; sys_platform != '{sys_platform}')",
                    )
    return CheckResult("platforms", errors=tuple(errors[k] for k in sorted(errors)))


# ---------------------------------------------------------------------------
# The import graph (checks 3 and 4)
# ---------------------------------------------------------------------------

_GRAPH_SCRIPT = """
import json, sys
import grimp
pkg = sys.argv[1]
g = grimp.build_graph(pkg, include_external_packages=True,
                      exclude_type_checking_imports=True, cache_dir=None)
print(json.dumps({
    m: sorted(g.find_modules_directly_imported_by(m))
    for m in g.modules if m == pkg or m.startswith(pkg + ".")
}))
"""


def import_graph(src: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Return module -> directly imported modules for ``package`` under ``src`` (grimp).

    Built in a child interpreter started in ``src``: ``python -c`` puts its working folder
    first on the module path, so a fixture project's package shadows the installed one.
    ``-E -s`` keep PYTHONPATH and the user's site-packages out, as ``-I`` would.
    """
    proc = subprocess.run(
        [sys.executable, "-E", "-s", "-c", _GRAPH_SCRIPT, package],
        capture_output=True,
        text=True,
        check=False,
        cwd=src,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"cannot build the import graph of {package} under {src}: {tail}")
    data: dict[str, list[str]] = json.loads(proc.stdout)
    return {k: set(v) for k, v in data.items()}


def closure(graph: Mapping[str, set[str]], module: str) -> dict[str, list[str]]:
    """Return every module ``module`` imports, transitively, each with its import chain.

    Importing a module also runs its parent packages, so those are followed too. External
    modules appear by their top-level name (as grimp records them) and are not followed.
    """
    chains: dict[str, list[str]] = {module: [module]}
    todo = [module]
    while todo:
        current = todo.pop(0)
        if current not in graph:
            continue
        parts = current.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        for nxt in [*parents, *sorted(graph[current])]:
            if nxt not in chains:
                chains[nxt] = [*chains[current], nxt]
                todo.append(nxt)
    return chains


_PROBE_SCRIPT = """
import json, re, sys
import importlib.metadata as md
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
print(json.dumps({
    "stdlib": sorted(sys.stdlib_module_names),
    "modules": {k: sorted({norm(d) for d in v}) for k, v in md.packages_distributions().items()},
    "installed": sorted(
        {norm(d.metadata["Name"]) for d in md.distributions() if d.metadata["Name"]}
    ),
}))
"""


def probe(python: Path) -> EnvInfo:
    """Ask an env's interpreter for its stdlib names and installed distributions."""
    proc = subprocess.run(
        [str(python), "-I", "-c", _PROBE_SCRIPT], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} failed to list its distributions: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    return EnvInfo(
        stdlib=frozenset(data["stdlib"]),
        modules={k: frozenset(v) for k, v in data["modules"].items()},
        installed=frozenset(data["installed"]),
    )


def _off_platform(env: Env, module: str, plat: str) -> str | None:
    """Return the requirement providing ``module`` by name if its marker excludes ``plat``."""
    from packaging.requirements import Requirement

    sys_platform, machine = plat.split("-", 1)
    environment = marker_environment(sys_platform, machine, sys.version_info.minor)
    for raw in env.requirements:
        req = Requirement(raw)
        named = normalize(req.name) == normalize(module)
        if named and req.marker is not None and not req.marker.evaluate(environment):
            return normalize(req.name)
    return None


@dataclass
class _Usage:
    errors: list[str] = field(default_factory=list)
    used: dict[str, set[str]] = field(default_factory=dict)  # env -> dists imported


def _external_tops(chains: Mapping[str, list[str]], package: str) -> dict[str, list[str]]:
    return {
        mod: chain
        for mod, chain in chains.items()
        if mod != package and not mod.startswith(package + ".")
    }


def _step_package(package: str) -> str:
    """The processing steps' package of the project ``package``."""
    return STEP_PACKAGE.replace(PACKAGE, package, 1)


#: Project modules (relative to the package) no processing step may import, and why.
NOT_IN_STEPS = {
    "content.state": (
        "a step reports its state changes in its result (ctx.register, ctx.mark) and "
        "whoever runs it writes them to the DB (signal4.run.record)"
    ),
}


def check_imports(
    m: Manifest,
    graph: Mapping[str, set[str]],
    infos: Mapping[str, EnvInfo],
    *,
    plat: str | None = None,
    package: str = PACKAGE,
) -> tuple[CheckResult, dict[str, set[str]]]:
    """Check every task's import closure against its env; return the dists each env uses.

    Envs with a task whose module does not exist are left out of the returned usage.
    """
    from signal4.envs.manifest import current_platform

    plat = plat or current_platform()
    usage = _Usage()
    incomplete: set[str] = set()
    for task in m.tasks.values():
        info = infos.get(task.env)
        if info is None:
            continue
        env = m.env(task.env)
        used = usage.used.setdefault(task.env, set())
        if task.module not in graph:
            incomplete.add(task.env)  # the task-map check reports the missing module
            continue
        chains = closure(graph, task.module)
        if task.module.startswith(_step_package(package) + "."):
            for rel, why in NOT_IN_STEPS.items():
                if chain := chains.get(f"{package}.{rel}"):
                    usage.errors.append(
                        f"task {task.name!r} imports {package}.{rel} ({' → '.join(chain)}): {why}"
                    )
        for mod, chain in sorted(_external_tops(chains, package).items()):
            top = mod.split(".")[0]
            if top in info.stdlib or top == "__future__":
                continue
            dists = {d for d in info.modules.get(top, frozenset()) if d in info.installed}
            if dists:
                used.update(dists)
                continue
            off = _off_platform(env, top, plat)
            if off:
                used.add(off)
                continue
            via = " → ".join(chain)
            usage.errors.append(
                f"task {task.name!r} imports {top!r} ({via}) but env {task.env!r} does not "
                f"install it; add its package to [project.optional-dependencies].{task.env}"
            )
    # An env with a task whose module is missing cannot say what it leaves unused.
    complete = {env: dists for env, dists in usage.used.items() if env not in incomplete}
    return CheckResult("imports", errors=tuple(usage.errors)), complete


def check_unused(m: Manifest, used: Mapping[str, set[str]]) -> CheckResult:
    """Warn about env packages that no task of the env imports (runtime-only ones excepted)."""
    warnings = []
    for name, dists in used.items():
        env = m.env(name)
        allowed = {pkg for pkg, _reason in env.runtime_only}
        for pkg in env.packages:
            if pkg not in dists and pkg not in allowed:
                warnings.append(
                    f"env {name!r} declares {pkg!r} but none of its tasks imports it; remove it, "
                    f"or list it under [tool.signal4.envs.{name}] runtime-only with a reason"
                )
    return CheckResult("unused", warnings=tuple(warnings))


def check_taskmap(m: Manifest, src: Path, package: str = PACKAGE) -> CheckResult:
    """Check every task has a module and every step module is mapped to a task."""
    errors = []
    for task in m.tasks.values():
        base = src.joinpath(*task.module.split("."))
        if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
            errors.append(
                f"task {task.name!r} maps to module {task.module!r}, which does not exist"
            )
    step_package = _step_package(package)
    folder = src.joinpath(*step_package.split("."))
    mapped = {t.module for t in m.tasks.values()}
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        module = f"{step_package}.{path.stem}"
        if not path.stem.startswith("_") and module not in mapped:
            errors.append(
                f"module {module} is not mapped to any task; add a [[tool.signal4.tasks]] entry"
            )
    return CheckResult("taskmap", errors=tuple(errors))


def check_lock(m: Manifest) -> CheckResult:
    """Run ``uv lock --check``."""
    proc = subprocess.run(
        [venv.find_uv(), "lock", "--check", "--project", str(m.root)],
        capture_output=True,
        text=True,
        check=False,  # its exit code is the check's result
    )
    if proc.returncode == 0:
        return CheckResult("lock")
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    # uv's error line, not the hint it prints after it ("run `uv lock`")
    errors = [line for line in lines if line.lower().startswith("error")]
    why = (errors or lines or ["uv lock --check failed"])[-1]
    return CheckResult(
        "lock", errors=(f"uv.lock does not match pyproject.toml ({why}); run: inv lock",)
    )


# ---------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------

Inspector = Callable[[Manifest, Sequence[str]], tuple[dict[str, EnvInfo], list[str]]]


def inspect_synced(m: Manifest, names: Sequence[str]) -> tuple[dict[str, EnvInfo], list[str]]:
    """Probe each named env that is up to date; return the infos and the envs not synced."""
    infos: dict[str, EnvInfo] = {}
    missing: list[str] = []
    lock = layout.lock_hash(m)
    for name in names:
        spec = layout.spec(m, name)
        if venv.status(m, spec, lock=lock) is venv.State.UP_TO_DATE:
            infos[name] = probe(spec.python)
        else:
            missing.append(name)
    return infos, missing


def run_checks(
    m: Manifest,
    *,
    only: Sequence[str] = CHECK_NAMES,
    inspect: Inspector = inspect_synced,
    package: str = PACKAGE,
) -> list[CheckResult]:
    """Run the selected checks on the project ``m``; return one result per check."""
    results: list[CheckResult] = []
    src = m.root / "src"
    if "lock" in only:
        results.append(check_lock(m))
    lock: dict[str, Any] | None = None
    if {"drift", "platforms"} & set(only):
        lock = read_lock(m.root)
    if "drift" in only and lock is not None:
        results.append(check_drift(m, lock))
    if {"imports", "unused"} & set(only):
        wanted = [e.name for e in m.supported_envs()]
        unsupported = sorted(set(m.envs) - set(wanted))
        infos, missing = inspect(m, wanted)
        graph = import_graph(src, package)
        imports, used = check_imports(m, graph, infos, package=package)
        notes = [f"env {e!r} is not built on this platform; not checked" for e in unsupported]
        # an optional env that nobody built is not a fault of a plain `inv check`: say so
        # (`inv check --sync`, as CI runs it, builds and checks it too)
        optional = [e for e in missing if m.env(e).optional]
        missing = [e for e in missing if e not in optional]
        notes += [
            f"optional env {e!r} is not synced; not checked (inv check --sync checks it)"
            for e in optional
        ]
        if missing:
            hint = "run: inv check --sync (or " + ", ".join(f"inv sync {e}" for e in missing) + ")"
            imports = CheckResult(
                "imports",
                errors=(
                    *imports.errors,
                    f"envs not synced, so not checked: {', '.join(missing)}; {hint}",
                ),
                notes=tuple(notes),
            )
        else:
            imports = CheckResult("imports", errors=imports.errors, notes=tuple(notes))
        if "imports" in only:
            results.append(imports)
        if "unused" in only:
            unused = check_unused(m, used)
            skipped = sorted(set(infos) - set(used))
            note = tuple(
                f"env {e!r} not checked for unused packages: a task has no module" for e in skipped
            )
            results.append(CheckResult("unused", unused.errors, unused.warnings, note))
    if "taskmap" in only:
        results.append(check_taskmap(m, src, package))
    if "platforms" in only and lock is not None:
        results.append(check_platforms(m, lock))
    order = {name: i for i, name in enumerate(CHECK_NAMES)}
    return sorted(results, key=lambda r: order.get(r.name, len(order)))


def report_lines(results: Sequence[CheckResult], *, strict: bool = False) -> list[str]:
    """Return the report: one line per passing check, one line per culprit of a failing one."""
    lines = []
    for r in results:
        if not r.errors and not r.warnings:
            lines.append(f"✔ {r.title}")
        for e in r.errors:
            lines.append(f"✘ {r.title}: {e}")
        for w in r.warnings:
            lines.append(f"{'✘' if strict else '!'} {r.title}: {w}")
        lines.extend(f"  note: {n}" for n in r.notes)
    return lines
