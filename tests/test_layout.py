"""The layout's rules, read from the code: floors, no loops, one error path, no exits in the
library. ARCHITECTURE.md draws the same floors."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

SRC = ROOT / "src" / "signal4"


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        out.append((name.removesuffix(".__init__"), ast.parse(path.read_text(encoding="utf-8"))))
    return out


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


#: Each package (or top-level module) of ``signal4`` and its floor (ARCHITECTURE.md): a
#: module imports only from lower floors, or from its own package.
FLOORS = {
    "codes": 0,
    "cpu": 0,
    "signals": 0,
    "console": 0,
    "errors": 1,
    "content": 2,
    "envs": 2,
    "stepkit": 3,
    "voices": 3,
    "run": 4,
    "processing_steps": 4,
    "services": 4,
    "workers": 5,
    "measure": 6,
    "readme": 6,
    "commands": 7,
}


def _part(module: str) -> str:
    """``signal4.run.batch`` -> ``run``; ``signal4`` itself -> ``""``."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def _ours(tree: ast.Module, name: str) -> set[str]:
    """The ``signal4`` modules ``name`` imports (relative imports resolved), at any depth."""
    found: set[str] = set()
    package = name if name.endswith("__init__") else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("signal4."))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.startswith("signal4."):
                # the module, and each name that may be a module of it (``from x import y``)
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif base == "signal4":
                found.update(f"signal4.{a.name}" for a in node.names)
    return found


def test_every_package_has_a_floor() -> None:
    parts = {_part(name) for name, _tree in _modules()} - {""}
    assert parts == set(FLOORS), "give new packages a floor here and in ARCHITECTURE.md"


def test_nothing_imports_upward_or_sideways() -> None:
    """A module imports from lower floors or its own package only (inside functions too)."""
    wrong = []
    for name, tree in _modules():
        here = _part(name)
        if not here:
            continue
        for imported in _ours(tree, name):
            there = _part(imported)
            if there and there != here and FLOORS[there] >= FLOORS[here]:
                wrong.append(f"{name} (floor {FLOORS[here]}) -> {imported} (floor {FLOORS[there]})")
    assert wrong == []


def test_no_package_imports_itself_in_a_loop() -> None:
    graph: dict[str, set[str]] = {}
    for name, tree in _modules():
        graph[name] = {
            i for i in _ours(tree, name) if i != name and _part(i) == _part(name) and _part(i)
        }
    modules = set(graph)
    for edges in graph.values():  # "from signal4.envs import venv" names a module, not a name
        edges.intersection_update(modules)
    state: dict[str, int] = {}
    loops: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loops.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert loops == []


def test_no_library_module_imports_the_command_layer() -> None:
    offenders = [
        name
        for name, tree in _modules()
        if not name.startswith("signal4.commands")
        and any(
            i == "signal4.commands" or i.startswith("signal4.commands.") for i in _imports(tree)
        )
    ]
    assert offenders == []


def test_the_lowest_floors_import_nothing_of_ours_above_them() -> None:
    floors = {
        "signal4.codes": set(),
        "signal4.cpu": set(),
        "signal4.errors": {"signal4.codes"},
        "signal4.envs.manifest": {"signal4.errors"},
        "signal4.stepkit.protocol": {"signal4.codes"},
    }
    trees = dict(_modules())
    for name, allowed in floors.items():
        ours = {i for i in _imports(trees[name]) if i.startswith("signal4")}
        above = {i for i in ours if not any(i == a or i.startswith(a + ".") for a in allowed)}
        assert above == set(), name


def test_no_sys_exit_in_the_library() -> None:
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "exit":
                base = node.value
                assert not (isinstance(base, ast.Name) and base.id == "sys"), name


def test_every_user_error_class_is_a_signal4_error() -> None:
    from signal4.content.store import InvalidContentId
    from signal4.envs.layout import EnvError
    from signal4.envs.manifest import ManifestError, UnknownNameError
    from signal4.errors import Signal4Error
    from signal4.workers.broker import BrokerError
    from signal4.workers.wire import BrokerUnavailable, WorkerError

    assert UnknownNameError("task", "x", ["y"]).code == 2
    for cls in (
        ManifestError,
        EnvError,
        InvalidContentId,
        BrokerError,
        WorkerError,
    ):
        assert issubclass(cls, Signal4Error), cls
        assert cls("x").code == 2
    assert BrokerUnavailable("x").code == 3
