"""``inv voices``: name the voices diarize finds, and every item follows (docs/voices.md).

The task is in ``tasks.py``; its free words (``inv voices enroll NAME``) reach it through
:func:`signal4.commands.cli.words`. Everything heavier than Invoke is imported when it runs.
"""

from __future__ import annotations

import json as json_mod
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.errors import UsageError

if TYPE_CHECKING:
    from signal4.content.settings import Settings
    from signal4.content.state import StateDB
    from signal4.envs.manifest import Manifest
    from signal4.voices.registry import Prints

ACTIONS = {
    "list": "",
    "enroll": "NAME",
    "rename": "NAME NEW",
    "merge": "NAME OTHER",
    "forget": "NAME",
    "relabel": "",
}
#: A clip voice with this much speech or more counts as a voice of its own.
CLIP_OTHER_SECONDS = 1.0


def main(
    words: Sequence[str],
    *,
    item: str = "",
    speaker: str = "",
    clip: str = "",
    all_: bool = False,
    json: bool = False,
) -> int:
    """The body of ``inv voices``; the exit code."""
    from signal4.content import settings
    from signal4.envs.manifest import load
    from signal4.run.record import state_db
    from signal4.voices import registry

    action, *names = list(words) or ["list"]
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}; use one of: {', '.join(ACTIONS)}")
    wanted = ACTIONS[action].split()
    if len(names) != len(wanted):
        shape = " ".join(["inv voices", action, *wanted])
        raise UsageError(f"{action} takes {len(wanted)} name(s): {shape}")
    _check_flags(action, item=item, speaker=speaker, clip=clip, all_=all_, json=json)
    m = load()
    conf = settings.for_project(m.root)
    db = state_db(conf.db_url)
    root = conf.content_root
    if action == "list":
        return _list(registry.listing(db, everyone=all_), as_json=json)
    if action == "relabel":
        return _relabel_all(db, root, conf, item)
    if action == "enroll" and clip:
        change = registry.enroll_clip(db, names[0], Path(clip).name, clip_prints(m, conf, clip))
    elif action == "enroll":
        change = registry.enroll(db, root, names[0], item, speaker)
    elif action == "rename":
        change = registry.rename(db, names[0], names[1])
    elif action == "merge":
        change = registry.merge(db, names[0], names[1])
    else:
        change = registry.forget(db, names[0])
    print(change.message)
    done = relabel(db, root, conf, change.items)
    print(f"relabelled {done} item(s)")
    return 0


def _check_flags(
    action: str, *, item: str, speaker: str, clip: str, all_: bool, json: bool
) -> None:
    given = {"--item": item, "--speaker": speaker, "--clip": clip, "--all": all_, "--json": json}
    allowed = {
        "enroll": {"--item", "--speaker", "--clip"},
        "list": {"--all", "--json"},
        "relabel": {"--item"},
    }.get(action, set())
    extra = [flag for flag, value in given.items() if value and flag not in allowed]
    if extra:
        raise UsageError(f"{action} takes no {extra[0]}")
    if action == "enroll":
        if clip and (item or speaker):
            raise UsageError("enroll takes --clip FILE, or --item ID --speaker LABEL, not both")
        if not clip and not (item and speaker):
            raise UsageError("enroll needs --item ID and --speaker LABEL, or --clip FILE")


def _list(rows: Sequence[Any], *, as_json: bool) -> int:
    if as_json:
        print(json_mod.dumps([row.__dict__ for row in rows], indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no named or recurring voices yet (inv voices list --all shows every voice)")
        return 0
    print(f"{'voice':<12} {'name':<30} {'items':>5} {'clips':>5} {'seconds':>8}")
    for row in rows:
        name = row.name if row.name is not None else "—"
        print(f"{row.voice:<12} {name:<30} {row.items:>5} {row.clips:>5} {row.seconds:>8.1f}")
    return 0


def _relabel_all(db: StateDB, root: Path, conf: Settings, only: str) -> int:
    """Register every diarized item the registry does not know yet, then relabel them all
    (or ``only``): what to run after an interrupted relabel, or on items diarized before
    the registry existed."""
    from signal4.voices import registry
    from signal4.voices.prints import BadPrint

    if only:
        if db.get(only) is None:
            raise registry.VoiceError(f"unknown item {only!r} (inv status lists the items)")
        ids = [only]
    else:
        ids = [i.id for i in db.all()]
    problems = 0
    for cid in ids:
        try:
            registry.register_item(db, root, cid, only_new=True)
        except BadPrint as exc:
            print(f"warning: {exc}", file=sys.stderr)
            problems += 1
    done = relabel(db, root, conf, ids)
    print(f"relabelled {done} item(s)" + (f"; {problems} with a damaged print" if problems else ""))
    return 0


def relabel(db: StateDB, root: Path, conf: Settings, content_ids: Sequence[str]) -> int:
    """Write each item's speakers.json from the registry and its transcript with those
    names (without running stitch again), each under the item's lock; how many
    transcripts were rewritten."""
    from signal4.content.store import ContentStore
    from signal4.processing_steps import stitch
    from signal4.voices import registry

    store, done = ContentStore(root), 0
    for cid in content_ids:
        if not store.folder(cid).is_dir():
            continue
        with _item_lock(Path(conf.data_dir), cid):
            registry.write_speakers(db, root, [cid])
            done += stitch.relabel(store, cid)
    return done


class _item_lock:
    """The lock every step takes on an item (signal4.content.guard: the same file), so a
    relabel and a stitch never write one transcript at once."""

    def __init__(self, data_dir: Path, cid: str) -> None:
        self.path = data_dir / "locks" / f"{cid}.lock"

    def __enter__(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = self.path.open("a+")
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def clip_prints(m: Manifest, conf: Settings, clip: str) -> Prints:
    """The one voice of a media file: convert and diarize run on it (each in its env) in
    a scratch data folder. VoiceError if it holds two voices or too little speech."""
    import tempfile

    from signal4.run import dispatch
    from signal4.voices import registry

    path = Path(clip).expanduser()
    if not path.is_file():
        raise UsageError(f"--clip {clip}: no such file")
    with tempfile.TemporaryDirectory(prefix="signal4-clip-") as tmp:
        env = {"SIGNAL4_DATA_DIR": tmp, "SIGNAL4_CONTENT_DIR": str(Path(tmp) / "content")}
        cid = None
        for task, args in (("convert", ["--input", str(path.resolve())]), ("diarize", [])):
            if cid is not None:
                args = ["--content", cid]
            outcome = dispatch.run(m, m.task(task), args, env_vars=env)
            if not outcome.ok:
                raise registry.VoiceError(f"--clip {clip}: {task} failed: {outcome.reason}")
            cid = str(outcome.result.get("content") or cid)
        assert cid is not None
        doc = registry.diarization(Path(tmp) / "content", cid)
    return one_voice(registry.read_prints(doc or {}, f"clip {path.name}"), clip)


def one_voice(found: Prints | None, clip: str) -> Prints:
    """The clip's prints down to its one voice; VoiceError if it holds none, two voices
    (each with :data:`CLIP_OTHER_SECONDS` of speech or more), or too little speech."""
    from signal4.voices import registry

    if found is None:
        raise registry.VoiceError(f"--clip {clip}: diarize found no voice in it")
    voices = [v for v in found.voices if v.seconds >= CLIP_OTHER_SECONDS]
    if len(voices) > 1:
        held = ", ".join(f"{v.seconds:.1f} s" for v in voices)
        raise registry.VoiceError(
            f"--clip {clip} holds {len(voices)} voices ({held}); give a clip with one voice, "
            "or enroll from an item with --item and --speaker"
        )
    if not voices or voices[0].seconds < registry.MIN_SECONDS:
        got = f"{found.voices[0].seconds:.1f} s" if found.voices else "none"
        raise registry.VoiceError(
            f"--clip {clip} has too little speech of one voice ({got}; at least "
            f"{registry.MIN_SECONDS:g} s)"
        )
    return type(found)(found.model, found.model_name, voices[:1])
