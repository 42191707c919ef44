"""The body of ``inv status``: the rows of the state DB's items, on a real SQLite DB."""

from __future__ import annotations

from pathlib import Path

from signal4.commands import status
from signal4.content.state import StateDB
from signal4.envs import manifest
from tests.conftest import ROOT


def _db(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'state.db'}")


def test_the_columns_are_the_download_stage_then_the_pipelines() -> None:
    m = manifest.load(ROOT)
    columns = status.stages(m)
    # one column for every download task's stage, then the pipeline's stages, named as
    # stages (cleanup_and_compress is "compress"); a stage added to the pipeline (as the
    # newcomer test adds one, tests/test_newcomer.py) comes after these
    assert columns[0] == "download"
    assert columns[1:] == [t.stage for t in m.pipeline_tasks()]
    assert columns[:6] == ["download", "convert", "transcribe", "diarize", "stitch", "compress"]


def test_failed_lists_only_items_with_a_failed_stage(tmp_path: Path) -> None:
    m = manifest.load(ROOT)
    db = _db(tmp_path)
    db.register("file-done", kind="file")  # a local file: it has no download stage
    db.register("pod-done", kind="podcast")
    db.register("file-bad", kind="file")
    for cid in ("file-done", "pod-done", "file-bad"):
        for stage in status.stages(m):
            if not (stage == "download" and cid.startswith("file")):
                db.mark(cid, stage, "done")
    db.mark("file-bad", "diarize", "failed", error="boom")
    db.register("pod-new", kind="podcast")  # pending everywhere: nothing failed
    rows = status.rows(m, db.all(), failed_only=True)
    assert [r["content"] for r in rows] == ["file-bad"]
    assert rows[0]["stages"]["download"]["status"] == status.NOT_APPLICABLE
    assert rows[0]["stages"]["diarize"] == {**rows[0]["stages"]["diarize"], "error": "boom"}
    every = status.rows(m, db.all())
    assert [r["content"] for r in every] == ["file-done", "pod-done", "file-bad", "pod-new"]
    assert every[3]["stages"]["download"]["status"] == status.PENDING
