"""Content state in a database through SQLAlchemy: an embedded SQLite file by default,
PostgreSQL through the ``SIGNAL4_DATABASE_URL`` setting (``postgresql://user:pass@host/db``
uses psycopg 3, imported only when such a URL is opened).

It records each content item (source URL, kind, title, duration) and, per processing
step, its state and the error of the last failure.

Several processes write one DB at once (pipelines, warm workers on several machines), so
every write is one atomic statement or transaction: ``INSERT … ON CONFLICT`` upserts, the
schema created under a lock, SQLite's writers taking its write lock when they begin (so
they wait their turn, up to :data:`BUSY_TIMEOUT_MS`, instead of failing midway). A DB
that cannot be reached, opened or written is a :class:`StateDBError` (exit 4) saying what
to do, never a raw driver traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.expression import Executable

from signal4.codes import EXIT_STATE_DB, StageState
from signal4.errors import Signal4Error

#: How long a SQLite writer waits for another one's write lock before it gives up.
BUSY_TIMEOUT_MS = 30_000
#: Seconds a PostgreSQL connection attempt may take (a URL's ``?connect_timeout=`` wins).
CONNECT_TIMEOUT = 10
#: The backends the state DB is written for (their upserts are the same statement).
DIALECTS = ("sqlite", "postgresql")
#: The driver a URL without one gets (``postgresql://`` is ``postgresql+psycopg://``).
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
#: The PostgreSQL advisory lock that makes schema creation one process at a time.
SCHEMA_LOCK = 0x5167_4A11
#: The PostgreSQL advisory lock that makes changes of the voice registry one at a time.
VOICE_LOCK = 0x5167_4A12
_FULL = "no space left on the file system"
#: A connection execution option: this transaction writes (SQLite: BEGIN IMMEDIATE).
_WRITE = "signal4_write"


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


class Person(Base):
    """One person of the voice registry: named (``name``) or not yet (shown as voice-0007).

    Every voice linked to it (:class:`Voice`) is that person's speech in one item; a name
    given to the person is the name of all of them.
    """

    __tablename__ = "voice_person"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Voice(Base):
    """One speaker found in one item (or one enrolment clip): its voice print and the
    person it was linked to (None: too little speech to tell, ambiguous, or forgotten)."""

    __tablename__ = "voice"
    __table_args__ = (UniqueConstraint("content_id", "speaker", name="voice_item_speaker"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: The item (None for a voice enrolled from a clip, which ``source`` names).
    content_id: Mapped[str | None] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), index=True
    )
    #: The diarizer's label of the speaker in that item (SPEAKER_01).
    speaker: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(Text)
    #: The embedding model's digest: prints of different models are never compared.
    model: Mapped[str] = mapped_column(String(128))
    seconds: Mapped[float] = mapped_column(Float)
    #: The unit-length print, float32 little-endian.
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("voice_person.id"), index=True)
    #: How it was linked: matched, new, enrolled, short, ambiguous, forgotten.
    how: Mapped[str] = mapped_column(String(16))
    #: The cosine with its person's print when it was matched (or the best, if ambiguous).
    score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class PersonPrint(Base):
    """A person's print for one embedding model: the weighted sum of its voices' prints
    (``total``, float32), and that sum at unit length packed to bytes for the search."""

    __tablename__ = "voice_person_print"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("voice_person.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    total: Mapped[bytes] = mapped_column(LargeBinary)
    packed: Mapped[bytes] = mapped_column(LargeBinary)
    seconds: Mapped[float] = mapped_column(Float)
    voices: Mapped[int] = mapped_column(Integer)
    #: The registry's clock when this print last changed (a cache reloads what is newer).
    version: Mapped[int] = mapped_column(Integer, index=True)


class VoiceClock(Base):
    """The registry's clocks (one row): ``version`` counts changes of person prints,
    ``generation`` the removals (a cache of the prints starts again when it moves), and
    ``epoch`` names this database (a cache of another one, at the same URL, is dropped)."""

    __tablename__ = "voice_clock"

    id: Mapped[int] = mapped_column(primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class StateDBError(Signal4Error):
    """The state DB cannot be reached, opened or written (exit 4; a URL that names no
    usable database: exit 2); the message says what to do."""

    code = EXIT_STATE_DB


def engine_url(url: str) -> URL:
    """``url`` as SQLAlchemy opens it: a PostgreSQL URL without a driver gets psycopg's."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StateDBError(
            f"the state DB URL {shown(url)!r} is not a database URL; set SIGNAL4_DATABASE_URL "
            "to sqlite:////path/to/state.db or postgresql://user:password@host:port/db",
            code=2,
        ) from None
    return parsed.set(drivername=DRIVERS.get(parsed.drivername, parsed.drivername))


def shown(url: str) -> str:
    """``url`` as a message may show it: its password masked (``postgresql://u:***@h/db``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL: still never show what follows a user's colon
        import re

        return re.sub(r"(^|//)([^/@:]*):[^@]*@", r"\1\2:***@", url)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another backend or an in-memory DB)."""
    parsed = engine_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def make_engine(url: str) -> Engine:
    """Create the engine (and the SQLite file's folder); tables are created if missing."""
    where = _Where(url)
    parsed = engine_url(url)
    if parsed.get_backend_name() not in DIALECTS:
        raise StateDBError(
            f"the state DB at {where.shown} is a {parsed.get_backend_name()} database; "
            f"SIGNAL4_DATABASE_URL must be a SQLite or PostgreSQL URL",
            code=2,
        )
    if where.path is not None:
        try:
            where.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise where.fault(exc, opening=True) from None
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        # a server that went away (restarted, failed over) is found out at checkout, not
        # by a warm worker's next write; an unreachable host fails in seconds, not minutes
        options["pool_pre_ping"] = True
        if "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:  # a driver the URL names, not installed
        raise StateDBError(
            f"the state DB URL {where.shown} names a driver that is not installed ({exc}); "
            "use postgresql://… (psycopg, installed) or sqlite:///…",
            code=2,
        ) from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we say BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: WAL may wait too
            _turn_to_wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # A writer takes the write lock now, waiting for it: a deferred transaction that
            # reads, then writes after another process did fails at once ("locked").
            write = conn.get_execution_options().get(_WRITE)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    try:
        _create_tables(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise where.fault(exc, opening=True) from None
    return engine


def _turn_to_wal(cur: Any) -> None:
    """Put the SQLite DB in WAL mode (readers and a writer side by side).

    Connections turning a new DB to WAL at the same moment can each hold a lock the other
    needs; SQLite then fails one of them at once with "database is locked", without the
    busy wait. So it tries again, with growing pauses, for up to the busy timeout.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _create_tables(engine: Engine) -> None:
    """Create the missing tables, one process at a time: two processes starting on a new DB
    would both find a table missing and both create it (PostgreSQL: a duplicate type or
    table error). SQLite's write lock or a PostgreSQL advisory lock serialises them; the
    second finds the tables there."""
    with engine.connect() as conn:
        missing = set(Base.metadata.tables) - set(inspect(conn).get_table_names())
    if not missing:
        return
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            Base.metadata.create_all(conn)


class _Where:
    """A state DB's URL as messages show it, and what a driver's error there means."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.shown = str(self.path) if self.path is not None else shown(url)

    def fault(self, exc: BaseException, *, opening: bool) -> StateDBError:
        """``exc`` (a driver's error, or an OS error on the SQLite file's folder) as ours."""
        reason = self._reason(exc)
        if self.path is None:
            if opening:
                return StateDBError(
                    f"cannot connect to the state DB at {self.shown}: {reason}; is the "
                    "server running, and are the host, port, user and password right?"
                )
            return StateDBError(f"the state DB at {self.shown} failed: {reason}")
        lowered = reason.lower()
        if "locked" in lowered or "busy" in lowered:
            return StateDBError(
                f"the state DB at {self.shown} is locked by another writer ({reason}; waited "
                f"up to {BUSY_TIMEOUT_MS // 1000} s); try again when it is done"
            )
        if "not a database" in lowered or "malformed" in lowered:
            return StateDBError(
                f"the state DB at {self.shown} is damaged ({reason}); move it away (a new "
                "one is made) or set SIGNAL4_DATABASE_URL"
            )
        why = self._file_system() or (_FULL if "full" in lowered else None)
        if why is None and opening:
            return StateDBError(
                f"the state DB at {self.shown} cannot be opened ({reason}); check that its "
                "folder can hold it, or set SIGNAL4_DATABASE_URL to a database elsewhere"
            )
        hint = "free space there" if why == _FULL else "fix the permissions of the file and folder"
        return StateDBError(
            f"the state DB at {self.shown} cannot be written ({why or reason}): {reason}; "
            f"{hint}, or set SIGNAL4_DATABASE_URL to a database elsewhere"
        )

    def _file_system(self) -> str | None:
        """Why the SQLite file's folder cannot take a write, where the file system says."""
        assert self.path is not None
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            fs = os.statvfs(folder)
        except OSError:
            return None
        if fs.f_flag & os.ST_RDONLY:
            return "read-only file system"
        if (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) == 0:
            return _FULL
        for path in (self.path, folder):
            if path.exists() and not os.access(path, os.W_OK):
                return "permission denied"
        return None

    def _reason(self, exc: BaseException) -> str:
        """The driver's one-line message, without the SQL and never with the password."""
        inner = getattr(exc, "orig", None) or exc
        text_ = " ".join(str(inner).split()) or type(inner).__name__
        password = make_url(self.url).password if self.path is None else None
        return text_.replace(str(password), "***") if password else text_


class StateDB:
    """The content-state API the runners use (steps never open it).

    On SQLite it follows its file: when the file was removed or replaced since it was
    opened (``rm -rf`` of the data folder under a warm worker), the next session opens
    the file now at that path, creating it and its tables.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._where = _Where(url)
        self._reopen = threading.Lock()
        self.engine = make_engine(url)
        self._identity = self._file_identity()

    def _file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the SQLite file, or None where there is none."""
        if self._where.path is None:
            return None
        try:
            st = os.stat(self._where.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _follow_file(self) -> None:
        """Open the SQLite file again if it is not the one this engine opened."""
        if self._where.path is None or self._file_identity() == self._identity:
            return
        with self._reopen:
            if self._file_identity() == self._identity:
                return  # another thread reopened it
            self.engine.dispose()
            self.engine = make_engine(self.url)
            self._identity = self._file_identity()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session committed on success and rolled back on error; a ``write`` session
        holds SQLite's write lock from its start. A driver's error is a StateDBError."""
        self._follow_file()
        opening = True
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                s.connection(execution_options={_WRITE: write})
                opening = False
                yield s
        except DBAPIError as exc:
            raise self._where.fault(exc, opening=opening) from None

    def _upsert(
        self, table: type[Base], values: dict[str, Any], keys: list[str], update: list[str]
    ) -> Executable:
        """One ``INSERT … ON CONFLICT (keys)`` of ``values``: the ``update`` columns take the
        new values on a conflict (none: the row is left as it is)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        stmt = dialect.insert(table).values(**values)
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=keys)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={name: stmt.excluded[name] for name in update}
        )

    @staticmethod
    def _require(s: Session, content_id: str) -> None:
        """KeyError unless ``content_id`` is a registered item."""
        if s.scalar(select(Content.id).where(Content.id == content_id)) is None:
            raise KeyError(content_id)

    def register(
        self,
        content_id: str,
        *,
        kind: str,
        source_url: str | None = None,
        title: str | None = None,
        duration: float | None = None,
        meta: dict[str, Any] | None = None,
        keep_kind: bool = False,
    ) -> Content:
        """Create the content item, or update the fields given (an empty kind keeps its kind);
        one upsert, so two processes registering one new item both succeed.

        ``keep_kind``: ``kind`` is only a new item's; a known item keeps its own (one that
        another process registered a moment ago too).
        """
        given = {
            key: value
            for key, value in (
                ("source_url", source_url),
                ("title", title),
                ("duration", duration),
                ("meta", meta),
            )
            if value is not None
        }
        update = [*given, *(["kind"] if kind and not keep_kind else [])]
        values = {"id": content_id, "kind": kind, "created_at": _now(), **given}
        with self.session(write=True) as s:
            s.execute(self._upsert(Content, values, ["id"], update))
            item = s.get(Content, content_id)
            assert item is not None  # just written, in this transaction
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
        values: dict[str, Any] = {
            "content_id": content_id,
            "stage": stage,
            "status": status,
            "error": error,
            "updated_at": _now(),
        }
        if info is not None:  # None keeps the info recorded before
            values["info"] = info
        update = [k for k in values if k not in ("content_id", "stage")]
        with self.session(write=True) as s:
            self._require(s, content_id)
            s.execute(self._upsert(StepState, values, ["content_id", "stage"], update))
            if status == StageState.DONE and new_outputs:
                s.execute(
                    delete(Provenance).where(
                        Provenance.content_id == content_id, Provenance.stage == stage
                    )
                )

    def fail(
        self, content_id: str, stage: str, status: str, error: str, *, outputs_kept: bool
    ) -> None:
        """Record a failed attempt at ``stage`` (one transaction, the row locked).

        A stage recorded ``done`` whose outputs are still kept stays ``done``, the attempt
        in its info as ``last_attempt`` (merged into the info as it is, so that a write of
        another process in between is not lost); otherwise the stage takes the failure's
        status and error, and keeps its info.
        """
        with self.session(write=True) as s:
            self._require(s, content_id)
            row = s.scalars(
                select(StepState)
                .where(StepState.content_id == content_id, StepState.stage == stage)
                .with_for_update()
            ).one_or_none()
            if row is not None and row.status == StageState.DONE and outputs_kept:
                attempt = {"status": status, "error": error, "at": _now().isoformat()}
                row.info = {**(row.info or {}), "last_attempt": attempt}
                row.updated_at = _now()
                return
            values = {
                "content_id": content_id,
                "stage": stage,
                "status": status,
                "error": error,
                "updated_at": _now(),
            }
            keys = ["content_id", "stage"]
            s.execute(self._upsert(StepState, values, keys, ["status", "error", "updated_at"]))

    def stage_status(self, content_id: str, stage: str) -> str | None:
        """Return the recorded status of ``stage`` (None if never run)."""
        with self.session() as s:
            row = s.get(StepState, (content_id, stage))
            return row.status if row else None

    def is_done(self, content_id: str, stage: str) -> bool:
        """Whether ``stage`` completed for ``content_id``."""
        return self.stage_status(content_id, stage) == StageState.DONE

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
        with self.session(write=True) as s:
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
        values = {"content_id": content_id, "stage": stage, "record": record, "recorded_at": _now()}
        with self.session(write=True) as s:
            self._require(s, content_id)
            s.execute(
                self._upsert(Provenance, values, ["content_id", "stage"], ["record", "recorded_at"])
            )

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
        """Record that the one-time job ``key`` was done on this database (the first record
        of it stays: two processes may both do it)."""
        with self.session(write=True) as s:
            s.execute(self._upsert(Meta, {"key": key, "value": value}, ["key"], []))

    def runs(self, content_id: str | None = None) -> list[StageRun]:
        """The recorded stage runs (of one item, or all), oldest first."""
        with self.session() as s:
            query = select(StageRun).order_by(StageRun.started_at, StageRun.id)
            if content_id is not None:
                query = query.where(StageRun.content_id == content_id)
            return list(s.scalars(query))

    @contextmanager
    def voices_session(self) -> Iterator[Session]:
        """A write session that holds the voice registry alone until it ends: SQLite's
        write lock, and on PostgreSQL an advisory lock taken first. Two processes that
        find the same new voice at once so take turns, and the second sees the first's."""
        with self.session(write=True) as s:
            if self.engine.dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": VOICE_LOCK})
            first = {"id": 1, "epoch": uuid.uuid4().hex, "version": 0, "generation": 0}
            s.execute(self._upsert(VoiceClock, first, ["id"], []))
            yield s

    def voices(self, content_id: str | None = None) -> list[Voice]:
        """The registered voices (of one item, or all), in the order they were stored."""
        with self.session() as s:
            query = select(Voice).order_by(Voice.id)
            if content_id is not None:
                query = query.where(Voice.content_id == content_id)
            return list(s.scalars(query))

    def persons(self) -> list[Person]:
        """Every person of the voice registry, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(Person).order_by(Person.id)))
