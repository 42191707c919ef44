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


def test_the_packed_pass_lets_through_only_the_prints_near_the_floor() -> None:
    """Every print the packed scores let through is scored again exactly: a packed score
    off by more than the bound (a column written wrong in place) costs a rescore each."""
    from signal4.voices.index import PACKED_ERROR

    rows = {k: person(k) for k in range(120)}
    index = Index(192)
    for key, vec in rows.items():
        _put(index, key, vec)
    index.search(prints.unit(person(1)), 0.5)  # the columns, built
    for k in range(6):  # fewer than a rebuild: written into the columns in place
        rows[k] = heard(rows[60 + k], 500 + k)
        _put(index, k, rows[k])
    rescored: list[int] = []
    real = index._float
    index._float = lambda lane: (rescored.append(lane), real(lane))[1]  # type: ignore[method-assign]
    for k in (0, 3, 60, 61):
        rescored.clear()
        query = prints.unit(rows[k])
        floor = 0.6
        got = [key for _s, key in index.search(query, floor)]
        assert got == _brute(query, rows, floor)
        near = {
            i
            for i, key in enumerate(index.keys)
            if prints.dot(query, prints.unit(rows[key])) >= floor - 2 * PACKED_ERROR
        }
        assert set(rescored) <= near, (k, sorted(set(rescored) - near))
    assert len(index) == 120


def test_a_small_index_is_searched_too() -> None:
    rows = {k: person(k) for k in range(3)}
    index = Index(192)
    for key, vec in rows.items():
        _put(index, key, vec)
    query = prints.unit(heard(rows[2], 1))
    assert [key for _s, key in index.search(query, 0.3)] == _brute(query, rows, 0.3)


def test_a_print_of_another_size_is_refused() -> None:
    import pytest

    index = Index(192)
    vec = prints.unit(person(1))
    short = prints.unit(vec[:191])
    with pytest.raises(ValueError, match="a print of 192 numbers in an index of 192"):
        index.put(1, prints.to_bytes(short), prints.pack(vec))  # the exact copy too short
    with pytest.raises(ValueError, match="a print of 191 numbers in an index of 192"):
        index.put(1, prints.to_bytes(vec), prints.pack(short))
    assert len(index) == 0
