"""The inv tasks as a user runs them: one-line errors, exit codes, pass-through, clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signal4.commands import run as run_cmd
from signal4.envs import clean, manifest, syncer
from signal4.envs import venv as envs
from tests.helpers.demo import make_demo

ROOT = Path(__file__).resolve().parents[1]
INV = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]


def inv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INV, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> manifest.Manifest:
    return make_demo(tmp_path_factory.mktemp("demo"))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert text in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_list_has_a_one_line_help_for_each_task() -> None:
    proc = inv("--list")
    assert proc.returncode == 0
    for name in ("sync-all", "sync", "run", "clean", "lock", "envs"):
        assert f"  {name} " in proc.stdout


def test_unknown_task_lists_valid_tasks() -> None:
    proc = inv("run", "nope")
    assert_one_line_error(proc, 2, "unknown task 'nope'; valid tasks: cleanup_and_compress")


def test_unknown_env_lists_valid_envs() -> None:
    proc = inv("sync", "nope")
    assert_one_line_error(proc, 2, "unknown env 'nope'; valid envs: cleanup, convert, diarize")
    assert_one_line_error(inv("clean", "--env", "nope", "--dry-run"), 2, "unknown env 'nope'")


def test_run_in_an_env_never_synced(demo: manifest.Manifest) -> None:
    proc = inv("run", "hello", cwd=demo.root)
    assert_one_line_error(proc, 2, "env 'alpha' is not synced; run: inv sync alpha")


def test_run_passes_args_and_exit_codes_through(demo: manifest.Manifest) -> None:
    syncer.sync_one(demo, envs.spec(demo, "alpha"))
    proc = inv("run", "hello", "--", "a file name.mp3", "--flag", cwd=demo.root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["args"] == ["a file name.mp3", "--flag"]
    assert result["python"] == str(envs.spec(demo, "alpha").python)
    assert inv("run", "hello", "--", "--invalid", cwd=demo.root).returncode == 2


def test_sync_check_reports_and_changes_nothing(demo: manifest.Manifest) -> None:
    beta = envs.spec(demo, "beta")
    proc = inv("sync-all", "--check", cwd=demo.root)
    assert proc.returncode == 1  # beta is missing
    assert "would sync" in proc.stdout
    assert not beta.venv.exists()


def test_clean_dry_run_then_one_env(demo: manifest.Manifest) -> None:
    alpha = envs.spec(demo, "alpha")
    syncer.sync_one(demo, alpha)
    lock_before = (demo.root / "uv.lock").read_bytes()
    dry = inv("clean", "--env", "alpha", "--dry-run", cwd=demo.root)
    assert dry.returncode == 0
    assert "would remove envs/alpha/.venv" in dry.stdout
    assert alpha.venv.exists()
    real = inv("clean", "--env", "alpha", cwd=demo.root)
    assert "removing envs/alpha/.venv" in real.stdout
    assert not alpha.venv.exists()
    assert (demo.root / "uv.lock").read_bytes() == lock_before
    assert (demo.root / "src" / "demo" / "hello.py").exists()


def test_clean_plan_never_leaves_the_repo_or_takes_data(demo: manifest.Manifest) -> None:
    (demo.root / "data" / "content").mkdir(parents=True)
    (demo.root / "src" / "demo" / "__pycache__").mkdir(exist_ok=True)
    plan = clean.clean_plan(demo)
    assert demo.root / "src" / "demo" / "__pycache__" in plan
    for path in plan:
        assert path.resolve().is_relative_to(demo.root.resolve())
    assert not any(p.name in ("uv.lock", "data", ".venv") and p.parent == demo.root for p in plan)


def test_passthrough_keeps_quoting() -> None:
    argv = ["inv", "run", "convert", "--", "--input", "my file.mp3"]
    assert run_cmd.passthrough_args(argv, "--input my file.mp3") == ["--input", "my file.mp3"]
    assert run_cmd.passthrough_args(["inv", "run", "x"], "") == []


def test_a_worker_for_a_service_env_is_refused_in_one_line() -> None:
    proc = inv("worker", "mlx-server")
    assert_one_line_error(proc, 2, "task 'mlx_server' is a service")
