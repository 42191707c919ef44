"""signals.handling: handlers for the length of a block, on the main thread only."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from signal4.signals import handling


def _mine(_signum: int, _frame: FrameType | None) -> None:
    pass


def test_the_handlers_hold_inside_the_block_and_the_old_ones_come_back() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    with handling(_mine):
        assert signal.getsignal(signal.SIGINT) is _mine
        assert signal.getsignal(signal.SIGTERM) is _mine
        assert signal.getsignal(signal.SIGUSR1) == before[signal.SIGUSR1]  # only those two
    assert {s: signal.getsignal(s) for s in before} == before
    with handling(_mine, [signal.SIGUSR1]):
        assert signal.getsignal(signal.SIGUSR1) is _mine
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_error_in_the_block_still_puts_the_old_handlers_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        with handling(_mine):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert signal.getsignal(signal.SIGTERM) == before


def test_off_the_main_thread_the_block_runs_without_handlers() -> None:
    ran: list[object] = []

    def body() -> None:
        with handling(_mine):
            ran.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert ran == [before]
