"""A tiny two-env project, locked for real, for tests of sync, run and clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

from signal4.envs import manifest, venv

# The two envs every demo project has; a project adds its own task map.
_PYPROJECT = """
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11,<3.15"
dependencies = []

[project.optional-dependencies]
alpha = ["pysbd>=0.3"]
beta = ["typing-extensions>=4"]

[build-system]
requires = ["uv_build>=0.9,<0.14"]
build-backend = "uv_build"

[tool.uv]
python-downloads = "never"
environments = ["sys_platform == 'linux'", "sys_platform == 'darwin'"]

[tool.signal4]
[tool.signal4.envs.alpha]
[tool.signal4.envs.beta]
"""

DEMO_TASKS = """
[[tool.signal4.tasks]]
name = "hello"
env = "alpha"
module = "demo.hello"
timeout = 30
"""

# Echoes its arguments; "--invalid" makes it report invalid input.
HELLO = """
import json, sys
args = sys.argv[1:]
if "--invalid" in args:
    print(json.dumps({"status": "invalid_input", "error": "bad input"}))
    sys.exit(2)
print(json.dumps({"status": "completed", "python": sys.executable, "args": args}))
"""


def write_project(
    root: Path,
    name: str,
    tasks: str,
    modules: dict[str, str],
    pipeline: tuple[str, ...] = (),
) -> manifest.Manifest:
    """Write a two-env project ``name`` with ``tasks`` and ``modules``; lock and load it."""
    text = _PYPROJECT.format(name=name) + tasks
    if pipeline:
        stages = ", ".join(f'"{t}"' for t in pipeline)
        text = text.replace("[tool.signal4]\n", f"[tool.signal4]\npipeline = [{stages}]\n", 1)
    (root / "pyproject.toml").write_text(text)
    pkg = root / "src" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for module, code in modules.items():
        (pkg / f"{module}.py").write_text(code)
    subprocess.run([venv.find_uv(), "lock", "--project", str(root), "-q"], check=True)
    return manifest.load(root)


# Writes its pid where the test can see it, then sleeps: a step to time out or interrupt.
SLEEPY = """
import json, os, sys, time
open(os.environ["DEMO_MARKER"], "w").write(str(os.getpid()))
time.sleep(60)
print(json.dumps({"status": "completed"}))
"""

# Fails the way a step with a known cause does.
FAILING = """
import json, sys
print(json.dumps({"status": "failed", "error": "it broke"}))
sys.exit(1)
"""

SLEEPY_TASKS = """
[[tool.signal4.tasks]]
name = "sleepy"
env = "alpha"
module = "demo.sleepy"
timeout = 3

[[tool.signal4.tasks]]
name = "failing"
env = "alpha"
module = "demo.failing"
"""


def make_demo(root: Path) -> manifest.Manifest:
    """Write, lock and load the demo project under ``root``."""
    return write_project(root, "demo", DEMO_TASKS, {"hello": HELLO})
