"""What ``speakers.json`` holds: each speaker label of an item and the name to show for it.

The runner writes it (beside ``diarization.json``) from the voice registry each time the
item's voices or their names change; ``stitch`` reads it and writes the names into the
transcript. Standard library only: steps import this module, never the registry.

::

    {"version": 1,
     "speakers": {"SPEAKER_00": {"name": "Ada Lovelace", "voice": "voice-0003",
                                 "score": 0.81, "seconds": 24.2},
                  "SPEAKER_01": {"name": null, "voice": "voice-0007", ...}}}

``name`` is set only where the match is confident; elsewhere the label stays.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPEAKERS_JSON = "speakers.json"
VERSION = 1


def voice_id(person_id: int) -> str:
    """How a person of the registry is shown: voice-0007."""
    return f"voice-{person_id:04d}"


def parse_voice_id(text: str) -> int | None:
    """The person id of ``voice-0007`` (or ``voice-7``), None for anything else."""
    m = re.fullmatch(r"voice-(\d{1,9})", text.strip())
    return int(m[1]) if m else None


def display(doc: Mapping[str, Any] | None) -> dict[str, str]:
    """label -> the name to show, for the labels that have a name (from a speakers.json)."""
    if not isinstance(doc, Mapping):
        return {}
    speakers = doc.get("speakers")
    if not isinstance(speakers, Mapping):
        return {}
    out: dict[str, str] = {}
    for label, entry in speakers.items():
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if isinstance(name, str) and name.strip():
            out[str(label)] = name.strip()
    return out


def read(store: Any, content_id: str) -> dict[str, Any] | None:
    """The item's speakers.json (plain or gzipped), or None where there is none or it is
    unreadable (the transcript then keeps the labels)."""
    path: Path = store.path(content_id, SPEAKERS_JSON)
    try:
        doc = store.read_json(path)
    except (OSError, ValueError, EOFError):
        return None
    return doc if isinstance(doc, dict) else None


def write_like(store: Any, path: Path, value: Any) -> None:
    """Write JSON to ``path`` in the form the file has: gzipped where cleanup_and_compress
    left only its ``.gz``, plain otherwise."""
    gz = path.with_name(path.name + ".gz")
    if not path.exists() and gz.exists():
        store.write_json(gz, value, compress=True)
    else:
        store.write_json(path, value)


def rttm_name(name: str) -> str:
    """A name as one RTTM field (whitespace is its separator): spaces become underscores."""
    return re.sub(r"\s+", "_", name.strip()) or "_"
