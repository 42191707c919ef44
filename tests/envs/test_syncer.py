"""syncer: check-only runs, and a sync interrupted by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signal4.envs import layout, syncer, venv
from signal4.envs.manifest import Manifest
from signal4.run import dispatch
from tests.conftest import ROOT
from tests.helpers.demo import make_demo


def test_check_names_why_an_unsupported_env_is_skipped(project_manifest: Manifest) -> None:
    unsupported = [e for e in project_manifest.envs.values() if not e.supported()]
    if not unsupported:
        pytest.skip("every env of the manifest is built on this platform")
    specs = [layout.spec(project_manifest, e.name) for e in unsupported]
    for result in syncer.check_all(project_manifest, specs):
        assert result.action == "skipped"
        assert result.error == "not supported on this platform"
        assert result.ok  # skipping what cannot be built here is not a failure


# -- what a failed sync says ------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "said"),
    [
        # uv's two ways of saying the lock is behind pyproject.toml
        ("error: The lockfile at `uv.lock` needs to be updated", "run: inv lock"),
        (
            "Resolved 3 packages\nerror: lockfile is stale; remove --locked to update",
            "run: inv lock",
        ),
        # one of the two words alone is about something else
        (
            "error: cannot read the lockfile: permission denied",
            "error: cannot read the lockfile: permission denied",
        ),
        ("error: --locked was given twice", "error: --locked was given twice"),
        # the last line uv marks as an error, whatever its case; not a hint after it
        (
            "Resolved 3 packages\nerror: Failed to fetch pysbd\n  Caused by: connection refused\n"
            "hint: check the network",
            "Caused by: connection refused",
        ),
        ("\u00d7 No solution found\nhint: relax a bound", "\u00d7 No solution found"),
        # no marked line: the last line that says something
        ("Resolved 3 packages\nsomething odd happened\n   \n", "something odd happened"),
        ("", "uv sync failed with no output"),
        ("\n  \n", "uv sync failed with no output"),
    ],
)
def test_a_failed_sync_is_explained_in_one_line(output: str, said: str) -> None:
    line = syncer.explain_failure(output)
    if said == "run: inv lock":
        assert line == "uv.lock does not match pyproject.toml; run: inv lock"
    else:
        assert line == said


def test_a_very_long_error_line_is_cut() -> None:
    assert syncer.explain_failure("error: " + "x" * 1000) == "error: " + "x" * 293


# -- syncs with a stand-in uv: what the user is told, and what is left on disk -----------------

FAKE_UV = """#!{python}
# A stand-in for `uv sync`: builds a venv with three packages, or fails as told.
import os, sys, time
from pathlib import Path
venv = Path(os.environ["UV_PROJECT_ENVIRONMENT"])
stamp = venv / ".signal4-sync.json"
with open(os.environ["FAKE_UV_LOG"], "a") as log:
    log.write(f"{{venv.name}} stamp={{stamp.exists()}}\\n")
order = os.environ.get("FAKE_UV_ORDER")
if order:
    with open(order, "a") as f:
        f.write(f"start {{venv.name}}\\n")
time.sleep(float(os.environ.get("FAKE_UV_SLEEP", "0")))
if order:
    with open(order, "a") as f:
        f.write(f"end {{venv.name}}\\n")
fail = os.environ.get("FAKE_UV_FAIL_" + venv.name)
if fail is not None:
    sys.stderr.write(fail)
    sys.exit(1)
site = venv / "lib" / "python3.99" / "site-packages"
site.mkdir(parents=True, exist_ok=True)
(venv / "bin").mkdir(exist_ok=True)
if not (venv / "bin" / "python").exists():
    (venv / "bin" / "python").symlink_to(sys.executable)
for name in ("one", "two", "three"):
    (site / f"{{name}}-1.0.dist-info").mkdir(exist_ok=True)
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return make_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def fake_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in uv (as $UV); returns the log of its runs: `<venv> stamp=<was there>`."""
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable))
    uv.chmod(0o755)
    log = tmp_path / "uv.log"
    log.write_text("")
    monkeypatch.setenv("UV", str(uv))
    monkeypatch.setenv("FAKE_UV_LOG", str(log))
    return log


def test_a_sync_drops_the_old_stamp_before_uv_runs_and_a_failure_leaves_it_stale(
    demo: Manifest, fake_uv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = layout.spec(demo, "alpha", venv=tmp_path / "alpha")
    first = syncer.sync_one(demo, env)
    assert (first.before, first.action, first.packages, first.error) == (
        venv.State.MISSING,
        "synced",
        3,
        None,
    )
    assert first.ok
    assert venv.status(demo, env) is venv.State.UP_TO_DATE
    again = syncer.sync_one(demo, env)  # up to date: uv is not called
    assert (again.action, again.packages) == ("up to date", 3)
    assert fake_uv.read_text() == "alpha stamp=False\n"

    monkeypatch.setenv(
        "FAKE_UV_FAIL_alpha", "Resolved 3 packages\nerror: Failed to fetch pysbd\nhint: offline?\n"
    )
    events: list[str] = []
    started = time.monotonic()
    failed = syncer.sync_one(demo, env, force=True, on_event=events.append)
    took = time.monotonic() - started
    assert fake_uv.read_text().splitlines()[-1] == "alpha stamp=False"  # dropped before uv ran
    assert events == ["installing from uv.lock"]
    assert (failed.before, failed.action, failed.ok) == (venv.State.UP_TO_DATE, "failed", False)
    assert failed.error == "error: Failed to fetch pysbd"
    assert failed.packages == 0  # the summary shows no package count for a failed env
    assert 0 <= failed.seconds <= took
    assert venv.status(demo, env) is venv.State.STALE  # never used as if it were fresh


def test_sync_all_reports_each_env_by_name_and_one_failure_spares_the_others(
    demo: Manifest, fake_uv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = [layout.spec(demo, n, venv=tmp_path / n) for n in ("alpha", "beta")]
    monkeypatch.setenv("FAKE_UV_FAIL_alpha", "error: no wheel for this platform\n")
    started: list[str] = []
    events: list[tuple[str, str]] = []
    done: list[str] = []
    results = syncer.sync_many(
        demo,
        specs,
        jobs=1,
        on_start=started.append,
        on_event=lambda name, msg: events.append((name, msg)),
        on_done=lambda r: done.append(f"{r.env} {r.action}"),
    )
    assert [(r.env, r.action, r.error) for r in results] == [
        ("alpha", "failed", "error: no wheel for this platform"),
        ("beta", "synced", None),
    ]
    assert started == ["alpha", "beta"]
    assert events == [("alpha", "installing from uv.lock"), ("beta", "installing from uv.lock")]
    assert done == ["alpha failed", "beta synced"]
    # --check afterwards: what a sync would do, and nothing changes
    before = fake_uv.read_text()
    checked = syncer.check_all(demo, specs)
    assert [(r.env, r.before, r.action, r.packages, r.error) for r in checked] == [
        ("alpha", venv.State.MISSING, "would sync", 0, None),
        ("beta", venv.State.UP_TO_DATE, "up to date", 3, None),
    ]
    assert fake_uv.read_text() == before


def test_sync_all_with_one_job_syncs_one_env_at_a_time(
    demo: Manifest, fake_uv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = [layout.spec(demo, n, venv=tmp_path / n) for n in ("alpha", "beta")]
    order = tmp_path / "order"
    monkeypatch.setenv("FAKE_UV_ORDER", str(order))
    monkeypatch.setenv("FAKE_UV_SLEEP", "0.3")
    results = syncer.sync_many(demo, specs, jobs=1)
    assert [r.action for r in results] == ["synced", "synced"]
    assert order.read_text().split("\n") == [
        "start alpha",
        "end alpha",
        "start beta",
        "end beta",
        "",
    ]


def test_an_interrupted_sync_all_lets_the_running_uv_finish_and_starts_no_other(
    demo: Manifest, fake_uv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = [layout.spec(demo, n, venv=tmp_path / n) for n in ("alpha", "beta")]
    monkeypatch.setenv("FAKE_UV_SLEEP", "1")

    def interrupt(name: str) -> None:
        if name == "beta":  # Ctrl-C while alpha's uv runs
            deadline = time.monotonic() + 60
            while "alpha" not in fake_uv.read_text() and time.monotonic() < deadline:
                time.sleep(0.01)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        syncer.sync_many(demo, specs, jobs=1, on_start=interrupt)
    # alpha's uv ran to its end (and its stamp was written) before sync_many let go of the
    # lock; beta never began
    assert venv.status(demo, specs[0]) is venv.State.UP_TO_DATE
    assert venv.status(demo, specs[1]) is venv.State.MISSING
    assert fake_uv.read_text() == "alpha stamp=False\n"


def test_env_names_are_checked_and_full_is_one() -> None:
    from signal4.envs.manifest import UnknownNameError, parse

    m = parse(
        {
            "project": {"optional-dependencies": {"a": ["x"], "b": ["y"], "c": ["z"]}},
            "tool": {
                "signal4": {
                    "envs": {"a": {}, "b": {"optional": True}, "c": {"optional": True}},
                    "tasks": [{"name": "t", "env": "b"}],
                }
            },
        },
        Path("/nowhere"),
    )
    assert syncer.select(m, ["full", "a"]) == ["full", "a"]
    with pytest.raises(UnknownNameError, match="nope"):
        syncer.select(m, ["a", "nope"])
    assert syncer.left_out_line(m, ["b", "c"]) == (
        "left out the optional envs b (t), c; build with: inv sync <env> (or inv sync-all --all)"
    )


def test_an_env_built_on_another_platform_is_skipped_without_uv(
    demo: Manifest, fake_uv: Path, tmp_path: Path
) -> None:
    from signal4.envs.manifest import Env

    mac = Env("mac", "", (), platforms=("darwin-arm64",))
    m = Manifest(demo.root, demo.base, {**demo.envs, "mac": mac}, demo.tasks)
    env = layout.Venv("mac", tmp_path / "mac", ("mac",))
    result = syncer.sync_one(m, env, force=True)
    assert (result.action, result.error, result.ok) == (
        "skipped",
        "not supported on this platform",
        True,
    )
    assert fake_uv.read_text() == ""


STUBBORN_UV = """#!{python}
import os, signal, sys, time
def term(*_):
    open(sys.argv[0] + ".term", "a").write("x")
    time.sleep(1.5)  # a uv that takes a while to clean up after a signal
    sys.exit(1)
signal.signal(signal.SIGTERM, term)
open(sys.argv[0] + ".pid", "w").write(str(os.getpid()))
time.sleep(120)
"""


def test_a_second_signal_does_not_cut_short_the_wait_for_uv(tmp_path: Path) -> None:
    """Two SIGTERMs: the second goes to uv too, and inv still waits for uv before it exits."""
    (tmp_path / "demo").mkdir()
    demo = make_demo(tmp_path / "demo")
    uv = tmp_path / "uv"
    uv.write_text(STUBBORN_UV.format(python=sys.executable))
    uv.chmod(0o755)
    pidfile, termfile = Path(f"{uv}.pid"), Path(f"{uv}.term")
    inv = subprocess.Popen(
        [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT), "sync", "alpha"],
        cwd=demo.root,
        env={**os.environ, "UV": str(uv), "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.exists(), "the stand-in uv never started"
    uv_pid = int(pidfile.read_text())
    inv.send_signal(signal.SIGTERM)
    while not termfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert termfile.exists(), "uv was not told"
    inv.send_signal(signal.SIGTERM)  # while inv waits for uv to finish
    _out, err = inv.communicate(timeout=60)
    assert inv.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    with pytest.raises(ProcessLookupError):
        os.kill(uv_pid, 0)  # inv let go of the lock only after uv was gone
    assert venv.status(demo, layout.spec(demo, "alpha")) is not venv.State.UP_TO_DATE


SLOW_UV = """#!{python}
import os, sys, time
open(sys.argv[0] + ".pid", "w").write(str(os.getpid()))
time.sleep(120)  # a uv sync that takes its time; SIGTERM ends it (default action)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_sync_reaches_uv_and_the_lock_waits_for_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    (tmp_path / "demo").mkdir()
    demo = make_demo(tmp_path / "demo")
    alpha = layout.spec(demo, "alpha")
    assert syncer.sync_one(demo, alpha).action == "synced"  # a good env, with its stamp
    uv = tmp_path / "uv"
    uv.write_text(SLOW_UV.format(python=sys.executable))
    uv.chmod(0o755)
    pidfile = Path(str(uv) + ".pid")
    environ = {**os.environ, "UV": str(uv), "NO_COLOR": "1"}
    inv = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "inv"),
            "--search-root",
            str(ROOT),
            "sync",
            "alpha",
            "--force",
        ],
        cwd=demo.root,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signal goes to inv alone, not to a process group
    )
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.exists(), "the stand-in uv never started"
    uv_pid = int(pidfile.read_text())
    inv.send_signal(sig)
    _out, err = inv.communicate(timeout=60)
    assert inv.returncode == 128 + sig.value, err
    assert f"interrupted by {sig.name}" in err and "Traceback" not in err
    # uv was told too, and inv waited for it before it let go of the sync lock
    with pytest.raises(ProcessLookupError):
        os.kill(uv_pid, 0)
    # the stamp went before uv started: the half-synced env is stale, and refused
    assert venv.status(demo, alpha) is venv.State.STALE
    with pytest.raises(layout.EnvError, match="stale"):
        dispatch.run(demo, demo.task("hello"))
