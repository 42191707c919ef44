"""Settings: every number finite and in range, and one line naming the setting otherwise."""

from __future__ import annotations

import os
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


def test_every_setting_has_a_parser() -> None:
    import dataclasses

    names = [f.name for f in dataclasses.fields(settings.Settings)]
    assert names == list(settings._PARSERS)


def test_a_dot_env_file_is_read_and_the_environment_beats_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "# a comment\n"
        "SIGNAL4_CHUNK_SECONDS=40\n"
        "export SIGNAL4_CHUNK_OVERLAP='3'\n"
        'SIGNAL4_WHISPER_BACKEND="mlx"  # trailing comment\n'
        "SIGNAL4_BROKER_URL=redis://h:1/0 # unquoted, trailing comment\n"
        "SIGNAL4_HTTP_TIMEOUT=9\n"
        "OTHER_THING=1\n"
        "SIGNAL4_NOT_A_SETTING=x\n"
    )
    monkeypatch.setenv("SIGNAL4_HTTP_TIMEOUT", "12")
    conf = _load()
    assert (conf.chunk_seconds, conf.chunk_overlap) == (40.0, 3.0)
    assert (conf.whisper_backend, conf.broker_url) == ("mlx", "redis://h:1/0")
    assert conf.http_timeout == 12.0  # the environment wins over .env


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("t", True),
        ("y", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        ("f", False),
        ("n", False),
    ],
)
def test_a_switch_takes_the_usual_words(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("SIGNAL4_ALLOW_LOOPBACK", value)
    assert _load().allow_loopback is expected


@pytest.mark.parametrize("value", ["maybe", "2", "", "truthy"])
def test_any_other_switch_value_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SIGNAL4_ALLOW_LOOPBACK", value)
    with pytest.raises(settings.SettingsError, match="Input should be a boolean"):
        _load()


@pytest.mark.parametrize("value", ["5.5", "nan", "five", "1e400"])
def test_a_whole_number_setting_takes_no_fraction(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SIGNAL4_MAX_DOWNLOAD_BYTES", value)
    with pytest.raises(settings.SettingsError) as exc:
        _load()
    assert str(exc.value) == (
        f"invalid setting: SIGNAL4_MAX_DOWNLOAD_BYTES={value!r}: Input should be a whole number"
    )


@pytest.mark.parametrize(("value", "expected"), [("5", 5), ("5.0", 5), (str(10**30), 10**30)])
def test_a_whole_number_setting_loads(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("SIGNAL4_MAX_DOWNLOAD_BYTES", value)
    got = _load().max_download_bytes
    assert (got, type(got)) == (expected, int)


def test_the_name_is_matched_without_regard_to_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("signal4_Chunk_Seconds", "8")
    assert _load().chunk_seconds == 8.0


def test_several_problems_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL4_CHUNK_SECONDS", "nan")
    monkeypatch.setenv("SIGNAL4_HTTP_TIMEOUT", "0")
    with pytest.raises(settings.SettingsError) as exc:
        _load()
    assert str(exc.value) == (
        "invalid setting: SIGNAL4_CHUNK_SECONDS='nan': Input should be a finite number; "
        "SIGNAL4_HTTP_TIMEOUT='0': Input should be greater than 0"
    )


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIGNAL4_CHUNK_SECONDS", "nan")  # never read: the override wins
    monkeypatch.setenv("SIGNAL4_ALLOW_LOOPBACK", "no")
    conf = settings.load(chunk_seconds="60", allow_loopback=True, data_dir=tmp_path / "d")
    assert (conf.chunk_seconds, conf.allow_loopback) == (60.0, True)
    assert conf.data_dir == tmp_path / "d"
    assert conf.db_url == f"sqlite:///{(tmp_path / 'd' / 'state.db').resolve()}"
    with pytest.raises(settings.SettingsError, match=r"SIGNAL4_HTTP_TIMEOUT=inf: .*finite"):
        settings.load(http_timeout=float("inf"))
    with pytest.raises(TypeError, match="chunk_second"):
        settings.load(chunk_second=5)


def test_an_empty_optional_setting_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL4_CONTENT_DIR", "")
    monkeypatch.setenv("SIGNAL4_DATABASE_URL", "")
    conf = _load()
    assert (conf.content_dir, conf.database_url) == (None, None)
    assert conf.content_root == (conf.data_dir / "content").resolve()


def test_a_runner_decides_the_data_folder_from_the_project_not_from_where_it_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, elsewhere = tmp_path / "project", tmp_path / "project" / "src"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SIGNAL4_DATA_DIR")
    (elsewhere / ".env").write_text("SIGNAL4_CHUNK_SECONDS=9\n")  # not the project's
    conf = settings.for_project(root)
    assert conf.data_dir == root / "data"
    assert conf.db_url == f"sqlite:///{root / 'data' / 'state.db'}"
    assert conf.chunk_seconds == 300.0
    # the project's .env counts, a relative folder in it is the project's
    (root / ".env").write_text("SIGNAL4_DATA_DIR=store\nSIGNAL4_CONTENT_DIR=media\n")
    conf = settings.for_project(root)
    assert (conf.data_dir, conf.content_root) == (root / "store", root / "media")
    # the environment wins, a relative folder there is the caller's
    monkeypatch.setenv("SIGNAL4_DATA_DIR", "here")
    assert settings.for_project(root).data_dir == elsewhere / "here"


def test_a_runner_hands_every_setting_down_as_it_decided_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNAL4_ALLOW_LOOPBACK", "yes")
    conf = settings.for_project(tmp_path)
    env = conf.environ()
    assert env["SIGNAL4_ALLOW_LOOPBACK"] == "true"
    assert env["SIGNAL4_DATABASE_URL"] == ""
    assert env["SIGNAL4_CHUNK_SECONDS"] == "300.0"
    assert Path(env["SIGNAL4_DATA_DIR"]).is_absolute()
    # what a step reads back from them is what the runner decided
    monkeypatch.setattr(os, "environ", {**os.environ, **env})
    again = settings.load()
    for name in ("data_dir", "content_root", "db_url", "allow_loopback", "chunk_seconds"):
        assert getattr(again, name) == getattr(conf, name), name
    assert again.digest_cache == conf.data_dir / ".cache" / "digests.json"
