"""Nox sessions: one per env, unit and integration, lint, typecheck, checks, scorers, and the
opt-in mutation and bench."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

from signal4.envs import layout, manifest, noxsupport

nox.needs_version = ">=2024.10.9"

ROOT = Path(__file__).resolve().parent
MANIFEST = manifest.load(ROOT)
DEV_BIN = Path(sys.executable).parent


def _env_session(env: str) -> None:
    def session_fn(session: nox.Session) -> None:
        try:
            python = noxsupport.prepare_env(MANIFEST, env)
        except noxsupport.SessionSkip as exc:
            session.skip(str(exc))
        except layout.EnvError as exc:  # a failed sync: one line saying what to do
            session.error(str(exc))
        session.run(
            str(python),
            *noxsupport.pytest_args(env, session.posargs),
            external=True,
            success_codes=list(noxsupport.SUCCESS_CODES),
        )

    session_fn.__doc__ = (
        f"Run env {env}'s tests inside its own venv (.nox/{env}, synced from uv.lock)."
    )
    nox.session(name=env, venv_backend="none")(session_fn)


for _env in MANIFEST.envs:
    _env_session(_env)


def _suite_session(suite: noxsupport.Suite) -> None:
    def session_fn(session: nox.Session) -> None:
        session.run(
            sys.executable,
            *noxsupport.pytest_args("none", session.posargs, marks=suite.marks),
            external=True,
            success_codes=list(noxsupport.SUCCESS_CODES),
        )

    session_fn.__doc__ = suite.doc
    nox.session(name=suite.name, venv_backend="none")(session_fn)


for _suite in noxsupport.SUITES:
    _suite_session(_suite)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """Lint and format-check the code with ruff."""
    session.run(sys.executable, "-m", "ruff", "check", *noxsupport.LINT_PATHS, external=True)
    session.run(
        sys.executable, "-m", "ruff", "format", "--check", *noxsupport.LINT_PATHS, external=True
    )


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """Type-check src/, tools/, tasks.py and noxfile.py with mypy (config in pyproject.toml)."""
    session.run(sys.executable, "-m", "mypy", external=True)


@nox.session(venv_backend="none")
def checks(session: nox.Session) -> None:
    """Run `inv check --sync`: lock, drift, imports, unused packages, task map, platforms."""
    session.run(str(DEV_BIN / "inv"), "check", *(session.posargs or ["--sync"]), external=True)


@nox.session(venv_backend="none")
def scorers(session: nox.Session) -> None:
    """Run the benchmark's scoring tests inside the bench venv (.nox/bench, from uv.lock)."""
    try:
        python = noxsupport.prepare_bench(MANIFEST, steps=False)
    except layout.EnvError as exc:
        session.error(str(exc))
    args = session.posargs or ["tests/benchmarks/"]
    session.run(
        str(python),
        *noxsupport.pytest_args(noxsupport.BENCH_GROUP, args),
        external=True,
        success_codes=list(noxsupport.SUCCESS_CODES),
    )


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Run the diarization benchmark (real AMI speech; slow: not in the default run)."""
    try:
        python = noxsupport.prepare_bench(MANIFEST)
    except layout.EnvError as exc:
        session.error(str(exc))
    session.run(str(python), "-m", "benchmarks.real_speech", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def mutation(session: nox.Session) -> None:
    """Mutation-test the core modules with tools/mutation.py (slow: not in the default run)."""
    session.run(
        sys.executable, str(ROOT / "tools" / "mutation.py"), *session.posargs, external=True
    )
