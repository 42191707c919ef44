"""lockgraph: what an env reaches through uv.lock on a platform and python, and wheel tags.

Small hand-written locks, shaped as uv writes them, so that each rule is seen on its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from signal4.envs import lockgraph

LINUX_11 = lockgraph.marker_environment("linux", "x86_64", 11)
LINUX_13 = lockgraph.marker_environment("linux", "x86_64", 13)


def lock(*packages: dict[str, Any], root: dict[str, Any] | None = None) -> dict[str, Any]:
    """A lock of ``packages`` plus the project (``signal4``) with ``root``'s fields."""
    project = {"name": "signal4", "version": "0.1.0", **(root or {})}
    return {"requires-python": ">=3.11, <3.15", "package": [project, *packages]}


def test_a_package_forked_by_python_is_picked_per_python() -> None:
    """Two versions of one package, each for some pythons (uv's resolution markers)."""
    old = {
        "name": "numpy",
        "version": "1.26.4",
        "resolution-markers": ["python_full_version < '3.12'"],
    }
    new = {
        "name": "numpy",
        "version": "2.2.0",
        "resolution-markers": ["python_full_version >= '3.12'"],
    }
    graph = lockgraph.LockGraph(
        lock(old, new, root={"optional-dependencies": {"a": [{"name": "numpy"}]}})
    )
    assert graph.reachable("a", LINUX_11) == {"numpy": {"1.26.4"}}
    assert graph.reachable("a", LINUX_13) == {"numpy": {"2.2.0"}}
    # listed the other way round, the same answer
    graph = lockgraph.LockGraph(
        lock(new, old, root={"optional-dependencies": {"a": [{"name": "numpy"}]}})
    )
    assert graph.reachable("a", LINUX_11) == {"numpy": {"1.26.4"}}
    assert graph.reachable("a", LINUX_13) == {"numpy": {"2.2.0"}}


def test_a_pinned_version_is_taken_as_pinned() -> None:
    """A dependency naming its version gets that one, whatever the resolution markers say."""
    only = {
        "name": "numpy",
        "version": "1.26.4",
        "resolution-markers": ["python_full_version < '3.12'"],
    }
    dep = {"name": "numpy", "version": "1.26.4"}
    graph = lockgraph.LockGraph(lock(only, root={"optional-dependencies": {"a": [dep]}}))
    assert graph.reachable("a", LINUX_13) == {"numpy": {"1.26.4"}}


def test_a_dependency_cycle_ends_and_extras_of_a_dependency_are_followed() -> None:
    requests = {
        "name": "requests",
        "version": "2.32.0",
        "dependencies": [{"name": "urllib3"}],
        "optional-dependencies": {"socks": [{"name": "pysocks"}]},
    }
    urllib3 = {"name": "urllib3", "version": "2.2.0", "dependencies": [{"name": "requests"}]}
    pysocks = {"name": "PySocks", "version": "1.7.1"}
    root = {
        "dependencies": [{"name": "requests"}],
        "optional-dependencies": {"net": [{"name": "requests", "extra": ["socks"]}]},
    }
    graph = lockgraph.LockGraph(lock(requests, urllib3, pysocks, root=root))
    assert graph.reachable("other", LINUX_11) == {"requests": {"2.32.0"}, "urllib3": {"2.2.0"}}
    assert graph.reachable("net", LINUX_11) == {
        "requests": {"2.32.0"},
        "urllib3": {"2.2.0"},
        "pysocks": {"1.7.1"},
    }


def test_a_dependency_whose_marker_fails_is_not_reached() -> None:
    mlx = {"name": "mlx", "version": "0.20"}
    dep = {"name": "mlx", "marker": "sys_platform == 'darwin'"}
    graph = lockgraph.LockGraph(lock(mlx, root={"optional-dependencies": {"t": [dep]}}))
    assert graph.reachable("t", LINUX_11) == {}
    assert graph.reachable("t", lockgraph.marker_environment("darwin", "arm64", 12)) == {
        "mlx": {"0.20"}
    }


def test_a_lock_without_the_project_says_to_lock() -> None:
    with pytest.raises(ValueError, match="run: inv lock"):
        lockgraph.LockGraph({"package": [{"name": "other", "version": "1"}]})


@pytest.mark.parametrize(
    ("wheel", "minor", "fits"),
    [
        # abi3: built for 3.12, runs on 3.12 and later, never before
        ("a-1-cp312-abi3-manylinux_2_17_x86_64.whl", 11, False),
        ("a-1-cp312-abi3-manylinux_2_17_x86_64.whl", 12, True),
        ("a-1-cp312-abi3-manylinux_2_17_x86_64.whl", 14, True),
        # not abi3: that python only
        ("a-1-cp312-cp312-manylinux_2_17_x86_64.whl", 13, False),
        ("a-1-cp313-cp313-manylinux_2_17_x86_64.whl", 13, True),
        # another machine
        ("a-1-cp313-cp313-manylinux_2_17_aarch64.whl", 13, False),
    ],
)
def test_wheel_tags_for_each_python(wheel: str, minor: int, fits: bool) -> None:
    assert lockgraph.wheel_fits(wheel, "linux", "x86_64", minor) is fits
