"""One plan for a batch: sources -> items -> the stages each item still needs.

A *source* is a media file, a folder of them, a feed URL (every episode, newest first),
or a video or media URL. A URL is routed by what its server sends, not by words in it:
an RSS/Atom document is a podcast feed, a media type is a direct download (yt-dlp's
generic extractor), anything else (HTML, unknown) goes to yt-dlp; a site a download task
claims (``sites = ["rumble.com"]`` in the manifest) goes to that task whatever it serves.
The manifest's ``downloads = "feed" | "url"`` says which task takes which (see
:meth:`~signal4.envs.manifest.Manifest.downloader`). Each *item* gets its stages: its
download (if any), then the
manifest's ``[tool.signal4] pipeline``, each marked done from the state DB when the
item's content id is known up front (files and feed episodes; a video's id is known only
after its download).

The local runner (:mod:`signal4.run.batch`) and the warm-worker runner execute this
same plan; ``inv pipeline --dry-run`` prints it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.codes import StageState
from signal4.envs.manifest import Manifest, Task
from signal4.errors import UsageError
from signal4.stepkit.fetch import MEDIA_EXTS, UnsafeURL, check_url, file_content_id, on_site

if TYPE_CHECKING:
    from signal4.content.state import StateDB
    from signal4.run.provenance import Checker

#: What ``inv pipeline`` runs on when given no source (relative to the project root).
SAMPLE = Path("samples") / "two_speakers" / "audio.wav"
#: How much of a URL's body is read to tell a feed from a page.
SNIFF_BYTES = 64 * 1024
SNIFF_TIMEOUT = 20.0
FEED_MARKERS = (b"<rss", b"<feed", b"<rdf:rdf")
#: Above this many items, the plan reads the whole state DB in one query instead of
#: asking for each id.
BULK_IDS = 500


class SourceError(UsageError):
    """A source that cannot be planned (no such file, an unreachable or refused URL)."""


@dataclass
class Stage:
    """One step of one item: the task, its arguments, and whether it is done already."""

    task: Task
    args: list[str]
    done: bool = False
    #: Why a stage recorded done runs again (its provenance differs, or an earlier stage
    #: runs); None for a stage that simply is not done.
    reason: str | None = None
    #: Run with ``--rewrite``: the stage is done, but its outputs are to be made again.
    rewrite: bool = False

    @property
    def label(self) -> str:
        return self.task.name

    def rerun(self, reason: str) -> None:
        """Make this stage run again (with ``--rewrite`` if it was done) for ``reason``."""
        self.rewrite = self.rewrite or self.done
        self.done = False
        self.reason = reason


@dataclass
class Item:
    """One piece of media and the stages it still needs."""

    source: str
    title: str
    stages: list[Stage]
    #: The content id, when it is known before anything runs.
    content: str | None = None
    #: Why the item cannot run at all (an episode the feed lists without media, say).
    error: str | None = None

    @property
    def label(self) -> str:
        return self.content or self.title

    @property
    def pending(self) -> list[Stage]:
        return [s for s in self.stages if not s.done]


@dataclass
class Plan:
    """Every item of a batch, in the order the sources gave them."""

    items: list[Item] = field(default_factory=list)

    @property
    def stages_total(self) -> int:
        return sum(len(i.stages) for i in self.items)

    @property
    def stages_done(self) -> int:
        return sum(len(i.stages) - len(i.pending) for i in self.items)


def read_source_file(path: Path) -> list[str]:
    """The sources listed in ``path``: one per line; blank lines and ``#`` comments skipped.

    UTF-8 text (a byte-order mark at its start is no part of the first source); anything
    else (a binary file, a NUL byte) is a :class:`UsageError` saying so. A source listed
    twice is planned once.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--from {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--from {path}: not a text file of sources (not UTF-8 at byte {exc.start}); "
            "give a file with one source per line"
        ) from None
    if "\0" in text:
        raise UsageError(f"--from {path}: not a text file of sources (it holds a NUL byte)")
    lines = (line.strip() for line in text.splitlines())
    return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


def media_files(folder: Path, *, recursive: bool) -> list[Path]:
    """The media files in ``folder`` (by suffix), sorted; hidden files and folders skipped."""
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in MEDIA_EXTS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def sniff(url: str, *, timeout: float = SNIFF_TIMEOUT) -> tuple[str, bytes]:
    """(content type, the first bytes of the body) of ``url``; SourceError if it fails."""
    request = urllib.request.Request(url, headers={"User-Agent": "signal4-planner"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return str(response.headers.get("Content-Type") or ""), response.read(SNIFF_BYTES)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{url}: the server answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"{url}: cannot reach it ({reason})") from None


def route(m: Manifest, url: str, *, allow_loopback: bool) -> Task:
    """Which download task takes ``url``: one whose ``sites`` claim it, else the one of what
    it serves (a feed, or anything else)."""
    try:
        check_url(url, allow_loopback=allow_loopback)
    except UnsafeURL as exc:
        raise SourceError(str(exc)) from None
    for task in m.download_tasks():
        if any(on_site(url, site) for site in task.sites):
            return task
    content_type, head = sniff(url)
    main = content_type.split(";", 1)[0].strip().lower()
    body = head.lstrip()[:4096].lower()
    feed_body = any(marker in body for marker in FEED_MARKERS)
    feed_type = (
        not main
        or any(w in main for w in ("xml", "rss", "atom"))
        or main
        in (
            "text/plain",
            "application/octet-stream",
        )
    )
    if feed_body and feed_type:
        return m.downloader("feed")
    # a media type (a direct download: yt-dlp's generic extractor), HTML, or anything else
    return m.downloader("url")


def _pipeline_stages(m: Manifest, first_args: list[str]) -> list[Stage]:
    tasks = m.pipeline_tasks()
    return [Stage(t, list(first_args) if i == 0 else []) for i, t in enumerate(tasks)]


def file_item(m: Manifest, path: Path, ids: dict[Path, str] | None = None) -> Item:
    """The item of a local media file: its content id comes from its name and bytes
    (worked out once per file in ``ids``); :class:`SourceError` if it cannot be read."""
    src = path.expanduser().resolve()
    ids = {} if ids is None else ids
    if src not in ids:
        try:
            ids[src] = file_content_id(src)
        except OSError as exc:
            raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return Item(
        source=str(path),
        title=src.name,
        content=ids[src],
        stages=_pipeline_stages(m, ["--input", str(src)]),
    )


def download_item(task: Task, m: Manifest, args: list[str], source: str, title: str) -> Item:
    """An item fetched by ``task``; its content id is known once the download ran."""
    return Item(source=source, title=title, stages=[Stage(task, args), *_pipeline_stages(m, [])])


def feed_items(
    m: Manifest,
    url: str,
    episodes: Sequence[dict[str, Any]],
    *,
    latest: int | None,
) -> list[Item]:
    """One item per episode of a feed, newest first (as the feed lists them)."""
    chosen = list(episodes)[:latest] if latest else list(episodes)
    items = []
    for ep in chosen:
        args = ["--feed", url, "--guid", str(ep["url"])]
        item = download_item(m.downloader("feed"), m, args, url, str(ep["title"]))
        item.content = str(ep["content"])
        items.append(item)
    return items


def mark_done(
    items: Iterable[Item],
    db: StateDB,
    *,
    checker: Checker | None = None,
    content_root: Path | None = None,
) -> None:
    """Mark the stages the state DB records as done (items with a known content id).

    With a ``checker``, a done stage whose provenance says it would be made differently
    now (for the checker's triggers) runs again, and so does every stage after a stage
    that runs; a stage with no provenance (done before it was recorded) stays done.
    Downloads are never re-run by a trigger: what they fetched is the item itself. A stage
    that runs but whose inputs compression removed brings back the first pipeline stage.
    """
    items = [i for i in items if i.content is not None]
    ids = [str(i.content) for i in items]
    many = len(ids) > BULK_IDS  # one query for all beats a huge IN (...)
    statuses = db.statuses(None if many else ids)
    records = db.provenance(None if many else ids) if checker is not None else {}
    if checker is not None and records:
        checker.prepare(
            s.task for i in items if i.content in records for s in i.stages if not _is_download(s)
        )
    root = content_root or Path(".")
    for item in items:
        cid = str(item.content)
        done = statuses.get(cid, {})
        recs = records.get(cid, {})
        folder = root / cid
        after: str | None = None  # the first stage that runs: every later one runs too
        for stage in item.stages:
            stage.done = done.get(stage.task.stage) == StageState.DONE
            if _is_download(stage):
                continue
            if after is not None:
                if stage.done:
                    stage.rerun(f"after {after}")
                continue
            if not stage.done:
                after = stage.label
                continue
            if checker is not None:
                why = checker.reasons(stage.task, recs.get(stage.task.stage), folder)
                if why:
                    stage.rerun("; ".join(why))
                    after = stage.label
        _restore_inputs(item, folder)


def _is_download(stage: Stage) -> bool:
    return bool(stage.task.downloads)


def _restore_inputs(item: Item, folder: Path) -> None:
    """A stage that runs needs its inputs: if compression removed them, the first pipeline
    stage (which makes them, the same as before: its own record did not change) runs again
    first. The stages between keep their outputs: they would be made the same."""
    from signal4.run.provenance import missing_inputs

    work = [s for s in item.stages if not _is_download(s)]
    first = next((i for i, s in enumerate(work) if not s.done), None)
    if first is None or first == 0:  # nothing runs, or the first stage runs anyway
        return
    missing = missing_inputs(work[first].task, folder)
    if missing:
        work[0].rerun(f"{work[first].label} needs {', '.join(missing)}, removed by compression")


def build(
    m: Manifest,
    sources: Sequence[str],
    *,
    db: StateDB,
    recursive: bool = False,
    latest: int | None = None,
    list_feed: Callable[[str], Sequence[dict[str, Any]]],
    allow_loopback: bool | None = None,
    checker: Checker | None = None,
    content_root: Path | None = None,
) -> tuple[Plan, list[tuple[str, str]]]:
    """Plan ``sources``; return the plan and (source, error) for the sources that failed.

    ``list_feed(url)`` returns a feed's episodes (``download_podcast --list`` run in its
    env). A source that fails (no such file, a refused URL, a feed that does not answer)
    does not stop the others.
    """
    if allow_loopback is None:
        from signal4.content import settings

        allow_loopback = settings.for_project(m.root).allow_loopback
    plan = Plan()
    failed: list[tuple[str, str]] = []
    seen: set[str] = set()
    ids: dict[Path, str] = {}  # a file named twice (two spellings of its path) is read once

    def add(item: Item) -> None:
        key = item.content or f"{item.stages[0].task.name}:{item.stages[0].args}"
        if key not in seen:
            seen.add(key)
            plan.items.append(item)

    for raw in sources:
        try:
            if "://" in raw:
                task = route(m, raw, allow_loopback=allow_loopback)
                if task.downloads == "feed":
                    for item in feed_items(m, raw, list_feed(raw), latest=latest):
                        add(item)
                else:
                    add(download_item(task, m, ["--url", raw], raw, raw))
                continue
            path = Path(raw).expanduser()
            if path.is_dir():
                files = media_files(path, recursive=recursive)
                if not files:
                    raise SourceError(f"{raw}: no media files in this folder")
                for f in files:
                    try:  # one file that cannot be read fails alone
                        add(file_item(m, f, ids))
                    except SourceError as exc:
                        failed.append((str(f), str(exc)))
            elif path.is_file():
                add(file_item(m, path, ids))
            elif path.exists():
                raise SourceError(f"{raw}: not a regular file or a folder (a FIFO, a device?)")
            else:
                raise SourceError(f"{raw}: no such file or folder")
        except SourceError as exc:
            failed.append((raw, str(exc)))
    mark_done(plan.items, db, checker=checker, content_root=content_root)
    return plan, failed
