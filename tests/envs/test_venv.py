"""Env state on disk, stamps, the sync lock, and real syncs of a small demo project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from signal4.envs import layout, manifest, syncer, venv
from signal4.envs.layout import EnvError
from signal4.envs.venv import State
from signal4.run import dispatch
from tests.conftest import ROOT
from tests.helpers.demo import make_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> manifest.Manifest:
    """A tiny project with two envs, locked for real."""
    return make_demo(tmp_path_factory.mktemp("demo"))


def test_status_of_a_fresh_checkout(demo: manifest.Manifest) -> None:
    env = layout.spec(demo, "beta", venv=demo.root / "nowhere")
    assert venv.status(demo, env) is State.MISSING
    with pytest.raises(EnvError, match=r"env 'beta' is not synced; run: inv sync beta"):
        venv.require_ready(demo, env)


def test_sync_two_envs_and_isolation(demo: manifest.Manifest) -> None:
    specs = [layout.spec(demo, "alpha"), layout.spec(demo, "beta")]
    results = syncer.sync_many(demo, specs, jobs=2)
    assert [(r.env, r.action) for r in results] == [("alpha", "synced"), ("beta", "synced")]
    assert all(venv.status(demo, s) is State.UP_TO_DATE for s in specs)

    # The task runs under alpha's own interpreter.
    out = dispatch.run(demo, demo.task("hello"))
    assert out.status == "completed"
    assert out.result["python"] == str(specs[0].python)

    # Each env has its own package and not the other's.
    def can_import(env: layout.Venv, module: str) -> bool:
        return (
            subprocess.run(
                [str(env.python), "-c", f"import {module}"], capture_output=True
            ).returncode
            == 0
        )

    assert can_import(specs[0], "pysbd") and not can_import(specs[0], "typing_extensions")
    assert can_import(specs[1], "typing_extensions") and not can_import(specs[1], "pysbd")
    # The project itself is installed, without any sys.path tricks.
    assert can_import(specs[1], "demo.hello")

    # A second sync is a no-op that does not call uv.
    again = syncer.sync_many(demo, specs, jobs=2)
    assert [r.action for r in again] == ["up to date", "up to date"]


def test_a_stamp_for_another_selection_is_stale(demo: manifest.Manifest) -> None:
    env = layout.spec(demo, "alpha")
    syncer.sync_one(demo, env)
    assert venv.status(demo, env) is State.UP_TO_DATE
    # the same venv asked to hold the test group too (what nox's test venvs add)
    with_tests = layout.spec(demo, "alpha", groups=["test"], venv=env.venv)
    assert venv.status(demo, with_tests) is State.STALE


def test_broken_env_is_rebuilt(demo: manifest.Manifest) -> None:
    env = layout.spec(demo, "alpha")
    syncer.sync_one(demo, env)
    env.python.unlink()
    assert venv.status(demo, env) is State.BROKEN
    with pytest.raises(EnvError, match=r"broken .*run: inv sync alpha"):
        dispatch.run(demo, demo.task("hello"))
    result = syncer.sync_one(demo, env)
    assert (result.before, result.action) == (State.BROKEN, "synced")
    assert env.python.exists()


def test_stale_after_a_lock_change_of_its_own_packages(demo: manifest.Manifest) -> None:
    env, alpha = layout.spec(demo, "beta"), layout.spec(demo, "alpha")
    syncer.sync_many(demo, [env, alpha])
    stamp = layout.read_stamp(env) or {}
    assert stamp["lock"] == layout.lock_hash(demo)
    assert stamp["fingerprint"] == venv.current_fingerprint(demo, env)
    lock = demo.root / "uv.lock"
    original = lock.read_bytes()
    try:
        # another env's package: beta's packages are the same, so it stays fresh
        lock.write_bytes(original.replace(b'version = "0.3.4"', b'version = "0.3.5"'))
        assert venv.status(demo, env) is State.UP_TO_DATE
        assert venv.status(demo, alpha) is State.STALE
        # beta's own package
        lock.write_bytes(original.replace(b'version = "4.16.0"', b'version = "4.16.1"'))
        assert venv.status(demo, env) is State.STALE
    finally:
        lock.write_bytes(original)
    assert venv.status(demo, env) is State.UP_TO_DATE


def test_syncing_an_env_a_new_lock_left_alone_stamps_it_without_uv(
    demo: manifest.Manifest,
) -> None:
    """Its warm worker announces the stamp's lock, which must be the current one."""
    env, alpha = layout.spec(demo, "beta"), layout.spec(demo, "alpha")
    syncer.sync_many(demo, [env, alpha])
    lock = demo.root / "uv.lock"
    original = lock.read_bytes()
    try:
        lock.write_bytes(original.replace(b'version = "0.3.4"', b'version = "0.3.5"'))
        got = syncer.sync_one(demo, env, uv="/bin/false")  # uv would fail: it is not run
        assert (got.action, got.error) == ("up to date", None)
        assert (layout.read_stamp(env) or {})["lock"] == layout.lock_hash(demo)
    finally:
        lock.write_bytes(original)
        syncer.sync_one(demo, env)
    assert (layout.read_stamp(env) or {})["lock"] == layout.lock_hash(demo)


def test_a_stamp_without_a_fingerprint_is_stale_after_any_lock_change(
    demo: manifest.Manifest,
) -> None:
    env = layout.spec(demo, "beta")
    syncer.sync_one(demo, env)
    stamp = layout.read_stamp(env) or {}
    del stamp["fingerprint"]  # a stamp written before fingerprints
    env.stamp.write_text(json.dumps(stamp))
    assert venv.status(demo, env) is State.UP_TO_DATE  # the lock still vouches for it
    lock = demo.root / "uv.lock"
    original = lock.read_bytes()
    try:
        lock.write_bytes(original + b"\n")
        assert venv.status(demo, env) is State.STALE
    finally:
        lock.write_bytes(original)
        syncer.sync_one(demo, env, force=True)


def test_lock_out_of_date_fails_with_the_fix(demo: manifest.Manifest) -> None:
    pyproject = demo.root / "pyproject.toml"
    original = pyproject.read_text()
    try:
        pyproject.write_text(
            original.replace(
                'beta = ["typing-extensions>=4"]', 'beta = ["typing-extensions>=4", "pysbd"]'
            )
        )
        result = syncer.sync_one(demo, layout.spec(demo, "beta"), force=True)
    finally:
        pyproject.write_text(original)
    assert result.action == "failed"
    assert result.error == "uv.lock does not match pyproject.toml; run: inv lock"


def test_a_second_inv_sync_waits_and_says_so(demo: manifest.Manifest) -> None:
    inv = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT), "sync", "beta"]
    with venv.sync_lock(demo):
        proc = subprocess.Popen(
            inv,
            cwd=demo.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()  # it blocks until the waiting syncer says something
        assert "another sync holds the env lock; waiting" in line
        assert proc.poll() is None  # still waiting while we hold the lock
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "beta" in out


def test_second_syncer_waits_for_the_lock(demo: manifest.Manifest) -> None:
    waited = threading.Event()
    finished: list[list[syncer.SyncResult]] = []
    with venv.sync_lock(demo):
        t = threading.Thread(
            target=lambda: finished.append(
                syncer.sync_many(demo, [layout.spec(demo, "beta")], on_wait=waited.set)
            )
        )
        t.start()
        assert waited.wait(30)
        time.sleep(0.2)
        assert not finished  # still blocked while we hold the lock
    t.join(60)
    assert finished and finished[0][0].ok


def test_disk_usage_counts_hard_links_once(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"x" * 1000)
    (tmp_path / "b").hardlink_to(a)
    assert venv.disk_usage(tmp_path) == (2000, 1000)


def test_disk_usage_skips_a_file_that_vanishes_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"x" * 100)
    real = os.lstat

    def lstat(path: str) -> os.stat_result:
        if path.endswith(os.sep + "b"):
            raise FileNotFoundError(path)  # removed between the walk and the look
        return real(path)

    monkeypatch.setattr(venv.os, "lstat", lstat)
    assert venv.disk_usage(tmp_path) == (200, 200)


def test_disk_usage_of_several_envs_counts_a_shared_file_once(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "lib.so").write_bytes(b"x" * 1000)
    (tmp_path / "two" / "lib.so").hardlink_to(tmp_path / "one" / "lib.so")
    seen: set[tuple[int, int]] = set()
    assert venv.disk_usage(tmp_path / "one", seen) == (1000, 1000)
    assert venv.disk_usage(tmp_path / "two", seen) == (1000, 0)


# -- what uv is asked to do, and with which environment ------------------------------------


def test_the_sync_command_installs_the_envs_selection_from_the_lock(
    demo: manifest.Manifest,
) -> None:
    cmd = venv.sync_command(demo, layout.spec(demo, "alpha", groups=["test"]), uv="/bin/uv")
    assert cmd == [
        "/bin/uv",
        "sync",
        "--locked",
        "--no-default-groups",
        "--compile-bytecode",
        "--project",
        str(demo.root),
        "--extra",
        "alpha",
        "--group",
        "test",
    ]
    full = venv.sync_command(demo, layout.spec(demo, "full"), uv="/bin/uv")
    assert full[-1] == "--all-extras" and "--extra" not in full
    assert layout.spec(demo, "full").selection() == {"extras": ["*"], "groups": []}
    assert venv.sync_command(demo, layout.spec(demo, "beta"))[0] == venv.find_uv()


def test_uv_targets_the_envs_venv_not_the_callers(tmp_path: Path) -> None:
    env = layout.Venv("alpha", tmp_path / "alpha", ("alpha",))
    environ = venv.sync_environ(env, {"VIRTUAL_ENV": "/dev/.venv", "KEEP": "1"})
    assert environ == {
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "alpha"),
        "UV_NO_PROGRESS": "1",
        "KEEP": "1",
    }


def test_find_uv_takes_the_first_runnable_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def script(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return path

    given, beside, on_path = (script(tmp_path / d / "uv") for d in ("given", "bin", "path"))
    monkeypatch.setattr(venv.sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(venv.shutil, "which", lambda _name: str(on_path))
    monkeypatch.setenv("UV", str(given))
    assert venv.find_uv() == str(given)  # $UV first
    given.chmod(0o644)  # not executable: skipped
    assert venv.find_uv() == str(beside)  # then the one next to this python
    monkeypatch.setenv("UV", str(tmp_path))  # a folder: skipped
    assert venv.find_uv() == str(beside)
    beside.unlink()
    assert venv.find_uv() == str(on_path)  # then PATH's
    monkeypatch.setattr(venv.shutil, "which", lambda _name: None)
    with pytest.raises(EnvError, match="uv not found; install it with: python3 -m pip install uv"):
        venv.find_uv()


def test_a_sync_starts_by_dropping_the_stamp_and_a_venv_without_python(tmp_path: Path) -> None:
    healthy = layout.Venv("a", tmp_path / "a", ("a",))
    (healthy.venv / "bin").mkdir(parents=True)
    healthy.python.symlink_to(sys.executable)
    healthy.stamp.write_text("{}")
    venv.begin_sync(healthy)
    assert not healthy.stamp.exists()
    assert healthy.python.exists()  # kept: uv updates it in place, no full reinstall
    broken = layout.Venv("b", tmp_path / "b", ("b",))
    (broken.venv / "lib").mkdir(parents=True)
    venv.begin_sync(broken)
    assert not broken.venv.exists()  # uv cannot repair it in place: it starts afresh
    venv.begin_sync(layout.Venv("c", tmp_path / "c", ("c",)))  # nothing there: nothing to do


def test_state_and_the_fix_for_each_way_an_env_is_not_ready(
    demo: manifest.Manifest, tmp_path: Path
) -> None:
    env = layout.spec(demo, "alpha", venv=tmp_path / "alpha")
    (env.venv / "bin").mkdir(parents=True)
    env.python.symlink_to(sys.executable)
    for stamp in ("not json", "[]", '{"lock": "x"}'):
        env.stamp.write_text(stamp)
        assert venv.status(demo, env) is State.STALE, stamp
        with pytest.raises(EnvError, match=r"'alpha' is stale against uv.lock .*inv sync alpha$"):
            venv.require_ready(demo, env)
    full = layout.spec(demo, "full", venv=tmp_path / "full")
    assert venv.status(demo, full) is State.MISSING
    with pytest.raises(EnvError, match=r"env 'full' is not synced; run: inv sync full$"):
        venv.require_ready(demo, full)
    mac = manifest.Env("mac", "", ("x",), platforms=("darwin-arm64",))
    m = manifest.Manifest(demo.root, demo.base, {**demo.envs, "mac": mac}, demo.tasks)
    with pytest.raises(EnvError, match=r"env 'mac' is not supported on this platform$"):
        venv.require_ready(m, layout.Venv("mac", tmp_path / "mac", ("mac",)))
    assert venv.sync_hint("*") == "inv sync-all"


def test_a_missing_lock_says_to_lock(tmp_path: Path) -> None:
    m = manifest.Manifest(tmp_path, (), {}, {})
    with pytest.raises(EnvError, match=r"uv.lock is missing; run: inv lock"):
        layout.lock_hash(m)
