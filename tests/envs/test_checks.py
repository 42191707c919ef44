"""inv check: each fault of a small fixture project is reported by name; the real lock is clean."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from signal4.envs import checks, layout, lockgraph, syncer, venv
from signal4.envs.manifest import Manifest, load

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "checkproj"
STDLIB = frozenset(sys.stdlib_module_names)

#: What each fixture env's interpreter would report (no env is synced in these tests).
INFOS = {
    "alpha": checks.EnvInfo(
        stdlib=STDLIB,
        modules={"pkga": frozenset({"pkga"}), "pkgb": frozenset({"pkgb"})},
        installed=frozenset({"pkga", "pkgb", "pkgr", "shared", "signal4"}),
    ),
    "beta": checks.EnvInfo(
        stdlib=STDLIB,
        modules={"pkgc": frozenset({"pkgc"}), "shared": frozenset({"shared"})},
        installed=frozenset({"pkgc", "shared", "signal4"}),
    ),
}


def fake_inspect(m: Manifest, names: Sequence[str]) -> tuple[dict[str, checks.EnvInfo], list[str]]:
    return {n: INFOS[n] for n in names if n in INFOS}, [n for n in names if n not in INFOS]


@pytest.fixture(scope="module")
def results() -> dict[str, checks.CheckResult]:
    m = load(FIXTURE)
    only = ("drift", "imports", "unused", "taskmap", "platforms")
    return {r.name: r for r in checks.run_checks(m, only=only, inspect=fake_inspect)}


def test_missing_import_names_task_module_and_chain(
    results: dict[str, checks.CheckResult],
) -> None:
    (error,) = results["imports"].errors
    assert "task 'step_b' imports 'pkgx'" in error
    assert "signal4.processing_steps.step_b → signal4.util → pkgx" in error
    assert "env 'beta' does not install it" in error


def test_type_checking_imports_and_stdlib_are_not_required(
    results: dict[str, checks.CheckResult],
) -> None:
    text = " ".join(results["imports"].errors)
    assert "pkgtyping" not in text and "json" not in text and "step_a" not in text


def test_unused_dependency_is_a_warning_naming_env_and_package(
    results: dict[str, checks.CheckResult],
) -> None:
    unused = results["unused"]
    assert unused.errors == ()
    (warning,) = unused.warnings  # pkgr is runtime-only, pkga and pkgc are imported
    assert "env 'alpha' declares 'pkgb'" in warning
    assert not unused.failed() and unused.failed(strict=True)


def test_drifted_version_names_package_versions_and_envs(
    results: dict[str, checks.CheckResult],
) -> None:
    (error,) = results["drift"].errors
    assert error.startswith("shared: 1.0 in env 'alpha' but 2.0 in env 'beta'")


def test_declared_conflict_is_not_drift() -> None:
    m = load(FIXTURE)
    m = Manifest(m.root, m.base, m.envs, m.tasks, conflicts=(frozenset({"alpha", "beta"}),))
    assert checks.check_drift(m, lockgraph.read_lock(FIXTURE)).errors == ()


def test_unmapped_module_is_named_and_private_modules_are_not(
    results: dict[str, checks.CheckResult],
) -> None:
    (error,) = results["taskmap"].errors
    assert "module signal4.processing_steps.step_orphan is not mapped" in error


def test_missing_task_module_is_named() -> None:
    m = load(FIXTURE)
    task = m.tasks["step_a"]
    broken = type(task)(task.name, task.env, "signal4.processing_steps.gone", 1.0, 1)
    m = Manifest(m.root, m.base, m.envs, {**m.tasks, "step_a": broken})
    errors = checks.check_taskmap(m, FIXTURE / "src").errors
    assert any("task 'step_a' maps to module 'signal4.processing_steps.gone'" in e for e in errors)


def test_package_without_a_wheel_for_a_platform_needs_a_marker(
    results: dict[str, checks.CheckResult],
) -> None:
    errors = results["platforms"].errors
    assert [e.split(" (")[0] for e in errors] == ["pkgb 2.0", "pkgb 2.0"]
    assert {e.split("for ")[1].split(" python")[0] for e in errors} == {
        "linux-x86_64",
        "linux-aarch64",
    }


def test_unsynced_env_names_the_env_and_the_command() -> None:
    m = load(FIXTURE)

    def none_synced(
        m: Manifest, names: Sequence[str]
    ) -> tuple[dict[str, checks.EnvInfo], list[str]]:
        return {}, list(names)

    (result,) = checks.run_checks(m, only=("imports",), inspect=none_synced)
    assert result.errors[-1].startswith("envs not synced, so not checked: alpha, beta")
    assert "inv check --sync" in result.errors[-1]


def test_report_has_one_line_per_check_or_culprit(
    results: dict[str, checks.CheckResult],
) -> None:
    lines = checks.report_lines(list(results.values()))
    assert sum(line.startswith("✘") for line in lines) == 5
    assert any(line.startswith("! every env package is used") for line in lines)
    strict = checks.report_lines(list(results.values()), strict=True)
    assert sum(line.startswith("✘") for line in strict) == 6


def test_wheel_tags() -> None:
    fits = lockgraph.wheel_fits
    assert fits("a-1-cp311-abi3-manylinux_2_17_x86_64.whl", "linux", "x86_64", 13)
    assert not fits("a-1-cp313-cp313-manylinux_2_17_x86_64.whl", "linux", "x86_64", 12)
    assert fits("a-1-cp312-cp312-macosx_11_0_universal2.whl", "darwin", "arm64", 12)
    assert not fits("a-1-py3-none-macosx_11_0_arm64.whl", "linux", "aarch64", 12)
    assert fits("a-1-py2.py3-none-any.whl", "darwin", "arm64", 11)


def test_real_lock_has_no_drift_and_fits_every_platform(
    project_manifest: Manifest,
) -> None:
    lock = lockgraph.read_lock(ROOT)
    assert checks.check_drift(project_manifest, lock).errors == ()
    assert checks.check_platforms(project_manifest, lock).errors == ()
    # numpy is forked by python version in the lock: that is not drift, and the walk sees it.
    graph = lockgraph.LockGraph(lock)
    low = graph.reachable("diarize", lockgraph.marker_environment("linux", "x86_64", 11))
    high = graph.reachable("diarize", lockgraph.marker_environment("linux", "x86_64", 13))
    assert low["numpy"] != high["numpy"]
    assert "mlx" not in graph.reachable(
        "transcribe", lockgraph.marker_environment("linux", "x86_64", 11)
    )
    assert "mlx" in graph.reachable(
        "transcribe", lockgraph.marker_environment("darwin", "arm64", 12)
    )


def test_mlx_without_its_marker_is_caught(project_manifest: Manifest) -> None:
    lock = lockgraph.read_lock(ROOT)
    root = next(p for p in lock["package"] if p["name"] == "signal4")
    for dep in root["optional-dependencies"]["transcribe"]:
        dep.pop("marker", None)
    errors = checks.check_platforms(project_manifest, lock).errors
    assert any(e.startswith("mlx ") and "linux-x86_64" in e for e in errors)


def test_real_env_covers_its_task_imports(project_manifest: Manifest) -> None:
    """Probe the real convert env and check its task against the real import graph."""
    spec = layout.spec(project_manifest, "convert")
    with venv.sync_lock(project_manifest):
        assert syncer.sync_one(project_manifest, spec).ok
    infos, missing = checks.inspect_synced(project_manifest, ["convert"])
    assert missing == []
    assert "imageio-ffmpeg" in infos["convert"].installed
    assert "torch" not in infos["convert"].installed
    graph = checks.import_graph(ROOT / "src")
    result, used = checks.check_imports(project_manifest, graph, infos)
    assert result.errors == ()
    assert "imageio-ffmpeg" in used["convert"]
    # Take imageio-ffmpeg away from the env: the checker names the module it lacks.
    lacking = checks.EnvInfo(
        stdlib=infos["convert"].stdlib,
        modules={k: v for k, v in infos["convert"].modules.items() if k != "imageio_ffmpeg"},
        installed=infos["convert"].installed - {"imageio-ffmpeg"},
    )
    result, _ = checks.check_imports(project_manifest, graph, {"convert": lacking})
    assert result.errors and all("'imageio_ffmpeg'" in e for e in result.errors)


def test_a_step_that_reaches_the_state_db_fails_the_imports_check(
    project_manifest: Manifest,
) -> None:
    info = checks.EnvInfo(
        stdlib=frozenset({"json"}),
        modules={"sqlalchemy": frozenset({"sqlalchemy"})},
        installed=frozenset({"sqlalchemy"}),
    )
    graph = {
        "signal4.processing_steps.convert": {"signal4.stepkit.helper", "json"},
        "signal4.stepkit.helper": {"signal4.run.record"},
        "signal4.run.record": {"json"},
        "signal4.content.state": {"sqlalchemy"},
    }
    result, _ = checks.check_imports(project_manifest, graph, {"convert": info})
    assert result.errors == ()
    # a function-level import is an import too: the step would load the ORM when it runs
    graph["signal4.stepkit.helper"].add("signal4.content.state")
    result, _ = checks.check_imports(project_manifest, graph, {"convert": info})
    (error,) = result.errors
    assert error.startswith(
        "task 'convert' imports signal4.content.state (signal4.processing_steps.convert → "
        "signal4.stepkit.helper → signal4.content.state): a step reports its state changes"
    )
    # the runner's side (not a processing step) may: the worker's task module, say
    graph = {"signal4.services.mlx_server": {"signal4.content.state"}, **graph}
    result, _ = checks.check_imports(project_manifest, graph, {"mlx-server": info, "convert": info})
    assert len(result.errors) == 1


def test_inv_check_exit_code_follows_the_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from signal4.commands import check as check_cmd

    passing = checks.CheckResult("lock")
    failing = checks.CheckResult("drift", errors=("numpy: 1 and 2",))
    warning = checks.CheckResult("unused", warnings=("pkg unused",))
    for results, strict, code in [
        ([passing, warning], False, 0),
        ([passing, warning], True, 1),
        ([passing, failing], False, 1),
    ]:
        monkeypatch.setattr(check_cmd, "run_checks", lambda m, r=results: r)
        assert check_cmd.main(strict=strict, root=ROOT) == code
        out = capsys.readouterr().out
        assert f"{len(results) - code} of {len(results)} checks passed" in out
    assert "✘ no version drift across envs: numpy: 1 and 2" in out


def test_inv_check_on_this_project_reports_every_check() -> None:
    """The real `inv check`: one line per check, a summary, and an exit code that agrees."""
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "inv"), "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert lines[-1].endswith("checks passed"), proc.stdout + proc.stderr
    failed = [line for line in lines if line.startswith("✘")]
    assert proc.returncode == (1 if failed else 0)
    for title in checks.TITLES.values():
        assert any(title in line for line in lines), title


def test_the_import_closure_runs_parent_packages() -> None:
    graph = {
        "pkg": {"top_dep"},
        "pkg.sub": {"sub_dep"},
        "pkg.sub.step": {"pkg.util", "step_dep"},
        "pkg.util": set(),
    }
    chains = checks.closure(graph, "pkg.sub.step")
    assert set(chains) == {
        "pkg.sub.step",
        "pkg.sub",
        "pkg",
        "pkg.util",
        "top_dep",
        "sub_dep",
        "step_dep",
    }
    assert chains["top_dep"] == ["pkg.sub.step", "pkg", "top_dep"]


def test_an_unsynced_optional_env_is_a_note_not_a_failure(project_manifest: Manifest) -> None:
    optional = [e.name for e in project_manifest.envs.values() if e.optional]
    assert optional, "the project has an optional env (pyannote)"

    def inspect(m: Manifest, names: object) -> tuple[dict[str, checks.EnvInfo], list[str]]:
        return {}, [*optional, "stitch"]

    [imports] = checks.run_checks(project_manifest, only=["imports"], inspect=inspect)
    assert any("not synced, so not checked: stitch;" in e for e in imports.errors)
    assert not any(o in e for e in imports.errors for o in optional)
    assert any(f"optional env {optional[0]!r} is not synced" in n for n in imports.notes)


# -- drift and platforms on small hand-written locks ----------------------------------------

_LOCK_HEAD = {"requires-python": ">=3.11,<3.13"}
_REGISTRY = {"registry": "https://pypi.org/simple"}


def _walk_project(
    reach: dict[str, list[dict[str, str]]],
    packages: Sequence[dict[str, Any]],
    *,
    conflicts: Sequence[set[str]] = (),
    platforms: dict[str, tuple[str, ...]] | None = None,
) -> tuple[Manifest, dict[str, Any]]:
    """A manifest of the envs in ``reach`` (env -> its deps in the lock) and its lock."""
    from signal4.envs.manifest import Env

    envs_ = {
        name: Env(name, "", tuple(d["name"] for d in deps), (platforms or {}).get(name, ()))
        for name, deps in reach.items()
    }
    m = Manifest(Path("/nowhere"), (), envs_, {}, conflicts=tuple(map(frozenset, conflicts)))
    root = {"name": "signal4", "version": "0.1.0", "optional-dependencies": reach}
    return m, {**_LOCK_HEAD, "package": [root, *packages]}


def _shared(version: str, **more: Any) -> dict[str, Any]:
    return {"name": "shared", "version": version, **more}


def _pin(version: str) -> list[dict[str, str]]:
    return [{"name": "shared", "version": version}]


def test_drift_across_envs_is_reported_unless_a_conflict_group_holds_both() -> None:
    pkgs = [_shared("1.0"), _shared("2.0")]
    # a is in a conflict group, but not with b: a and b still drift
    m, lock = _walk_project(
        {"a": _pin("1.0"), "b": _pin("2.0"), "c": _pin("1.0")}, pkgs, conflicts=[{"a", "c"}]
    )
    assert checks.check_drift(m, lock).errors == (
        "shared: 1.0 in env 'a' but 2.0 in env 'b' on linux-x86_64 python 3.11; align the "
        "requirements (or declare the envs in [tool.uv] conflicts)",
    )
    m, lock = _walk_project({"a": _pin("1.0"), "b": _pin("2.0")}, pkgs, conflicts=[{"a", "b"}])
    assert checks.check_drift(m, lock).errors == ()


def test_envs_sharing_one_version_are_not_drift() -> None:
    # a is kept apart from b and c, which both use 2.0: nothing drifts
    m, lock = _walk_project(
        {"a": _pin("1.0"), "b": _pin("2.0"), "c": _pin("2.0")},
        [_shared("1.0"), _shared("2.0")],
        conflicts=[{"a", "b"}, {"a", "c"}],
    )
    assert checks.check_drift(m, lock).errors == ()


def test_two_versions_inside_one_env_are_named_as_such() -> None:
    other = {"name": "other", "version": "1.0", "dependencies": _pin("2.0")}
    m, lock = _walk_project(
        {"a": [*_pin("1.0"), {"name": "other"}], "b": _pin("1.0")},
        [_shared("1.0"), _shared("2.0"), other],
    )
    assert checks.check_drift(m, lock).errors == (
        "shared: 1.0 and 2.0 both in env 'a' on linux-x86_64 python 3.11",
    )


def test_an_env_built_on_another_platform_only_skips_itself() -> None:
    mac_only = {"mac": ("darwin-arm64",)}
    m, lock = _walk_project(
        {"mac": _pin("1.0"), "a": _pin("1.0"), "b": _pin("2.0")},
        [_shared("1.0"), _shared("2.0")],
        platforms=mac_only,
    )
    (error,) = checks.check_drift(m, lock).errors
    assert "on linux-x86_64 python 3.11" in error

    wheel = {"url": "https://files/shared-1.0-py3-none-macosx_11_0_arm64.whl"}
    m, lock = _walk_project(
        {"mac": _pin("1.0"), "a": _pin("1.0")},
        [_shared("1.0", source=_REGISTRY, wheels=[wheel])],
        platforms=mac_only,
    )
    errors = checks.check_platforms(m, lock).errors
    assert [e.split(" python")[0] for e in errors] == [
        "shared 1.0 (env 'a') has no wheel or sdist for linux-aarch64",
        "shared 1.0 (env 'a') has no wheel or sdist for linux-x86_64",
    ]


# -- imports: a requirement kept off this platform, a task without its module -------------


def test_a_module_whose_requirement_is_off_this_platform_is_not_missing() -> None:
    from signal4.envs.manifest import Env, Task

    step = "signal4.processing_steps."
    env = Env("t", "", ("numpy", "mlx-whisper; sys_platform == 'darwin'", "z; os_name == 'nt'"))
    tasks = {
        "gone": Task("gone", "t2", step + "gone", 1.0, 1),
        "other": Task("other", "t2", step + "other", 1.0, 1),
        "one": Task("one", "t", step + "one", 1.0, 1),
    }
    m = Manifest(Path("/nowhere"), (), {"t": env, "t2": Env("t2", "", ("numpy",))}, tasks)
    graph = {
        step + "one": {"mlx_whisper", "numpy", "signal4.util"},
        step + "other": {"numpy"},
        "signal4.util": {"missingmod"},
    }
    info = checks.EnvInfo(STDLIB, {"numpy": frozenset({"numpy"})}, frozenset({"numpy"}))
    infos = {"t": info, "t2": info}
    result, used = checks.check_imports(m, graph, infos, plat="linux-x86_64")
    (error,) = result.errors  # mlx_whisper is not installed here, and need not be
    assert error.startswith(f"task 'one' imports 'missingmod' ({step}one → signal4.util →")
    assert used == {"t": {"numpy", "mlx-whisper"}}  # t2 has a task without its module
    result, _used = checks.check_imports(m, graph, infos, plat="darwin-arm64")
    assert [e.split(" (")[0] for e in result.errors] == [
        "task 'one' imports 'missingmod'",
        "task 'one' imports 'mlx_whisper'",
    ]


# -- the probes and uv: what a failure says -------------------------------------------------


def test_a_failing_import_graph_or_probe_says_why(tmp_path: Path) -> None:
    # the last line of the child's error, as text
    with pytest.raises(RuntimeError, match=r"import graph of nosuchpkg under .*: \w+Error: .*"):
        checks.import_graph(tmp_path, "nosuchpkg")
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'first line' >&2\necho 'it broke' >&2\nexit 3\n")
    python.chmod(0o755)
    with pytest.raises(
        RuntimeError, match=r"failed to list its distributions: first line\nit broke$"
    ):
        checks.probe(python)


def test_the_lock_check_passes_and_then_names_uv_s_complaint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.demo import make_demo

    demo = make_demo(tmp_path)  # online: a fresh uv cache has no index pages yet
    monkeypatch.setenv("UV_OFFLINE", "1")  # the check itself needs no network
    assert checks.check_lock(demo) == checks.CheckResult("lock")
    assert checks.inspect_synced(demo, ["alpha", "beta"]) == ({}, ["alpha", "beta"])
    pyproject = demo.root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('beta = ["typing-extensions>=4"]', "beta = []")
    )
    (error,) = checks.check_lock(demo).errors
    # uv's own error line (not its hint, printed after it, to run `uv lock`)
    assert re.fullmatch(
        r"uv.lock does not match pyproject.toml \(error: .*\); run: inv lock", error
    )


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "why"),
    [
        (0, "", "Resolved 2 packages\n", None),
        (
            1,
            "",
            "Resolved 2 packages\nerror: out of date\n\nhint: run `uv lock`\n",
            "error: out of date",
        ),
        (2, "", "Resolved 2 packages\nsomething else\n", "something else"),
        (1, "only on stdout\n", "", "only on stdout"),
        (1, "", "", "uv lock --check failed"),
    ],
)
def test_the_lock_check_follows_uvs_exit_code_and_names_its_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    stdout: str,
    stderr: str,
    why: str | None,
) -> None:
    uv = tmp_path / "uv"
    uv.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"sys.stdout.write({stdout!r}); sys.stderr.write({stderr!r}); sys.exit({code})\n"
    )
    uv.chmod(0o755)
    monkeypatch.setenv("UV", str(uv))
    result = checks.check_lock(Manifest(tmp_path, (), {}, {}))
    if why is None:
        assert result == checks.CheckResult("lock")
    else:
        assert result.errors == (f"uv.lock does not match pyproject.toml ({why}); run: inv lock",)


def test_the_report_shows_warnings_without_a_tick_and_every_note() -> None:
    results = [
        checks.CheckResult("drift"),
        checks.CheckResult(
            "unused", warnings=("env 'a' declares 'x'",), notes=("env 'b' skipped",)
        ),
    ]
    assert checks.report_lines(results) == [
        "✔ no version drift across envs",
        "! every env package is used: env 'a' declares 'x'",
        "  note: env 'b' skipped",
    ]
    assert checks.report_lines(results, strict=True)[1].startswith("✘ every env package is used")
