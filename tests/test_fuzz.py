"""Fuzz: hostile argv for every step's parser, and hostile payloads for the worker's decoder.

Each case runs in a child process under an address-space limit, so a repeat of the NaN
loop (or any unbounded allocation) fails fast instead of eating the machine. The inputs
come from a seeded generator: the same cases every run, thousands of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from signal4.envs import manifest
from tests.conftest import ROOT

#: The child's address-space limit (the dev interpreter plus the step modules need ~300 MB).
LIMIT_BYTES = 1024**3

PARSERS = textwrap.dedent(
    """
    import importlib, json, random, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from signal4.stepkit.step import InvalidInput, Step, _HelpRequested

    HOSTILE = ["nan", "-nan", "inf", "-inf", "1e309", "-1", "0", "-0.0", "1e-320", "",
               " ", "../x", "..", "/", "a" * 5000, "\\u0000", "\\udcff", "--", "-", "--=",
               "9" * 400, "0x10", "1_000", "٣", "NaN", "Infinity", "--content=../etc"]
    rng = random.Random(20261201)
    counts = {{}}
    for module in {modules!r}:
        step = getattr(importlib.import_module(module), "STEP")
        assert isinstance(step, Step), module
        parser = step.parser()
        flags = [o for a in parser._actions for o in a.option_strings] + ["--bogus", "-z"]
        ok = refused = 0
        for _ in range(400):
            argv = []
            for _ in range(rng.randint(0, 6)):
                argv.append(rng.choice(flags) if rng.random() < 0.6 else rng.choice(HOSTILE))
            try:
                parser.parse_args(argv)
                ok += 1
            except (InvalidInput, _HelpRequested):
                refused += 1
        counts[module] = [ok, refused]
    print(json.dumps(counts))
    """
)

PAYLOADS = textwrap.dedent(
    """
    import json, random, resource
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from signal4.stepkit.step import InvalidInput
    from signal4.workers.worker import split_payload

    rng = random.Random(20261202)
    ATOMS = [None, True, 0, -1, 1.5, float("nan"), "", "x", "--content", [], {{}}, [[]],
             {{"status": "completed"}}, ["--content", "a"], [1, 2], "\\udcff"]

    def value(depth=0):
        if depth > 3 or rng.random() < 0.5:
            return rng.choice(ATOMS)
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {{str(rng.random()): value(depth + 1) for _ in range(rng.randint(0, 3))}}

    ok = refused = 0
    for _ in range(3000):
        payload = [value() for _ in range(rng.randint(0, 3))]
        extra = {{}} if rng.random() < 0.8 else {{"k": value()}}
        try:
            previous, argv = split_payload(payload, extra)
            assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
            assert previous is None or isinstance(previous, dict)
            ok += 1
        except InvalidInput:
            refused += 1
    print(json.dumps([ok, refused]))
    """
)


def _run(code: str) -> str:
    got = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    return got.stdout.strip().splitlines()[-1]


def test_every_step_parser_takes_hostile_argv_without_a_traceback() -> None:
    m = manifest.load(ROOT)
    modules = [t.module for t in m.tasks.values() if t.module.startswith(manifest.STEP_PACKAGE)]
    counts = json.loads(_run(PARSERS.format(limit=LIMIT_BYTES, modules=modules)))
    assert set(counts) == set(modules)
    for module, (ok, refused) in counts.items():
        assert ok + refused == 400, module
        assert refused > 0, module  # the fuzz reaches the refusals, not only good argv


@pytest.mark.parametrize("limit", [LIMIT_BYTES])
def test_the_worker_payload_decoder_takes_any_json_without_a_traceback(limit: int) -> None:
    ok, refused = json.loads(_run(PAYLOADS.format(limit=limit)))
    assert ok + refused == 3000
    assert ok > 0 and refused > 0
