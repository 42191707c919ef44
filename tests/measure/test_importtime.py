"""Parsing ``python -X importtime`` output: records, start order, kinds, totals."""

from __future__ import annotations

import subprocess
import sys

from signal4.measure import importtime
from signal4.measure.importtime import PROJECT, STDLIB, THIRD_PARTY

# A trimmed real trace: children finish (and print) before their parents.
SAMPLE = """\
import time: self [us] | cumulative | imported package
import time:       147 |        147 |   _io
import time:       316 |        463 | _frozen_importlib_external
some warning line that is not an import
import time:       100 |        100 |       numpy._utils
import time:       200 |        300 |     numpy._core
import time:       400 |        700 |   numpy
import time:        50 |         50 |   signal4.stepkit.protocol
import time:        30 |        780 | signal4.stepkit.step
import time:      1000 |       1000 |   yaml
import time:        10 |       1010 | signal4.content.settings
"""


def test_parse_reads_self_cumulative_and_depth() -> None:
    records = importtime.parse(SAMPLE)
    assert [r.module for r in records] == [
        "_io",
        "_frozen_importlib_external",
        "numpy._utils",
        "numpy._core",
        "numpy",
        "signal4.stepkit.protocol",
        "signal4.stepkit.step",
        "yaml",
        "signal4.content.settings",
    ]
    by_name = {r.module: r for r in records}
    assert (by_name["numpy"].self_us, by_name["numpy"].cumulative_us) == (400, 700)
    assert [
        by_name[m].depth for m in ("signal4.stepkit.step", "numpy", "numpy._core", "numpy._utils")
    ] == [0, 1, 2, 3]


def test_start_order_puts_parents_before_children() -> None:
    ordered = [r.module for r in importtime.start_order(importtime.parse(SAMPLE))]
    assert ordered == [
        "_frozen_importlib_external",
        "_io",
        "signal4.stepkit.step",
        "numpy",
        "numpy._core",
        "numpy._utils",
        "signal4.stepkit.protocol",
        "signal4.content.settings",
        "yaml",
    ]


def test_kinds_and_third_party_tops_in_start_order() -> None:
    records = importtime.parse(SAMPLE)
    assert importtime.kind_of("signal4.content.state") == PROJECT
    assert importtime.kind_of("json.decoder") == STDLIB
    assert importtime.kind_of("sqlalchemy.orm") == THIRD_PARTY
    assert importtime.third_party_tops(records) == ["numpy", "yaml"]


def test_totals_split_by_kind_add_up() -> None:
    records = importtime.parse(SAMPLE)
    split = importtime.self_time_by_kind(records)
    assert split == {PROJECT: 90, THIRD_PARTY: 1700, STDLIB: 463}
    assert importtime.total_us(records) == 463 + 780 + 1010 == sum(split.values())
    assert [r.module for r in importtime.top_cumulative(records, limit=2)] == [
        "signal4.content.settings",
        "yaml",
    ]
    assert [r.module for r in importtime.top_cumulative(records, limit=5, kind=PROJECT)] == [
        "signal4.content.settings",
        "signal4.stepkit.step",
        "signal4.stepkit.protocol",
    ]
    assert importtime.by_package(records)["numpy"] == 700


def test_parse_a_real_trace_of_this_interpreter() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import json, email.message"],
        capture_output=True,
        text=True,
        check=True,
    )
    records = importtime.parse(proc.stderr)
    modules = {r.module for r in records}
    assert {"json", "json.decoder", "email.message"} <= modules
    assert all(r.kind == STDLIB for r in records)
    # Every record appears exactly once in start order, and each package starts before its parts.
    ordered = [r.module for r in importtime.start_order(records)]
    assert sorted(ordered) == sorted(r.module for r in records)
    assert ordered.index("json") < ordered.index("json.decoder")
    # Each printed figure is rounded to a microsecond on its own: allow 1 µs per record.
    split_sum = sum(importtime.self_time_by_kind(records).values())
    assert abs(importtime.total_us(records) - split_sum) <= len(records)


def test_roots_are_third_party_imports_made_by_our_code_or_the_stdlib() -> None:
    # sqlalchemy.orm is not loaded by sqlalchemy's __init__: the project imports it itself.
    trace = """\
import time:       100 |        100 |     sqlalchemy.util
import time:       200 |        300 |   sqlalchemy
import time:       300 |        300 |     sqlalchemy.orm.base
import time:       100 |        400 |   sqlalchemy.orm
import time:        50 |        750 | signal4.content.state
import time:        10 |         10 |     yaml.reader
import time:        20 |         30 |   yaml
import time:         5 |         35 | logging.config
"""
    records = importtime.parse(trace)
    pairs = {r.module: (p.module if p else None) for r, p in importtime.with_parents(records)}
    assert pairs["sqlalchemy.orm"] == "signal4.content.state"
    assert pairs["sqlalchemy.orm.base"] == "sqlalchemy.orm"
    assert pairs["signal4.content.state"] is None
    assert importtime.third_party_roots(records) == ["sqlalchemy", "sqlalchemy.orm", "yaml"]
    assert importtime.third_party_tops(records) == ["sqlalchemy", "yaml"]


def test_work_roots_add_the_stdlib_modules_our_own_code_imports() -> None:
    trace = """\
import time:        10 |         10 |     gettext
import time:       100 |        110 |   argparse
import time:        20 |         20 |     json.decoder
import time:        30 |         50 |   json
import time:        10 |         10 |       wave
import time:        40 |         50 |     imageio_ffmpeg
import time:        50 |        110 |   signal4.stepkit.media
import time:        50 |        320 | signal4.processing_steps.convert
import time:         5 |          5 | runpy
"""
    records = importtime.parse(trace)
    # in start order; not what the stdlib or a library imports on its own behalf (gettext,
    # json.decoder, wave), nor what runs before our code (runpy)
    assert importtime.work_roots(records) == ["argparse", "json", "imageio_ffmpeg"]
    assert importtime.third_party_roots(records) == ["imageio_ffmpeg"]
