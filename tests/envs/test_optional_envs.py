"""Optional envs (``optional = true``): built when asked for, never by a plain sync-all.

The project's one optional env is ``pyannote`` (torch). A fresh ``inv sync-all pipeline``
must not download torch: these tests check it from the manifest and the lock, without
building anything big.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signal4.envs import layout, lockgraph, manifest, syncer, venv
from signal4.envs.manifest import ManifestError
from tests.helpers.demo import DEMO_TASKS, HELLO, write_project

ROOT = Path(__file__).resolve().parents[2]
INV = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]

BASE: dict[str, Any] = {
    "project": {
        "dependencies": ["sqlalchemy>=2"],
        "optional-dependencies": {"light": ["pysbd"], "heavy": ["torch>=2"]},
    },
    "tool": {
        "signal4": {
            "envs": {"light": {}, "heavy": {"optional": True}},
            "tasks": [{"name": "a", "env": "light"}, {"name": "b", "env": "heavy"}],
        }
    },
}


def parse(data: dict[str, Any]) -> manifest.Manifest:
    return manifest.parse(data, Path("/nowhere"))


def test_the_manifest_reads_the_optional_flag() -> None:
    m = parse(BASE)
    assert m.env("heavy").optional and not m.env("light").optional
    assert [e.name for e in m.optional_envs] == ["heavy"]
    bad = copy.deepcopy(BASE)
    bad["tool"]["signal4"]["envs"]["heavy"]["optional"] = "yes"
    with pytest.raises(ManifestError, match=r"envs.heavy\] optional must be true or false"):
        parse(bad)


def test_sync_all_leaves_optional_envs_out_unless_asked() -> None:
    m = parse(BASE)
    assert syncer.select(m, []) == ["light"]
    assert syncer.select(m, [], optional=True) == ["light", "heavy"]
    assert syncer.select(m, [], full=True) == ["light", "full"]
    assert syncer.select(m, ["heavy"]) == ["heavy"]  # asked for by name
    assert syncer.left_out(m, ["light"]) == ["heavy"]
    assert syncer.left_out(m, ["light", "heavy"]) == []
    line = syncer.left_out_line(m, ["heavy"])
    assert line == (
        "left out the optional env heavy (b); build with: inv sync heavy (or inv sync-all --all)"
    )


def test_a_plain_sync_all_builds_no_env_holding_torch(project_manifest: manifest.Manifest) -> None:
    """What a fresh `inv sync-all` selects, walked through uv.lock: no torch anywhere."""
    chosen = syncer.select(project_manifest, [])
    assert "pyannote" not in chosen and "diarize" in chosen
    assert syncer.left_out(project_manifest, chosen) == ["pyannote"]
    graph = lockgraph.LockGraph(lockgraph.read_lock(ROOT))
    heavy = {"torch", "resemblyzer", "scikit-learn", "librosa", "numba", "pyannote-audio"}
    for plat, _minor, environment in lockgraph.targets(lockgraph.read_lock(ROOT)):
        for env in chosen:
            if not project_manifest.env(env).supported(plat):
                continue
            found = heavy & set(graph.reachable(env, environment))
            if plat == "darwin-arm64" and env == "transcribe":
                # mlx-whisper (Apple silicon only) depends on torch and numba itself
                found -= {"torch", "numba"}
            assert not found, (env, plat, found)
    # and the optional env is where torch went
    linux = lockgraph.marker_environment("linux", "x86_64", 11)
    assert "torch" in graph.reachable("pyannote", linux)
    assert {"onnxruntime", "scipy", "numpy"} <= set(graph.reachable("diarize", linux))


def test_the_pyannote_task_runs_in_the_optional_env(project_manifest: manifest.Manifest) -> None:
    assert project_manifest.task("diarize_pyannote").env == "pyannote"
    assert project_manifest.task("diarize").env == "diarize"
    assert "diarize_pyannote" not in project_manifest.pipeline


def test_inv_sync_all_says_what_it_left_out(tmp_path: Path) -> None:
    """A real `inv sync-all` on a demo project whose second env is optional."""
    demo = write_project(tmp_path, "optdemo", DEMO_TASKS, {"hello": HELLO})
    text = (demo.root / "pyproject.toml").read_text()
    (demo.root / "pyproject.toml").write_text(
        text.replace("[tool.signal4.envs.beta]\n", "[tool.signal4.envs.beta]\noptional = true\n")
    )

    def inv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*INV, *args], cwd=demo.root, capture_output=True, text=True, timeout=300
        )

    m = manifest.load(demo.root)
    proc = inv("sync-all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "left out" in line]
    assert lines == [
        "left out the optional env beta; build with: inv sync beta (or inv sync-all --all)"
    ], proc.stdout
    assert venv.status(m, layout.spec(m, "alpha")) is venv.State.UP_TO_DATE
    assert not layout.spec(m, "beta").venv.exists()
    check = inv("sync-all", "--check", "--all")
    assert check.returncode == 1 and "would sync" in check.stdout  # beta, when asked
    assert "left out" not in check.stdout
    named = inv("sync", "beta", "--check")
    assert named.returncode == 1 and "left out" not in named.stdout
