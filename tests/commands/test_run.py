"""``inv run <task> -- --help``: the step's help, exit 0, no error line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signal4.envs import layout, manifest, venv

ROOT = Path(__file__).resolve().parents[2]
INV = [str(Path(sys.executable).parent / "inv"), "--search-root", str(ROOT)]


@pytest.mark.parametrize(("task", "option"), [("convert", "--chunk-seconds"), ("stitch", "-h")])
def test_inv_run_help_shows_the_steps_help_and_exits_zero(task: str, option: str) -> None:
    m = manifest.load(ROOT)
    env = m.task(task).env
    if venv.status(m, layout.spec(m, env)) is not venv.State.UP_TO_DATE:
        # a fresh clone has no env yet: build the one this test needs (a no-op later)
        synced = subprocess.run([*INV, "sync", env], cwd=ROOT, capture_output=True, text=True)
        assert synced.returncode == 0, synced.stdout + synced.stderr
    flag = "--help" if option.startswith("--") else option
    proc = subprocess.run(
        [*INV, "run", task, "--", flag], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m signal4.processing_steps.{task}")
    assert "--rewrite" in proc.stdout
    if option.startswith("--"):
        assert option in proc.stdout
    # nothing but the help: no error line, no JSON result line for a human to puzzle over
    assert proc.stderr == ""
    assert not proc.stdout.strip().splitlines()[-1].startswith("{")


# Reports a done stage of item c1, and where it was told the data folder is.
WHERE = """
import json, os
print(json.dumps({
    "status": "completed", "content": "c1", "data_dir": os.environ["SIGNAL4_DATA_DIR"],
    "records": [{"content": "c1", "register": {"kind": "file"}},
                {"content": "c1", "stage": "where", "status": "done"}],
}))
"""


@pytest.mark.slow
def test_inv_run_from_any_folder_of_the_project_uses_the_projects_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from signal4.content.state import StateDB
    from tests.helpers.demo import write_project

    tasks = '[[tool.signal4.tasks]]\nname = "where"\nenv = "alpha"\nmodule = "where.where"\n'
    root = tmp_path / "project"
    root.mkdir()
    write_project(root, "where", tasks, {"where": WHERE})
    monkeypatch.delenv("SIGNAL4_DATA_DIR")
    inside = root / "src" / "where"
    proc = subprocess.run(
        [*INV, "run", "where", "--sync"], cwd=inside, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    told = json.loads(proc.stdout.strip().splitlines()[-1])["data_dir"]
    assert Path(told) == root / "data"  # the step and the runner agree on one folder
    assert not (inside / "data").exists()
    db = StateDB(f"sqlite:///{root / 'data' / 'state.db'}")
    assert db.stage_status("c1", "where") == "done"
    assert [r.stage for r in db.runs("c1")] == ["where"]
