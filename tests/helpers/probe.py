"""Does a task's ready probe import what a real run of it imports?

``inv measure`` times ``python -m <module> --ready``; these checks keep that probe honest.
Each env session calls :func:`assert_probe_covers` for its tasks, so the real run happens
in the task's own env, on real input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from signal4.envs import manifest
from signal4.measure import profile

ROOT = Path(__file__).resolve().parents[2]


def assert_probe_covers(
    task: str,
    *real_args: str,
    python: str | Path | None = None,
    module: str | None = None,
    environ: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> list[str]:
    """Run ``task`` for real and as ``--ready``, both under ``-X importtime``.

    Fails if the real run fails or loads a third-party package the probe does not; returns
    the real run's third-party packages so the caller can assert the expected ones.
    """
    if module is None:
        module = manifest.load(ROOT).task(task).module
    cov = profile.probe_coverage(
        python or sys.executable, module, list(real_args), environ=environ, cwd=cwd
    )
    assert cov.real.returncode == 0, cov.real.stderr[-3000:]
    assert cov.probe.returncode == 0, cov.probe.stderr[-3000:]
    assert json.loads(cov.probe.stdout.splitlines()[-1]).get("ready") is True
    assert not cov.missing, f"{task}'s probe does not import what a real run does: {cov.missing}"
    return cov.real.third_party(cov.project)
