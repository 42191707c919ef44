"""The inv tasks as a user runs them: one-line errors, exit codes, pass-through, clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signal4.commands import run as run_cmd
from signal4.envs import clean, layout, manifest, syncer, venv
from tests.helpers.demo import FAILING, SLEEPY, SLEEPY_TASKS, make_demo, write_project

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
    import importlib.util

    from invoke.collection import Collection

    spec = importlib.util.spec_from_file_location("project_tasks", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    collection = Collection.from_module(module)
    proc = subprocess.run(
        [*INV, "--list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    listed = " ".join(proc.stdout.split())  # Invoke wraps long help lines
    assert len(collection.task_names) >= 13
    for name in collection.task_names:
        body = collection[name].body
        doc = (body.__doc__ or "").strip()
        assert doc and "\n" not in doc and doc.endswith("."), (name, doc)
        assert doc[0].isupper() and not doc.split()[0].endswith("s"), (name, doc)  # imperative
        assert f" {name} {doc}" in listed, (name, doc)


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
    syncer.sync_one(demo, layout.spec(demo, "alpha"))
    proc = inv("run", "hello", "--", "a file name.mp3", "--flag", cwd=demo.root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["args"] == ["a file name.mp3", "--flag"]
    assert result["python"] == str(layout.spec(demo, "alpha").python)
    assert inv("run", "hello", "--", "--invalid", cwd=demo.root).returncode == 2


def test_sync_check_reports_and_changes_nothing(demo: manifest.Manifest) -> None:
    beta = layout.spec(demo, "beta")
    proc = inv("sync-all", "--check", cwd=demo.root)
    assert proc.returncode == 1  # beta is missing
    assert "would sync" in proc.stdout
    assert not beta.venv.exists()


def test_clean_dry_run_then_one_env(demo: manifest.Manifest) -> None:
    alpha = layout.spec(demo, "alpha")
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


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("run", "--timeout", "abc", "convert"), "--timeout 'abc'"),
        (("run", "--timeout", "nan", "convert"), "--timeout 'nan'"),
        (("run", "--timeout", "-1", "convert"), "--timeout '-1'"),
        (("submit", "--timeout", "inf", "convert"), "--timeout 'inf'"),
        (("run", "convert", "--bogusflag"), "'--bogusflag'"),
        (("sync-all", "--jobs", "many"), "many"),
        (("pipeline", "--source", ""), "--source is empty"),
        (("pipeline", "--source", "   "), "--source is empty"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(args: tuple[str, ...], text: str) -> None:
    assert_one_line_error(inv(*args), 2, text)


@pytest.mark.parametrize("task", ["run", "sync", "worker", "submit", "pipeline"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_a_tasks_help_flag_after_its_name_shows_its_help(task: str, flag: str) -> None:
    proc = inv(task, flag)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: inv[oke] [--core-opts] {task} ")
    assert "Docstring:" in proc.stdout and proc.stderr == ""


def test_a_fractional_timeout_is_taken(demo: manifest.Manifest) -> None:
    syncer.sync_one(demo, layout.spec(demo, "alpha"))
    proc = inv("run", "--timeout", "2.5", "hello", cwd=demo.root)
    assert proc.returncode == 0, proc.stderr


# --- the exit codes the README promises, at the command level -----------------------


@pytest.fixture(scope="module")
def slow_demo(tmp_path_factory: pytest.TempPathFactory) -> manifest.Manifest:
    """A demo whose pipeline is one step: ``sleepy`` (a 3 s limit) or ``failing``."""
    root = tmp_path_factory.mktemp("slow-demo")
    m = write_project(
        root,
        "demo",
        SLEEPY_TASKS,
        {"sleepy": SLEEPY, "failing": FAILING},
        pipeline=("sleepy",),
    )
    syncer.sync_one(m, layout.spec(m, "alpha"))
    return m


def _started(marker: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def test_run_exits_1_for_a_failed_step_and_124_for_a_timeout(
    slow_demo: manifest.Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_MARKER", str(tmp_path / "pid"))
    failed = inv("run", "failing", cwd=slow_demo.root)
    assert failed.returncode == 1, failed.stderr
    timed = inv("run", "--timeout", "1", "sleepy", cwd=slow_demo.root)
    assert timed.returncode == 124, timed.stderr
    assert "timed out after 1 s" in timed.stderr
    # on a known item, inv run records the timeout the step could not report itself
    from signal4.content import settings
    from signal4.content.state import StateDB

    db = StateDB(settings.get().db_url)
    db.register("talk", kind="file")
    timed = inv("run", "--timeout", "1", "sleepy", "--", "--content", "talk", cwd=slow_demo.root)
    assert timed.returncode == 124, timed.stderr
    assert db.stage_status("talk", "sleepy") == "timed_out"
    assert "timed out after 1 s" in (db.get("talk").steps[0].error or "")  # type: ignore[union-attr]


def test_pipeline_exits_1_naming_the_item_when_a_stage_times_out(
    slow_demo: manifest.Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_MARKER", str(tmp_path / "pid"))
    media = tmp_path / "talk.wav"
    media.write_bytes(b"RIFF")
    got = inv("pipeline", "--source", str(media), cwd=slow_demo.root)
    assert got.returncode == 1, got.stdout + got.stderr
    assert "timed_out     sleepy" in got.stdout  # the step's line, then the summary
    assert "failed: file-talk-" in got.stdout


@pytest.mark.parametrize("command", [("run", "sleepy"), ("pipeline", "--source", "TALK")])
def test_clean_refuses_an_env_a_running_step_or_pipeline_uses(
    slow_demo: manifest.Manifest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    marker = tmp_path / "pid"
    monkeypatch.setenv("DEMO_MARKER", str(marker))
    talk = tmp_path / "talk.wav"
    talk.write_bytes(b"RIFF")
    proc = subprocess.Popen(
        [*INV, *(str(talk) if arg == "TALK" else arg for arg in command)],
        cwd=slow_demo.root,
        env={**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _started(marker, proc)
        refused = inv("clean", "--env", "alpha", cwd=slow_demo.root)
        assert_one_line_error(refused, 2, "env alpha is in use (a step, a pipeline or a warm")
        assert layout.spec(slow_demo, "alpha").python.exists()
        everything = inv("clean", cwd=slow_demo.root)  # a full clean refuses, removes nothing
        assert everything.returncode == 2 and layout.spec(slow_demo, "alpha").python.exists()
        assert inv("clean", "--env", "alpha", "--dry-run", cwd=slow_demo.root).returncode == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


@pytest.mark.parametrize("command", [("run", "sleepy"), ("pipeline", "--source", "TALK")])
def test_ctrl_c_ends_the_command_with_130_and_stops_the_step(
    slow_demo: manifest.Manifest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    marker = tmp_path / "pid"
    monkeypatch.setenv("DEMO_MARKER", str(marker))
    talk = tmp_path / "talk.wav"
    talk.write_bytes(b"RIFF")
    proc = subprocess.Popen(
        [*INV, *(str(talk) if arg == "TALK" else arg for arg in command)],
        cwd=slow_demo.root,
        env={**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _started(marker, proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    step = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(step, 0)


def test_run_sync_builds_a_missing_env_first(tmp_path: Path) -> None:
    demo = make_demo(tmp_path)
    assert venv.status(demo, layout.spec(demo, "alpha")) is venv.State.MISSING
    proc = inv("run", "--sync", "hello", cwd=demo.root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "completed"
    assert venv.status(demo, layout.spec(demo, "alpha")) is venv.State.UP_TO_DATE


def test_lock_check_fails_when_the_manifest_moved_on(tmp_path: Path) -> None:
    demo = make_demo(tmp_path)
    assert inv("lock", "--check", cwd=demo.root).returncode == 0
    pyproject = demo.root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('beta = ["typing-extensions>=4"]', 'beta = ["pysbd"]')
    )
    lock_before = (demo.root / "uv.lock").read_bytes()
    assert inv("lock", "--check", cwd=demo.root).returncode == 1
    assert (demo.root / "uv.lock").read_bytes() == lock_before  # --check changes nothing
    assert inv("lock", cwd=demo.root).returncode == 0
    assert inv("lock", "--check", cwd=demo.root).returncode == 0


def test_pipeline_exits_1_when_a_stage_fails(tmp_path: Path) -> None:
    m = write_project(
        tmp_path, "demo", SLEEPY_TASKS, {"sleepy": SLEEPY, "failing": FAILING}, ("failing",)
    )
    syncer.sync_one(m, layout.spec(m, "alpha"))
    media = tmp_path / "talk.wav"
    media.write_bytes(b"RIFF")
    got = inv("pipeline", "--source", str(media), cwd=m.root)
    assert got.returncode == 1, got.stdout + got.stderr
    assert "failed        failing" in got.stdout and "it broke" in got.stdout


@pytest.mark.parametrize("command", [("worker", "stitch"), ("workers",)])
def test_a_broker_that_does_not_answer_is_exit_3(command: tuple[str, ...]) -> None:
    if command[0] == "worker":  # a worker checks its env first (exit 2): build it
        assert inv("sync", command[1]).returncode == 0
    # nothing listens on port 9 of the loopback address
    proc = inv(*command, "--broker", "redis://127.0.0.1:9/0")
    assert_one_line_error(proc, 3, "does not answer")


def test_max_tasks_per_child_reaches_the_worker_and_is_checked(
    project_manifest: manifest.Manifest,
) -> None:
    from signal4.commands import workers as workers_cmd

    cmd = workers_cmd.worker_command(
        project_manifest, "stitch", concurrency=2, max_tasks_per_child=7
    )
    assert cmd[cmd.index("--max-tasks-per-child") + 1] == "7"
    assert cmd[cmd.index("--concurrency") + 1] == "2"
    proc = inv("worker", "stitch", "--max-tasks-per-child", "0")
    assert_one_line_error(proc, 2, "--max-tasks-per-child >= 1")


@pytest.mark.parametrize("command", [["pipeline", "--dry-run"], ["status"], ["status", "--stale"]])
def test_a_setting_out_of_range_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path), "SIGNAL4_CHUNK_SECONDS": "nan"}
    proc = subprocess.run(
        [*INV, *command], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert_one_line_error(proc, 2, "invalid setting: SIGNAL4_CHUNK_SECONDS='nan'")


def test_an_unknown_rerun_trigger_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path)}
    for command in (["pipeline", "--dry-run"], ["status", "--stale"]):
        proc = subprocess.run(
            [*INV, *command, "--rerun-triggers", "env,model"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=ROOT,
        )
        assert_one_line_error(proc, 2, "--rerun-triggers: unknown trigger 'model'")


# --- hostile sources and flags: one line, a documented exit code, the rest goes on ----------


def test_an_unreadable_file_fails_alone_and_the_others_are_planned(tmp_path: Path) -> None:
    import shutil

    media = tmp_path / "media"
    media.mkdir()
    for name in ("a.wav", "b.wav"):
        shutil.copy(ROOT / "samples" / "two_speakers" / "audio.wav", media / name)
    (media / "b.wav").chmod(0o000)
    # root reads any file: run inv without the capabilities that let it (its own files,
    # the checkout among them, stay readable to it)
    no_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if os.geteuid() != 0:  # another user cannot read a file of mode 000 anyway
        no_override = []
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"}
    proc = subprocess.run(
        [*no_override, *INV, "pipeline", "--source", str(media), "--dry-run"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "plan: 1 item(s)" in proc.stdout and "file-a-" in proc.stdout
    assert "b.wav: cannot read it (Permission denied)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file of sources (not UTF-8 at byte"),
        (b"a.wav\n\x00b.wav\n", "not a text file of sources (it holds a NUL byte)"),
    ],
)
def test_a_from_file_that_is_no_list_of_sources_is_one_line(
    tmp_path: Path, content: bytes, text: str
) -> None:
    listing = tmp_path / "sources"
    listing.write_bytes(content)
    assert_one_line_error(inv("pipeline", "--from", str(listing), "--dry-run"), 2, text)


def test_a_byte_order_mark_is_no_part_of_the_first_source(tmp_path: Path) -> None:
    import shutil

    wav = tmp_path / "one.wav"
    shutil.copy(ROOT / "samples" / "two_speakers" / "audio.wav", wav)
    listing = tmp_path / "sources"
    listing.write_bytes(b"\xef\xbb\xbf" + f"{wav}\n# listed twice: planned once\n{wav}\n".encode())
    proc = inv("pipeline", "--from", str(listing), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "plan: 1 item(s)" in proc.stdout and "file-one-" in proc.stdout
    assert "cannot plan" not in proc.stdout


def test_a_fifo_is_not_taken_for_a_missing_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    proc = inv("pipeline", "--source", str(fifo), "--dry-run")
    assert_one_line_error(proc, 2, "not a regular file or a folder (a FIFO, a device?)")


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_a_broker_port_out_of_range_is_one_line(port: str) -> None:
    assert_one_line_error(inv("broker", "--port", port), 2, "give a TCP port from 1 to 65535")


def test_an_early_sigterm_says_so_and_exits_143(tmp_path: Path) -> None:
    fifo = tmp_path / "sources"
    os.mkfifo(fifo)  # planning blocks reading it: the signal lands before any step
    proc = subprocess.Popen(
        [*INV, "pipeline", "--from", str(fifo)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        # opening a FIFO with no writer waits in the kernel's wait_for_partner
        while Path(f"/proc/{proc.pid}/wchan").read_text() != "wait_for_partner":
            assert time.monotonic() < deadline and proc.poll() is None, "it never read the list"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failed test leaves no process blocked on the FIFO
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert err.decode().strip() == "interrupted by SIGTERM"
