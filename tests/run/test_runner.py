"""What both runners share: how one finished stage settles its item."""

from __future__ import annotations

from signal4.codes import EXIT_CODES, ItemStatus
from signal4.envs.manifest import Task
from signal4.run.dispatch import Outcome
from signal4.run.plan import Item, Stage
from signal4.run.runner import ItemResult, settle

TASK = Task("download_youtube", "download", "m", 10.0, 1, stage="download")


def _outcome(status: str, result: dict[str, object] | None = None, **kw: object) -> Outcome:
    code = EXIT_CODES[status]
    return Outcome(TASK.name, TASK.env, status, code, code, 1.5, dict(result or {}), **kw)  # type: ignore[arg-type]


def _item(content: str | None = None) -> tuple[Item, Stage, ItemResult]:
    stage = Stage(TASK, ["--url", "u"])
    item = Item("u", "u", [stage], content=content)
    return item, stage, ItemResult(item)


def test_a_stage_that_names_its_content_is_done_and_gives_the_item_its_id() -> None:
    item, stage, result = _item()
    settle(result, stage, _outcome("completed", {"status": "completed", "content": "vid-1"}))
    assert (stage.done, item.content, result.status) == (True, "vid-1", ItemStatus.WAITING)
    assert (result.seconds, result.ran) == (1.5, ["download_youtube"])
    settle(result, stage, _outcome("skipped", {"status": "skipped", "content": "other"}))
    assert item.content == "vid-1" and result.seconds == 3.0  # a known id stays


def test_a_success_without_a_content_id_fails_the_item() -> None:
    _, stage, result = _item()
    settle(result, stage, _outcome("completed", {"status": "completed"}))
    assert (stage.done, result.status, result.exit_code) == (False, ItemStatus.FAILED, 1)
    assert result.error == "download_youtube reported no content id"


def test_a_failure_gives_its_reason_and_an_interruption_its_own_status() -> None:
    _, stage, result = _item("c")
    tail = "noise\nthe last line it wrote\n"
    settle(result, stage, _outcome("failed", error=None, stderr_tail=tail))
    assert (result.status, result.exit_code) == (ItemStatus.FAILED, 1)
    assert result.error == "download_youtube failed: the last line it wrote"
    _, stage, result = _item("c")
    settle(result, stage, _outcome("timed_out", error="timed out after 10 s"))
    assert (result.status, result.exit_code) == (ItemStatus.FAILED, 124)
    assert result.error == "download_youtube timed_out: timed out after 10 s"
    _, stage, result = _item("c")
    stopped = _outcome("interrupted", error="interrupted by SIGTERM")
    stopped = Outcome(**{**stopped.__dict__, "exit_code": 143})
    settle(result, stage, stopped)
    assert (result.status, result.exit_code, stage.done) == (ItemStatus.INTERRUPTED, 143, False)
    assert result.error == "download_youtube: interrupted by SIGTERM"
