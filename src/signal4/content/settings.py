"""Settings from environment variables (prefix ``SIGNAL4_``) and an optional ``.env`` file.

Read once per process (:func:`get`), never re-parsed per import.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a step can be configured with."""

    model_config = SettingsConfigDict(env_prefix="SIGNAL4_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of content and the state DB.")
    content_dir: Path | None = Field(
        default=None, description="Content store (default data/content)."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/state.db."
    )
    max_download_bytes: int = Field(default=2 * 1024**3, ge=1)
    allow_loopback: bool = Field(default=False, description="Allow downloads from 127.0.0.0/8.")
    chunk_seconds: float = Field(default=300.0, gt=0)
    chunk_overlap: float = Field(default=2.0, ge=0)
    whisper_model: str | None = Field(
        default=None, description="CTranslate2 Whisper model dir or hub name (default: bundled)."
    )
    whisper_backend: str = Field(default="faster-whisper", description="faster-whisper or mlx.")
    pyannote_model: str | None = Field(default=None, description="Local pyannote pipeline dir.")
    pyannote_token: str | None = Field(
        default=None, description="Hub token, where it is reachable."
    )
    http_timeout: float = Field(default=30.0, gt=0)
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (Redis) URL for warm workers; default redis://127.0.0.1:6379/0.",
    )
    worker_lock_hash: str | None = Field(
        default=None,
        description="Announce this lock hash instead of the env's own (drift tests only).",
    )

    @property
    def content_root(self) -> Path:
        """Where content folders live."""
        return (self.content_dir or self.data_dir / "content").resolve()

    @property
    def db_url(self) -> str:
        """The state database URL."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'state.db').resolve()}"


@functools.cache
def get() -> Settings:
    """Return this process's settings (read once)."""
    return Settings()
