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
* ``--help`` prints the help on stdout, then a ``completed`` result line with
  ``"help": true``: help is not a failure, and the dispatcher still finds its JSON line.
* Numeric options take a ``type=`` from :func:`number`: ``nan``, ``inf`` and values out of
  range are usage errors (``invalid_input``, exit 2) before ``execute`` runs.
* A full disk (ENOSPC, from Python or from ffmpeg) is ``failed`` with a message naming
  the file system, never blamed on the input; a ``SIGNAL4_*`` setting out of range is
  ``invalid_input`` naming the setting.
* A step never opens the state DB: its result's ``records`` say what changed (an item
  registered, the stage done or failed, with ``outputs_kept`` for a failure), and the
  one who ran it writes them (:func:`signal4.run.record.apply`). A completed or skipped
  run records its stage done, a failure its status and error, unless the step recorded
  the stage itself (:meth:`Context.mark`).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from signal4 import codes
from signal4.codes import StageState, Status
from signal4.stepkit import protocol

N = TypeVar("N", int, float)
#: errno values that mean "the disk is full" (out of blocks, or of the user's quota).
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class InvalidInput(Exception):
    """The step's input is unusable; the message says why (exit 2)."""


class StepFailure(Exception):
    """The step failed for a known reason (exit 1)."""


class _HelpRequested(Exception):
    """``--help`` was given: the parser's formatted help, instead of an exit."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _HelpAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        raise _HelpRequested(parser.format_help())


class _Parser(argparse.ArgumentParser):
    """An argument parser that never exits: usage errors are InvalidInput, --help a result."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(add_help=False, **kwargs)
        self.add_argument("-h", "--help", action=_HelpAction, help="show this help and exit")

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {(message or '').strip() or f'exit {status}'}")


def number(
    kind: Callable[[str], N],
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Callable[[str], N]:
    """An argparse ``type=`` for a finite number within bounds (``nan`` and ``inf`` never pass).

    ``kind`` is ``int`` or ``float``; a bad value is a usage error naming the option.
    """
    what = "a whole number" if kind is int else "a finite number"
    bounds = [
        f"{word} {limit:g}"
        for word, limit in (("at least", ge), ("above", gt), ("at most", le))
        if limit is not None
    ]
    wanted = what + (f" ({', '.join(bounds)})" if bounds else "")

    def convert(text: str) -> N:
        try:
            value = kind(text.strip())
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}") from None
        if (
            # an int is always finite (and math.isfinite cannot take a huge one)
            (not isinstance(value, int) and not math.isfinite(value))
            or (ge is not None and value < ge)
            or (gt is not None and value <= gt)
            or (le is not None and value > le)
        ):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
        return value

    convert.__name__ = what.removeprefix("a ")
    return convert


def cpu_budget(environ: Mapping[str, str] | None = None) -> int:
    """How many threads a step's own pools may use (:func:`signal4.cpu.budget`); a bad
    ``SIGNAL4_THREADS`` is InvalidInput naming it."""
    from signal4 import cpu

    try:
        return cpu.budget(environ)
    except cpu.BadThreads as exc:
        raise InvalidInput(str(exc)) from None


def content_id_arg(text: str) -> str:
    """An argparse ``type=`` for a content id: a safe, single folder name."""
    from signal4.content.store import InvalidContentId, check_id

    try:
        return check_id(text)
    except InvalidContentId as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def keeps(name: str) -> Callable[[Context, str], bool]:
    """An ``outputs_kept`` test: the stage's output ``name`` is kept (plain or gzipped)."""

    def outputs_kept(ctx: Context, content: str) -> bool:
        return ctx.is_done(content, name)

    return outputs_kept


def disk_full(exc: BaseException) -> OSError | None:
    """The "no space left" error behind ``exc`` (its cause chain, a DB driver's), or None."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return e
        if "database or disk is full" in str(e):  # SQLite's SQLITE_FULL
            return OSError(errno.ENOSPC, "database or disk is full")
        orig = getattr(e, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
        todo.extend([e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None])
    return None


def _mount_point(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


@dataclass
class Context:
    """What a step gets besides its options: settings, content store, and what it records.

    A step never opens the state DB. What it changes there (an item registered, a stage
    done or failed) it records here (:meth:`register`, :meth:`mark`); :meth:`Step.call`
    puts those ``records`` in its result, and whoever ran the step (``inv run``, the
    pipeline, a warm worker) writes them to the DB (:func:`signal4.run.record.apply`).
    What a step needs to know about an item comes from the content folder: its
    ``item.json`` (:meth:`item`) and the outputs kept there (:meth:`is_done`).
    """

    _settings: Any = None
    _store: Any = None
    #: The state changes of this run, in order, for the runner to record.
    records: list[dict[str, Any]] = field(default_factory=list)
    _items: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def settings(self) -> Any:
        """This process's settings; a setting out of range is InvalidInput naming it."""
        if self._settings is None:
            from signal4.content import settings

            try:
                self._settings = settings.get()
            except settings.SettingsError as exc:
                raise InvalidInput(str(exc)) from None
        return self._settings

    @property
    def store(self) -> Any:
        if self._store is None:
            from signal4.content.store import ContentStore

            self._store = ContentStore(self.settings.content_root)
        return self._store

    def item(self, content_id: str) -> dict[str, Any] | None:
        """The item's description (its folder's ``item.json``), or None if it has none.

        One that cannot be read, or is no JSON object, is :class:`InvalidInput` saying to
        delete it: the runner writes it again from the state DB before the next run (or
        the step that registers the item does).
        """
        if content_id in self._items:
            return self._items[content_id]
        import json

        from signal4.content.store import ITEM_FILE

        path = self.store.path(content_id, ITEM_FILE)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            data = exc
        if not isinstance(data, dict):
            why = data if isinstance(data, Exception) else "not a JSON object"
            raise InvalidInput(
                f"content {content_id!r}: {path} is unreadable ({why}); delete it and run "
                "again (the runner writes it again from the state DB, or the step that "
                "registers the item does)"
            )
        self._items[content_id] = data
        return data

    def register(
        self,
        content_id: str,
        *,
        kind: str | None = None,
        source_url: str | None = None,
        title: str | None = None,
        duration: float | None = None,
        meta: dict[str, Any] | None = None,
        write: bool = True,
    ) -> None:
        """Describe the item (the fields given replace the old ones; ``meta`` as a whole).

        The description goes into the records, for the runner to register the item in the
        state DB, and into its folder's ``item.json`` where the folder exists (``write=False``
        before the work: a failed run then leaves the folder as it found it; the next
        ``register`` writes what both said).
        """
        given = {
            key: value
            for key, value in (
                ("kind", kind),
                ("source_url", source_url),
                ("title", title),
                ("duration", duration),
                ("meta", meta),
            )
            if value is not None
        }
        item = {**(self.item(content_id) or {}), **given}
        self._items[content_id] = item
        folder = self.store.folder(content_id)
        if write and folder.is_dir():
            from signal4.content.store import ITEM_FILE

            self.store.write_json(folder / ITEM_FILE, item)
        if item.get("kind"):
            given.setdefault("kind", item["kind"])
        self.records.append({"content": content_id, "register": given})

    def mark(
        self,
        content_id: str,
        stage: str,
        status: str,
        *,
        info: dict[str, Any] | None = None,
        error: str | None = None,
        outputs_kept: bool = False,
        skipped: bool = False,
    ) -> None:
        """Record ``stage``'s new state for the runner (``done``, or a failure's status).

        For a failure, ``outputs_kept`` says whether the stage's earlier outputs are still
        on disk: a stage recorded done then stays done (see
        :func:`signal4.run.record.record_failure`). ``skipped``: done already, nothing new
        made (the runner keeps what it knows of the stage).
        """
        record: dict[str, Any] = {"content": content_id, "stage": stage, "status": status}
        if skipped:
            record["skipped"] = True
        if info is not None:
            record["info"] = info
        if error is not None:
            record["error"] = error
            record["outputs_kept"] = bool(outputs_kept)
        self.records.append(record)

    def marked(self, content_id: str, stage: str) -> bool:
        """Whether this run has recorded a state for ``stage`` of the item already."""
        return any(r.get("content") == content_id and r.get("stage") == stage for r in self.records)

    def is_done(self, content_id: str, output: str) -> bool:
        """Whether the item's ``output`` file is kept (a compressed one counts): the one
        "is this stage done" test of the steps. Outputs are written atomically, last."""
        from signal4.content.store import kept

        return kept(self.store.path(content_id, output))


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
    #: Whether the stage's outputs for a content item are on disk (see :func:`keeps`);
    #: None: the step cannot tell, so a failure always replaces the stage's state.
    outputs_kept: Callable[[Context, str], bool] | None = None
    #: The parameters that shape the output (a model's name and file hash, chunk length,
    #: speaker count...), from the options and settings: JSON-able, cheap, no heavy import.
    #: A completed result carries them; ``--params`` prints them without running the step.
    params: Callable[[argparse.Namespace, Context], dict[str, Any]] | None = None

    def parser(self, *, probe: bool = False) -> argparse.ArgumentParser:
        """The step's argument parser (``probe``: for ``--params``, no content needed)."""
        parser = _Parser(
            prog=f"python -m signal4.processing_steps.{self.name}",
            description=self.description,
            epilog=self.epilog
            or "The last stdout line is one JSON object with a 'status'. "
            "Exit codes: 0 completed/skipped, 1 failed, 2 invalid input.",
        )
        parser.add_argument(
            "--content",
            type=content_id_arg,
            required=self.needs_content and not probe,
            metavar="ID",
            help="the content item to work on",
        )
        parser.add_argument(
            "--params",
            action="store_true",
            help="print the parameters that shape this step's output as a result line, "
            "and exit without running it (the pipeline's rerun check)",
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
        started, first = time.monotonic(), len(ctx.records)
        try:
            result = self.execute(options, ctx)
        except reraise:
            raise
        except InvalidInput as exc:
            result = {"status": Status.INVALID_INPUT, "error": str(exc)}
            self._record(ctx, options, Status.INVALID_INPUT, str(exc))
        except StepFailure as exc:
            result = {"status": Status.FAILED, "error": str(exc)}
            self._record(ctx, options, Status.FAILED, str(exc))
        except Exception as exc:
            result = self._unexpected(ctx, options, exc)
        result.setdefault("step", self.name)
        if getattr(options, "content", None):
            result.setdefault("content", options.content)
        status, content = result.get("status"), result.get("content")
        if status == Status.COMPLETED and not result.get("dry_run"):
            self._new_outputs(options, ctx, result)
        if self.stage and content and not ctx.marked(content, self.stage):
            # the stage's state, unless the step recorded it itself (with its info)
            if status == Status.COMPLETED and not result.get("dry_run"):
                ctx.mark(content, self.stage, StageState.DONE)
            elif status == Status.SKIPPED:
                ctx.mark(content, self.stage, StageState.DONE, skipped=True)
        if len(ctx.records) > first:
            result["records"] = ctx.records[first:]
        result["seconds"] = round(time.monotonic() - started, 3)
        return result

    def _new_outputs(
        self, options: argparse.Namespace, ctx: Context, result: dict[str, Any]
    ) -> None:
        """After a completed run: report the params; the storage manifest's provenance of
        the stage is dropped (as the DB's was), until the runner records the new one."""
        if self.params is not None:
            try:
                result["params"] = self.params(options, ctx)
            except Exception as exc:  # the work is done; only its record lacks the params
                print(f"warning: could not describe the parameters: {exc}", file=sys.stderr)
        content = result.get("content")
        if self.stage and content:
            from signal4.content.store import update_provenance

            try:
                update_provenance(ctx.store.folder(content), forget=self.stage)
            except (OSError, ValueError) as exc:
                print(f"warning: could not update the storage manifest: {exc}", file=sys.stderr)

    def describe_params(self, options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        """The ``--params`` result: what a run with ``options`` would be shaped by."""
        try:
            params = self.params(options, ctx) if self.params is not None else {}
        except InvalidInput as exc:
            return {"status": Status.INVALID_INPUT, "step": self.name, "error": str(exc)}
        return {"status": Status.COMPLETED, "step": self.name, "params": params}

    def _unexpected(
        self, ctx: Context, options: argparse.Namespace, exc: Exception
    ) -> dict[str, Any]:
        """The result of an exception that is not the step's InvalidInput or StepFailure.

        A content path that would leave its folder is bad input; a full disk a failure
        naming the disk (no traceback: nothing to debug); anything else a failure with
        its traceback on stderr.
        """
        from signal4.content.store import InvalidContentId

        status, full = Status.FAILED, disk_full(exc)
        if isinstance(exc, InvalidContentId):
            status, message = Status.INVALID_INPUT, str(exc)
        elif full is not None:
            message = self._no_space(ctx, options, full)
        else:
            traceback.print_exc(file=sys.stderr)
            message = f"{type(exc).__name__}: {exc}"
        self._record(ctx, options, status, message)
        return {"status": status, "error": message}

    def _no_space(self, ctx: Context, options: argparse.Namespace, exc: OSError) -> str:
        """The one-line message for a full disk: which file, which file system."""
        from signal4.content.store import TMP_PREFIX

        if exc.filename:
            path = Path(exc.filename)
            if path.name.startswith(TMP_PREFIX):  # a temporary name tells nobody anything
                path = path.parent
        else:
            try:
                root = ctx.settings.content_root
            except InvalidInput:
                root = Path.cwd()
            content = getattr(options, "content", None)
            path = root / content if content else root
        return (
            f"no space left on device writing {path}: the file system at {_mount_point(path)} "
            f"is full; free space there (or move SIGNAL4_DATA_DIR or SIGNAL4_CONTENT_DIR to "
            f"another disk) and run "
            f"{self.name} again"
        )

    def _record(self, ctx: Context, options: argparse.Namespace, status: str, error: str) -> None:
        """Record a failure against the content item, if there is one and the step has not
        recorded this stage's failure itself."""
        content = getattr(options, "content", None)
        if not (self.stage and content) or ctx.marked(content, self.stage):
            return
        try:
            kept_now = self.outputs_kept is not None and self.outputs_kept(ctx, content)
        except Exception as exc:  # the step's own error matters more than this one
            print(f"warning: could not tell whether the outputs are kept: {exc}", file=sys.stderr)
            kept_now = False
        ctx.mark(content, self.stage, status, error=error, outputs_kept=kept_now)

    def run_argv(
        self,
        argv: Sequence[str],
        ctx: Context | None = None,
        *,
        reraise: tuple[type[BaseException], ...] = (),
    ) -> dict[str, Any]:
        """argv -> result: parse, take the content's lock, run; the CLI and the worker share it.

        A parse error, or a setting out of range, is an ``invalid_input`` result, never an
        exception; ``--help`` is a ``completed`` result whose ``help`` is the text.
        """
        try:
            options = self.parser(probe="--params" in argv).parse_args(list(argv))
        except _HelpRequested as exc:
            return {"status": Status.COMPLETED, "step": self.name, "help": exc.text}
        except InvalidInput as exc:
            return {"status": Status.INVALID_INPUT, "step": self.name, "error": str(exc)}
        from signal4.content import settings
        from signal4.content.guard import content_guard

        ctx = ctx or Context()
        try:  # read them now: the content lock below needs them too
            settings.get()
            ctx.settings  # noqa: B018
        except (settings.SettingsError, InvalidInput) as exc:
            return {"status": Status.INVALID_INPUT, "step": self.name, "error": str(exc)}
        if options.params:
            return self.describe_params(options, ctx)

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
                "status": Status.COMPLETED,
                "step": self.name,
                "ready": True,
                "python": sys.executable,
            }
            print(protocol.encode(ready))
            return codes.EXIT_OK
        try:
            result = self.run_argv(argv)
        except KeyboardInterrupt:
            # Ctrl-C (the dispatcher forwards it): one line, no traceback, no result line;
            # the dispatcher reports the step as interrupted
            print(f"{self.name}: interrupted", file=sys.stderr)
            return codes.EXIT_INTERRUPTED
        if isinstance(result.get("help"), str):
            print(result["help"], end="" if result["help"].endswith("\n") else "\n")
            result = {**result, "help": True}
        if result["status"] in (Status.INVALID_INPUT, Status.FAILED):
            print(f"{self.name}: {result['status']}: {result.get('error')}", file=sys.stderr)
        sys.stdout.flush()
        print(protocol.encode(result))
        return codes.EXIT_CODES[result["status"]]
