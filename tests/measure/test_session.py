"""Real measurements of the tiny project (``conftest.mdemo``): a whole run, task by task."""

from __future__ import annotations

import json
import socket
import statistics

import pytest

from signal4.envs import layout, manifest
from signal4.measure import profile, report, ways
from signal4.measure.doc import FAILED, SKIPPED, Document
from signal4.measure.errors import MeasureError
from signal4.measure.session import measure, select_tasks
from signal4.measure.task import warm_way
from signal4.measure.ways import FLOOR_IMPORTS, FLOOR_PASS, FULL_DIRECT, SUB_DIRECT, SUB_UV
from signal4.run import dispatch
from tests.helpers import probe


def _median_ratio(xs: tuple[int, ...], ys: tuple[int, ...]) -> float:
    return statistics.median(x / y for x, y in zip(xs, ys, strict=True))


@pytest.mark.slow
def test_measure_a_real_project_end_to_end(mdemo: manifest.Manifest) -> None:
    chosen = [SUB_UV, SUB_DIRECT, FLOOR_PASS, FLOOR_IMPORTS, FULL_DIRECT]
    doc = measure(mdemo, list(mdemo.tasks.values()), chosen, runs=3, warmups=1)
    split = doc.tasks["split"]
    m = split.measurement
    assert split.status == "measured" and m is not None, split.reason
    # The floor list comes from the probe's own import trace.
    assert m.floor_modules == ("pysbd",) and m.floor_imports == ("pysbd",)
    assert m.imports.self_us_by_kind["third-party"] > 0
    # The full env was never built here: its ways are dropped with the command that builds it.
    assert list(m.ways) == [SUB_UV, SUB_DIRECT, FLOOR_PASS, FLOOR_IMPORTS]
    assert m.notes == ("full env is missing; run: inv sync full",)
    # Each way ran the command it stands for.
    task = mdemo.task("split")
    assert list(m.ways[SUB_DIRECT].command) == dispatch.command(mdemo, task, ["--ready"])
    assert m.ways[FLOOR_IMPORTS].command[1:] == ("-c", ways.floor_code(["pysbd"]))
    assert m.ways[FLOOR_PASS].command[1:] == ("-c", "pass")
    reference = m.ways[SUB_DIRECT].samples_ns
    for name, result in m.ways.items():
        assert result.error is None, name
        assert (len(result.warmup_ns), len(result.samples_ns)) == (1, 3), name
        # Real process start-ups, in nanoseconds: more than 1 ms, less than 10 s each.
        assert all(1e6 < ns < 1e10 for ns in (*result.warmup_ns, *result.samples_ns)), name
        # The summary is of these very samples, paired round by round with sub-direct's.
        assert result.summary.median_s == statistics.median(result.samples_ns) / 1e9
        assert result.summary.min_s == min(result.samples_ns) / 1e9
        assert result.summary.max_s == max(result.samples_ns) / 1e9
        assert result.summary.ratio_to_sub_direct == pytest.approx(
            _median_ratio(result.samples_ns, reference)
        )
    # What each way does shows in its times: the probe and the floor import pysbd, -c pass not.
    sub, floor, bare = (m.ways[w].samples_ns for w in (SUB_DIRECT, FLOOR_IMPORTS, FLOOR_PASS))
    assert m.target.ratio_to_floor == pytest.approx(_median_ratio(sub, floor))
    assert m.target.ratio_to_pass == pytest.approx(_median_ratio(sub, bare))
    assert m.target.met == (m.target.ratio_to_floor <= ways.TARGET_RATIO)
    # (loose on purpose: importing pysbd costs several times `-c pass`, and only the
    # direction is asserted, so a loaded machine cannot flip it)
    assert m.target.ratio_to_pass > 1.0
    assert _median_ratio(floor, bare) > 1.0
    assert m.uv_overhead_s.sub == pytest.approx(
        statistics.median(x - y for x, y in zip(m.ways[SUB_UV].samples_ns, sub, strict=True)) / 1e9
    )
    # A failing probe is reported with its stderr tail; an unsynced env is skipped with its fix.
    broken = doc.tasks["broken"]
    assert broken.status == FAILED and broken.reason is not None
    assert "probe is about to fail" in broken.reason
    assert "no_such_package_anywhere" in broken.reason
    typed = doc.tasks["typed"]
    assert (typed.status, typed.sync_command) == (SKIPPED, "inv sync beta")
    ghost = doc.tasks["ghost"]
    assert ghost.reason == (
        "the ready probe failed: its module mdemo.ghost does not exist in env 'alpha'"
    )
    assert doc.failed_tasks() == ["broken", "ghost"]
    # Disk: the synced env has a size, the other is missing.
    assert doc.disk is not None
    alpha = doc.disk.envs["alpha"].size
    assert alpha is not None and alpha.unique_bytes > 0 and alpha.packages >= 2
    assert doc.disk.envs["beta"].size is None
    assert doc.disk.sub_envs_unique_bytes == alpha.unique_bytes
    # The JSON round-trips, keeps each kind of entry's keys in order, and renders.
    data = json.loads(json.dumps(doc.to_json()))
    assert Document.from_json(data) == doc
    assert list(data["tasks"]["typed"]) == ["env", "module", "status", "reason", "sync_command"]
    assert list(data["tasks"]["broken"]) == ["env", "module", "status", "reason", "command"]
    assert data["disk"]["envs"]["beta"] == {"state": "missing"}
    md = report.markdown(doc, "inv measure")
    assert "| split | alpha | 3 | — | — |" in md
    assert "FAILED broken" in md and "skipped typed" in md and "inv sync beta" in md


@pytest.mark.slow
def test_probe_covers_a_real_run_of_the_demo_step(mdemo: manifest.Manifest) -> None:
    python = layout.spec(mdemo, "alpha").python
    real = probe.assert_probe_covers(
        "split", "One sentence. And another one.", python=python, module="mdemo.split"
    )
    assert real == ["pysbd"]
    # A probe that forgets an import is caught.
    cov = profile.probe_coverage(python, "mdemo.typed_ready", ["x"], cwd=None)
    assert cov.missing == ["pysbd"]


def test_the_warm_way_is_skipped_with_a_note_when_no_broker_answers(
    project_manifest: manifest.Manifest,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry, note = warm_way(
        project_manifest,
        project_manifest.task("stitch"),
        runs=3,
        broker=f"redis://127.0.0.1:{port}/0",
    )
    assert entry is None and note is not None and "does not answer" in note


def test_unknown_task_lists_the_valid_ones(project_manifest: manifest.Manifest) -> None:
    with pytest.raises(MeasureError, match=r"unknown task 'nope'; valid tasks: .*stitch"):
        select_tasks(project_manifest, ["nope"])
    assert [t.name for t in select_tasks(project_manifest, ["stitch"])] == ["stitch"]
    assert len(select_tasks(project_manifest, [])) == len(project_manifest.tasks)
