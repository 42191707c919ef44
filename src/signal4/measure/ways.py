"""The launch ways of ``inv measure``: one registry entry per way, and nothing else to edit.

What is timed is a task's **ready probe**, ``python -m <task module> --ready``: it imports
exactly what a real run imports, prints one result line and exits (see
:mod:`signal4.stepkit.step`). Each entry of :data:`REGISTRY` says how its way builds the
launch (argument list and environment), whether that launch must print the ready line,
its column in the report, its help text (``inv measure --help`` is built from it) and
whether it needs the full env. Adding a way is adding an entry here.

``full-uv``
    The original way: ``uv run --project <root> --locked --all-extras --no-default-groups
    python -m <module> --ready`` with ``UV_PROJECT_ENVIRONMENT=envs/full/.venv``. uv checks
    the lock and the env on every launch, as the original worker's plain ``uv run`` did.
    ``--locked`` does the same check but refuses to rewrite ``uv.lock`` if it is out of date
    (plain ``uv run`` would relock); ``--no-default-groups`` keeps uv from installing the dev
    group into the full env. Otherwise identical work.
``full-direct``
    The full env's interpreter, directly.
``sub-uv``
    The design note's way: ``uv run --project <root> --locked --extra <env>
    --no-default-groups python -m <module> --ready`` with
    ``UV_PROJECT_ENVIRONMENT=envs/<env>/.venv``.
``sub-direct``
    The dispatcher's way (:func:`signal4.run.dispatch.command`): the sub-env's interpreter.
    Every ratio is taken against this way (:data:`REFERENCE`).
``floor-pass``
    The sub-env's interpreter running ``-c pass``: Python's own start-up.
``floor-imports``
    The *necessary floor*: the sub-env's interpreter importing nothing but the task's
    *work imports*: the third-party modules the probe's code imported (full names:
    ``numpy.linalg``, not only ``numpy``) and the standard-library modules our own code
    imported, in the order it started them (:func:`floor_code`). The list comes from the
    probe's own ``-X importtime`` output, never from a hand-kept list.
``warm``
    Not a launch (its entry has no builder): the time from submitting ``signal4.ping`` for
    the task to an idle warm worker of its env (``inv worker <env>``) to its "step ready"
    reply, over the broker. Skipped with a note when no broker or worker answers. Target: a
    p50 of :data:`WARM_TARGET_MS` ms or less. It has a report table of its own.

Light on purpose: ``tasks.py`` imports this module to build its help text, so it needs the
standard library and :mod:`signal4.envs.manifest` only (env specs are typing-only here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from signal4.measure.errors import MeasureError

if TYPE_CHECKING:
    from signal4.envs.layout import Venv

FULL_UV: Final = "full-uv"
FULL_DIRECT: Final = "full-direct"
SUB_UV: Final = "sub-uv"
SUB_DIRECT: Final = "sub-direct"
FLOOR_PASS: Final = "floor-pass"
FLOOR_IMPORTS: Final = "floor-imports"
WARM: Final = "warm"
#: The way every ratio is taken against.
REFERENCE: Final = SUB_DIRECT

#: Sub-direct should reach ready within this factor of the necessary floor.
TARGET_RATIO: Final = 1.15
#: The warm way's target p50, in milliseconds.
WARM_TARGET_MS: Final = 20.0

#: The report tables a way can be a column of.
LAUNCHES_TABLE: Final = "every launch way"
FLOORS_TABLE: Final = "floors"


@dataclass(frozen=True)
class Launch:
    """One way of starting one task: an argument list and its environment."""

    way: str
    argv: tuple[str, ...]
    environ: Mapping[str, str] = field(repr=False)
    #: Whether the launch must print a ready result line (floors print nothing).
    expects_ready: bool = True


@dataclass(frozen=True)
class LaunchContext:
    """What every way's builder may use to launch one task (resolved by the caller)."""

    root: Path
    uv: str
    module: str
    sub: Venv
    full: Venv
    #: The dispatcher's child environment (:func:`signal4.run.dispatch.child_environ`).
    environ: Mapping[str, str] = field(repr=False)
    #: The dispatcher's own argument list for the probe (:func:`signal4.run.dispatch.command`).
    dispatched: tuple[str, ...]
    #: The third-party modules of the necessary floor, in start order.
    floor_modules: tuple[str, ...] = ()

    @property
    def probe(self) -> tuple[str, ...]:
        """The interpreter arguments of the ready probe."""
        return ("-m", self.module, "--ready")


#: A way's launch for one task: its argument list and environment.
Builder = Callable[[LaunchContext], tuple[tuple[str, ...], Mapping[str, str]]]


@dataclass(frozen=True)
class Way:
    """One launch way: how it launches, what it must print, where the report shows it."""

    name: str
    #: One line for ``inv measure --help``.
    help: str
    #: Builds the launch; None for a way that is not a launch (``warm``, timed over the broker).
    build: Builder | None
    #: Its column title, and the table it is a column of (None: it has a table of its own).
    column: str = ""
    table: str | None = None
    #: Whether the launch must print the ready result line (the floors print nothing).
    expects_ready: bool = True
    #: Runs in the full env: dropped, with a note, when that env is not up to date.
    full_env: bool = False

    @property
    def is_launch(self) -> bool:
        """Whether this way starts a process (every way but ``warm``)."""
        return self.build is not None

    def launch(self, ctx: LaunchContext) -> Launch:
        """Return this way's launch of the task ``ctx`` describes."""
        if self.build is None:
            raise ValueError(f"way {self.name!r} is not a launch")
        argv, environ = self.build(ctx)
        return Launch(self.name, argv, environ, self.expects_ready)


def floor_code(modules: Sequence[str]) -> str:
    """Return the ``-c`` program of the necessary floor: import ``modules``, in order."""
    if not modules:
        return "pass"
    return f"import importlib\nfor name in {list(modules)!r}:\n    importlib.import_module(name)\n"


def _uv_run(ctx: LaunchContext, env: Venv) -> tuple[tuple[str, ...], Mapping[str, str]]:
    selection = ("--all-extras",) if env.all_extras else ("--extra", env.name)
    argv = (ctx.uv, "run", "--project", str(ctx.root), "--locked", *selection)
    return (
        (*argv, "--no-default-groups", "python", *ctx.probe),
        {**ctx.environ, "UV_PROJECT_ENVIRONMENT": str(env.venv)},
    )


REGISTRY: dict[str, Way] = {
    way.name: way
    for way in (
        Way(
            FULL_UV,
            "`uv run` in the monolithic full env (the original worker's way)",
            lambda ctx: _uv_run(ctx, ctx.full),
            column="full uv run",
            table=LAUNCHES_TABLE,
            full_env=True,
        ),
        Way(
            FULL_DIRECT,
            "the full env's interpreter, directly",
            lambda ctx: ((str(ctx.full.python), *ctx.probe), ctx.environ),
            column="full direct",
            table=LAUNCHES_TABLE,
            full_env=True,
        ),
        Way(
            SUB_UV,
            "`uv run` in the task's env (the design note's way)",
            lambda ctx: _uv_run(ctx, ctx.sub),
            column="sub uv run",
            table=LAUNCHES_TABLE,
        ),
        Way(
            SUB_DIRECT,
            "the task's env's interpreter (the dispatcher's way; every ratio is to it)",
            lambda ctx: (ctx.dispatched, ctx.environ),
            column="sub direct",
            table=LAUNCHES_TABLE,
        ),
        Way(
            FLOOR_PASS,
            "`python -c pass` in the task's env (Python's own start-up)",
            lambda ctx: ((str(ctx.sub.python), "-c", "pass"), ctx.environ),
            column="-c pass",
            table=FLOORS_TABLE,
            expects_ready=False,
        ),
        Way(
            FLOOR_IMPORTS,
            "the task's env importing only the modules outside our code that the probe's code "
            "imported (the floor)",
            lambda ctx: ((str(ctx.sub.python), "-c", floor_code(ctx.floor_modules)), ctx.environ),
            column="floor",
            table=FLOORS_TABLE,
            expects_ready=False,
        ),
        Way(
            WARM,
            "a ping answered by an idle `inv worker` of the env (needs a broker)",
            None,
        ),
    )
}


def all_ways() -> tuple[Way, ...]:
    """Every way, in the registry's (canonical) order."""
    return tuple(REGISTRY.values())


def names() -> tuple[str, ...]:
    """Every way's name, in canonical order."""
    return tuple(REGISTRY)


def get(name: str) -> Way:
    """The way called ``name``; raise :class:`MeasureError` listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise MeasureError(f"unknown way {name!r}; valid ways: {', '.join(REGISTRY)}") from None


def select(chosen: Sequence[str]) -> list[str]:
    """Return the chosen ways (all by default) in canonical order; reject unknown names."""
    for name in chosen:
        get(name)
    return [name for name in REGISTRY if not chosen or name in chosen]


def in_table(table: str) -> tuple[Way, ...]:
    """The ways that are columns of ``table``, in canonical order."""
    return tuple(way for way in REGISTRY.values() if way.table == table)


def help_text() -> str:
    """The help of ``inv measure --ways``: every way with its one line."""
    listed = "; ".join(f"{way.name}: {way.help}" for way in REGISTRY.values())
    return f"Only this launch way; repeatable (default: all). {listed}."
