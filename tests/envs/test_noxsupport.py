"""noxfile.py: one session per env, unit and integration, lint, typecheck and checks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from signal4.envs import noxsupport
from signal4.envs.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]
NOX = ROOT / ".venv" / "bin" / "nox"


def nox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NOX), *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_sessions_are_the_envs_then_the_suites_then_the_checks(
    project_manifest: Manifest,
) -> None:
    proc = nox("--json", "-l")
    assert proc.returncode == 0, proc.stderr
    sessions = json.loads(proc.stdout)
    names = [s["session"] for s in sessions]
    suites = [suite.name for suite in noxsupport.SUITES]
    assert suites == ["unit", "integration"]
    assert names == [*project_manifest.envs, *suites, "lint", "typecheck", "checks", "scorers"]
    assert all(s["description"] for s in sessions)  # every session has a one-line docstring
    assert all("\n" not in s["description"] for s in sessions)
    described = {s["session"]: s["description"] for s in sessions}
    assert all(described[suite.name] == suite.doc for suite in noxsupport.SUITES)
    # the default run (CI's matrix, .ci/run) is exactly that list: both suites are in it,
    # and only the mutation tester and the diarization benchmark are left out
    listed = nox("-l").stdout.splitlines()
    assert [line.split()[1] for line in listed if line.startswith("* ")] == names
    assert [line.split()[1] for line in listed if line.startswith("- ")] == ["bench", "mutation"]


def test_the_suites_split_the_dev_env_tests_by_the_slow_mark() -> None:
    unit, integration = noxsupport.SUITES
    assert (unit.marks, integration.marks) == ("not slow", "slow")
    assert noxsupport.pytest_args("none", [], marks=unit.marks) == [
        *("-m", "pytest", "-p", "no:cacheprovider", "--env", "none"),
        *("-m", "not slow", "tests/"),
    ]
    # posargs replace the folder only: the suite's selection stays, before them
    narrowed = noxsupport.pytest_args("none", ["tests/workers", "-x"], marks=integration.marks)
    assert narrowed[-4:] == ["-m", "slow", "tests/workers", "-x"]


def test_a_suite_that_collects_nothing_fails_the_session() -> None:
    # exit code 5 ("no tests collected") is not accepted: tests/test_console.py has no slow test
    assert noxsupport.SUCCESS_CODES == (0,)
    proc = nox("-s", "integration", "--", "tests/test_console.py")
    assert proc.returncode != 0, proc.stderr
    assert "failed with exit code 5" in proc.stderr
    assert "Session integration failed" in proc.stderr


def test_unknown_session_is_nox_own_error() -> None:
    proc = nox("-s", "no-such-env")
    assert proc.returncode != 0
    assert "no-such-env" in proc.stderr


def test_unsupported_env_session_is_skipped_with_its_reason(project_manifest: Manifest) -> None:
    unsupported = [e.name for e in project_manifest.envs.values() if not e.supported()]
    if not unsupported:
        pytest.skip("every env is supported on this machine")
    proc = nox("-s", unsupported[0])
    assert proc.returncode == 0, proc.stderr
    assert f"Session {unsupported[0]} skipped: env {unsupported[0]!r} is only built on" in (
        proc.stderr
    )
    assert not (ROOT / noxsupport.NOX_DIR / unsupported[0]).exists()


def test_env_without_tests_is_skipped_before_any_sync(
    project_manifest: Manifest, tmp_path: Path
) -> None:
    env = next(e for e in project_manifest.envs.values() if e.supported())
    bare = Manifest(tmp_path, project_manifest.base, project_manifest.envs, project_manifest.tasks)
    with pytest.raises(noxsupport.SessionSkip, match=f"env {env.name!r} has no tests yet"):
        noxsupport.prepare_env(bare, env.name)
    assert not (tmp_path / noxsupport.NOX_DIR).exists()


def test_env_with_tests_is_found(project_manifest: Manifest, tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    marker = "@pytest.mark.env(" + '"stitch")'  # split, so this file is not a stitch test
    (tmp_path / "tests" / "test_x.py").write_text(marker + "\n")
    bare = Manifest(tmp_path, project_manifest.base, project_manifest.envs, project_manifest.tasks)
    assert noxsupport.has_tests(bare, "stitch")
    assert not noxsupport.has_tests(bare, "download")


def test_env_venv_is_synced_like_inv_sync_plus_the_test_group(project_manifest: Manifest) -> None:
    spec = noxsupport.test_spec(project_manifest, "convert")
    assert spec.venv == ROOT / ".nox" / "convert"
    assert spec.extras == ("convert",) and spec.groups == ("test",)


def test_pytest_args_default_to_the_tests_folder() -> None:
    assert noxsupport.pytest_args("convert", []) == [
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--env",
        "convert",
        "tests/",
    ]
    assert noxsupport.pytest_args("none", ["tests/test_x.py"])[-1] == "tests/test_x.py"
