"""A step's thread budget and a runner's share of the CPUs."""

from __future__ import annotations

import os

import pytest

from signal4 import cpu


def test_the_budget_is_the_variable_else_the_cpus_this_process_may_use() -> None:
    assert cpu.budget({"SIGNAL4_THREADS": "3"}) == 3
    assert cpu.budget({"SIGNAL4_THREADS": " 1 "}) == 1
    assert cpu.budget({}) == cpu.available() == len(os.sched_getaffinity(0))
    assert cpu.budget({"SIGNAL4_THREADS": "  "}) == cpu.available()


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", "nan"])
def test_a_bad_budget_names_the_variable(bad: str) -> None:
    with pytest.raises(cpu.BadThreads, match=rf"SIGNAL4_THREADS='{bad}': must be a whole"):
        cpu.budget({"SIGNAL4_THREADS": bad})


def test_a_share_divides_the_cpus_and_is_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "available", lambda: 4)
    assert [cpu.share(n) for n in (0, 1, 2, 3, 4, 8)] == [4, 4, 2, 1, 1, 1]
