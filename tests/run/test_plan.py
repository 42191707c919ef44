"""The plan of a batch (signal4.run.plan): sources -> items -> the stages each still needs.

No env runs here: URLs are routed against a loopback HTTP server, feeds are listed by a
stand-in for ``download_podcast --list``. What a rerun trigger does to a plan:
tests/run/test_provenance.py.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from signal4.envs.manifest import Manifest
from signal4.errors import UsageError
from signal4.run import plan as plan_mod
from signal4.stepkit.fetch import file_content_id
from tests.conftest import ROOT
from tests.helpers import httpserver
from tests.helpers.httpserver import Route
from tests.helpers.steps import db

SAMPLE = ROOT / plan_mod.SAMPLE
FEED = httpserver.rss([("g2", "Second Talk", "http://x/2.wav"), ("g1", "First", "http://x/1.wav")])


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    """Feeds and pages, each served as a real server might."""
    with httpserver.serve() as srv:
        srv.routes["/show"] = Route(FEED, content_type="application/rss+xml")
        srv.routes["/atom"] = Route(
            httpserver.atom([("a1", "One", "http://x/1.mp3")]),
            content_type="application/atom+xml; charset=utf-8",
        )
        srv.routes["/plain-feed"] = Route(b"\n\n  " + FEED, content_type="text/plain")
        # an HTML page whose path says "feed", and one that quotes a feed: not feeds
        srv.routes["/feed/page"] = Route(b"<html><body>hi</body></html>", content_type="text/html")
        srv.routes["/quoted"] = Route(b"<html><pre>&lt;rss" + FEED, content_type="text/html")
        srv.routes["/ep1.wav"] = Route(b"RIFF....WAVE", content_type="audio/wav")
        srv.routes["/sitemap"] = Route(
            b'<?xml version="1.0"?><urlset><url><loc>http://x/</loc></url></urlset>',
            content_type="application/xml",
        )
        yield srv


def test_routing_by_what_the_server_sends(
    project_manifest: Manifest, server: httpserver.Server
) -> None:
    def route(url: str, *, allow_loopback: bool = True) -> str:
        return plan_mod.route(project_manifest, url, allow_loopback=allow_loopback).name

    assert route(server.url("/show")) == "download_podcast"
    assert route(server.url("/feed/page")) == "download_youtube"
    assert route(server.url("/ep1.wav")) == "download_youtube"
    assert route("https://rumble.com/v4abc-talk.html") == "download_rumble"
    with pytest.raises(plan_mod.SourceError, match="HTTP 404"):
        route(server.url("/nothing"))
    with pytest.raises(plan_mod.SourceError, match="non-public"):
        route(server.url("/show"), allow_loopback=False)


def test_a_feed_is_a_feed_document_of_a_feed_type(
    project_manifest: Manifest, server: httpserver.Server
) -> None:
    def route(path: str) -> str:
        return plan_mod.route(project_manifest, server.url(path), allow_loopback=True).name

    assert route("/atom") == "download_podcast"
    assert route("/plain-feed") == "download_podcast"  # a feed served as text/plain
    assert route("/quoted") == "download_youtube"  # a page that shows a feed's text
    assert route("/sitemap") == "download_youtube"  # XML, but no feed
    # a site a task claims, its subdomains too, is routed without asking its server
    claimed = plan_mod.route(project_manifest, "https://m.rumble.com/v1.html", allow_loopback=True)
    assert claimed.name == "download_rumble"


def test_a_url_nobody_answers_is_a_source_error(project_manifest: Manifest) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once it is closed
    url = f"http://127.0.0.1:{port}/show"
    with pytest.raises(plan_mod.SourceError, match="cannot reach it") as err:
        plan_mod.route(project_manifest, url, allow_loopback=True)
    assert err.value.code == 2 and url in str(err.value)


def test_a_source_list_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text(
        "# my sources\n/media/a.wav\n\n   # indented comment\n  https://x/feed  \n",
        encoding="utf-8",
    )
    assert plan_mod.read_source_file(listing) == ["/media/a.wav", "https://x/feed"]
    with pytest.raises(UsageError, match=r"^--from .*missing.txt: No such file"):
        plan_mod.read_source_file(tmp_path / "missing.txt")


def test_a_folders_media_files_by_suffix_hidden_ones_skipped(tmp_path: Path) -> None:
    for name in ("b.wav", "A.MP3", "notes.txt", ".hidden.wav", ".cache/x.wav", "sub/c.m4a"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.wav").mkdir()  # a folder, whatever its name
    names = [
        p.relative_to(tmp_path).as_posix() for p in plan_mod.media_files(tmp_path, recursive=False)
    ]
    assert names == ["A.MP3", "b.wav"]
    deep = plan_mod.media_files(tmp_path, recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in deep] == ["A.MP3", "b.wav", "sub/c.m4a"]


def test_a_files_item_is_named_by_its_bytes_and_runs_the_pipeline(
    project_manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(SAMPLE, tmp_path / "talk.wav")
    monkeypatch.chdir(tmp_path)
    item = plan_mod.file_item(project_manifest, Path("talk.wav"))
    assert (item.source, item.title) == ("talk.wav", "talk.wav")
    assert item.content == file_content_id(tmp_path / "talk.wav") == item.label
    assert [s.task.name for s in item.stages] == [t.name for t in project_manifest.pipeline_tasks()]
    first, *rest = item.stages
    assert first.args == ["--input", str(tmp_path / "talk.wav")]  # absolute: a step runs elsewhere
    assert all(s.args == [] and not s.done for s in rest)
    # other bytes, another item; the same bytes under another name, another item too
    (tmp_path / "talk.wav").write_bytes(SAMPLE.read_bytes() + b"\0")
    assert plan_mod.file_item(project_manifest, Path("talk.wav")).content != item.content
    shutil.copy(SAMPLE, tmp_path / "other.wav")
    assert plan_mod.file_item(project_manifest, Path("other.wav")).content != item.content


def test_a_feeds_episodes_newest_first_each_with_its_download(project_manifest: Manifest) -> None:
    episodes = [
        {"url": "g3", "title": "Third", "content": "podcast-third-1"},
        {"url": "g2", "title": "Second", "content": "podcast-second-1"},
        {"url": "g1", "title": "First", "content": "podcast-first-1"},
    ]
    items = plan_mod.feed_items(project_manifest, "https://x/feed", episodes, latest=None)
    assert [(i.title, i.content) for i in items] == [
        ("Third", "podcast-third-1"),
        ("Second", "podcast-second-1"),
        ("First", "podcast-first-1"),
    ]
    download, *pipeline = items[0].stages
    assert download.task.name == "download_podcast"
    assert download.args == ["--feed", "https://x/feed", "--guid", "g3"]
    assert [s.task.name for s in pipeline] == [t.name for t in project_manifest.pipeline_tasks()]
    assert all(s.args == [] for s in pipeline)  # the content id is known: the runner adds it
    newest = plan_mod.feed_items(project_manifest, "https://x/feed", episodes, latest=2)
    assert [i.title for i in newest] == ["Third", "Second"]


def _build(m: Manifest, sources: Sequence[str], **options: Any) -> tuple[plan_mod.Plan, list[Any]]:
    def list_feed(url: str) -> list[dict[str, Any]]:
        return [{"url": "g1", "title": "First", "content": "podcast-first-1"}]

    return plan_mod.build(m, sources, db=db(), list_feed=list_feed, allow_loopback=True, **options)


def test_every_source_is_planned_once_and_a_bad_one_stops_only_itself(
    project_manifest: Manifest, tmp_path: Path, server: httpserver.Server
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        shutil.copy(SAMPLE, folder / name)
    (folder / "b.wav").write_bytes(SAMPLE.read_bytes() + b"\0")
    (tmp_path / "empty").mkdir()
    video = server.url("/feed/page")
    sources = [
        str(folder / "a.wav"),
        str(tmp_path / "missing.wav"),
        str(folder),  # a.wav again, and b.wav
        str(tmp_path / "empty"),
        server.url("/show"),
        video,
        video,  # the same video twice: one item
        server.url("/nothing"),
    ]
    plan, failed = _build(project_manifest, sources)
    assert [i.title for i in plan.items] == ["a.wav", "b.wav", "First", video]
    assert plan.items[2].content == "podcast-first-1"
    assert plan.items[3].content is None  # a video's id is known after its download
    assert plan.items[3].stages[0].args == ["--url", video]
    assert [(source, why.split(": ", 1)[1]) for source, why in failed] == [
        (str(tmp_path / "missing.wav"), "no such file or folder"),
        (str(tmp_path / "empty"), "no media files in this folder"),
        (server.url("/nothing"), "the server answered HTTP 404"),
    ]
    stages = len(project_manifest.pipeline_tasks())
    assert plan.stages_total == 2 * stages + 2 * (stages + 1) and plan.stages_done == 0


def test_what_the_state_db_records_as_done_is_done(
    project_manifest: Manifest, tmp_path: Path
) -> None:
    item = plan_mod.file_item(project_manifest, SAMPLE)
    cid = str(item.content)
    first, second, *_ = item.stages
    db().register(cid, kind="file")
    db().mark(cid, first.task.stage, "done")
    db().mark(cid, second.task.stage, "failed")
    content = tmp_path / "content"
    (content / cid).mkdir(parents=True)
    for name in second.task.inputs:  # what convert made, which the next stage reads
        (content / cid / name).write_bytes(b"x")
    plan, failed = _build(project_manifest, [str(SAMPLE)], content_root=content)
    assert failed == []
    [planned] = plan.items
    assert [s.done for s in planned.stages] == [True] + [False] * (len(planned.stages) - 1)
    assert planned.pending == planned.stages[1:] and plan.stages_done == 1
    assert all(s.reason is None for s in planned.stages)  # nothing ran before: no "why"
    # compression removed what the next stage reads: the first stage makes it again
    (content / cid / second.task.inputs[0]).unlink()
    replanned, _ = _build(project_manifest, [str(SAMPLE)], content_root=content)
    [again] = replanned.items
    assert not again.stages[0].done and again.stages[0].rewrite
    assert again.stages[0].reason == (
        f"{second.task.name} needs {second.task.inputs[0]}, removed by compression"
    )
    # an item whose id is not known yet (a video) is never marked from the DB
    video = plan_mod.download_item(
        project_manifest.downloader("url"), project_manifest, ["--url", "u"], "u", "u"
    )
    plan_mod.mark_done([video], db())
    assert not any(s.done for s in video.stages)


def test_a_stage_done_before_runs_again_with_rewrite(project_manifest: Manifest) -> None:
    stage = plan_mod.Stage(project_manifest.task("stitch"), [])
    stage.rerun("after transcribe")
    assert (stage.done, stage.rewrite, stage.reason) == (False, False, "after transcribe")
    stage.done = True
    stage.rerun("env changed")
    assert (stage.done, stage.rewrite, stage.reason) == (False, True, "env changed")
    stage.rerun("again")  # still to be rewritten
    assert stage.rewrite and stage.label == "stitch"
