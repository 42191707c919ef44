"""The body of ``inv run``: one step in its env through the dispatcher."""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from signal4.commands.envs import sync
from signal4.envs import venv as envs
from signal4.envs.manifest import load
from signal4.errors import UsageError
from signal4.run import dispatch, protocol


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
        if result.get("help") is True and result.get("status") == protocol.COMPLETED:
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
    if sync_first and envs.status(m, envs.spec(m, t.env)) is not envs.State.UP_TO_DATE:
        code = sync([t.env])
        if code:
            return code
    state = _State(args, t.stage)
    outcome = dispatch.run(
        m,
        t,
        args,
        timeout=timeout,
        on_stdout=_echo_stdout,
        on_stderr=dispatch.echo_stderr,
    )
    if outcome.status == protocol.TIMED_OUT or (outcome.error and not outcome.result):
        print(f"{task}: {outcome.status}: {outcome.error}", file=sys.stderr)
    state.record(outcome)
    return outcome.exit_code


class _State:
    """The state DB's side of one ``inv run``: the step never opens the DB, this does.

    Before the step: an item stored before steps described themselves gets its
    ``item.json`` (from the DB). After it: the result's records are written, and a failure
    the step could not report (a timeout, a kill) is recorded from the outcome. A DB that
    cannot be read or written is a warning (the step's work is done either way); a
    successful run without records never opens the DB at all.
    """

    def __init__(self, args: Sequence[str], stage: str | None) -> None:
        from signal4.content import settings
        from signal4.run import record

        self.stage = stage
        self.content = content = record.content_arg(args)
        try:
            self.conf: Any = settings.get()
        except settings.SettingsError:
            self.conf = None  # the step says what is wrong with the setting
            return
        folder = self.conf.content_root / content if content else None
        if content and folder is not None and folder.is_dir():
            try:
                record.describe_from_db(
                    record.state_db(self.conf.db_url), self.conf.content_root, content
                )
            except Exception as exc:
                print(
                    f"warning: could not read {content} from the state DB: {exc}", file=sys.stderr
                )

    def record(self, outcome: dispatch.Outcome) -> None:
        """Write the step's records; a failure it did not report (a timeout), from here."""
        failed = not outcome.ok and self.content is not None
        if self.conf is None or not (outcome.result.get("records") or failed):
            return
        from signal4.run import record

        try:
            db = record.state_db(self.conf.db_url)
            record.apply(db, outcome.result, content_root=self.conf.content_root)
            if failed and self.stage and self.content:
                record.unreported(
                    db,
                    outcome.result,
                    self.content,
                    self.stage,
                    outcome.status,
                    outcome.error or "",
                )
        except Exception as exc:
            print(f"warning: the step's state was not recorded: {exc}", file=sys.stderr)
