"""The README's generated sections stay in step with the manifest and the measurements."""

from __future__ import annotations

import re
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


def test_the_benchmarks_page_shows_the_committed_measurements() -> None:
    readme = (ROOT / readme_mod.MEASURE_PAGE).read_text(encoding="utf-8")
    record = (ROOT / readme_mod.MEASURE_RECORD).read_text(encoding="utf-8")
    assert readme_mod.readme_with_measurements(readme, record) == readme, (
        "benchmarks/README.md's measurements differ from benchmarks/startup.md; run: inv measure "
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


#: The pages whose links and file names are checked.
PAGES = [
    "README.md",
    "ARCHITECTURE.md",
    "benchmarks/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: A path named in backticks: a file or folder of the repository.
NAMED = re.compile(
    r"`((?:src|tests|benchmarks|docs|tools|samples|envs|\.ci|\.github)/[\w./-]*\w/?"
    r"|[\w-]+\.(?:md|toml|lock|py))`"
)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    lines = page.read_text(encoding="utf-8").splitlines()
    fenced = False
    found = set()
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def named_file_exists(page: Path, named: str) -> bool:
    """A path next to the page, from the root or the package; a bare ``x.py`` anywhere."""
    places = (page.parent, ROOT, ROOT / "src" / "signal4")
    if any((place / named).exists() for place in places):
        return True
    ours = ("src", "tests", "benchmarks", "tools")
    return "/" not in named and any(next((ROOT / d).rglob(named), None) for d in ours)


@pytest.mark.parametrize("name", PAGES)
def test_every_internal_link_and_named_file_exists(name: str) -> None:
    page = ROOT / name
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor}")
    for named in NAMED.findall(text):
        if not named_file_exists(page, named):
            broken.append(f"`{named}`: no such file")
    assert broken == [], f"{name}: {broken}"


def test_the_link_check_sees_a_broken_link_and_a_missing_heading(tmp_path: Path) -> None:
    assert slug("What happens when…") == "what-happens-when"
    assert slug("The `inv measure` record: start-up") == "the-inv-measure-record-start-up"
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n```\n# not a heading\n```\n## Second part\n")
    assert anchors(page) == {"title", "second-part"}
    assert named_file_exists(page, "codes.py") and named_file_exists(page, "run/plan.py")
    assert not named_file_exists(page, "nowhere.py")
    assert not named_file_exists(page, "run/nowhere.py")
