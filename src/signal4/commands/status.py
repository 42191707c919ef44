"""The body of ``inv status``: the state DB as a table of items x stages (or JSON)."""

from __future__ import annotations

import json
from typing import Any

from signal4.envs.manifest import Manifest, load

#: How a stage with no record shows.
PENDING = "pending"
#: A stage an item never has (a local file is not downloaded).
NOT_APPLICABLE = "—"


def stages(m: Manifest) -> list[str]:
    """The stage columns: the downloads' stage, then the pipeline's, in order."""
    names = ["download"] if any(t.stage == "download" for t in m.tasks.values()) else []
    for task in m.pipeline_tasks():
        if task.stage not in names:
            names.append(task.stage)
    return names


def rows(m: Manifest, items: list[Any], *, failed_only: bool = False) -> list[dict[str, Any]]:
    """One dict per item: id, kind, title, and each stage's status and error."""
    out = []
    for item in items:
        states = {s.stage: s for s in item.steps}
        row: dict[str, Any] = {
            "content": item.id,
            "kind": item.kind,
            "title": item.title,
            "source": item.source_url,
            "stages": {},
        }
        for stage in stages(m):
            state = states.get(stage)
            blank = NOT_APPLICABLE if (stage == "download" and item.kind == "file") else PENDING
            row["stages"][stage] = {
                "status": state.status if state else blank,
                "error": state.error if state else None,
                "updated": state.updated_at.isoformat() if state else None,
                "info": state.info if state else None,
            }
        if failed_only and all(s["status"] in ("done", PENDING) for s in row["stages"].values()):
            continue
        out.append(row)
    return out


def main(*, failed: bool = False, as_json: bool = False) -> int:
    """Print the state of every content item; exit 0."""
    from rich.table import Table

    from signal4.console import console
    from signal4.content.settings import Settings
    from signal4.content.state import StateDB

    m = load()
    db = StateDB(Settings(data_dir=m.data_dir).db_url)
    data = rows(m, db.all(), failed_only=failed)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    columns = stages(m)
    table = Table(title=f"state of {len(data)} item(s) in {m.data_dir}")
    table.add_column("item", overflow="fold", min_width=20)
    table.add_column("title", overflow="fold")
    for stage in columns:
        table.add_column(stage)
    errors = []
    style = {"done": "green", PENDING: "dim", NOT_APPLICABLE: "dim"}
    for row in data:
        cells = []
        for stage in columns:
            status = row["stages"][stage]["status"]
            cells.append(f"[{style.get(status, 'red')}]{status}[/]")
            if row["stages"][stage]["error"] and status != "done":
                errors.append((row["content"], stage, row["stages"][stage]["error"]))
        table.add_row(row["content"], row["title"] or "", *cells)
    out = console()
    out.print(table)
    for content, stage, error in errors:
        out.print(f"[red]{content}[/] {stage}: {error}", soft_wrap=True, highlight=False)
    if not data:
        out.print("no items yet" + (" with a failed stage" if failed else ""))
    return 0
