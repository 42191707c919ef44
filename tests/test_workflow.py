"""The CI workflow: valid for actionlint, and its session matrix comes from nox, not a copy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from signal4.envs.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_actionlint_passes() -> None:
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "actionlint"), "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_matrix_is_generated_not_hand_copied(project_manifest: Manifest) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "nox --json -l" in text
    assert "fromJSON(needs.sessions.outputs.sessions)" in text
    words = set(re.findall(r"[A-Za-z0-9_-]+", text))
    assert words.isdisjoint(project_manifest.envs), words & set(project_manifest.envs)
    assert words.isdisjoint(project_manifest.tasks), words & set(project_manifest.tasks)


def test_readme_commands_run_verbatim_and_a_gate_needs_every_job() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^(python3 -m pip install uv && .+)$", readme, flags=re.M)
    assert len(commands) == 2
    for command in commands:
        assert f"run: {command}\n" in text
    jobs = re.findall(r"^  ([a-z][a-z0-9_-]*):$", text.split("\njobs:\n")[1], flags=re.M)
    gate = re.search(r"needs: \[(.*)\]", text.split("  gate:")[1])
    assert gate is not None
    assert sorted(gate.group(1).split(", ")) == sorted(j for j in jobs if j != "gate")
