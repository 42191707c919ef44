"""Settings from environment variables (prefix ``SIGNAL4_``) and an optional ``.env`` file.

Read once per process (:func:`get`), never re-parsed per import. A value out of range
(``nan``, ``inf``, a negative length, an overlap that is not below half a chunk…) is a
:class:`SettingsError` with one line naming the setting, never a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signal4.errors import Signal4Error

PREFIX = "SIGNAL4_"
#: Shortest chunk convert cuts (Whisper makes nothing useful of less than a second).
MIN_CHUNK_SECONDS = 1.0


class SettingsError(Signal4Error, ValueError):
    """A ``SIGNAL4_*`` setting has a value the steps cannot use (exit 2)."""


def check_chunking(chunk: float, overlap: float) -> str | None:
    """Why chunks of ``chunk`` s overlapping by ``overlap`` s are unusable, or None.

    The overlap must stay at most half a chunk: each chunk then moves the plan on by at
    least half its length, so the chunk WAVs hold at most twice the audio.
    """
    if overlap * 2 > chunk:
        return f"the overlap ({overlap:g} s) must be at most half the chunk length ({chunk:g} s)"
    return None


class Settings(BaseSettings):
    """Everything a step can be configured with."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of content and the state DB.")
    content_dir: Path | None = Field(
        default=None, description="Content store (default data/content)."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/state.db."
    )
    max_download_bytes: int = Field(default=2 * 1024**3, ge=1)
    allow_loopback: bool = Field(default=False, description="Allow downloads from 127.0.0.0/8.")
    chunk_seconds: float = Field(default=300.0, ge=MIN_CHUNK_SECONDS, allow_inf_nan=False)
    chunk_overlap: float = Field(default=2.0, ge=0, allow_inf_nan=False)
    whisper_model: str | None = Field(
        default=None, description="CTranslate2 Whisper model dir or hub name (default: bundled)."
    )
    whisper_backend: str = Field(default="faster-whisper", description="faster-whisper or mlx.")
    pyannote_model: str | None = Field(default=None, description="Local pyannote pipeline dir.")
    pyannote_token: str | None = Field(
        default=None, description="Hub token, where it is reachable."
    )
    http_timeout: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (Redis) URL for warm workers; default redis://127.0.0.1:6379/0.",
    )
    worker_lock_hash: str | None = Field(
        default=None,
        description="Announce this lock hash instead of the env's own (drift tests only).",
    )

    @model_validator(mode="after")
    def _chunking(self) -> Settings:
        if reason := check_chunking(self.chunk_seconds, self.chunk_overlap):
            raise ValueError(f"{PREFIX}CHUNK_OVERLAP and {PREFIX}CHUNK_SECONDS: {reason}")
        return self

    @property
    def content_root(self) -> Path:
        """Where content folders live."""
        return (self.content_dir or self.data_dir / "content").resolve()

    @property
    def db_url(self) -> str:
        """The state database URL."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'state.db').resolve()}"


def _describe(error: Any) -> str:
    """One pydantic error as ``SIGNAL4_NAME='value': what is wrong``."""
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    if not loc:
        return message
    return f"{PREFIX}{loc[0].upper()}={error.get('input')!r}: {message}"


def load(**overrides: Any) -> Settings:
    """Read the settings now (``overrides`` win); :class:`SettingsError` (one line) for a
    value out of range."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise SettingsError(f"invalid setting: {problems}") from None


@functools.cache
def get() -> Settings:
    """Return this process's settings (read once; SettingsError if a value is unusable)."""
    return load()
