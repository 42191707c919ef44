"""Manifest validation: each fault gets a clear error that names it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from signal4.envs import manifest
from signal4.envs.manifest import ManifestError, UnknownNameError

GOOD: dict[str, Any] = {
    "project": {
        "dependencies": ["sqlalchemy>=2", "pydantic-settings"],
        "optional-dependencies": {
            "download": ["yt-dlp>=2025.1", "httpx"],
            "stitch": ["pysbd"],
            "mlx-server": ["mlx-lm; sys_platform == 'darwin'"],
        },
    },
    "tool": {
        "signal4": {
            "default-timeout": 60,
            "envs": {
                "download": {"description": "d"},
                "stitch": {},
                "mlx-server": {"platforms": ["darwin-arm64"]},
            },
            "tasks": [
                {"name": "download_podcast", "env": "download", "timeout": 30, "concurrency": 3},
                {"name": "stitch", "env": "stitch"},
            ],
        }
    },
}


def parse(data: dict[str, Any]) -> manifest.Manifest:
    return manifest.parse(data, Path("/nowhere"))


def variant() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def test_good_manifest_parses_with_defaults() -> None:
    m = parse(GOOD)
    assert list(m.envs) == ["download", "stitch", "mlx-server"]
    task = m.task("download_podcast")
    assert (task.env, task.timeout, task.concurrency) == ("download", 30.0, 3)
    assert task.module == "signal4.processing_steps.download_podcast"
    stitch = m.task("stitch")
    assert (stitch.timeout, stitch.concurrency) == (60.0, 1)
    assert m.env("download").packages == ("yt-dlp", "httpx")
    assert m.base_packages == ("sqlalchemy", "pydantic-settings")
    assert [t.name for t in m.tasks_of("download")] == ["download_podcast"]
    # a worker's pool: its env's strictest concurrency; an unknown env is an error, not 1
    assert m.pool_size("download") == 3
    with pytest.raises(UnknownNameError, match="valid envs: download, mlx-server, stitch"):
        m.pool_size("nope")


def test_unknown_env_in_task_map() -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"].append({"name": "diarize", "env": "diarise"})
    with pytest.raises(ManifestError, match=r"task 'diarize' maps to unknown env 'diarise'"):
        parse(data)


def test_task_mapped_twice() -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"].append({"name": "stitch", "env": "download"})
    with pytest.raises(ManifestError, match=r"task 'stitch' is mapped twice"):
        parse(data)


def test_package_in_base_and_env() -> None:
    data = variant()
    data["project"]["optional-dependencies"]["stitch"].append("SQLAlchemy>=2.0")
    with pytest.raises(
        ManifestError, match=r"'sqlalchemy' is declared both in the base and in env 'stitch'"
    ):
        parse(data)


def test_empty_env() -> None:
    data = variant()
    data["project"]["optional-dependencies"]["stitch"] = []
    with pytest.raises(ManifestError, match=r"env 'stitch' is empty"):
        parse(data)


def test_env_without_extra() -> None:
    data = variant()
    data["tool"]["signal4"]["envs"]["convert"] = {}
    with pytest.raises(ManifestError, match=r"env 'convert' has no packages"):
        parse(data)


def test_extra_without_env_table() -> None:
    data = variant()
    data["project"]["optional-dependencies"]["convert"] = ["imageio-ffmpeg"]
    with pytest.raises(
        ManifestError, match=r"extra 'convert' has no \[tool.signal4.envs.convert\]"
    ):
        parse(data)


def test_full_is_reserved() -> None:
    data = variant()
    data["tool"]["signal4"]["envs"]["full"] = {}
    data["project"]["optional-dependencies"]["full"] = ["x"]
    with pytest.raises(ManifestError, match="reserved"):
        parse(data)


def test_unknown_names_list_the_valid_ones() -> None:
    m = parse(GOOD)
    with pytest.raises(UnknownNameError) as info:
        m.task("nope")
    assert str(info.value) == "unknown task 'nope'; valid tasks: download_podcast, stitch"
    with pytest.raises(UnknownNameError, match="valid envs: download, mlx-server, stitch"):
        m.env("nope")


def test_platform_support() -> None:
    m = parse(GOOD)
    assert m.env("mlx-server").supported("darwin-arm64")
    assert not m.env("mlx-server").supported("linux-x86_64")
    assert m.env("stitch").supported("linux-x86_64")


@pytest.mark.parametrize(
    ("sys_platform", "machine", "tag"),
    [
        ("linux", "x86_64", "linux-x86_64"),
        ("linux", "aarch64", "linux-aarch64"),
        ("darwin", "arm64", "darwin-arm64"),
    ],
)
def test_this_machine_is_named_as_inv_check_names_platforms(
    monkeypatch: pytest.MonkeyPatch, sys_platform: str, machine: str, tag: str
) -> None:
    from signal4.envs import lockgraph

    monkeypatch.setattr(manifest.sys, "platform", sys_platform)
    monkeypatch.setattr(manifest.platform, "machine", lambda: machine)
    assert manifest.current_platform() == tag
    assert tag in [name for name, _sys, _machine in lockgraph.PLATFORMS]
    # an env built only there is built on this machine, and one built elsewhere is not
    only_here = manifest.Env("e", "", (), platforms=(tag,))
    assert only_here.supported()
    assert not manifest.Env("e", "", (), platforms=("sunos-sparc",)).supported()


def test_invalid_toml_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.signal4]\nx = = 1\n")
    with pytest.raises(ManifestError, match="not valid TOML"):
        manifest.load(tmp_path)


def test_project_manifest_is_valid_and_covers_the_nine_steps(
    project_manifest: manifest.Manifest,
) -> None:
    steps = {
        "download_youtube",
        "download_podcast",
        "download_rumble",
        "convert",
        "cleanup_and_compress",
        "transcribe",
        "diarize",
        "diarize_pyannote",
        "stitch",
    }
    assert steps <= set(project_manifest.tasks)
    # every env serves a task (the env list itself is data: nothing here copies it)
    served = {t.env for t in project_manifest.tasks.values()}
    assert served == set(project_manifest.envs)
    # every pipeline stage is a task with a stage name
    assert all(t.stage for t in project_manifest.pipeline_tasks())
    # torch belongs to pyannote alone, an optional env (a plain `inv sync-all` leaves it out)
    assert [e.name for e in project_manifest.envs.values() if "torch" in e.packages] == ["pyannote"]
    assert [e.name for e in project_manifest.optional_envs] == ["pyannote"]


def test_stages_and_the_pipeline_come_from_the_manifest() -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"][0]["stage"] = "download"
    data["tool"]["signal4"]["pipeline"] = ["stitch"]
    m = parse(data)
    assert m.task("download_podcast").stage == "download"
    assert m.task("stitch").stage == "stitch"  # default: the task's name
    assert [t.name for t in m.pipeline_tasks()] == ["stitch"]
    assert m.env("stitch").queue == m.task("stitch").queue == "signal4.stitch"


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [(["nope"], "unknown task 'nope'"), (["stitch", "stitch"], "names a task twice")],
)
def test_a_bad_pipeline_is_refused(pipeline: list[str], message: str) -> None:
    data = variant()
    data["tool"]["signal4"]["pipeline"] = pipeline
    with pytest.raises(ManifestError, match=message):
        parse(data)


def test_manifest_errors_carry_the_usage_exit_code() -> None:
    from signal4.codes import EXIT_USAGE
    from signal4.errors import Signal4Error

    with pytest.raises(Signal4Error) as info:
        parse({"project": {}})
    assert info.value.code == EXIT_USAGE
    assert str(info.value).startswith("manifest error: ")
    with pytest.raises(Signal4Error):
        parse(GOOD).env("nope")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", -1, "timeout must be >= 0"),
        ("timeout", float("nan"), "timeout must be >= 0"),
        ("timeout", float("inf"), "timeout must be >= 0"),
        ("timeout", "soon", "timeout must be a number"),
        ("concurrency", 0, "concurrency must be a whole number >= 1"),
        ("concurrency", -3, "concurrency must be a whole number >= 1"),
        ("concurrency", 1.5, "concurrency must be a whole number >= 1"),
        ("concurrency", True, "concurrency must be a whole number >= 1"),
    ],
)
def test_task_bounds(field: str, value: object, message: str) -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"][1][field] = value
    with pytest.raises(ManifestError, match=f"task 'stitch': {message}"):
        parse(data)


def test_a_zero_timeout_means_no_limit() -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"][1]["timeout"] = 0
    assert parse(data).task("stitch").timeout == 0.0


def test_runtime_only_must_name_a_declared_package() -> None:
    data = variant()
    data["tool"]["signal4"]["envs"]["stitch"]["runtime-only"] = [
        {"package": "setuptools", "reason": "needed at run time"}
    ]
    with pytest.raises(ManifestError, match="names 'setuptools', which env 'stitch' does not"):
        parse(data)
    data["project"]["optional-dependencies"]["stitch"].append("setuptools<81")
    assert parse(data).env("stitch").runtime_only == (("setuptools", "needed at run time"),)
    data["tool"]["signal4"]["envs"]["stitch"]["runtime-only"] = [{"package": "setuptools"}]
    with pytest.raises(ManifestError, match="needs a package and a reason"):
        parse(data)


def test_a_package_listed_twice_in_one_env() -> None:
    data = variant()
    data["project"]["optional-dependencies"]["stitch"] = ["pysbd", "PySBD>=0.3"]
    with pytest.raises(ManifestError, match="package 'pysbd' is declared twice in env 'stitch'"):
        parse(data)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("transcript.json", "must be a list of file names"),
        (["a.json", ""], "must be a list of file names"),
        (["a.json", 3], "must be a list of file names"),
        (["../other/a.json"], "must be a path inside the content folder"),
        (["/etc/passwd"], "must be a path inside the content folder"),
    ],
)
def test_a_tasks_inputs_are_file_names_inside_its_content_folder(
    inputs: object, message: str
) -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"][1]["inputs"] = inputs
    with pytest.raises(ManifestError, match=f"task 'stitch': inputs.*{message}"):
        parse(data)
    data["tool"]["signal4"]["tasks"][1]["inputs"] = ["transcript_words.json", "turns/a.json"]
    assert parse(data).task("stitch").inputs == ("transcript_words.json", "turns/a.json")


def test_the_project_root_is_the_nearest_folder_with_a_signal4_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.signal4]\n")
    sub = tmp_path / "vendored" / "lib"
    sub.mkdir(parents=True)
    (tmp_path / "vendored" / "pyproject.toml").write_text("[project]\nname = 'other'\n")
    assert manifest.find_root(sub) == tmp_path.resolve()
    assert manifest.find_root(tmp_path) == tmp_path.resolve()


def test_without_defaults_a_task_gets_an_hour_and_one_copy_at_a_time() -> None:
    data = variant()
    del data["tool"]["signal4"]["default-timeout"]
    task = parse(data).task("stitch")
    assert (task.timeout, task.concurrency) == (3600.0, 1)


def test_the_manifest_says_which_task_downloads_which_source() -> None:
    m = parse(GOOD)
    assert m.download_tasks() == ()
    with pytest.raises(ManifestError, match="no task downloads a feed source: give one task"):
        m.downloader("feed")
    data = variant()
    data["tool"]["signal4"]["tasks"] = [
        {"name": "feeds", "env": "download", "downloads": "feed"},
        {"name": "videos", "env": "download", "downloads": "url"},
        {"name": "rumble", "env": "download", "downloads": "url", "sites": ["rumble.com"]},
        {"name": "stitch", "env": "stitch"},
    ]
    m = parse(data)
    assert [t.name for t in m.download_tasks()] == ["feeds", "videos", "rumble"]
    assert (m.downloader("feed").name, m.downloader("url").name) == ("feeds", "videos")
    assert m.task("rumble").sites == ("rumble.com",)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"downloads": "torrent"}, "downloads must be one of feed, url, got 'torrent'"),
        ({"sites": ["rumble.com"]}, "sites needs downloads"),
        ({"downloads": "url", "sites": "rumble.com"}, "sites must be a list of domain names"),
        ({"downloads": "url", "sites": ["https://rumble.com/"]}, "sites must be a list of"),
    ],
)
def test_a_bad_download_entry_is_refused(entry: dict[str, Any], message: str) -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"][0].update(entry)
    with pytest.raises(ManifestError, match=message):
        parse(data)


def test_two_tasks_cannot_both_take_every_url() -> None:
    data = variant()
    data["tool"]["signal4"]["tasks"] = [
        {"name": "a", "env": "download", "downloads": "url"},
        {"name": "b", "env": "download", "downloads": "url"},
    ]
    with pytest.raises(ManifestError, match="tasks a and b both download every url source"):
        parse(data)
