"""Settings from environment variables (prefix ``SIGNAL4_``) and an optional ``.env`` file.

Read once per process (:func:`get`), never re-parsed per import. A value out of range
(``nan``, ``inf``, a negative length, an overlap that is not below half a chunk…) is a
:class:`SettingsError` with one line naming the setting, never a traceback.

Where a value comes from, first match wins: a keyword given to :func:`load` (a typed value
or a string), the environment variable ``SIGNAL4_<NAME>`` (the name matched without regard
to case; the exact upper-case spelling wins over the others), a ``KEY=VALUE`` line of
``.env`` in the current directory (``#`` comment lines, an optional ``export``, optional
single or double quotes, no ``${VAR}`` expansion), then the default. Unknown ``SIGNAL4_``
names are ignored. An empty value makes an optional setting (one whose default is None)
None; a number or a switch must not be empty. Switches take true/false, 1/0, yes/no,
on/off, t/f, y/n in any case. Standard library only: every step imports this module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from signal4.errors import Signal4Error

PREFIX = "SIGNAL4_"
#: Shortest chunk convert cuts (Whisper makes nothing useful of less than a second).
MIN_CHUNK_SECONDS = 1.0
ENV_FILE = ".env"

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_NOT_WHOLE = "Input should be a whole number"


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


# --- parsers: a raw value (a string from the environment, or a typed override) to the
# --- setting's type; a ValueError's text says what is wrong with it.


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("Input should be a string")
    return value


def _path(value: object) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise ValueError("Input should be a path")
    return Path(value)


def _switch(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    raise ValueError("Input should be a boolean (true/false, 1/0, yes/no, on/off, t/f, y/n)")


def _whole(value: object) -> int:
    if isinstance(value, int):
        return int(value)  # True is 1
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return _whole(float(value))  # "5.0" is 5, as pydantic had it
            except ValueError:
                raise ValueError(_NOT_WHOLE) from None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(_NOT_WHOLE)


def _float(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError("Input should be a number")


def _number(
    *, at_least: float | None = None, above: float | None = None
) -> Callable[[object], float]:
    """A finite float, at least ``at_least`` and/or above ``above``."""

    def parse(value: object) -> float:
        number = _float(value)
        if not math.isfinite(number):
            raise ValueError("Input should be a finite number")
        if at_least is not None and number < at_least:
            raise ValueError(f"Input should be greater than or equal to {at_least:g}")
        if above is not None and number <= above:
            raise ValueError(f"Input should be greater than {above:g}")
        return number

    return parse


def _count(*, at_least: int) -> Callable[[object], int]:
    """A whole number, at least ``at_least``."""

    def parse(value: object) -> int:
        number = _whole(value)
        if number < at_least:
            raise ValueError(f"Input should be greater than or equal to {at_least}")
        return number

    return parse


@dataclasses.dataclass(init=False)
class Settings:
    """Everything a step can be configured with.

    ``Settings(**overrides)`` reads the environment and ``.env`` as :func:`load` does (and
    raises :class:`SettingsError` the same way); every instance holds checked values.
    """

    #: Root of content and the state DB.
    data_dir: Path = Path("data")
    #: Content store (default data/content).
    content_dir: Path | None = None
    #: SQLAlchemy URL; default sqlite:///<data_dir>/state.db.
    database_url: str | None = None
    max_download_bytes: int = 2 * 1024**3
    #: Allow downloads from 127.0.0.0/8.
    allow_loopback: bool = False
    chunk_seconds: float = 300.0
    chunk_overlap: float = 2.0
    #: CTranslate2 Whisper model dir or hub name (default: bundled).
    whisper_model: str | None = None
    #: faster-whisper or mlx.
    whisper_backend: str = "faster-whisper"
    #: Local pyannote pipeline dir.
    pyannote_model: str | None = None
    #: Hub token, where it is reachable.
    pyannote_token: str | None = None
    http_timeout: float = 30.0
    #: Celery broker (Redis) URL for warm workers; default redis://127.0.0.1:6379/0.
    broker_url: str | None = None
    #: Announce this lock hash instead of the env's own (drift tests only).
    worker_lock_hash: str | None = None

    def __init__(self, *, env_file: Path | None = None, **overrides: Any) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}
        if unknown := sorted(set(overrides) - set(fields)):
            raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
        given = {**_dot_env(env_file or Path(ENV_FILE)), **_environ()}
        problems = []
        for name, field in fields.items():
            if name in overrides:
                raw = overrides[name]
            elif (key := PREFIX + name.upper()) in given:
                raw = given[key]
            else:
                setattr(self, name, field.default)
                continue
            try:
                setattr(self, name, _parse(name, field.default, raw))
            except ValueError as exc:
                problems.append(f"{PREFIX}{name.upper()}={raw!r}: {exc}")
        if not problems and (reason := check_chunking(self.chunk_seconds, self.chunk_overlap)):
            problems.append(f"{PREFIX}CHUNK_OVERLAP and {PREFIX}CHUNK_SECONDS: {reason}")
        if problems:
            raise SettingsError(f"invalid setting: {'; '.join(problems)}")

    @property
    def content_root(self) -> Path:
        """Where content folders live."""
        return (self.content_dir or self.data_dir / "content").resolve()

    @property
    def db_url(self) -> str:
        """The state database URL."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def digest_cache(self) -> Path:
        """Where the digests of model folders are cached (:func:`signal4.stepkit.digest`)."""
        return self.data_dir.resolve() / ".cache" / "digests.json"

    def environ(self) -> dict[str, str]:
        """Every setting as its ``SIGNAL4_*`` variable: what a runner hands its steps, so
        that they use what it decided (paths absolute; an unset optional one empty)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Path):
                value = value.resolve()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            out[PREFIX + field.name.upper()] = "" if value is None else str(value)
        return out


def _parse(name: str, default: object, raw: object) -> Any:
    """``raw`` as the value of setting ``name``: None (or empty) for an optional one is None."""
    if raw is None or raw == "":
        if default is None:
            return None
        if raw is None:
            raise ValueError("Input should not be None")
    return _PARSERS[name](raw)


#: How each setting's value is read, and its bounds.
_PARSERS: dict[str, Callable[[object], Any]] = {
    "data_dir": _path,
    "content_dir": _path,
    "database_url": _text,
    "max_download_bytes": _count(at_least=1),
    "allow_loopback": _switch,
    "chunk_seconds": _number(at_least=MIN_CHUNK_SECONDS),
    "chunk_overlap": _number(at_least=0),
    "whisper_model": _text,
    "whisper_backend": _text,
    "pyannote_model": _text,
    "pyannote_token": _text,
    "http_timeout": _number(above=0),
    "broker_url": _text,
    "worker_lock_hash": _text,
}


def _environ() -> dict[str, str]:
    """The ``SIGNAL4_*`` environment variables, names upper-cased (the exact spelling wins)."""
    found: dict[str, str] = {}
    for name, value in sorted(os.environ.items()):
        upper = name.upper()
        if upper.startswith(PREFIX) and (name == upper or upper not in found):
            found[upper] = value
    return found


def _dot_env(path: Path) -> dict[str, str]:
    """The ``SIGNAL4_*`` lines of the ``.env`` file at ``path``, names upper-cased."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"invalid setting: cannot read {path}: {exc}") from None
    return {k.upper(): v for k, v in _parse_env_lines(text).items() if k.upper().startswith(PREFIX)}


def _parse_env_lines(text: str) -> Mapping[str, str]:
    """``KEY=VALUE`` lines as a mapping (a later line wins); anything else is skipped.

    ``# comment`` lines, an ``export`` before the key, single quotes (kept as written) and
    double quotes (``\\"`` and ``\\\\`` unescaped); an unquoted value ends at `` #``.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line.removeprefix("export ").lstrip()
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not key or key.startswith("#"):
            continue
        values[key] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    """A ``.env`` value without its quotes, or without a trailing `` # comment``."""
    if value[:1] in ("'", '"'):
        quote, out, escaped = value[0], [], False
        for char in value[1:]:
            if escaped:
                out.append(char if char in (quote, "\\") else "\\" + char)
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                return "".join(out)
            else:
                out.append(char)
        return value  # no closing quote: the value as written
    for i, char in enumerate(value):
        if char == "#" and i and value[i - 1] in " \t":
            return value[:i].rstrip()
    return value


def load(**overrides: Any) -> Settings:
    """Read the settings now (``overrides`` win); :class:`SettingsError` (one line) for a
    value out of range."""
    return Settings(**overrides)


def for_project(root: Path) -> Settings:
    """The settings of a runner working on the project at ``root``: the one place its data
    folder is decided.

    As :func:`load`, but ``.env`` is read from ``root`` (not from the current folder), and
    the data folder defaults to ``<root>/data`` (a relative one in ``.env`` is taken from
    ``root``, one in the environment from the current folder). A runner hands the result
    to its steps (:meth:`Settings.environ`), so they never fall back to their own defaults.
    """
    root = Path(root).resolve()
    env_file = root / ENV_FILE
    conf = Settings(env_file=env_file)
    raw = {**_dot_env(env_file), **_environ()}.get(PREFIX + "DATA_DIR")
    if not raw:
        conf.data_dir = root / "data"
    elif PREFIX + "DATA_DIR" not in _environ() and not conf.data_dir.is_absolute():
        conf.data_dir = root / conf.data_dir
    conf.data_dir = conf.data_dir.absolute()
    if conf.content_dir is not None and not conf.content_dir.is_absolute():
        base = root if PREFIX + "CONTENT_DIR" not in _environ() else Path.cwd()
        conf.content_dir = (base / conf.content_dir).absolute()
    return conf


@functools.cache
def get() -> Settings:
    """Return this process's settings (read once; SettingsError if a value is unusable)."""
    return load()
