"""The result protocol: the exit codes the README promises, the one result line, content ids."""

from __future__ import annotations

import json

import pytest

from signal4.stepkit import protocol


@pytest.mark.parametrize(
    ("status", "code"),
    [("completed", 0), ("skipped", 0), ("invalid_input", 2), ("failed", 1), ("timed_out", 124)],
)
def test_each_status_has_the_exit_code_the_readme_promises(status: str, code: int) -> None:
    assert protocol.verdict({"status": status, "error": "why"})[:2] == (status, code)


def test_the_error_is_given_for_failures_only() -> None:
    assert protocol.verdict({"status": "completed", "error": "ignored"}) == ("completed", 0, None)
    assert protocol.verdict({"status": "failed", "error": 42}) == ("failed", 1, "42")
    assert protocol.verdict({"status": "failed"}) == ("failed", 1, None)
    with pytest.raises(protocol.ProtocolError, match="no valid status: 'great'"):
        protocol.verdict({"status": "great"})


def test_the_result_line_is_one_readable_line() -> None:
    line = protocol.encode({"status": "completed", "title": "Café à Montréal", "n": [1, 2]})
    assert "\n" not in line
    assert "Café à Montréal" in line  # as the user wrote it, not \u escapes
    assert protocol.parse_last_line(f"progress\n{line}\n\n") == json.loads(line)
    with pytest.raises(protocol.ProtocolError, match="status must be one of"):
        protocol.encode({"status": "timed_out"})  # the dispatcher's, never a step's


def test_the_content_a_result_names() -> None:
    assert protocol.content_of({"status": "completed", "content": "abc"}) == "abc"
    assert protocol.content_of({"status": "completed", "contents": ["b", "c"]}) == "b"
    assert protocol.content_of({"status": "completed", "contents": []}) is None
    assert protocol.content_of({"status": "completed"}) is None
