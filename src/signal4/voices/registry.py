"""The voice registry in the state DB: voices stored beside their items, linked to persons,
named by the user. The runner's side (it opens the state DB); standard library only.

* **Registering an item** (:func:`register_item`, called by the runner when a diarize
  stage is done): every speaker of its ``diarization.json`` with a voice print becomes a
  :class:`~signal4.content.state.Voice`. A print resting on at least :data:`MIN_SECONDS`
  of speech is matched against every person's print of the same embedding model; at a
  cosine of :data:`THRESHOLD` or more it joins the best person (and moves that person's
  print), otherwise it starts a new, unnamed person. Two named persons within
  :data:`AMBIGUITY` of each other leave it unlinked: a wrong name is worse than none.
* **Naming** (:func:`enroll`, :func:`rename`, :func:`merge`, :func:`forget`): a name
  belongs to a person, so every item whose voice is linked to that person follows.
* **One at a time.** Every change runs in :meth:`StateDB.voices_session`, which holds the
  registry alone (SQLite's write lock; a PostgreSQL advisory lock): two workers that find
  the same new voice at once take turns, and the second finds the first's person.

The prints of each model are searched in memory (:class:`~signal4.voices.index.Index`),
kept between calls in this process and brought up to date from the prints changed since
(the registry's clock), so a warm worker or a batch reads only what is new.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signal4.errors import Signal4Error
from signal4.voices import names as names_mod
from signal4.voices import prints
from signal4.voices.index import Index

if TYPE_CHECKING:
    from array import array

    from sqlalchemy.orm import Session

    from signal4.content.state import Person, StateDB, Voice

#: The cosine from which a voice is the same person as a person's print: chosen on the
#: real AMI clips (benchmarks/voices.md, docs/voices.md): the strictest that still
#: accepts three in four same-speaker pairs of the calibration clips.
THRESHOLD = 0.62
#: Fewer seconds of speech than this under a print, and it is too noisy to match: the
#: voice is stored, never linked nor named by a match.
MIN_SECONDS = 3.0
#: A second person this close to the best one, with another name, makes the match
#: ambiguous: the voice stays anonymous.
AMBIGUITY = 0.05
#: A voice weighs its seconds of speech in its person's print, up to this many.
WEIGHT_CAP = 60.0
#: How a voice got its person, where the name is shown.
CONFIDENT = ("matched", "new", "enrolled")
DIARIZATION = "diarization.json"
MAX_NAME = 200


class VoiceError(Signal4Error):
    """A mistake in naming voices: an unknown name, item or speaker, a clip with two
    voices, a name taken (exit 2)."""


@dataclass(frozen=True)
class Found:
    """One speaker's print as a diarizer wrote it."""

    label: str
    seconds: float
    vec: array[float]


@dataclass(frozen=True)
class Prints:
    """The prints of one diarization, and their embedding model."""

    model: str
    model_name: str
    voices: list[Found]


def read_prints(doc: Mapping[str, Any], what: str) -> Prints | None:
    """The voice prints of a ``diarization.json`` document (None where it has none: the
    pyannote diarizer's); :class:`~signal4.voices.prints.BadPrint` for a damaged one."""
    found = doc.get("voiceprints")
    model = doc.get("embedding_model")
    if not found:
        return None
    if not isinstance(found, Mapping) or not isinstance(model, Mapping):
        raise prints.BadPrint(f"{what}: voiceprints without an embedding_model")
    digest, name = model.get("digest"), model.get("name")
    if not isinstance(digest, str) or not digest:
        raise prints.BadPrint(f"{what}: the embedding model has no digest")
    voices = []
    dims = set()
    for label, entry in found.items():
        where = f"{what}, speaker {label}"
        if not isinstance(entry, Mapping):
            raise prints.BadPrint(f"{where}: the voice print is not an object")
        vec = prints.check(entry.get("embedding"), where)
        dims.add(len(vec))
        voices.append(Found(str(label), prints.check_seconds(entry.get("seconds"), where), vec))
    if len(dims) > 1:
        raise prints.BadPrint(f"{what}: voice prints of different sizes {sorted(dims)}")
    voices.sort(key=lambda f: (-f.seconds, f.label))
    return Prints(digest, str(name or digest[:12]), voices)


# ----------------------------------------------------------------------------- the cache


@dataclass
class _Cached:
    epoch: str
    generation: int
    version: int
    index: Index


_CACHE: dict[tuple[str, str], _Cached] = {}


def forget_cache() -> None:
    """Drop every cached index of this process (tests; a DB replaced under a runner)."""
    _CACHE.clear()


@dataclass
class Work:
    """One change of the registry, inside :meth:`StateDB.voices_session`."""

    db: StateDB
    s: Session
    epoch: str = ""
    generation: int = 0
    version: int = 0
    removed: bool = False
    changed: bool = False
    #: The persons whose items show something new (their items are relabelled).
    touched: set[int] = field(default_factory=set)
    _indexes: dict[str, Index] = field(default_factory=dict)
    #: The cache entries this change brought up to date (kept when it is committed).
    _pending: dict[tuple[str, str], _Cached] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from signal4.content.state import VoiceClock

        clock = self.s.get(VoiceClock, 1)
        assert clock is not None  # voices_session makes it
        self.epoch, self.generation, self.version = clock.epoch, clock.generation, clock.version

    @property
    def new_version(self) -> int:
        return self.version + 1

    def index(self, model: str, dim: int) -> Index:
        """The prints of ``model``, up to date (from this process's cache and what is new)."""
        from sqlalchemy import select

        from signal4.content.state import PersonPrint

        if model in self._indexes:
            return self._indexes[model]
        key = (self.db.url, model)
        cached = _CACHE.get(key)
        if (
            cached is None
            or (cached.epoch, cached.generation) != (self.epoch, self.generation)
            or cached.version > self.version
            or cached.index.dim != dim
        ):
            cached = _Cached(self.epoch, self.generation, -1, Index(dim))
        _CACHE.pop(key, None)  # back in only when this change is committed
        rows = self.s.execute(
            select(PersonPrint.person_id, PersonPrint.total, PersonPrint.packed).where(
                PersonPrint.model == model, PersonPrint.version > cached.version
            )
        )
        for person_id, total, packed in rows:
            if len(packed) != dim:
                raise prints.BadPrint(
                    f"the print of {names_mod.voice_id(person_id)} has {len(packed)} numbers, "
                    f"the model's others {dim}"
                )
            cached.index.put(person_id, total, packed)
        cached.version = self.version
        self._indexes[model] = cached.index
        self._pending[key] = cached
        return cached.index

    def committed(self) -> None:
        """The change is in the DB: keep its indexes for the next one (unless prints were
        removed: the next change reads them all again)."""
        for key, cached in self._pending.items():
            if not self.removed:
                cached.version = self.new_version if self.changed else self.version
                _CACHE[key] = cached

    # -------------------------------------------------------------------- persons

    def person(self, who: str) -> Person:
        """The person named ``who``, or shown as ``voice-0007``; VoiceError if none."""
        from sqlalchemy import select

        from signal4.content.state import Person

        person_id = names_mod.parse_voice_id(who)
        found = (
            self.s.get(Person, person_id)
            if person_id is not None
            else self.s.scalar(select(Person).where(Person.name == who.strip()))
        )
        if found is None:
            known = [p.name for p in self.s.scalars(select(Person).where(Person.name.is_not(None)))]
            hint = f"; known names: {', '.join(sorted(n for n in known if n)[:8])}" if known else ""
            raise VoiceError(f"no voice is called {who!r}{hint} (inv voices list shows them)")
        return found

    def named(self, name: str) -> Person | None:
        from sqlalchemy import select

        from signal4.content.state import Person

        return self.s.scalar(select(Person).where(Person.name == name))

    def new_person(self, name: str | None = None) -> Person:
        from signal4.content.state import Person

        person = Person(name=name)
        self.s.add(person)
        self.s.flush()
        self.touched.add(person.id)
        return person

    def members(self, person_id: int) -> list[Voice]:
        from sqlalchemy import select

        from signal4.content.state import Voice

        return list(self.s.scalars(select(Voice).where(Voice.person_id == person_id)))

    def drop_if_empty(self, person: Person) -> None:
        """Remove an unnamed person left without voices."""
        if person.name is None and not self.members(person.id):
            self.s.delete(person)
            self.removed = True

    # ---------------------------------------------------------------------- prints

    def add_to_print(self, person_id: int, voice: Voice) -> None:
        """Add ``voice`` to its person's print of its model."""
        from signal4.content.state import PersonPrint

        vec = prints.from_bytes(voice.embedding, f"the print of {voice_label(voice)}")
        row = self.s.get(PersonPrint, (person_id, voice.model))
        weight = min(voice.seconds, WEIGHT_CAP) or 1e-3
        if row is None:
            total = [weight * v for v in vec]
            row = PersonPrint(person_id=person_id, model=voice.model, seconds=0.0, voices=0)
            self.s.add(row)
        else:
            old = prints.from_bytes(row.total, f"the print of {names_mod.voice_id(person_id)}")
            total = [t + weight * v for t, v in zip(old, vec, strict=True)]
        self._store(row, total, seconds=row.seconds + voice.seconds, voices=row.voices + 1)

    def rebuild_print(self, person_id: int) -> None:
        """Make ``person_id``'s prints again from its voices (after some left it)."""
        from sqlalchemy import delete, select

        from signal4.content.state import PersonPrint

        by_model: dict[str, list[Voice]] = {}
        for voice in self.members(person_id):
            by_model.setdefault(voice.model, []).append(voice)
        for row in self.s.scalars(select(PersonPrint).where(PersonPrint.person_id == person_id)):
            if row.model not in by_model:
                self.s.execute(
                    delete(PersonPrint).where(
                        PersonPrint.person_id == person_id, PersonPrint.model == row.model
                    )
                )
                self.removed = True
        for model, voices in by_model.items():
            total: list[float] | None = None
            for voice in voices:
                vec = prints.from_bytes(voice.embedding, f"the print of {voice_label(voice)}")
                weight = min(voice.seconds, WEIGHT_CAP) or 1e-3
                if total is None:
                    total = [weight * v for v in vec]
                else:
                    total = [t + weight * v for t, v in zip(total, vec, strict=True)]
            assert total is not None
            kept = self.s.get(PersonPrint, (person_id, model))
            if kept is None:
                kept = PersonPrint(person_id=person_id, model=model, seconds=0.0, voices=0)
                self.s.add(kept)
            self._store(kept, total, seconds=sum(v.seconds for v in voices), voices=len(voices))

    def _store(self, row: Any, total: Sequence[float], *, seconds: float, voices: int) -> None:
        from array import array

        exact = prints.to_bytes(array("f", total))
        row.total, row.packed = exact, prints.pack(prints.unit(total))
        row.seconds, row.voices, row.version = seconds, voices, self.new_version
        self.changed = True
        index = self._indexes.get(row.model)
        if index is not None:
            index.put(row.person_id, exact, row.packed)

    # ------------------------------------------------------------------- matching

    def match(self, model: str, vec: array[float]) -> tuple[str, int | None, float | None]:
        """(how, person id, score) for a new print: ``matched`` to the best person at
        :data:`THRESHOLD` or more, ``ambiguous`` when another person with another name is
        within :data:`AMBIGUITY` of it, ``new`` (no person yet) below."""
        from signal4.content.state import Person

        hits = self.index(model, len(vec)).search(vec, THRESHOLD)
        if not hits:
            return "new", None, None
        best_score, best = hits[0]
        best_name = self.s.get(Person, best).name if hits[1:] else None  # type: ignore[union-attr]
        for score, other in hits[1:]:
            if best_score - score >= AMBIGUITY:
                break
            other_name = self.s.get(Person, other).name  # type: ignore[union-attr]
            if (best_name or other_name) and other_name != best_name:
                return "ambiguous", None, best_score
        return "matched", best, best_score

    def link(self, voice: Voice, person_id: int, how: str, score: float | None = None) -> None:
        """Make ``voice`` one of ``person_id``'s (its print joins the person's)."""
        voice.person_id, voice.how, voice.score = person_id, how, score
        self.s.flush()
        self.add_to_print(person_id, voice)
        self.touched.add(person_id)

    def add(self, voice: Voice, vec: array[float]) -> None:
        """Store a new voice, linked as its print says (see the module docstring)."""
        self.s.add(voice)
        self.s.flush()
        if voice.seconds < MIN_SECONDS:
            voice.how, voice.person_id, voice.score = "short", None, None
            return
        how, person_id, score = self.match(voice.model, vec)
        if how == "ambiguous":
            voice.how, voice.person_id, voice.score = how, None, score
        elif person_id is None:
            self.link(voice, self.new_person().id, "new")
        else:
            self.link(voice, person_id, "matched", score)


@contextmanager
def work(db: StateDB) -> Iterator[Work]:
    """A change of the registry, alone (see :meth:`StateDB.voices_session`)."""
    with db.voices_session() as s:
        w = Work(db, s)
        yield w
        if w.changed or w.removed:
            from signal4.content.state import VoiceClock

            clock = s.get(VoiceClock, 1)
            assert clock is not None
            clock.version = w.new_version if w.changed else w.version
            clock.generation = w.generation + (1 if w.removed else 0)
    w.committed()


def voice_label(voice: Voice) -> str:
    """How messages name a voice: ``item file-a… speaker SPEAKER_01`` or ``clip a.wav``."""
    if voice.content_id is None:
        return f"clip {voice.source}"
    return f"item {voice.content_id} speaker {voice.speaker}"


# ------------------------------------------------------------------------------- items


def diarization(content_root: Path, content_id: str) -> dict[str, Any] | None:
    """The item's diarization.json (plain or gzipped), or None where there is none."""
    from signal4.content.store import ContentStore, kept

    store = ContentStore(content_root)
    path = store.path(content_id, DIARIZATION)
    if not kept(path):
        return None
    doc = store.read_json(path)
    return doc if isinstance(doc, dict) else None


def register_item(
    db: StateDB, content_root: Path, content_id: str, *, only_new: bool = False
) -> list[str]:
    """Store the voices of ``content_id``'s diarization and link them (module docstring);
    write its speakers.json. Return the labels named in it.

    The item's earlier voices (a diarization made again) are replaced; a new voice close
    to one of them takes over its person and how it was linked, so a name given by hand
    stays. ``only_new``: leave an item that has voices already as it is.
    """
    doc = diarization(content_root, content_id)
    found = read_prints(doc, f"item {content_id}") if doc is not None else None
    with work(db) as w:
        from sqlalchemy import select

        from signal4.content.state import Voice

        old = list(w.s.scalars(select(Voice).where(Voice.content_id == content_id)))
        if (only_new and old) or (found is not None and _same(old, found)):
            found = None
        elif old or found is not None:
            _replace(w, content_id, old, found)
    named: list[str] = write_speakers(db, content_root, [content_id]).get(content_id, [])
    return named


def _same(old: Sequence[Voice], found: Prints) -> bool:
    """Whether the stored voices are exactly these prints (a diarize stage skipped)."""
    stored = {(v.speaker, v.model, v.embedding) for v in old}
    new = {(f.label, found.model, prints.to_bytes(f.vec)) for f in found.voices}
    return stored == new


def _replace(w: Work, content_id: str, old: Sequence[Voice], found: Prints | None) -> None:
    from signal4.content.state import Person, Voice

    heirs: dict[str, Voice] = {}
    for f in found.voices if found is not None else []:
        best = max(
            (
                (prints.dot(f.vec, prints.from_bytes(v.embedding, voice_label(v))), v)
                for v in old
                if v.model == found.model and v.person_id is not None  # type: ignore[union-attr]
            ),
            default=None,
            key=lambda pair: pair[0],
        )
        if best is not None and best[0] >= THRESHOLD and best[1] not in heirs.values():
            heirs[f.label] = best[1]
    persons = {v.person_id for v in old if v.person_id is not None}
    for voice in old:
        w.s.delete(voice)
    w.s.flush()
    for person_id in persons:
        w.rebuild_print(person_id)
        w.touched.add(person_id)
    if found is not None:
        for f in found.voices:
            voice = Voice(
                content_id=content_id,
                speaker=f.label,
                model=found.model,
                seconds=f.seconds,
                embedding=prints.to_bytes(f.vec),
                how="new",
            )
            heir = heirs.get(f.label)
            if heir is not None and heir.person_id is not None:
                w.s.add(voice)
                w.s.flush()
                w.link(voice, heir.person_id, heir.how, heir.score)
            else:
                w.add(voice, f.vec)
    for person_id in persons:
        person = w.s.get(Person, person_id)
        if person is not None:
            w.drop_if_empty(person)


def speakers_doc(s: Session, content_id: str) -> dict[str, Any]:
    """The speakers.json of ``content_id`` from the registry (see :mod:`.names`)."""
    from sqlalchemy import select

    from signal4.content.state import Person, Voice

    rows = s.execute(
        select(Voice, Person)
        .join(Person, Voice.person_id == Person.id, isouter=True)
        .where(Voice.content_id == content_id)
        .order_by(Voice.speaker)
    )
    speakers: dict[str, Any] = {}
    for voice, person in rows:
        shown = person is not None and person.name is not None and voice.how in CONFIDENT
        speakers[voice.speaker] = {
            "name": person.name if shown else None,
            "voice": names_mod.voice_id(person.id) if person is not None else None,
            "how": voice.how,
            "score": round(voice.score, 4) if voice.score is not None else None,
            "seconds": round(voice.seconds, 2),
        }
    return {"version": names_mod.VERSION, "speakers": speakers}


def write_speakers(db: StateDB, content_root: Path, content_ids: Iterable[str]) -> dict[str, Any]:
    """Write the speakers.json of each item from the registry; content id -> labels named."""
    from signal4.content.store import ContentStore

    store = ContentStore(content_root)
    out: dict[str, Any] = {}
    with db.session() as s:
        docs = {cid: speakers_doc(s, cid) for cid in content_ids}
    for cid, doc in docs.items():
        if not store.folder(cid).is_dir():
            continue
        names_mod.write_like(store, store.path(cid, names_mod.SPEAKERS_JSON), doc)
        out[cid] = sorted(names_mod.display(doc))
    return out


def items_of(s: Session, person_ids: Iterable[int]) -> list[str]:
    """The items with a voice of one of these persons."""
    from sqlalchemy import select

    from signal4.content.state import Voice

    ids = list(person_ids)
    if not ids:
        return []
    return sorted(
        {
            cid
            for cid in s.scalars(select(Voice.content_id).where(Voice.person_id.in_(ids)))
            if cid is not None
        }
    )


# ------------------------------------------------------------------------------ naming


def check_name(name: str) -> str:
    """A name a person may take: one line of text, not a voice-0007 id."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise VoiceError("a name cannot be empty")
    if len(cleaned) > MAX_NAME or any(ch in name for ch in "\n\r\t\0"):
        raise VoiceError(f"a name is one line of at most {MAX_NAME} characters")
    if names_mod.parse_voice_id(cleaned) is not None:
        raise VoiceError(f"{cleaned!r} is how unnamed voices are shown; choose another name")
    return cleaned


@dataclass
class Change:
    """What a naming command did: one line to print, and the items to relabel."""

    message: str
    items: list[str]


def _item_voice(w: Work, content_root: Path, content_id: str, speaker: str) -> Voice:
    """The registered voice of ``speaker`` in ``content_id`` (the item's voices are
    registered first if its diarization never was); VoiceError naming what is wrong."""
    from sqlalchemy import select

    from signal4.content.state import Content, Voice

    if w.s.get(Content, content_id) is None:
        raise VoiceError(f"unknown item {content_id!r} (inv status lists the items)")
    voices = list(w.s.scalars(select(Voice).where(Voice.content_id == content_id)))
    if not voices:
        doc = diarization(content_root, content_id)
        found = read_prints(doc, f"item {content_id}") if doc is not None else None
        if found is None:
            why = "no diarization" if doc is None else "a diarization without voice prints"
            raise VoiceError(f"item {content_id!r} has {why}; run diarize on it first")
        _replace(w, content_id, [], found)
        voices = list(w.s.scalars(select(Voice).where(Voice.content_id == content_id)))
    for voice in voices:
        if voice.speaker == speaker:
            return voice
    labels = ", ".join(sorted(v.speaker for v in voices))
    raise VoiceError(f"item {content_id!r} has no speaker {speaker!r}; its speakers: {labels}")


def _persons_items(w: Work, *person_ids: int | None) -> list[str]:
    return items_of(w.s, [p for p in person_ids if p is not None])


def enroll(db: StateDB, content_root: Path, name: str, content_id: str, speaker: str) -> Change:
    """Call the voice of ``speaker`` in ``content_id`` ``name``: its person takes the name
    (or joins the person who has it); a voice of another named person moves to ``name``."""
    name = check_name(name)
    with work(db) as w:
        voice = _item_voice(w, content_root, content_id, speaker)
        target = w.named(name)
        current = w.s.get(_person_class(), voice.person_id) if voice.person_id else None
        before = _persons_items(w, voice.person_id, target.id if target else None)
        what = f"{voice_label(voice)} is {name}"
        if current is not None and target is not None and current.id == target.id:
            voice.how = "enrolled"
            return Change(f"{what} already", before)
        if current is not None and current.name is None:
            if target is None:
                current.name = name
                voice.how = "enrolled"
                w.changed = True
                what += f" ({names_mod.voice_id(current.id)}, {len(w.members(current.id))} voices)"
            else:
                _absorb(w, target, current)
                voice.how = "enrolled"
        else:
            if current is not None:  # named otherwise: this voice alone moves
                voice.person_id = None
                w.s.flush()
                w.rebuild_print(current.id)
                what += f" (was {current.name})"
            person = target or w.new_person(name)
            w.link(voice, person.id, "enrolled", voice.score)
        items = sorted({*before, *_persons_items(w, voice.person_id), content_id})
    return Change(what, items)


def _person_class() -> Any:
    from signal4.content.state import Person

    return Person


def enroll_clip(db: StateDB, name: str, source: str, found: Prints) -> Change:
    """Call the one voice of a clip ``name``: it joins the person named so (new if none),
    and an unnamed person it matches becomes that person. VoiceError if it matches a
    person of another name (rename that one instead)."""
    from signal4.content.state import Voice

    name = check_name(name)
    if len(found.voices) != 1:
        raise VoiceError(f"the clip {source} holds {len(found.voices)} voices, not one")
    clip = found.voices[0]
    with work(db) as w:
        target = w.named(name)
        hits = w.index(found.model, len(clip.vec)).search(clip.vec, THRESHOLD)
        matched = w.s.get(_person_class(), hits[0][1]) if hits else None
        if matched is not None and matched.name is not None and matched.name != name:
            raise VoiceError(
                f"the voice of {source} is {matched.name} already (cosine {hits[0][0]:.2f}); "
                f"to call that person {name}: inv voices rename {matched.name!r} {name!r}"
            )
        before = _persons_items(w, matched.id if matched else None, target.id if target else None)
        if matched is not None and matched.name is None:
            if target is None:
                matched.name = name
                target = matched
            else:
                _absorb(w, target, matched)
        person = target or w.new_person(name)
        voice = Voice(
            content_id=None,
            speaker="clip",
            source=source,
            model=found.model,
            seconds=clip.seconds,
            embedding=prints.to_bytes(clip.vec),
            how="enrolled",
        )
        w.s.add(voice)
        w.s.flush()
        w.link(voice, person.id, "enrolled", hits[0][0] if hits else None)
        items = sorted({*before, *_persons_items(w, person.id)})
        joined = f", with {names_mod.voice_id(matched.id)}" if matched is not None else ""
    return Change(f"clip {source} is {name}{joined}: {len(items)} item(s)", items)


def _absorb(w: Work, keep: Person, other: Person) -> None:
    """Move every voice of ``other`` to ``keep`` and remove ``other``."""
    for voice in w.members(other.id):
        voice.person_id = keep.id
    w.s.flush()
    w.rebuild_print(keep.id)
    w.rebuild_print(other.id)
    if keep.name is None and other.name is not None:
        name, other.name = other.name, None
        w.s.flush()
        keep.name = name
    w.s.delete(other)
    w.s.flush()
    w.removed = True
    w.touched.add(keep.id)


def rename(db: StateDB, who: str, new: str) -> Change:
    """Give the person ``who`` (a name or voice-0007) the name ``new``."""
    new = check_name(new)
    with work(db) as w:
        person = w.person(who)
        taken = w.named(new)
        if taken is not None and taken.id != person.id:
            raise VoiceError(
                f"{new!r} is a name already; to make them one person: "
                f"inv voices merge {new!r} {who!r}"
            )
        old = person.name or names_mod.voice_id(person.id)
        person.name = new
        w.changed = True
        items = _persons_items(w, person.id)
    return Change(f"{old} is now {new}: {len(items)} item(s)", items)


def merge(db: StateDB, keep: str, other: str) -> Change:
    """Make ``other`` one person with ``keep``: its voices join ``keep``, which keeps its
    name (or takes ``other``'s, if it had none)."""
    with work(db) as w:
        a, b = w.person(keep), w.person(other)
        if a.id == b.id:
            raise VoiceError(f"{keep!r} and {other!r} are one person already")
        items = _persons_items(w, a.id, b.id)
        b_shown = b.name or names_mod.voice_id(b.id)
        _absorb(w, a, b)
        shown = a.name or names_mod.voice_id(a.id)
    return Change(f"{b_shown} merged into {shown}: {len(items)} item(s)", items)


def forget(db: StateDB, who: str) -> Change:
    """Remove the person ``who``: its name goes, its voices stay as anonymous prints of
    their items and are never matched again."""
    with work(db) as w:
        person = w.person(who)
        shown = person.name or names_mod.voice_id(person.id)
        items = _persons_items(w, person.id)
        for voice in w.members(person.id):
            voice.person_id, voice.how = None, "forgotten"
        w.s.flush()
        w.rebuild_print(person.id)
        w.s.delete(person)
        w.removed = True
    return Change(f"forgot {shown}: {len(items)} item(s) relabelled", items)


@dataclass(frozen=True)
class Row:
    """One person as ``inv voices list`` shows it."""

    voice: str
    name: str | None
    items: int
    clips: int
    voices: int
    seconds: float


def listing(db: StateDB, *, everyone: bool = False) -> list[Row]:
    """The named persons and the unnamed ones heard in two items or more (``everyone``:
    all), most items first."""
    from sqlalchemy import select

    from signal4.content.state import Person, Voice

    with db.session() as s:
        persons = {p.id: p for p in s.scalars(select(Person))}
        counts: dict[int, tuple[set[str], int, int, float]]
        counts = {p: (set(), 0, 0, 0.0) for p in persons}
        rows = s.execute(
            select(Voice.person_id, Voice.content_id, Voice.seconds).where(
                Voice.person_id.is_not(None)
            )
        )
        for person_id, content_id, seconds in rows:
            assert person_id is not None
            items, clips, voices, total = counts[person_id]
            if content_id is not None:
                items.add(content_id)
            counts[person_id] = (items, clips + (content_id is None), voices + 1, total + seconds)
    out = [
        Row(names_mod.voice_id(pid), persons[pid].name, len(i), c, n, round(t, 1))
        for pid, (i, c, n, t) in counts.items()
        if everyone or persons[pid].name is not None or len(i) >= 2
    ]
    return sorted(out, key=lambda r: (-r.items, -r.seconds, r.voice))
