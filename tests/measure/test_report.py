"""The report's tables, from typed documents."""

from __future__ import annotations

from signal4.measure import report, ways
from signal4.measure.ways import FLOOR_IMPORTS, FLOOR_PASS, FULL_DIRECT, SUB_DIRECT, WARM
from tests.measure import docs


def test_the_warm_way_is_a_table_next_to_cold_and_monolith() -> None:
    doc = docs.document(
        {
            "stitch": docs.measured(
                ways={
                    WARM: docs.way(0.002, 30),
                    SUB_DIRECT: docs.way(0.4),
                    FULL_DIRECT: docs.way(0.5),
                },
                env="stitch",
            ),
            "convert": docs.measured(ways={SUB_DIRECT: docs.way(0.3)}, env="convert"),
        }
    )
    table = report.warm_table(doc)
    assert [row[:4] for row in table.rows] == [("stitch", "stitch", "30", "2.0")]
    assert table.rows[0][5:8] == ("400", "500", "—") and table.rows[0][-1] == "yes"


def test_the_way_columns_come_from_the_registry() -> None:
    doc = docs.document(
        {
            "stitch": docs.measured(
                1.1,
                ways={
                    SUB_DIRECT: docs.way(0.4),
                    FLOOR_PASS: docs.way(0.01),
                    FLOOR_IMPORTS: docs.way(0.35),
                },
            ),
            "gone": docs.skipped(),
        }
    )
    launch_columns = [w.column for w in ways.in_table(ways.LAUNCHES_TABLE)]
    table = report.ways_table(doc)
    assert list(table.columns[3:-2]) == launch_columns
    assert [row[0] for row in table.rows] == ["stitch"]
    floors = report.floors_table(doc)
    assert floors.columns[1:4] == ("-c pass", "floor", "sub direct")
    assert floors.rows[0][1:6] == ("0.010", "0.350", "0.400", "1.10x", "met")
    assert report.problems(doc) == ["skipped gone: env 'x' is missing"]
