"""The body of ``inv status``: the state DB as a table of items x stages (or JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from signal4.codes import StageState
from signal4.envs.manifest import Manifest, load

#: How a stage with no record shows.
PENDING = StageState.PENDING
#: A stage an item never has (a local file is not downloaded).
NOT_APPLICABLE = "—"


def stages(m: Manifest) -> list[str]:
    """The stage columns: the downloads' stage, then the pipeline's, in order."""
    names = list(dict.fromkeys(t.stage for t in m.download_tasks()))
    for task in m.pipeline_tasks():
        if task.stage not in names:
            names.append(task.stage)
    return names


def stale(
    m: Manifest, db: Any, items: list[Any], checker: Any, content_root: Path
) -> dict[str, dict[str, str]]:
    """content id -> stage -> why its done outputs are out of date (items with none left out).

    The same test as ``inv pipeline``'s plan: a stage whose provenance differs for a
    trigger, and the done stages after it; stages with no provenance are not stale.
    """
    from signal4.run.plan import Item, Stage, mark_done

    planned = [
        Item(
            source=i.source_url or "",
            title=i.title or "",
            content=i.id,
            stages=[Stage(t, []) for t in m.pipeline_tasks()],
        )
        for i in items
    ]
    mark_done(planned, db, checker=checker, content_root=content_root)
    found: dict[str, dict[str, str]] = {}
    for item in planned:
        for stage in item.stages:
            if stage.rewrite:
                found.setdefault(str(item.content), {})[stage.task.stage] = stage.reason or ""
    return found


def rows(
    m: Manifest,
    items: list[Any],
    *,
    failed_only: bool = False,
    provenance: dict[str, dict[str, Any]] | None = None,
    stale_only: dict[str, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """One dict per item: id, kind, title, and each stage's status and error.

    With ``provenance`` (content id -> stage -> record), each stage carries its record;
    with ``stale_only``, only those items are listed, each stage with its ``stale`` reason.
    """
    out = []
    fetched = {t.stage for t in m.download_tasks()}
    for item in items:
        if stale_only is not None and item.id not in stale_only:
            continue
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
            blank = NOT_APPLICABLE if (stage in fetched and item.kind == "file") else PENDING
            row["stages"][stage] = {
                "status": state.status if state else blank,
                "error": state.error if state else None,
                "updated": state.updated_at.isoformat() if state else None,
                "info": state.info if state else None,
            }
            if provenance is not None:
                row["stages"][stage]["provenance"] = provenance.get(item.id, {}).get(stage)
            if stale_only is not None:
                row["stages"][stage]["stale"] = stale_only.get(item.id, {}).get(stage)
        # not failed: every stage done, not run yet, or not one the item has
        unfailed = (StageState.DONE, PENDING, NOT_APPLICABLE)
        if failed_only and all(s["status"] in unfailed for s in row["stages"].values()):
            continue
        out.append(row)
    return out


def main(
    failed: bool = False, as_json: bool = False, stale_only: bool = False, triggers: str = "all"
) -> int:
    """Print the state of every content item (or the stale ones, and why); exit 0."""
    from rich.table import Table

    from signal4.console import console
    from signal4.content import settings
    from signal4.content.state import StateDB
    from signal4.run.provenance import Checker, parse_triggers

    m = load()
    checker = Checker(m, parse_triggers(triggers))
    conf = settings.for_project(m.root)
    db = StateDB(conf.db_url)
    items = db.all()
    why = stale(m, db, items, checker, conf.content_root) if stale_only else None
    records = db.provenance() if as_json else None
    data = rows(m, items, failed_only=failed, provenance=records, stale_only=why)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    columns = stages(m)
    table = Table(title=f"state of {len(data)} item(s) in {conf.data_dir}")
    table.add_column("item", overflow="fold", min_width=20)
    table.add_column("title", overflow="fold")
    for stage in columns:
        table.add_column(stage)
    errors = []
    style = {StageState.DONE: "green", PENDING: "dim", NOT_APPLICABLE: "dim"}
    for row in data:
        cells = []
        for stage in columns:
            status = row["stages"][stage]["status"]
            cells.append(f"[{style.get(status, 'red')}]{status}[/]")
            if row["stages"][stage]["error"] and status != StageState.DONE:
                errors.append((row["content"], stage, row["stages"][stage]["error"]))
        table.add_row(row["content"], row["title"] or "", *cells)
    out = console()
    out.print(table)
    for content, stage, error in errors:
        out.print(f"[red]{content}[/] {stage}: {error}", soft_wrap=True, highlight=False)
    for note in checker.notes():
        out.print(f"[yellow]note:[/] {note}", soft_wrap=True, highlight=False)
    for content, reasons in (why or {}).items():
        for stage, reason in reasons.items():
            out.print(f"[yellow]{content}[/] {stage}: {reason}", soft_wrap=True, highlight=False)
    if not data:
        what = " with a failed stage" if failed else " out of date" if stale_only else ""
        out.print(("no items" if stale_only or failed else "no items yet") + what)
    return 0
