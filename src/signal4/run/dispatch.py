"""The dispatcher: task -> env -> interpreter -> command, run with a timeout, result classified.

``inv run``, ``inv pipeline`` and the worker all call :func:`run`. It calls the env's own
interpreter directly (no ``uv run``: no lock check or sync at launch), always with an
argument list, in a new process group so that a timeout stops the step *and* whatever it
started (ffmpeg, say): SIGTERM first, SIGKILL after a grace period. SIGINT and SIGTERM
sent to the caller are forwarded to the step.

A step may report its progress as JSON lines on stderr,
``{"progress": {"done": N, "total": N or null, "unit": "bytes"|"seconds"}}`` (see
:mod:`signal4.stepkit.progress`). Given an ``on_progress`` callback, the dispatcher asks
for them (``SIGNAL4_PROGRESS=1`` in the step's environment), hands each one to it as a
dict, and keeps them out of the stderr tail and ``on_stderr``, whoever asked.

Standard library only: this is on every task's start-up path.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from signal4 import codes
from signal4.codes import StageState, Status
from signal4.content import settings
from signal4.envs.layout import Venv, spec
from signal4.envs.manifest import Manifest, Task
from signal4.envs.venv import in_use, require_ready
from signal4.signals import handling
from signal4.stepkit import protocol

DEFAULT_GRACE = 10.0
STDERR_TAIL_LINES = 40
#: The environment variable that asks a step for progress lines on stderr.
PROGRESS_VAR = "SIGNAL4_PROGRESS"
PROGRESS_UNITS = ("bytes", "seconds")


@dataclass(frozen=True)
class Outcome:
    """What happened when a task ran."""

    task: str
    env: str
    status: str
    exit_code: int
    returncode: int | None
    duration: float
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stderr_tail: str = ""
    command: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True for completed or skipped."""
        return self.status in (Status.COMPLETED, Status.SKIPPED)

    @property
    def reason(self) -> str:
        """Why it did not succeed: its error, else the last line it wrote on stderr."""
        return self.error or "".join(self.stderr_tail.strip().splitlines()[-1:])

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C or SIGTERM stopped it."""
        return self.status == Status.INTERRUPTED

    @property
    def state(self) -> StageState:
        """What its stage's record says of this run."""
        return StageState.DONE if self.ok else StageState(self.status)

    @classmethod
    def of_result(cls, task: Task, result: dict[str, Any], duration: float) -> Outcome:
        """The outcome of a well-formed result (a warm worker's return value, say)."""
        status, code, error = protocol.verdict(result)
        return cls(task.name, task.env, status, code, code, duration, result, error)


def command(
    manifest: Manifest, task: Task, args: Sequence[str], env: Venv | None = None
) -> list[str]:
    """Return the argument list that runs ``task`` in its env's interpreter.

    ``-P``: the caller's current folder is not put on the step's ``sys.path``, so a file
    there (a ``where.py`` in ``src/where/``, say) cannot shadow a module of the step.
    """
    env = env or spec(manifest, task.env)
    return [str(env.python), "-P", "-m", task.module, *args]


def child_environ(manifest: Manifest, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment a step runs with."""
    environ = dict(os.environ)
    environ.pop("VIRTUAL_ENV", None)
    environ.pop("PYTHONHOME", None)
    environ["PYTHONUNBUFFERED"] = "1"
    # the settings this runner decided (data folder, DB, ...), so that a step never falls
    # back to defaults of its own (a .env file or a data folder in its current folder)
    environ.update(settings.for_project(manifest.root).environ())
    if extra:
        environ.update(extra)
    return environ


def classify(returncode: int, stdout_last: str) -> tuple[str, int, dict[str, Any], str | None]:
    """Classify a finished step: (status, exit code, result, error)."""
    try:
        result = protocol.parse_line(stdout_last) if stdout_last.strip() else None
    except protocol.ProtocolError as exc:
        return Status.FAILED, returncode or codes.EXIT_FAILED, {}, str(exc)
    if result is None:
        error = "the step printed no result line on stdout"
        if returncode < 0:
            error = f"the step was killed by signal {signal.Signals(-returncode).name}"
        return Status.FAILED, returncode if returncode > 0 else codes.EXIT_FAILED, {}, error
    status, expected, reported = protocol.verdict(result)
    if returncode != expected:
        error = (
            f"the step reported {status!r} but exited with code {returncode} (expected {expected})"
        )
        return (
            Status.FAILED,
            returncode if returncode > 0 else codes.EXIT_FAILED,
            result,
            error,
        )
    return status, expected, result, reported


class _Forwarder:
    """SIGINT and SIGTERM to the step's process group, including any that came early.

    Its handlers are installed *before* the step is started: a signal that lands while the
    child is being created is recorded, and sent to it as soon as it exists
    (:meth:`started`); later ones are sent at once.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.seen: list[int] = []
        self._early: list[int] = []

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        self.seen.append(signum)
        if self.pid is None:
            self._early.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def started(self, pid: int) -> None:
        """The step runs as ``pid``: forward what arrived before it existed."""
        self.pid = pid
        early, self._early = self._early, []
        for signum in early[:1]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signum)

    def installed(self) -> contextlib.AbstractContextManager[None]:
        """Hold the handlers (on the main thread only; elsewhere signals are not ours)."""
        return handling(self.handler)


def _count(value: object) -> bool:
    """A finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value >= 0


def parse_progress(line: str) -> dict[str, Any] | None:
    """The progress a stderr line reports, ``{"done", "total", "unit"}``; None if it is none.

    A line that only looks like one (bad JSON, other keys, a negative count, an unknown
    unit) is an ordinary stderr line.
    """
    text = line.strip()
    if not (text.startswith("{") and '"progress"' in text):
        return None
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or list(doc) != ["progress"]:
        return None
    body = doc["progress"]
    if not isinstance(body, dict) or set(body) != {"done", "total", "unit"}:
        return None
    done, total, unit = body["done"], body["total"], body["unit"]
    if not _count(done) or not (total is None or _count(total)) or unit not in PROGRESS_UNITS:
        return None
    return {"done": done, "total": total, "unit": unit}


def _pump(stream: IO[str], sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line)
    stream.close()


def _watchdog(
    proc: subprocess.Popen[str],
    finished: threading.Event,
    timeout: float,
    grace: float,
    stopped: list[bool],
) -> None:
    """After ``timeout`` s, SIGTERM the step's process group; SIGKILL it ``grace`` s later."""
    if finished.wait(timeout):
        return
    stopped.append(True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    if finished.wait(grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_command(
    cmd: Sequence[str],
    *,
    task: str,
    env: str,
    timeout: float | None,
    grace: float = DEFAULT_GRACE,
    environ: Mapping[str, str] | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    cwd: Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Run ``cmd`` as a step: timeout, signal forwarding, result classification.

    ``on_stdout``/``on_stderr`` receive each line as it arrives (echo it, log it...);
    the last stdout line and a tail of stderr are kept either way. ``on_progress``
    receives each progress line of stderr, parsed (:func:`parse_progress`); such lines
    never reach the tail or ``on_stderr``. An exception in ``on_progress`` is ignored:
    the step's output must keep flowing.
    """
    last_line = [""]
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    if on_progress is not None:
        environ = {**(os.environ if environ is None else environ), PROGRESS_VAR: "1"}

    def out(line: str) -> None:
        if line.strip():
            last_line[0] = line
        if on_stdout:
            on_stdout(line)

    def err(line: str) -> None:
        progress = parse_progress(line)
        if progress is not None:
            if on_progress is not None:
                with contextlib.suppress(Exception):
                    on_progress(progress)
            return
        tail.append(line)
        if on_stderr:
            on_stderr(line)

    started = time.monotonic()
    forward = _Forwarder()
    with forward.installed():
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=dict(environ) if environ is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(
                task=task,
                env=env,
                status=Status.FAILED,
                exit_code=codes.EXIT_FAILED,
                returncode=None,
                duration=0.0,
                error=f"cannot start {cmd[0]}: {exc.strerror}",
                command=tuple(cmd),
            )
        forward.started(proc.pid)
        if on_start:
            on_start(proc.pid)  # the step's process group: a batch runner stops it on Ctrl-C
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        finished = threading.Event()
        stopped: list[bool] = []
        if timeout:
            watchdog = threading.Thread(
                target=_watchdog, args=(proc, finished, timeout, grace, stopped), daemon=True
            )
            watchdog.start()
        # A blocking wait returns the moment the step exits; Popen.wait(timeout=...) would
        # poll with sleeps of up to 50 ms and add that to every launch.
        proc.wait()
    signals = forward.seen
    finished.set()
    timed_out = bool(stopped)
    for pump in pumps:
        pump.join()
    duration = time.monotonic() - started
    returncode = proc.returncode
    stderr_tail = "".join(tail)

    ended = functools.partial(
        Outcome,
        task=task,
        env=env,
        returncode=returncode,
        duration=duration,
        stderr_tail=stderr_tail,
        command=tuple(cmd),
    )
    if timed_out:
        killed = " then SIGKILL" if returncode == -signal.SIGKILL else ""
        return ended(
            status=Status.TIMED_OUT,
            exit_code=codes.EXIT_TIMEOUT,
            error=f"timed out after {timeout:g} s; stopped with SIGTERM{killed}",
        )
    status, exit_code, result, error = classify(returncode, last_line[0])
    if signals and status not in (Status.COMPLETED, Status.SKIPPED):
        sig = signal.Signals(signals[0])
        return ended(
            status=Status.INTERRUPTED,
            exit_code=codes.exit_for_signal(sig),
            result=result,
            error=f"interrupted by {sig.name}",
        )
    return ended(status=status, exit_code=exit_code, result=result, error=error)


def run(
    manifest: Manifest,
    task: Task,
    args: Sequence[str] = (),
    *,
    timeout: float | None = None,
    grace: float = DEFAULT_GRACE,
    env_vars: Mapping[str, str] | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    env: Venv | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Run ``task`` in its env with the manifest's timeout (or ``timeout``).

    Raises :class:`~signal4.envs.layout.EnvError` when the env is not ready to use.
    """
    env = env or spec(manifest, task.env)
    require_ready(manifest, env)
    with in_use(manifest, [task.env]):  # inv clean leaves the env alone while it runs
        return run_command(
            command(manifest, task, args, env),
            task=task.name,
            env=task.env,
            timeout=task.timeout if timeout is None else timeout,
            grace=grace,
            environ=child_environ(manifest, env_vars),
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_start=on_start,
            on_progress=on_progress,
        )


def echo_stdout(line: str) -> None:
    """Pass a step's stdout line through to ours."""
    sys.stdout.write(line)
    sys.stdout.flush()


def echo_stderr(line: str) -> None:
    """Pass a step's stderr line through to ours."""
    sys.stderr.write(line)
    sys.stderr.flush()
