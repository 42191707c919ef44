"""Download podcast episodes: read an RSS 2.0 / Atom / iTunes feed, fetch the enclosures."""

from __future__ import annotations

import argparse
import calendar
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from signal4.codes import StageState, Status
from signal4.content.store import check_id
from signal4.stepkit.fetch import (
    UnsafeURL,
    check_url,
    content_id,
    is_media_type,
    media_kept,
    safe_filename,
)
from signal4.stepkit.progress import Progress
from signal4.stepkit.step import (
    Context,
    InvalidInput,
    Step,
    StepFailure,
    number,
)

#: A feed document larger than this is refused (the media limit is a setting).
MAX_FEED_BYTES = 50 * 1024**2


@dataclass(frozen=True)
class Episode:
    """One feed entry with a media enclosure."""

    guid: str
    title: str
    url: str
    type: str | None
    published: str | None
    feed_title: str

    @property
    def content_id(self) -> str:
        """The deterministic content id of this episode."""
        return content_id("podcast", self.title or self.feed_title, self.guid or self.url)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feed", required=True, metavar="URL", help="RSS or Atom feed URL")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--episode",
        type=number(int, ge=1),
        metavar="N",
        help="download the Nth episode, newest first (1 = newest; the default)",
    )
    pick.add_argument("--guid", help="download the episode with this guid (or id)")
    pick.add_argument(
        "--all",
        action="store_true",
        help="download every episode: each is tried, and any failure makes the step exit 1",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="only list the episodes and their content ids; download nothing",
    )


def ready() -> None:
    # rich is imported only when stderr is a terminal, so a worker run never loads it.
    # httpx imports its transport (httpcore, certifi) in the first Client(), which a run
    # makes: import them here, without building a client (that loads the CA bundle, work
    # each run repeats, so a warm worker's ready probe would pay it too).
    import certifi  # noqa: F401
    import feedparser  # noqa: F401
    import httpcore  # noqa: F401
    import httpx  # noqa: F401
    import imageio_ffmpeg  # noqa: F401

    # A real run reads the settings.
    import signal4.content.settings  # noqa: F401


def http_client(settings: Any) -> Any:
    """An httpx client that follows redirects and refuses unsafe URLs on every hop."""
    import httpx

    def _check(request: httpx.Request) -> None:
        check_url(str(request.url), allow_loopback=settings.allow_loopback)

    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(settings.http_timeout),
        headers={"User-Agent": "signal4/0.1 (+podcast downloader)"},
        event_hooks={"request": [_check]},
    )


def fetch_feed(client: Any, url: str) -> bytes:
    """Return the feed document at ``url`` (InvalidInput on HTTP errors or an over-size body)."""
    import httpx

    try:
        with client.stream("GET", url) as response:
            _check_status(response, url)
            body = bytearray()
            for block in response.iter_bytes():
                body += block
                if len(body) > MAX_FEED_BYTES:
                    raise InvalidInput(f"feed {url} is larger than {MAX_FEED_BYTES} bytes")
            return bytes(body)
    except UnsafeURL as exc:
        raise InvalidInput(str(exc)) from None
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"feed {url!r} is not a valid URL: {exc}") from None
    except httpx.TransportError as exc:
        raise StepFailure(f"could not fetch feed {url}: {exc!r}; check the URL and retry") from None


def parse_feed(body: bytes, url: str) -> list[Episode]:
    """Return the feed's episodes with a media enclosure, newest first."""
    import feedparser

    # No base URL is given to feedparser, so guids stay exactly as the feed writes them
    # (they key the content id); relative enclosure URLs are resolved here instead.
    doc = feedparser.parse(body)
    if doc.get("bozo") and not isinstance(
        doc.get("bozo_exception"), feedparser.ThingsNobodyCaresAboutButMe
    ):
        raise InvalidInput(f"feed {url} is not well-formed XML: {doc.get('bozo_exception')}")
    if not doc.get("version"):
        raise InvalidInput(f"{url} is not an RSS or Atom feed")
    feed_title = str(doc.feed.get("title") or "")
    dated: list[tuple[float | None, int, Episode]] = []
    for i, entry in enumerate(doc.entries):
        enclosure = _media_enclosure(entry.get("enclosures") or [])
        if enclosure is None:
            continue
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        stamp = float(calendar.timegm(when)) if when else None
        dated.append(
            (
                stamp,
                i,
                Episode(
                    guid=str(entry.get("id") or entry.get("guid") or ""),
                    title=str(entry.get("title") or ""),
                    url=_absolute(url, str(enclosure["href"])),
                    type=enclosure.get("type"),
                    published=entry.get("published") or entry.get("updated"),
                    feed_title=feed_title,
                ),
            )
        )
    if not dated:
        raise InvalidInput(f"feed {url} has no episodes with an audio or video enclosure")
    if all(stamp is not None for stamp, _, _ in dated):
        dated.sort(key=lambda t: (-(t[0] or 0.0), t[1]))
    return [ep for _, _, ep in dated]


def _absolute(base: str, href: str) -> str:
    """``href`` resolved against the feed's URL (as written if it does not parse)."""
    try:
        return urljoin(base, href)
    except ValueError:
        return href  # refused when it is fetched


def _media_enclosure(enclosures: list[Any]) -> Any | None:
    with_href = [e for e in enclosures if e.get("href")]
    for enc in with_href:
        if is_media_type(enc.get("type")):
            return enc
    return None


def _check_status(response: Any, url: str) -> None:
    if response.status_code >= 400:
        raise InvalidInput(
            f"HTTP {response.status_code} {response.reason_phrase} from {response.url} "
            f"(asked for {url})"
        )


def select(episodes: list[Episode], options: argparse.Namespace) -> list[Episode]:
    """The episodes the options ask for."""
    if options.all or options.list:
        return episodes
    if options.guid is not None:
        hits = [ep for ep in episodes if options.guid in (ep.guid, ep.url)]
        if not hits:
            raise InvalidInput(f"no episode with guid {options.guid!r} in the feed")
        return hits[:1]
    n = options.episode or 1
    if not 1 <= n <= len(episodes):
        raise InvalidInput(f"--episode {n}: the feed has episodes 1..{len(episodes)}")
    return [episodes[n - 1]]


def download_file(client: Any, url: str, folder: Path, ctx: Context) -> dict[str, Any]:
    """Stream ``url`` into ``folder`` atomically; return file name, bytes and probe info."""
    import httpx

    from signal4.stepkit import media

    limit = ctx.settings.max_download_bytes
    try:
        with client.stream("GET", url) as response:
            _check_status(response, url)
            ctype = response.headers.get("content-type")
            if not is_media_type(ctype):
                raise InvalidInput(f"{url} is {ctype}, not audio or video")
            length = response.headers.get("content-length") or "0"
            declared = int(length) if length.isdigit() else 0
            if declared > limit:
                raise InvalidInput(
                    f"{url} is {declared} bytes, over the limit of {limit} "
                    "(SIGNAL4_MAX_DOWNLOAD_BYTES)"
                )
            name = safe_filename(url, content_type=ctype)
            target = ctx.store.path(folder.name, name)
            with ctx.store.atomic_path(target) as tmp:
                size = _stream_to(response, tmp, limit, declared, url, label=name)
                if size == 0:
                    raise InvalidInput(f"{url} returned an empty body (0 bytes)")
                try:
                    info = media.probe(tmp)
                except media.MediaError as exc:
                    raise InvalidInput(f"{url} is not audio or video: {exc}") from None
                if not (info.audio or info.video):
                    raise InvalidInput(f"{url} has no audio or video stream")
    except UnsafeURL as exc:
        raise InvalidInput(str(exc)) from None
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"enclosure {url!r} is not a valid URL: {exc}") from None
    except httpx.TransportError as exc:
        raise StepFailure(
            f"download of {url} broke off: {exc!r}; nothing was kept, run the step again"
        ) from None
    return {
        "file": name,
        "bytes": size,
        "content_type": ctype,
        "duration": info.duration,
        "audio": bool(info.audio),
        "video": bool(info.video),
    }


def _stream_to(response: Any, tmp: Path, limit: int, declared: int, url: str, *, label: str) -> int:
    size = 0
    progress = _progress(declared, label) if sys.stderr.isatty() else None
    told = Progress("bytes", declared or None)  # the runner's view, when it asks
    try:
        with tmp.open("wb") as fh:
            for block in response.iter_bytes(1 << 16):
                size += len(block)
                if size > limit:
                    raise InvalidInput(
                        f"{url} is larger than the limit of {limit} bytes "
                        "(SIGNAL4_MAX_DOWNLOAD_BYTES)"
                    )
                fh.write(block)
                told.update(size)
                if progress is not None:
                    progress[0].update(progress[1], completed=size)
            fh.flush()
            os.fsync(fh.fileno())
        told.finish()
    finally:
        if progress is not None:
            progress[0].stop()
    return size


def _progress(total: int, label: str) -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    progress.start()
    return progress, progress.add_task(label, total=total or None)


def download_episode(
    client: Any, ctx: Context, cid: str, ep: Episode, feed: str, rewrite: bool
) -> dict[str, Any]:
    """Download one episode into content ``cid`` and record it; skip what is already done.

    A failed download takes away the content folder if it made it (it then holds nothing
    but what this run wrote), and records the failure (:meth:`Context.mark`).
    """
    item = ctx.item(cid)
    if item is not None and not rewrite:
        name = (item.get("meta") or {}).get("media")
        if name and ctx.store.path(cid, name).is_file():
            ctx.mark(cid, "download", StageState.DONE, skipped=True)
            return {"content": cid, "status": Status.SKIPPED, "file": name}
    meta = {
        "feed": feed,
        "guid": ep.guid,
        "published": ep.published,
        "feed_title": ep.feed_title,
        "enclosure_type": ep.type,
    }
    ctx.register(
        cid,
        kind="podcast",
        source_url=ep.url,
        title=ep.title or None,
        meta={**((item.get("meta") or {}) if item else {}), **meta},
        write=False,  # item.json once the media is in
    )
    folder = ctx.store.folder(cid)
    new_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        got = download_file(client, ep.url, folder, ctx)
    except BaseException as exc:
        if new_folder:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, (InvalidInput, StepFailure)):
            status = Status.INVALID_INPUT if isinstance(exc, InvalidInput) else Status.FAILED
            kept = media_kept(ctx, cid)
            ctx.mark(cid, "download", status, error=str(exc), outputs_kept=kept)
        raise
    ctx.register(
        cid,
        kind="podcast",
        duration=got["duration"],
        meta={
            **meta,
            "media": got["file"],
            "bytes": got["bytes"],
            "content_type": got["content_type"],
        },
    )
    ctx.mark(cid, "download", StageState.DONE, info=got)
    return {"content": cid, "status": Status.COMPLETED, **got}


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    if options.content and options.all:
        raise InvalidInput("--content names one item; it cannot be used with --all")
    if options.content:
        check_id(options.content)
    try:
        feed = check_url(options.feed, allow_loopback=ctx.settings.allow_loopback)
    except UnsafeURL as exc:
        raise InvalidInput(str(exc)) from None
    with http_client(ctx.settings) as client:
        episodes = parse_feed(fetch_feed(client, feed), feed)
        chosen = select(episodes, options)
        if options.list:
            return {
                "status": Status.COMPLETED,
                "feed": feed,
                "episodes": [
                    {
                        "n": i,
                        "content": ep.content_id,
                        "title": ep.title,
                        "url": ep.url,
                        "published": ep.published,
                    }
                    for i, ep in enumerate(episodes, 1)
                ],
            }
        if len(chosen) == 1:
            ep = chosen[0]
            done = [
                download_episode(
                    client, ctx, options.content or ep.content_id, ep, feed, options.rewrite
                )
            ]
        else:
            done = [_download_or_record(client, ctx, ep, feed, options.rewrite) for ep in chosen]
    failed = [d for d in done if d["status"] in (Status.FAILED, Status.INVALID_INPUT)]
    result: dict[str, Any] = {
        "feed": feed,
        "contents": [d["content"] for d in done if d not in failed],
        "downloads": done,
    }
    if failed:
        # Every episode was tried; the failed ones carry their error in the state DB.
        all_bad_input = len(failed) == len(done) and all(
            d["status"] == Status.INVALID_INPUT for d in failed
        )
        result["status"] = Status.INVALID_INPUT if all_bad_input else Status.FAILED
        result["error"] = (
            f"{len(failed)} of {len(done)} episodes failed; first: "
            f"{failed[0]['content']}: {failed[0]['error']}"
        )
    elif all(d["status"] == Status.SKIPPED for d in done):
        result["status"] = Status.SKIPPED
    else:
        result["status"] = Status.COMPLETED
    return result


def _download_or_record(
    client: Any, ctx: Context, ep: Episode, feed: str, rewrite: bool
) -> dict[str, Any]:
    """Download one of several episodes; its failure (recorded by download_episode) is returned."""
    try:
        return download_episode(client, ctx, ep.content_id, ep, feed, rewrite)
    except (InvalidInput, StepFailure) as exc:
        status = Status.INVALID_INPUT if isinstance(exc, InvalidInput) else Status.FAILED
        return {"status": status, "content": ep.content_id, "error": str(exc)}


STEP = Step(
    name="download_podcast",
    description="Register podcast episodes from an RSS/Atom feed and download their media.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="download",
    needs_content=False,
    outputs_kept=media_kept,
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
