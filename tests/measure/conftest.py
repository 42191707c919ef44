"""A tiny locked project whose env really holds pysbd: every launch way, end to end, in seconds.

Env alpha is synced for real (once per session); env beta is left unsynced.
"""

from __future__ import annotations

import pytest

from signal4.envs import layout, manifest, syncer
from tests.helpers import demo

MDEMO_TASKS = """
[[tool.signal4.tasks]]
name = "split"
env = "alpha"
module = "mdemo.split"

[[tool.signal4.tasks]]
name = "broken"
env = "alpha"
module = "mdemo.broken"

[[tool.signal4.tasks]]
name = "ghost"
env = "alpha"
module = "mdemo.ghost"

[[tool.signal4.tasks]]
name = "typed"
env = "beta"
module = "mdemo.typed"
"""

# A step in miniature: heavy import inside the functions, ready() imports the same.
SPLIT = """
import json, sys

def ready():
    import pysbd  # noqa: F401

def main(argv):
    if "--ready" in argv:
        ready()
        print(json.dumps({"status": "completed", "ready": True}))
        return 0
    import pysbd
    sentences = pysbd.Segmenter(language="en", clean=False).segment(" ".join(argv))
    print(json.dumps({"status": "completed", "sentences": sentences}))
    return 0

raise SystemExit(main(sys.argv[1:]))
"""
# A probe that forgets what the real run imports.
FORGETFUL = """
import json, sys
if "--ready" not in sys.argv:
    import pysbd  # noqa: F401
print(json.dumps({"status": "completed", "ready": True}))
"""
BROKEN = """
import sys
print("probe is about to fail", file=sys.stderr)
import no_such_package_anywhere
"""


@pytest.fixture(scope="session")
def mdemo(tmp_path_factory: pytest.TempPathFactory) -> manifest.Manifest:
    """A tiny locked project; env alpha synced for real, env beta left unsynced."""
    m = demo.write_project(
        tmp_path_factory.mktemp("mdemo"),
        "mdemo",
        MDEMO_TASKS,
        {
            "split": SPLIT,
            "broken": BROKEN,
            "typed": "import typing_extensions\n",
            "typed_ready": FORGETFUL,
        },
    )
    result = syncer.sync_one(m, layout.spec(m, "alpha"))
    assert result.ok, result.error
    return m
