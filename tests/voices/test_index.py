"""The pure-Python search finds exactly what a float search finds, after changes too."""

from __future__ import annotations

import random

from signal4.voices import prints
from signal4.voices.index import Index
from tests.voices.helpers import heard, person


def _brute(query: list[float], rows: dict[int, list[float]], floor: float) -> list[int]:
    scored = [(prints.dot(query, vec), key) for key, vec in rows.items()]
    return [key for score, key in sorted(scored, reverse=True) if score >= floor]


def _put(index: Index, key: int, vec: list[float]) -> None:
    index.put(key, prints.to_bytes(prints.unit(vec)), prints.pack(prints.unit(vec)))


def test_the_search_returns_what_a_float_search_returns() -> None:
    rng = random.Random(7)
    rows = {k: person(k) for k in range(300)}
    rows.update({300 + k: heard(rows[k], 1000 + k) for k in range(40)})  # near others
    index = Index(192)
    for key, vec in rows.items():
        _put(index, key, vec)
    for trial in range(30):
        query = heard(rows[rng.randrange(340)], trial) if trial % 2 else person(5000 + trial)
        for floor in (0.1, 0.3, 0.6):
            got = [key for _score, key in index.search(prints.unit(query), floor)]
            assert got == _brute(query, rows, floor), (trial, floor)
    # changed and added rows are searched as they are now (in place, then rebuilt)
    for n in (3, 20):
        for k in range(n):
            rows[k] = person(9000 + 100 * n + k)
            _put(index, k, rows[k])
        rows[1000 + n] = person(7000 + n)
        _put(index, 1000 + n, rows[1000 + n])
        for k in (0, n - 1, 1000 + n, 150):
            query = heard(rows[k], 77 + k)
            assert [key for _s, key in index.search(query, 0.5)] == _brute(query, rows, 0.5)


def test_an_empty_index_finds_nothing() -> None:
    assert Index(192).search(person(1), 0.0) == []
