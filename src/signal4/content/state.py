"""Content state in a database through SQLAlchemy: an embedded SQLite file by default,
PostgreSQL (or any SQLAlchemy URL) through the ``SIGNAL4_DATABASE_URL`` setting.

It records each content item (source URL, kind, title, duration) and, per processing
step, its state and the error of the last failure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String, Text, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

DONE = "done"
FAILED = "failed"
INVALID = "invalid_input"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class Content(Base):
    __tablename__ = "content"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source_url: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))  # podcast, youtube, rumble, file
    title: Mapped[str | None] = mapped_column(Text)
    duration: Mapped[float | None] = mapped_column(Float)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    steps: Mapped[list[StepState]] = relationship(
        back_populates="content", cascade="all, delete-orphan", lazy="selectin"
    )


class StepState(Base):
    __tablename__ = "step_state"

    content_id: Mapped[str] = mapped_column(ForeignKey("content.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    content: Mapped[Content] = relationship(back_populates="steps")


class StageRun(Base):
    """One run of one stage of one item, as the runner saw it: when, where, how it ended."""

    __tablename__ = "stage_run"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: The content id (None for a download that failed before it named one).
    content_id: Mapped[str | None] = mapped_column(String(128), index=True)
    #: The item as the batch names it (its content id, or its source).
    item: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    host: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)


class Provenance(Base):
    """How a stage's current outputs were made (the last completed run): env, params, code,
    inputs, host and times, as one JSON record. A stage done before provenance existed has
    no row: its outputs are of unknown origin, which is not the same as out of date.
    """

    __tablename__ = "provenance"

    content_id: Mapped[str] = mapped_column(ForeignKey("content.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Meta(Base):
    """What this database has been through: one-time jobs done on it (``key`` -> ``value``)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def make_engine(url: str) -> Engine:
    """Create the engine (and the SQLite file's folder); tables are created if missing."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    _create_tables(engine)
    return engine


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create the missing tables. Two processes starting on a new DB both find a table
    missing and both create it; the slower one's "already exists" only means it is there,
    so it looks again."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except OperationalError as exc:
            if "already exists" not in str(exc) or attempt == attempts - 1:
                raise


class StateDB:
    """The content-state API used by every step."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def register(
        self,
        content_id: str,
        *,
        kind: str,
        source_url: str | None = None,
        title: str | None = None,
        duration: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Content:
        """Create the content item, or update the fields given."""
        with self.session() as s:
            item = s.get(Content, content_id)
            if item is None:
                item = Content(id=content_id, kind=kind, source_url=source_url)
                s.add(item)
            item.kind = kind or item.kind
            for key, value in (
                ("source_url", source_url),
                ("title", title),
                ("duration", duration),
                ("meta", meta),
            ):
                if value is not None:
                    setattr(item, key, value)
            return item

    def get(self, content_id: str) -> Content | None:
        """Return the content item, with its step states."""
        with self.session() as s:
            return s.get(Content, content_id)

    def all(self) -> list[Content]:
        """Every content item."""
        with self.session() as s:
            return list(s.scalars(select(Content).order_by(Content.created_at)))

    def mark(
        self,
        content_id: str,
        stage: str,
        status: str,
        *,
        error: str | None = None,
        info: dict[str, Any] | None = None,
        new_outputs: bool = True,
    ) -> None:
        """Record ``stage``'s state for ``content_id`` (the error of the last failure too).

        Stage names come from the manifest (``Task.stage``); the DB takes any of them.
        Marking a stage done with ``new_outputs`` drops its provenance record: the record
        described the outputs now replaced (the pipeline's runner writes the new one).
        """
        with self.session() as s:
            if s.get(Content, content_id) is None:
                raise KeyError(content_id)
            row = s.get(StepState, (content_id, stage))
            if row is None:
                row = StepState(content_id=content_id, stage=stage, status=status)
                s.add(row)
            row.status = status
            row.error = error
            if info is not None:
                row.info = info
            row.updated_at = _now()
            if status == DONE and new_outputs:
                old = s.get(Provenance, (content_id, stage))
                if old is not None:
                    s.delete(old)

    def stage_status(self, content_id: str, stage: str) -> str | None:
        """Return the recorded status of ``stage`` (None if never run)."""
        with self.session() as s:
            row = s.get(StepState, (content_id, stage))
            return row.status if row else None

    def is_done(self, content_id: str, stage: str) -> bool:
        """Whether ``stage`` completed for ``content_id``."""
        return self.stage_status(content_id, stage) == DONE

    def record_run(
        self,
        *,
        item: str,
        stage: str,
        task: str,
        status: str,
        started: dt.datetime,
        ended: dt.datetime,
        content_id: str | None = None,
        host: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record one run of a stage (the runner calls this; the step records its state)."""
        with self.session() as s:
            s.add(
                StageRun(
                    content_id=content_id,
                    item=item,
                    stage=stage,
                    task=task,
                    status=status,
                    started_at=started,
                    ended_at=ended,
                    host=host,
                    error=error,
                )
            )

    def set_provenance(self, content_id: str, stage: str, record: dict[str, Any]) -> None:
        """Replace ``stage``'s provenance record for ``content_id``."""
        with self.session() as s:
            if s.get(Content, content_id) is None:
                raise KeyError(content_id)
            row = s.get(Provenance, (content_id, stage))
            if row is None:
                s.add(Provenance(content_id=content_id, stage=stage, record=record))
            else:
                row.record = record
                row.recorded_at = _now()

    def provenance(self, content_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """content id -> stage -> record (of the ids given, or all), in one query."""
        with self.session() as s:
            query = select(Provenance)
            if content_ids is not None:
                query = query.where(Provenance.content_id.in_(list(content_ids)))
            found: dict[str, dict[str, Any]] = {}
            for row in s.scalars(query):
                found.setdefault(row.content_id, {})[row.stage] = row.record
            return found

    def statuses(self, content_ids: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
        """content id -> stage -> status (of the ids given, or all), in one query."""
        with self.session() as s:
            query = select(StepState.content_id, StepState.stage, StepState.status)
            if content_ids is not None:
                query = query.where(StepState.content_id.in_(list(content_ids)))
            found: dict[str, dict[str, str]] = {}
            for cid, stage, status in s.execute(query):
                found.setdefault(cid, {})[stage] = status
            return found

    def done_once(self, key: str) -> bool:
        """Whether the one-time job ``key`` was done on this database."""
        with self.session() as s:
            return s.get(Meta, key) is not None

    def mark_done_once(self, key: str, value: str = "") -> None:
        """Record that the one-time job ``key`` was done on this database."""
        with self.session() as s:
            if s.get(Meta, key) is None:
                s.add(Meta(key=key, value=value))

    def runs(self, content_id: str | None = None) -> list[StageRun]:
        """The recorded stage runs (of one item, or all), oldest first."""
        with self.session() as s:
            query = select(StageRun).order_by(StageRun.started_at, StageRun.id)
            if content_id is not None:
                query = query.where(StageRun.content_id == content_id)
            return list(s.scalars(query))
