"""One task's figures from its ways' samples: the target and uv's own time."""

from __future__ import annotations

import pytest

from signal4.measure.doc import WayResult
from signal4.measure.task import target, uv_overhead
from signal4.measure.ways import FLOOR_IMPORTS, FLOOR_PASS, FULL_DIRECT, FULL_UV, SUB_DIRECT, SUB_UV


def _ways(**samples: list[int]) -> dict[str, WayResult]:
    return {
        name.replace("_", "-"): WayResult(("x",), samples_ns=tuple(s))
        for name, s in samples.items()
    }


def test_target_compares_sub_direct_with_the_floor_pair_by_pair() -> None:
    ways = _ways(sub_direct=[110, 230, 120], floor_imports=[100, 200, 100], floor_pass=[10, 23, 12])
    assert set(ways) == {SUB_DIRECT, FLOOR_IMPORTS, FLOOR_PASS}
    t = target(ways)
    assert t.ratio_to_floor == pytest.approx(1.15)
    assert t.ratio_to_pass == pytest.approx(10.0)
    assert (t.met, t.limit) == (True, 1.15)
    assert target({**ways, **_ways(sub_direct=[200, 400, 200])}).met is False
    assert target(_ways(sub_direct=[1])).met is None


def test_uv_overhead_pairs_each_uv_way_with_its_direct_way() -> None:
    ways = _ways(
        full_uv=[5_000_000_000],
        full_direct=[1_000_000_000],
        sub_uv=[3_000_000_000],
        sub_direct=[2_500_000_000],
    )
    assert set(ways) == {FULL_UV, FULL_DIRECT, SUB_UV, SUB_DIRECT}
    overhead = uv_overhead(ways)
    assert (overhead.full, overhead.sub) == (4.0, 0.5)
    assert uv_overhead(_ways(sub_direct=[1])).full is None
