"""The typed document: the committed record reads, writes back byte for byte, renders the same."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from signal4.measure import report
from signal4.measure.doc import SCHEMA_VERSION, Document, write_json
from tests.measure import docs

ROOT = Path(__file__).resolve().parents[2]
RECORD_JSON = ROOT / "benchmarks" / "startup.json"
RECORD_MD = ROOT / "benchmarks" / "startup.md"


def test_the_committed_record_reads_and_writes_back_unchanged(tmp_path: Path) -> None:
    text = RECORD_JSON.read_text(encoding="utf-8")
    doc = Document.from_json(json.loads(text))
    assert doc.schema_version == SCHEMA_VERSION
    stitch = doc.tasks["stitch"]
    assert stitch.measurement is not None
    assert len(stitch.ways["sub-direct"].samples_ns) == stitch.measurement.runs
    write_json(doc, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == text


def test_the_committed_record_renders_the_committed_tables() -> None:
    md = RECORD_MD.read_text(encoding="utf-8")
    command = re.search(r"command: `([^`]*)`", md)
    assert command is not None
    doc = Document.from_json(json.loads(RECORD_JSON.read_text(encoding="utf-8")))
    assert report.markdown(doc, command.group(1)) == md


def test_entries_keep_their_key_order() -> None:
    doc = docs.document({"ok": docs.measured(1.1), "gone": docs.skipped()})
    data = doc.to_json()
    assert list(data) == [
        "schema_version",
        "created",
        "machine",
        "settings",
        "seed",
        "seed_sizes",
        "tasks",
        "wall_s",
    ]
    assert list(data["tasks"]["gone"]) == ["env", "module", "status", "reason"]
    assert list(data["tasks"]["ok"])[:4] == ["env", "module", "status", "startup_modules"]
    assert data["tasks"]["ok"]["target"]["ratio_to_floor"] == 1.1
    assert Document.from_json(data) == doc


def test_a_missing_key_is_named_and_a_wrong_type_refused() -> None:
    data = docs.with_ratios({"stitch": 1.1}).to_json()
    del data["tasks"]["stitch"]["env"]
    with pytest.raises(KeyError, match="TaskResult has no 'env'"):
        Document.from_json(data)
    data = docs.with_ratios({"stitch": 1.1}).to_json()
    data["tasks"]["stitch"]["target"]["ratio_to_floor"] = "1.1"
    with pytest.raises(TypeError, match=r"got str .1\.1"):
        Document.from_json(data)
