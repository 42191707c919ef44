"""The dispatcher: timeouts, exit codes, the result line, signal forwarding, progress lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.run import dispatch


def step(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run(code: str, timeout: float | None = 30, grace: float = 5.0) -> dispatch.Outcome:
    return dispatch.run_command(step(code), task="t", env="e", timeout=timeout, grace=grace)


@pytest.mark.parametrize(
    ("status", "code", "expected_exit"),
    [("completed", 0, 0), ("skipped", 0, 0), ("invalid_input", 2, 2), ("failed", 1, 1)],
)
def test_statuses_and_exit_codes(status: str, code: int, expected_exit: int) -> None:
    out = run(
        f"""
        import json, sys
        print("progress line")
        print(json.dumps({{"status": "{status}", "n": 3, "error": "why"}}))
        sys.exit({code})
        """
    )
    assert out.status == status
    assert out.exit_code == expected_exit
    assert out.result["n"] == 3
    assert out.ok is (status in ("completed", "skipped"))
    assert out.error == ("why" if status in ("failed", "invalid_input") else None)


def test_missing_result_line_is_a_failure() -> None:
    out = run("print('just text')")
    assert out.status == Status.FAILED
    assert out.exit_code == 1
    assert "not JSON" in (out.error or "")


def test_no_stdout_at_all() -> None:
    out = run("import sys; sys.exit(3)")
    assert out.status == Status.FAILED
    assert out.exit_code == 3
    assert out.error == "the step printed no result line on stdout"


def test_garbled_json_is_a_failure() -> None:
    out = run('print(\'{"status": "completed"\')')
    assert out.status == Status.FAILED
    assert "not JSON" in (out.error or "")


def test_multiline_json_is_rejected() -> None:
    # The failure mode seen in the old system: indented JSON the worker could not read.
    out = run("import json; print(json.dumps({'status': 'completed'}, indent=2))")
    assert out.status == Status.FAILED


def test_unknown_status_is_a_failure() -> None:
    out = run('print(\'{"status": "great"}\')')
    assert out.status == Status.FAILED
    assert "no valid status" in (out.error or "")


def test_status_disagreeing_with_exit_code_is_a_failure() -> None:
    out = run('import sys; print(\'{"status": "completed"}\'); sys.exit(1)')
    assert out.status == Status.FAILED
    assert "exited with code 1" in (out.error or "")


def test_last_non_empty_line_counts() -> None:
    out = run('print(\'{"status": "failed"}\'); print(\'{"status": "completed"}\'); print()')
    assert out.status == Status.COMPLETED


def test_stderr_tail_is_kept_and_lines_are_streamed() -> None:
    seen: list[str] = []
    out = dispatch.run_command(
        step("""
        import sys
        for i in range(100):
            print(f"err {i}", file=sys.stderr)
        print('{"status": "completed"}')
        """),
        task="t",
        env="e",
        timeout=30,
        on_stdout=seen.append,
    )
    assert out.stderr_tail.splitlines()[-1] == "err 99"
    assert len(out.stderr_tail.splitlines()) == dispatch.STDERR_TAIL_LINES
    assert seen == ['{"status": "completed"}\n']


def test_timeout_sends_sigterm_first(tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    out = run(
        f"""
        import signal, sys, time
        def term(*_):
            open({str(marker)!r}, "w").write("x")
            sys.exit(0)
        signal.signal(signal.SIGTERM, term)
        print("ready", flush=True)
        time.sleep(60)
        """,
        timeout=1.0,
    )
    assert out.status == Status.TIMED_OUT
    assert out.exit_code == codes.EXIT_TIMEOUT
    assert marker.exists()
    assert "SIGKILL" not in (out.error or "")


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    out = run(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """,
        timeout=1.0,
        grace=0.5,
    )
    assert out.status == Status.TIMED_OUT
    assert out.returncode == -signal.SIGKILL
    assert "then SIGKILL" in (out.error or "")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for a reaper, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_timeout_also_stops_grandchildren(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # The grandchild holds none of the step's pipes, so nothing waits for it to end by
    # itself: only a signal to the whole process group stops it.
    out = run(
        f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(60)
        """,
        timeout=1.5,
        grace=1.0,
    )
    assert out.status == Status.TIMED_OUT
    pid = int(pidfile.read_text())
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail(f"grandchild {pid} survived the timeout")


def test_unstartable_command() -> None:
    out = dispatch.run_command(["/nonexistent/python"], task="t", env="e", timeout=5)
    assert out.status == Status.FAILED
    assert "cannot start" in (out.error or "")


FORWARD_SCRIPT = """
import json, os, signal, subprocess, sys, time
from signal4.run import dispatch

marker = sys.argv[1]
child = '''
import signal, sys, time
def handler(signum, _frame):
    open(sys.argv[1], "w").write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGINT, handler)
signal.signal(signal.SIGTERM, handler)
print("child ready", flush=True)
time.sleep(60)
'''
out = dispatch.run_command([sys.executable, "-c", child, marker], task="t", env="e",
                           timeout=30, on_stdout=lambda line: print(line, end="", flush=True))
print(json.dumps({"status": out.status, "exit_code": out.exit_code, "error": out.error,
                  "interrupted": out.interrupted}))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_reach_the_child(tmp_path: Path, sig: signal.Signals) -> None:
    marker = tmp_path / "child-got"
    proc = subprocess.Popen(
        [sys.executable, "-c", FORWARD_SCRIPT, str(marker)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "child ready"
    proc.send_signal(sig)
    rest = proc.stdout.read()
    proc.stdout.close()
    proc.wait(timeout=30)
    assert marker.read_text() == sig.name
    # The child exited 0 without a result line: the run was interrupted, not completed.
    assert f'"exit_code": {128 + sig.value}' in rest
    assert f"interrupted by {sig.name}" in rest
    assert '"interrupted": true' in rest  # what tells a batch to stop


EARLY_SCRIPT = r"""
import json, os, signal, subprocess, sys
from signal4.run import dispatch

sig, when = signal.Signals[sys.argv[1]], sys.argv[2]
child = "import time; time.sleep(60)"


class SignalledPopen(subprocess.Popen):
    # The signal lands at the worst moments: before the child exists, or the instant after.
    def __init__(self, *args, **kwargs):
        if when == "before":
            os.kill(os.getpid(), sig)
        super().__init__(*args, **kwargs)
        if when == "after":
            os.kill(os.getpid(), sig)


dispatch.subprocess.Popen = SignalledPopen
out = dispatch.run_command([sys.executable, "-c", child], task="t", env="e", timeout=30)
print(json.dumps({"returncode": out.returncode, "exit_code": out.exit_code, "error": out.error}))
"""


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_the_start_of_a_step_is_not_lost(sig: signal.Signals, when: str) -> None:
    got = subprocess.run(
        [sys.executable, "-c", EARLY_SCRIPT, sig.name, when],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        check=False,
    )
    # The dispatcher survived the signal and forwarded it: the step (which had no time to
    # install a handler) died of it at once instead of sleeping on in its own session.
    assert got.returncode == 0, got.stderr
    result = json.loads(got.stdout.strip().splitlines()[-1])
    assert result["returncode"] == -sig.value, result
    assert result["exit_code"] == 128 + sig.value
    assert result["error"] == f"interrupted by {sig.name}"


def test_forwarding_is_skipped_off_the_main_thread() -> None:
    results: list[dispatch.Outcome] = []
    t = threading.Thread(target=lambda: results.append(run('print(\'{"status": "completed"}\')')))
    t.start()
    t.join()
    assert results[0].status == Status.COMPLETED


# -- exit codes of steps that break the protocol: a failure never exits 0 -----------------


@pytest.mark.parametrize(
    ("code", "exit_code", "error"),
    [
        ("import sys", 1, "the step printed no result line on stdout"),
        ('print(\'{"status": "failed", "error": "e"}\')', 1, "exited with code 0"),
        ('print(\'{"status": "completed"\'); import sys; sys.exit(5)', 5, "not JSON"),
        ('print(\'{"status": "completed"\')', 1, "not JSON"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 1, "killed by signal SIGKILL"),
    ],
)
def test_a_broken_step_fails_with_a_non_zero_exit_code(
    code: str, exit_code: int, error: str
) -> None:
    out = run(code)
    assert (out.status, out.exit_code, out.ok) == (Status.FAILED, exit_code, False)
    assert error in (out.error or "")


def test_the_step_sees_its_env_vars_and_streams_stderr_as_it_comes(tmp_path: Path) -> None:
    code = """
    import json, os, sys
    print("warming up", file=sys.stderr)
    print(json.dumps({"status": "completed", "pid": os.getpid(), "pgid": os.getpgid(0),
                      "var": os.environ.get("STEP_VAR"), "cwd": os.getcwd()}))
    """
    lines: list[str] = []
    pids: list[int] = []
    started = time.monotonic()
    out = dispatch.run_command(
        step(code),
        task="t",
        env="e",
        timeout=30,
        environ={**os.environ, "STEP_VAR": "set"},
        on_stderr=lines.append,
        on_start=pids.append,
        cwd=tmp_path,
    )
    took = time.monotonic() - started
    assert out.status == Status.COMPLETED, out.error
    assert out.result["var"] == "set"
    assert out.result["cwd"] == str(tmp_path)
    assert lines == ["warming up\n"]
    # on_start gets the step's pid, which leads its own process group (what Ctrl-C stops)
    assert pids == [out.result["pid"]] == [out.result["pgid"]]
    assert 0 < out.duration <= took
    assert out.command == tuple(step(code))


def test_a_finished_step_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    out = run('print(\'{"status": "completed"}\')', timeout=300)
    assert out.status == Status.COMPLETED
    # neither the output pumps nor the timeout's watchdog (which would wait its 300 s): a
    # batch of many steps must not pile up sleeping threads
    for thread in set(threading.enumerate()) - before:
        thread.join(60)
        assert not thread.is_alive(), thread


def test_the_step_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signal4.envs.manifest import parse

    m = parse(
        {
            "project": {"optional-dependencies": {"a": ["x"]}},
            "tool": {"signal4": {"envs": {"a": {}}}},
        },
        tmp_path,
    )
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere/.venv")
    monkeypatch.setenv("PYTHONHOME", "/somewhere")
    monkeypatch.delenv("SIGNAL4_DATA_DIR")
    environ = dispatch.child_environ(m, {"EXTRA": "1"})
    # not the caller's venv; output unbuffered (progress shows live); the project's data
    assert "VIRTUAL_ENV" not in environ and "PYTHONHOME" not in environ
    assert environ["PYTHONUNBUFFERED"] == "1"
    assert environ["SIGNAL4_DATA_DIR"] == str(tmp_path / "data")
    assert environ["EXTRA"] == "1"
    monkeypatch.setenv("SIGNAL4_DATA_DIR", "/elsewhere")
    assert dispatch.child_environ(m)["SIGNAL4_DATA_DIR"] == "/elsewhere"


def test_a_steps_output_is_passed_on_at_once() -> None:
    """inv run echoes each line of the step as it comes, even into a pipe (`| tee`)."""
    code = (
        "import os; from signal4.run import dispatch; "
        "dispatch.echo_stdout('out line\\n'); dispatch.echo_stderr('err line\\n'); os._exit(0)"
    )
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers
    got = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environ
    )
    # os._exit skips the buffers' flush at exit: only what was flushed at once is there
    assert (got.stdout, got.stderr) == ("out line\n", "err line\n")


def test_a_tasks_command_is_its_envs_interpreter_and_module(tmp_path: Path) -> None:
    from signal4.envs import layout
    from signal4.envs.manifest import parse

    m = parse(
        {
            "project": {"optional-dependencies": {"a": ["x"]}},
            "tool": {"signal4": {"envs": {"a": {}}, "tasks": [{"name": "t", "env": "a"}]}},
        },
        tmp_path,
    )
    python = str(layout.spec(m, "a").python)
    assert dispatch.command(m, m.task("t"), ["--x", "1"]) == [
        python,
        "-P",  # the caller's folder is not on the step's path
        "-m",
        "signal4.processing_steps.t",
        "--x",
        "1",
    ]
    other = layout.spec(m, "a", venv=tmp_path / "other")
    assert dispatch.command(m, m.task("t"), [], other)[0] == str(other.python)


def test_progress_at_the_very_start_is_progress() -> None:
    line = '{"progress": {"done": 0, "total": null, "unit": "bytes"}}\n'
    assert dispatch.parse_progress(line) == {"done": 0, "total": None, "unit": "bytes"}
    line = '{"progress": {"done": 0.0, "total": 0, "unit": "seconds"}}'
    assert dispatch.parse_progress(line) == {"done": 0.0, "total": 0, "unit": "seconds"}


def test_the_result_counts_even_when_the_output_is_read_slower_than_the_step_ends() -> None:
    seen: list[str] = []

    def slow(line: str) -> None:  # a slow terminal, say
        time.sleep(0.3)
        seen.append(line)

    out = dispatch.run_command(
        step('print("working"); print(\'{"status": "completed"}\')'),
        task="t",
        env="e",
        timeout=30,
        on_stdout=slow,
        on_stderr=slow,
    )
    assert out.status == Status.COMPLETED, out.error
    assert seen == ["working\n", '{"status": "completed"}\n']


# The progress channel: a step's progress lines go to a callback, not to the tail.


@pytest.mark.parametrize(
    "line",
    [
        '{"progress": {"done": 1, "total": 2}}',  # no unit
        '{"progress": {"done": 1, "total": 2, "unit": "frames"}}',
        '{"progress": {"done": -1, "total": 2, "unit": "bytes"}}',
        '{"progress": {"done": true, "total": 2, "unit": "bytes"}}',
        '{"progress": {"done": 1, "total": "2", "unit": "bytes"}}',
        '{"progress": {"done": 1, "total": 2, "unit": "bytes"}, "status": "completed"}',
        '{"progress": {"done": 1, "total": 2, "unit": "bytes"',
        "progress: 50%",
    ],
)
def test_a_line_that_only_looks_like_progress_is_ordinary_stderr(line: str) -> None:
    assert dispatch.parse_progress(line) is None


CHILD = r"""
import os, sys
asked = os.environ.get("SIGNAL4_PROGRESS")
print("loading the model", file=sys.stderr, flush=True)
if asked:
    for done in (1.5, 3.0, 4.5):
        print('{"progress": {"done": %s, "total": 4.5, "unit": "seconds"}}' % done,
              file=sys.stderr, flush=True)
print('{"progress": "not a count"}', file=sys.stderr, flush=True)
print("a real warning", file=sys.stderr, flush=True)
print('{"status": "completed", "asked": %s}' % ("true" if asked else "false"))
"""


def _run(**callbacks: object) -> dispatch.Outcome:
    return dispatch.run_command(
        [sys.executable, "-c", CHILD],
        task="t",
        env="e",
        timeout=60,
        **callbacks,  # type: ignore[arg-type]
    )


def test_the_dispatcher_hands_progress_to_its_callback_not_to_the_tail() -> None:
    got: list[dict[str, object]] = []
    seen: list[str] = []
    threads: set[int] = set()

    def on_progress(p: dict[str, object]) -> None:
        got.append(p)
        threads.add(threading.get_ident())

    outcome = _run(on_progress=on_progress, on_stderr=seen.append)
    assert outcome.status == Status.COMPLETED and outcome.result["asked"] is True
    assert got == [{"done": d, "total": 4.5, "unit": "seconds"} for d in (1.5, 3.0, 4.5)]
    expected = ["loading the model\n", '{"progress": "not a count"}\n', "a real warning\n"]
    assert outcome.stderr_tail.splitlines(keepends=True) == expected
    assert seen == expected
    assert threading.get_ident() not in threads  # called as lines arrive, by the reader


def test_no_listener_no_progress_asked() -> None:
    outcome = _run()
    assert outcome.result["asked"] is False
    assert "progress" not in outcome.stderr_tail.replace('{"progress": "not a count"}', "")


def test_a_callback_that_raises_does_not_stop_the_step() -> None:
    def broken(_p: dict[str, object]) -> None:
        raise RuntimeError("the view broke")

    outcome = _run(on_progress=broken)
    assert outcome.status == Status.COMPLETED
    assert "a real warning" in outcome.stderr_tail
