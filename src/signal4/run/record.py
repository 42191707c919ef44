"""The runner's side of a step's result: write what the step did into the state DB.

A step reports its state changes as ``records`` in its result line (see
:class:`signal4.stepkit.step.Context`); it never opens the DB itself. Whoever runs it
writes them, with :func:`apply`: ``inv run``, the pipeline's local runner, and a warm
worker after :meth:`~signal4.stepkit.step.Step.call`, each through one
:class:`StageRecorder`. So one process per runner writes the DB, and a step's start-up
pays for neither the ORM nor its driver.

Two kinds of record::

    {"content": ID, "register": {"kind": ..., "source_url": ..., "title": ...,
                                 "duration": ..., "meta": {...}}}
    {"content": ID, "stage": STAGE, "status": "done", "info": {...}, "skipped": true}
    {"content": ID, "stage": STAGE, "status": "failed", "error": ..., "outputs_kept": false}
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.codes import RECORDED_STATES, StageState, Status
from signal4.content.store import ITEM_FILE
from signal4.envs.manifest import Manifest, Task
from signal4.errors import Signal4Error
from signal4.run.dispatch import Outcome
from signal4.stepkit import protocol

if TYPE_CHECKING:
    from signal4.content.state import StateDB
    from signal4.run.provenance import Checker

#: The stage after which the runner registers an item's voices (signal4.voices).
VOICES_AFTER = "diarize"
#: The one-time job of a state DB that wrote its old items' ``item.json`` files.
DESCRIBED = "items-described"

#: What describes an item, in the state DB and in its folder's ``item.json``.
REGISTER_FIELDS = ("kind", "source_url", "title", "duration", "meta")
_REGISTER_FIELDS = frozenset(REGISTER_FIELDS)


class BadRecord(Signal4Error, ValueError):
    """A record in a step's result that is not one of the two kinds."""


def records_of(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The result's records, checked; :class:`BadRecord` names the first bad one."""
    raw = result.get("records")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRecord(f"records must be a list, not {type(raw).__name__}")
    for rec in raw:
        if not (isinstance(rec, dict) and isinstance(rec.get("content"), str) and rec["content"]):
            raise BadRecord(f"a record without a content id: {rec!r}")
        if "register" in rec:
            fields = rec["register"]
            if not isinstance(fields, dict) or not set(fields) <= _REGISTER_FIELDS:
                raise BadRecord(f"a register record with unknown fields: {rec!r}")
        elif not (isinstance(rec.get("stage"), str) and rec.get("status") in RECORDED_STATES):
            raise BadRecord(f"a stage record without a stage or a known status: {rec!r}")
    return list(raw)


def record_failure(
    db: StateDB, content: str, stage: str, status: str, error: str, *, outputs_kept: bool
) -> None:
    """Record a failed attempt at ``stage`` of ``content`` (nothing if it is no item).

    A stage recorded ``done`` whose outputs are still kept stays ``done``: steps write
    atomically, so the failed attempt (a ``--rewrite``, say) left the earlier outputs
    valid. The attempt goes into the stage's info as ``last_attempt``. Otherwise the
    stage takes the failure's status and error.
    """
    try:
        db.fail(content, stage, status, error, outputs_kept=outputs_kept)
    except KeyError:  # no item of that id: nothing to record it on
        return


def unreported(
    db: StateDB, result: Mapping[str, Any], content: str, stage: str, status: str, error: str
) -> bool:
    """Record a run that ended ``status`` without the step saying so; whether it did.

    A step that timed out, was interrupted or died (killed, out of memory) leaves no
    record of its own; the runner then records the failure from what it saw. The
    outputs count as kept: the step was stopped from outside, and steps write
    atomically, so a stage recorded done stays done (the attempt goes into its info).
    Nothing is written for a run that succeeded, an item the DB does not know, or a
    stage the step's own records mention.
    """
    if status not in RECORDED_STATES or status == StageState.DONE:
        return False
    try:
        records = records_of(result)
    except BadRecord:
        records = []
    if any(r["content"] == content and r.get("stage") == stage for r in records):
        return False
    if db.get(content) is None:
        return False
    record_failure(db, content, stage, status, error or status, outputs_kept=True)
    return True


def _described(content_root: Path | None, content: str) -> dict[str, Any]:
    """The item's ``item.json`` (as register fields), or {} where there is none."""
    if content_root is None:
        return {}
    try:
        data = json.loads((content_root / content / ITEM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in _REGISTER_FIELDS}


def apply(db: StateDB, result: Mapping[str, Any], *, content_root: Path | None = None) -> int:
    """Write ``result``'s records into ``db``, in order; return how many were written.

    A stage record on an item the DB does not know (its DB was replaced, say) registers
    the item first, from its folder's ``item.json`` under ``content_root``: always for a
    stage done, and for a failure only where the folder describes the item (a failure on
    an id that names nothing is not recorded). A ``skipped`` stage is marked done only
    where the DB does not say so already (its info and provenance stay).
    """
    written = 0
    for rec in records_of(result):
        content = rec["content"]
        if "register" in rec:
            fields = dict(rec["register"])
            if db.get(content) is None:  # new here: what its folder says, then the step
                fields = {**_described(content_root, content), **fields}
            # no kind said: a new item's is unknown, a known one keeps its own
            keep = "kind" not in fields
            db.register(content, **{"kind": "unknown", **fields}, keep_kind=keep)
            written += 1
            continue
        stage, status = rec["stage"], rec["status"]
        if db.get(content) is None:
            # a stage done registers the item anyway; a failure only one its folder describes
            described = _described(content_root, content)
            if described or status == StageState.DONE:
                keep = "kind" not in described  # another process may register it meanwhile
                db.register(content, **{"kind": "unknown", **described}, keep_kind=keep)
        if status != StageState.DONE:
            record_failure(
                db,
                content,
                stage,
                status,
                str(rec.get("error") or status),
                outputs_kept=rec.get("outputs_kept") is True,
            )
            written += 1
            continue
        if rec.get("skipped") and db.is_done(content, stage):
            continue  # (an item registered just now is done nowhere)
        info = rec.get("info")
        db.mark(
            content,
            stage,
            StageState.DONE,
            info=info if isinstance(info, dict) else None,
            new_outputs=not rec.get("skipped"),
        )
        written += 1
    return written


def content_arg(argv: Sequence[str]) -> str | None:
    """The ``--content`` value in a step's argv, or None."""
    for i, arg in enumerate(argv):
        if arg == "--content" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--content="):
            return arg.partition("=")[2]
    return None


_DBS: dict[str, StateDB] = {}


def state_db(url: str) -> StateDB:
    """One :class:`StateDB` per URL in this process (a warm worker keeps its engine)."""
    from signal4.content.state import StateDB

    if url not in _DBS:
        _DBS[url] = StateDB(url)
    return _DBS[url]


@dataclass
class Ticket:
    """One stage run as its recorder saw it start."""

    task: Task
    content: str | None
    started: dt.datetime
    #: What the stage reads, as it was before the run (its provenance's ``inputs``).
    inputs: dict[str, Any] = field(default_factory=dict)
    #: What could not be written before the run (returned by :meth:`StageRecorder.after`).
    notes: list[str] = field(default_factory=list)


class StageRecorder:
    """The state DB's side of running stages: the one way every runner records them.

    A runner makes one and, for each stage it runs, calls :meth:`before` as the stage starts
    and :meth:`after` with its :class:`~signal4.run.dispatch.Outcome`. What is written
    depends on who runs the step process and who follows the batch:

    * ``records``: the step's own records (:func:`apply`): whoever ran the step process
      writes them (``inv run``, the local batch, a warm worker; not the client of a warm
      batch, whose worker wrote them);
    * a failure the step could not report (a timeout, a kill, an interruption), as the
      runner saw it (:func:`unreported`), when the stage is known;
    * ``runs``: one ``stage_run`` row per run, with the host it ran on (the batch runners
      and ``inv run``; not a worker, whose client records the run);
    * ``checker``: each completed stage's provenance (:func:`signal4.run.provenance.save`),
      with ``lock`` as the lock it was made from (the local batch, a warm worker).

    The DB is opened on first use. Before the first stage on a folder without its
    ``item.json`` it writes, once per DB, the ``item.json`` of content stored before steps
    described their items (:func:`describe_old_items`). A DB
    that cannot be written is a note that :meth:`after` returns, never the stage's failure.
    """

    def __init__(
        self,
        db: StateDB | str,
        content_root: Path | None,
        *,
        m: Manifest | None = None,
        checker: Checker | None = None,
        lock: str | None = None,
        records: bool = True,
        runs: bool = True,
        host: str | None = None,
    ) -> None:
        self._db: StateDB | None = None if isinstance(db, str) else db
        self._url = db if isinstance(db, str) else None
        self.content_root = content_root
        self.m = m
        self.checker = checker
        self.lock = lock
        self.records = records
        self.runs = runs
        self.host = host or socket.gethostname()
        self._described = False

    @property
    def db(self) -> StateDB:
        """The state DB (opened on first use)."""
        if self._db is None:
            assert self._url is not None
            self._db = state_db(self._url)
        return self._db

    def before(self, task: Task, content: str | None) -> Ticket:
        """A stage of ``task`` on ``content`` starts (content None: not known yet).

        A content folder without its ``item.json`` may be one stored before steps described
        their items: the first such folder has every old item described, from the DB, once.
        """
        ticket = Ticket(task, content, dt.datetime.now(dt.UTC))
        if self.content_root is None or not content:
            return ticket
        from signal4.content.store import InvalidContentId, check_id

        try:
            folder = self.content_root / check_id(content)
        except InvalidContentId:  # not an id: the step says so itself
            return ticket
        if not self._described and folder.is_dir() and not (folder / ITEM_FILE).exists():
            self._described = True
            self._write(
                ticket.notes,
                "the item.json files of old items",
                describe_old_items,
                self.db,
                self.content_root,
            )
        if self.checker is not None:
            from signal4.run.provenance import input_fingerprints

            ticket.inputs = input_fingerprints(task, folder)
        return ticket

    def after(
        self, ticket: Ticket, outcome: Outcome, *, item: str | None = None, host: str | None = None
    ) -> list[str]:
        """The stage ended with ``outcome``: write what this recorder writes (see the class);
        return what could not be written, one line each (the runner shows them as warnings).

        ``item`` names the stage run's item (a batch's label; without it, a run is recorded
        only when it names a content id); ``host`` is where it ran (default: here).
        """
        notes = list(ticket.notes)
        task = ticket.task
        content = ticket.content or protocol.content_of(outcome.result)
        ended = dt.datetime.now(dt.UTC)
        started = min(ticket.started, ended - dt.timedelta(seconds=outcome.duration))
        self._write(notes, f"the state of {task.name}", self._state, ticket, outcome, content)
        voices = task.stage == VOICES_AFTER and outcome.ok and not outcome.result.get("dry_run")
        if voices and self.records and content and self.content_root is not None:
            self._write(notes, f"the voices of {content}", self._voices, outcome, content)
        if self.runs and (item or content):
            self._write(
                notes,
                f"the run of {task.name}",
                lambda: self.db.record_run(
                    content_id=content,
                    item=item or content or task.name,
                    stage=task.stage,
                    task=task.name,
                    status=outcome.status,
                    started=started,
                    ended=ended,
                    host=host or self.host,
                    error=None if outcome.ok else outcome.reason,
                ),
            )
        done = outcome.status == Status.COMPLETED and not outcome.result.get("dry_run")
        if self.checker is not None and self.content_root is not None and content and done:
            self._write(
                notes,
                f"the provenance of {task.name}",
                self._provenance,
                ticket,
                outcome,
                content,
                started,
                ended,
            )
        return notes

    def _state(self, ticket: Ticket, outcome: Outcome, content: str | None) -> None:
        if self.records:
            apply(self.db, outcome.result, content_root=self.content_root)
        if not outcome.ok and content:
            state = outcome.state
            unreported(self.db, outcome.result, content, ticket.task.stage, state, outcome.reason)

    def _voices(self, outcome: Outcome, content: str) -> None:
        """Register the item's voices and write its speakers.json (docs/voices.md); a
        diarization only skipped registers voices that are not registered yet."""
        from signal4.voices.registry import register_item

        assert self.content_root is not None
        skipped = outcome.status == Status.SKIPPED
        register_item(self.db, self.content_root, content, only_new=skipped)

    def _provenance(
        self,
        ticket: Ticket,
        outcome: Outcome,
        content: str,
        started: dt.datetime,
        ended: dt.datetime,
    ) -> None:
        from signal4.run import provenance

        assert self.checker is not None and self.content_root is not None
        params = outcome.result.get("params")
        record = provenance.build_record(
            ticket.task,
            self.checker.now(ticket.task, probe=False),
            params=params if isinstance(params, dict) else None,
            inputs=ticket.inputs,
            started=started,
            ended=ended,
            status=outcome.status,
            lock=self.lock,
        )
        provenance.save(self.db, self.content_root / content, content, ticket.task.stage, record)

    @staticmethod
    def _write(notes: list[str], what: str, write: Callable[..., object], *args: Any) -> None:
        try:
            write(*args)
        except Exception as exc:  # a bad record, a locked or full DB: the stage still counts
            notes.append(f"{what} not recorded: {exc}")


def describe_old_items(db: StateDB, content_root: Path) -> int:
    """Write the ``item.json`` of every item whose folder has none, once per state DB.

    Content stored before steps described their items (in ``item.json``) kept that only in
    the DB; steps read the file now. The DB records that it was done; how many files were
    written is returned.
    """
    if db.done_once(DESCRIBED):
        return 0
    from signal4.content.store import ContentStore, InvalidContentId, check_id

    store, written = ContentStore(content_root), 0
    for item in db.all():
        try:
            folder = content_root / check_id(item.id)
        except InvalidContentId:
            continue
        path = folder / ITEM_FILE
        if not folder.is_dir() or path.exists():
            continue
        data = {key: getattr(item, key) for key in REGISTER_FIELDS}
        store.write_json(path, {key: value for key, value in data.items() if value is not None})
        written += 1
    db.mark_done_once(DESCRIBED, str(written))
    return written
