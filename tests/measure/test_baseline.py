"""``--check``: each task's sub-direct / floor ratio against a baseline's."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from signal4.commands import measure as measure_cmd
from signal4.measure.baseline import DEFAULT_TOLERANCE, Baseline, check_ways, load_baseline
from signal4.measure.doc import write_json
from signal4.measure.errors import MeasureError
from tests.measure.docs import with_ratios


def test_check_passes_within_tolerance_and_flags_a_regression() -> None:
    baseline = with_ratios({"stitch": 1.10, "convert": 1.05, "transcribe": 1.02, "diarize": None})
    current = with_ratios(
        {"stitch": 1.30, "convert": 1.30, "transcribe": None, "diarize": 1.4, "new": 1.0}
    )
    verdicts = {v.task: v for v in Baseline(baseline, tolerance=0.2).check(current)}
    assert verdicts["stitch"].regressed is False  # 1.30 <= 1.10 * 1.2
    assert verdicts["convert"].regressed is True  # 1.30 > 1.05 * 1.2
    assert verdicts["convert"].baseline == 1.05 and verdicts["convert"].current == 1.30
    assert (verdicts["transcribe"].regressed, verdicts["transcribe"].note) == (
        False,
        "not measured now",
    )
    assert (verdicts["diarize"].regressed, verdicts["diarize"].note) == (
        False,
        "no baseline figure",
    )
    assert verdicts["new"].note == "no baseline figure"
    assert not any(v.regressed for v in Baseline(baseline, tolerance=0.5).check(current))
    with pytest.raises(MeasureError, match="tolerance"):
        Baseline(baseline, tolerance=-0.1)


def test_the_default_tolerance_is_twenty_percent_everywhere() -> None:
    baseline = Baseline(with_ratios({"stitch": 1.0}))
    assert not baseline.check(with_ratios({"stitch": 1.19}))[0].regressed
    assert baseline.check(with_ratios({"stitch": 1.25}))[0].regressed
    # `inv measure` and its body default to the same tolerance.
    import tasks  # the dev env's (Invoke): imported here, so env sessions can collect this file

    for fn in (tasks.measure.body, measure_cmd.run):
        assert inspect.signature(fn).parameters["tolerance"].default == DEFAULT_TOLERANCE


def test_the_check_needs_sub_direct_and_the_floor() -> None:
    check_ways(["sub-direct", "floor-imports", "warm"])
    with pytest.raises(MeasureError, match="--check needs the ways sub-direct and floor-imports"):
        check_ways(["sub-direct"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read baseline"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "no schema_version"),
        ('{"tasks": {}}', "no schema_version"),
        (
            '{"schema_version": 999, "tasks": {}}',
            "schema_version 999.*re-create it with: inv measure",
        ),
        ('{"schema_version": 1, "tasks": []}', "no 'tasks' table"),
        ('{"schema_version": 1, "tasks": {}}', "not a complete `inv measure` document.*created"),
    ],
)
def test_bad_baseline_files_are_refused_clearly(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MeasureError, match=message):
        load_baseline(path)


def test_a_written_document_reads_back_as_a_baseline(tmp_path: Path) -> None:
    doc = with_ratios({"stitch": 1.1, "gone": None})
    write_json(doc, tmp_path / "out" / "b.json")
    loaded = load_baseline(tmp_path / "out" / "b.json", tolerance=0.5)
    assert (loaded.doc, loaded.tolerance) == (doc, 0.5)
