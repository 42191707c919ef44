"""Mutation testing of the core modules: a small AST mutation runner built for this project.

Each mutant is one small change to a module (``<`` becomes ``<=``, a call becomes
``pass``...); the module's tests should fail on it ("killed"). A mutant they pass
("survived") is a behaviour no test pins down, unless it is equivalent to the original.

Why not mutmut: our tests launch other interpreters (each env's python, ``inv`` in a
child process) that import signal4 from the editable install, so in-process trampolines
are never seen there. This runner copies the project (``git ls-files``: tracked and
untracked-but-not-ignored files, as they are in the working tree) into a scratch folder
once, writes each mutant into that copy, and runs the target's tests with
``PYTHONPATH=<copy>/src``: it comes before the editable install's ``.pth`` path, and every
child process inherits it. The working tree is never written to.

    .venv/bin/nox -s mutation -- [--module NAME ...] [--list] [--record tests/MUTATION.md]

The targets (a module, or some of its functions; the tests that guard it; the interpreter
that runs them) are :data:`TARGETS`; survivors kept on purpose are :data:`ALLOWED`, each
with its reason. Exit 0 when at least :data:`THRESHOLD` % of the mutants are killed and
every survivor is on the allow-list, else 1 (2 for a usage mistake).

``--record FILE`` merges: the modules this run ran get new rows and survivors in FILE, the
other modules keep theirs, and every row names the run (its start, UTC) that produced it;
the header totals all rows. So ``--module X --record tests/MUTATION.md`` refreshes X only.

Standard library only at import time; rich is imported when something is printed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import datetime as dt
import fnmatch
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
DEV_PYTHON = ".venv/bin/python"
#: The least share of killed mutants, in percent, for a passing run.
THRESHOLD = 90.0
#: A mutant whose code spans a line holding this comment is not generated.
PRAGMA = "pragma: no mutate"
#: Set in every test run's environment (not SIGNAL4_*: the tests' fixture clears those), so
#: that processes a run left behind can be found by it and stopped.
TOKEN_VAR = "MUTATION_RUN_TOKEN"
#: A mutant's time limit: this many times its target's baseline, plus the slack below.
TIMEOUT_FACTOR = 3.0
TIMEOUT_SLACK = 10.0
BASELINE_TIMEOUT = 1800.0


# ---------------------------------------------------------------------------
# What is mutated, what guards it, and which survivors are kept on purpose
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """Test files and the interpreter that runs them (``<python> -m pytest --env <env> ...``).

    ``python`` is relative to the project. List the tests fastest and most specific first:
    a run stops at its first failure.
    """

    tests: tuple[str, ...]
    env: str = "none"
    python: str = DEV_PYTHON
    markers: str = "not slow"
    #: pytest's ``-k``: a suite of some test ids only (the SQLite half of the state DB's).
    keyword: str = ""

    @property
    def label(self) -> str:
        only = f", -k {self.keyword}" if self.keyword else ""
        return (
            ", ".join(t.removeprefix("tests/") for t in self.tests) + f" (--env {self.env}{only})"
        )


def dev(*tests: str) -> Suite:
    """Tests run in the dev env (``--env none``)."""
    return Suite(tests)


def slow(*tests: str) -> Suite:
    """Slow tests in the dev env (real envs, Redis, workers): put last, they only run for
    the mutants that the fast suites before them let survive."""
    return Suite(tests, markers="slow")


def in_env(env: str, *tests: str) -> Suite:
    """Tests run in env's nox test venv (``.nox/<env>``; ``nox -s <env>`` builds it)."""
    return Suite(tests, env, f".nox/{env}/bin/python")


@dataclass(frozen=True)
class Target:
    """One module (or some of its top-level functions and classes) and the suites guarding it.

    A mutant is killed when a suite fails (they run in order, the next only if one passes).
    """

    name: str
    path: str
    suites: tuple[Suite, ...]
    only: tuple[str, ...] = ()


_TASKS = "tests/test_tasks.py"
TARGETS: tuple[Target, ...] = (
    Target(
        "dispatch",
        "src/signal4/run/dispatch.py",
        (
            dev(
                "tests/run/test_dispatch.py",
                "tests/stepkit/test_progress.py",
                "tests/envs/test_venv.py",
                "tests/envs/test_syncer.py",
                _TASKS,
            ),
        ),
    ),
    Target(
        "signals",
        "src/signal4/signals.py",
        (
            dev(
                "tests/test_signals.py",
                "tests/run/test_dispatch.py",
                "tests/envs/test_syncer.py",
                _TASKS,
            ),
        ),
    ),
    Target(
        "venv",
        "src/signal4/envs/venv.py",
        (
            dev(
                "tests/envs/test_venv.py",
                "tests/envs/test_fingerprint.py",
                "tests/envs/test_syncer.py",
                "tests/envs/test_optional_envs.py",
                "tests/envs/test_noxsupport.py",
                _TASKS,
            ),
        ),
    ),
    Target(
        "syncer",
        "src/signal4/envs/syncer.py",
        (
            dev(
                "tests/envs/test_syncer.py",
                "tests/envs/test_optional_envs.py",
                "tests/envs/test_venv.py",
                _TASKS,
            ),
        ),
    ),
    Target(
        "manifest",
        "src/signal4/envs/manifest.py",
        (
            dev(
                "tests/envs/test_manifest.py",
                "tests/envs/test_optional_envs.py",
                "tests/workers/test_celeryapp.py",
                "tests/envs/test_noxsupport.py",
                "tests/envs/test_venv.py",
                _TASKS,
            ),
        ),
    ),
    Target("checks", "src/signal4/envs/checks.py", (dev("tests/envs/test_checks.py"),)),
    Target(
        "lockgraph",
        "src/signal4/envs/lockgraph.py",
        (
            dev(
                "tests/envs/test_lockgraph.py",
                "tests/envs/test_checks.py",
                "tests/envs/test_optional_envs.py",
            ),
        ),
    ),
    Target(
        "protocol",
        "src/signal4/stepkit/protocol.py",
        (
            dev(
                "tests/stepkit/test_protocol.py",
                "tests/workers/test_worker.py",
                "tests/stepkit/test_step.py",
                "tests/run/test_dispatch.py",
            ),
        ),
    ),
    Target(
        "steprunner",
        "src/signal4/stepkit/step.py",
        (
            dev("tests/stepkit/test_step.py"),
            in_env("stitch", "tests/processing_steps/test_stitch.py"),
            in_env("cleanup", "tests/processing_steps/test_cleanup_and_compress.py"),
            in_env("convert", "tests/processing_steps/test_convert.py"),
        ),
    ),
    Target(
        "record",
        "src/signal4/run/record.py",
        (dev("tests/run/test_record.py", "tests/stepkit/test_step.py"),),
    ),
    Target(
        "submit",
        "src/signal4/workers/submit.py",
        (dev("tests/workers/test_submit.py"),),
        only=("as_outcome",),
    ),
    Target(
        "stitch",
        "src/signal4/processing_steps/stitch.py",
        (in_env("stitch", "tests/processing_steps/test_stitch.py"),),
        only=("assign_speakers", "dedup_overlap"),
    ),
    # ----- the core written since the first mutation record
    Target(
        "codes",
        "src/signal4/codes.py",
        (dev("tests/test_codes.py", "tests/stepkit/test_protocol.py", "tests/test_cpu.py"),),
    ),
    Target("cpu", "src/signal4/cpu.py", (dev("tests/test_cpu.py", "tests/stepkit/test_step.py"),)),
    Target(
        "layout",
        "src/signal4/envs/layout.py",
        (dev("tests/envs/test_venv.py", "tests/envs/test_fingerprint.py", _TASKS),),
    ),
    Target(
        "fingerprint",
        "src/signal4/envs/fingerprint.py",
        (dev("tests/envs/test_fingerprint.py", "tests/envs/test_venv.py"),),
    ),
    Target(
        "guard",
        "src/signal4/content/guard.py",
        (dev("tests/content/test_guard.py", "tests/stepkit/test_step.py"),),
    ),
    Target(
        "plan",
        "src/signal4/run/plan.py",
        (
            dev("tests/run/test_plan.py", "tests/run/test_provenance.py", _TASKS),
            slow("tests/run/test_batch.py", "tests/run/test_rerun.py"),
        ),
    ),
    Target(
        "provenance",
        "src/signal4/run/provenance.py",
        (
            dev("tests/run/test_provenance.py", "tests/run/test_record.py"),
            slow("tests/run/test_rerun.py"),
        ),
    ),
    Target(
        "runner",
        "src/signal4/run/runner.py",
        (
            dev("tests/run/test_runner.py", "tests/run/test_record.py"),
            slow("tests/run/test_batch.py"),
        ),
    ),
    Target(
        "batch",
        "src/signal4/run/batch.py",
        (dev("tests/run/test_batch.py"), slow("tests/run/test_batch.py", _TASKS)),
    ),
    Target(
        "warm-batch",
        "src/signal4/workers/batch.py",
        (dev("tests/workers/test_batch.py"), slow("tests/workers/test_batch.py")),
    ),
    Target(
        "worker",
        "src/signal4/workers/worker.py",
        (dev("tests/workers/test_worker.py"), slow("tests/workers/test_worker.py")),
    ),
    Target(
        "transport",
        "src/signal4/workers/transport.py",
        (dev("tests/workers/test_transport.py"), slow("tests/workers/test_transport.py")),
    ),
    Target(
        "cli",
        "src/signal4/commands/cli.py",
        (dev("tests/commands/test_cli.py", "tests/commands/test_voices.py", _TASKS),),
    ),
    Target("voices-index", "src/signal4/voices/index.py", (dev("tests/voices/test_index.py"),)),
    Target(
        "voices-registry",
        "src/signal4/voices/registry.py",
        (
            # SQLite first; the same tests on the real PostgreSQL only for what survives it
            Suite(("tests/voices/test_registry.py",), keyword="not postgresql"),
            Suite(("tests/voices/test_registry.py",), keyword="postgresql"),
            dev("tests/commands/test_voices.py"),
        ),
    ),
)

#: Survivors kept on purpose: (module file, operator, text) -> why. ``text`` is found in the
#: mutated line as written or as mutated; a text of several lines (``"if x:\ncontinue"``, up
#: to three, stripped) ends with the mutated line as written. A pattern, not a line number,
#: so that an entry survives edits elsewhere in the file. Only mutants that no user can tell
#: from the original belong here; a test gap is fixed with a test.
_DISPATCH = "src/signal4/run/dispatch.py"
_VENV = "src/signal4/envs/venv.py"
_SYNCER = "src/signal4/envs/syncer.py"
_CHECKS = "src/signal4/envs/checks.py"
_LOCKGRAPH = "src/signal4/envs/lockgraph.py"
_MANIFEST = "src/signal4/envs/manifest.py"
_STEPRUNNER = "src/signal4/stepkit/step.py"
_LAYOUT = "src/signal4/envs/layout.py"
_CPU = "src/signal4/cpu.py"
_STITCH = "src/signal4/processing_steps/stitch.py"
_PRECISION = "the precision of a timing (3 or 4 decimals); nothing reads more than 3"
_EXIT_ONE = "equivalent: for exit code 1 both branches give 1"
_JOINED = (
    "equivalent: the thread is joined, or told to stop, before run_command returns; daemon "
    "only matters when the interpreter exits while it runs"
)
_ONE_VERSION = (
    "leaves the loop over one package's versions in one env: the walk finds one version per "
    "env and target (two are drift, which check_drift reports), so nothing is skipped"
)
_NOT_HERE = (
    "the branch for a machine without os.sched_getaffinity (macOS): it never runs on the "
    "Linux machine the mutation run uses"
)
_INDEX = "src/signal4/voices/index.py"
_REBUILD = (
    "how many changed prints are written into the columns in place before they are built "
    "again: the same columns either way, a cost and not a behaviour"
)
ALLOWED: dict[tuple[str, str, str], str] = {
    (_INDEX, "int-plus-one", "_REBUILD_AFTER = 9"): _REBUILD,
    (_INDEX, "le-to-lt", "len(self._dirty) < _REBUILD_AFTER"): _REBUILD,
    (_INDEX, "int-plus-one", "self._bias = 1"): (
        "equivalent: _build sets the bias before any search reads it"
    ),
    (_INDEX, "int-plus-one", "self._rows[lane * d : (lane + 2) * d]"): (
        "equivalent: the row is read at its first d numbers only, which the longer slice "
        "starts with"
    ),
    (_DISPATCH, "int-plus-one", "STDERR_TAIL_LINES = 41"): (
        "how many stderr lines an outcome keeps for its error report (40 or 41): a size, not "
        "a behaviour"
    ),
    (_DISPATCH, "int-plus-one", "returncode if returncode > 1 else codes.EXIT_FAILED"): (_EXIT_ONE),
    (_DISPATCH, "true-to-false", "text=False,"): (
        "equivalent: encoding= and errors= already open the pipes in text mode"
    ),
    (_DISPATCH, "and-to-or", "assert proc.stdout is not None"): (
        "equivalent: both pipes always exist (stdout and stderr are PIPE)"
    ),
    (_DISPATCH, "true-to-false", "daemon=False"): _JOINED,
    (_DISPATCH, "call-to-pass", "sys.stderr.flush()"): (
        "equivalent: sys.stderr is line-buffered and each line written ends with a newline"
    ),
    (_DISPATCH, "int-plus-one", "for signum in early[:2]:"): (
        "forwards a second early signal too: the step, just started with the default "
        "dispositions, dies of the first; the outcome's status and exit code come from the "
        "first signal either way"
    ),
    (_DISPATCH, "return-none", "not isinstance(value, (int, float)):\nreturn False"): (
        "equivalent: _count's callers test it for truth (not _count(...)), and None is false"
    ),
    (_DISPATCH, "and-to-or", """if not (text.startswith("{") or '"progress"' in text):"""): (
        "equivalent: the pre-check only spares a JSON parse; the checks after it refuse the "
        "same lines"
    ),
    (_DISPATCH, "true-to-false", "stopped.append(False)"): (
        "equivalent: the watchdog's mark is read as bool(stopped), true for any non-empty list"
    ),
    (_DISPATCH, "call-to-pass", "stream.close()"): (
        "equivalent: the pipe is closed anyway when the Popen object is freed as run_command "
        "returns (its last reference)"
    ),
    (_LAYOUT, "return-none", 'return self.venv / "Scripts" / "python.exe"'): (
        "Windows is not a target platform (the line is `pragma: no cover` too)"
    ),
    (_LAYOUT, "true-to-false", "all_extras=False,"): (
        "equivalent here: the full env then gets --extra for every env buildable on this "
        "machine instead of --all-extras, the same packages (the others' carry platform markers)"
    ),
    (_LAYOUT, "int-plus-one", "hexdigest()[:17]"): (
        "the length of an internal hash: every reader compares it with lock_hash() itself"
    ),
    (_VENV, "call-to-pass", 'environ.setdefault("UV_NO_PROGRESS", "1")'): (
        "equivalent: uv draws no progress bar when its stderr is a pipe, as it is here"
    ),
    (_VENV, "or-to-and", "if not isinstance(recorded, str) and not recorded:"): (
        "equivalent: a recorded fingerprint that is no non-empty string never equals the "
        "current one (a hex digest), so the comparison after it says stale too"
    ),
    (_VENV, "true-to-false", "folder.mkdir(parents=False, exist_ok=True)"): (
        "equivalent: the folder is <project>/envs, and the project folder exists"
    ),
    (_VENV, "call-to-pass", "fcntl.flock(fh, fcntl.LOCK_UN)"): (
        "equivalent: the file is closed right after (the with block), which lets go of the lock"
    ),
    (_VENV, "int-plus-one", '"python": sys.version.split()[1]'): (
        "an informational field of the sync stamp that no code reads"
    ),
    (_SYNCER, "int-plus-one", "ERROR_TAIL = 13"): (
        "how many lines of uv's output are searched for its error (12 or 13): uv prints its "
        "error last"
    ),
    (_SYNCER, "int-plus-one", '["uv sync failed with no output"])[-1][:301]'): (
        "where a very long error line is cut (300 or 301 characters): a size, not a behaviour"
    ),
    (_SYNCER, "call-to-pass", "self._live.discard(proc)"): (
        "a finished uv stays in the set: send_signal() skips a process already waited for"
    ),
    (_SYNCER, "int-plus-one", "jobs: int = 3,"): (
        "every caller passes jobs (inv sync-all: --jobs, default 2; inv sync: 1)"
    ),
    (_SYNCER, "call-to-pass", "f.cancel()"): (
        "equivalent: pool.shutdown(cancel_futures=True) in the finally cancels the same futures"
    ),
    (_SYNCER, "true-to-false", "pool.shutdown(wait=True, cancel_futures=False)"): (
        "equivalent: the except clause has cancelled every future with f.cancel() already"
    ),
    (_SYNCER, "or-to-and", "stamp = read_stamp(env) and {}"): (
        "re-stamps every up-to-date env on inv sync: it writes the lock, selection and "
        "fingerprint the stamp already holds (status() found them current); differs only for a "
        "stamp from before fingerprints, which gains a correct one"
    ),
    (_SYNCER, "or-to-and", "(lock and lock_hash(manifest))"): (
        "equivalent: lock is lock_hash(manifest) taken moments before (sync_many), or None, "
        "and then the env is re-stamped with what its stamp already holds (see the entry above)"
    ),
    (_SYNCER, "call-to-pass", "manifest.env(name)"): (
        "equivalent for inv sync: spec() raises the same UnknownNameError for the name next"
    ),
    (_CHECKS, "continue-to-break", '"sdist" in pkg:\ncontinue'): _ONE_VERSION,
    (_CHECKS, "continue-to-break", "for w in wheels):\ncontinue"): _ONE_VERSION,
    (_CHECKS, "int-plus-one", 'rsplit("/", 2)[-1]'): (
        "equivalent: the last part of a URL is the same whatever rsplit's limit"
    ),
    (_CHECKS, "int-plus-one", 'plat.split("-", 2)'): (
        "equivalent here: every platform tag has one dash (linux-x86_64, darwin-arm64)"
    ),
    (_CHECKS, "int-plus-one", "STEP_PACKAGE.replace(PACKAGE, package, 2)"): (
        "equivalent: the package name occurs once in the step package's name"
    ),
    (_CHECKS, "and-to-or", 'if "drift" in only or lock is not None'): (
        "differs only for a selection of checks with platforms but without drift; `inv check` "
        "runs all six, and nothing else selects"
    ),
    (_CHECKS, "and-to-or", 'if "platforms" in only or lock is not None'): (
        "differs only for a selection of checks with drift but without platforms; `inv check` "
        "runs all six, and nothing else selects"
    ),
    (_LOCKGRAPH, "return-none", "keep the edge\nreturn True"): (
        "unreachable: the marker environment sets every variable that uv.lock's markers use"
    ),
    (_LOCKGRAPH, "true-to-false", "keep the edge\nreturn True"): (
        "unreachable: the marker environment sets every variable that uv.lock's markers use"
    ),
    (_LOCKGRAPH, "int-plus-one", "range(9, 20)"): (
        "equivalent here: requires-python (>=3.11) never allows python 3.8"
    ),
    (_LOCKGRAPH, "int-plus-one", "range(8, 21)"): (
        "equivalent here: requires-python (<3.15) never allows python 3.20"
    ),
    (_LOCKGRAPH, "return-none", "return False"): (
        "equivalent: wheel_fits's callers test it for truth (any(), if not), and None is false"
    ),
    (_LOCKGRAPH, "false-to-true", "if len(parts) < 5:\nreturn False"): (
        "unreachable: uv.lock's wheel file names always have five or more parts (PEP 427)"
    ),
    (_LOCKGRAPH, "le-to-lt", "int(t[3:]) < minor"): (
        "equivalent: the one tag it changes, cp3<minor> itself, already fits by the test before "
        'it (t in (..., f"cp3{minor}"))'
    ),
    (_LOCKGRAPH, "int-plus-one", "t[4:].isdigit()"): (
        "equivalent: a wheel's cp3 tags go on with digits only, so t[3:] and t[4:] are digits "
        "together"
    ),
    (_MANIFEST, "call-to-pass", "super().__init__(name)"): (
        "equivalent: UnknownNameError's message comes from its __str__; the exception's args "
        "show in repr() only"
    ),
    (_MANIFEST, "false-to-true", "optional: bool = True"): (
        "parse() always sets optional from the manifest; the default serves Env objects built "
        "by hand"
    ),
    (_MANIFEST, "int-plus-one", "tasks_of(env)), default=2)"): (
        "differs only for an env without tasks, whose worker has nothing to run"
    ),
    (_STEPRUNNER, "call-to-pass", "super().__init__(text)"): (
        "equivalent: _HelpRequested carries its text in .text; its args are not read"
    ),
    (_STEPRUNNER, "int-plus-one", "def exit(self, status: int = 1"): (
        "argparse calls exit() without a status only for a version action, which no step has "
        "(--help and usage errors are overridden)"
    ),
    (_CPU, "return-none", "return max(1, os.cpu_count() or 1)"): _NOT_HERE,
    (_CPU, "int-plus-one", "os.cpu_count() or 2"): _NOT_HERE,
    (_CPU, "or-to-and", "os.cpu_count() and 1"): _NOT_HERE,
    (_STEPRUNNER, "or-to-and", '"""\nctx = ctx or Context()'): (
        "Step.call's only caller, run_argv, always passes a Context"
    ),
    (_STEPRUNNER, "int-plus-one", "round(time.monotonic() - started, 4)"): _PRECISION,
    (_STEPRUNNER, "false-to-true", "def parser(self, *, probe: bool = True)"): (
        "equivalent: run_argv always passes probe; the other callers (inv submit's path "
        "options, the tests) read the options' names and types, not whether --content is "
        "required"
    ),
    (_STEPRUNNER, "ne-to-eq", "while not path.exists() and path == path.parent:"): (
        "equivalent: the next loop walks up from a missing path to the same mount point (a "
        "missing path is never one)"
    ),
    (_STEPRUNNER, "call-to-pass", "settings.get()"): (
        "equivalent: ctx.settings on the next line reads the same settings and turns the same "
        "error into the same invalid_input result"
    ),
    (_STEPRUNNER, "call-to-pass", "sys.stdout.flush()"): (
        "equivalent: the result line is printed to the same buffered stdout, after everything "
        "printed before it"
    ),
    (_STITCH, "int-plus-one", 'w.get("chunk", 1)'): (
        "transcribe writes a chunk index on every word, so the default is never used"
    ),
    (_STITCH, "lt-to-le", "if dist <= best_dist:"): (
        "differs only for a word exactly as far from two turns (in a gap, touching both): "
        "the later turn instead of the earlier, and either is as near"
    ),
    (_STITCH, "lt-to-le", 'w["start"] <= prev_end - 0.05'): (
        "differs only for a word starting exactly 50 ms before the previous chunk's end: the "
        "edge of a heuristic tolerance, where both answers are right"
    ),
}


# ---------------------------------------------------------------------------
# Mutants
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One mutation of one module: where, what, and the whole mutated source."""

    path: str
    line: int
    col: int
    operator: str
    description: str
    before: str
    after: str
    source: str = field(repr=False, compare=False)
    #: The mutated line and the two above it, as written (what the allow-list matches).
    context: str = field(default="", repr=False, compare=False)

    @property
    def id(self) -> str:
        """``file:line:col:operator``: stable while the code above it does not move."""
        return f"{self.path}:{self.line}:{self.col}:{self.operator}"


# op -> (replacement, operator name, its token in the source, the new token)
_COMPARE: dict[type[ast.cmpop], tuple[type[ast.cmpop], str, str, str]] = {
    ast.Lt: (ast.LtE, "lt-to-le", r"<(?!=)", "<="),
    ast.LtE: (ast.Lt, "le-to-lt", r"<=", "<"),
    ast.Gt: (ast.GtE, "gt-to-ge", r">(?!=)", ">="),
    ast.GtE: (ast.Gt, "ge-to-gt", r">=", ">"),
    ast.Eq: (ast.NotEq, "eq-to-ne", r"==", "!="),
    ast.NotEq: (ast.Eq, "ne-to-eq", r"!=", "=="),
    ast.In: (ast.NotIn, "in-to-notin", r"\bin\b", "not in"),
    ast.NotIn: (ast.In, "notin-to-in", r"\bnot\s+in\b", "in"),
    ast.Is: (ast.IsNot, "is-to-isnot", r"\bis\b", "is not"),
    ast.IsNot: (ast.Is, "isnot-to-is", r"\bis\s+not\b", "is"),
}
_SYMBOL: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.And: "and",
    ast.Or: "or",
    ast.Add: "+",
    ast.Sub: "-",
}
# An ``if`` whose test is one of these comparisons is already negated by the comparison swap.
_NEGATING_COMPARE = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)
# Operands that make ``+`` a concatenation, where ``-`` could only raise TypeError.
_SEQUENCES = (ast.JoinedStr, ast.List, ast.Tuple, ast.ListComp)
_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical"})
_LOGGER = re.compile(r"_?(log|logger|logging)", re.IGNORECASE)
# Fields never mutated: annotations and decorators are declarations, not behaviour.
_SKIP_FIELDS: dict[type[ast.AST], frozenset[str]] = {
    ast.FunctionDef: frozenset({"decorator_list", "returns", "type_comment"}),
    ast.AsyncFunctionDef: frozenset({"decorator_list", "returns", "type_comment"}),
    ast.ClassDef: frozenset({"decorator_list"}),
    ast.arg: frozenset({"annotation", "type_comment"}),
    ast.AnnAssign: frozenset({"annotation"}),
}
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _is_log_or_print(node: ast.AST) -> bool:
    """``print(...)``, ``<x>.print(...)`` or ``logging/logger/log.<level>(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == "print"
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr == "print":
        return True
    owner = func.value
    name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
    return func.attr in _LOG_METHODS and bool(_LOGGER.fullmatch(name))


def _never_runs_under_test(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` blocks."""
    test = node.test
    if isinstance(test, ast.Name | ast.Attribute):
        return getattr(test, "id", getattr(test, "attr", "")) == "TYPE_CHECKING"
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


@dataclass(frozen=True)
class _Site:
    """A mutation found in the tree, before its source is written and checked."""

    node: ast.AST  # replaced by ``new`` in the mutant's tree
    parent: ast.AST
    field: str
    index: int | None
    new: ast.AST
    operator: str
    description: str
    where: tuple[int, int]  # (line, byte column) that names the mutant
    edits: tuple[tuple[int, int, str], ...]  # (start, end, text), byte offsets


class _Finder:
    """Walks a module's tree and collects the mutation sites."""

    def __init__(self, source: str) -> None:
        self.data = source.encode("utf-8")
        self.lines = source.split("\n")
        self.starts = [0]
        for raw in self.data.split(b"\n")[:-1]:
            self.starts.append(self.starts[-1] + len(raw) + 1)
        self.pragma = {i + 1 for i, text in enumerate(self.lines) if PRAGMA in text}
        self.sites: list[_Site] = []

    # -- positions --------------------------------------------------------

    def start(self, node: ast.AST) -> int:
        return self.starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined,no-any-return]

    def end(self, node: ast.AST) -> int:
        return self.starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined,no-any-return]

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")

    def token(self, start: int, end: int, pattern: str) -> tuple[int, int] | None:
        """The byte span of ``pattern`` between two operands (comments ignored)."""
        gap = self.text(start, end)
        masked = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), gap)
        match = re.search(pattern, masked)
        if match is None:
            return None
        return (
            start + len(gap[: match.start()].encode("utf-8")),
            start + len(gap[: match.end()].encode("utf-8")),
        )

    def pragma_in(self, node: ast.AST) -> bool:
        first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
        return any(line in self.pragma for line in range(first, last + 1))

    # -- the walk -----------------------------------------------------------

    def visit(self, node: ast.AST, parent: ast.AST, fld: str, index: int | None) -> None:
        if isinstance(node, ast.JoinedStr) or _is_log_or_print(node):
            return
        if isinstance(node, ast.Expr) and (
            isinstance(node.value, ast.Constant) or _is_log_or_print(node.value)
        ):
            return  # docstrings, bare strings, logging and print statements
        if isinstance(node, ast.If) and _never_runs_under_test(node):
            return
        self.mutate(node, parent, fld, index)
        skip = _SKIP_FIELDS.get(type(node), frozenset())
        for name, value in ast.iter_fields(node):
            if name in skip:
                continue
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        self.visit(item, node, name, i)
            elif isinstance(value, ast.AST):
                self.visit(value, node, name, None)

    def add(
        self,
        node: ast.AST,
        parent: ast.AST,
        fld: str,
        index: int | None,
        new: ast.AST,
        operator: str,
        description: str,
        edits: Sequence[tuple[int, int, str]],
        where: ast.AST | None = None,
        span: ast.AST | None = None,
    ) -> None:
        if self.pragma_in(span or node):
            return
        at = where or node
        self.sites.append(
            _Site(
                node,
                parent,
                fld,
                index,
                new,
                operator,
                description,
                (at.lineno, at.col_offset),  # type: ignore[attr-defined]
                tuple(edits),
            )
        )

    def mutate(self, node: ast.AST, parent: ast.AST, fld: str, index: int | None) -> None:
        here = (node, parent, fld, index)
        new: ast.AST
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                swap = _COMPARE.get(type(op))
                if swap is None:
                    continue
                new_op, name, pattern, token = swap
                ops = [*node.ops]
                ops[i] = new_op()
                left = node.left if i == 0 else node.comparators[i - 1]
                right = node.comparators[i]
                span = self.token(self.end(left), self.start(right), pattern)
                edits = [(*span, token)] if span else []
                new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                desc = f"`{_SYMBOL[type(op)]}` -> `{_SYMBOL[new_op]}`"
                self.add(*here, new, name, desc, edits, where=right)
        elif isinstance(node, ast.BoolOp):
            old, other = (ast.And, ast.Or) if isinstance(node.op, ast.And) else (ast.Or, ast.And)
            edits = []
            for a, b in zip(node.values, node.values[1:], strict=False):
                span = self.token(self.end(a), self.start(b), rf"\b{_SYMBOL[old]}\b")
                if span:
                    edits.append((*span, _SYMBOL[other]))
            name = f"{_SYMBOL[old]}-to-{_SYMBOL[other]}"
            desc = f"`{_SYMBOL[old]}` -> `{_SYMBOL[other]}`"
            self.add(*here, ast.BoolOp(op=other(), values=node.values), name, desc, edits)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            span = self.token(self.start(node), self.start(node.operand), r"not\s*")
            edits = [(*span, "")] if span else []
            self.add(*here, node.operand, "drop-not", "`not` dropped", edits)
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            new_value = not node.value
            name = f"{str(node.value).lower()}-to-{str(new_value).lower()}"
            edits = [(self.start(node), self.end(node), str(new_value))]
            desc = f"`{node.value}` -> `{new_value}`"
            self.add(*here, ast.Constant(value=new_value), name, desc, edits)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            bumped = node.value + 1
            edits = [(self.start(node), self.end(node), str(bumped))]
            desc = f"`{node.value}` -> `{bumped}`"
            self.add(*here, ast.Constant(value=bumped), "int-plus-one", desc, edits)
        elif isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Add | ast.Sub):
            self._arithmetic(node, parent, fld, index)
        elif isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Constant) and value.value is None:
                return
            edits = [(self.start(value), self.end(value), "None")]
            new = ast.Return(value=ast.Constant(value=None))
            self.add(*here, new, "return-none", "returns None instead of the value", edits)
        elif isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                return  # drop-not makes the same mutant
            if (
                isinstance(test, ast.Compare)
                and len(test.ops) == 1
                and isinstance(test.ops[0], _NEGATING_COMPARE)
            ):
                return  # the comparison swap makes the same mutant
            start, end = self.start(test), self.end(test)
            edits = [(start, end, f"not ({self.text(start, end)})")]
            new = ast.UnaryOp(op=ast.Not(), operand=test)
            self.add(test, node, "test", None, new, "negate-if", "`if` condition negated", edits)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            callee = ast.unparse(node.value.func)
            callee = callee if len(callee) <= 40 else callee[:37] + "..."
            edits = [(self.start(node), self.end(node), "pass")]
            desc = f"call `{callee}(...)` replaced by `pass`"
            self.add(*here, ast.Pass(), "call-to-pass", desc, edits)
        elif isinstance(node, ast.Break | ast.Continue):
            brk = isinstance(node, ast.Break)
            new_stmt: ast.stmt = ast.Continue() if brk else ast.Break()
            word = "continue" if brk else "break"
            name = "break-to-continue" if brk else "continue-to-break"
            desc = f"`{'break' if brk else 'continue'}` -> `{word}`"
            self.add(*here, new_stmt, name, desc, [(self.start(node), self.end(node), word)])

    def _arithmetic(
        self, node: ast.BinOp | ast.AugAssign, parent: ast.AST, fld: str, index: int | None
    ) -> None:
        if isinstance(node, ast.BinOp):
            left, right = node.left, node.right
        else:
            left, right = node.target, node.value
        for operand in (left, right):
            is_text = isinstance(operand, ast.Constant) and isinstance(operand.value, str | bytes)
            if is_text or isinstance(operand, _SEQUENCES):
                return  # a concatenation: `-` could only raise
        add = isinstance(node.op, ast.Add)
        other: ast.operator = ast.Sub() if add else ast.Add()
        suffix = "=" if isinstance(node, ast.AugAssign) else ""
        old_tok, new_tok = ("+", "-") if add else ("-", "+")
        span = self.token(self.end(left), self.start(right), re.escape(old_tok + suffix))
        edits = [(*span, new_tok + suffix)] if span else []
        new: ast.AST
        if isinstance(node, ast.BinOp):
            new = ast.BinOp(left=node.left, op=other, right=node.right)
        else:
            new = ast.AugAssign(target=node.target, op=other, value=node.value)
        name = "add-to-sub" if add else "sub-to-add"
        desc = f"`{old_tok}{suffix}` -> `{new_tok}{suffix}`"
        self.add(node, parent, fld, index, new, name, desc, edits, where=right)


def _splice(data: bytes, edits: Sequence[tuple[int, int, str]]) -> bytes:
    out = data
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text.encode("utf-8") + out[end:]
    return out


def _dump_with(site: _Site, stmt: ast.stmt) -> str:
    """The dump of ``stmt`` with the site's node replaced in it (and put back after)."""
    if site.node is stmt:
        return ast.dump(site.new)
    holder = getattr(site.parent, site.field)
    if site.index is None:
        setattr(site.parent, site.field, site.new)
    else:
        holder[site.index] = site.new
    try:
        return ast.dump(stmt)
    finally:
        if site.index is None:
            setattr(site.parent, site.field, site.node)
        else:
            holder[site.index] = site.node


class _Checker:
    """Whether an edited module parses to the intended tree.

    Only the top-level statement that holds the change is parsed and compared (edits
    never leave their node, so the rest of the module is the original text).
    """

    def __init__(self, tree: ast.Module, finder: _Finder) -> None:
        self.tree = tree
        self.finder = finder

    def statement(self, node: ast.AST) -> tuple[ast.stmt, int, int]:
        line = node.lineno  # type: ignore[attr-defined]
        stmt = next(s for s in self.tree.body if s.lineno <= line <= (s.end_lineno or line))
        # a top-level statement starts its line; a decorated one at its first decorator
        first = min(n.lineno for n in (stmt, *getattr(stmt, "decorator_list", ())))
        return stmt, self.finder.starts[first - 1], self.finder.end(stmt)

    def ok(self, site: _Site, edits: Sequence[tuple[int, int, str]]) -> bytes | None:
        """The whole mutated source when ``edits`` make exactly the site's mutant, else None."""
        if not edits:
            return None
        stmt, start, end = self.statement(site.node)
        data = _splice(self.finder.data, edits)
        grown = sum(len(text.encode("utf-8")) - (b - a) for a, b, text in edits)
        try:
            got = ast.parse(data[start : end + grown])
        except SyntaxError:
            return None
        if len(got.body) != 1 or ast.dump(got.body[0]) != _dump_with(site, stmt):
            return None
        return data


def mutants(source: str, path: str = "<source>", only: Sequence[str] = ()) -> list[Mutant]:
    """Every mutant of ``source`` (of the top-level functions or classes in ``only``).

    Each mutant's source is checked: it must parse to exactly the intended tree. The text
    edit keeps the line as written; when it does not pass that check, the node is written
    from the tree instead (``ast.unparse``). Raises ValueError for a name in ``only`` that
    the module does not define at its top.
    """
    tree = ast.parse(source)
    finder = _Finder(source)
    for node, parent, index in _roots(tree, only):
        finder.visit(node, parent, "body", index)
    checker = _Checker(tree, finder)
    out: list[Mutant] = []
    seen: set[str] = set()
    for site in finder.sites:
        data = checker.ok(site, site.edits)
        if data is None:
            new = ast.unparse(site.new)
            new = f"({new})" if isinstance(site.new, ast.expr) else new
            data = checker.ok(site, [(finder.start(site.node), finder.end(site.node), new)])
            if data is None:  # pragma: no cover - a bug in an operator
                raise AssertionError(f"cannot write the {site.operator} mutant at {site.where}")
        text = data.decode("utf-8")
        line, byte_col = site.where
        prefix = finder.data[finder.starts[line - 1] : finder.starts[line - 1] + byte_col]
        before, after = _first_change(finder.lines, text.split("\n"))
        mutant = Mutant(
            path=path,
            line=line,
            col=len(prefix.decode("utf-8")) + 1,
            operator=site.operator,
            description=site.description,
            before=before,
            after=after,
            source=text,
            context="\n".join(x.strip() for x in finder.lines[max(0, line - 3) : line]),
        )
        if mutant.id in seen:  # pragma: no cover - two sites of one kind at one place
            raise AssertionError(f"two mutants named {mutant.id}")
        seen.add(mutant.id)
        out.append(mutant)
    return sorted(out, key=lambda m: (m.line, m.col, m.operator))


def _roots(tree: ast.Module, only: Sequence[str]) -> Iterator[tuple[ast.AST, ast.AST, int]]:
    """The statements to walk: the whole module, or the named defs (``Class.method`` too)."""
    if not only:
        for i, stmt in enumerate(tree.body):
            yield stmt, tree, i
        return
    for name in only:
        owner: ast.AST = tree
        found: tuple[ast.AST, ast.AST, int] | None = None
        for part in name.split("."):
            body = getattr(owner, "body", [])
            found = next(
                (
                    (stmt, owner, i)
                    for i, stmt in enumerate(body)
                    if isinstance(stmt, _DEFS) and stmt.name == part
                ),
                None,
            )
            if found is None:
                raise ValueError(f"{name!r} is not a function or class defined at the top")
            owner = found[0]
        assert found is not None
        yield found


def _first_change(old: list[str], new: list[str]) -> tuple[str, str]:
    for a, b in zip(old, new, strict=False):
        if a != b:
            return a.strip(), b.strip()
    return "", ""  # pragma: no cover - a mutant always changes a line


def target_mutants(target: Target, root: Path = ROOT) -> list[Mutant]:
    """The mutants of ``target``'s module as it is under ``root``."""
    source = (root / target.path).read_text(encoding="utf-8")
    return mutants(source, target.path, target.only)


#: Operators whose mutated line says nothing of the original (``pass``, ``return None``):
#: an allow-list entry of theirs names the line as written.
_GENERIC = frozenset({"call-to-pass", "return-none"})


def _allows(key: tuple[str, str, str], mutant: Mutant) -> bool:
    path, operator, text = key
    if mutant.path != path or mutant.operator != operator:
        return False
    if "\n" in text:  # lines: the last one is the mutated line, as written
        return mutant.context.endswith(text) or f"{text}\n" in mutant.context
    # one line: as mutated, so that an entry names the change and not just the line (a
    # text found in the line as written would also let every other mutant of it survive)
    return text in (mutant.before if operator in _GENERIC else mutant.after)


def allowed_reason(mutant: Mutant) -> str | None:
    """Why ``mutant`` may survive, from :data:`ALLOWED`; None when it may not."""
    return next((why for key, why in ALLOWED.items() if _allows(key, mutant)), None)


def unused_allowances(survived: Sequence[Mutant]) -> list[tuple[str, str, str]]:
    """The allow-list entries that let none of ``survived`` survive (stale: the code or a
    new test made them needless)."""
    return [key for key in ALLOWED if not any(_allows(key, m) for m in survived)]


# ---------------------------------------------------------------------------
# Running the tests against each mutant, in a scratch copy of the project
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the tests made of one mutant: killed, timeout (counts as killed) or survived."""

    mutant: Mutant
    target: str
    status: str
    seconds: float
    killer: str = ""

    @property
    def killed(self) -> bool:
        return self.status != "survived"


@dataclass
class Baseline:
    """The unmutated suites of one target: they must pass; their times set the mutants' limits."""

    target: Target
    ok: bool
    times: tuple[float, ...] = ()
    why: str = ""

    @property
    def seconds(self) -> float:
        return sum(self.times)

    @property
    def timeouts(self) -> tuple[float, ...]:
        return tuple(TIMEOUT_FACTOR * t + TIMEOUT_SLACK for t in self.times)


class Sandbox:
    """A scratch copy of the project, and test runs in it under ``PYTHONPATH=<copy>/src``."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = root
        self.scratch = scratch
        self.tree = scratch / "tree"
        self.basetemp = scratch / "basetemp"
        self.log = scratch / "pytest.log"

    def populate(self) -> int:
        """Copy the project's files as they are now (``git ls-files``); return how many."""
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=self.root,
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8")
        count = 0
        for name in filter(None, listed.split("\0")):
            src = self.root / name
            if not (src.is_file() or src.is_symlink()):
                continue  # deleted in the working tree
            dest = self.tree / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest, follow_symlinks=False)
            count += 1
        # Tests call the dev env's tools by path (ROOT/.venv/bin/inv, nox, actionlint): link
        # those scripts, never the env itself, so nothing run in the copy can change it.
        bin_dir = self.tree / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        for exe in sorted((self.root / ".venv" / "bin").iterdir()):
            if not exe.name.startswith(("python", "activate")):
                (bin_dir / exe.name).symlink_to(exe)
        return count

    def environ(self, token: str) -> dict[str, str]:
        environ = dict(os.environ)
        environ.pop("VIRTUAL_ENV", None)
        paths = [str(self.tree / "src"), *filter(None, [environ.get("PYTHONPATH")])]
        environ["PYTHONPATH"] = os.pathsep.join(paths)
        environ["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc must never stand for a mutant
        environ[TOKEN_VAR] = token
        return environ

    def check_imports(self, suite: Suite) -> str | None:
        """Why signal4 would not come from the copy for ``suite``'s interpreter, or None.

        Checked in the interpreter and in a child it starts, as the tests' subprocesses are.
        """
        code = (
            "import signal4, subprocess, sys\n"
            "print(signal4.__file__)\n"
            "child = [sys.executable, '-c', 'import signal4; print(signal4.__file__)']\n"
            "print(subprocess.run(child, capture_output=True, text=True, check=True).stdout)\n"
        )
        python = self.root / suite.python
        if not python.exists():
            return f"{suite.python} does not exist; build it with: nox -s {suite.env}"
        proc = subprocess.run(
            [str(python), "-c", code],
            cwd=self.tree,
            env=self.environ("check"),
            capture_output=True,
            text=True,
            check=False,
        )
        want = str(self.tree / "src")
        seen = proc.stdout.split()
        if proc.returncode != 0 or len(seen) != 2 or not all(p.startswith(want) for p in seen):
            return f"signal4 is not imported from the copy: {proc.stdout.strip()} {proc.stderr}"
        return None

    def command(self, suite: Suite) -> list[str]:
        cmd = [str(self.root / suite.python), "-m", "pytest", "-p", "no:cacheprovider", "-x"]
        cmd += ["-q", "--no-header", "--tb=line", f"--basetemp={self.basetemp}"]
        cmd += ["--env", suite.env]
        if suite.markers:
            cmd += ["-m", suite.markers]
        if suite.keyword:
            cmd += ["-k", suite.keyword]
        return [*cmd, *suite.tests]

    def run_suites(
        self, target: Target, timeouts: Sequence[float]
    ) -> tuple[int | None, list[float], str]:
        """Run the target's suites in order until one fails: (exit code, times, last log)."""
        times: list[float] = []
        code: int | None = 0
        log = ""
        for suite, limit in zip(target.suites, timeouts, strict=True):
            code, seconds, log = self.run_tests(suite, limit)
            times.append(seconds)
            if code != 0:
                break
        return code, times, log

    def run_tests(self, suite: Suite, timeout: float) -> tuple[int | None, float, str]:
        """Run ``suite`` in the copy: (exit code or None on timeout, seconds, log)."""
        token = uuid.uuid4().hex
        started = time.monotonic()
        with self.log.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                self.command(suite),
                cwd=self.tree,
                env=self.environ(token),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            code: int | None
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
                _kill_group(proc.pid)
                proc.wait()
            except BaseException:  # Ctrl-C: stop the run before anything else
                _kill_group(proc.pid)
                proc.wait()
                _sweep(token)
                raise
        seconds = time.monotonic() - started
        _sweep(token)
        return code, seconds, self.log.read_text(encoding="utf-8", errors="replace")

    def clean_bytecode(self) -> None:
        for cache in (self.tree / "src").rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _sweep(token: str) -> None:
    """SIGKILL the processes a test run left behind: those whose environment holds its token."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return
    needle = f"{TOKEN_VAR}={token}".encode()
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _killer(log: str) -> str:
    for line in log.splitlines():
        match = re.match(r"(FAILED|ERROR) (\S+)", line)
        if match:
            return match.group(2)
    return ""


def run_target(
    sandbox: Sandbox,
    baseline: Baseline,
    selected: Sequence[Mutant],
    on_done: Callable[[Verdict], None],
) -> list[Verdict]:
    """Write each mutant into the copy, run the target's tests, put the module back."""
    target = baseline.target
    module = sandbox.tree / target.path
    original = module.read_bytes()
    verdicts = []
    try:
        for mutant in selected:
            module.write_text(mutant.source, encoding="utf-8")
            try:
                code, times, log = sandbox.run_suites(target, baseline.timeouts)
                seconds = sum(times)
            finally:
                module.write_bytes(original)
                sandbox.clean_bytecode()
            if code is None:
                verdict = Verdict(mutant, target.name, "timeout", seconds, "timeout")
            elif code == 0:
                verdict = Verdict(mutant, target.name, "survived", seconds)
            else:
                verdict = Verdict(mutant, target.name, "killed", seconds, _killer(log))
            verdicts.append(verdict)
            on_done(verdict)
    finally:
        module.write_bytes(original)
    return verdicts


# ---------------------------------------------------------------------------
# Output: the console report and the record
# ---------------------------------------------------------------------------


def _percent(killed: int, total: int) -> float:
    return 100.0 * killed / total if total else 100.0


@dataclass
class Summary:
    """Everything a report needs, per target and overall."""

    targets: list[Target]
    baselines: dict[str, Baseline]
    verdicts: list[Verdict]
    threshold: float
    seconds: float = 0.0
    #: Every mutant of the targets was run (no --mutant filter).
    complete: bool = True

    def of(self, target: Target) -> list[Verdict]:
        return [v for v in self.verdicts if v.target == target.name]

    @property
    def killed(self) -> int:
        return sum(v.killed for v in self.verdicts)

    @property
    def total(self) -> int:
        return len(self.verdicts)

    @property
    def survivors(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.killed]

    def stale_allowances(self) -> list[tuple[str, str, str]]:
        """Allow-list entries of the modules run in full that matched none of their survivors."""
        if not self.complete:
            return []
        ran = {t.path for t in self.targets if t.name in self.baselines}
        ran -= {b.target.path for b in self.failed_baselines}
        survived = [v.mutant for v in self.survivors]
        return [key for key in unused_allowances(survived) if key[0] in ran]

    @property
    def failed_baselines(self) -> list[Baseline]:
        return [b for b in self.baselines.values() if not b.ok]

    @property
    def passed(self) -> bool:
        return (
            _percent(self.killed, self.total) >= self.threshold
            and all(allowed_reason(v.mutant) for v in self.survivors)
            and not self.failed_baselines
            and not self.stale_allowances()
        )


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, emoji=False, soft_wrap=True)


def print_report(console: Console, summary: Summary) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="mutants per module", title_justify="left")
    for column in ("module", "mutants", "killed", "timed out", "survived", "killed %"):
        table.add_column(column, justify="left" if column == "module" else "right")
    for target in summary.targets:
        baseline = summary.baselines.get(target.name)
        if baseline is not None and not baseline.ok:
            table.add_row(target.name, "-", "-", "-", "-", "[red]baseline failed[/]")
            continue
        got = summary.of(target)
        killed = sum(v.killed for v in got)
        timeouts = sum(v.status == "timeout" for v in got)
        table.add_row(
            target.name,
            str(len(got)),
            str(killed),
            str(timeouts),
            str(len(got) - killed),
            f"{_percent(killed, len(got)):.1f}",
        )
    console.print(table)
    for baseline in summary.failed_baselines:
        console.print(f"[red]baseline of {baseline.target.name} failed:[/] {escape(baseline.why)}")
    rate = _percent(summary.killed, summary.total)
    console.print(f"[bold]killed {summary.killed} of {summary.total} ({rate:.1f}%)[/]")
    if summary.survivors:
        console.print(f"survivors ({len(summary.survivors)}):")
    for v in summary.survivors:
        reason = allowed_reason(v.mutant)
        mark = f"[green]allowed:[/] {escape(reason)}" if reason else "[red]not allowed[/]"
        console.print(f"  [bold]{escape(v.mutant.id)}[/] {escape(v.mutant.description)}; {mark}")
        console.print(f"      - {escape(v.mutant.before)}")
        console.print(f"      + {escape(v.mutant.after)}")
    for path, operator, text in summary.stale_allowances():
        console.print(
            f"[red]allow-list entry that matched no survivor (delete it):[/] {path} {operator} "
            f"{text!r}"
        )
    verdict = "[green]pass[/]" if summary.passed else "[red]fail[/]"
    unallowed = sum(1 for v in summary.survivors if not allowed_reason(v.mutant))
    console.print(
        f"{verdict}: {rate:.1f}% killed (threshold {summary.threshold:g}%), "
        f"{unallowed} survivor(s) not on the allow-list; {summary.seconds:.0f} s"
    )


def _code(text: str) -> str:
    """``text`` as inline Markdown code that survives a table cell."""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


#: The record keeps its rows as JSON in this HTML comment, so that a later run can merge.
RECORD_DATA = "mutation-record-data"
_NO_ALLOWANCE = "**not on the allow-list: a test gap**"


@dataclass(frozen=True)
class RecordRun:
    """One run that produced rows of the record."""

    when: str  # UTC, "2026-12-01 07:50:12 UTC": it also names the run in the rows
    command: str
    seconds: float
    machine: str


@dataclass(frozen=True)
class RecordRow:
    """One module's line in the record, from one run."""

    module: str
    path: str
    functions: str
    tests: str
    mutants: int
    killed: int
    timeouts: int
    run: str  # RecordRun.when
    baseline_failed: bool = False
    #: sha256 of the module's source as it was mutated (to tell when the code moved on)
    source: str = ""

    @property
    def survived(self) -> int:
        return self.mutants - self.killed


@dataclass(frozen=True)
class RecordSurvivor:
    """A mutant that survived, as the record lists it."""

    module: str
    id: str
    description: str
    before: str
    after: str
    reason: str  # "" when it is not on the allow-list
    #: The mutated line and the two above it (what a multi-line allow-list entry matches).
    context: str = ""

    @property
    def allowed(self) -> bool:
        return bool(self.reason)

    def reasoned(self) -> RecordSurvivor:
        """This survivor with its reason from the allow-list as it is now (an entry added
        or dropped after the run counts: the run found the survivor, the list judges it)."""
        path, line, col, operator = self.id.rsplit(":", 3)
        mutant = Mutant(
            path,
            int(line),
            int(col),
            operator,
            self.description,
            self.before,
            self.after,
            "",
            self.context,
        )
        return dataclasses.replace(self, reason=allowed_reason(mutant) or "")


@dataclass
class Record:
    """The rows of tests/MUTATION.md: per module, each from the run that last ran it."""

    threshold: float = THRESHOLD
    runs: list[RecordRun] = field(default_factory=list)
    rows: list[RecordRow] = field(default_factory=list)
    survivors: list[RecordSurvivor] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return sum(r.killed for r in self.rows)

    @property
    def total(self) -> int:
        return sum(r.mutants for r in self.rows)

    @property
    def unallowed(self) -> int:
        return sum(not s.allowed for s in self.survivors)

    def missing(self) -> list[str]:
        """The targets with no row."""
        have = {r.module for r in self.rows}
        return [t.name for t in TARGETS if t.name not in have]

    @property
    def passed(self) -> bool:
        return (
            _percent(self.killed, self.total) >= self.threshold
            and not self.unallowed
            and not any(r.baseline_failed for r in self.rows)
            and not self.missing()
        )

    def merged(self, newer: Record) -> Record:
        """This record with ``newer``'s modules replaced (rows and survivors); runs no row
        names any more are dropped."""
        fresh = {r.module for r in newer.rows}
        rows = [r for r in self.rows if r.module not in fresh] + newer.rows
        order = {t.name: i for i, t in enumerate(TARGETS)}
        rows.sort(key=lambda r: (order.get(r.module, len(order)), r.module))
        survivors = [s for s in self.survivors if s.module not in fresh] + newer.survivors
        survivors.sort(key=lambda s: (order.get(s.module, len(order)), s.module))
        used = {r.run for r in rows}
        runs = [r for r in self.runs if r.when not in {n.when for n in newer.runs}]
        runs = sorted((r for r in [*runs, *newer.runs] if r.when in used), key=lambda r: r.when)
        return Record(newer.threshold, runs, rows, survivors)

    def to_json(self) -> str:
        data = {
            "threshold": self.threshold,
            "runs": [vars(r) for r in self.runs],
            "rows": [vars(r) for r in self.rows],
            "survivors": [vars(s) for s in self.survivors],
        }
        # ">" only occurs inside JSON strings: escaped, the comment cannot be closed early
        return json.dumps(data, indent=1).replace(">", "\\u003e")

    @classmethod
    def from_text(cls, text: str) -> Record:
        """The record kept in ``text`` (a record file); empty when it holds none."""
        match = re.search(rf"<!-- {RECORD_DATA}\n(.*?)\n-->", text, re.DOTALL)
        if match is None:
            return cls()
        data = json.loads(match.group(1))
        return cls(
            float(data.get("threshold", THRESHOLD)),
            [RecordRun(**r) for r in data.get("runs", [])],
            [RecordRow(**r) for r in data.get("rows", [])],
            [RecordSurvivor(**s) for s in data.get("survivors", [])],
        )


def _utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _source_hash(root: Path, target: Target) -> str:
    path = root / target.path
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else ""


def summary_record(summary: Summary, command: str, when: dt.datetime, root: Path = ROOT) -> Record:
    """The rows of one run: one per target it ran."""
    stamp = _utc(when)
    machine = (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}"
    )
    run = RecordRun(stamp, command, round(summary.seconds, 1), machine)
    rows = []
    for target in summary.targets:
        got = summary.of(target)
        baseline = summary.baselines.get(target.name)
        rows.append(
            RecordRow(
                module=target.name,
                path=target.path,
                functions=", ".join(target.only) or "all",
                tests="; ".join(suite.label for suite in target.suites),
                mutants=len(got),
                killed=sum(v.killed for v in got),
                timeouts=sum(v.status == "timeout" for v in got),
                run=stamp,
                baseline_failed=baseline is not None and not baseline.ok,
                source=_source_hash(root, target),
            )
        )
    survivors = [
        RecordSurvivor(
            v.target,
            v.mutant.id,
            v.mutant.description,
            v.mutant.before,
            v.mutant.after,
            allowed_reason(v.mutant) or "",
            v.mutant.context,
        )
        for v in summary.survivors
    ]
    return Record(summary.threshold, [run], rows, survivors)


def render_record(record: Record, root: Path = ROOT) -> str:
    """The Markdown of a record (tests/MUTATION.md), its data at the end."""
    rate = _percent(record.killed, record.total)
    changed = [
        r.module
        for r in record.rows
        if r.source
        and (t := next((t for t in TARGETS if t.name == r.module), None)) is not None
        and _source_hash(root, t) != r.source
    ]
    lines = [
        "# Mutation testing record",
        "",
        "Written by `tools/mutation.py --record` (`.venv/bin/nox -s mutation -- --record "
        "tests/MUTATION.md`, or `-- --module NAME --record tests/MUTATION.md` for one module: "
        "that replaces the module's row and survivors and keeps the others); rerun it rather "
        "than edit this file. Each row names the run that produced it. Survivors kept on "
        "purpose, and why, are the allow-list `ALLOWED` in `tools/mutation.py`; the reasons "
        "below are the allow-list's as of this file's last write.",
        "",
        f"- Result over all rows: **killed {record.killed} of {record.total} ({rate:.1f}%)**; "
        f"threshold {record.threshold:g}%; survivors not on the allow-list: "
        f"{record.unallowed}; {'pass' if record.passed else 'fail'}",
    ]
    if record.missing():
        lines.append(f"- Modules with no row yet: {', '.join(record.missing())}")
    if changed:
        lines.append(
            f"- Modules whose code changed after their row's run: {', '.join(changed)} "
            "(the row is for the code as it was then)"
        )
    lines.append("- Runs (which rows each produced):")
    for run in record.runs:
        mine = [r.module for r in record.rows if r.run == run.when]
        lines.append(
            f"  - {run.when}: {', '.join(mine)}; `{run.command}`; wall time "
            f"{run.seconds:.0f} s; {run.machine}"
        )
    lines += [
        "",
        "## Per module",
        "",
        "| module | file | functions | tests | mutants | killed | timed out | survived "
        "| killed % | run (UTC) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in record.rows:
        share = f"{_percent(row.killed, row.mutants):.1f}"
        if row.baseline_failed:
            share = "baseline failed"
        lines.append(
            f"| {row.module} | `{row.path}` | {row.functions} | {row.tests} | {row.mutants} | "
            f"{row.killed} | {row.timeouts} | {row.survived} | {share} | "
            f"{row.run.removesuffix(' UTC')} |"
        )
    lines += ["", "## Survivors", ""]
    if not record.survivors:
        lines.append("None.")
    else:
        lines += [
            "| mutant | mutation | line | mutated line | reason it survives |",
            "|---|---|---|---|---|",
        ]
        for s in record.survivors:
            what = s.description.replace("|", "\\|")
            reason = (s.reason or _NO_ALLOWANCE).replace("|", "\\|")
            lines.append(f"| `{s.id}` | {what} | {_code(s.before)} | {_code(s.after)} | {reason} |")
    lines += ["", f"<!-- {RECORD_DATA}", record.to_json(), "-->"]
    return "\n".join(lines) + "\n"


def record_text(
    summary: Summary,
    command: str,
    when: dt.datetime,
    previous: str | None = None,
    mutated: Path = ROOT,
) -> str:
    """The Markdown record of a run, merged into ``previous`` (the record file's text, if
    any): the modules this run ran get its rows, the others keep theirs. ``mutated`` is the
    tree whose modules were mutated (the scratch copy)."""
    newer = summary_record(summary, command, when, mutated)
    record = Record.from_text(previous or "").merged(newer)
    record.survivors = [s.reasoned() for s in record.survivors]
    return render_record(record)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/mutation.py",
        description="Mutation-test the core modules: killed K of N, per module, and survivors.",
    )
    names = ", ".join(t.name for t in TARGETS)
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help=f"only this target (repeatable): {names}, or its file",
    )
    parser.add_argument(
        "--mutant",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only mutants whose id contains PATTERN or matches it as a glob (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="merge the run into this record: the modules run get new rows, the others keep theirs",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"least killed share in percent for exit 0 (default {THRESHOLD:g})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch copy and print where it is"
    )
    return parser


def _select_targets(names: Sequence[str]) -> list[Target]:
    if not names:
        return list(TARGETS)
    chosen = []
    for name in names:
        match = [t for t in TARGETS if name in (t.name, t.path)]
        if not match:
            valid = ", ".join(t.name for t in TARGETS)
            raise ValueError(f"unknown module {name!r}; valid: {valid}")
        chosen += [t for t in match if t not in chosen]
    return chosen


def _wanted(mutant: Mutant, patterns: Sequence[str]) -> bool:
    return not patterns or any(
        p in mutant.id or fnmatch.fnmatchcase(mutant.id, p) for p in patterns
    )


def _list(console: Console, targets: Sequence[Target], patterns: Sequence[str]) -> int:
    from rich.markup import escape

    total = 0
    for target in targets:
        found = [m for m in target_mutants(target) if _wanted(m, patterns)]
        total += len(found)
        console.print(f"[bold]{target.name}[/] ({target.path}): {len(found)} mutants")
        for m in found:
            console.print(f"  {escape(m.id)}  {escape(m.description)}")
            console.print(f"      - {escape(m.before)}")
            console.print(f"      + {escape(m.after)}")
            reason = allowed_reason(m)
            if reason:
                console.print(f"      [green]allowed to survive:[/] {escape(reason)}")
    console.print(f"{total} mutants in {len(targets)} modules")
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or list) the mutants of the chosen targets; return the exit code."""
    from rich.markup import escape

    args = _parser().parse_args(argv)
    try:
        targets = _select_targets(args.module)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.record and args.mutant:
        print("error: --record needs every mutant of a module: drop --mutant", file=sys.stderr)
        return 2
    console = _console()
    if args.list:
        return _list(console, targets, args.mutant)

    # The tests run as from a terminal: a shell's background job starts with SIGINT and
    # SIGQUIT ignored, children inherit that, and the tests of Ctrl-C would fail on it.
    # SIGTERM ends the run as Ctrl-C does: the test run stopped, the copy removed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    run_started = dt.datetime.now(dt.UTC)
    ran = [t.name for t in targets]
    scratch = Path(tempfile.mkdtemp(prefix="signal4-mutation-"))
    sandbox = Sandbox(ROOT, scratch)
    try:
        count = sandbox.populate()
        console.print(f"copied {count} files to {sandbox.tree}")
        summary = Summary(targets, {}, [], args.threshold, complete=not args.mutant)
        plan: list[tuple[Baseline, list[Mutant]]] = []
        for target in targets:
            found = [m for m in target_mutants(target, sandbox.tree) if _wanted(m, args.mutant)]
            if not found:
                continue
            why = next(filter(None, map(sandbox.check_imports, target.suites)), None)
            times: list[float] = []
            if why is None:
                limits = [BASELINE_TIMEOUT] * len(target.suites)
                code, times, log = sandbox.run_suites(target, limits)
                if code != 0:
                    tail = "\n".join(log.strip().splitlines()[-5:])
                    why = f"the unmutated tests exit {code}: {tail}"
            baseline = Baseline(target, why is None, tuple(times), why or "")
            summary.baselines[target.name] = baseline
            took = f"{baseline.seconds:.1f} s"
            state = took if baseline.ok else f"[red]failed, skipped:[/] {escape(why or '')}"
            console.print(f"baseline {target.name}: {len(found)} mutants; {state}")
            if baseline.ok:
                plan.append((baseline, found))
        _run_plan(console, sandbox, plan, summary)
        summary.seconds = time.monotonic() - started
        print_report(console, summary)
        if args.record:
            command = shlex.join(["nox", "-s", "mutation", "--", *(argv or sys.argv[1:])])
            previous = args.record.read_text(encoding="utf-8") if args.record.exists() else None
            text = record_text(summary, command, run_started, previous, sandbox.tree)
            args.record.write_text(text, encoding="utf-8")
            console.print(f"record written to {args.record} (rows of {', '.join(ran)} replaced)")
        return 0 if summary.passed else 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        if args.keep:
            console.print(f"scratch copy kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_plan(
    console: Console,
    sandbox: Sandbox,
    plan: Sequence[tuple[Baseline, list[Mutant]]],
    summary: Summary,
) -> None:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    total = sum(len(found) for _baseline, found in plan)
    done = [0]
    if console.is_terminal:
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        bar = progress.add_task("mutants", total=total)
        killed = [0]

        def on_done(v: Verdict) -> None:
            killed[0] += v.killed
            progress.update(bar, advance=1, description=f"{v.target}: {killed[0]} killed")
            if not v.killed:
                progress.console.print(f"[yellow]survived[/] {escape(v.mutant.id)}")

        with progress:
            for baseline, found in plan:
                summary.verdicts += run_target(sandbox, baseline, found, on_done)
        return

    def on_line(v: Verdict) -> None:
        done[0] += 1
        killer = f" by {v.killer}" if v.killer else ""
        console.print(
            f"[{done[0]}/{total}] {escape(v.mutant.id)} {v.status}{escape(killer)} "
            f"({v.seconds:.1f} s)"
        )

    for baseline, found in plan:
        summary.verdicts += run_target(sandbox, baseline, found, on_line)


if __name__ == "__main__":
    sys.exit(main())
