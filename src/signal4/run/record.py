"""The runner's side of a step's result: write what the step did into the state DB.

A step reports its state changes as ``records`` in its result line (see
:class:`signal4.stepkit.step.Context`); it never opens the DB itself. Whoever runs it
writes them, with :func:`apply`: ``inv run``, the pipeline's local runner, and a warm
worker after :meth:`~signal4.stepkit.step.Step.call`. So one process per runner writes
the DB, and a step's start-up pays for neither the ORM nor its driver.

Two kinds of record::

    {"content": ID, "register": {"kind": ..., "source_url": ..., "title": ...,
                                 "duration": ..., "meta": {...}}}
    {"content": ID, "stage": STAGE, "status": "done", "info": {...}, "skipped": true}
    {"content": ID, "stage": STAGE, "status": "failed", "error": ..., "outputs_kept": false}
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.codes import RECORDED_STATES, StageState
from signal4.content.store import ITEM_FILE
from signal4.errors import Signal4Error

if TYPE_CHECKING:
    from signal4.content.state import StateDB

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
    item = db.get(content)
    if item is None:
        return
    row = next((r for r in item.steps if r.stage == stage), None)
    if row is not None and row.status == StageState.DONE and outputs_kept:
        attempt = {"status": status, "error": error, "at": dt.datetime.now(dt.UTC).isoformat()}
        db.mark(
            content,
            stage,
            StageState.DONE,
            error=row.error,
            info={**(row.info or {}), "last_attempt": attempt},
            new_outputs=False,
        )
        return
    db.mark(content, stage, status, error=error)


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
            known = db.get(content)
            if known is None:  # new here: what its folder says, then what the step says
                fields = {**_described(content_root, content), **fields}
            fields.setdefault("kind", known.kind if known is not None else "unknown")
            db.register(content, **fields)
            written += 1
            continue
        stage, status = rec["stage"], rec["status"]
        if db.get(content) is None:
            # a stage done registers the item anyway; a failure only one its folder describes
            described = _described(content_root, content)
            if described or status == StageState.DONE:
                db.register(content, **{"kind": "unknown", **described})
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


def describe_from_db(db: StateDB, content_root: Path, content: str) -> bool:
    """Write the item's ``item.json`` from the DB where its folder has none; whether it did.

    Content stored before steps described their items kept that only in the DB; the
    runner writes it out before a step that reads it runs.
    """
    from signal4.content.store import InvalidContentId, check_id

    try:
        folder = content_root / check_id(content)
    except InvalidContentId:
        return False
    path = folder / ITEM_FILE
    if not folder.is_dir() or path.exists():
        return False
    item = db.get(content)
    if item is None:
        return False
    from signal4.content.store import ContentStore

    data = {key: getattr(item, key) for key in REGISTER_FIELDS}
    data = {key: value for key, value in data.items() if value is not None}
    ContentStore(content_root).write_json(path, data)
    return True


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


class Recorder:
    """The state DB's side of running one step, for a runner outside the batch.

    Made before the step runs (from its argv and, for :meth:`after`, its stage): an item
    stored before steps described themselves gets its ``item.json`` from the DB. After it,
    :meth:`after` writes the result's records, and a failure the step could not report
    (a timeout, a kill) from the runner's own account. A bad setting leaves the DB alone
    (the step says what is wrong); a DB that cannot be read or written is a warning on
    stderr, never the step's failure; a folder that does not exist is not looked up.
    ``inv run`` and a warm worker (:func:`on_worker`) use it; the batch has its own DB.
    """

    def __init__(self, argv: Sequence[str], stage: str | None = None) -> None:
        from signal4.content import settings
        from signal4.content.store import InvalidContentId, check_id

        self.stage, self.content = stage, content_arg(argv)
        try:
            self.conf: Any = settings.get()
        except settings.SettingsError:
            self.conf = None
            return
        if self.content is None:
            return
        try:
            folder = self.conf.content_root / check_id(self.content)
        except InvalidContentId:
            return  # the step says what is wrong with the id
        if folder.is_dir():
            try:
                describe_from_db(state_db(self.conf.db_url), self.conf.content_root, self.content)
            except Exception as exc:
                _warn(f"could not describe {self.content} from the state DB: {exc}")

    def after(self, result: Mapping[str, Any], status: str | None = None, error: str = "") -> None:
        """Write ``result``'s records; with the run's ``status`` (when the runner saw it end
        otherwise than completed), also a failure the step did not record."""
        failure: tuple[str, str, str] | None = None
        if status and self.stage and self.content:
            failure = (self.content, self.stage, status)
        if self.conf is None or not (result.get("records") or failure):
            return
        try:
            db = state_db(self.conf.db_url)
            apply(db, result, content_root=self.conf.content_root)
            if failure is not None:
                unreported(db, result, *failure, error)
        except Exception as exc:
            _warn(f"the state of {result.get('step') or self.stage} not recorded: {exc}")


def _warn(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


def on_worker(argv: Sequence[str], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()`` a step on a warm worker and write its records to this worker's state DB
    (:class:`Recorder`)."""
    recorder = Recorder(argv)
    result = run()
    recorder.after(result)
    return result
