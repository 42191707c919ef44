"""Env sizes as ``inv measure`` reports them: hard-linked files count once in the union."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from signal4.envs import manifest
from signal4.measure import disk

DATA = {
    "project": {"optional-dependencies": {"a": ["pysbd"], "b": ["pysbd2"]}},
    "tool": {"signal4": {"envs": {"a": {}, "b": {}}, "tasks": []}},
}


def _fake_uv(tmp_path: Path, cache: Path) -> str:
    script = tmp_path / "uv"
    script.write_text(f"#!/bin/sh\necho {cache}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_the_union_counts_a_file_the_envs_share_once(tmp_path: Path) -> None:
    m = manifest.parse(DATA, tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "wheel-file").write_bytes(b"x" * 1000)
    (cache / "unlinked").write_bytes(b"y" * 300)
    for env, own in (("a", 10), ("b", 20)):
        site = tmp_path / "envs" / env / ".venv" / "lib" / "python3.11" / "site-packages"
        site.mkdir(parents=True)
        os.link(cache / "wheel-file", site / "shared.py")  # uv hard-links from its cache
        (site / "own.py").write_bytes(b"z" * own)
        (site / "pkg-1.0.dist-info").mkdir()
    report = disk.disk_report(m, uv=_fake_uv(tmp_path, cache), lock="nolock")
    a, b = report.envs["a"], report.envs["b"]
    assert a.size is not None and b.size is not None
    assert (a.size.apparent_bytes, a.size.unique_bytes, a.size.packages) == (1010, 1010, 1)
    assert (b.size.apparent_bytes, b.size.unique_bytes) == (1020, 1020)
    assert report.sub_envs_apparent_bytes == 2030
    assert report.sub_envs_unique_bytes == 1030  # the shared file once
    assert report.envs["full"].state == "missing" and report.full_beyond_sub_envs_bytes is None
    assert report.uv_cache is not None
    assert (report.uv_cache.apparent_bytes, report.uv_cache.beyond_envs_bytes) == (1300, 300)
    assert report.all_unique_bytes == 1030 + 300


def test_a_missing_env_and_no_uv_cache_are_reported_as_such(tmp_path: Path) -> None:
    m = manifest.parse(DATA, tmp_path)
    report = disk.disk_report(m, uv=str(tmp_path / "no-uv"), lock="nolock")
    assert {name: e.state for name, e in report.envs.items()} == {
        "a": "missing",
        "b": "missing",
        "full": "missing",
    }
    assert report.uv_cache is None and report.all_unique_bytes == 0
