"""The layout's rules, read from the code: floors, one error path, no exits in the library."""

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
