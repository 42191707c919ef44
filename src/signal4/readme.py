"""The generated sections of the docs: the README's env table (from the manifest) and the
measurements that ``benchmarks/README.md`` shows (from the committed record).

``inv lock`` and ``inv envs --markdown`` write the first, ``inv measure`` the second, and
unit tests check that the committed files match both. Standard library only.
"""

from __future__ import annotations

from pathlib import Path

from signal4.envs.manifest import Manifest, requirement_name

README_TABLE_BEGIN = (
    "<!-- env-table:begin (generated from pyproject.toml by `inv envs --markdown`) -->"
)
README_TABLE_END = "<!-- env-table:end -->"


def env_table_markdown(manifest: Manifest) -> str:
    """The README's table of envs, generated from the manifest."""
    lines = [
        "| env | tasks | its own packages (on top of the base) | platforms |",
        "|---|---|---|---|",
    ]
    for env in manifest.envs.values():
        tasks = ", ".join(f"`{t.name}`" for t in manifest.tasks_of(env.name)) or "—"
        packages = ", ".join(_describe(req) for req in env.requirements)
        platforms = ", ".join(env.platforms) or "all"
        lines.append(f"| `{env.name}` | {tasks} | {packages} | {platforms} |")
    lines.append("")
    lines.append(f"Base, in every env: {', '.join(manifest.base_packages)}.")
    return "\n".join(lines)


def _describe(requirement: str) -> str:
    name = requirement_name(requirement)
    if ";" not in requirement:
        return name
    marker = requirement.split(";", 1)[1].strip()
    if "darwin" in marker and "arm64" in marker:
        return f"{name} (Apple silicon only)"
    return f"{name} (`{marker}`)"


def readme_with_env_table(readme: str, manifest: Manifest) -> str:
    """Return ``readme`` with the generated env table put between its markers."""
    start = readme.index(README_TABLE_BEGIN) + len(README_TABLE_BEGIN)
    end = readme.index(README_TABLE_END)
    return readme[:start] + "\n" + env_table_markdown(manifest) + "\n" + readme[end:]


#: The committed measurement record, and the page that shows part of it.
MEASURE_RECORD = Path("benchmarks") / "startup.md"
MEASURE_PAGE = Path("benchmarks") / "README.md"
README_MEASURE_BEGIN = "<!-- measure:begin (copied from benchmarks/startup.md by `inv measure`) -->"
README_MEASURE_END = "<!-- measure:end -->"
_EMBEDDED_SECTIONS = ("### start-up to ready", "### warm workers", "### environment sizes")
#: Shown when the record has it: a run with no live worker has no warm table.
_OPTIONAL_SECTIONS = ("### warm workers",)


def measure_summary(record: str) -> str:
    """Return what ``benchmarks/README.md`` shows of a ``startup.md``: when/where, start-up
    and sizes."""
    lines = record.splitlines()
    header = [line for line in lines if line.startswith(("- Date:", "- Machine:"))]
    parts = ["\n".join(header)]
    for title in _EMBEDDED_SECTIONS:
        start = next((i for i, line in enumerate(lines) if line.startswith(title)), None)
        if start is None and title in _OPTIONAL_SECTIONS:
            continue
        if start is None:
            raise ValueError(f"the measurement record has no {title!r} section")
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines)
        )
        parts.append("\n".join(["#" + lines[start], *lines[start + 1 : end]]).strip())
    return "\n\n".join(parts)


def readme_with_measurements(readme: str, record: str) -> str:
    """Return the page ``readme`` with :func:`measure_summary` of ``record`` between its
    markers."""
    start = readme.index(README_MEASURE_BEGIN) + len(README_MEASURE_BEGIN)
    end = readme.index(README_MEASURE_END)
    return readme[:start] + "\n" + measure_summary(record) + "\n" + readme[end:]
