"""``inv measure``: statistics, the baseline check, bad input, and real measurements.

The real measurements use a tiny locked project whose env really holds pysbd, so they
exercise every launch way end to end in seconds. The probe-coverage test here checks
the check itself on that project; each real task's probe is checked inside its own env
by its step tests (``tests/helpers/probe.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signal4.commands.cli import UserError
from signal4.envs import manifest, syncer
from signal4.envs import venv as envs
from signal4.measure import core as measure
from signal4.measure import report as measure_report
from signal4.measure.core import (
    FLOOR_IMPORTS,
    FLOOR_PASS,
    FULL_DIRECT,
    SUB_DIRECT,
    SUB_UV,
    MeasureError,
)
from signal4.run import dispatch
from tests.helpers import demo, probe

# --------------------------------------------------------------------------- statistics


def test_median_of_odd_and_even_counts() -> None:
    assert measure.median([3.0, 1.0, 2.0]) == 2.0
    assert measure.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        measure.median([])


def test_ratios_are_taken_round_by_round() -> None:
    # Way X is always twice the reference, though both drift a lot between rounds.
    x = [200, 1000, 60]
    ref = [100, 500, 30]
    assert measure.pairwise_ratios(x, ref) == [2.0, 2.0, 2.0]
    # The ratio of medians would be 200/100 too here, but not when rounds drift unevenly:
    x2, ref2 = [300, 120, 900], [100, 100, 300]
    assert measure.median(measure.pairwise_ratios(x2, ref2)) == 3.0
    assert measure.median(x2) / measure.median(ref2) == 3.0 * 100 / 100  # same by chance
    x3, ref3 = [300, 110, 120], [100, 100, 50]
    assert measure.median(measure.pairwise_ratios(x3, ref3)) == 2.4
    assert measure.median(x3) / measure.median(ref3) == 1.2
    # A way that failed part-way only pairs the rounds it has; a zero reference is skipped.
    assert measure.pairwise_ratios([10, 20], [5, 10, 15]) == [2.0, 2.0]
    assert measure.pairwise_ratios([10, 20], [0, 10]) == [2.0]


def test_summarise_reports_seconds_and_the_median_ratio() -> None:
    s = measure.summarise([2_000_000_000, 1_000_000_000, 3_000_000_000], [1_000_000_000] * 3)
    assert s == {"median_s": 2.0, "min_s": 1.0, "max_s": 3.0, "ratio_to_sub_direct": 2.0}
    empty = measure.summarise([], [1])
    assert empty["median_s"] is None and empty["ratio_to_sub_direct"] is None


def test_uv_overhead_is_a_median_of_per_round_differences() -> None:
    ways = {
        "a": {"samples_ns": [3_000_000_000, 5_000_000_000, 4_000_000_000]},
        "b": {"samples_ns": [1_000_000_000, 4_500_000_000, 3_000_000_000]},
    }
    assert measure.pairwise_difference_s(ways, "a", "b") == 1.0
    assert measure.pairwise_difference_s(ways, "a", "missing") is None


def test_rounds_rotate_the_order() -> None:
    items = ["a", "b", "c"]
    assert [measure.rotated(items, i) for i in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_target_compares_sub_direct_with_the_floor_pair_by_pair() -> None:
    ways = {
        SUB_DIRECT: {"samples_ns": [110, 230, 120]},
        FLOOR_IMPORTS: {"samples_ns": [100, 200, 100]},
        FLOOR_PASS: {"samples_ns": [10, 23, 12]},
    }
    t = measure.target(ways)
    assert t["ratio_to_floor"] == pytest.approx(1.15)
    assert t["ratio_to_pass"] == pytest.approx(10.0)
    assert t["met"] is True
    ways[SUB_DIRECT]["samples_ns"] = [200, 400, 200]
    assert measure.target(ways)["met"] is False
    assert measure.target({SUB_DIRECT: {"samples_ns": [1]}})["met"] is None


def test_floor_code_imports_in_order(tmp_path: Path) -> None:
    code = measure.floor_code(["json", "email.message", "_sysconfigdata__linux_x86_64-linux-gnu"])
    assert measure.floor_code([]) == "pass"
    # It really runs, even for a module name that is not an identifier (if present here).
    names = ["json", "email.message"]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            measure.floor_code(names) + "import sys\n"
            "print(sorted(n for n in sys.modules if n in ('json', 'email.message')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == str(sorted(names))
    assert "importlib.import_module(name)" in code


# --------------------------------------------------------------------------- baseline check


def _doc(ratios: dict[str, float | None]) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for name, ratio in ratios.items():
        if ratio is None:
            tasks[name] = {"status": "skipped", "reason": "env 'x' is missing"}
        else:
            tasks[name] = {"status": "measured", "target": {"ratio_to_floor": ratio}}
    return {"schema_version": measure.SCHEMA_VERSION, "tasks": tasks}


def test_check_passes_within_tolerance_and_flags_a_regression() -> None:
    baseline = _doc({"stitch": 1.10, "convert": 1.05, "transcribe": 1.02, "diarize": None})
    current = _doc(
        {"stitch": 1.30, "convert": 1.30, "transcribe": None, "diarize": 1.4, "new": 1.0}
    )
    verdicts = {v.task: v for v in measure.check(baseline, current, tolerance=0.2)}
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
    assert [v.task for v in measure.check(baseline, current, tolerance=0.5) if v.regressed] == []
    with pytest.raises(MeasureError, match="tolerance"):
        measure.check(baseline, current, tolerance=-0.1)


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
    ],
)
def test_bad_baseline_files_are_refused_clearly(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MeasureError, match=message):
        measure.load_baseline(path)


def test_a_written_document_reads_back_as_a_baseline(tmp_path: Path) -> None:
    doc = _doc({"stitch": 1.1})
    measure.write_json(doc, tmp_path / "out" / "b.json")
    assert measure.load_baseline(tmp_path / "out" / "b.json") == doc


# --------------------------------------------------------------------------- selection


def test_unknown_task_and_way_list_the_valid_ones(project_manifest: manifest.Manifest) -> None:
    with pytest.raises(MeasureError, match=r"unknown task 'nope'; valid tasks: .*stitch"):
        measure.select_tasks(project_manifest, ["nope"])
    assert [t.name for t in measure.select_tasks(project_manifest, ["stitch"])] == ["stitch"]
    assert len(measure.select_tasks(project_manifest, [])) == len(project_manifest.tasks)
    with pytest.raises(MeasureError, match=r"unknown way 'fast'; valid ways: full-uv, full-direct"):
        measure.select_ways(["fast"])
    assert measure.select_ways([SUB_DIRECT, FULL_DIRECT]) == [FULL_DIRECT, SUB_DIRECT]


def test_launch_commands_are_the_documented_ones(project_manifest: manifest.Manifest) -> None:
    task = project_manifest.task("transcribe")
    items = {
        i.way: i
        for i in measure.launches(
            project_manifest, task, measure.WAYS, uv="uv", floor_modules=["numpy"]
        )
    }
    root = str(project_manifest.root)
    assert items["full-uv"].argv == (
        "uv",
        "run",
        "--project",
        root,
        "--locked",
        "--all-extras",
        "--no-default-groups",
        "python",
        "-m",
        "signal4.processing_steps.transcribe",
        "--ready",
    )
    assert items["full-uv"].environ["UV_PROJECT_ENVIRONMENT"] == f"{root}/envs/full/.venv"
    assert items["sub-uv"].argv[5:7] == ("--extra", "transcribe")
    assert items["sub-uv"].environ["UV_PROJECT_ENVIRONMENT"] == f"{root}/envs/transcribe/.venv"
    # sub-direct is exactly what the dispatcher runs.
    assert list(items["sub-direct"].argv) == dispatch.command(project_manifest, task, ["--ready"])
    assert items["full-direct"].argv[0] == f"{root}/envs/full/.venv/bin/python"
    assert items["floor-imports"].argv[1:] == ("-c", measure.floor_code(["numpy"]))
    assert items["floor-pass"].expects_ready is False


# --------------------------------------------------------------------------- a real small project

MDEMO_TASKS = """
[[tool.signal4.tasks]]
name = "split"
env = "alpha"
module = "mdemo.split"

[[tool.signal4.tasks]]
name = "broken"
env = "alpha"
module = "mdemo.broken"

[[tool.signal4.tasks]]
name = "ghost"
env = "alpha"
module = "mdemo.ghost"

[[tool.signal4.tasks]]
name = "typed"
env = "beta"
module = "mdemo.typed"
"""

# A step in miniature: heavy import inside the functions, ready() imports the same.
SPLIT = """
import json, sys

def ready():
    import pysbd  # noqa: F401

def main(argv):
    if "--ready" in argv:
        ready()
        print(json.dumps({"status": "completed", "ready": True}))
        return 0
    import pysbd
    sentences = pysbd.Segmenter(language="en", clean=False).segment(" ".join(argv))
    print(json.dumps({"status": "completed", "sentences": sentences}))
    return 0

raise SystemExit(main(sys.argv[1:]))
"""
# A probe that forgets what the real run imports.
FORGETFUL = """
import json, sys
if "--ready" not in sys.argv:
    import pysbd  # noqa: F401
print(json.dumps({"status": "completed", "ready": True}))
"""
BROKEN = """
import sys
print("probe is about to fail", file=sys.stderr)
import no_such_package_anywhere
"""


@pytest.fixture(scope="module")
def mdemo(tmp_path_factory: pytest.TempPathFactory) -> manifest.Manifest:
    """A tiny locked project; env alpha synced for real, env beta left unsynced."""
    m = demo.write_project(
        tmp_path_factory.mktemp("mdemo"),
        "mdemo",
        MDEMO_TASKS,
        {
            "split": SPLIT,
            "broken": BROKEN,
            "typed": "import typing_extensions\n",
            "typed_ready": FORGETFUL,
        },
    )
    result = syncer.sync_one(m, envs.spec(m, "alpha"))
    assert result.ok, result.error
    return m


@pytest.mark.slow
def test_measure_a_real_project_end_to_end(mdemo: manifest.Manifest) -> None:
    ways = [SUB_UV, SUB_DIRECT, FLOOR_PASS, FLOOR_IMPORTS, FULL_DIRECT]
    doc = measure.measure(mdemo, list(mdemo.tasks.values()), ways, runs=2, warmups=1)
    split = doc["tasks"]["split"]
    assert split["status"] == "measured", split.get("reason")
    # The floor list comes from the probe's own import trace.
    assert split["floor_modules"] == ["pysbd"]
    assert split["imports"]["self_us_by_kind"]["third-party"] > 0
    assert set(split["ways"]) == {SUB_UV, SUB_DIRECT, FLOOR_PASS, FLOOR_IMPORTS}
    for data in split["ways"].values():
        assert data["error"] is None
        assert len(data["warmup_ns"]) == 1 and len(data["samples_ns"]) == 2
        assert data["min_s"] <= data["median_s"] <= data["max_s"]
    assert split["ways"][SUB_DIRECT]["ratio_to_sub_direct"] == 1.0
    assert split["target"]["ratio_to_floor"] > 0
    # The full env was never built here: its ways are dropped with the command that builds it.
    assert split["notes"] == ["full env is missing; run: inv sync full"]
    # A failing probe is reported with its stderr tail; an unsynced env is skipped with its fix.
    broken = doc["tasks"]["broken"]
    assert broken["status"] == "failed"
    assert (
        "probe is about to fail" in broken["reason"]
        and "no_such_package_anywhere" in broken["reason"]
    )
    typed = doc["tasks"]["typed"]
    assert (typed["status"], typed["sync_command"]) == ("skipped", "inv sync beta")
    ghost = doc["tasks"]["ghost"]
    assert (
        ghost["reason"]
        == "the ready probe failed: its module mdemo.ghost does not exist in env 'alpha'"
    )
    assert measure.failed_tasks(doc) == ["broken", "ghost"]
    # Disk: the synced env has a size, the other is missing.
    assert doc["disk"]["envs"]["alpha"]["unique_bytes"] > 0
    assert doc["disk"]["envs"]["alpha"]["packages"] >= 2
    assert doc["disk"]["envs"]["beta"] == {"state": "missing"}
    assert doc["disk"]["sub_envs_unique_bytes"] == doc["disk"]["envs"]["alpha"]["unique_bytes"]
    # The JSON round-trips and renders.
    assert json.loads(json.dumps(doc)) == doc
    md = measure_report.markdown(doc, "inv measure")
    assert "| split | alpha | 2 | — | — |" in md
    assert "FAILED broken" in md and "skipped typed" in md and "inv sync beta" in md


@pytest.mark.slow
def test_the_task_body_writes_reports_checks_and_fails_for_a_broken_probe(
    mdemo: manifest.Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(mdemo.root)
    out_json, out_md = tmp_path / "m.json", tmp_path / "m.md"
    code = measure_report.run(
        tasks=["split"], runs=1, warmups=0, json_path=out_json, markdown_path=out_md, disk=False
    )
    assert code == 0
    assert measure.load_baseline(out_json)["tasks"]["split"]["status"] == "measured"
    assert out_md.read_text().startswith("<!-- generated by `inv measure`")
    # Checked against itself with a huge tolerance it passes; the broken probe still fails the run.
    code = measure_report.run(
        tasks=["split", "broken"],
        runs=1,
        warmups=0,
        json_path=out_json,
        markdown_path=out_md,
        check_path=out_json,
        tolerance=10.0,
        disk=False,
    )
    assert code == 1
    # Tighter than any possible noise against a baseline that claims ratio 0.5: a regression.
    doc = json.loads(out_json.read_text())
    doc["tasks"]["split"]["target"]["ratio_to_floor"] = 0.5
    (tmp_path / "strict.json").write_text(json.dumps(doc))
    code = measure_report.run(
        tasks=["split"],
        runs=1,
        warmups=0,
        json_path=out_json,
        markdown_path=out_md,
        check_path=tmp_path / "strict.json",
        tolerance=0.0,
        disk=False,
    )
    assert code == 1
    with pytest.raises(
        UserError, match="unknown task 'nope'; valid tasks: broken, ghost, split, typed"
    ):
        measure_report.run(tasks=["nope"], json_path=out_json, markdown_path=out_md)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        measure_report.run(tasks=["split"], check_path=tmp_path / "bad.json")


# --------------------------------------------------------------------------- probe coverage


@pytest.mark.slow
def test_probe_covers_a_real_run_of_the_demo_step(mdemo: manifest.Manifest) -> None:
    python = envs.spec(mdemo, "alpha").python
    real = probe.assert_probe_covers(
        "split", "One sentence. And another one.", python=python, module="mdemo.split"
    )
    assert real == ["pysbd"]
    # A probe that forgets an import is caught.
    cov = measure.probe_coverage(python, "mdemo.typed_ready", ["x"], cwd=None)
    assert cov.missing == ["pysbd"]


def test_the_warm_way_is_a_table_next_to_cold_and_monolith() -> None:
    def way(seconds: float, n: int = 3) -> dict[str, Any]:
        samples = [int(seconds * 1e9)] * n
        return {"samples_ns": samples, "error": None, **measure.summarise(samples, None)}

    doc = {
        "tasks": {
            "stitch": {
                "status": "measured",
                "env": "stitch",
                "ways": {
                    measure.WARM: way(0.002, 30),
                    SUB_DIRECT: way(0.4),
                    FULL_DIRECT: way(0.5),
                },
            },
            "convert": {"status": "measured", "env": "convert", "ways": {SUB_DIRECT: way(0.3)}},
        }
    }
    table = measure_report.warm_table(doc)
    assert [row[:4] for row in table.rows] == [("stitch", "stitch", "30", "2.0")]
    assert table.rows[0][5:8] == ("400", "500", "—") and table.rows[0][-1] == "yes"


def test_the_warm_way_is_skipped_with_a_note_when_no_broker_answers(
    project_manifest: manifest.Manifest,
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry, note = measure.warm_way(
        project_manifest,
        project_manifest.task("stitch"),
        runs=3,
        broker=f"redis://127.0.0.1:{port}/0",
    )
    assert entry is None and note is not None and "does not answer" in note
