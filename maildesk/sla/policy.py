"""SLA policies and business-calendar specs, built from the text of ``sla.toml``.

A policy gives, per priority, the first-response and resolution targets and
the progress-report interval, and says whether the clock runs on the policy's
business calendar or 24×7.  Durations are written ``15m``, ``2h``, ``1h30m``,
``1 working day`` or ``3 working days``; a working day is the length of one
business day of the calendar (see ``sla.calendar``).  A calendar spec is data
only — the loader turns it into a ``BusinessCalendar`` with holidays from the
``holidays`` package plus the extra dates written here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from maildesk.domain import Priority
from maildesk.errors import ConfigError
from maildesk.rules.tomlsource import SourceMap, load_toml, string_list

_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PART = re.compile(r"(\d+)\s*(working\s+days?|wd|hours?|h|minutes?|mins?|m)(?![a-z])", re.IGNORECASE)
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCKS = ("business", "24x7")
_TOP_KEYS = frozenset({"defaults", "calendars", "policies"})
_CAL_KEYS = frozenset({"timezone", "days", "hours", "day_hours", "holidays", "holiday_years", "extra_holidays", "extra_workdays"})
_TARGET_KEYS = frozenset({"clock", "first_response", "resolution", "progress_every"})


@dataclass(frozen=True)
class Span:
    """A target duration: minutes plus working days, as written (``text``)."""

    minutes: int = 0
    working_days: int = 0
    text: str = ""

    def to_timedelta(self, day_length: timedelta) -> timedelta:
        return timedelta(minutes=self.minutes) + self.working_days * day_length


@dataclass(frozen=True)
class SlaTarget:
    first_response: Span
    location: str
    resolution: Span | None = None
    progress_every: timedelta | None = None
    clock: str = "business"


@dataclass(frozen=True)
class SlaPolicy:
    policy_id: str
    calendar: str  # id of a CalendarSpec
    targets: tuple[tuple[Priority, SlaTarget], ...]
    location: str

    def target(self, priority: Priority) -> SlaTarget:
        return next(t for p, t in self.targets if p is priority)


@dataclass(frozen=True)
class CalendarSpec:
    calendar_id: str
    timezone: str
    weekly: tuple[tuple[tuple[time, time], ...], ...]  # 7 days, Monday first
    location: str
    holiday_country: str | None = None
    holiday_years: tuple[int, ...] = ()
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()


@dataclass(frozen=True)
class SlaPolicySet:
    calendars: tuple[CalendarSpec, ...]
    policies: tuple[SlaPolicy, ...]
    default_policy: str
    path: str = ""

    def policy(self, policy_id: str | None = None) -> SlaPolicy:
        wanted = policy_id or self.default_policy
        return next(p for p in self.policies if p.policy_id == wanted)


def parse_span(text: Any) -> Span | None:
    """``"1h30m"`` → Span(90); ``"3 working days"`` → Span(working_days=3); None if not a duration."""
    if not isinstance(text, str) or not text.strip():
        return None
    if _PART.sub("", text).strip(" ,+"):
        return None
    minutes = days = 0
    for amount, unit in _PART.findall(text):
        unit = unit.lower()
        if unit.startswith("w"):
            days += int(amount)
        else:
            minutes += int(amount) * (60 if unit.startswith("h") else 1)
    return Span(minutes, days, text.strip()) if minutes or days else None


def parse_sla(text: str, path: str) -> SlaPolicySet:
    """Build an ``SlaPolicySet`` from the text of an SLA file, or raise ``ConfigError`` with every problem."""
    problems: list[str] = []
    data = load_toml(text, path, problems)
    if data is None:
        raise ConfigError(problems)
    src = SourceMap(path, text)
    add = lambda line, reason: problems.append(f"{path}:{line}: {reason}")  # noqa: E731
    for key in data:
        if key not in _TOP_KEYS:
            add(src.key("", key), f"unknown top-level field '{key}' (known: {', '.join(sorted(_TOP_KEYS))})")
    calendar_tables = _tables(data, "calendars", src, add)
    policy_tables = _tables(data, "policies", src, add)
    calendars = tuple(c for c in (_calendar(i, b, src, add) for i, b in calendar_tables) if c)
    cal_ids = {cal_id for cal_id, _ in calendar_tables}
    policies = tuple(p for p in (_policy(i, b, cal_ids, src, add) for i, b in policy_tables) if p)
    default = _default_policy(data.get("defaults"), src, add)
    if default and default not in {policy_id for policy_id, _ in policy_tables}:
        add(src.key("defaults", "policy"), f"default policy '{default}' is not defined under [policies]")
    if problems or default is None:
        raise ConfigError(problems)
    return SlaPolicySet(calendars, policies, default, path)


def _tables(data: dict[str, Any], name: str, src: SourceMap, add: Any) -> list[tuple[str, dict[str, Any]]]:
    table = data.get(name)
    if not isinstance(table, dict) or not table:
        add(src.table(name), f"needs at least one [{name}.<id>] table")
        return []
    good = []
    for item_id, body in table.items():
        if not _KEBAB.match(item_id) or not isinstance(body, dict):
            add(src.table(f"{name}.{item_id}"), f"[{name}.{item_id}] must be a table with a kebab-case id")
        else:
            good.append((item_id, body))
    return good


def _default_policy(table: Any, src: SourceMap, add: Any) -> str | None:
    if not isinstance(table, dict) or not isinstance(table.get("policy"), str):
        add(src.table("defaults"), "needs [defaults] with policy = \"<policy id>\"")
        return None
    for key in table:
        if key != "policy":
            add(src.key("defaults", key), f"unknown field '{key}' in [defaults] (known: policy)")
    return str(table["policy"])


def _calendar(cal_id: str, body: dict[str, Any], src: SourceMap, add: Any) -> CalendarSpec | None:
    table = f"calendars.{cal_id}"
    problems: list[str] = []

    def bad(key: str, reason: str) -> None:
        problems.append(reason)
        add(src.key(table, key), f"calendar {cal_id}: {reason}")

    for key in body:
        if key not in _CAL_KEYS:
            bad(key, f"unknown field '{key}' (known: {', '.join(sorted(_CAL_KEYS))})")
    if not isinstance(body.get("timezone"), str):
        bad("timezone", "needs timezone = \"Asia/Shanghai\" (an IANA zone name)")
    weekly = _weekly(body, bad)
    country = body.get("holidays", "")
    if not isinstance(country, str):
        bad("holidays", "holidays must be a country code of the holidays package like \"CN\", or \"\"")
    years = body.get("holiday_years", [])
    if not isinstance(years, list) or not all(isinstance(y, int) and 1990 <= y <= 2100 for y in years):
        bad("holiday_years", "holiday_years must be a list of years like [2025, 2026]")
    extra = {key: _dates(body.get(key, []), key, bad) for key in ("extra_holidays", "extra_workdays")}
    if problems:
        return None
    return CalendarSpec(
        calendar_id=cal_id, timezone=body["timezone"], weekly=weekly, location=src.at(src.table(table)),
        holiday_country=country or None, holiday_years=tuple(years),
        extra_holidays=extra["extra_holidays"], extra_workdays=extra["extra_workdays"],
    )


def _weekly(body: dict[str, Any], bad: Any) -> tuple[tuple[tuple[time, time], ...], ...]:
    days, reason = string_list(body.get("days", list(DAYS[:5])), "days")
    if reason or any(d not in DAYS for d in days):
        bad("days", f"days must be a list of {', '.join(DAYS)}")
        days = ()
    hours = _ranges(body.get("hours", ["09:00-18:00"]), "hours", bad)
    weekly = [hours if day in days else () for day in DAYS]
    overrides = body.get("day_hours", {})
    if not isinstance(overrides, dict) or any(d not in DAYS for d in overrides):
        bad("day_hours", f"day_hours must be a table like {{ sat = [\"09:00-12:00\"] }} with days {', '.join(DAYS)}")
        overrides = {}
    for day, ranges in overrides.items():
        weekly[DAYS.index(day)] = _ranges(ranges, f"day_hours.{day}", bad, allow_empty=True)
    return tuple(weekly)


def _ranges(value: Any, what: str, bad: Any, *, allow_empty: bool = False) -> tuple[tuple[time, time], ...]:
    items = value if isinstance(value, list) else [value]
    out: list[tuple[time, time]] = []
    for item in items:
        found = _RANGE.match(item.strip()) if isinstance(item, str) else None
        parts = [int(g) for g in found.groups()] if found else []
        if not found or parts[0] > 23 or parts[2] > 24 or parts[1] > 59 or parts[3] > 59 or (parts[2] == 24 and parts[3]):
            bad(what.partition(".")[0], f"{what}: {item!r} is not a range like \"09:00-18:00\"")
            return ()
        start, end = time(parts[0], parts[1]), time(parts[2] % 24, parts[3])
        if (end != time(0) and end <= start) or (out and (out[-1][1] == time(0) or start < out[-1][1])):
            bad(what.partition(".")[0], f"{what}: ranges must end after they start, in order, without overlap ({item!r})")
            return ()
        out.append((start, end))
    if not out and not allow_empty:
        bad(what, f"{what} must list at least one range like \"09:00-18:00\"")
    return tuple(out)


def _dates(value: Any, what: str, bad: Any) -> tuple[date, ...]:
    items = value if isinstance(value, list) else [value]
    out: list[date] = []
    for item in items:
        if isinstance(item, date):
            out.append(item)
            continue
        try:
            out.append(date.fromisoformat(item))
        except (TypeError, ValueError):
            bad(what, f"{what}: {item!r} is not a date like 2026-12-31")
    return tuple(out)


def _policy(policy_id: str, body: dict[str, Any], cal_ids: set[str], src: SourceMap, add: Any) -> SlaPolicy | None:
    table = f"policies.{policy_id}"
    before: list[str] = []

    def bad(line: int, reason: str) -> None:
        before.append(reason)
        add(line, f"policy {policy_id}: {reason}")

    allowed = {"calendar", "description", *(p.value for p in Priority)}
    for key in body:
        if key not in allowed:
            bad(src.key(table, key), f"unknown field '{key}' (known: {', '.join(sorted(allowed))})")
    if not isinstance(body.get("calendar"), str):
        bad(src.table(table), "needs calendar = \"<calendar id>\" for its business clock")
    elif body["calendar"] not in cal_ids:
        bad(src.key(table, "calendar"), f"unknown calendar '{body['calendar']}' (known: {', '.join(sorted(cal_ids))})")
    targets = []
    for priority in Priority:
        if not isinstance(body.get(priority.value), dict):
            bad(src.table(table), f"needs a [{table}.{priority.value}] table")
            continue
        if target := _target(f"{table}.{priority.value}", body[priority.value], src, bad):
            targets.append((priority, target))
    if before:
        return None
    return SlaPolicy(policy_id, body["calendar"], tuple(targets), src.at(src.table(table)))


def _target(table: str, body: dict[str, Any], src: SourceMap, bad: Any) -> SlaTarget | None:
    count = 0

    def fail(key: str, reason: str) -> None:
        nonlocal count
        count += 1
        bad(src.key(table, key), f"{table.rpartition('.')[2]}: {reason}")

    for key in body:
        if key not in _TARGET_KEYS:
            fail(key, f"unknown field '{key}' (known: {', '.join(sorted(_TARGET_KEYS))})")
    clock = body.get("clock", "business")
    if clock not in CLOCKS:
        fail("clock", f"clock must be one of {', '.join(CLOCKS)}, not {clock!r}")
    spans: dict[str, Span | None] = {}
    for key in ("first_response", "resolution"):
        spans[key] = parse_span(body.get(key)) if key in body else None
        if (key in body or key == "first_response") and spans[key] is None:
            fail(key, f"{key} must be a duration like \"15m\", \"2h\", \"1h30m\" or \"3 working days\", not {body.get(key)!r}")
    every = parse_span(body["progress_every"]) if "progress_every" in body else None
    if "progress_every" in body and (every is None or every.working_days):
        fail("progress_every", f"progress_every must be minutes or hours like \"30m\", not {body['progress_every']!r}")
    if count or spans["first_response"] is None:
        return None
    return SlaTarget(
        first_response=spans["first_response"], location=src.at(src.table(table)), resolution=spans["resolution"],
        progress_every=timedelta(minutes=every.minutes) if every else None, clock=clock,
    )
