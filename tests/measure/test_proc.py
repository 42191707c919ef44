"""One child of ``inv measure``: timed, its ready line read, its failure explained."""

from __future__ import annotations

import sys

import pytest

from signal4.measure import proc
from signal4.measure.errors import ProbeError


def test_a_child_is_run_to_the_end_and_timed() -> None:
    code = "import sys, time; time.sleep(0.05); print('out'); print('err', file=sys.stderr)"
    done, ns = proc.timed_run([sys.executable, "-c", code], None, None)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert ns >= 50_000_000


def test_the_ready_line_must_be_the_last_and_say_ready() -> None:
    proc.expect_ready('noise\n{"status": "completed", "ready": true}\n', "")
    with pytest.raises(ProbeError, match="no 'ready'"):
        proc.expect_ready('{"status": "completed"}\n', "")
    with pytest.raises(ProbeError, match=r"no result line.*stderr tail:\nboom"):
        proc.expect_ready("", "import time: 12 | x\nboom\n")


def test_the_stderr_tail_leaves_out_import_times_and_keeps_the_end() -> None:
    text = "import time: 1 | a\nreal line\n" + proc.LOADED_MARK + " a b\n" + "x" * 5000
    tail = proc.stderr_tail(text)
    assert "import time" not in tail and proc.LOADED_MARK not in tail
    assert len(tail) == proc.STDERR_TAIL_CHARS and tail.endswith("x")
    assert str(proc.failed_exit(3, "bad thing\n")) == "exit code 3; stderr tail:\nbad thing"
