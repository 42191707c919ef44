"""The Invoke glue: the one place a user mistake becomes an exit, and the parse fixes."""

from __future__ import annotations

import signal
from types import SimpleNamespace
from typing import Any

import pytest

from signal4.errors import Interrupted, Signal4Error, UsageError

# Invoke and the command layer live in the dev env: imported in the tests, so that a step
# env's session can collect this file.


def _exit(fn: Any) -> Any:
    from invoke.exceptions import Exit

    from signal4.commands import cli

    with pytest.raises(Exit) as info:
        cli.call(fn)
    return info.value


def test_a_task_body_ends_in_one_line_and_its_exit_code() -> None:
    from signal4.commands import cli

    assert cli.call(lambda: 0) is None
    assert _exit(lambda: 1).code == 1
    bad = _exit(lambda: (_ for _ in ()).throw(UsageError("unknown env 'x'")))
    assert (bad.code, bad.message) == (2, "error: unknown env 'x'")
    three = _exit(lambda: (_ for _ in ()).throw(Signal4Error("no broker", code=3)))
    assert three.code == 3
    stopped = _exit(lambda: (_ for _ in ()).throw(Interrupted(signal.SIGTERM)))
    assert (stopped.code, stopped.message) == (143, "interrupted by SIGTERM")
    ctrl_c = _exit(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert (ctrl_c.code, ctrl_c.message) == (130, "interrupted")


def _program(*values: str) -> Any:
    context = SimpleNamespace(
        name="run", positional_args=[SimpleNamespace(value=v) for v in values]
    )
    return SimpleNamespace(tasks=[context], args=SimpleNamespace(help=SimpleNamespace(value=False)))


def test_invoke_parse_errors_exit_2_and_a_help_flag_taken_for_an_argument_is_help() -> None:
    from invoke.exceptions import Exit, ParseError

    from signal4.commands import cli

    def refuse(_program: Any) -> None:
        raise ParseError("No idea what '--bogus' is!")

    with pytest.raises(Exit) as info:
        cli.parse_tasks(_program(), refuse)
    assert (info.value.code, info.value.message) == (2, "error: No idea what '--bogus' is!")
    for flag in cli.HELP_FLAGS:
        program = _program(flag)
        cli.parse_tasks(program, lambda _p: None)
        assert program.args.help.value == "run"
    program = _program("convert")
    cli.parse_tasks(program, lambda _p: None)
    assert program.args.help.value is False


def test_install_wraps_invokes_parse_step_once() -> None:
    from invoke.program import Program

    from signal4.commands import cli

    cli.install()
    wrapped = Program.parse_tasks
    cli.install()
    assert Program.parse_tasks is wrapped and getattr(wrapped, "signal4", False)
