"""Housekeeping: the README's generated env table stays in step with the manifest."""

from __future__ import annotations

from pathlib import Path

from signal4 import housekeeping
from signal4.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_env_table_is_generated_from_the_manifest(project_manifest: Manifest) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert housekeeping.readme_with_env_table(readme, project_manifest) == readme, (
        "README's env table is out of date; run: inv envs --markdown"
    )
    for env in project_manifest.envs:
        assert f"| `{env}` |" in readme


def test_human_bytes() -> None:
    assert housekeeping.human_bytes(512) == "512B"
    assert housekeeping.human_bytes(2048) == "2K"
    assert housekeeping.human_bytes(5 * 1024**3) == "5.0G"
