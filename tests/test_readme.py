"""The README's generated sections stay in step with the manifest and the measurements."""

from __future__ import annotations

from pathlib import Path

import pytest

from signal4 import readme as readme_mod
from signal4.envs.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_env_table_is_generated_from_the_manifest(project_manifest: Manifest) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_mod.readme_with_env_table(readme, project_manifest) == readme, (
        "README's env table is out of date; run: inv envs --markdown"
    )
    for env in project_manifest.envs:
        assert f"| `{env}` |" in readme


def test_readme_shows_the_committed_measurements() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    record = (ROOT / readme_mod.MEASURE_RECORD).read_text(encoding="utf-8")
    assert readme_mod.readme_with_measurements(readme, record) == readme, (
        "README's measurements differ from benchmarks/startup.md; run: inv measure "
        "--json benchmarks/startup.json --markdown benchmarks/startup.md"
    )
    summary = readme_mod.measure_summary(record)
    assert "- Machine:" in summary and "#### environment sizes" in summary


def test_measure_summary_names_a_missing_section() -> None:
    with pytest.raises(ValueError, match="environment sizes"):
        readme_mod.measure_summary("- Date: x\n### start-up to ready\n| a |\n")


def test_measure_summary_shows_the_warm_table_only_when_measured() -> None:
    cold = "- Date: d\n- Machine: m\n### start-up to ready\n| a |\n### environment sizes\n| b |\n"
    assert "warm" not in readme_mod.measure_summary(cold)
    warm = cold.replace("### environment", "### warm workers: submit\n| w |\n### environment")
    summary = readme_mod.measure_summary(warm)
    assert summary.index("#### start-up") < summary.index("#### warm") < summary.index("#### env")
    assert "| w |" in summary
