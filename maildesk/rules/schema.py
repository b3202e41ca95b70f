"""The typed, validated rule set, built from the text of ``rules.toml``.

``parse_rules`` checks everything an admin can get wrong — unknown fields,
wrong types, unknown categories or priorities, duplicate or badly formed ids,
runaway regexes — and raises one ``ConfigError`` listing every problem as
``path:line: reason``.  ``parse_sla`` and ``parse_groups`` do the same for the
SLA and group files (implemented in ``sla.policy`` and ``rules.directory``,
re-exported here so the three parsers sit together).  Cross-file references
(a rule's group must exist in groups.toml) are checked by the loader, which
sees all three files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from maildesk.domain import Category, Priority
from maildesk.errors import ConfigError
from maildesk.rules.conditions import Condition, parse_conditions
from maildesk.rules.directory import GroupDirectory, parse_groups
from maildesk.rules.tomlsource import SourceMap, expect_type, load_toml, string_list
from maildesk.sla.policy import SlaPolicySet, parse_sla

__all__ = [
    "Actions", "GroupDirectory", "PriorityMatrix", "Rule", "RuleDefaults", "RuleSet", "SlaPolicySet",
    "parse_groups", "parse_rules", "parse_sla", "KEBAB",
]

KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
DEFAULT_IMPACTS = ("org", "department", "single")
RESERVED_IDS = frozenset({"vip", "priority-matrix", "defaults"})
_TOP_KEYS = frozenset({"defaults", "priority_matrix", "rule"})
_RULE_KEYS = frozenset({"id", "description", "enabled", "when", "unless", "then"})
_ACTION_KEYS = frozenset({
    "category", "priority", "impact", "urgency", "group", "assignee", "tags", "language", "suppress_ack",
    "reply_template", "close", "raise_priority", "stop", "override",
})
_DEFAULT_KEYS = frozenset({"category", "priority", "impact", "urgency", "group", "language"})


@dataclass(frozen=True)
class Actions:
    """What a matching rule sets.  None means "leave this field alone"."""

    category: Category | None = None
    priority: Priority | None = None
    impact: str | None = None
    urgency: str | None = None
    group: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    suppress_ack: bool | None = None
    reply_template: str | None = None
    close: bool | None = None
    raise_priority: int = 0
    stop: bool = False
    override: bool = False


@dataclass(frozen=True)
class Rule:
    rule_id: str
    location: str  # "config/rules.toml:12", the line of its [[rule]]
    when: tuple[Condition, ...]
    then: Actions
    unless: tuple[Condition, ...] = ()
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class PriorityMatrix:
    """Impact × urgency → priority, as written in ``[priority_matrix]``."""

    cells: tuple[tuple[str, str, Priority], ...]
    location: str = ""

    @property
    def impacts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for i, _, _ in self.cells))

    @property
    def urgencies(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u for _, u, _ in self.cells))

    def lookup(self, impact: str, urgency: str) -> Priority | None:
        for row, column, priority in self.cells:
            if (row, column) == (impact, urgency):
                return priority
        return None


@dataclass(frozen=True)
class RuleDefaults:
    category: Category
    priority: Priority
    location: str
    impact: str | None = None
    urgency: str | None = None
    group: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    defaults: RuleDefaults
    matrix: PriorityMatrix | None = None
    path: str = ""

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.rule_id == rule_id), None)


class _Report:
    """Collects ``path:line: reason`` problems for one file."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.problems: list[str] = []

    def add(self, line: int, reason: str) -> None:
        self.problems.append(f"{self.source.path}:{line}: {reason}")


def parse_rules(text: str, path: str) -> RuleSet:
    """Build a ``RuleSet`` from the text of a rules file, or raise ``ConfigError`` with every problem."""
    problems: list[str] = []
    data = load_toml(text, path, problems)
    if data is None:
        raise ConfigError(problems)
    report = _Report(SourceMap(path, text))
    for key in data:
        if key not in _TOP_KEYS:
            report.add(report.source.key("", key), f"unknown top-level field '{key}' (known: defaults, priority_matrix, rule)")
    matrix = _parse_matrix(data.get("priority_matrix"), report)
    defaults = _parse_defaults(data.get("defaults"), matrix, report)
    rules = _parse_rule_list(data.get("rule", []), matrix, report)
    if report.problems or defaults is None:
        raise ConfigError(report.problems)
    return RuleSet(rules=rules, defaults=defaults, matrix=matrix, path=path)


def _parse_matrix(table: Any, report: _Report) -> PriorityMatrix | None:
    if table is None:
        return None
    line = report.source.table("priority_matrix")
    if reason := expect_type(table, dict, "[priority_matrix]"):
        report.add(line, reason)
        return None
    cells: list[tuple[str, str, Priority]] = []
    columns: set[str] | None = None
    for impact, row in table.items():
        row_line = report.source.key("priority_matrix", impact)
        if not isinstance(row, dict) or not row:
            report.add(row_line, f"priority_matrix.{impact} must be a table of urgency = priority")
            continue
        if columns is not None and set(row) != columns:
            report.add(row_line, f"priority_matrix.{impact} must name the same urgencies as the first row: {sorted(columns)}")
        columns = columns if columns is not None else set(row)
        for urgency, value in row.items():
            if (priority := _priority(value)) is None:
                report.add(row_line, f"priority_matrix.{impact}.{urgency}: unknown priority {value!r} ({_names(Priority)})")
            else:
                cells.append((impact, urgency, priority))
    return PriorityMatrix(tuple(cells), report.source.at(line))


def _parse_defaults(table: Any, matrix: PriorityMatrix | None, report: _Report) -> RuleDefaults | None:
    line = report.source.table("defaults")
    if table is None:
        report.add(1, "missing [defaults] table (category and priority for mail no rule classifies)")
        return None
    if reason := expect_type(table, dict, "[defaults]"):
        report.add(line, reason)
        return None
    where = lambda key: report.source.key("defaults", key)  # noqa: E731
    for key in table:
        if key not in _DEFAULT_KEYS:
            report.add(where(key), f"unknown field '{key}' in [defaults] (known: {', '.join(sorted(_DEFAULT_KEYS))})")
    actions = _parse_actions({k: v for k, v in table.items() if k in _DEFAULT_KEYS}, matrix, where, report, "[defaults]")
    for key in ("category", "priority"):
        if key not in table:
            report.add(line, f"[defaults] must set {key}")
    if actions is None or actions.category is None or actions.priority is None:
        return None
    return RuleDefaults(
        category=actions.category, priority=actions.priority, location=report.source.at(line),
        impact=actions.impact, urgency=actions.urgency, group=actions.group, language=actions.language,
    )


def _parse_rule_list(items: Any, matrix: PriorityMatrix | None, report: _Report) -> tuple[Rule, ...]:
    if not isinstance(items, list):
        report.add(report.source.key("", "rule"), "rule must be an array of tables: write each as [[rule]]")
        return ()
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(items):
        line = report.source.table("rule", index)
        if not isinstance(table, dict):
            report.add(line, f"rule #{index + 1} must be a table: write each rule as [[rule]]")
            continue
        raw_id = table.get("id")
        if isinstance(raw_id, str) and raw_id in seen:
            report.add(report.source.key("rule", "id", index), f"duplicate rule id '{raw_id}' (first at line {seen[raw_id]})")
            continue
        if isinstance(raw_id, str):
            seen[raw_id] = line
        if rule := _parse_rule(table, index, matrix, report):
            rules.append(rule)
    return tuple(rules)


def _parse_rule(table: dict[str, Any], index: int, matrix: PriorityMatrix | None, report: _Report) -> Rule | None:
    src = report.source
    line = src.table("rule", index)
    before = len(report.problems)
    for key in table:
        if key not in _RULE_KEYS:
            report.add(src.key("rule", key, index), f"rule #{index + 1}: unknown field '{key}' (known: {', '.join(sorted(_RULE_KEYS))})")
    rule_id = table.get("id")
    if not isinstance(rule_id, str) or not KEBAB.match(rule_id):
        report.add(src.key("rule", "id", index), f"rule #{index + 1}: id must be kebab-case like 'printer-to-hardware', not {rule_id!r}")
        rule_id = f"#{index + 1}"
    elif rule_id in RESERVED_IDS:
        report.add(src.key("rule", "id", index), f"rule id '{rule_id}' is reserved for the engine's own hits")
    when = _conditions(table, "when", rule_id, index, report)
    unless = _conditions(table, "unless", rule_id, index, report)
    if "when" not in table:
        report.add(line, f"rule {rule_id}: needs a [rule.when] table (use always = true to match every mail)")
    then_table = table.get("then")
    actions = None
    if not isinstance(then_table, dict) or not then_table:
        report.add(src.table("rule.then", index), f"rule {rule_id}: needs a non-empty [rule.then] table")
    else:
        where = lambda key: src.key("rule.then", key, index)  # noqa: E731
        actions = _parse_actions(then_table, matrix, where, report, f"rule {rule_id}")
    for key, kind in (("description", str), ("enabled", bool)):
        if key in table and (reason := expect_type(table[key], kind, key)):
            report.add(src.key("rule", key, index), f"rule {rule_id}: {reason}")
    if len(report.problems) > before or actions is None:
        return None
    return Rule(
        rule_id=rule_id, location=src.at(line), when=when, then=actions, unless=unless,
        description=table.get("description", ""), enabled=table.get("enabled", True),
    )


def _conditions(table: dict[str, Any], name: str, rule_id: str, index: int, report: _Report) -> tuple[Condition, ...]:
    if name not in table:
        return ()
    src = report.source
    if not isinstance(table[name], dict) or not table[name]:
        report.add(src.table(f"rule.{name}", index), f"rule {rule_id}: [rule.{name}] must be a non-empty table of conditions")
        return ()
    line_of = lambda key: src.key(f"rule.{name}", key, index)  # noqa: E731
    return parse_conditions(table[name], line_of, lambda key, why: report.add(line_of(key), f"rule {rule_id}: {name}: {why}"))


def _parse_actions(table: dict[str, Any], matrix: PriorityMatrix | None, where: Any, report: _Report, owner: str) -> Actions | None:
    """Validate an actions table (also used for [defaults]); None if any value was refused."""
    before = len(report.problems)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _ACTION_KEYS:
            report.add(where(key), f"{owner}: unknown action '{key}' (known: {', '.join(sorted(_ACTION_KEYS))})")
            continue
        parsed, reason = _parse_action(key, value, matrix)
        if reason:
            report.add(where(key), f"{owner}: {reason}")
        else:
            values[key] = parsed
    if values.get("close") and not values.get("reply_template"):
        report.add(where("close"), f"{owner}: close = true needs a reply_template (the answer that explains why)")
    return Actions(**values) if len(report.problems) == before else None


def _parse_action(key: str, value: Any, matrix: PriorityMatrix | None) -> tuple[Any, str | None]:
    if key == "category":
        category = _enum(Category, value)
        return category, None if category else f"unknown category {value!r} ({_names(Category)})"
    if key == "priority":
        priority = _priority(value)
        return priority, None if priority else f"unknown priority {value!r} ({_names(Priority)})"
    if key in ("impact", "urgency"):
        return _scale(key, value, matrix)
    if key in ("suppress_ack", "close", "stop", "override"):
        return value, expect_type(value, bool, key)
    if key == "raise_priority":
        bad = isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3
        return value, f"raise_priority must be 1, 2 or 3 (levels), not {value!r}" if bad else None
    if key == "tags":
        tags, reason = string_list(value, "tags")
        return tags, reason
    if key == "group" and not (isinstance(value, str) and KEBAB.match(value)):
        return None, f"group must be a kebab-case group id from groups.toml, not {value!r}"
    if key == "language" and not (isinstance(value, str) and LANGUAGE.match(value)):
        return None, f"language must be a tag like 'zh-CN' or 'en', not {value!r}"
    if isinstance(value, str) and value.strip():
        return value, None
    return None, f"{key} must be a non-empty string, not {value!r}"


def _scale(key: str, value: Any, matrix: PriorityMatrix | None) -> tuple[Any, str | None]:
    if key == "urgency" and matrix is None:
        return None, "urgency needs a [priority_matrix] to turn impact and urgency into a priority"
    allowed = (matrix.impacts if matrix else DEFAULT_IMPACTS) if key == "impact" else matrix.urgencies  # type: ignore[union-attr]
    if value not in allowed:
        return None, f"unknown {key} {value!r} (known: {', '.join(allowed)})"
    return value, None


def _enum(kind: type[Category], value: Any) -> Category | None:
    return next((member for member in kind if member.value == value), None)


def _priority(value: Any) -> Priority | None:
    return next((member for member in Priority if member.value == value), None)


def _names(kind: type[Category] | type[Priority]) -> str:
    return ", ".join(member.value for member in kind)
