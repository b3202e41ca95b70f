"""The figures of a weekly or monthly report (PROCESS.md §7), computed from plain ticket rows.

Pure: rows, the period, the moment the report looks from (``as_of_at``) and a
timezone for day buckets come in; a frozen ``Report`` goes out.  Definitions,
for a period ``[start_at, end_at)`` seen at ``as_of_at`` (at most ``end_at``;
whatever happened later is ignored, so a past period always gives the same
figures):

- new: created in the period; resolved: ``resolved_at`` in the period;
  open: created before the end and neither resolved nor closed by then.
- breakdowns by category, priority, group and agent count new and resolved.
- first-response time: new tickets answered by ``as_of_at``, wall-clock
  minutes from creation; resolution time: resolved tickets, creation to
  resolution.  Median (mean of the middle two) and 90th percentile (nearest
  rank: the ``ceil(0.9 n)``-th smallest).
- SLA per priority, over new tickets with a due time: met when done by the
  due time; breached when done after it, or not done and the due time passed
  by ``as_of_at``; undecided otherwise (not counted).
- satisfaction: ratings given in the period (``rated_at``; the resolution
  time stands in when a rating has none); score 非常满意=4 … 不满意=1, mean.
- reopen rate: share of the tickets resolved in the period reopened at least once.
- the trend compares with the previous period of equal length.

Requesters are masked (``maildesk.privacy``) wherever a ticket is listed.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo

from maildesk.privacy import mask_email, mask_name, mask_text, remove_names
from maildesk.reports.terms import Term, frequent_phrases, frequent_terms

PRIORITIES = ("urgent", "high", "medium", "low")
SATISFACTION_LEVELS = ("very-satisfied", "satisfied", "neutral", "dissatisfied")
SATISFACTION_SCORE = {"very-satisfied": 4, "satisfied": 3, "neutral": 2, "dissatisfied": 1}
UNASSIGNED = "-"


@dataclass(frozen=True)
class TicketRow:
    """What the report needs of one ticket; ``body`` is the text of its first request."""

    number: str
    subject: str
    body: str
    status: str
    priority: str
    category: str
    group: str | None
    assignee: str | None
    requester_name: str
    requester_addr: str
    created_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    first_response_due_at: datetime | None = None
    resolve_due_at: datetime | None = None
    satisfaction: str | None = None
    rated_at: datetime | None = None
    reopened_count: int = 0


@dataclass(frozen=True)
class Period:
    """``[start_at, end_at)``, aware datetimes."""

    start_at: datetime
    end_at: datetime

    def __post_init__(self) -> None:
        if self.start_at.tzinfo is None or self.end_at.tzinfo is None:
            raise ValueError("a report period needs aware datetimes")
        if self.end_at <= self.start_at:
            raise ValueError(f"a report period must end after it starts ({self.start_at} .. {self.end_at})")

    def previous(self) -> Period:
        """The period of equal length just before this one."""
        return Period(self.start_at - (self.end_at - self.start_at), self.start_at)

    def contains(self, at: datetime | None) -> bool:
        return at is not None and self.start_at <= at < self.end_at


@dataclass(frozen=True)
class Breakdown:
    key: str
    new: int
    resolved: int


@dataclass(frozen=True)
class Durations:
    """Wall-clock minutes."""

    count: int
    median_minutes: float | None
    p90_minutes: float | None


@dataclass(frozen=True)
class SlaLine:
    priority: str
    response_met: int
    response_breached: int
    resolve_met: int
    resolve_breached: int

    @property
    def response_rate(self) -> float | None:
        return _rate(self.response_met, self.response_met + self.response_breached)

    @property
    def resolve_rate(self) -> float | None:
        return _rate(self.resolve_met, self.resolve_met + self.resolve_breached)


@dataclass(frozen=True)
class Breach:
    """A ticket that missed a target: ``kind`` is ``response`` or ``resolution``."""

    number: str
    priority: str
    kind: str
    due_at: datetime
    done_at: datetime | None
    overdue_minutes: float
    subject: str
    requester: str
    assignee: str


@dataclass(frozen=True)
class Satisfaction:
    counts: tuple[tuple[str, int], ...]  # every level of SATISFACTION_LEVELS, in order
    rated: int
    score: float | None


@dataclass(frozen=True)
class DayCount:
    day: date
    new: int
    resolved: int


@dataclass(frozen=True)
class TrendLine:
    metric: str
    current: float | None
    previous: float | None

    @property
    def delta(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return round(self.current - self.previous, 4)


@dataclass(frozen=True)
class Report:
    period: Period
    as_of_at: datetime
    new: int
    resolved: int
    open: int
    by_category: tuple[Breakdown, ...]
    by_priority: tuple[Breakdown, ...]
    by_group: tuple[Breakdown, ...]
    by_agent: tuple[Breakdown, ...]
    first_response: Durations
    resolution: Durations
    sla: tuple[SlaLine, ...]
    breaches: tuple[Breach, ...]
    satisfaction: Satisfaction
    reopened: int
    reopen_rate: float | None
    top_terms: tuple[Term, ...]
    top_phrases: tuple[Term, ...]
    daily: tuple[DayCount, ...]
    trend: tuple[TrendLine, ...]

    @property
    def response_compliance(self) -> float | None:
        return _rate(sum(s.response_met for s in self.sla),
                     sum(s.response_met + s.response_breached for s in self.sla))

    @property
    def resolve_compliance(self) -> float | None:
        return _rate(sum(s.resolve_met for s in self.sla),
                     sum(s.resolve_met + s.resolve_breached for s in self.sla))


def compute_report(rows: Sequence[TicketRow], period: Period, as_of_at: datetime, zone: tzinfo) -> Report:
    """Every figure of the report for ``period``, with the trend against the previous period."""
    as_of_at = min(as_of_at, period.end_at)
    current = _figures(rows, period, as_of_at, zone)
    previous = _figures(rows, period.previous(), period.start_at, zone)
    return replace(current, trend=_trend(current, previous))


def _figures(rows: Sequence[TicketRow], period: Period, as_of_at: datetime, zone: tzinfo) -> Report:
    """The report of one period, without its trend."""
    new = [r for r in rows if period.contains(r.created_at) and r.created_at <= as_of_at]
    resolved = [r for r in rows if period.contains(r.resolved_at) and _seen(r.resolved_at, as_of_at)]
    sla, breaches = _sla(new, as_of_at)
    reopened = sum(1 for r in resolved if r.reopened_count > 0)
    texts = [remove_names(mask_text(f"{r.subject}\n{r.body}"), (r.requester_name,)) for r in new]
    return Report(
        period=period,
        as_of_at=as_of_at,
        new=len(new),
        resolved=len(resolved),
        open=sum(1 for r in rows if r.created_at < period.end_at and r.created_at <= as_of_at
                 and not _done_by(r, as_of_at)),
        by_category=_breakdown(new, resolved, lambda r: r.category),
        by_priority=tuple(sorted(_breakdown(new, resolved, lambda r: r.priority),
                                 key=lambda b: _priority_rank(b.key))),
        by_group=_breakdown(new, resolved, lambda r: r.group or UNASSIGNED),
        by_agent=_breakdown(new, resolved, lambda r: r.assignee or UNASSIGNED),
        first_response=_durations(_minutes(r.created_at, _seen(r.first_response_at, as_of_at)) for r in new),
        resolution=_durations(_minutes(r.created_at, r.resolved_at) for r in resolved),
        sla=sla,
        breaches=breaches,
        satisfaction=_satisfaction(rows, period, as_of_at),
        reopened=reopened,
        reopen_rate=_rate(reopened, len(resolved)),
        top_terms=frequent_terms(texts),
        top_phrases=frequent_phrases(texts),
        daily=_daily(new, resolved, period, zone),
        trend=(),
    )


def _seen(at: datetime | None, as_of_at: datetime) -> datetime | None:
    """``at`` if it had happened by ``as_of_at``."""
    return at if at is not None and at <= as_of_at else None


def _done_by(row: TicketRow, at: datetime) -> bool:
    return _seen(row.resolved_at, at) is not None or _seen(row.closed_at, at) is not None


def _minutes(start_at: datetime, end_at: datetime | None) -> float | None:
    return None if end_at is None else (end_at - start_at).total_seconds() / 60


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _breakdown(new: Sequence[TicketRow], resolved: Sequence[TicketRow],
               key: Callable[[TicketRow], str]) -> tuple[Breakdown, ...]:
    new_count, resolved_count = Counter(map(key, new)), Counter(map(key, resolved))
    keys = set(new_count) | set(resolved_count)
    order = sorted(keys, key=lambda k: (-new_count[k], -resolved_count[k], k))
    return tuple(Breakdown(k, new_count[k], resolved_count[k]) for k in order)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the ``ceil(fraction * n)``-th smallest value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _durations(minutes: Iterable[float | None]) -> Durations:
    values = [m for m in minutes if m is not None]
    if not values:
        return Durations(0, None, None)
    return Durations(len(values), round(statistics.median(values), 1), round(percentile(values, 0.9), 1))


def _sla(new: Sequence[TicketRow], as_of_at: datetime) -> tuple[tuple[SlaLine, ...], tuple[Breach, ...]]:
    tally: dict[str, list[int]] = {p: [0, 0, 0, 0] for p in PRIORITIES}
    breaches: list[Breach] = []
    for row in new:
        counts = tally.setdefault(row.priority, [0, 0, 0, 0])
        checks = (("response", row.first_response_due_at, row.first_response_at, 0),
                  ("resolution", row.resolve_due_at, row.resolved_at, 2))
        for kind, due_at, done_at, slot in checks:
            outcome = _sla_outcome(due_at, _seen(done_at, as_of_at), as_of_at)
            if outcome is None or due_at is None:
                continue
            counts[slot + (0 if outcome else 1)] += 1
            if not outcome:
                breaches.append(_breach(row, kind, due_at, _seen(done_at, as_of_at), as_of_at))
    lines = tuple(SlaLine(p, *tally[p]) for p in sorted(tally, key=_priority_rank) if any(tally[p]))
    breaches.sort(key=lambda b: (_priority_rank(b.priority), -b.overdue_minutes, b.number))
    return lines, tuple(breaches)


def _sla_outcome(due_at: datetime | None, done_at: datetime | None, as_of_at: datetime) -> bool | None:
    """True met, False breached, None not decided yet (or no target)."""
    if due_at is None:
        return None
    if done_at is not None:
        return done_at <= due_at
    return False if due_at < as_of_at else None


def _breach(row: TicketRow, kind: str, due_at: datetime, done_at: datetime | None, as_of_at: datetime) -> Breach:
    late = ((done_at or as_of_at) - due_at).total_seconds() / 60
    requester = mask_name(row.requester_name) if row.requester_name else mask_email(row.requester_addr)
    return Breach(number=row.number, priority=row.priority, kind=kind, due_at=due_at, done_at=done_at,
                  overdue_minutes=round(late, 1), subject=mask_text(row.subject), requester=requester,
                  assignee=row.assignee or UNASSIGNED)


def _priority_rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


def _satisfaction(rows: Sequence[TicketRow], period: Period, as_of_at: datetime) -> Satisfaction:
    given = [r.satisfaction for r in rows if r.satisfaction in SATISFACTION_SCORE
             and period.contains(_seen(r.rated_at or r.resolved_at, as_of_at))]
    counts = Counter(given)
    score = round(statistics.fmean(SATISFACTION_SCORE[g] for g in given if g), 2) if given else None
    return Satisfaction(tuple((level, counts[level]) for level in SATISFACTION_LEVELS), len(given), score)


def _daily(new: Sequence[TicketRow], resolved: Sequence[TicketRow], period: Period, zone: tzinfo) -> tuple[DayCount, ...]:
    created = Counter(r.created_at.astimezone(zone).date() for r in new)
    done = Counter(r.resolved_at.astimezone(zone).date() for r in resolved if r.resolved_at)
    first = period.start_at.astimezone(zone).date()
    last = (period.end_at - timedelta(microseconds=1)).astimezone(zone).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return tuple(DayCount(day, created[day], done[day]) for day in days)


TREND_METRICS = ("new", "resolved", "open", "first_response_median", "resolution_median",
                 "response_compliance", "resolve_compliance", "satisfaction_score", "reopen_rate")


def _trend(current: Report, previous: Report) -> tuple[TrendLine, ...]:
    def values(r: Report) -> tuple[float | None, ...]:
        return (r.new, r.resolved, r.open, r.first_response.median_minutes, r.resolution.median_minutes,
                r.response_compliance, r.resolve_compliance, r.satisfaction.score, r.reopen_rate)

    return tuple(TrendLine(m, c, p) for m, c, p in zip(TREND_METRICS, values(current), values(previous),
                                                        strict=True))
