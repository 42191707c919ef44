"""The statistics of ``inv measure``: medians, pairwise ratios and the order of rounds.

A *pairwise* ratio pairs round i of one way with round i of another (the rounds are
interleaved), then takes the median of those ratios: it cancels much of the machine's load
drift that two separate medians would carry.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TypeVar

from signal4.measure.doc import Summary

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (the mean of the middle two for an even count)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def pairwise_ratios(samples: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Return sample i / reference i for each round both have."""
    return [s / r for s, r in zip(samples, reference, strict=False) if r > 0]


def median_ratio(samples: Sequence[float], reference: Sequence[float]) -> float | None:
    """The median of :func:`pairwise_ratios`; None when no round pairs up."""
    ratios = pairwise_ratios(samples, reference)
    return median(ratios) if ratios else None


def median_difference_s(samples_ns: Sequence[int], reference_ns: Sequence[int]) -> float | None:
    """The median over rounds of (sample i - reference i), in seconds; None if unpaired."""
    diffs = [x - y for x, y in zip(samples_ns, reference_ns, strict=False)]
    return median(diffs) / 1e9 if diffs else None


def summarise(samples_ns: Sequence[int], reference_ns: Sequence[int] | None) -> Summary:
    """Return median/min/max in seconds and the median pairwise ratio to the reference."""
    if not samples_ns:
        return Summary()
    return Summary(
        median_s=median(samples_ns) / 1e9,
        min_s=min(samples_ns) / 1e9,
        max_s=max(samples_ns) / 1e9,
        ratio_to_sub_direct=median_ratio(samples_ns, reference_ns or []),
    )


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """Return ``items`` rotated left by ``shift``: round i starts with the i-th item."""
    if not items:
        return []
    k = shift % len(items)
    return [*items[k:], *items[:k]]
