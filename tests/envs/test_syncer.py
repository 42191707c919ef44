"""syncer: what a check-only run reports for an env this platform cannot build."""

from __future__ import annotations

import pytest

from signal4.envs import syncer
from signal4.envs import venv as envs
from signal4.envs.manifest import Manifest


def test_check_names_why_an_unsupported_env_is_skipped(project_manifest: Manifest) -> None:
    unsupported = [e for e in project_manifest.envs.values() if not e.supported()]
    if not unsupported:
        pytest.skip("every env of the manifest is built on this platform")
    specs = [envs.spec(project_manifest, e.name) for e in unsupported]
    for result in syncer.check_all(project_manifest, specs):
        assert result.action == "skipped"
        assert result.error == "not supported on this platform"
        assert result.ok  # skipping what cannot be built here is not a failure
