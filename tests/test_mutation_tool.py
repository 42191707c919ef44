"""tools/mutation.py: each operator on small snippets, what is never mutated, stable ids."""

from __future__ import annotations

import ast
import textwrap

import pytest

from tests.conftest import ROOT
from tools import mutation
from tools.mutation import Mutant


def _mutants(code: str, only: tuple[str, ...] = ()) -> list[Mutant]:
    return mutation.mutants(textwrap.dedent(code).lstrip("\n"), "m.py", only)


def _by_op(code: str) -> dict[str, list[str]]:
    """operator -> the mutated lines it makes, in order."""
    out: dict[str, list[str]] = {}
    for m in _mutants(code):
        out.setdefault(m.operator, []).append(m.after)
    return out


@pytest.mark.parametrize(
    ("line", "operator", "after"),
    [
        ("x = a < b", "lt-to-le", "x = a <= b"),
        ("x = a <= b", "le-to-lt", "x = a < b"),
        ("x = a > b", "gt-to-ge", "x = a >= b"),
        ("x = a >= b", "ge-to-gt", "x = a > b"),
        ("x = a == b", "eq-to-ne", "x = a != b"),
        ("x = a != b", "ne-to-eq", "x = a == b"),
        ("x = a in b", "in-to-notin", "x = a not in b"),
        ("x = a not in b", "notin-to-in", "x = a in b"),
        ("x = a is b", "is-to-isnot", "x = a is not b"),
        ("x = a is not b", "isnot-to-is", "x = a is b"),
        ("x = a and b", "and-to-or", "x = a or b"),
        ("x = a or b or c", "or-to-and", "x = a and b and c"),
        ("x = not a", "drop-not", "x = a"),
        ("x = not (a or b)", "drop-not", "x = (a or b)"),
        ("x = True", "true-to-false", "x = False"),
        ("x = False", "false-to-true", "x = True"),
        ("x = 0", "int-plus-one", "x = 1"),
        ("x = -7", "int-plus-one", "x = -8"),
        ("x = a + b", "add-to-sub", "x = a - b"),
        ("x = a - b", "sub-to-add", "x = a + b"),
        ("x += 2", "add-to-sub", "x -= 2"),
        ("x -= a", "sub-to-add", "x += a"),
        ("f(a)", "call-to-pass", "pass"),
    ],
)
def test_each_operator_makes_the_expected_line(line: str, operator: str, after: str) -> None:
    made = _by_op(line)
    assert after in made[operator], made


def test_statement_operators() -> None:
    code = """
    def f(xs):
        for x in xs:
            if x:
                break
            else:
                continue
        return xs
    """
    made = _by_op(code)
    assert made["break-to-continue"] == ["continue"]
    assert made["continue-to-break"] == ["break"]
    assert made["return-none"] == ["return None"]
    assert made["negate-if"] == ["if not (x):"]


def test_a_comparison_chain_mutates_each_operator_apart() -> None:
    made = _by_op("ok = 0 < x <= 9")
    assert made["lt-to-le"] == ["ok = 0 <= x <= 9"]
    assert made["le-to-lt"] == ["ok = 0 < x < 9"]


def test_the_mutated_module_is_the_intended_tree_and_the_rest_is_untouched() -> None:
    code = textwrap.dedent(
        """
        def f(a, b):  # a comment that stays
            if (
                a < b  # not < this one
                and b
            ):
                return a + b
            return None
        """
    ).lstrip("\n")
    for m in mutation.mutants(code, "m.py"):
        ast.parse(m.source)  # valid Python
        changed = [
            i
            for i, (x, y) in enumerate(zip(code.splitlines(), m.source.splitlines(), strict=False))
            if x != y
        ]
        assert changed, m.id
        assert "# a comment that stays" in m.source
        if m.operator == "lt-to-le":
            assert "a <= b  # not < this one" in m.source


def test_return_none_and_negate_if_are_not_made_where_they_change_nothing() -> None:
    made = _by_op(
        """
        def f(x):
            if not x:
                return None
            if x == 1:
                return
            return x
        """
    )
    # `if not x` is drop-not's; `if x == 1` is eq-to-ne's; `return None` and `return` stay
    assert "negate-if" not in made
    assert made["drop-not"] == ["if x:"]
    assert made["eq-to-ne"] == ["if x != 1:"]
    assert made["return-none"] == ["return None"]
    assert len(made["return-none"]) == 1


def test_docstrings_strings_annotations_and_decorators_are_untouched() -> None:
    code = '''
    """Module docstring with < and True."""
    import functools
    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        from os import PathLike

    LIMIT: int = 3
    NAME = "a < b and True"


    @functools.lru_cache(maxsize=128)
    def f(x: int = 1, y: "list[int] | None" = None) -> dict[str, bool]:
        """Docstring: 1 + 1 == 2."""
        return {f"{x + 1}": True}


    if __name__ == "__main__":
        f(0)
    '''
    made = _by_op(code)
    # what is mutated: the value of LIMIT, the default of x, and f's body (not in the f-string)
    assert made == {
        "int-plus-one": [
            "LIMIT: int = 4",
            'def f(x: int = 2, y: "list[int] | None" = None) -> dict[str, bool]:',
        ],
        "return-none": ["return None"],
        "true-to-false": ['return {f"{x + 1}": False}'],
    }


def test_logging_and_print_calls_are_not_mutated() -> None:
    made = _by_op(
        """
        import logging
        log = logging.getLogger(__name__)
        def f(x, console):
            print(x > 1)
            log.info("x is %s", x == 2)
            logging.warning("w")
            console.print(x)
            x.save()
        """
    )
    assert made == {"call-to-pass": ["pass"]}  # x.save() only


def test_the_pragma_skips_its_line() -> None:
    made = _by_op(
        """
        a = 1 < 2  # pragma: no mutate
        b = 1 < 2
        """
    )
    assert made["lt-to-le"] == ["b = 1 <= 2"]
    assert all("a =" not in after for afters in made.values() for after in afters)


def test_only_restricts_to_the_named_functions_and_methods() -> None:
    code = """
    def keep(x):
        return x + 1

    def skip(x):
        return x - 1

    class C:
        def m(self):
            return True

        def n(self):
            return False
    """
    assert {m.line for m in _mutants(code, ("keep",))} == {2}
    assert {m.after for m in _mutants(code, ("C.m",))} == {"return None", "return False"}
    with pytest.raises(ValueError, match="'nope'"):
        _mutants(code, ("nope",))


def test_ids_are_stable_unique_and_name_file_line_column_operator() -> None:
    code = "def f(a, b):\n    return a + b + 1 < 2\n"
    first = mutation.mutants(code, "src/x.py")
    again = mutation.mutants(code, "src/x.py")
    assert [m.id for m in first] == [m.id for m in again]
    assert len({m.id for m in first}) == len(first)
    ids = {m.id for m in first}
    assert "src/x.py:2:5:return-none" in ids
    assert "src/x.py:2:16:add-to-sub" in ids  # the two `+` are named by their right operands
    assert "src/x.py:2:20:add-to-sub" in ids
    assert all(m.description and "\n" not in m.description for m in first)


def test_sequence_concatenation_is_not_flipped_to_a_subtraction() -> None:
    made = _by_op(
        """
        def f(a, cmd):
            cmd += ["--x", a]
            return "p" + a, [a] + cmd, (a,) + (1,), f"{a}" + a
        """
    )
    assert "add-to-sub" not in made


def test_the_allow_list_matches_by_file_operator_and_text_near_the_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = """
    def f(a, b, c):
        if c:  # the guard
            return a < b
        f(a)
        f(b)
        return a < c
    """
    first, second = [x for x in _mutants(code) if x.operator == "lt-to-le"]

    def allow(text: str, path: str = "m.py", operator: str = "lt-to-le") -> list[bool]:
        monkeypatch.setattr(mutation, "ALLOWED", {(path, operator, text): "why"})
        return [mutation.allowed_reason(m) == "why" for m in (first, second)]

    assert allow("a <= b") == [True, False]  # one line: as mutated
    assert allow("a <= c") == [False, True]
    assert allow("a < b") == [False, False]  # not as written: that names no change
    assert allow("if c:  # the guard\nreturn a < b") == [True, False]  # lines, as written
    assert allow("# the guard") == [False, False]  # one line: the mutated line only
    assert allow("a <= b", path="other.py") == [False, False]
    assert allow("a <= b", operator="lt-to-gt") == [False, False]
    assert mutation.unused_allowances([first, second]) == [("m.py", "lt-to-gt", "a <= b")]
    calls = [x for x in _mutants(code) if x.operator == "call-to-pass"]
    monkeypatch.setattr(mutation, "ALLOWED", {("m.py", "call-to-pass", "f(b)"): "why"})
    # a call replaced by pass: the line as written names it
    assert [mutation.allowed_reason(m) == "why" for m in calls] == [False, True]


def test_every_target_names_files_that_exist() -> None:
    for target in mutation.TARGETS:
        assert (ROOT / target.path).is_file(), target.path
        assert target.suites, target.name
        for suite in target.suites:
            assert all((ROOT / t).is_file() for t in suite.tests), suite.tests
        if target.only:
            assert mutation.target_mutants(target, ROOT), target.name  # the names exist


def test_the_record_lists_survivors_with_their_reason() -> None:
    target = mutation.TARGETS[0]
    (m,) = [x for x in _mutants("x = a | b < c") if x.operator == "lt-to-le"]
    summary = mutation.Summary(
        [target],
        {target.name: mutation.Baseline(target, True, 1.0)},
        [mutation.Verdict(m, target.name, "survived", 1.0)],
        90.0,
    )
    import datetime as dt

    text = mutation.record_text(summary, "nox -s mutation", dt.datetime(2026, 1, 2, 3, 4, 5))
    assert "killed 0 of 1 (0.0%)" in text
    assert "`x = a \\| b <= c`" in text  # a table cell: the pipe escaped
    assert "not on the allow-list" in text
    assert not summary.passed


def _summary(target: mutation.Target, killed: int, survivors: int) -> mutation.Summary:
    """A run of ``target`` alone: ``killed`` killed mutants and ``survivors`` survived."""
    made = [x for x in _mutants("x = a < b < c < d < e < f") if x.operator == "lt-to-le"]
    verdicts = [
        mutation.Verdict(m, target.name, "killed" if i < killed else "survived", 1.0)
        for i, m in enumerate(made[: killed + survivors])
    ]
    return mutation.Summary(
        [target],
        {target.name: mutation.Baseline(target, True, (1.0,))},
        verdicts,
        90.0,
        seconds=12.0,
    )


def test_a_record_of_one_module_replaces_its_rows_and_keeps_the_others() -> None:
    import datetime as dt

    first, second = mutation.TARGETS[0], mutation.TARGETS[1]
    at_one = dt.datetime(2026, 1, 2, 1, 0, 0, tzinfo=dt.UTC)
    at_two = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    at_three = dt.datetime(2026, 1, 3, 0, 0, 0, tzinfo=dt.UTC)

    text = mutation.record_text(_summary(first, 3, 1), "run one", at_one)
    text = mutation.record_text(_summary(second, 4, 0), "run two", at_two, previous=text)
    # both modules' rows, each with the time of its own run, and the total over both
    assert "killed 7 of 8 (87.5%)" in text
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in text.splitlines()
        if line.startswith(f"| {first.name} |") or line.startswith(f"| {second.name} |")
    }
    assert rows[first.name].endswith("| 4 | 3 | 0 | 1 | 75.0 | 2026-01-02 01:00:00 |")
    assert rows[second.name].endswith("| 4 | 4 | 0 | 0 | 100.0 | 2026-01-02 03:04:05 |")
    # the header says which run made which rows
    assert f"2026-01-02 01:00:00 UTC: {first.name}; `run one`" in text
    assert f"2026-01-02 03:04:05 UTC: {second.name}; `run two`" in text
    assert text.count("`x = a < b < c < d <= e < f`") == 1  # the survivor, in its table

    # the first module again: its row and survivors are replaced, the second's stay
    text = mutation.record_text(_summary(first, 2, 0), "run three", at_three, previous=text)
    assert "killed 6 of 6 (100.0%)" in text
    assert "run one" not in text  # no row comes from it any more
    assert f"2026-01-03 00:00:00 UTC: {first.name}; `run three`" in text
    assert f"2026-01-02 03:04:05 UTC: {second.name}; `run two`" in text
    assert "d <= e" not in text
    record = mutation.Record.from_text(text)
    assert [(r.module, r.killed, r.mutants) for r in record.rows] == [
        (first.name, 2, 2),
        (second.name, 4, 4),
    ]
    assert record.missing() == [t.name for t in mutation.TARGETS[2:]]
    assert "Modules with no row yet" in text
    assert not record.passed  # some modules have no row


def test_a_record_without_data_is_replaced_and_record_needs_every_mutant() -> None:
    import datetime as dt

    target = mutation.TARGETS[0]
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    text = mutation.record_text(_summary(target, 1, 0), "run", when, previous="# old notes\n")
    assert "killed 1 of 1 (100.0%)" in text
    assert "old notes" not in text
    assert mutation.main(["--record", "x.md", "--mutant", "foo"]) == 2


def test_a_record_judges_every_survivor_by_the_allow_list_of_its_last_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime as dt

    first, second = mutation.TARGETS[0], mutation.TARGETS[1]
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    monkeypatch.setattr(mutation, "ALLOWED", {})
    text = mutation.record_text(_summary(first, 3, 1), "run one", when)
    assert "survivors not on the allow-list: 1" in text
    # the survivor is found equivalent and listed; the next write (of another module) says so
    key = ("m.py", "lt-to-le", "d <= e")
    monkeypatch.setattr(mutation, "ALLOWED", {key: "equivalent, for a reason"})
    text = mutation.record_text(_summary(second, 1, 0), "run two", when, previous=text)
    assert "survivors not on the allow-list: 0" in text
    assert "| equivalent, for a reason |" in text
