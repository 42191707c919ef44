"""Convert source media to 16 kHz mono WAV, a chunk plan and the chunk WAVs."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from signal4.codes import StageState, Status
from signal4.content.store import ITEM_FILE, TMP_PREFIX, check_id, dir_mode
from signal4.stepkit.step import Context, InvalidInput, Step, keeps, number

AUDIO = "audio.wav"
PLAN = "chunks.json"
CHUNKS = "chunks"
#: What cleanup_and_compress keeps of the audio once the later stages are done.
OPUS = "audio.opus"
#: The shortest chunk (the same floor as SIGNAL4_CHUNK_SECONDS).
MIN_CHUNK_SECONDS = 1.0
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
        type=number(float, ge=MIN_CHUNK_SECONDS),
        metavar="S",
        help=f"chunk length, at least {MIN_CHUNK_SECONDS:g} (default: SIGNAL4_CHUNK_SECONDS, 300)",
    )
    parser.add_argument(
        "--overlap",
        type=number(float, ge=0),
        metavar="S",
        help="overlap between chunks, at most half a chunk (default: SIGNAL4_CHUNK_OVERLAP, 2)",
    )


def ready() -> None:
    import imageio_ffmpeg  # noqa: F401

    # A real run reads the settings.
    import signal4.content.settings  # noqa: F401


def check_chunking(chunk: float, overlap: float) -> None:
    """InvalidInput unless ``chunk`` s chunks overlapping by ``overlap`` s make a finite plan."""
    from signal4.content.settings import check_chunking as why_not

    reason = None
    if not (math.isfinite(chunk) and chunk >= MIN_CHUNK_SECONDS):
        reason = f"the chunk length must be a finite number of at least {MIN_CHUNK_SECONDS:g} s"
    elif not (math.isfinite(overlap) and overlap >= 0):
        reason = "the overlap must be a finite number of 0 or more"
    else:
        reason = why_not(chunk, overlap)
    if reason:
        raise InvalidInput(
            f"cannot cut {chunk:g} s chunks overlapping by {overlap:g} s "
            f"(--chunk-seconds, --overlap): {reason}"
        )


def plan_chunks(duration: float, chunk: float, overlap: float) -> list[tuple[float, float]]:
    """Return (start, end) seconds of chunks of ``chunk`` s that overlap by ``overlap`` s."""
    check_chunking(chunk, overlap)
    if not (math.isfinite(duration) and duration >= 0):
        raise InvalidInput(f"cannot cut audio of {duration} s into chunks")
    spans: list[tuple[float, float]] = []
    start = 0.0
    while True:
        end = min(start + chunk, duration)
        spans.append((round(start, 6), round(end, 6)))
        if end >= duration:
            return spans
        start = end - overlap


def _register_input(options: argparse.Namespace, ctx: Context, created: list[Path]) -> str:
    """Copy ``--input`` into its content folder and register it as kind 'file'; return the id.

    Appends to ``created`` what this call made (the content folder, if it was new, else
    the copy, if there was none), so that a failed run can take exactly that away.
    """
    from signal4.stepkit.fetch import file_content_id, safe_filename

    src: Path = options.input.expanduser()
    if not src.is_file():
        raise InvalidInput(f"--input {src}: no such file")
    cid = options.content or file_content_id(src)
    check_id(cid)
    name = safe_filename(src.name)
    target = ctx.store.path(cid, name)
    if not (target.is_file() and target.stat().st_size == src.stat().st_size):
        folder = ctx.store.folder(cid)
        if not folder.exists():
            folder.mkdir(parents=True)
            created.append(folder)
        elif not target.exists():
            created.append(target)
        with ctx.store.atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
    item = ctx.item(cid)
    if item is None and created[-1:] != [ctx.store.folder(cid)]:
        created.append(ctx.store.path(cid, ITEM_FILE))  # the description is this run's too
    meta = {**((item or {}).get("meta") or {}), "media": name, "input": str(src.resolve())}
    ctx.register(cid, kind="file", source_url=src.resolve().as_uri(), title=src.stem, meta=meta)
    return cid


def _remove(created: list[Path]) -> None:
    """Take away what a failed run made: a new content folder whole, or the input's copy."""
    for path in reversed(created):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def source_media(ctx: Context, cid: str) -> Path:
    """The downloaded (or copied-in) media file of content ``cid``."""
    item = ctx.item(cid)
    if item is None:
        raise InvalidInput(
            f"content {cid!r} is not registered (no {ITEM_FILE} in its folder); "
            "download it first or use --input"
        )
    name = (item.get("meta") or {}).get("media")
    if not name:
        raise InvalidInput(f"content {cid!r} has no downloaded media; run its download step first")
    path: Path = ctx.store.path(cid, name)
    if not path.is_file():
        again = "give it again with --input" if item.get("kind") == "file" else "download it again"
        raise InvalidInput(f"content {cid!r}: media file {name} is missing; {again}")
    return path


def _probe_audio(src: Path) -> tuple[float | None, str]:
    """Probe ``src``: how long its audio should decode to, and where that figure is from.

    InvalidInput if it is missing, not media, has no audio stream or is cut short.
    """
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
    try:
        return media.expected_audio_seconds(src, info)
    except media.TruncatedMedia as exc:
        raise InvalidInput(f"{src.name} looks truncated: {exc}") from None
    except media.MediaError as exc:
        raise InvalidInput(f"cannot read the audio of {src.name}: {exc}") from None


def _already_converted(
    ctx: Context, cid: str, chunk: float, overlap: float
) -> dict[str, Any] | None:
    """The ``skipped`` result if ``cid`` is converted (and still is, or was compressed).

    Done means: its plan is kept (convert writes it last), and either audio.wav is there,
    cut as asked, or cleanup_and_compress has replaced the WAV and the chunks with
    audio.opus (a finished item: its chunking can only change with --rewrite).
    """
    store = ctx.store
    try:
        plan = store.read_json(store.path(cid, PLAN))
        cut = (plan["chunk_seconds"], plan["overlap"])
        result = {
            "status": Status.SKIPPED,
            "content": cid,
            "audio": AUDIO,
            "chunks": len(plan["chunks"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if store.path(cid, AUDIO).is_file():
        return result if cut == (chunk, overlap) else None
    if store.path(cid, OPUS).is_file():
        result.update(audio=OPUS, compressed=True)
        if cut != (chunk, overlap):
            result["note"] = (
                f"compressed with {cut[0]:g} s chunks overlapping by {cut[1]:g} s; "
                "--rewrite converts it again"
            )
        return result
    return None


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    if options.input is None and not options.content:
        raise InvalidInput("give --content ID (downloaded content) or --input FILE")
    chunk = ctx.settings.chunk_seconds if options.chunk_seconds is None else options.chunk_seconds
    overlap = ctx.settings.chunk_overlap if options.overlap is None else options.overlap
    check_chunking(chunk, overlap)
    expected = None
    created: list[Path] = []
    try:
        if options.input is not None:
            # a file that is no usable media is refused before it is copied in or registered
            expected = _probe_audio(options.input.expanduser())
            options.content = _register_input(options, ctx, created)
        return _convert(options, ctx, chunk, overlap, expected)
    except BaseException:
        _remove(created)
        raise


def _convert(
    options: argparse.Namespace,
    ctx: Context,
    chunk: float,
    overlap: float,
    expected: tuple[float | None, str] | None,
) -> dict[str, Any]:
    from signal4.stepkit import media

    cid = options.content
    if not options.rewrite and (done := _already_converted(ctx, cid, chunk, overlap)):
        return done
    src = source_media(ctx, cid)
    announced, according_to = expected or _probe_audio(src)
    store = ctx.store
    wav, plan_path, chunk_dir = (
        store.path(cid, AUDIO),
        store.path(cid, PLAN),
        store.path(cid, CHUNKS),
    )
    with store.atomic_path(wav) as tmp:
        try:
            media.to_wav(src, tmp)
        except media.MediaError as exc:
            raise InvalidInput(f"cannot decode {src.name} (truncated or corrupt?): {exc}") from None
        got = media.wav_info(tmp)
        if got.frames == 0:
            raise InvalidInput(f"{src.name} decoded to no audio at all")
        if announced and got.duration < TRUNCATED_RATIO * announced - 0.5:
            raise InvalidInput(
                f"{src.name} looks truncated: it decoded to {got.duration:.1f} s "
                f"of the {announced:.1f} s {according_to}"
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
    ctx.register(cid, duration=round(got.duration, 3))
    ctx.mark(
        cid,
        "convert",
        StageState.DONE,
        info={"chunks": len(chunks), "duration": got.duration, "source": src.name},
    )
    return {
        "status": Status.COMPLETED,
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


def params(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """How the audio is cut: the chunk length and overlap in effect."""
    chunk = ctx.settings.chunk_seconds if options.chunk_seconds is None else options.chunk_seconds
    overlap = ctx.settings.chunk_overlap if options.overlap is None else options.overlap
    return {"chunk_seconds": chunk, "chunk_overlap": overlap}


STEP = Step(
    name="convert",
    description="Convert source media to 16 kHz mono WAV plus overlapping chunk WAVs.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="convert",
    needs_content=False,
    params=params,
    outputs_kept=keeps(PLAN),
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
