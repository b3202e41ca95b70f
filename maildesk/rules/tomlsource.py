"""Parse TOML text and say on which line each table and key was written.

``tomllib`` gives values without positions, so semantic problems ("unknown
field 'subjct_any'") would have no line.  ``SourceMap`` makes a small scan of
the text: the line of every table header (counting ``[[rule]]`` occurrences so
rule N maps to its own header) and of every ``key =`` inside it.  It is a
locator for error messages, not a second TOML parser: when it cannot find a
key it falls back to the line of the enclosing table.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")

MAX_TOML_DEPTH = 32  # levels of tables, arrays and inline tables; the shipped files use 4
MAX_TOML_VALUES = 100_000  # keys plus array items of one file; the shipped rules.toml has a few hundred

Section = tuple[str, int | None]  # (dotted table name, occurrence of its array root)


def _clean(part: str) -> str:
    return part.strip().strip("\"'")


def _dotted(raw: str) -> str:
    return ".".join(_clean(p) for p in raw.split("."))


@dataclass
class SourceMap:
    """Lines of tables and keys in one TOML text (1-based)."""

    path: str
    text: str
    _tables: dict[Section, int] = field(default_factory=dict)
    _keys: dict[tuple[Section, str], int] = field(default_factory=dict)
    _lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.text.splitlines()
        counts: dict[str, int] = {}
        section: Section = ("", None)
        for number, line in enumerate(self._lines, start=1):
            header = _HEADER.match(line)
            if header:
                name = _dotted(header.group(2))
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                section = (name, self._occurrence(name, counts))
                self._tables.setdefault(section, number)
                continue
            key = _KEY.match(line)
            if key:
                self._keys.setdefault((section, _dotted(key.group(1))), number)

    @staticmethod
    def _occurrence(name: str, counts: dict[str, int]) -> int | None:
        for root, count in counts.items():
            if name == root or name.startswith(root + "."):
                return count
        return None

    def table(self, name: str, index: int | None = None) -> int:
        """Line of ``[name]`` (or of the index-th ``[[root]]`` it belongs to); 1 if absent."""
        if (name, index) in self._tables:
            return self._tables[(name, index)]
        parent, _, _ = name.rpartition(".")
        if parent:
            if (found := self._key_line(parent, index, name.rpartition(".")[2])) is not None:
                return found
            return self.table(parent, index)
        return 1

    def _key_line(self, table: str, index: int | None, key: str) -> int | None:
        return self._keys.get(((table, index), key))

    def key(self, table: str, key: str, index: int | None = None) -> int:
        """Line of ``key =`` (or of the sub-table ``[table.key]``) inside ``[table]``, else of the table."""
        found = self._key_line(table, index, key)
        if found is None:
            found = self._tables.get((f"{table}.{key}" if table else key, index))
        return found if found is not None else self.table(table, index)

    def string(self, value: str, near: int = 1) -> int:
        """First line at or after ``near`` holding the quoted string ``value``."""
        for quoted in (f'"{value}"', f"'{value}'"):
            for number in range(near, len(self._lines) + 1):
                if quoted in self._lines[number - 1]:
                    return number
        return near

    def at(self, line: int) -> str:
        return f"{self.path}:{line}"

    def last_line(self) -> int:
        return max(len(self._lines), 1)


def load_toml(text: str, path: str, problems: list[str]) -> dict[str, Any] | None:
    """Parse ``text``; on a syntax error or a limit hit append ``path:line: reason`` and return None.

    Limits (the loader also caps the file size): ``MAX_TOML_DEPTH`` levels of tables and arrays and
    ``MAX_TOML_VALUES`` keys plus array items in all.  tomllib recurses per level, so a deeper file is
    reported here instead of escaping as ``RecursionError``.
    """
    try:
        data = tomllib.loads(text)
    except RecursionError:
        problems.append(f"{path}:{_deep_line(text)}: TOML nested deeper than the limit of {MAX_TOML_DEPTH} "
                        "levels (MAX_TOML_DEPTH); not loaded")
        return None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POS.search(message)
        if position:
            reason = _TOML_POS.sub("", message)
            problems.append(f"{path}:{position.group(1)}: TOML syntax: {reason} (column {position.group(2)})")
        else:
            line = len(text.splitlines()) or 1
            problems.append(f"{path}:{line}: TOML syntax: {_TOML_END.sub('', message)}")
        return None
    values, depth = _measure(data)
    if depth > MAX_TOML_DEPTH:
        problems.append(f"{path}:{_deep_line(text)}: TOML nested deeper than the limit of {MAX_TOML_DEPTH} "
                        "levels (MAX_TOML_DEPTH); not loaded")
        return None
    if values > MAX_TOML_VALUES:
        problems.append(f"{path}:1: {values} keys and list items, more than the limit of {MAX_TOML_VALUES} "
                        "(MAX_TOML_VALUES); not loaded")
        return None
    return data


def _measure(data: dict[str, Any]) -> tuple[int, int]:
    """(keys + array items, deepest level) of parsed TOML, without recursion."""
    values, deepest = 0, 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            values += 1
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return values, deepest


def _deep_line(text: str) -> int:
    """The first line where brackets and braces open deeper than ``MAX_TOML_DEPTH`` (a locator only)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            depth += 1 if char in "[{" else -1 if char in "]}" else 0
            if depth > MAX_TOML_DEPTH:
                return number
    return 1


def unknown_keys(table: dict[str, Any], allowed: frozenset[str] | set[str]) -> list[str]:
    """Keys of ``table`` that are not in ``allowed``, in file order."""
    return [key for key in table if key not in allowed]


def expect_type(value: Any, kind: type | tuple[type, ...], what: str) -> str | None:
    """A reason if ``value`` is not of ``kind`` (bools are not ints), else None."""
    if isinstance(value, bool) and kind in (int, (int,)):
        return f"{what} must be an integer, not {value!r}"
    if isinstance(value, kind):
        return None
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}
    wanted = names.get(kind, str(kind)) if isinstance(kind, type) else " or ".join(names.get(k, "?") for k in kind)
    return f"{what} must be {wanted}, not {type(value).__name__} {value!r}"


def string_list(value: Any, what: str) -> tuple[tuple[str, ...], str | None]:
    """A tuple of non-empty strings from a string or a list of strings, or a reason."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        return (), f"{what} must be a non-empty string or a list of non-empty strings"
    if not value:
        return (), f"{what} must not be an empty list"
    return tuple(value), None
