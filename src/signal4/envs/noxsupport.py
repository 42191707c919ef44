"""The bodies of the nox sessions: env test venvs synced from the lock, and what to run.

noxfile.py only registers sessions; everything it needs to decide lives here, typed and
unit-tested. Standard library and signal4 only (nox imports the noxfile at every ``nox -l``).

pytest's exit code 5 ("no tests collected") is decided here too: an env session whose env
has no tests is skipped before pytest runs (:func:`prepare_env` raises
:class:`SessionSkip`), and every session that does run pytest accepts only
:data:`SUCCESS_CODES`, so a suite that ran nothing fails: it proved nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from signal4.envs import layout, syncer, venv
from signal4.envs.manifest import Manifest, current_platform

#: Where each env's test venv lives (the env's packages plus the ``test`` group).
NOX_DIR = ".nox"
#: The pytest exit codes a session accepts: not 5 ("no tests collected"), see above.
SUCCESS_CODES = (0,)
#: What lint and format checks cover.
LINT_PATHS = ("src", "tests", "tasks.py", "noxfile.py", "benchmarks", "tools")


class SessionSkip(Exception):
    """The session cannot run here; ``str()`` is the reason nox prints."""


@dataclass(frozen=True)
class Suite:
    """A session of the tests that need no sub-env, run in the dev env: the marks it selects.

    The ``slow`` mark (see ``pyproject.toml``) splits them: a test that syncs envs, starts
    servers or workers, loads real models or runs the pipeline is slow.
    """

    name: str
    #: pytest's ``-m`` expression.
    marks: str
    #: The session's one-line docstring (``nox -l``).
    doc: str


#: The dev-env test sessions, in the order ``nox`` runs them; both are in the default run.
SUITES = (
    Suite("unit", "not slow", "Run the fast tests that need no sub-env, in the dev env."),
    Suite(
        "integration",
        "slow",
        "Run the slow tests that need no sub-env: real envs, Redis, workers, pipelines.",
    ),
)


def test_spec(m: Manifest, env: str) -> layout.Venv:
    """Return the spec of env's test venv at ``.nox/<env>``: its extra plus the test group."""
    return layout.spec(m, env, groups=["test"], venv=m.root / NOX_DIR / env)


def has_tests(m: Manifest, env: str) -> bool:
    """Whether any test targets ``env``: a step test of one of its tasks or an env marker."""
    tests = m.root / "tests"
    for task in m.tasks_of(env):
        if (tests / "processing_steps" / f"test_{task.name}.py").is_file():
            return True
    marker = re.compile(rf"""mark\.env\(\s*["']{re.escape(env)}["']\s*\)""")
    return any(
        marker.search(path.read_text(encoding="utf-8", errors="replace"))
        for path in tests.rglob("test_*.py")
    )


def prepare_env(m: Manifest, env: str) -> Path:
    """Sync env's test venv from the lock (a no-op when fresh); return its interpreter.

    Raises :class:`SessionSkip` when the env is not built on this platform or has no tests,
    and :class:`layout.EnvError` when the sync fails.
    """
    spec = test_spec(m, env)
    definition = m.env(env)
    if not definition.supported():
        raise SessionSkip(
            f"env {env!r} is only built on {', '.join(definition.platforms)}; "
            f"this machine is {current_platform()}"
        )
    if not has_tests(m, env):
        raise SessionSkip(
            f"env {env!r} has no tests yet: add tests/processing_steps/test_<task>.py "
            f"for one of its tasks ({', '.join(t.name for t in m.tasks_of(env))})"
        )
    with venv.sync_lock(m):
        result = syncer.sync_one(m, spec)
    if not result.ok:
        raise layout.EnvError(f"cannot sync {spec.venv}: {result.error}")
    return spec.python


#: The benchmark venv: the env whose packages it takes, and the group with the scorers.
BENCH_ENV = "diarize"
BENCH_GROUP = "bench"
#: The step envs ``benchmarks.real_speech`` runs steps in.
BENCH_STEP_ENVS = ("convert", "transcribe", "diarize", "stitch")


def bench_spec(m: Manifest) -> layout.Venv:
    """Return the spec of the benchmark venv at ``.nox/bench``: diarize's packages, the scorers."""
    return layout.spec(
        m, BENCH_ENV, groups=["test", BENCH_GROUP], venv=m.root / NOX_DIR / BENCH_GROUP
    )


def prepare_bench(m: Manifest, steps: bool = True) -> Path:
    """Sync the benchmark venv (and the step envs it runs, unless not ``steps``); its python.

    Each sync is a no-op when the venv is fresh. Raises :class:`layout.EnvError` naming the
    venv whose sync failed.
    """
    specs = [bench_spec(m), *(layout.spec(m, env) for env in BENCH_STEP_ENVS if steps)]
    with venv.sync_lock(m):
        for spec in specs:
            result = syncer.sync_one(m, spec)
            if not result.ok:
                raise layout.EnvError(f"cannot sync {spec.venv}: {result.error}")
    return specs[0].python


def pytest_args(env: str, posargs: list[str], *, marks: str = "") -> list[str]:
    """Return the pytest arguments for env (``none``: the tests that need no sub-env).

    ``marks`` (a suite's ``-m`` expression) comes before ``posargs``, which replace only the
    default ``tests/``: ``nox -s unit -- tests/workers`` runs that folder's fast tests, and
    a ``-m`` among the posargs wins (pytest takes the last one).
    """
    selected = ["-m", marks] if marks else []
    return [
        *("-m", "pytest", "-p", "no:cacheprovider", "--env", env),
        *selected,
        *(posargs or ["tests/"]),
    ]
