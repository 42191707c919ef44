"""The voice registry on SQLite and the real PostgreSQL: linking, naming, relabelling,
errors, and two processes that find one new voice at once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from signal4.content import settings
from signal4.content.state import StateDB
from signal4.voices import registry
from signal4.voices.prints import BadPrint
from tests.voices.helpers import MODEL, diarized, heard, person, shown

ADA, BO, CY = person(1), person(2), person(3)


@pytest.fixture
def db(db_url: str) -> Any:
    registry.forget_cache()
    handle = StateDB(db_url)
    yield handle
    handle.engine.dispose()
    registry.forget_cache()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "content"


def _relabel(db: StateDB, root: Path, items: list[str]) -> None:
    from signal4.commands.voices import relabel

    relabel(db, root, settings.load(data_dir=root.parent), items)


def _persons(db: StateDB) -> dict[str, list[tuple[str | None, str]]]:
    """person (name or voice id) -> its voices (item, label)."""
    out: dict[str, list[tuple[str | None, str]]] = {}
    names = {p.id: p.name or f"voice-{p.id:04d}" for p in db.persons()}
    for v in db.voices():
        if v.person_id is not None:
            out.setdefault(names[v.person_id], []).append((v.content_id, v.speaker))
    return out


def _consistent(db: StateDB, root: Path, items: list[str]) -> None:
    """Every item's transcript shows the name of the named person its voice belongs to
    (a confident link), and the label elsewhere."""
    persons = {p.id: p.name for p in db.persons()}
    for cid in items:
        want = {}
        for v in db.voices(cid):
            name = persons.get(v.person_id) if v.person_id is not None else None
            ok = name is not None and v.how in registry.CONFIDENT
            want[v.speaker] = name if ok else v.speaker
        assert shown(root, cid) == want, cid
        speakers = json.loads((root / cid / "speakers.json").read_text())["speakers"]
        assert {k: e["name"] or k for k, e in speakers.items()} == want


def test_recurring_voices_link_across_items_and_a_name_reaches_them_all(
    db: StateDB, root: Path
) -> None:
    diarized(
        db, root, "ep1", {"SPEAKER_00": (heard(ADA, 1), 30.0), "SPEAKER_01": (heard(BO, 2), 9.0)}
    )
    diarized(
        db, root, "ep2", {"SPEAKER_00": (heard(BO, 3), 12.0), "SPEAKER_01": (heard(ADA, 4), 20.0)}
    )
    diarized(
        db, root, "ep3", {"SPEAKER_00": (heard(CY, 5), 25.0), "SPEAKER_01": (heard(ADA, 6), 1.0)}
    )
    for cid in ("ep1", "ep2", "ep3"):
        registry.register_item(db, root, cid)
    linked = _persons(db)
    assert sorted(map(sorted, linked.values())) == [
        [("ep1", "SPEAKER_00"), ("ep2", "SPEAKER_01")],
        [("ep1", "SPEAKER_01"), ("ep2", "SPEAKER_00")],
        [("ep3", "SPEAKER_00")],
    ]
    short = next(v for v in db.voices("ep3") if v.speaker == "SPEAKER_01")
    assert short.how == "short" and short.person_id is None  # 1 s: too little to tell
    rows = registry.listing(db)
    assert [(r.name, r.items) for r in rows] == [(None, 2), (None, 2)]
    assert len(registry.listing(db, everyone=True)) == 3

    change = registry.enroll(db, root, "Ada", "ep1", "SPEAKER_00")
    assert change.items == ["ep1", "ep2"]
    _relabel(db, root, ["ep1", "ep2", "ep3"])
    assert shown(root, "ep2") == {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "Ada"}
    _consistent(db, root, ["ep1", "ep2", "ep3"])
    # a later item is named as it is registered
    diarized(db, root, "ep4", {"SPEAKER_00": (heard(ADA, 7), 8.0)})
    assert registry.register_item(db, root, "ep4") == ["SPEAKER_00"]


def test_rename_merge_and_forget_keep_every_transcript_consistent(db: StateDB, root: Path) -> None:
    items = ["a", "b", "c"]
    diarized(
        db, root, "a", {"SPEAKER_00": (heard(ADA, 1), 30.0), "SPEAKER_01": (heard(BO, 2), 9.0)}
    )
    diarized(
        db, root, "b", {"SPEAKER_00": (heard(BO, 3), 12.0), "SPEAKER_01": (heard(ADA, 4), 20.0)}
    )
    diarized(db, root, "c", {"SPEAKER_00": (heard(CY, 5), 25.0)})
    for cid in items:
        registry.register_item(db, root, cid)
    steps = [
        lambda: registry.enroll(db, root, "Ada", "a", "SPEAKER_00"),
        lambda: registry.enroll(db, root, "Bo", "b", "SPEAKER_00"),
        lambda: registry.rename(db, "Ada", "Ada Lovelace"),
        lambda: registry.enroll(db, root, "Cy", "c", "SPEAKER_00"),
        lambda: registry.merge(db, "Cy", "Bo"),  # Bo's voices join Cy
        lambda: registry.forget(db, "Ada Lovelace"),
    ]
    for step in steps:
        change = step()
        _relabel(db, root, change.items)
        _consistent(db, root, items)
    assert shown(root, "a") == {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "Cy"}
    everything = "".join(p.read_text() for p in root.rglob("transcript.*"))
    assert "Ada" not in everything and "Bo" not in everything.replace("Bob", "")
    assert [r.name for r in registry.listing(db)] == ["Cy"]
    # forgotten voices are never matched again: Ada comes back as a new, unnamed voice
    diarized(db, root, "d", {"SPEAKER_00": (heard(ADA, 9), 15.0)})
    assert registry.register_item(db, root, "d") == []
    assert [v.how for v in db.voices("d")] == ["new"]


def test_a_diarization_made_again_keeps_its_names(db: StateDB, root: Path) -> None:
    diarized(db, root, "a", {"SPEAKER_00": (heard(ADA, 1), 30.0)})
    registry.register_item(db, root, "a")
    registry.enroll(db, root, "Ada", "a", "SPEAKER_00")
    # diarize again: new labels, a slightly different print
    diarized(
        db, root, "a", {"SPEAKER_01": (heard(ADA, 11), 28.0), "SPEAKER_00": (heard(BO, 2), 5.0)}
    )
    assert registry.register_item(db, root, "a") == ["SPEAKER_01"]
    assert registry.register_item(db, root, "a") == ["SPEAKER_01"]  # the same again: no change
    assert len(db.voices("a")) == 2 and len(db.persons()) == 2


def test_a_match_between_two_named_persons_stays_anonymous(db: StateDB, root: Path) -> None:
    both = [(a + b) for a, b in zip(ADA, BO, strict=True)]
    diarized(db, root, "a", {"SPEAKER_00": (ADA, 30.0), "SPEAKER_01": (BO, 30.0)})
    registry.register_item(db, root, "a")
    registry.enroll(db, root, "Ada", "a", "SPEAKER_00")
    registry.enroll(db, root, "Bo", "a", "SPEAKER_01")
    norm = sum(v * v for v in both) ** 0.5
    diarized(db, root, "b", {"SPEAKER_00": ([v / norm for v in both], 20.0)})  # cos 0.71 to both
    assert registry.register_item(db, root, "b") == []
    assert [v.how for v in db.voices("b")] == ["ambiguous"]


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (
            lambda db, root: registry.enroll(db, root, "X", "nope", "SPEAKER_00"),
            "unknown item 'nope'",
        ),
        (
            lambda db, root: registry.enroll(db, root, "X", "a", "SPEAKER_09"),
            "no speaker 'SPEAKER_09'; its speakers: SPEAKER_00",
        ),
        (
            lambda db, root: registry.enroll(db, root, "voice-0003", "a", "SPEAKER_00"),
            "how unnamed voices are shown",
        ),
        (lambda db, root: registry.enroll(db, root, "  ", "a", "SPEAKER_00"), "cannot be empty"),
        (lambda db, root: registry.rename(db, "Nobody", "Y"), "no voice is called 'Nobody'"),
        (lambda db, root: registry.rename(db, "Ada", "Bo"), "'Bo' is a name already"),
        (lambda db, root: registry.merge(db, "Ada", "Ada"), "one person already"),
        (lambda db, root: registry.forget(db, "voice-0999"), "no voice is called 'voice-0999'"),
    ],
)
def test_naming_mistakes_are_one_line_errors(db: StateDB, root: Path, call: Any, text: str) -> None:
    diarized(db, root, "a", {"SPEAKER_00": (ADA, 30.0), "SPEAKER_01": (BO, 30.0)})
    registry.register_item(db, root, "a")
    registry.enroll(db, root, "Ada", "a", "SPEAKER_00")
    registry.enroll(db, root, "Bo", "a", "SPEAKER_01")
    with pytest.raises(registry.VoiceError) as err:
        call(db, root)
    assert text in str(err.value) and "\n" not in str(err.value) and err.value.code == 2


@pytest.mark.parametrize(
    ("embedding", "text"),
    [
        ([float("nan")] * 192, "NaN or an infinite number"),
        ([0.0] * 192, "all zeros"),
        ("abc", "not a list of numbers"),
        ([1.0] * 3, "has 3 numbers"),
    ],
)
def test_a_damaged_print_is_one_line(db: StateDB, root: Path, embedding: Any, text: str) -> None:
    diarized(db, root, "a", {"SPEAKER_00": (ADA, 30.0)})
    doc = json.loads((root / "a" / "diarization.json").read_text())
    doc["voiceprints"]["SPEAKER_00"]["embedding"] = embedding
    (root / "a" / "diarization.json").write_text(json.dumps(doc))
    with pytest.raises(BadPrint) as err:
        registry.register_item(db, root, "a")
    assert text in str(err.value) and "item a, speaker SPEAKER_00" in str(err.value)


def test_a_nan_in_a_stored_print_is_one_line(db: StateDB, root: Path) -> None:
    from sqlalchemy import update

    from signal4.content.state import PersonPrint

    diarized(db, root, "a", {"SPEAKER_00": (ADA, 30.0)})
    registry.register_item(db, root, "a")
    with db.session(write=True) as s:
        s.execute(update(PersonPrint).values(total=b"\x00\x00\xc0\x7f" * 192))
    registry.forget_cache()
    diarized(db, root, "b", {"SPEAKER_00": (heard(ADA, 2), 30.0)})
    with pytest.raises(BadPrint, match="NaN"):
        registry.register_item(db, root, "b")


def test_prints_of_another_model_are_never_compared(db: StateDB, root: Path) -> None:
    diarized(db, root, "a", {"SPEAKER_00": (ADA, 30.0)})
    registry.register_item(db, root, "a")
    diarized(db, root, "b", {"SPEAKER_00": (ADA, 30.0)})
    doc = json.loads((root / "b" / "diarization.json").read_text())
    doc["embedding_model"] = {**MODEL, "digest": "sha256:other"}
    (root / "b" / "diarization.json").write_text(json.dumps(doc))
    registry.register_item(db, root, "b")
    assert [v.how for v in db.voices("b")] == ["new"]


# ----------------------------------------------------------------- two at once


def register_in_process(url: str, root: str, barrier: Any, cids: list[str]) -> None:
    """Wait for the others, then register our items (a process of its own: spawn)."""
    if url.startswith("postgresql"):
        import psycopg  # noqa: F401
    db = StateDB(url)
    barrier.wait(120)
    for cid in cids:
        registry.register_item(db, Path(root), cid)
    db.engine.dispose()


def test_two_processes_finding_the_same_new_voices_at_once_make_one_person_each(
    db_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "content"
    db = StateDB(db_url)
    rounds = 6
    for r in range(rounds):  # round r: a new person, heard in one item of each process
        base = person(100 + r)
        for w in range(2):
            diarized(db, root, f"w{w}-{r}", {"SPEAKER_00": (heard(base, 10 * r + w), 20.0)})
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(
            target=register_in_process,
            args=(db_url, str(root), barrier, [f"w{w}-{r}" for r in range(rounds)]),
        )
        for w in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    linked = _persons(db)
    assert len(linked) == rounds, linked
    assert sorted(len(v) for v in linked.values()) == [2] * rounds
    db.engine.dispose()
