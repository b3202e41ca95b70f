"""Business time: when the desk is open, and arithmetic on open time.

A ``BusinessCalendar`` is built from data passed in — a time zone name, the
opening hours of each weekday (several ranges per day for a lunch break),
holiday dates and make-up working days (调休: a weekend day worked to bridge a
holiday).  The loader fetches holidays from the ``holidays`` package; nothing
here reads a file or the clock.  ``BusinessCalendar.always_open()`` is the 24×7
calendar.

Times in and out are aware UTC datetimes; the calendar converts to its own
zone to find opening hours.  A make-up working day uses ``makeup_hours``
(by default the hours of Monday, or of the first weekday that has any).

"One working day" is ``day_length``: the business time of one ordinary working
day (``makeup_hours``) — 9 h for Mon–Fri 09:00–18:00, 8 h with a 12:00–13:00
lunch break, 24 h for 24×7.  So a "1 working day" target set at 17:00 on a
Friday falls due at 17:00 on the next working day.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Hours = tuple[tuple[time, time], ...]
_SEARCH_DAYS = 3660  # give up looking for an open day after ten years
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours in one time zone; holidays close a day, make-up days open one."""

    name: str
    timezone: str
    weekly: tuple[Hours, ...] = ((),) * 7  # index 0 is Monday
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # make-up working days (调休)
    makeup_hours: Hours = ()
    always: bool = False
    source: str = ""  # where the holidays came from, for explanations
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        if len(self.weekly) != 7:
            raise ValueError(f"calendar {self.name}: weekly hours need 7 days (Monday first), got {len(self.weekly)}")
        for day, hours in enumerate(self.weekly):
            _check_hours(self.name, _DAY_NAMES[day], hours)
        if not self.makeup_hours:
            object.__setattr__(self, "makeup_hours", next((h for h in self.weekly[:5] if h), ()))
        _check_hours(self.name, "make-up days", self.makeup_hours)
        if not self.always and not any(self.weekly) and not self.workdays:
            raise ValueError(f"calendar {self.name}: has no opening hours at all")

    @classmethod
    def always_open(cls, name: str = "24x7", timezone: str = "UTC") -> BusinessCalendar:
        """The 24×7 calendar: every instant is business time."""
        return cls(name=name, timezone=timezone, always=True)

    @classmethod
    def weekly_hours(
        cls,
        name: str,
        timezone: str,
        hours: Mapping[int, Sequence[tuple[time, time]]],
        *,
        holidays: Sequence[date] = (),
        workdays: Sequence[date] = (),
        source: str = "",
    ) -> BusinessCalendar:
        """A calendar from ``{weekday: [(start, end), ...]}`` with 0 = Monday."""
        weekly = tuple(tuple(hours.get(day, ())) for day in range(7))
        return cls(name, timezone, weekly, frozenset(holidays), frozenset(workdays), source=source)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def day_length(self) -> timedelta:
        """The business time of one working day (what "1 working day" means)."""
        if self.always:
            return timedelta(days=1)
        return sum((_span(start, end) for start, end in self.makeup_hours), timedelta())

    def hours_on(self, day: date) -> Hours:
        """Opening hours on a local date: make-up day, holiday, or its weekday."""
        if day in self.workdays:
            return self.makeup_hours
        if day in self.holidays:
            return ()
        return self.weekly[day.weekday()]

    def describe(self) -> str:
        if self.always:
            return f"{self.name} (24×7)"
        days = [f"{_DAY_NAMES[d]} {_format_hours(h)}" for d, h in enumerate(self.weekly) if h]
        extra = f", {len(self.holidays)} holidays, {len(self.workdays)} make-up days" + (f" from {self.source}" if self.source else "")
        return f"{self.name} ({self.timezone}; {'; '.join(days)}{extra})"


def _span(start: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, start) if end != time(0) else (
        datetime.combine(date.min + timedelta(days=1), time(0)) - datetime.combine(date.min, start)
    )


def _check_hours(name: str, day: str, hours: Hours) -> None:
    previous_end: time | None = None
    for start, end in hours:
        if end != time(0) and end <= start:
            raise ValueError(f"calendar {name}: {day} range {start:%H:%M}-{end:%H:%M} must end after it starts")
        if previous_end is not None and (previous_end == time(0) or start < previous_end):
            raise ValueError(f"calendar {name}: {day} ranges must be in order and must not overlap")
        previous_end = end


def _format_hours(hours: Hours) -> str:
    return ",".join(f"{s:%H:%M}-{'24:00' if e == time(0) else format(e, '%H:%M')}" for s, e in hours)


def _require_aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {at.isoformat()}")


def _windows_from(cal: BusinessCalendar, at: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals (UTC) that end after ``at``, in order, starting on ``at``'s local date."""
    day = at.astimezone(cal.zone).date() - timedelta(days=1)  # a window from the previous evening may still be open
    for offset in range(_SEARCH_DAYS):
        current = day + timedelta(days=offset)
        for start, end in cal.hours_on(current):
            start_at = datetime.combine(current, start, cal.zone).astimezone(UTC)
            end_day = current + timedelta(days=1) if end == time(0) else current
            end_at = datetime.combine(end_day, end, cal.zone).astimezone(UTC)
            if end_at > at:
                yield max(start_at, at), end_at
    raise ValueError(f"calendar {cal.name}: no business hours within {_SEARCH_DAYS} days of {at.isoformat()}")


def is_business_time(cal: BusinessCalendar, at: datetime) -> bool:
    """Whether the desk is open at ``at`` (ranges include their start, exclude their end)."""
    _require_aware(at, "at")
    if cal.always:
        return True
    start_at, _ = next(_windows_from(cal, at))
    return start_at == at.astimezone(UTC)


def next_business_start(cal: BusinessCalendar, at: datetime) -> datetime:
    """``at`` itself if the desk is open then, else the moment it next opens (UTC)."""
    _require_aware(at, "at")
    if cal.always:
        return at.astimezone(UTC)
    start_at, _ = next(_windows_from(cal, at.astimezone(UTC)))
    return start_at


def add_business_time(cal: BusinessCalendar, start_at: datetime, duration: timedelta) -> datetime:
    """The instant when ``duration`` of business time has passed since ``start_at`` (UTC).

    A zero duration gives ``start_at`` itself; a duration that ends exactly at
    closing time gives the closing time, not the next opening.
    """
    _require_aware(start_at, "start_at")
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    start_at = start_at.astimezone(UTC)
    if cal.always or not duration:
        return start_at + duration
    remaining = duration
    for open_at, close_at in _windows_from(cal, start_at):
        if remaining <= close_at - open_at:
            return open_at + remaining
        remaining -= close_at - open_at
    raise AssertionError("unreachable: _windows_from raises when it runs out")  # pragma: no cover


def business_time_between(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Business time from ``a`` to ``b``; zero if ``b`` is not after ``a``."""
    _require_aware(a, "a")
    _require_aware(b, "b")
    a, b = a.astimezone(UTC), b.astimezone(UTC)
    if b <= a:
        return timedelta(0)
    if cal.always:
        return b - a
    total = timedelta(0)
    for open_at, close_at in _windows_from(cal, a):
        if open_at >= b:
            break
        total += min(close_at, b) - open_at
    return total
