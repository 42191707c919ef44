"""Invoke glue for ``tasks.py``: the one place a user mistake becomes an exit, and the
parse fixes that make every usage mistake exit 2.

Invoke's own way to change how it parses is a ``Program`` subclass behind a console
script. Ours would have to be called ``inv`` (the command everyone types), and a second
``inv`` script in the same venv fights Invoke's own over ``.venv/bin/inv``; so
:func:`install` wraps the one parse step of Invoke's program instead, once, when
``tasks.py`` is loaded (Invoke parses a task's flags after it has loaded that file).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from signal4.codes import EXIT_INTERRUPTED, EXIT_USAGE, exit_for_signal
from signal4.errors import Interrupted, Signal4Error

#: What asks a task for its help, where Invoke took it for the task's first argument.
HELP_FLAGS = ("--help", "-h")
#: The attribute of a task body whose free words go to one of its flags (:func:`words`).
WORDS_ATTR = "signal4_words"
F = TypeVar("F", bound=Callable[..., Any])


def words(flag: str) -> Callable[[F], F]:
    """Mark a task body whose free words (``inv voices enroll NAME``) go, in order, to
    its iterable flag ``flag``: Invoke's own positional arguments are all required."""

    def mark(fn: F) -> F:
        setattr(fn, WORDS_ATTR, flag)
        return fn

    return mark


def fold_words(program: Program) -> None:
    """Rewrite the free words after a :func:`words` task as that flag (``NAME`` becomes
    ``--words=NAME``), leaving flags and their values as they are."""
    core, collection = getattr(program, "core", None), getattr(program, "collection", None)
    tokens = list(getattr(core, "unparsed", None) or [])
    if not tokens or collection is None or tokens[0] not in collection.task_names:
        return
    found = collection[tokens[0]]
    flag = getattr(found.body, WORDS_ATTR, None)
    if flag is None:
        return
    helps = dict(found.help)  # get_arguments() pops the help texts it uses
    arguments = found.get_arguments()
    found.help = helps
    valued = {
        ("--" if len(n) > 1 else "-") + n.replace("_", "-")
        for arg in arguments
        if arg.takes_value
        for n in arg.names
    }
    out, rest = tokens[:1], iter(tokens[1:])
    for token in rest:
        if token == "--":
            out += [token, *rest]
        elif token.startswith("-"):
            out.append(token)
            if token in valued:
                out.append(next(rest, ""))
        else:
            out.append(f"--{flag}={token}")
    program.core.unparsed = out


def call(fn: Callable[[], int]) -> None:
    """Run a task body; a user mistake becomes a one-line message and its exit code."""
    try:
        code = fn()
    except Interrupted as exc:
        raise Exit(str(exc), code=exc.code) from None
    except Signal4Error as exc:
        raise Exit(f"error: {exc}", code=exc.code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=EXIT_INTERRUPTED) from None
    if code:
        raise Exit(code=code)


def parse_tasks(program: Program, parse: Callable[[Program], None]) -> None:
    """Invoke's ``parse_tasks``, with its parse errors (an unknown flag, a bad value) as
    exit 2, like ours (it ends them with 1, or a traceback for a value its type cannot
    take), and ``inv run --help`` as the task's help (it took the flag for the task's
    argument: ``unknown task '--help'``)."""
    try:
        fold_words(program)
        parse(program)
    except (ParseError, ValueError) as exc:
        raise Exit(f"error: {exc}", code=EXIT_USAGE) from None
    for context in program.tasks:
        if any(arg.value in HELP_FLAGS for arg in context.positional_args):
            program.args.help.value = context.name  # Invoke prints it, then exits 0


def terminated(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM before a task installs its own handlers: one line and exit 143, as Ctrl-C
    says "interrupted" (the default action would end ``inv`` without a word)."""
    raise Exit(f"interrupted by {signal.Signals(signum).name}", code=exit_for_signal(signum))


def install() -> None:
    """Wrap Invoke's parse step with :func:`parse_tasks`, and take SIGTERM (once)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
    original = Program.parse_tasks
    if getattr(original, "signal4", False):
        return

    def wrapped(self: Program) -> None:
        parse_tasks(self, original)

    wrapped.signal4 = True  # type: ignore[attr-defined]
    Program.parse_tasks = wrapped  # type: ignore[method-assign]
