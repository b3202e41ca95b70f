"""Refuse regular expressions that can run away, and bound what they are run on.

Python's ``re`` backtracks, so a pattern like ``(a+)+$`` takes exponential time
on a crafted subject.  A rule must never hang the daemon, so two defences:

1. At load, ``runaway_reason`` walks the parsed pattern and refuses
   - backreferences (``\\1``, ``(?P=name)``, ``(?(1)…)``),
   - a quantifier nested inside another unbounded (or ≥ 10) quantifier,
     e.g. ``(a+)+``, ``(.*a){20}``, ``(\\w+\\s?)*``,
   - a repeated alternation whose branches can start with the same character,
     e.g. ``(x|x)*y``, ``(a|ab)+``,
   - quantifiers over items that can match the same character whose bounds
     multiply beyond ``MAX_LINE_CHARS`` (an unbounded one counts as the line
     length), e.g. ``a.*b.*c``, ``error.*\\d+`` or ``a.*b.{0,50}``: each one
     multiplies the work.  ``a.{0,15}b.{0,15}c`` and ``(\\d{1,3}\\.){3}`` pass.
     Use ``subject_all``/``body_all`` keywords for "contains A and B".
   A possessive inner quantifier (``(a++)+``) never backtracks and is allowed.
2. At match time, ``bounded_search`` runs the pattern line by line (a body
   regex never spans lines, like grep) on at most ``MAX_MATCH_CHARS`` (64 k)
   characters of input and ``MAX_LINE_CHARS`` (1,000) of each line.  What the
   load check lets through is at worst quadratic in the line length, so one
   search over a hostile 64 kB body stays well under a second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MAX_MATCH_CHARS = 64 * 1024
MAX_LINE_CHARS = 1000
_LARGE = 10
_COST_BUDGET = MAX_LINE_CHARS
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)
_SAMPLE = "aA0_ -.,:/\n\t中@"

CharTest = Callable[[str], bool]


def bounded_search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of ``pattern`` in a line of ``text``, within the size limits."""
    for line in text[:MAX_MATCH_CHARS].splitlines():
        if found := pattern.search(line[:MAX_LINE_CHARS]):
            return found
    return None


def runaway_reason(pattern: str) -> str | None:
    """Why ``pattern`` is refused as a possible runaway, or None if it is safe enough."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    literals = "".join(chr(av) for op, av in _walk(parsed) if op is sre.LITERAL and isinstance(av, int))
    checker = _Checker(_SAMPLE + literals)
    return checker.check(parsed)


def _walk(items: Iterable[tuple[Any, Any]]) -> Iterable[tuple[Any, Any]]:
    for op, av in items:
        yield op, av
        for child in _children(op, av):
            yield from _walk(child)


def _children(op: Any, av: Any) -> list[Any]:
    if op in _REPEATS or op is sre.POSSESSIVE_REPEAT:
        return [av[2]]
    if op is sre.SUBPATTERN:
        return [av[3]]
    if op is sre.ATOMIC_GROUP:
        return [av]
    if op is sre.BRANCH:
        return list(av[1])
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return [av[1]]
    if op is sre.GROUPREF_EXISTS:
        return [branch for branch in av[1:] if branch is not None]
    return []


def _unbounded(maximum: int) -> bool:
    return maximum is sre.MAXREPEAT or maximum == sre.MAXREPEAT


class _Checker:
    """One walk over a parsed pattern, collecting the first reason to refuse it."""

    def __init__(self, sample: str) -> None:
        self.sample = sample

    def check(self, parsed: Any) -> str | None:
        quantified: list[tuple[int, CharTest]] = []
        for op, av in _walk(parsed):
            if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
                return "backreferences are not allowed (they can make matching run away)"
            if op in _REPEATS:
                if reason := self._repeat_reason(av):
                    return reason
                if av[1] > 1:
                    cap = MAX_LINE_CHARS if _unbounded(av[1]) else min(av[1], MAX_LINE_CHARS)
                    quantified.append((cap, self._first(list(av[2]))))
        if self._backtracking_cost(quantified) > _COST_BUDGET:
            return (
                "quantifiers that can match the same characters multiply the work (like a.*b.*c);"
                " bound them (e.g. .{0,15}) or use keyword lists"
            )
        return None

    def _backtracking_cost(self, quantified: list[tuple[int, CharTest]]) -> int:
        """Worst product of the caps of quantifiers that overlap one another (per start position)."""
        worst = 1
        for cap, test in quantified:
            product = cap
            for other_cap, other in quantified:
                if other is not test and self._overlap(test, other):
                    product *= other_cap
            worst = max(worst, product)
        return worst

    def _overlap(self, first: CharTest, other: CharTest) -> bool:
        return any(first(ch) and other(ch) for ch in self.sample)

    def _repeat_reason(self, av: Any) -> str | None:
        maximum, body = av[1], av[2]
        if not (_unbounded(maximum) or maximum >= _LARGE):
            return None
        for op, inner in _walk(body):
            if op in _REPEATS and (_unbounded(inner[1]) or inner[1] >= _LARGE):
                return "nested quantifiers (like (a+)+ or (.*a){20}) can run away"
            if op is sre.BRANCH and self._branches_overlap(inner[1]):
                return "a repeated alternation whose branches can match the same text (like (x|x)*) can run away"
        return None

    def _branches_overlap(self, branches: list[Any]) -> bool:
        tests = [self._first(list(branch)) for branch in branches]
        return any(self._overlap(first, other) for i, first in enumerate(tests) for other in tests[i + 1 :])

    def _first(self, items: list[Any]) -> CharTest:
        """A test for the characters the sequence ``items`` can start with (over-approximated)."""
        for op, av in items:
            if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
                continue
            return self._item_first(op, av)
        return lambda ch: True  # can match the empty string: overlaps with anything

    def _item_first(self, op: Any, av: Any) -> CharTest:
        if op is sre.LITERAL:
            return lambda ch: ch.casefold() == chr(av).casefold()
        if op is sre.NOT_LITERAL:
            return lambda ch: ch != chr(av)
        if op is sre.IN:
            return _class_test(av)
        if op is sre.SUBPATTERN:
            return self._first(list(av[3]))
        if op is sre.BRANCH:
            tests = [self._first(list(b)) for b in av[1]]
            return lambda ch: any(t(ch) for t in tests)
        if op in _REPEATS or op is sre.POSSESSIVE_REPEAT:
            return self._first(list(av[2])) if av[0] > 0 else (lambda ch: True)
        return lambda ch: True  # ANY, categories outside a class, anything unusual


_CATEGORIES: dict[Any, CharTest] = {
    sre.CATEGORY_DIGIT: str.isdigit,
    sre.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdigit(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    sre.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
    sre.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
}


def _literal_test(char: str) -> CharTest:
    folded = char.casefold()
    return lambda ch: ch.casefold() == folded


def _range_test(low: int, high: int) -> CharTest:
    return lambda ch: low <= ord(ch) <= high


def _class_test(items: list[Any]) -> CharTest:
    negate = any(op is sre.NEGATE for op, _ in items)
    tests: list[CharTest] = []
    for op, av in items:
        if op is sre.LITERAL:
            tests.append(_literal_test(chr(av)))
        elif op is sre.RANGE:
            tests.append(_range_test(av[0], av[1]))
        elif op is sre.CATEGORY:
            tests.append(_CATEGORIES.get(av, lambda ch: True))
    if negate:
        return lambda ch: not any(t(ch) for t in tests)
    return lambda ch: any(t(ch) for t in tests)
