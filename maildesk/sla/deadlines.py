"""SLA deadlines of a ticket: first response, resolution, progress reports — and how each was computed.

The clock of a target runs on the queue's business calendar, or 24×7 when the
policy says ``clock = "24x7"`` (urgent by default).  While the ticket waits on
the requester (a pause) the clock stops: each closed pause that starts before
a deadline moves it by the business time the pause covered.  A pause still
open means the clock is stopped now: the deadline is unknown (None), so
nothing can breach until the requester answers and the deadline is recomputed.
Recompute whenever the priority or the pauses change — everything here is a
pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from maildesk.domain import Deadlines, Priority
from maildesk.sla.calendar import BusinessCalendar, add_business_time, business_time_between
from maildesk.sla.policy import SlaPolicy, Span

Pause = tuple[datetime, datetime | None]
_ALWAYS = BusinessCalendar.always_open()


def clock_for(policy: SlaPolicy, priority: Priority, calendar: BusinessCalendar) -> BusinessCalendar:
    """The calendar the targets of ``priority`` run on: ``calendar``, or 24×7."""
    return _ALWAYS if policy.target(priority).clock == "24x7" else calendar


def compute_deadlines(
    priority: Priority,
    created_at: datetime,
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    *,
    paused: Sequence[Pause] = (),
) -> Deadlines:
    """Deadlines for a ticket of ``priority`` created at ``created_at`` (aware UTC), with explanation lines."""
    target = policy.target(priority)
    clock = clock_for(policy, priority, calendar)
    created_at = created_at.astimezone(UTC)
    pauses = merge_pauses(created_at, paused)
    lines = [
        f"priority {priority.value}: policy {policy.policy_id} ({target.location}),"
        f" clock {clock.describe() if clock is calendar else '24×7'}",
        f"created {_local(created_at, calendar)}",
    ]
    lines += [_describe_pause(clock, start, end, calendar) for start, end in pauses]
    first = _deadline("first response", target.first_response, created_at, clock, pauses, calendar, lines)
    resolve = _deadline("resolution", target.resolution, created_at, clock, pauses, calendar, lines)
    if target.progress_every:
        lines.append(f"progress report every {_minutes(target.progress_every)} until resolved")
    return Deadlines(first, resolve, target.progress_every, tuple(lines))


def merge_pauses(created_at: datetime, paused: Sequence[Pause]) -> list[Pause]:
    """Pauses clipped to start at ``created_at``, sorted, overlaps merged; an open one ends the list."""
    merged: list[Pause] = []
    for start, end in sorted(paused, key=lambda p: p[0]):
        start = max(start.astimezone(UTC), created_at)
        end = end.astimezone(UTC) if end is not None else None
        if end is not None and end <= start:
            continue
        if merged and (merged[-1][1] is None or start <= merged[-1][1]):
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, None if last_end is None or end is None else max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _deadline(
    name: str,
    span: Span | None,
    created_at: datetime,
    clock: BusinessCalendar,
    pauses: list[Pause],
    calendar: BusinessCalendar,
    lines: list[str],
) -> datetime | None:
    if span is None:
        lines.append(f"{name}: no target for this priority")
        return None
    duration = span.to_timedelta(clock.day_length)
    due = add_business_time(clock, created_at, duration)
    how = _span_text(span, clock, duration)
    for start, end in pauses:
        if start >= due:
            break
        if end is None:
            lines.append(f"{name}: {how}; clock stopped since {_local(start, calendar)} (waiting on requester): no deadline")
            return None
        due = add_business_time(clock, due, business_time_between(clock, start, end))
    lines.append(f"{name}: {how} from creation{' plus pauses' if pauses else ''} → due {_local(due, calendar)}")
    return due


def is_breached(deadline_at: datetime | None, now_at: datetime, paused: Sequence[Pause] = ()) -> bool:
    """Whether ``deadline_at`` has passed at ``now_at``; never while a pause is open or without a deadline.

    ``deadline_at`` must already include closed pauses (``compute_deadlines``).
    """
    if deadline_at is None or any(end is None and start <= now_at for start, end in paused):
        return False
    return now_at > deadline_at


def business_time_left(clock: BusinessCalendar, deadline_at: datetime, now_at: datetime) -> timedelta:
    """Business time from ``now_at`` until ``deadline_at``; negative once it has passed (for reminders)."""
    if now_at <= deadline_at:
        return business_time_between(clock, now_at, deadline_at)
    return -business_time_between(clock, deadline_at, now_at)


def next_progress_at(progress_every: timedelta, created_at: datetime, last_report_at: datetime | None) -> datetime:
    """When the next progress report is due: ``progress_every`` after the last one (or creation)."""
    if progress_every <= timedelta(0):
        raise ValueError(f"progress interval must be positive, got {progress_every}")
    return (last_report_at or created_at).astimezone(UTC) + progress_every


def _span_text(span: Span, clock: BusinessCalendar, duration: timedelta) -> str:
    kind = "elapsed time (24×7)" if clock.always else "business time"
    if span.working_days:
        extra = f" + {_minutes(timedelta(minutes=span.minutes))}" if span.minutes else ""
        days = f"{span.working_days} × {_minutes(clock.day_length)}{extra}"
        return f"{span.text} = {days} = {_minutes(duration)} of {kind}"
    return f"{span.text} of {kind}"


def _describe_pause(clock: BusinessCalendar, start: datetime, end: datetime | None, calendar: BusinessCalendar) -> str:
    if end is None:
        return f"paused since {_local(start, calendar)} (waiting on requester, still open)"
    covered = business_time_between(clock, start, end)
    return f"paused {_local(start, calendar)} → {_local(end, calendar)}: +{_minutes(covered)} of clock time"


def _local(at: datetime, calendar: BusinessCalendar) -> str:
    return at.astimezone(calendar.zone).strftime("%Y-%m-%d %H:%M %Z (%a)")


def _minutes(delta: timedelta) -> str:
    total = int(delta.total_seconds() // 60)
    hours, minutes = divmod(total, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
