"""Settings: every number finite and in range, and one line naming the setting otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from signal4.content import settings


def _load() -> settings.Settings:
    settings.get.cache_clear()
    return settings.get()


def test_the_defaults_load() -> None:
    conf = _load()
    assert (conf.chunk_seconds, conf.chunk_overlap, conf.http_timeout) == (300.0, 2.0, 30.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHUNK_SECONDS", "nan"),
        ("CHUNK_SECONDS", "inf"),
        ("CHUNK_SECONDS", "-inf"),
        ("CHUNK_SECONDS", "0"),
        ("CHUNK_SECONDS", "0.5"),
        ("CHUNK_SECONDS", "-300"),
        ("CHUNK_OVERLAP", "nan"),
        ("CHUNK_OVERLAP", "inf"),
        ("CHUNK_OVERLAP", "-1"),
        ("HTTP_TIMEOUT", "nan"),
        ("HTTP_TIMEOUT", "inf"),
        ("HTTP_TIMEOUT", "0"),
        ("MAX_DOWNLOAD_BYTES", "nan"),
        ("MAX_DOWNLOAD_BYTES", "inf"),
        ("MAX_DOWNLOAD_BYTES", "0"),
        ("ALLOW_LOOPBACK", "maybe"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"SIGNAL4_{name}", value)
    with pytest.raises(settings.SettingsError) as exc:
        _load()
    message = str(exc.value)
    assert f"SIGNAL4_{name}={value!r}" in message
    assert "\n" not in message
    assert exc.value.code == 2


@pytest.mark.parametrize(("chunk", "overlap"), [("4", "3"), ("300", "200"), ("2", "2"), ("2", "3")])
def test_the_overlap_must_stay_within_half_a_chunk(
    monkeypatch: pytest.MonkeyPatch, chunk: str, overlap: str
) -> None:
    monkeypatch.setenv("SIGNAL4_CHUNK_SECONDS", chunk)
    monkeypatch.setenv("SIGNAL4_CHUNK_OVERLAP", overlap)
    with pytest.raises(settings.SettingsError, match="SIGNAL4_CHUNK_OVERLAP and SIGNAL4_CHUNK_SEC"):
        _load()


def test_values_in_range_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL4_CHUNK_SECONDS", "4")
    monkeypatch.setenv("SIGNAL4_CHUNK_OVERLAP", "2")
    monkeypatch.setenv("SIGNAL4_HTTP_TIMEOUT", "0.5")
    conf = _load()
    assert (conf.chunk_seconds, conf.chunk_overlap, conf.http_timeout) == (4.0, 2.0, 0.5)


def test_a_dot_env_file_is_checked_the_same_way(tmp_path: Path) -> None:
    # the isolated_data fixture runs every test in tmp_path, where .env is read from
    (tmp_path / ".env").write_text("SIGNAL4_CHUNK_SECONDS=nan\n")
    with pytest.raises(settings.SettingsError, match="SIGNAL4_CHUNK_SECONDS='nan'"):
        _load()


def test_convert_keeps_the_same_floor_for_its_option() -> None:
    from signal4.processing_steps.convert import MIN_CHUNK_SECONDS

    assert MIN_CHUNK_SECONDS == settings.MIN_CHUNK_SECONDS
