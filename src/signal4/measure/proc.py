"""One child process of ``inv measure``: run it, time it, and read its ready line.

Both the timed launches (:mod:`signal4.measure.launch`) and the ``-X importtime`` runs
(:mod:`signal4.measure.profile`) go through :func:`timed_run`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from signal4.measure.errors import ProbeError
from signal4.stepkit import protocol

#: The line the profiling wrapper prints last on stderr: the top-level modules loaded.
LOADED_MARK: Final = "signal4-measure-loaded:"
STDERR_TAIL_CHARS: Final = 1500


def stderr_tail(text: str) -> str:
    """The end of a stderr text, without ``-X importtime`` lines."""
    lines = [
        line for line in text.splitlines() if not line.startswith(("import time:", LOADED_MARK))
    ]
    return "\n".join(lines)[-STDERR_TAIL_CHARS:].strip()


def timed_run(
    argv: Sequence[str], environ: Mapping[str, str] | None, cwd: Path | None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``argv`` to the end with its output captured; return it and its wall time (ns)."""
    started = time.perf_counter_ns()
    proc = subprocess.run(
        list(argv),
        env=dict(environ) if environ is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return proc, time.perf_counter_ns() - started


def expect_ready(stdout: str, stderr: str) -> None:
    """Raise :class:`ProbeError` unless ``stdout`` ends with a result line that says ready."""
    try:
        result = protocol.parse_last_line(stdout)
    except protocol.ProtocolError as exc:
        raise ProbeError(f"{exc}; stderr tail:\n{stderr_tail(stderr)}") from None
    if not result.get("ready"):
        raise ProbeError(f"the probe's result line has no 'ready': {json.dumps(result)[:200]}")


def failed_exit(returncode: int, stderr: str) -> ProbeError:
    """The error of a child that exited ``returncode`` (not 0)."""
    return ProbeError(f"exit code {returncode}; stderr tail:\n{stderr_tail(stderr)}")
