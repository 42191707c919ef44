"""The shared step CLI: result line, exit codes, error recording, --ready, --help."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from signal4.content import settings
from signal4.content.state import StateDB
from signal4.run import protocol
from signal4.run.steprunner import Context, InvalidInput, Step, StepFailure

CALLS: list[str] = []


def _add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", default="ok")


def _execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    if options.mode == "invalid":
        raise InvalidInput("that input is no good")
    if options.mode == "fail":
        raise StepFailure("the disk is full")
    if options.mode == "crash":
        raise ZeroDivisionError("oops")
    return {"status": protocol.COMPLETED, "mode": options.mode, "root": str(ctx.store.root)}


def _ready() -> None:
    CALLS.append("ready")


STEP = Step(
    name="demo",
    description="A demo step.",
    add_arguments=_add,
    execute=_execute,
    ready=_ready,
    stage="convert",
)


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    settings.get.cache_clear()
    code = STEP.main(list(args))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1
    return code, json.loads(lines[0]), err


def test_completed(capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = _main(capsys, "--content", "c1")
    assert code == 0
    assert result["status"] == protocol.COMPLETED
    assert (result["step"], result["content"], result["mode"]) == ("demo", "c1", "ok")
    assert result["root"].endswith("content")
    assert isinstance(result["seconds"], float)


@pytest.mark.parametrize(
    ("mode", "status", "code", "needle"),
    [
        ("invalid", "invalid_input", 2, "that input is no good"),
        ("fail", "failed", 1, "the disk is full"),
        ("crash", "failed", 1, "ZeroDivisionError: oops"),
    ],
)
def test_errors_exit_codes_and_recording(
    capsys: pytest.CaptureFixture[str], mode: str, status: str, code: int, needle: str
) -> None:
    db = StateDB(settings.get().db_url)
    db.register("c1", kind="file")
    got, result, err = _main(capsys, "--content", "c1", "--mode", mode)
    assert (got, result["status"]) == (code, status)
    assert needle in result["error"]
    assert f"demo: {status}: " in err
    assert ("Traceback" in err) == (mode == "crash")
    assert db.stage_status("c1", "convert") == status
    item = db.get("c1")
    assert item is not None
    assert needle in (item.steps[0].error or "")


def test_error_on_unregistered_content_is_not_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    code, _result, err = _main(capsys, "--content", "ghost", "--mode", "invalid")
    assert code == 2
    assert "warning" not in err
    assert StateDB(settings.get().db_url).all() == []


def test_usage_errors_are_invalid_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = _main(capsys)
    assert code == 2
    assert "--content" in result["error"]
    code, result, _ = _main(capsys, "--content", "c", "--bogus")
    assert (code, result["status"]) == (2, protocol.INVALID_INPUT)
    assert "--bogus" in result["error"]


def test_ready_probe(capsys: pytest.CaptureFixture[str]) -> None:
    CALLS.clear()
    code, result, _ = _main(capsys, "--ready")
    assert code == 0
    assert result["ready"] is True
    assert CALLS == ["ready"]


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        STEP.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "A demo step." in out
    assert "--rewrite" in out


def test_context_is_lazy() -> None:
    ctx = Context()
    assert ctx._db is None and ctx._store is None
    assert ctx.settings is settings.get()
