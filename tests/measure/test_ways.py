"""The launch-way registry: what each way runs, and that one entry is all a way needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signal4.envs import manifest
from signal4.measure import report, ways
from signal4.measure.errors import MeasureError
from signal4.measure.launch import launches
from signal4.measure.ways import FULL_DIRECT, SUB_DIRECT, Way
from signal4.run import dispatch
from tests.measure import docs

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_way_lists_the_valid_ones() -> None:
    with pytest.raises(MeasureError, match=r"unknown way 'fast'; valid ways: full-uv, full-direct"):
        ways.select(["fast"])
    assert ways.select([SUB_DIRECT, FULL_DIRECT]) == [FULL_DIRECT, SUB_DIRECT]
    assert ways.select([]) == list(ways.names())


def test_launch_commands_are_the_documented_ones(project_manifest: manifest.Manifest) -> None:
    task = project_manifest.task("transcribe")
    items = {
        i.way: i
        for i in launches(project_manifest, task, ways.names(), uv="uv", floor_modules=["numpy"])
    }
    assert ways.WARM not in items  # not a launch
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
    assert items["floor-pass"].argv[1:] == ("-c", "pass")
    assert items["floor-imports"].argv[1:] == ("-c", ways.floor_code(["numpy"]))
    assert [i.way for i in items.values() if not i.expects_ready] == ["floor-pass", "floor-imports"]


def test_floor_code_imports_in_the_given_order(tmp_path: Path) -> None:
    # Each module says when it is imported; the order given is neither sorted nor reversed.
    for name in ("zeta", "alpha", "odd-name"):
        (tmp_path / f"{name}.py").write_text(f"print({name!r})\n")
    (tmp_path / "mid").mkdir()
    (tmp_path / "mid" / "__init__.py").write_text("print('mid')\n")
    (tmp_path / "mid" / "sub.py").write_text("print('mid.sub')\n")
    order = ["zeta", "odd-name", "alpha", "mid.sub"]  # a name that is not an identifier, too
    proc = subprocess.run(
        [sys.executable, "-c", ways.floor_code(order)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == ["zeta", "odd-name", "alpha", "mid", "mid.sub"]
    assert ways.floor_code([]) == "pass"


def test_the_help_of_inv_measure_lists_every_way_from_the_registry() -> None:
    text = ways.help_text()
    for way in ways.all_ways():
        assert f"{way.name}: {way.help}" in text
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT), "--help", "measure"],
        capture_output=True,
        text=True,
        check=True,
    )
    shown = " ".join(proc.stdout.split())
    for way in ways.all_ways():
        assert f"{way.name}: " in shown


def test_the_modules_tasks_py_imports_are_light() -> None:
    code = (
        "import sys; before = set(sys.modules)\n"
        "import signal4.measure.ways, signal4.measure.baseline\n"
        "print(*sorted(set(sys.modules) - before))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {m for m in loaded if m.split(".")[0] == "signal4"}
    assert ours <= {
        "signal4",
        "signal4.codes",
        "signal4.errors",
        "signal4.envs",
        "signal4.envs.manifest",
        "signal4.measure",
        "signal4.measure.baseline",
        "signal4.measure.doc",
        "signal4.measure.errors",
        "signal4.measure.ways",
    }, ours
    others = {m.split(".")[0] for m in loaded} - {"signal4"} - set(sys.stdlib_module_names)
    assert not others, others


def test_a_new_way_is_one_registry_entry(
    project_manifest: manifest.Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    nosite = Way(
        "sub-nosite",
        "the task's env's interpreter without site",
        lambda ctx: ((str(ctx.sub.python), "-S", *ctx.probe), ctx.environ),
        column="sub -S",
        table=ways.LAUNCHES_TABLE,
    )
    monkeypatch.setitem(ways.REGISTRY, nosite.name, nosite)
    assert ways.select(["sub-nosite"]) == ["sub-nosite"]
    task = project_manifest.task("stitch")
    (item,) = launches(project_manifest, task, ["sub-nosite"], uv="uv")
    assert item.argv[1:3] == ("-S", "-m")
    assert "sub-nosite: the task's env's interpreter without site" in ways.help_text()
    table = report.ways_table(
        docs.document({"stitch": docs.measured(ways={"sub-nosite": docs.way(0.25)})})
    )
    assert table.columns[-3] == "sub -S"
    assert table.rows[0][-3] == "0.250"
