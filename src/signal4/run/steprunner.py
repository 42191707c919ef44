"""What every processing step shares: its CLI, its result line, its ready probe.

A step module builds one :class:`Step` and ends with::

    if __name__ == "__main__":
        raise SystemExit(STEP.main())

``python -m signal4.processing_steps.<name> --help`` must stay fast, so a step imports
its heavy libraries inside ``execute`` (and lists them in ``ready``), never at module top.

* ``execute(options, ctx)`` is the one implementation of the step: options in, result
  dict out. The CLI and the worker both call it (:meth:`Step.call`).
* Raise :class:`InvalidInput` for bad input (exit 2) and :class:`StepFailure` for a
  failure with a known cause (exit 1); anything else is a failure with its traceback
  on stderr.
* ``--ready`` imports exactly what a real run imports (``ready()``), prints one line
  and exits: ``inv measure`` times it.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from signal4.run import protocol


class InvalidInput(Exception):
    """The step's input is unusable; the message says why (exit 2)."""


class StepFailure(Exception):
    """The step failed for a known reason (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {message}")


@dataclass
class Context:
    """What a step gets besides its options: settings, content store, state DB (lazily)."""

    _settings: Any = None
    _store: Any = None
    _db: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from signal4.content import settings

            self._settings = settings.get()
        return self._settings

    @property
    def store(self) -> Any:
        if self._store is None:
            from signal4.content.store import ContentStore

            self._store = ContentStore(self.settings.content_root)
        return self._store

    @property
    def db(self) -> Any:
        if self._db is None:
            from signal4.content.state import StateDB

            self._db = StateDB(self.settings.db_url)
        return self._db

    def is_done(self, content_id: str, stage: str, output: str) -> bool:
        """Whether ``stage`` is recorded done for the item and its ``output`` file is kept.

        The one "is this stage done" test of the steps (a compressed output counts).
        """
        from signal4.content.store import kept

        return self.db.is_done(content_id, stage) and kept(self.store.path(content_id, output))


@dataclass
class Step:
    """One processing step."""

    name: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    execute: Callable[[argparse.Namespace, Context], dict[str, Any]]
    ready: Callable[[], None]
    #: The content stage this step records in the state DB (None if it records none itself).
    stage: str | None = None
    needs_content: bool = True
    epilog: str = field(default="")

    def parser(self) -> argparse.ArgumentParser:
        """The step's argument parser."""
        parser = _Parser(
            prog=f"python -m signal4.processing_steps.{self.name}",
            description=self.description,
            epilog=self.epilog
            or "The last stdout line is one JSON object with a 'status'. "
            "Exit codes: 0 completed/skipped, 1 failed, 2 invalid input.",
        )
        parser.add_argument(
            "--content",
            required=self.needs_content,
            metavar="ID",
            help="the content item to work on",
        )
        parser.add_argument(
            "--rewrite", action="store_true", help="redo the work even if it is already done"
        )
        parser.add_argument(
            "--ready",
            action="store_true",
            help="import what a real run imports, print one line and exit (start-up probe)",
        )
        self.add_arguments(parser)
        return parser

    def call(
        self,
        options: argparse.Namespace,
        ctx: Context | None = None,
        *,
        reraise: tuple[type[BaseException], ...] = (),
    ) -> dict[str, Any]:
        """Run the step and return its result dict (never raises for step errors).

        ``reraise`` names exceptions that are not the step's own (a worker's soft time
        limit, say): they propagate to the caller instead of becoming a ``failed`` result.
        """
        ctx = ctx or Context()
        started = time.monotonic()
        try:
            result = self.execute(options, ctx)
        except reraise:
            raise
        except InvalidInput as exc:
            result = {"status": protocol.INVALID_INPUT, "error": str(exc)}
            self._record(ctx, options, "invalid_input", str(exc))
        except StepFailure as exc:
            result = {"status": protocol.FAILED, "error": str(exc)}
            self._record(ctx, options, "failed", str(exc))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            message = f"{type(exc).__name__}: {exc}"
            result = {"status": protocol.FAILED, "error": message}
            self._record(ctx, options, "failed", message)
        result.setdefault("step", self.name)
        if getattr(options, "content", None):
            result.setdefault("content", options.content)
        result["seconds"] = round(time.monotonic() - started, 3)
        return result

    def _record(self, ctx: Context, options: argparse.Namespace, status: str, error: str) -> None:
        """Record a failure against the content item, if there is one to record it on."""
        content = getattr(options, "content", None)
        if not (self.stage and content):
            return
        try:
            if ctx.db.get(content) is not None:
                ctx.db.mark(content, self.stage, status, error=error)
        except Exception as exc:  # the step's own error matters more than this one
            print(f"warning: could not record the error: {exc}", file=sys.stderr)

    def run_argv(
        self,
        argv: Sequence[str],
        ctx: Context | None = None,
        *,
        reraise: tuple[type[BaseException], ...] = (),
    ) -> dict[str, Any]:
        """argv -> result: parse, take the content's lock, run; the CLI and the worker share it.

        A parse error is an ``invalid_input`` result, never an exception.
        """
        try:
            options = self.parser().parse_args(list(argv))
        except InvalidInput as exc:
            return {"status": protocol.INVALID_INPUT, "step": self.name, "error": str(exc)}
        from signal4.content.guard import content_guard

        with content_guard(getattr(options, "content", None)) as swept:
            if swept:
                names = ", ".join(p.name for p in swept)
                print(f"{self.name}: removed what a killed run left: {names}", file=sys.stderr)
            return self.call(options, ctx, reraise=reraise)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The CLI: parse, run, print the result line last, return the exit code."""
        argv = list(sys.argv[1:] if argv is None else argv)
        if "--ready" in argv:
            self.ready()
            ready = {
                "status": protocol.COMPLETED,
                "step": self.name,
                "ready": True,
                "python": sys.executable,
            }
            print(protocol.encode(ready))
            return protocol.EXIT_OK
        result = self.run_argv(argv)
        if result["status"] in (protocol.INVALID_INPUT, protocol.FAILED):
            print(f"{self.name}: {result['status']}: {result.get('error')}", file=sys.stderr)
        sys.stdout.flush()
        print(protocol.encode(result))
        return protocol.EXIT_CODES[result["status"]]
