"""The shared step CLI: result line, exit codes, error recording, --ready, --help."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from signal4 import codes
from signal4.codes import Status
from signal4.content import settings
from signal4.content.state import StateDB
from signal4.envs import manifest
from signal4.run import record
from signal4.stepkit import protocol
from signal4.stepkit.step import Context, InvalidInput, Step, StepFailure, keeps, number
from tests.conftest import ROOT
from tests.helpers.steps import small_filesystem

CALLS: list[str] = []
OUT = "out.json"


def _add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", default="ok")


def _execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    if options.mode == "invalid":
        raise InvalidInput("that input is no good")
    if options.mode == "fail":
        raise StepFailure("the disk is full")
    if options.mode == "crash":
        raise ZeroDivisionError("oops")
    if options.mode == "write":  # the stage's real output, then the stage is done
        ctx.store.write_json(ctx.store.path(options.content, OUT), {"n": 1})
        ctx.mark(options.content, "convert", "done", info={"n": 1})
    if options.mode == "fill":  # real writes until the disk says no
        block = b"x" * (1 << 16)
        with ctx.store.open_atomic(ctx.store.path(options.content, "big.bin")) as fh:
            for _ in range(1 << 12):
                fh.write(block)
    return {"status": Status.COMPLETED, "mode": options.mode, "root": str(ctx.store.root)}


def _ready() -> None:
    CALLS.append("ready")


STEP = Step(
    name="demo",
    description="A demo step.",
    add_arguments=_add,
    execute=_execute,
    ready=_ready,
    stage="convert",
    outputs_kept=keeps(OUT),
)


#: STEP's record of ``--mode fail`` on c1 when its output is not kept.
FAILED_NOT_KEPT = {
    "content": "c1",
    "stage": "convert",
    "status": "failed",
    "error": "the disk is full",
    "outputs_kept": False,
}


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Run STEP's CLI, then record its result's records as a runner would."""
    settings.get.cache_clear()
    code = STEP.main(list(args))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    _apply(result)
    return code, result, err


def _apply(result: dict[str, Any]) -> dict[str, Any]:
    if not result.get("records"):
        return result  # a bad setting, a usage error: nothing to record
    conf = settings.get()
    record.apply(StateDB(conf.db_url), result, content_root=conf.content_root)
    return result


def test_completed(capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = _main(capsys, "--content", "c1")
    assert code == 0
    assert result["status"] == Status.COMPLETED
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
    assert (code, result["status"]) == (2, Status.INVALID_INPUT)
    assert "--bogus" in result["error"]


def test_ready_probe(capsys: pytest.CaptureFixture[str]) -> None:
    CALLS.clear()
    code, result, _ = _main(capsys, "--ready")
    assert code == 0
    assert result["ready"] is True
    assert CALLS == ["ready"]


def test_help_is_a_completed_result_not_an_exit(capsys: pytest.CaptureFixture[str]) -> None:
    code = STEP.main(["--help"])
    out = capsys.readouterr().out
    assert code == 0
    assert "A demo step." in out
    assert "--rewrite" in out and "--ready" in out and "--params" in out
    # the help says what the exit codes mean (unless the step gives its own epilog)
    assert "Exit codes: 0 completed/skipped, 1 failed, 2 invalid input." in " ".join(out.split())
    # the protocol holds: the last line is the result, so a dispatcher reads "completed"
    assert protocol.parse_last_line(out) == {"status": "completed", "step": "demo", "help": True}
    # the worker's entry point (run_argv) gets the text back, and never a SystemExit
    result = STEP.run_argv(["--content", "c1", "-h"])
    assert result["status"] == Status.COMPLETED
    assert "A demo step." in result["help"]


def _step_modules() -> list[tuple[str, Step]]:
    m = manifest.load(ROOT)
    steps = []
    for task in m.tasks.values():
        module = importlib.import_module(task.module)
        if isinstance(getattr(module, "STEP", None), Step):
            steps.append((task.name, module.STEP))
    return steps


def test_every_step_module_prints_help_and_exits_zero() -> None:
    """``python -m <step> --help``: the help on stdout, exit 0, a completed line last."""
    for name, step in _step_modules():
        proc = subprocess.run(
            [sys.executable, "-m", f"signal4.processing_steps.{name}", "--help"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.startswith("usage: "), name
        assert step.description.split()[0] in proc.stdout, name
        assert protocol.parse_last_line(proc.stdout)["help"] is True, name
        assert proc.stderr == "", (name, proc.stderr)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e400", "0", "-1", "x", ""])
def test_number_refuses_non_finite_and_out_of_range(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number"):
        number(float, ge=1)(text)


def test_number_takes_what_is_in_range() -> None:
    assert number(float, ge=1)("1") == 1.0
    assert number(float, gt=0, le=2)(" 2 ") == 2.0
    assert number(int, ge=1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a whole number \(at least 1\)"):
        number(int, ge=1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="at most 2"):
        number(float, gt=0, le=2)("2.5")
    # "above 0" leaves 0 itself out
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a finite number \(above 0"):
        number(float, gt=0, le=2)("0")


#: Runs in a child process whose address space is capped: a value that slips through the
#: parser into a step that loops on it (the NaN chunk plan did) dies of MemoryError there
#: within seconds instead of eating this machine.
_UNDER_A_MEMORY_LIMIT = """
import json, resource, sys
limit = 1 << 30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import importlib
out = []
for module, argv, option in json.loads(sys.argv[1]):
    step = importlib.import_module(module).STEP
    try:
        result = step.run_argv(argv)
    except MemoryError:
        result = {"status": "failed", "error": "MemoryError"}
    out.append([module, argv, option, result.get("status"), result.get("error", "")])
print(json.dumps(out))
"""

BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "1e999"]


def test_every_numeric_option_of_every_step_refuses_bad_numbers_under_a_memory_limit() -> None:
    cases = []
    for name, step in _step_modules():
        parser = step.parser()
        required = [
            f"{a.option_strings[-1]}=x"
            for a in parser._actions
            if a.required and a.option_strings and a.dest != "content"
        ]
        numeric = [
            a
            for a in parser._actions
            if a.option_strings
            and (a.type in (int, float) or getattr(a.type, "__name__", "") in NUMBER_TYPE_NAMES)
        ]
        for action in numeric:
            option = action.option_strings[-1]
            for bad in BAD_NUMBERS:
                argv = ["--content", "c1", *required, f"{option}={bad}"]
                cases.append([f"signal4.processing_steps.{name}", argv, option])
    options = {(c[0], c[2]) for c in cases}
    # the options this test must see (a new numeric option joins by itself)
    for expected in [
        ("signal4.processing_steps.convert", "--chunk-seconds"),
        ("signal4.processing_steps.convert", "--overlap"),
        ("signal4.processing_steps.download_podcast", "--episode"),
        ("signal4.processing_steps.diarize", "--speakers"),
        ("signal4.processing_steps.diarize", "--max-speakers"),
        ("signal4.processing_steps.diarize_pyannote", "--speakers"),
    ]:
        assert expected in options
    proc = subprocess.run(
        [sys.executable, "-c", _UNDER_A_MEMORY_LIMIT, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for module, argv, option, status, error in json.loads(proc.stdout.splitlines()[-1]):
        assert status == Status.INVALID_INPUT, (module, argv, status, error)
        assert f"argument {option}: must be" in error, (module, argv, error)


#: The names ``number()`` gives its converters; builtin int and float are caught by type.
NUMBER_TYPE_NAMES = {"finite number", "whole number"}


def test_bitrate_is_checked_too(capsys: pytest.CaptureFixture[str]) -> None:
    from signal4.processing_steps.cleanup_and_compress import STEP as CLEANUP

    for bad in ("nan", "inf", "0", "-32k", "1M", "32q", "100"):
        result = CLEANUP.run_argv(["--content", "c1", f"--bitrate={bad}"])
        assert result["status"] == Status.INVALID_INPUT, bad
        assert "argument --bitrate: must be an Opus bitrate" in result["error"]
    assert CLEANUP.parser().parse_args(["--content", "c", "--bitrate", "24k"]).bitrate == "24000"


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "-x"])
def test_a_bad_content_id_is_a_usage_error(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    code, result, err = _main(capsys, f"--content={bad}")
    assert (code, result["status"]) == (2, Status.INVALID_INPUT)
    assert "argument --content: invalid content id" in result["error"]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("CHUNK_SECONDS", "nan", "SIGNAL4_CHUNK_SECONDS='nan': Input should be a finite number"),
        ("CHUNK_OVERLAP", "inf", "SIGNAL4_CHUNK_OVERLAP='inf'"),
        ("HTTP_TIMEOUT", "-1", "SIGNAL4_HTTP_TIMEOUT='-1'"),
        ("MAX_DOWNLOAD_BYTES", "nan", "SIGNAL4_MAX_DOWNLOAD_BYTES='nan'"),
    ],
)
def test_a_bad_setting_is_invalid_input_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    needle: str,
) -> None:
    monkeypatch.setenv(f"SIGNAL4_{name}", value)
    code, result, err = _main(capsys, "--content", "c1")
    assert (code, result["status"]) == (2, Status.INVALID_INPUT)
    assert needle in result["error"]
    assert err.strip().splitlines() == [f"demo: invalid_input: {result['error']}"]


def test_a_bad_setting_through_a_real_step_cli(tmp_path: Path) -> None:
    """The step's own process: one stderr line naming the setting, exit 2, no traceback."""
    env = {**os.environ, "SIGNAL4_CHUNK_SECONDS": "inf"}
    proc = subprocess.run(
        [sys.executable, "-m", "signal4.processing_steps.stitch", "--content", "c1"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == codes.EXIT_INVALID, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "SIGNAL4_CHUNK_SECONDS='inf'" in proc.stderr
    assert protocol.parse_last_line(proc.stdout)["status"] == Status.INVALID_INPUT


def test_a_failed_rewrite_keeps_a_done_stage_done(capsys: pytest.CaptureFixture[str]) -> None:
    db = StateDB(settings.get().db_url)
    db.register("c1", kind="file")
    assert _main(capsys, "--content", "c1", "--mode", "write")[0] == 0
    assert db.stage_status("c1", "convert") == "done"

    code, result, _ = _main(capsys, "--content", "c1", "--mode", "invalid", "--rewrite")
    assert (code, result["status"]) == (2, Status.INVALID_INPUT)
    row = db.get("c1").steps[0]  # type: ignore[union-attr]
    assert (row.stage, row.status, row.error) == ("convert", "done", None)
    assert row.info["n"] == 1  # what the successful run recorded is still there
    attempt = row.info["last_attempt"]
    assert (attempt["status"], attempt["error"]) == ("invalid_input", "that input is no good")

    # without its output, a done stage is not done any more: the failure replaces it
    settings.get.cache_clear()
    (Path(settings.get().content_root) / "c1" / OUT).unlink()
    code, result, _ = _main(capsys, "--content", "c1", "--mode", "fail", "--rewrite")
    assert code == 1
    assert db.stage_status("c1", "convert") == "failed"


def test_a_full_disk_is_failed_naming_the_file_system(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "small", "256k") as small:
        monkeypatch.setenv("SIGNAL4_CONTENT_DIR", str(small / "content"))
        db = StateDB(settings.get().db_url)  # the state DB stays on the big disk
        db.register("c1", kind="file")
        code, result, err = _main(capsys, "--content", "c1", "--mode", "fill")
        assert (code, result["status"]) == (1, Status.FAILED)
        assert "no space left on device" in result["error"]
        assert f"the file system at {small} is full" in result["error"]
        assert "Traceback" not in err
        assert db.stage_status("c1", "convert") == "failed"
        assert list((small / "content" / "c1").iterdir()) == []  # the temp file is gone


def test_context_is_lazy_builds_each_part_once_and_never_loads_the_orm(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from signal4.stepkit.step import Context\n"
        "ctx = Context()\n"
        "assert 'signal4.content.settings' not in sys.modules\n"
        "settings = ctx.settings\n"
        "assert 'signal4.content.settings' in sys.modules\n"
        "assert 'signal4.content.store' not in sys.modules\n"
        "store = ctx.store\n"
        "assert ctx.store is store and ctx.settings is settings\n"
        "ctx.register('c1', kind='file', title='T')\n"
        "ctx.mark('c1', 'convert', 'done')\n"
        "assert ctx.is_done('c1', 'audio.wav') is False\n"
        "assert ctx.item('c1') == {'kind': 'file', 'title': 'T'}\n"
        "heavy = ('sqlalchemy', 'pydantic', 'signal4.content.state')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path / "data")}
    got = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert got.returncode == 0, got.stderr
    ctx = Context()
    assert ctx.settings is settings.get()


def test_ctrl_c_in_a_step_is_one_line_and_exit_130(tmp_path: Path) -> None:
    script = tmp_path / "slow_step.py"
    script.write_text(
        "import argparse, time\n"
        "from signal4.stepkit.step import Step\n"
        "def execute(options, ctx):\n"
        "    print('working', flush=True)\n"
        "    time.sleep(60)\n"
        "STEP = Step(name='slow', description='d', add_arguments=lambda p: None,\n"
        "            execute=execute, ready=lambda: None, needs_content=False)\n"
        "raise SystemExit(STEP.main([]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SIGNAL4_DATA_DIR": str(tmp_path / "data")},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == "slow: interrupted"
    assert out == ""  # no result line: the dispatcher says what happened


def test_the_cpu_budget_comes_from_signal4_threads() -> None:
    from signal4.stepkit.step import cpu_budget

    assert cpu_budget({"SIGNAL4_THREADS": "3"}) == 3
    assert cpu_budget({}) == len(os.sched_getaffinity(0))
    for bad in ("0", "-2", "nan", "two", "1.5"):
        with pytest.raises(InvalidInput, match="SIGNAL4_THREADS"):
            cpu_budget({"SIGNAL4_THREADS": bad})


def test_a_full_disk_is_found_behind_wrappers_and_database_errors() -> None:
    from signal4.stepkit.step import disk_full

    full = OSError(28, "No space left on device")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("could not save the transcript") from exc
    except RuntimeError as wrapped:
        assert disk_full(wrapped) is full

    class DBAPIError(Exception):  # SQLAlchemy's wrapper keeps the driver's error in .orig
        def __init__(self, orig: BaseException) -> None:
            super().__init__("(wrapped)")
            self.orig = orig

    assert disk_full(DBAPIError(full)) is full
    sqlite = disk_full(Exception("(sqlite3.OperationalError) database or disk is full"))
    assert sqlite is not None and sqlite.errno == 28
    assert disk_full(ValueError("bad value")) is None
    # a chain that loops back on itself ends
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert disk_full(a) is None


def test_is_done_is_the_output_being_kept_and_never_asks_the_db() -> None:
    ctx = Context()
    assert ctx.is_done("c1", OUT) is False  # nothing written
    ctx.store.write_json(ctx.store.path("c1", OUT), {"n": 1})
    assert ctx.is_done("c1", OUT) is True  # outputs are written atomically, last
    ctx.store.path("c1", OUT).unlink()
    assert ctx.is_done("c1", OUT) is False  # gone
    ctx.store.path("c1", OUT + ".gz").write_bytes(b"")  # compressed by cleanup: kept
    assert ctx.is_done("c1", OUT) is True


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff\xfe"])
def test_an_unreadable_item_json_is_bad_input_saying_what_to_do(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    import dataclasses

    def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        return {"status": Status.COMPLETED, "item": ctx.item(options.content)}

    step = dataclasses.replace(STEP, execute=execute)
    folder = Path(settings.get().content_root) / "c1"
    folder.mkdir(parents=True)
    assert step.run_argv(["--content", "c1"])["item"] is None  # none: not described
    (folder / "item.json").write_bytes(text.encode("latin-1"))
    result = step.run_argv(["--content", "c1"])
    assert result["status"] == "invalid_input"
    assert result["error"].startswith(f"content 'c1': {folder / 'item.json'} is unreadable (")
    assert "delete it and run again" in result["error"]
    assert "Traceback" not in capsys.readouterr().err
    (folder / "item.json").write_text('{"kind": "file"}')
    assert step.run_argv(["--content", "c1"])["item"] == {"kind": "file"}


def _params(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    if options.mode == "badparams":
        raise InvalidInput("no such model")
    if options.mode == "brokenparams":
        raise RuntimeError("cannot hash the model")
    return {"mode": options.mode}


def test_params_are_printed_without_running_and_carried_by_a_completed_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dataclasses

    step = dataclasses.replace(STEP, name="pdemo", params=_params)
    # --params needs no content and runs nothing
    assert step.run_argv(["--params", "--mode", "crash"]) == {
        "status": "completed",
        "step": "pdemo",
        "params": {"mode": "crash"},
    }
    assert step.run_argv(["--params", "--mode", "badparams"]) == {
        "status": "invalid_input",
        "step": "pdemo",
        "error": "no such model",
    }
    assert STEP.run_argv(["--params"])["params"] == {}  # a step without params: none
    StateDB(settings.get().db_url).register("c1", kind="file")
    done = step.run_argv(["--content", "c1", "--mode", "ok"])
    assert (done["status"], done["content"], done["params"]) == ("completed", "c1", {"mode": "ok"})
    assert done["seconds"] >= 0
    # a completed run whose params cannot be had is still completed, and says so on stderr
    capsys.readouterr()
    odd = step.run_argv(["--content", "c1", "--mode", "brokenparams"])
    assert odd["status"] == "completed" and "params" not in odd
    assert "could not describe the parameters: cannot hash the model" in capsys.readouterr().err
    # a failed run carries none
    assert "params" not in step.run_argv(["--content", "c1", "--mode", "fail"])


def test_an_exception_the_caller_reraises_is_not_a_result() -> None:
    with pytest.raises(ZeroDivisionError):
        STEP.run_argv(["--content", "c1", "--mode", "crash"], reraise=(ZeroDivisionError,))


@pytest.mark.parametrize("filename", [None, "tmp"])
def test_a_full_disk_names_the_content_folder_or_the_file_being_written(
    capsys: pytest.CaptureFixture[str], filename: str | None
) -> None:
    import dataclasses

    root = Path(settings.get().content_root)
    where = root / "c1" / ".tmp-abc123.json" if filename else None

    def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        raise OSError(28, "No space left on device", str(where) if where else None)

    step = dataclasses.replace(STEP, execute=execute)
    result = step.run_argv(["--content", "c1"])
    # the temporary file's name tells nobody anything: its folder instead
    assert result["status"] == "failed"
    assert result["error"].startswith(f"no space left on device writing {root / 'c1'}: ")
    assert "and run demo again" in result["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_the_cpu_budget_is_one_thread_per_cpu_this_process_may_use() -> None:
    from signal4.stepkit.step import cpu_budget

    assert cpu_budget({"SIGNAL4_THREADS": " 1 "}) == 1
    # under `taskset -c <one cpu>` (or a container's limit): one thread
    code = (
        "import os; from signal4.stepkit.step import cpu_budget\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(cpu_budget({}))\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert got.stdout.strip() == "1", got.stderr


def test_a_failed_rerun_of_a_done_stage_without_info_keeps_it_done_and_its_provenance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = StateDB(settings.get().db_url)
    db.register("c1", kind="file")
    ctx = Context()
    ctx.store.write_json(ctx.store.path("c1", OUT), {"n": 1})  # its output, kept
    db.mark("c1", "convert", "done")  # done, with no info of its own
    db.set_provenance("c1", "convert", {"params": {"n": 1}})
    assert _main(capsys, "--content", "c1", "--mode", "fail", "--rewrite")[0] == 1
    row = db.get("c1").steps[0]  # type: ignore[union-attr]
    assert (row.status, set(row.info)) == ("done", {"last_attempt"})
    # the outputs are the ones the record describes: the record stays
    assert db.provenance(["c1"]) == {"c1": {"convert": {"params": {"n": 1}}}}


def test_a_step_that_cannot_tell_its_outputs_records_every_failure() -> None:
    import dataclasses

    step = dataclasses.replace(STEP, outputs_kept=None)
    db = StateDB(settings.get().db_url)
    db.register("c1", kind="file")
    db.mark("c1", "convert", "done")
    result = step.run_argv(["--content", "c1", "--mode", "fail"])
    assert result["records"] == [FAILED_NOT_KEPT]
    assert db.stage_status("c1", "convert") == "done"  # the step never writes the DB
    _apply(result)
    assert db.stage_status("c1", "convert") == "failed"


def test_a_dry_run_carries_no_params_and_a_path_out_of_its_folder_is_bad_input() -> None:
    import dataclasses

    from signal4.content.store import InvalidContentId

    def execute(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        if options.mode == "escape":
            raise InvalidContentId("'../x' leaves the content folder")
        return {"status": Status.COMPLETED, "dry_run": True}

    step = dataclasses.replace(STEP, execute=execute, params=_params)
    started = time.monotonic()
    dry = step.run_argv(["--content", "c1"])
    took = time.monotonic() - started
    assert "params" not in dry
    assert 0 <= dry["seconds"] <= took
    bad = step.run_argv(["--content", "c1", "--mode", "escape"])
    assert (bad["status"], bad["error"]) == ("invalid_input", "'../x' leaves the content folder")


def test_a_run_removes_what_a_killed_run_left_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = Path(settings.get().content_root) / "c1"
    folder.mkdir(parents=True)
    (folder / ".tmp-dead.json").write_text("{")  # a writer killed mid-write
    assert STEP.run_argv(["--content", "c1"])["status"] == "completed"
    assert not (folder / ".tmp-dead.json").exists()
    assert "demo: removed what a killed run left: .tmp-dead.json" in capsys.readouterr().err
    STEP.run_argv(["--content", "c1"])
    assert "removed" not in capsys.readouterr().err  # nothing left: nothing said


def test_a_completed_run_drops_its_stages_record_from_the_storage_manifest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from signal4.content.store import STORAGE_MANIFEST, update_provenance

    folder = Path(settings.get().content_root) / "c1"
    folder.mkdir(parents=True)
    update_provenance(folder, {"convert": {"params": {}}, "stitch": {"params": {}}})
    assert STEP.run_argv(["--content", "c1", "--mode", "fail"])["status"] == "failed"
    assert set(json.loads((folder / STORAGE_MANIFEST).read_text())["provenance"]) == {
        "convert",
        "stitch",
    }  # a failure leaves the record of the outputs it did not replace
    assert STEP.run_argv(["--content", "c1"])["status"] == "completed"
    # the record described the outputs this run replaced; the runner writes the new one
    assert json.loads((folder / STORAGE_MANIFEST).read_text())["provenance"] == {
        "stitch": {"params": {}}
    }


def test_a_result_carries_the_records_of_its_run_and_the_step_opens_no_db() -> None:
    import dataclasses

    done = {"content": "c1", "stage": "convert", "status": "done"}
    result = STEP.run_argv(["--content", "c1"])
    assert result["records"] == [done]  # completed: the stage is done
    # the step recorded its stage itself (with its info): no second record
    result = STEP.run_argv(["--content", "c1", "--mode", "write"])
    assert result["records"] == [{**done, "info": {"n": 1}}]

    # another item's record of the same stage is not this item's
    def other(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        ctx.mark("c2", "convert", "done")
        return {"status": Status.COMPLETED}

    result = dataclasses.replace(STEP, execute=other).run_argv(["--content", "c1"])
    assert result["records"] == [{**done, "content": "c2"}, done]

    def skip(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        return {"status": Status.SKIPPED}

    result = dataclasses.replace(STEP, execute=skip).run_argv(["--content", "c1"])
    assert result["records"] == [{**done, "skipped": True}]

    def dry(options: argparse.Namespace, ctx: Context) -> dict[str, Any]:
        return {"status": Status.COMPLETED, "dry_run": True}

    assert "records" not in dataclasses.replace(STEP, execute=dry).run_argv(["--content", "c1"])
    # a step of no stage records nothing, and leaves the item's folder alone
    folder = Path(settings.get().content_root) / "c1"
    folder.mkdir(parents=True, exist_ok=True)
    stageless = dataclasses.replace(STEP, stage=None)
    assert "records" not in stageless.run_argv(["--content", "c1"])
    assert not (folder / "storage_manifest.json").exists()
    assert StateDB(settings.get().db_url).all() == []  # nobody opened the DB for real


def test_a_failure_whose_outputs_cannot_be_told_counts_them_lost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dataclasses

    def broken(ctx: Context, content: str) -> bool:
        raise OSError("cannot look")

    step = dataclasses.replace(STEP, outputs_kept=broken)
    result = step.run_argv(["--content", "c1", "--mode", "fail"])
    assert result["records"] == [FAILED_NOT_KEPT]
    assert "could not tell whether the outputs are kept: cannot look" in capsys.readouterr().err


def test_register_describes_the_item_in_its_folder_and_in_the_records() -> None:
    ctx = Context()
    folder = ctx.store.folder("c1")
    ctx.register("c1", kind="podcast", title="Ep", write=False)  # no folder yet
    assert not folder.exists()
    folder.mkdir(parents=True)
    ctx.register("c1", duration=2.0, write=False)  # before the work: not written yet
    assert not (folder / "item.json").exists()
    ctx.register("c1", meta={"media": "a.mp3"})
    assert json.loads((folder / "item.json").read_text()) == {
        "kind": "podcast",
        "title": "Ep",
        "duration": 2.0,
        "meta": {"media": "a.mp3"},
    }
    # each record names the kind the item has (the DB needs one to register it)
    assert [r["register"] for r in ctx.records] == [
        {"kind": "podcast", "title": "Ep"},
        {"duration": 2.0, "kind": "podcast"},
        {"meta": {"media": "a.mp3"}, "kind": "podcast"},
    ]
    ctx.mark("c1", "download", "failed", error="gone")
    assert ctx.records[-1] == {
        "content": "c1",
        "stage": "download",
        "status": "failed",
        "error": "gone",
        "outputs_kept": False,
    }
    assert ctx.marked("c1", "download") and not ctx.marked("c2", "download")
    assert not ctx.marked("c1", "convert")
    fresh = Context()
    fresh.register("c9", title="No kind")
    assert fresh.records == [{"content": "c9", "register": {"title": "No kind"}}]
