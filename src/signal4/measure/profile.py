"""Import profiles: a module run under ``-X importtime``, what it loaded, and its breakdown.

The ready probe's profile gives the task's import breakdown and the list of third-party
modules the necessary floor imports; :func:`probe_coverage` checks that a probe imports
what a real run of its step does (``tests/helpers/probe.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from signal4.envs import layout
from signal4.envs.manifest import PACKAGE, Manifest, Task
from signal4.measure import importtime
from signal4.measure.doc import ImportBreakdown, ImportRow
from signal4.measure.errors import ProbeError
from signal4.measure.launch import launch
from signal4.measure.proc import LOADED_MARK, expect_ready, failed_exit, timed_run
from signal4.measure.ways import Launch
from signal4.run import dispatch

#: Rows in each "top" list of the import breakdown.
TOP_MODULES: Final = 8


def profile_code(module: str) -> str:
    """Return a ``-c`` program that runs ``module`` as ``python -m`` does, then lists what loaded.

    ``-X importtime`` also reports imports that failed (optional ``try: import x``), so the
    list of modules still in ``sys.modules`` at exit tells which ones really loaded.
    """
    return (
        "import runpy, sys\n"
        f"sys.argv[0] = {module!r}\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
        "finally:\n"
        f"    print({LOADED_MARK!r}, *sorted(sys.modules), file=sys.stderr)\n"
    )


@dataclass(frozen=True)
class Profile:
    """One run of a module under ``-X importtime``."""

    records: list[importtime.ImportRecord]
    loaded: frozenset[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed_ns: int

    def third_party(self, project: str = PACKAGE) -> list[str]:
        """Third-party top-level packages that loaded (not merely tried), in start order."""
        tops = importtime.third_party_tops(self.records, project)
        return [name for name in tops if name in self.loaded]

    def third_party_roots(self, project: str = PACKAGE) -> list[str]:
        """Third-party modules our code (or the stdlib) imported and that loaded, in order."""
        roots = importtime.third_party_roots(self.records, project)
        return [name for name in roots if name in self.loaded]

    def work_roots(self, project: str = PACKAGE) -> list[str]:
        """The work imports (:func:`importtime.work_roots`) that loaded, in order."""
        roots = importtime.work_roots(self.records, project)
        return [name for name in roots if name in self.loaded]


def profile(
    python: str | Path,
    module: str,
    args: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Profile:
    """Run ``python -m module args`` under ``-X importtime``, whatever its exit code."""
    argv = [str(python), "-X", "importtime", "-c", profile_code(module), *args]
    proc, elapsed = timed_run(argv, environ, cwd)
    loaded: frozenset[str] = frozenset()
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith(LOADED_MARK):
            loaded = frozenset(line[len(LOADED_MARK) :].split())
            break
    return Profile(
        importtime.parse(proc.stderr), loaded, proc.returncode, proc.stdout, proc.stderr, elapsed
    )


def probe_profile(manifest: Manifest, task: Task, cwd: Path) -> Profile:
    """Profile the task's ready probe in its env; raise :class:`ProbeError` if it failed."""
    environ = dispatch.child_environ(manifest)
    result = profile(
        layout.spec(manifest, task.env).python, task.module, ["--ready"], environ=environ, cwd=cwd
    )
    if result.returncode != 0:
        if f"No module named {task.module}" in result.stderr:
            raise ProbeError(f"its module {task.module} does not exist in env {task.env!r}")
        raise failed_exit(result.returncode, result.stderr)
    expect_ready(result.stdout, result.stderr)
    return result


def startup_profile(item: Launch, cwd: Path) -> list[importtime.ImportRecord]:
    """Run a direct launch under ``-X importtime``; return its import records."""
    _elapsed, stderr = launch(item, cwd, extra_args=["-X", "importtime"])
    return importtime.parse(stderr)


@dataclass(frozen=True)
class Coverage:
    """A real run's third-party packages against its ready probe's."""

    real: Profile
    probe: Profile
    project: str

    @property
    def missing(self) -> list[str]:
        """Packages a real run loads that the probe does not (should be empty)."""
        probe = set(self.probe.third_party(self.project))
        return [m for m in self.real.third_party(self.project) if m not in probe]


def probe_coverage(
    python: str | Path,
    module: str,
    real_args: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Coverage:
    """Run ``module`` for real with ``real_args`` and as ``--ready``, both under ``-X importtime``.

    The caller checks that both exited as expected and that :attr:`Coverage.missing` is empty.
    """
    project = module.split(".", 1)[0]
    real = profile(python, module, real_args, environ=environ, cwd=cwd)
    probe = profile(python, module, ["--ready"], environ=environ, cwd=cwd)
    return Coverage(real, probe, project)


def import_breakdown(
    records: Sequence[importtime.ImportRecord], project: str = PACKAGE
) -> ImportBreakdown:
    """Return the import breakdown of one probe (``project``: our own top-level package)."""

    def rows(chosen: Iterable[importtime.ImportRecord]) -> tuple[ImportRow, ...]:
        return tuple(
            ImportRow(r.module, importtime.kind_of(r.module, project), r.cumulative_us, r.self_us)
            for r in chosen
        )

    packages = importtime.by_package(
        r for r in records if importtime.kind_of(r.module, project) == importtime.THIRD_PARTY
    )
    return ImportBreakdown(
        total_us=importtime.total_us(records),
        self_us_by_kind=importtime.self_time_by_kind(records, project),
        top=rows(importtime.top_cumulative(records, limit=TOP_MODULES, project=project)),
        top_project=rows(
            importtime.top_cumulative(
                records, limit=TOP_MODULES, kind=importtime.PROJECT, project=project
            )
        ),
        third_party_self_us_by_package=dict(list(packages.items())[:TOP_MODULES]),
        modules_loaded=len(records),
    )
