"""Read the rule, SLA and group files, build the whole configuration, and reload it when it changes.

``load_config_dir`` reads ``rules.toml``, ``sla.toml`` and ``groups.toml``,
parses each (every problem of every file is collected), checks references
between them (a rule's group must exist, a group's SLA policy must exist), and
builds the business calendars with official holidays and make-up working days
(调休) from the ``holidays`` package plus the extra dates in ``sla.toml``.

``RuleWatcher`` keeps the last good ``RuleConfig`` in ``current``.  ``check()``
reads the three files; if any changed (content hash, so an edit within the
same second counts) it builds a complete new config from exactly the bytes it
read, then swaps it in with one assignment — never a half-loaded set.  A broken
edit is logged problem by problem and the last good config stays in force.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import holidays

from maildesk.domain import Classification, Clock, Deadlines, ParsedMail, Priority
from maildesk.errors import ConfigError
from maildesk.faults import crashpoint
from maildesk.rules.agents import (
    AgentDirectory,
    check_agents_against_calendars,
    parse_agents,
)
from maildesk.rules.directory import GroupDirectory, parse_groups
from maildesk.rules.engine import evaluate
from maildesk.rules.schema import Rule, RuleSet, parse_rules
from maildesk.sla.calendar import BusinessCalendar
from maildesk.sla.deadlines import Pause, compute_deadlines
from maildesk.sla.policy import CalendarSpec, SlaPolicy, SlaPolicySet, parse_sla

log = logging.getLogger(__name__)

RULES_FILE, SLA_FILE, GROUPS_FILE, AGENTS_FILE = "rules.toml", "sla.toml", "groups.toml", "agents.toml"
CONFIG_FILES = (RULES_FILE, SLA_FILE, GROUPS_FILE, AGENTS_FILE)
OPTIONAL_FILES = frozenset({AGENTS_FILE})  # a desk without agents.toml simply has no agent directory yet
# The shipped rules.toml is 20 kB.  The cap bounds the parse: tomllib needs ~8 s and ~160 MB for 10⁶ keys.
MAX_CONFIG_BYTES = 1024 * 1024
IGNORED_SUFFIXES = (".yaml", ".yml", ".json")  # look like rule files, are never read: said once in the log


@dataclass(frozen=True)
class RuleConfig:
    """Everything the three files say, validated and cross-checked."""

    rules: RuleSet
    sla: SlaPolicySet
    groups: GroupDirectory
    calendars: tuple[BusinessCalendar, ...]
    digests: tuple[tuple[str, str], ...] = ()  # (file name, sha256) of what was loaded
    agents: AgentDirectory = AgentDirectory()

    def calendar(self, calendar_id: str | None = None) -> BusinessCalendar:
        """A business calendar by id; the default policy's when None."""
        wanted = calendar_id or self.sla.policy().calendar
        return next(c for c in self.calendars if c.name == wanted)

    def policy_for(self, group: str | None) -> SlaPolicy:
        """The SLA policy of a group's queue (its ``sla_policy``), else the default."""
        found = self.groups.get(group) if group else None
        return self.sla.policy(found.sla_policy if found else None)

    def calendar_for(self, group: str | None) -> BusinessCalendar:
        return self.calendar(self.policy_for(group).calendar)

    def classify(self, mail: ParsedMail, *, at: datetime, mailbox: str | None = None,
                 default_group: str | None = None) -> Classification:
        """``rules.engine.evaluate`` with this config's groups and default business calendar."""
        return evaluate(self.rules, mail, at=at, mailbox=mailbox, groups=self.groups, calendar=self.calendar(),
                        default_group=default_group)

    def deadlines(
        self, priority: Priority, created_at: datetime, *, group: str | None = None, paused: Sequence[Pause] = ()
    ) -> Deadlines:
        policy = self.policy_for(group)
        return compute_deadlines(priority, created_at, policy, self.calendar(policy.calendar), paused=paused)

    def group_name(self, group_id: str | None) -> str | None:
        """The display name (e.g. 硬件支持组) of a group id, or the id if unknown."""
        found = self.groups.get(group_id) if group_id else None
        return found.name if found else group_id


def load_config_dir(config_dir: Path) -> RuleConfig:
    """Read and build the configuration in ``config_dir``; ``ConfigError`` lists every problem of every file."""
    texts: dict[str, bytes] = {}
    problems: list[str] = []
    for note in ignored_files(config_dir):
        log.warning("%s", note)
    for name in CONFIG_FILES:
        try:
            texts[name] = read_config_file(config_dir, name)
        except OSError as exc:
            problems.append(f"{config_dir / name}:1: cannot read: {exc.strerror or exc}")
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return build_config(config_dir, texts)


def read_config_file(config_dir: Path, name: str) -> bytes:
    """The bytes of one config file; an optional file that does not exist reads as empty.

    At most ``MAX_CONFIG_BYTES`` are read: a larger file is refused (``ConfigError``) before it is parsed.
    """
    path = config_dir / name
    if name in OPTIONAL_FILES and not path.exists():
        return b""
    with path.open("rb") as file:
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}:1: the file is larger than the limit of {MAX_CONFIG_BYTES} bytes "
                           f"(MAX_CONFIG_BYTES) for a rule file; not loaded"])
    return data


def ignored_files(config_dir: Path) -> list[str]:
    """A note for each YAML/JSON file in ``config_dir``: such files are never read, let alone executed."""
    try:
        found = sorted(p for p in config_dir.iterdir() if p.suffix.lower() in IGNORED_SUFFIXES)
    except OSError:
        return []
    return [f"{path}: ignored: maildesk reads rules only from {', '.join(CONFIG_FILES)} "
            f"(TOML); {path.suffix.lstrip('.').upper()} files are never loaded" for path in found]


def build_config(config_dir: Path, texts: dict[str, bytes]) -> RuleConfig:
    """Build a ``RuleConfig`` from the bytes of the three files (named as in ``CONFIG_FILES``)."""
    problems: list[str] = []
    parsed: dict[str, object] = {}
    for name, parse in ((RULES_FILE, parse_rules), (SLA_FILE, parse_sla), (GROUPS_FILE, parse_groups)):
        path = str(config_dir / name)
        try:
            parsed[name] = parse(texts[name].decode("utf-8"), path)
        except UnicodeDecodeError as exc:
            line = texts[name][: exc.start].count(b"\n") + 1
            problems.append(f"{path}:{line}: not UTF-8 text ({exc.reason})")
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    rules, sla, groups = parsed[RULES_FILE], parsed[SLA_FILE], parsed[GROUPS_FILE]
    assert isinstance(rules, RuleSet) and isinstance(sla, SlaPolicySet) and isinstance(groups, GroupDirectory)
    problems = cross_check(rules, sla, groups)
    agents = _load_agents(config_dir, texts, groups, sla, problems)
    calendars = []
    for spec in sla.calendars:
        try:
            calendars.append(build_calendar(spec))
        except ValueError as exc:
            problems.append(f"{spec.location}: {exc}")
    if problems:
        raise ConfigError(problems)
    digests = tuple((name, hashlib.sha256(texts[name]).hexdigest()) for name in CONFIG_FILES)
    return RuleConfig(rules, sla, groups, tuple(calendars), digests, agents)


def _unknown_groups(agents: AgentDirectory, groups: GroupDirectory) -> list[str]:
    """An agent may only join groups that exist.  A group member who is no agent is fine: such an
    address (a team mailbox, say) gets the group's notices but can never act as an agent."""
    return [f"{agent.location}: agent {agent.agent_id}: group '{group}' is not defined in groups.toml"
            for agent in agents.agents for group in agent.groups if groups.get(group) is None]


def _load_agents(config_dir: Path, texts: dict[str, bytes], groups: GroupDirectory, sla: SlaPolicySet,
                 problems: list[str]) -> AgentDirectory:
    """The agent directory, checked against the groups and calendars it names."""
    path = str(config_dir / AGENTS_FILE)
    if not texts[AGENTS_FILE].strip():
        return AgentDirectory()
    try:
        agents = parse_agents(texts[AGENTS_FILE].decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        line = texts[AGENTS_FILE][: exc.start].count(b"\n") + 1
        problems.append(f"{path}:{line}: not UTF-8 text ({exc.reason})")
        return AgentDirectory()
    except ConfigError as exc:
        problems.extend(exc.problems)
        return AgentDirectory()
    problems.extend(_unknown_groups(agents, groups))
    problems.extend(check_agents_against_calendars(agents, [c.calendar_id for c in sla.calendars]))
    return agents


def cross_check(rules: RuleSet, sla: SlaPolicySet, groups: GroupDirectory) -> list[str]:
    """References between the files that a single file cannot check."""
    problems = []
    known = {g.group_id for g in groups.groups}
    hint = f"(groups.toml defines: {', '.join(sorted(known)) or 'none'})"
    if rules.defaults.group and rules.defaults.group not in known:
        problems.append(f"{rules.defaults.location}: default group '{rules.defaults.group}' is not defined {hint}")
    for rule in rules.rules:
        if rule.then.group and rule.then.group not in known:
            problems.append(f"{rule.location}: rule {rule.rule_id}: group '{rule.then.group}' is not defined {hint}")
        for condition in (*rule.when, *rule.unless):
            for group_id in condition.values if condition.key == "sender_in_group" else ():
                if group_id not in known:
                    problems.append(f"{rules.path}:{condition.line}: rule {rule.rule_id}: sender_in_group '{group_id}' is not defined {hint}")
    policies = {p.policy_id for p in sla.policies}
    for group in groups.groups:
        if group.sla_policy and group.sla_policy not in policies:
            problems.append(f"{group.location}: group {group.group_id}: sla_policy '{group.sla_policy}' is not defined in sla.toml")
    return problems


def build_calendar(spec: CalendarSpec) -> BusinessCalendar:
    """A ``BusinessCalendar`` with the official holidays of ``spec.holiday_country`` plus the extra dates."""
    days_off: set[date] = set(spec.extra_holidays)
    workdays: set[date] = set(spec.extra_workdays)
    source = "config"
    if spec.holiday_country:
        if not spec.holiday_years:
            raise ValueError(f"calendar {spec.calendar_id}: holidays = '{spec.holiday_country}' needs holiday_years")
        try:
            official = holidays.country_holidays(spec.holiday_country, years=list(spec.holiday_years))
        except NotImplementedError:
            raise ValueError(f"calendar {spec.calendar_id}: the holidays package has no country '{spec.holiday_country}'") from None
        days_off.update(official.keys())
        made_up: set[date] = getattr(official, "weekend_workdays", set())
        workdays.update(d for d in made_up if d.year in spec.holiday_years)
        source = f"holidays {holidays.__version__} {spec.holiday_country} {min(spec.holiday_years)}–{max(spec.holiday_years)} + config"
    return BusinessCalendar(
        name=spec.calendar_id, timezone=spec.timezone, weekly=spec.weekly,
        holidays=frozenset(days_off - set(spec.extra_workdays)), workdays=frozenset(workdays), source=source,
    )


class RuleWatcher:
    """Holds the last good configuration and reloads it when a file changes.

    The first load happens in the constructor and raises ``ConfigError`` —
    there is no last good version to fall back on.  ``check()`` returns what it
    logged (the changes, or the problems of a refused edit); ``problems`` holds
    the problems of the files on disk now, empty when they are in force.
    """

    def __init__(self, config_dir: Path, clock: Clock | None = None) -> None:
        self.config_dir = config_dir
        self._clock = clock
        self._ignored = ignored_files(config_dir)
        for note in self._ignored:
            log.warning("%s", note)
        texts, self._stamp = self._read()
        self.current: RuleConfig = build_config(config_dir, texts)
        self.problems: list[str] = []
        self.loaded_at: datetime | None = clock.now() if clock else None

    def _read(self) -> tuple[dict[str, bytes], tuple[tuple[str, str], ...]]:
        texts: dict[str, bytes] = {}
        for name in CONFIG_FILES:
            try:
                texts[name] = read_config_file(self.config_dir, name)
            except OSError as exc:
                raise ConfigError([f"{self.config_dir / name}:1: cannot read: {exc.strerror or exc}"]) from None
        return texts, tuple((n, hashlib.sha256(t).hexdigest()) for n, t in texts.items())

    def check(self) -> list[str]:
        """Reload if any file changed since the last look; keep the last good config on error."""
        ignored = ignored_files(self.config_dir)
        for note in (n for n in ignored if n not in self._ignored):
            log.warning("%s", note)
        self._ignored = ignored
        try:
            texts, stamp = self._read()
        except ConfigError as exc:
            self._stamp = ()  # unreadable: whatever is read next, even the same bytes, is a change
            return self._refuse(exc.problems)
        if stamp == self._stamp:
            return []
        self._stamp = stamp
        try:
            new = build_config(self.config_dir, texts)
        except ConfigError as exc:
            return self._refuse(exc.problems)
        changes = describe_changes(self.current, new)
        if not changes and self.problems:
            changes = ["the files are valid again and the same as the version in force"]
        crashpoint("rules_reloading")
        self.current, self.problems = new, []
        self.loaded_at = self._clock.now() if self._clock else None
        for change in changes:
            log.info("config reloaded: %s", change)
        return changes

    def _refuse(self, problems: list[str]) -> list[str]:
        if problems == self.problems:
            return []  # this broken state was already reported
        self.problems = list(problems)
        for problem in problems:
            log.error("config refused, the last good version stays in force: %s", problem)
        return list(problems)


def describe_changes(old: RuleConfig, new: RuleConfig) -> list[str]:
    """One line per changed file saying what changed, e.g. ``rules.toml: 14 rules (was 13): added x``."""
    changed = {name for (name, a), (_, b) in zip(old.digests, new.digests, strict=True) if a != b}
    lines = []
    if RULES_FILE in changed:
        old_rules, new_rules = old.rules, new.rules
        head = f"{RULES_FILE}: {len(new_rules.rules)} rules (was {len(old_rules.rules)})"
        lines.append(head + _diff(
            {r.rule_id: _sans_lines(r) for r in old_rules.rules},
            {r.rule_id: _sans_lines(r) for r in new_rules.rules},
            [("defaults", replace(old_rules.defaults, location="") != replace(new_rules.defaults, location="")),
             ("priority matrix", _cells(old_rules) != _cells(new_rules))],
        ))
    if SLA_FILE in changed:
        head = f"{SLA_FILE}: {len(new.sla.policies)} policies, {len(new.calendars)} calendars"
        lines.append(head + _diff(
            {p.policy_id: _sans_policy(p) for p in old.sla.policies},
            {p.policy_id: _sans_policy(p) for p in new.sla.policies},
            [("calendars", old.calendars != new.calendars),
             ("default policy", old.sla.default_policy != new.sla.default_policy)],
        ))
    if AGENTS_FILE in changed:
        lines.append(f"{AGENTS_FILE}: {len(new.agents.agents)} agents (was {len(old.agents.agents)})" + _diff(
            {a.agent_id: replace(a, location="") for a in old.agents.agents},
            {a.agent_id: replace(a, location="") for a in new.agents.agents}, []))
    if GROUPS_FILE in changed:
        old_vips, new_vips = [v.pattern for v in old.groups.vips], [v.pattern for v in new.groups.vips]
        head = f"{GROUPS_FILE}: {len(new.groups.groups)} groups (was {len(old.groups.groups)})"
        lines.append(head + _diff(
            {g.group_id: replace(g, location="") for g in old.groups.groups},
            {g.group_id: replace(g, location="") for g in new.groups.groups},
            [(f"VIP list ({len(new_vips)} entries, was {len(old_vips)})", old_vips != new_vips)],
        ))
    return lines


def _cells(rules: RuleSet) -> tuple[object, ...]:
    return rules.matrix.cells if rules.matrix else ()


def _diff(old: dict[str, object], new: dict[str, object], extra: list[tuple[str, bool]]) -> str:
    parts = []
    for label, ids in (("added", [i for i in new if i not in old]), ("removed", [i for i in old if i not in new]),
                       ("changed", [i for i in new if i in old and old[i] != new[i]])):
        if ids:
            parts.append(f"{label} {', '.join(ids)}")
    if list(old) != [i for i in new if i in old] and not parts:
        parts.append("order changed")
    parts += [f"{label} changed" for label, differs in extra if differs]
    return (": " + "; ".join(parts)) if parts else ": no effective change (comments or layout only)"


def _sans_lines(rule: Rule) -> Rule:
    return replace(
        rule, location="", when=tuple(replace(c, line=0) for c in rule.when),
        unless=tuple(replace(c, line=0) for c in rule.unless),
    )


def _sans_policy(policy: SlaPolicy) -> SlaPolicy:
    return replace(policy, location="", targets=tuple((p, replace(t, location="")) for p, t in policy.targets))
