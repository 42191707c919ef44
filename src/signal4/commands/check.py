"""The body of ``inv check``: every check, one line each, exit 1 if any failed."""

from __future__ import annotations

from pathlib import Path

from signal4.envs import layout
from signal4.envs.checks import report_lines, run_checks
from signal4.envs.manifest import load


def main(*, strict: bool = False, sync: bool = False, root: Path | None = None) -> int:
    """Run every check, print one line each, and return 1 if any failed (the ``inv check`` body)."""
    from signal4.console import console
    from signal4.envs import syncer

    m = load(root)
    out = console()
    if sync:
        specs = [layout.spec(m, e.name) for e in m.supported_envs()]
        out.print(f"syncing {', '.join(s.name for s in specs)} from uv.lock…")
        failed = [r for r in syncer.sync_many(m, specs) if not r.ok]
        for r in failed:
            out.print(f"✘ sync {r.env}: {r.error}")
        if failed:
            return 1
    results = run_checks(m)
    for line in report_lines(results, strict=strict):
        out.print(line, markup=False, soft_wrap=True)
    bad = [r.name for r in results if r.failed(strict)]
    out.print(
        f"{len(results) - len(bad)} of {len(results)} checks passed", markup=False, soft_wrap=True
    )
    return 1 if bad else 0
