"""Medians, pairwise ratios and rotating rounds."""

from __future__ import annotations

import pytest

from signal4.measure import stats
from signal4.measure.doc import Summary


def test_median_of_odd_and_even_counts() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        stats.median([])


def test_ratios_are_taken_round_by_round() -> None:
    # Way X is always twice the reference, though both drift a lot between rounds.
    assert stats.pairwise_ratios([200, 1000, 60], [100, 500, 30]) == [2.0, 2.0, 2.0]
    # The ratio of medians would be 1.2 here; round by round it is 2.4.
    x3, ref3 = [300, 110, 120], [100, 100, 50]
    assert stats.median_ratio(x3, ref3) == 2.4
    assert stats.median(x3) / stats.median(ref3) == 1.2
    # A way that failed part-way only pairs the rounds it has; a zero reference is skipped.
    assert stats.pairwise_ratios([10, 20], [5, 10, 15]) == [2.0, 2.0]
    assert stats.pairwise_ratios([10, 20], [0, 10]) == [2.0]
    assert stats.median_ratio([10], []) is None


def test_summarise_reports_seconds_and_the_median_ratio() -> None:
    s = stats.summarise([2_000_000_000, 1_000_000_000, 3_000_000_000], [1_000_000_000] * 3)
    assert s == Summary(median_s=2.0, min_s=1.0, max_s=3.0, ratio_to_sub_direct=2.0)
    assert stats.summarise([], [1]) == Summary()
    assert stats.summarise([5], None).ratio_to_sub_direct is None


def test_uv_overhead_is_a_median_of_per_round_differences() -> None:
    a = [3_000_000_000, 5_000_000_000, 4_000_000_000]
    b = [1_000_000_000, 4_500_000_000, 3_000_000_000]
    assert stats.median_difference_s(a, b) == 1.0
    assert stats.median_difference_s(a, []) is None


def test_rounds_rotate_the_order() -> None:
    items = ["a", "b", "c"]
    assert [stats.rotated(items, i) for i in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert stats.rotated([], 3) == []
