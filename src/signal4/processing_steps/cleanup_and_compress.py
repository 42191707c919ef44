"""Compress what we keep (WAV to Opus, JSON to gzip) and remove intermediates no step needs."""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
from pathlib import Path
from typing import Any

from signal4.codes import StageState, Status
from signal4.content.store import ITEM_FILE, TMP_PREFIX
from signal4.stepkit.step import Context, InvalidInput, Step, keeps

AUDIO = "audio.wav"
OPUS = "audio.opus"
CHUNKS = "chunks"
MANIFEST = "storage_manifest.json"
#: The stages that read audio.wav, chunks/ or the JSON files, and the output each writes
#: last (its "done" mark): all must be done before removal.
LATER_STAGES = {
    "transcribe": "transcript_words.json",
    "diarize": "diarization.json",
    "stitch": "transcript.json",
}
#: Opus and WAV durations may differ by this much (encoder padding).
DURATION_TOLERANCE = 0.5
#: The bitrates (bits per second) libopus takes for our mono audio.
MIN_BITRATE, MAX_BITRATE = 500, 256_000


def bitrate(text: str) -> str:
    """An argparse ``type=``: an Opus bitrate such as ``32k`` or ``24000``, in range."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kK]?)\s*", text)
    bps = float(m[1]) * (1000 if m[2] else 1) if m else None
    if bps is None or not MIN_BITRATE <= bps <= MAX_BITRATE:
        raise argparse.ArgumentTypeError(
            f"must be an Opus bitrate from {MIN_BITRATE} to {MAX_BITRATE // 1000}k bits per "
            f"second (e.g. 32k), not {text!r}"
        )
    return str(round(bps))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bitrate", type=bitrate, default="32k", help="Opus bitrate (default 32k)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be encoded, gzipped and removed; change nothing",
    )


def ready() -> None:
    import imageio_ffmpeg  # noqa: F401

    # A real run reads the settings.
    import signal4.content.settings  # noqa: F401


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _json_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*.json")
        if p.name not in (MANIFEST, ITEM_FILE)  # item.json: tiny, and read by every step
        and not p.name.startswith(TMP_PREFIX)
        and CHUNKS not in p.relative_to(folder).parts[:-1]
    )


def _read_manifest(store: Any, path: Path) -> dict[str, Any] | None:
    """The storage manifest already there (None if none, or unreadable: it is rewritten)."""
    try:
        data = store.read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def encode_opus(ctx: Context, cid: str, bitrate: str) -> dict[str, Any]:
    """Encode audio.wav to audio.opus atomically, checking the Opus decodes to the same length."""
    from signal4.stepkit import media

    wav, opus = ctx.store.path(cid, AUDIO), ctx.store.path(cid, OPUS)
    want = media.wav_info(wav).duration
    with ctx.store.atomic_path(opus) as tmp:
        media.to_opus(wav, tmp, bitrate=bitrate)
        got = media.decoded_seconds(tmp)
        if abs(got - want) > DURATION_TOLERANCE:
            raise media.MediaError(f"Opus decodes to {got:.2f} s, the WAV holds {want:.2f} s")
    return {
        "path": OPUS,
        "action": "encoded",
        "from": AUDIO,
        "bytes_before": 0,
        "bytes_after": opus.stat().st_size,
        "seconds": got,
    }


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from signal4.stepkit import media

    cid = options.content
    store = ctx.store
    folder = store.folder(cid)
    if not folder.is_dir():
        raise InvalidInput(
            f"content {cid!r} has no folder in the store; download and convert it first"
        )
    wav, opus, chunks = folder / AUDIO, folder / OPUS, folder / CHUNKS
    if not wav.is_file() and not opus.is_file():
        raise InvalidInput(f"content {cid!r} has no {AUDIO} (nor {OPUS}); run convert first")
    pending = [stage for stage, out in LATER_STAGES.items() if not ctx.is_done(cid, out)]
    jsons = _json_files(folder)
    if (
        not options.rewrite
        and opus.is_file()
        and not wav.exists()
        and not chunks.exists()
        and not jsons
    ):
        return {"status": Status.SKIPPED, "content": cid, "opus": OPUS}

    plan = {
        "encode": [AUDIO] if wav.is_file() and (options.rewrite or not opus.is_file()) else [],
        "gzip": [str(p.relative_to(folder)) for p in jsons] if not pending else [],
        "remove": [p.name for p in (wav, chunks) if p.exists()] if not pending else [],
        "pending": pending,
    }
    if options.dry_run:
        return {"status": Status.COMPLETED, "content": cid, "dry_run": True, **plan}

    entries: list[dict[str, Any]] = []
    if plan["encode"]:
        try:
            entries.append(encode_opus(ctx, cid, options.bitrate))
        except media.MediaError as exc:
            raise InvalidInput(f"cannot encode {AUDIO} of {cid!r} to Opus: {exc}") from None
    if pending:
        todo = ", ".join(pending)
        note = f"{OPUS} was written, nothing removed; " if plan["encode"] else ""
        raise InvalidInput(
            f"not removing or gzipping anything of {cid!r}: {todo} not done yet and still "
            f"need {AUDIO}, {CHUNKS}/ and the JSON files; {note}run {todo} first, then this "
            "step again"
        )

    for path in jsons:
        before = path.stat().st_size
        gz = path.with_name(path.name + ".gz")
        store.write_bytes(gz, gzip.compress(path.read_bytes(), mtime=0))
        os.unlink(path)
        entries.append(
            {
                "path": str(path.relative_to(folder)),
                "action": "gzipped",
                "stored_as": str(gz.relative_to(folder)),
                "bytes_before": before,
                "bytes_after": gz.stat().st_size,
            }
        )
    if chunks.exists():
        entries.append(
            {
                "path": CHUNKS + "/",
                "action": "removed",
                "bytes_before": _size(chunks),
                "bytes_after": 0,
            }
        )
        shutil.rmtree(chunks)
    if wav.exists():
        entries.append(
            {
                "path": AUDIO,
                "action": "removed",
                "bytes_before": wav.stat().st_size,
                "bytes_after": 0,
            }
        )
        wav.unlink()
    if entries and not plan["encode"] and opus.is_file():  # encoded by an earlier run
        size = opus.stat().st_size
        entries.insert(
            0,
            {
                "path": OPUS,
                "action": "encoded",
                "from": AUDIO,
                "bytes_before": 0,
                "bytes_after": size,
            },
        )
    before = sum(e["bytes_before"] for e in entries)
    after = sum(e["bytes_after"] for e in entries)
    manifest = {"content": cid, "files": entries, "bytes_before": before, "bytes_after": after}
    previous = folder / MANIFEST
    earlier = _read_manifest(store, previous)
    if earlier is not None and not entries:
        manifest = earlier
    elif earlier is not None and "provenance" in earlier:  # the runner's records stay
        manifest["provenance"] = earlier["provenance"]
    store.write_json(previous, manifest)
    ctx.mark(cid, "compress", StageState.DONE, info={"bytes_before": before, "bytes_after": after})
    return {
        "status": Status.COMPLETED,
        "content": cid,
        "opus": OPUS,
        "bytes_before": before,
        "bytes_after": after,
        "files": len(entries),
    }


def params(options: argparse.Namespace, _ctx: Context) -> dict[str, Any]:
    """The Opus bitrate."""
    return {"bitrate": options.bitrate}


STEP = Step(
    name="cleanup_and_compress",
    description="Encode audio.wav to Opus, gzip JSON outputs and remove the WAV and chunks "
    "once transcribe, diarize and stitch are done.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="compress",
    outputs_kept=keeps(MANIFEST),
    params=params,
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
