"""What the download steps share: URL checks, safe file names, content ids. Stdlib only."""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
import socket
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: Content types a media download may have (the body is probed with ffmpeg afterwards).
MEDIA_TYPES = ("audio/", "video/")
MEDIA_EXACT = (
    "application/octet-stream",
    "application/ogg",
    "application/mp4",
    "binary/octet-stream",
)
MEDIA_EXTS = {
    ".mp3",
    ".m4a",
    ".mp4",
    ".aac",
    ".ogg",
    ".oga",
    ".opus",
    ".wav",
    ".flac",
    ".webm",
    ".mkv",
    ".mov",
    ".m4v",
    ".wma",
    ".mpga",
    ".mpeg",
    ".3gp",
    ".avi",
}
#: What the name of a source's copy in its content folder starts with; no output of the
#: pipeline does, so a source named like one (``diarization.rttm``, ``item.json``) keeps
#: its own copy.
SOURCE_PREFIX = "source-"


class UnsafeURL(ValueError):
    """A URL the downloaders refuse to fetch."""


def check_url(url: str, *, allow_loopback: bool) -> str:
    """Return ``url`` if it is http(s) to a public host (or loopback/private, if allowed).

    A URL that does not parse (``http://[::1``, a port out of range) is an UnsafeURL too.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UnsafeURL(f"refusing {url!r}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(f"refusing {url!r}: only http and https URLs are allowed")
    if not host:
        raise UnsafeURL(f"refusing {url!r}: no host")
    if allow_loopback:
        return url
    try:
        infos = socket.getaddrinfo(host, port or 0, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UnsafeURL(f"cannot resolve host {host!r}: {exc}") from None
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not addr.is_global or addr.is_multicast:
            raise UnsafeURL(
                f"refusing {url!r}: {host} resolves to the non-public address {addr} "
                "(set SIGNAL4_ALLOW_LOOPBACK=1 to allow local hosts)"
            )
    return url


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` ('' if it has none, or does not parse)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def media_kept(ctx: Any, content: str) -> bool:
    """Whether the downloaded media file of ``content`` (its ``meta["media"]``) is on disk."""
    item = ctx.item(content)
    name = ((item.get("meta") or {}) if item is not None else {}).get("media")
    return bool(name) and ctx.store.path(content, name).is_file()


def is_local_host(host: str) -> bool:
    """Whether ``host`` is this machine or a private network address (not a site's name)."""
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not addr.is_global


def on_site(url: str, domain: str) -> bool:
    """Whether ``url``'s host is ``domain`` or one of its subdomains."""
    host = host_of(url)
    return host == domain or host.endswith("." + domain)


def slug(text: str, max_len: int = 40) -> str:
    """Return ``text`` as lowercase ASCII letters, digits and single dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return s[:max_len].strip("-")


def short_hash(text: str, n: int = 10) -> str:
    """A short, stable hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def content_id(prefix: str, title: str | None, key: str) -> str:
    """A deterministic content id: ``<prefix>-<slug of title>-<hash of key>``."""
    parts = [p for p in (slug(prefix, 20), slug(title or "", 40)) if p]
    return "-".join([*parts, short_hash(key)])


def file_content_id(path: Path) -> str:
    """The content id of a local media file (``convert --input``): its name and bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return content_id("file", path.stem, h.hexdigest())


def is_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names audio, video or opaque bytes (or is missing)."""
    if not content_type:
        return True
    main = content_type.split(";", 1)[0].strip().lower()
    return main.startswith(MEDIA_TYPES) or main in MEDIA_EXACT


def safe_filename(url: str, *, content_type: str | None = None, default: str = "media") -> str:
    """The name a source's copy gets in its content folder, from the last segment of ``url``:
    no dirs, query, spaces, non-ASCII, and :data:`SOURCE_PREFIX` in front."""
    name = posixpath.basename(unquote(urlsplit(url).path).replace("\\", "/"))
    stem, ext = posixpath.splitext(name)
    ext = ext.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", ext or "") else ""
    if ext not in MEDIA_EXTS:
        ext = _ext_for_type(content_type) or ext or ".bin"
    clean = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", clean).strip("-_")[:80] or default
    return f"{SOURCE_PREFIX}{clean}{ext}"


def _ext_for_type(content_type: str | None) -> str | None:
    main = (content_type or "").split(";", 1)[0].strip().lower()
    return {
        "audio/mpeg": ".mp3",
        "audio/mp3": ".mp3",
        "audio/mp4": ".m4a",
        "audio/x-m4a": ".m4a",
        "audio/aac": ".aac",
        "audio/ogg": ".ogg",
        "audio/opus": ".opus",
        "audio/wav": ".wav",
        "audio/x-wav": ".wav",
        "audio/wave": ".wav",
        "audio/flac": ".flac",
        "audio/webm": ".webm",
        "video/mp4": ".mp4",
        "video/webm": ".webm",
        "video/quicktime": ".mov",
        "video/x-matroska": ".mkv",
        "application/ogg": ".ogg",
        "application/mp4": ".mp4",
    }.get(main)
