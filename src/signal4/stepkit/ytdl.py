"""The one yt-dlp download implementation behind download_youtube and download_rumble.

yt-dlp runs through its Python API (``yt_dlp.YoutubeDL``) into a temporary folder inside
the content folder; only a complete, probed file is moved to its final name.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from signal4.codes import StageState, Status
from signal4.content.store import TMP_PREFIX, InvalidContentId, check_id
from signal4.stepkit.fetch import (
    UnsafeURL,
    check_url,
    content_id,
    host_of,
    is_local_host,
    on_site,
    slug,
)
from signal4.stepkit.progress import Progress
from signal4.stepkit.step import DISK_FULL, Context, InvalidInput, StepFailure

META = "meta.json"
#: Bulky parts of yt-dlp's info dict that meta.json leaves out.
DROP_KEYS = (
    "formats",
    "thumbnails",
    "automatic_captions",
    "subtitles",
    "heatmap",
    "requested_formats",
    "requested_downloads",
    "http_headers",
    "_format_sort_fields",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the video page (or direct media) URL")
    parser.add_argument(
        "--video", action="store_true", help="keep the video too (default: audio only)"
    )
    parser.add_argument(
        "--cookies",
        type=Path,
        metavar="FILE",
        help="a Netscape-format cookies.txt for sites that need a login",
    )


def ready() -> None:
    import imageio_ffmpeg  # noqa: F401
    import yt_dlp  # noqa: F401

    # A real run reads the settings.
    import signal4.content.settings  # noqa: F401


class _StderrLogger:
    """Route yt-dlp's messages to stderr: stdout is kept for the result line."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def debug(self, msg: str) -> None:
        if self.verbose and not msg.startswith("[debug] "):
            print(msg, file=sys.stderr)

    def info(self, msg: str) -> None:
        self.debug(msg)

    def warning(self, msg: str) -> None:
        print(f"yt-dlp: {msg}", file=sys.stderr)

    def error(self, msg: str) -> None:
        print(f"yt-dlp: {msg}", file=sys.stderr)


def _base_options(ctx: Context, cookies: Path | None) -> dict[str, Any]:
    from signal4.stepkit import media

    tty = sys.stderr.isatty()
    opts: dict[str, Any] = {
        "quiet": not tty,
        "noprogress": not tty,
        "logger": _StderrLogger(verbose=tty),
        "noplaylist": True,
        "cachedir": False,  # write nothing outside the content folder
        "ffmpeg_location": media.ffmpeg_exe(),
        "max_filesize": ctx.settings.max_download_bytes,
        "socket_timeout": ctx.settings.http_timeout,
        "color": {"stderr": "auto" if tty else "no_color", "stdout": "no_color"},
    }
    if cookies is not None:
        if not cookies.is_file():
            raise InvalidInput(f"--cookies {cookies}: no such file")
        opts["cookiefile"] = str(cookies)
    return opts


def _progress_hook(progress: Progress) -> Any:
    """A yt-dlp progress hook that reports the bytes downloaded (see stepkit.progress)."""

    def hook(d: dict[str, Any]) -> None:
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        progress.update(d.get("downloaded_bytes") or 0, total)
        if d.get("status") == "finished":
            progress.finish()

    return hook


def _raise_for(exc: Exception, url: str) -> None:
    """Turn a yt-dlp error into InvalidInput (bad URL or media) or StepFailure (network).

    A full disk is neither: its OSError is raised as it is (the step reports the disk).
    """
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    cause = getattr(exc, "exc_info", None)
    cause = cause[1] if cause else exc.__cause__
    text = str(exc).removeprefix("ERROR: ")
    if isinstance(cause, OSError) and cause.errno in DISK_FULL:
        raise cause
    if "No space left on device" in text:
        raise OSError(errno.ENOSPC, text)
    if isinstance(cause, TransportError) and not isinstance(cause, HTTPError):
        raise StepFailure(f"download of {url} broke off: {text}; run the step again") from None
    raise InvalidInput(f"yt-dlp cannot download {url}: {text}") from None


def _content_id(kind: str, info: dict[str, Any], url: str) -> str:
    if info.get("extractor_key") != "Generic" and info.get("id"):
        with contextlib.suppress(InvalidContentId):
            return check_id(f"{kind}-{info['id']}")
    return content_id(kind, str(info.get("title") or ""), str(info.get("webpage_url") or url))


def download(options: argparse.Namespace, ctx: Context, *, kind: str) -> dict[str, Any]:
    """Download ``options.url`` with yt-dlp into its content folder and record it."""
    import yt_dlp

    from signal4.stepkit import media

    try:
        url = check_url(options.url, allow_loopback=ctx.settings.allow_loopback)
    except UnsafeURL as exc:
        raise InvalidInput(str(exc)) from None
    local = ctx.settings.allow_loopback and is_local_host(host_of(url))
    if kind == "rumble" and not (on_site(url, "rumble.com") or local):
        raise InvalidInput(
            f"{url} is not a Rumble URL; use download_youtube for other sites yt-dlp knows"
        )
    if options.content:
        check_id(options.content)
    base = _base_options(ctx, options.cookies)
    try:
        with yt_dlp.YoutubeDL(base) as ydl:
            info = ydl.extract_info(url, download=False)
    except yt_dlp.utils.YoutubeDLError as exc:
        _raise_for(exc, url)
        raise
    if info is None or info.get("_type") == "playlist":
        raise InvalidInput(f"{url} is a playlist or channel; give the URL of one video")
    cid = options.content or _content_id(kind, info, url)
    options.content = cid
    store = ctx.store
    item = ctx.item(cid)
    if item is not None and not options.rewrite:
        name = (item.get("meta") or {}).get("media")
        if name and store.path(cid, name).is_file():
            return {"status": Status.SKIPPED, "content": cid, "file": name}
    title = info.get("title")
    ctx.register(
        cid,
        kind=kind,
        source_url=info.get("webpage_url") or url,
        title=str(title) if title else None,
        write=False,  # item.json once the media is in
    )

    folder = store.folder(cid)
    new_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "ytdl-", dir=folder))
    try:
        opts = {
            **base,
            "format": "bestvideo*+bestaudio/best" if options.video else "bestaudio/best",
            "outtmpl": {"default": "media.%(ext)s"},
            "paths": {"home": str(work), "temp": str(work)},
            "progress_hooks": [_progress_hook(Progress("bytes"))],
        }
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                info = ydl.extract_info(url, download=True)
                clean = ydl.sanitize_info(info)
        except yt_dlp.utils.YoutubeDLError as exc:
            _raise_for(exc, url)
            raise
        files = [
            Path(d["filepath"])
            for d in info.get("requested_downloads") or []
            if d.get("filepath") and Path(d["filepath"]).is_file()
        ]
        if not files:
            raise InvalidInput(
                f"yt-dlp downloaded nothing from {url} (over SIGNAL4_MAX_DOWNLOAD_BYTES?)"
            )
        got = files[0]
        try:
            probed = media.probe(got)
        except media.MediaError as exc:
            raise InvalidInput(f"{url} is not audio or video: {exc}") from None
        if not probed.has_audio:
            raise InvalidInput(f"{url} has no audio stream; there is nothing to transcribe")
        if probed.video and not options.video:
            audio_only = work / "audio-only.mka"
            media.run_ffmpeg(
                ["-i", str(got), "-map", "0:a:0", "-vn", "-c:a", "copy", str(audio_only)]
            )
            got, probed = audio_only, media.probe(audio_only)
        name = f"media{got.suffix.lower() or '.bin'}"
        meta = {k: v for k, v in clean.items() if k not in DROP_KEYS}
        store.write_json(store.path(cid, META), meta)
        os.replace(got, store.path(cid, name))
    except BaseException:
        # a folder this run made holds nothing but what it wrote: take it away whole
        shutil.rmtree(folder if new_folder else work, ignore_errors=True)
        raise  # the step records the failure (Step.call, with outputs_kept)
    shutil.rmtree(work, ignore_errors=True)

    size = store.path(cid, name).stat().st_size
    ctx.register(
        cid,
        kind=kind,
        duration=probed.duration,
        meta={
            "media": name,
            "bytes": size,
            "extractor": info.get("extractor_key"),
            "id": info.get("id"),
            "uploader": info.get("uploader"),
            "video": bool(probed.video),
            "slug": slug(str(title or "")),
        },
    )
    ctx.mark(
        cid,
        "download",
        StageState.DONE,
        info={"file": name, "bytes": size, "duration": probed.duration},
    )
    return {
        "status": Status.COMPLETED,
        "content": cid,
        "file": name,
        "bytes": size,
        "duration": probed.duration,
        "video": bool(probed.video),
        "meta": META,
    }
