"""The body of ``inv run``: one step in its env through the dispatcher."""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Sequence

from signal4.codes import Status
from signal4.commands.envs import sync
from signal4.envs import layout, venv
from signal4.envs.manifest import load
from signal4.errors import UsageError
from signal4.run import dispatch
from signal4.stepkit import protocol


def seconds(text: str) -> float | None:
    """A ``--timeout`` value: None when not given, else a finite number of seconds >= 0."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--timeout {text!r}: give a number of seconds >= 0 (0: no limit)")
    return value


def passthrough_args(argv: Sequence[str], remainder: str) -> list[str]:
    """Return the arguments after ``--``, quoting intact (invoke only keeps a joined string)."""
    argv = list(argv)
    if "--" in argv:
        return argv[argv.index("--") + 1 :]
    return shlex.split(remainder)


def _echo_stdout(line: str) -> None:
    """Echo a step's stdout line, except the result line that closes its ``--help`` text.

    A step asked for help prints the help, then ``{"status": "completed", "help": true}``
    for the protocol's sake; someone reading the help has no use for that line.
    """
    if line.startswith("{") and '"help"' in line:
        try:
            result = protocol.parse_line(line)
        except protocol.ProtocolError:
            result = {}
        if result.get("help") is True and result.get("status") == Status.COMPLETED:
            return
    dispatch.echo_stdout(line)


def run(
    task: str, args: Sequence[str], *, sync_first: bool = False, timeout: float | None = None
) -> int:
    """Run ``task`` in its env via the dispatcher, echoing its output; return its exit code.

    ``-- --help`` shows the step's help and exits 0 (the step reports help as completed).
    """
    m = load()
    t = m.task(task)
    if sync_first and venv.status(m, layout.spec(m, t.env)) is not venv.State.UP_TO_DATE:
        code = sync([t.env])
        if code:
            return code
    from signal4.content import settings
    from signal4.run.record import StageRecorder, content_arg

    conf = settings.for_project(m.root)
    recorder = StageRecorder(conf.db_url, conf.content_root)
    ticket = recorder.before(t, content_arg(args))
    outcome = dispatch.run(
        m,
        t,
        args,
        timeout=timeout,
        on_stdout=_echo_stdout,
        on_stderr=dispatch.echo_stderr,
    )
    if outcome.status == Status.TIMED_OUT or (outcome.error and not outcome.result):
        print(f"{task}: {outcome.status}: {outcome.error}", file=sys.stderr)
    # the step never opens the state DB: its records, or what we saw of its end, go in here
    for note in recorder.after(ticket, outcome):
        print(f"warning: {note}", file=sys.stderr)
    return outcome.exit_code
