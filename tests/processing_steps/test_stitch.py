"""stitch: speaker attribution, overlap dedup, sentence turns, WebVTT/SRT, order of steps."""

from __future__ import annotations

import json
import re

from signal4.processing_steps.stitch import (
    STEP,
    assign_speakers,
    dedup_overlap,
    segments,
    to_srt,
    to_vtt,
)
from signal4.stepkit import diarization
from tests.helpers import probe, speech
from tests.helpers.steps import db, run_step, store


def _w(word: str, start: float, end: float, chunk: int = 0) -> dict[str, object]:
    return {"word": word, "start": start, "end": end, "probability": 0.9, "chunk": chunk}


TURNS = [
    {"start": 0.0, "end": 9.6, "speaker": "SPEAKER_00"},
    {"start": 9.6, "end": 14.0, "speaker": "SPEAKER_01"},
]
# chunk 0 is 0-10 s, chunk 1 is 8-14 s: the words at 8.2-9.5 s are heard twice
WORDS = [
    _w("Hello", 7.0, 7.4),
    _w("there.", 7.5, 7.9),
    _w("How", 8.2, 8.5),
    _w("are", 8.6, 8.9),
    _w("you?", 9.0, 9.5),
    _w("Fine,", 9.75, 9.95),
    _w("How", 8.21, 8.5, 1),
    _w("are", 8.6, 8.88, 1),
    _w("you?", 9.0, 9.5, 1),
    _w("thanks.", 10.1, 10.5, 1),
    _w("Good.", 10.6, 11.0, 1),
]


def test_overlap_words_are_kept_once() -> None:
    kept = dedup_overlap(WORDS)
    assert [w["word"] for w in kept] == [
        "Hello",
        "there.",
        "How",
        "are",
        "you?",
        "Fine,",
        "thanks.",
        "Good.",
    ]


def test_attribution_across_a_chunk_boundary() -> None:
    words = assign_speakers(dedup_overlap(WORDS), TURNS)
    by_word = {w["word"]: w["speaker"] for w in words}
    # "Fine," (9.75-9.95) lies in chunk 0 but in speaker 1's turn
    assert by_word["you?"] == "SPEAKER_00" and by_word["Fine,"] == "SPEAKER_01"
    assert by_word["Good."] == "SPEAKER_01"
    # a word in no turn goes to the nearest one
    assert assign_speakers([_w("late", 20.0, 20.5)], TURNS)[0]["speaker"] == "SPEAKER_01"


def test_a_word_in_no_turn_goes_to_the_nearest_turn_not_the_last() -> None:
    turns = [
        {"start": 0.0, "end": 2.0, "speaker": "A"},
        {"start": 6.0, "end": 8.0, "speaker": "B"},
        {"start": 12.0, "end": 14.0, "speaker": "C"},
    ]
    words = [_w("early", 2.5, 2.7), _w("middle", 4.5, 4.7), _w("later", 10.5, 10.7)]
    assert [w["speaker"] for w in assign_speakers(words, turns)] == ["A", "B", "C"]
    assert assign_speakers([_w("x", 1.0, 1.2)], [])[0]["speaker"] == "UNKNOWN"


def test_sentences_and_turns_then_vtt_and_srt() -> None:
    segs = segments(assign_speakers(dedup_overlap(WORDS), TURNS), "en")
    assert [(s["speaker"], s["text"]) for s in segs] == [
        ("SPEAKER_00", "Hello there."),
        ("SPEAKER_00", "How are you?"),
        ("SPEAKER_01", "Fine, thanks."),
        ("SPEAKER_01", "Good."),
    ]
    vtt = to_vtt(segs)
    assert vtt.startswith("WEBVTT\n\n00:00:07.000 --> 00:00:07.900\n<v SPEAKER_00>Hello there.\n")
    srt = to_srt(segs)
    assert srt.startswith("1\n00:00:07,000 --> 00:00:07,900\n[SPEAKER_00] Hello there.\n\n2\n")
    assert len(re.findall(r"^\d+$", srt, flags=re.M)) == 4


def _transcribed(cid: str) -> None:
    speech.converted(cid, speech.silence(2.0))
    store().write_json(
        store().path(cid, "transcript_words.json"), {"language": "en", "chunks": 2, "words": WORDS}
    )
    db().mark(cid, "transcribe", "done")


def test_stitch_before_diarize_says_to_run_diarize() -> None:
    _transcribed("early")
    code, result = run_step(STEP, "--content", "early")
    assert code == 2 and "run diarize first" in result["error"]
    assert db().stage_status("early", "stitch") == "invalid_input"


def test_stitch_writes_the_three_files() -> None:
    _transcribed("full")
    diarization.write(store(), "full", TURNS, method="test")
    code, result = run_step(STEP, "--content", "full")
    assert code == 0 and result["speakers"] == 2, result
    folder = store().folder("full")
    doc = json.loads((folder / "transcript.json").read_text())
    assert doc["speakers"] == ["SPEAKER_00", "SPEAKER_01"] and len(doc["words"]) == 8
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")
    assert (folder / "transcript.srt").read_text().startswith("1\n")
    assert db().is_done("full", "stitch")


def test_shared_writer_merges_turns_and_writes_rttm() -> None:
    speech.converted("w", speech.silence(2.0))
    doc = diarization.write(
        store(),
        "w",
        [
            {"start": 1.0, "end": 2.0, "speaker": "B"},
            {"start": 0.0, "end": 0.9, "speaker": "B"},
            {"start": 2.5, "end": 3.0, "speaker": "A"},
        ],
        method="test",
    )
    assert doc["turns"] == [  # B speaks first, so it becomes SPEAKER_00
        {"start": 0.0, "end": 2.0, "speaker": "SPEAKER_00"},
        {"start": 2.5, "end": 3.0, "speaker": "SPEAKER_01"},
    ]
    assert doc["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert diarization.read(store(), "w") == doc
    rttm = store().path("w", "diarization.rttm").read_text().splitlines()
    assert rttm == [
        "SPEAKER w 1 0.000 2.000 <NA> <NA> SPEAKER_00 <NA> <NA>",
        "SPEAKER w 1 2.500 0.500 <NA> <NA> SPEAKER_01 <NA> <NA>",
    ]


def test_ready_probe_covers_a_real_run() -> None:
    _transcribed("probe")
    diarization.write(store(), "probe", TURNS, method="test")
    real = probe.assert_probe_covers("stitch", "--content", "probe")
    assert "pysbd" in real
    assert "sqlalchemy" not in real  # the runner records the state, not the step
    assert store().path("probe", "transcript.json").is_file()


def test_a_later_chunk_keeps_a_word_that_starts_as_the_previous_chunk_ends() -> None:
    # chunk 0's last word ends at 9.95 s; chunk 1 hears a new word from 9.97 s: not a repeat
    words = [_w("Fine,", 9.75, 9.95), _w("Fine,", 9.76, 9.95, 1), _w("thanks.", 9.97, 10.4, 1)]
    assert [(w["word"], w["chunk"]) for w in dedup_overlap(words)] == [
        ("Fine,", 0),
        ("thanks.", 1),
    ]


def test_a_word_goes_to_the_turn_it_overlaps_even_a_little() -> None:
    turns = [
        {"start": 0.0, "end": 5.0, "speaker": "A"},
        {"start": 6.0, "end": 10.0, "speaker": "B"},
        {"start": 20.0, "end": 30.0, "speaker": "C"},
    ]
    # half a second inside A, then a gap: A, not the nearest turn after it
    assert assign_speakers([_w("x", 4.5, 5.5)], turns)[0]["speaker"] == "A"
    # in the gap, touching A's end: A (the nearest), not a far turn
    assert assign_speakers([_w("y", 5.0, 5.4)], turns)[0]["speaker"] == "A"
    # more inside B than inside A: B
    assert assign_speakers([_w("z", 4.8, 7.0)], turns)[0]["speaker"] == "B"


# where two talk at once: A holds a long turn, B starts before A has finished
OVERLAPPING = [
    {"start": 0.0, "end": 5.0, "speaker": "SPEAKER_00"},
    {"start": 4.0, "end": 9.0, "speaker": "SPEAKER_01"},
]


def test_a_word_inside_an_overlap_goes_to_the_speaker_who_held_the_floor() -> None:
    words = [_w("end", 4.2, 4.6), _w("start", 5.2, 5.5)]
    assert [w["speaker"] for w in assign_speakers(words, OVERLAPPING)] == [
        "SPEAKER_00",
        "SPEAKER_01",
    ]
    # the order the turns come in does not decide it
    backwards = assign_speakers(words, OVERLAPPING[::-1])
    assert [w["speaker"] for w in backwards] == ["SPEAKER_00", "SPEAKER_01"]


def test_a_word_across_the_end_of_an_overlap_goes_to_the_turn_it_has_more_of() -> None:
    # 4.8-5.4: 0.2 s in A's turn, 0.6 s in B's
    assert assign_speakers([_w("so", 4.8, 5.4)], OVERLAPPING)[0]["speaker"] == "SPEAKER_01"


def test_stitch_attributes_by_the_overlapping_turns() -> None:
    speech.converted("both", speech.silence(2.0))
    words = [_w("Hello", 1.0, 1.4), _w("there", 4.2, 4.6), _w("again", 7.0, 7.4)]
    store().write_json(
        store().path("both", "transcript_words.json"), {"language": "en", "words": words}
    )
    diarization.write(store(), "both", OVERLAPPING, method="test")
    code, result = run_step(STEP, "--content", "both")
    assert code == 0, result
    doc = json.loads(store().path("both", "transcript.json").read_text())
    assert [w["speaker"] for w in doc["words"]] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]


def test_the_writer_names_every_track_and_voice_print_alike() -> None:
    speech.converted("names", speech.silence(2.0))
    turns = [
        {"start": 2.0, "end": 5.0, "speaker": "b"},
        {"start": 0.0, "end": 3.0, "speaker": "a"},
    ]
    extra = diarization.Extra(
        [{"start": 0.0, "end": 2.5, "speaker": "a"}, {"start": 2.5, "end": 5.0, "speaker": "b"}],
        {
            "b": {"seconds": 3.0, "embedding": [0.0, 1.0]},
            "a": {"seconds": 2.0, "embedding": [1.0, 0.0]},
        },
        {"name": "m", "digest": "sha256:1"},
    )
    doc = diarization.write(store(), "names", turns, method="test", extra=extra)
    assert [t["speaker"] for t in doc["turns"]] == ["SPEAKER_00", "SPEAKER_01"]  # a first
    assert [t["speaker"] for t in doc["exclusive_turns"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert doc["voiceprints"] == {
        "SPEAKER_00": {"seconds": 2.0, "embedding": [1.0, 0.0]},
        "SPEAKER_01": {"seconds": 3.0, "embedding": [0.0, 1.0]},
    }
    assert doc["embedding_model"] == {"name": "m", "digest": "sha256:1"}
    assert diarization.read(store(), "names") == doc
    # the RTTM keeps both overlapping turns
    assert len(store().path("names", "diarization.rttm").read_text().splitlines()) == 2


# --- names of known voices (speakers.json, written by the runner from the registry) ----


def _speakers(cid: str, names: dict[str, str | None]) -> None:
    store().write_json(
        store().path(cid, "speakers.json"),
        {"version": 1, "speakers": {label: {"name": n} for label, n in names.items()}},
    )


def _outputs(cid: str) -> dict[str, str]:
    folder = store().folder(cid)
    return {
        name: (folder / name).read_text()
        for name in ("transcript.json", "transcript.vtt", "transcript.srt", "transcript.rttm")
    }


def test_stitch_writes_a_named_speaker_under_its_name_everywhere() -> None:
    _transcribed("named")
    diarization.write(store(), "named", TURNS, method="test")
    _speakers("named", {"SPEAKER_00": "Ada Lovelace", "SPEAKER_01": None})
    code, result = run_step(STEP, "--content", "named")
    assert code == 0 and result["named"] == 1, result
    out = _outputs("named")
    doc = json.loads(out["transcript.json"])
    assert doc["speakers"] == ["Ada Lovelace", "SPEAKER_01"]
    assert doc["names"] == {"SPEAKER_00": "Ada Lovelace"}
    assert {(s["label"], s["speaker"]) for s in doc["segments"]} == {
        ("SPEAKER_00", "Ada Lovelace"),
        ("SPEAKER_01", "SPEAKER_01"),
    }
    assert "<v Ada Lovelace>Hello there." in out["transcript.vtt"]
    assert "[Ada Lovelace] Hello there." in out["transcript.srt"]
    assert "[SPEAKER_01] Fine, thanks." in out["transcript.srt"]
    rttm = [line.split() for line in out["transcript.rttm"].splitlines()]
    assert [f[7] for f in rttm] == ["Ada_Lovelace", "SPEAKER_01"]


def test_relabel_gives_what_a_new_stitch_gives_and_keeps_the_grouping_by_label() -> None:
    from signal4.processing_steps.stitch import relabel

    for cid in ("old", "fresh"):
        _transcribed(cid)
        diarization.write(store(), cid, TURNS, method="test")
    _speakers("old", {"SPEAKER_00": "Ada"})
    assert run_step(STEP, "--content", "old")[0] == 0
    # both speakers are one person now: the names change, the segments do not merge
    for cid in ("old", "fresh"):
        _speakers(cid, {"SPEAKER_00": "Grace", "SPEAKER_01": "Grace"})
    assert relabel(store(), "old")
    assert run_step(STEP, "--content", "fresh")[0] == 0
    old, fresh = _outputs("old"), _outputs("fresh")
    assert old["transcript.vtt"] == fresh["transcript.vtt"]
    assert old["transcript.srt"] == fresh["transcript.srt"]
    assert old["transcript.rttm"].replace("old", "fresh") == fresh["transcript.rttm"]
    assert json.loads(old["transcript.json"]) == json.loads(fresh["transcript.json"])
    assert len(json.loads(old["transcript.json"])["segments"]) == 4
    # a name forgotten disappears
    _speakers("old", {})
    assert relabel(store(), "old")
    assert "Grace" not in "".join(_outputs("old").values())


def test_relabel_keeps_a_compressed_transcript_compressed() -> None:
    import gzip

    from signal4.processing_steps.stitch import relabel

    _transcribed("gz")
    diarization.write(store(), "gz", TURNS, method="test")
    assert run_step(STEP, "--content", "gz")[0] == 0
    path = store().path("gz", "transcript.json")
    path.with_name("transcript.json.gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    _speakers("gz", {"SPEAKER_01": "Bo"})
    assert relabel(store(), "gz")
    assert not path.exists()
    doc = json.loads(gzip.decompress(path.with_name("transcript.json.gz").read_bytes()))
    assert doc["names"] == {"SPEAKER_01": "Bo"}
    assert not relabel(store(), "nothing-here")


def test_a_damaged_speakers_file_leaves_the_labels() -> None:
    _transcribed("bad")
    diarization.write(store(), "bad", TURNS, method="test")
    store().write_bytes(store().path("bad", "speakers.json"), b"{not json")
    code, result = run_step(STEP, "--content", "bad")
    assert code == 0 and result["named"] == 0, result
