"""The output channel's helpers."""

from __future__ import annotations

from signal4.console import human_bytes


def test_human_bytes() -> None:
    assert human_bytes(512) == "512B"
    assert human_bytes(2048) == "2K"
    assert human_bytes(5 * 1024**3) == "5.0G"
