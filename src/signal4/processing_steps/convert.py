"""Convert source media to 16 kHz mono WAV, a chunk plan and the chunk WAVs."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from signal4.content.store import TMP_PREFIX, check_id, dir_mode
from signal4.run import protocol
from signal4.run.steprunner import Context, InvalidInput, Step

AUDIO = "audio.wav"
PLAN = "chunks.json"
CHUNKS = "chunks"
#: Decoded audio shorter than this share of the probed duration means a truncated file.
TRUNCATED_RATIO = 0.9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="a local media file: copied in and registered as kind 'file'",
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        metavar="S",
        help="chunk length (default: SIGNAL4_CHUNK_SECONDS, 300)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        metavar="S",
        help="overlap between chunks (default: SIGNAL4_CHUNK_OVERLAP, 2)",
    )


def ready() -> None:
    import imageio_ffmpeg  # noqa: F401

    # A real run reads the settings and the state DB (pydantic-settings, SQLAlchemy).
    import signal4.content.settings
    import signal4.content.state  # noqa: F401


def plan_chunks(duration: float, chunk: float, overlap: float) -> list[tuple[float, float]]:
    """Return (start, end) seconds of chunks of ``chunk`` s that overlap by ``overlap`` s."""
    if chunk <= overlap:
        raise InvalidInput(f"--chunk-seconds ({chunk}) must be larger than --overlap ({overlap})")
    spans: list[tuple[float, float]] = []
    start = 0.0
    while True:
        end = min(start + chunk, duration)
        spans.append((round(start, 6), round(end, 6)))
        if end >= duration:
            return spans
        start = end - overlap


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_content_id(src: Path) -> str:
    """The content id ``--input src`` registers (from the file's name and bytes)."""
    from signal4.stepkit.fetch import content_id

    return content_id("file", src.stem, _file_digest(src))


def _register_input(options: argparse.Namespace, ctx: Context) -> str:
    """Copy ``--input`` into its content folder and register it as kind 'file'; return the id."""
    from signal4.stepkit.fetch import safe_filename

    src: Path = options.input.expanduser()
    if not src.is_file():
        raise InvalidInput(f"--input {src}: no such file")
    cid = options.content or input_content_id(src)
    check_id(cid)
    name = safe_filename(src.name)
    target = ctx.store.path(cid, name)
    if not (target.is_file() and target.stat().st_size == src.stat().st_size):
        ctx.store.folder(cid, create=True)
        with ctx.store.atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
    item = ctx.db.get(cid)
    meta = {**((item.meta or {}) if item else {}), "media": name, "input": str(src.resolve())}
    ctx.db.register(cid, kind="file", source_url=src.resolve().as_uri(), title=src.stem, meta=meta)
    return cid


def source_media(ctx: Context, cid: str) -> Path:
    """The downloaded (or copied-in) media file of content ``cid``."""
    item = ctx.db.get(cid)
    if item is None:
        raise InvalidInput(f"content {cid!r} is not registered; download it first or use --input")
    name = (item.meta or {}).get("media")
    if not name:
        raise InvalidInput(f"content {cid!r} has no downloaded media; run its download step first")
    path: Path = ctx.store.path(cid, name)
    if not path.is_file():
        raise InvalidInput(f"content {cid!r}: media file {name} is missing; download it again")
    return path


def _probe_audio(src: Path) -> Any:
    """Probe ``src``; InvalidInput if it is missing, not media, or has no audio stream."""
    from signal4.stepkit import media

    if not src.is_file():
        raise InvalidInput(f"--input {src}: no such file")
    try:
        info = media.probe(src)
    except media.MediaError as exc:
        raise InvalidInput(str(exc)) from None
    if not info.has_audio:
        kinds = "a video stream only" if info.video else "no audio stream"
        raise InvalidInput(f"{src.name} has {kinds}; there is nothing to transcribe")
    if reason := media.container_truncation(src):
        raise InvalidInput(f"{src.name} looks truncated: {reason}")
    return info


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from signal4.stepkit import media

    if options.input is None and not options.content:
        raise InvalidInput("give --content ID (downloaded content) or --input FILE")
    info = None
    if options.input is not None:
        # a file that is no usable media is refused before it is copied in or registered
        info = _probe_audio(options.input.expanduser())
        cid = _register_input(options, ctx)
    else:
        cid = options.content
    options.content = cid
    src = source_media(ctx, cid)
    chunk = options.chunk_seconds or ctx.settings.chunk_seconds
    overlap = ctx.settings.chunk_overlap if options.overlap is None else options.overlap
    if overlap < 0:
        raise InvalidInput("--overlap must be 0 or more")
    store = ctx.store
    wav, plan_path, chunk_dir = (
        store.path(cid, AUDIO),
        store.path(cid, PLAN),
        store.path(cid, CHUNKS),
    )
    if not options.rewrite and ctx.db.is_done(cid, "convert") and wav.is_file():
        with contextlib.suppress(OSError, ValueError):
            plan = store.read_json(plan_path)
            if (plan["chunk_seconds"], plan["overlap"]) == (chunk, overlap):
                return {
                    "status": protocol.SKIPPED,
                    "content": cid,
                    "audio": AUDIO,
                    "chunks": len(plan["chunks"]),
                }

    info = info or _probe_audio(src)
    with store.atomic_path(wav) as tmp:
        try:
            media.to_wav(src, tmp)
        except media.MediaError as exc:
            raise InvalidInput(f"cannot decode {src.name} (truncated or corrupt?): {exc}") from None
        got = media.wav_info(tmp)
        if got.frames == 0:
            raise InvalidInput(f"{src.name} decoded to no audio at all")
        if info.duration and got.duration < TRUNCATED_RATIO * info.duration - 0.5:
            raise InvalidInput(
                f"{src.name} looks truncated: it decoded to {got.duration:.1f} s "
                f"of the {info.duration:.1f} s its header announces"
            )

    spans = plan_chunks(got.duration, chunk, overlap)
    chunks = _write_chunks(wav, chunk_dir, spans, got.rate)
    plan = {
        "audio": AUDIO,
        "sample_rate": got.rate,
        "channels": got.channels,
        "duration": got.duration,
        "chunk_seconds": chunk,
        "overlap": overlap,
        "chunks": chunks,
    }
    store.write_json(plan_path, plan)
    ctx.db.register(cid, kind=ctx.db.get(cid).kind, duration=round(got.duration, 3))
    ctx.db.mark(
        cid,
        "convert",
        "done",
        info={"chunks": len(chunks), "duration": got.duration, "source": src.name},
    )
    return {
        "status": protocol.COMPLETED,
        "content": cid,
        "audio": AUDIO,
        "duration": got.duration,
        "chunks": len(chunks),
        "source": src.name,
    }


def _write_chunks(
    wav: Path, chunk_dir: Path, spans: list[tuple[float, float]], rate: int
) -> list[dict[str, Any]]:
    """Write the chunk WAVs into a temporary folder, then swap it in for ``chunk_dir``."""
    from signal4.stepkit import media

    tmp_dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "chunks-", dir=chunk_dir.parent))
    try:
        tmp_dir.chmod(dir_mode())
        chunks = []
        for i, (start, end) in enumerate(spans):
            name = f"chunk_{i:04d}.wav"
            s, e = round(start * rate), round(end * rate)
            media.write_wav_slice(wav, tmp_dir / name, s, e)
            chunks.append(
                {
                    "index": i,
                    "file": f"{CHUNKS}/{name}",
                    "start": start,
                    "end": end,
                    "start_frame": s,
                    "end_frame": e,
                }
            )
        old = None
        if chunk_dir.exists():
            old = chunk_dir.with_name(f"{TMP_PREFIX}old-chunks-{os.getpid()}")
            os.replace(chunk_dir, old)
        os.replace(tmp_dir, chunk_dir)
        if old is not None:
            shutil.rmtree(old)
        return chunks
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


STEP = Step(
    name="convert",
    description="Convert source media to 16 kHz mono WAV plus overlapping chunk WAVs.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="convert",
    needs_content=False,
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
