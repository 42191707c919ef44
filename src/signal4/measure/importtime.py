"""Read the output of ``python -X importtime``: which modules loaded, in what order, at what cost.

Each ``import time:`` line on stderr is printed when an import *finishes*, indented by
its nesting depth, with its own (self) and cumulative time in microseconds. Children
therefore come before their parent; :func:`start_order` rebuilds the order in which
imports *started*, which is the order to replay them in (the "necessary floor").

Modules are sorted into three kinds by their top-level name: ``project`` (``signal4``),
``stdlib`` (:data:`sys.stdlib_module_names`) and ``third-party`` (everything else).
Standard library only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from signal4.envs.manifest import PACKAGE

PROJECT = "project"
STDLIB = "stdlib"
THIRD_PARTY = "third-party"
KINDS = (PROJECT, THIRD_PARTY, STDLIB)

_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")
#: Modules Python's own start-up may look for that are not in ``sys.stdlib_module_names``.
_STARTUP = frozenset({"sitecustomize", "usercustomize", "__main__"})


@dataclass(frozen=True)
class ImportRecord:
    """One finished import."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int

    @property
    def top(self) -> str:
        """The top-level package name."""
        return self.module.split(".", 1)[0]

    @property
    def kind(self) -> str:
        """``project`` (``signal4``), ``stdlib`` or ``third-party``."""
        return kind_of(self.module)


def kind_of(module: str, project: str = PACKAGE) -> str:
    """Return the kind of ``module`` by its top-level name (``project`` is our own package)."""
    top = module.split(".", 1)[0]
    if top == project:
        return PROJECT
    if top in sys.stdlib_module_names or top in _STARTUP or top.startswith("_sysconfigdata_"):
        return STDLIB
    return THIRD_PARTY


def parse(text: str) -> list[ImportRecord]:
    """Parse ``-X importtime`` stderr into records, in finishing order; other lines are ignored."""
    records = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            # The first level is indented by one space after the bar, then two per level.
            depth = max(0, (len(indent) - 1) // 2)
            records.append(ImportRecord(module, int(self_us), int(cumulative_us), depth))
    return records


def start_order(records: Sequence[ImportRecord]) -> list[ImportRecord]:
    """Return ``records`` in the order their imports started (pre-order of the import tree)."""
    # Finishing order is a post-order walk: a record's children are the deeper records
    # just before it. Rebuild each subtree, then emit parents before children.
    stack: list[tuple[ImportRecord, list[ImportRecord]]] = []
    for rec in records:
        children: list[ImportRecord] = []
        while stack and stack[-1][0].depth > rec.depth:
            child, grandchildren = stack.pop()
            children[:0] = [child, *grandchildren]
        stack.append((rec, children))
    ordered: list[ImportRecord] = []
    for rec, descendants in stack:
        ordered += [rec, *descendants]
    return ordered


def with_parents(
    records: Sequence[ImportRecord],
) -> list[tuple[ImportRecord, ImportRecord | None]]:
    """Return (record, the import it happened inside, or None) pairs in start order."""
    pairs: list[tuple[ImportRecord, ImportRecord | None]] = []
    stack: list[ImportRecord] = []
    for rec in start_order(records):
        while stack and stack[-1].depth >= rec.depth:
            stack.pop()
        pairs.append((rec, stack[-1] if stack else None))
        stack.append(rec)
    return pairs


def third_party_roots(records: Sequence[ImportRecord], project: str = PACKAGE) -> list[str]:
    """Return the third-party modules imported by non-third-party code, in start order.

    These are the imports a task's own code (or the stdlib on its behalf) asks for, at
    their full names: ``sqlalchemy.orm``, not only ``sqlalchemy``, whose ``__init__``
    does not load it. Importing them in this order repeats all the third-party work.
    """
    seen: dict[str, None] = {}
    for rec, parent in with_parents(records):
        if kind_of(rec.module, project) != THIRD_PARTY:
            continue
        if parent is None or kind_of(parent.module, project) != THIRD_PARTY:
            seen.setdefault(rec.module, None)
    return list(seen)


def work_roots(records: Sequence[ImportRecord], project: str = PACKAGE) -> list[str]:
    """Return the modules the task's work needs, without our code: the *work imports*.

    That is :func:`third_party_roots` plus the standard-library modules our own code imports
    directly (``json``, ``argparse``, ``wave`` ...), in start order. Importing them in this
    order repeats everything but our own modules' work; what a task takes beyond it is our
    code's cost.
    """
    seen: dict[str, None] = {}
    for rec, parent in with_parents(records):
        kind = kind_of(rec.module, project)
        parent_kind = kind_of(parent.module, project) if parent is not None else None
        needed = (kind == THIRD_PARTY and parent_kind != THIRD_PARTY) or (
            kind == STDLIB and parent_kind == PROJECT
        )
        if needed:
            seen.setdefault(rec.module, None)
    return list(seen)


def third_party_tops(records: Sequence[ImportRecord], project: str = PACKAGE) -> list[str]:
    """Return the third-party top-level packages loaded, in the order they were first started."""
    seen: dict[str, None] = {}
    for rec in start_order(records):
        if kind_of(rec.module, project) == THIRD_PARTY:
            seen.setdefault(rec.top, None)
    return list(seen)


def self_time_by_kind(records: Iterable[ImportRecord], project: str = PACKAGE) -> dict[str, int]:
    """Return the self time (µs) spent importing each kind of module; the sum is the total."""
    totals = dict.fromkeys(KINDS, 0)
    for rec in records:
        totals[kind_of(rec.module, project)] += rec.self_us
    return totals


def total_us(records: Iterable[ImportRecord]) -> int:
    """Return the time (µs) spent in all imports: the sum of the outermost records' cumulative."""
    return sum(rec.cumulative_us for rec in records if rec.depth == 0)


def top_cumulative(
    records: Iterable[ImportRecord],
    *,
    limit: int = 10,
    kind: str | None = None,
    project: str = PACKAGE,
) -> list[ImportRecord]:
    """Return the ``limit`` records with the largest cumulative time (of one ``kind``, if given)."""
    chosen = [rec for rec in records if kind is None or kind_of(rec.module, project) == kind]
    return sorted(chosen, key=lambda rec: rec.cumulative_us, reverse=True)[:limit]


def by_package(records: Iterable[ImportRecord]) -> dict[str, int]:
    """Return self time (µs) summed per top-level package, largest first."""
    totals: dict[str, int] = {}
    for rec in records:
        totals[rec.top] = totals.get(rec.top, 0) + rec.self_us
    return dict(sorted(totals.items(), key=lambda item: item[1], reverse=True))
