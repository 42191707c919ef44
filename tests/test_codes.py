"""Statuses and exit codes: each status's exit code, and the words that go on the wire."""

from __future__ import annotations

import json
import signal

from signal4 import codes
from signal4.codes import ItemStatus, StageState, Status


def test_every_status_has_its_exit_code() -> None:
    assert {s: s.exit_code for s in Status} == {
        Status.COMPLETED: 0,
        Status.SKIPPED: 0,
        Status.INVALID_INPUT: 2,
        Status.FAILED: 1,
        Status.TIMED_OUT: 124,
        Status.INTERRUPTED: 130,
    }
    assert [s for s in Status if s.ok] == [Status.COMPLETED, Status.SKIPPED]
    assert Status.INTERRUPTED not in codes.STEP_STATUSES  # only a runner says it
    assert Status.TIMED_OUT not in codes.STEP_STATUSES


def test_a_signal_ends_a_command_with_128_plus_its_number() -> None:
    assert codes.exit_for_signal(signal.SIGINT) == codes.EXIT_INTERRUPTED == 130
    assert codes.exit_for_signal(signal.SIGTERM) == 143


def test_statuses_are_the_plain_words_in_json_and_in_comparisons() -> None:
    assert json.dumps({"status": Status.INVALID_INPUT}) == '{"status": "invalid_input"}'
    assert StageState.DONE == "done" and Status("timed_out") is Status.TIMED_OUT
    assert StageState.PENDING not in codes.RECORDED_STATES
    recorded = {"done", "failed", "invalid_input", "timed_out", "interrupted"}
    assert recorded == codes.RECORDED_STATES


def test_an_item_is_finished_when_nothing_more_of_it_runs() -> None:
    assert {s for s in ItemStatus if s.finished} == {
        ItemStatus.DONE,
        ItemStatus.FAILED,
        ItemStatus.INTERRUPTED,
    }


def test_the_exit_codes_are_the_ones_the_table_documents() -> None:
    import re

    table = dict(
        (int(code), text.strip())
        for code, text in re.findall(r"^(\d+) +(.+)$", codes.__doc__ or "", flags=re.M)
    )
    named = {
        codes.EXIT_OK: "done",
        codes.EXIT_FAILED: "the work failed",
        codes.EXIT_USAGE: "a usage or configuration mistake",
        codes.EXIT_BROKER: "the broker does not answer",
        codes.EXIT_STATE_DB: "the state DB cannot be reached",
        codes.EXIT_TIMEOUT: "a step ran past its time limit",
        codes.EXIT_INTERRUPTED: "interrupted by Ctrl-C",
    }
    assert sorted(named) == sorted(table) == [0, 1, 2, 3, 4, 124, 130]
    for code, meaning in named.items():
        assert table[code].startswith(meaning), (code, table[code])
    assert codes.EXIT_INVALID == codes.EXIT_USAGE
