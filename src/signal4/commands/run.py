"""The body of ``inv run``: one step in its env through the dispatcher."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from signal4.commands.envs import sync
from signal4.envs import venv as envs
from signal4.envs.manifest import load
from signal4.run import dispatch, protocol


def passthrough_args(argv: Sequence[str], remainder: str) -> list[str]:
    """Return the arguments after ``--``, quoting intact (invoke only keeps a joined string)."""
    argv = list(argv)
    if "--" in argv:
        return argv[argv.index("--") + 1 :]
    return shlex.split(remainder)


def run(
    task: str, args: Sequence[str], *, sync_first: bool = False, timeout: float | None = None
) -> int:
    """Run ``task`` in its env via the dispatcher, echoing its output; return its exit code."""
    m = load()
    t = m.task(task)
    if sync_first and envs.status(m, envs.spec(m, t.env)) is not envs.State.UP_TO_DATE:
        code = sync([t.env])
        if code:
            return code
    outcome = dispatch.run(
        m,
        t,
        args,
        timeout=timeout,
        on_stdout=dispatch.echo_stdout,
        on_stderr=dispatch.echo_stderr,
    )
    if outcome.status == protocol.TIMED_OUT or (outcome.error and not outcome.result):
        print(f"{task}: {outcome.status}: {outcome.error}", file=sys.stderr)
    return outcome.exit_code
