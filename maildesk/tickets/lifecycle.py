"""What automatic mail a ticket is due at a moment, and how a requester's mail moves it.

Pure: the sweep passes the facts of one ticket, the policy, the time and the
calendar the ticket's targets run on (24×7 for a 24×7 target); it gets back
``Due`` values whose ``dedup_key`` becomes the outbox row's unique key, so a
sweep that runs twice, or two daemons, send each mail once.

| kind               | to                               | due                                                    |
| ------------------ | -------------------------------- | ------------------------------------------------------ |
| `deadline_warning` | assignee (group when unassigned) | `warn_share` of the business time to a deadline        |
| `escalation`       | level 1 group lead, 2 supervisor | at the first-response (1) or resolution (2) deadline   |
| `progress_report`  | supervisors                      | every `progress_every` from creation until resolved    |
| `pending_reminder` | requester                        | every `pending_reminder_after` waiting, at most `max`  |
| `auto_close`       | requester                        | `auto_close_after` after resolution or their last mail |

A ticket waiting on the requester (pending) neither warns nor escalates: its
deadlines are recomputed when the pause ends.  Of the repeating kinds only
the latest missed occurrence is due, so a sweep after downtime sends no burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from maildesk.domain import Priority, TicketStatus
from maildesk.sla.calendar import (
    BusinessCalendar,
    add_business_time,
    business_time_between,
    next_business_start,
)
from maildesk.sla.deadlines import merge_pauses

S = TicketStatus
ACTIVE = frozenset({S.NEW, S.OPEN, S.PENDING})
LATEST_ONLY = frozenset({"progress_report", "pending_reminder"})
ESCALATION_LEVELS = {"first_response": 1, "resolution": 2}
CLOSED_POLICIES = ("new-ticket", "note")


@dataclass(frozen=True)
class TicketFacts:
    """What the sweep knows about one ticket; every time is an aware UTC datetime."""

    number: str
    status: TicketStatus
    priority: Priority
    created_at: datetime
    first_response_at: datetime | None
    first_response_due_at: datetime | None
    resolve_due_at: datetime | None
    resolved_at: datetime | None
    pending_since_at: datetime | None
    last_requester_at: datetime | None
    escalation_level: int
    progress_every: timedelta | None
    assignee: str | None
    group: str | None
    paused: tuple[tuple[datetime, datetime | None], ...] = ()

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError(f"ticket {self.number}: created_at must be an aware datetime")
        if self.escalation_level < 0:
            raise ValueError(f"ticket {self.number}: escalation_level must not be negative")
        if self.progress_every is not None and self.progress_every <= timedelta(0):
            raise ValueError(f"ticket {self.number}: progress_every must be positive, got {self.progress_every}")

    @property
    def paused_now(self) -> bool:
        """Waiting on the requester: the SLA clock is stopped."""
        return self.status is S.PENDING or self.pending_since_at is not None


@dataclass(frozen=True)
class LifecyclePolicy:
    """When reminders, auto-close and reopening happen; checked when built."""

    warn_share: float = 0.75
    pending_reminder_after: timedelta = timedelta(days=2)
    pending_reminder_max: int = 2
    auto_close_after: timedelta = timedelta(days=3)
    reopen_window: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if not 0 < self.warn_share < 1:
            raise ValueError(f"warn_share must be between 0 and 1, got {self.warn_share}")
        for name in ("pending_reminder_after", "auto_close_after", "reopen_window"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be a positive duration, got {getattr(self, name)}")
        if self.pending_reminder_max < 0:
            raise ValueError(f"pending_reminder_max must not be negative, got {self.pending_reminder_max}")


@dataclass(frozen=True)
class Due:
    """One automatic mail that is due; ``dedup_key`` is the outbox's unique key."""

    kind: str
    due_at: datetime
    dedup_key: str
    level: int | None = None
    deadline: str | None = None


@dataclass(frozen=True)
class _Slot:
    """A scheduled mail and the moment it stops making sense (``until``, exclusive)."""

    due: Due
    until: datetime | None = None

    def open_at(self, at: datetime) -> bool:
        return self.due.due_at <= at and (self.until is None or at < self.until)


def plan(facts: TicketFacts, policy: LifecyclePolicy, *, now_at: datetime, calendar: BusinessCalendar) -> tuple[Due, ...]:
    """Every automatic mail due at ``now_at``: the same facts and time always give the same keys."""
    due = [slot.due for slot in _slots(facts, policy, calendar, now_at) if slot.open_at(now_at)]
    latest: dict[str, Due] = {}
    kept = []
    for item in due:
        if item.kind in LATEST_ONLY:
            if item.kind not in latest or item.due_at > latest[item.kind].due_at:
                latest[item.kind] = item
        else:
            kept.append(item)
    return tuple(sorted(kept + list(latest.values()), key=lambda d: (d.due_at, d.dedup_key)))


def next_due_at(
    facts: TicketFacts, policy: LifecyclePolicy, *, calendar: BusinessCalendar, after: datetime | None = None
) -> datetime | None:
    """The earliest moment after ``after`` at which ``plan`` has something new; None if nothing ever will.

    The sweep passes its ``now_at`` as ``after`` once it has queued what ``plan``
    returned, and stores the result (indexed) so it only looks at tickets that
    are due.  Without ``after`` the ticket's whole schedule counts, from creation.
    """
    at = after if after is not None else facts.created_at
    moments = [
        slot.due.due_at
        for slot in _slots(facts, policy, calendar, at)
        if (after is None or slot.due.due_at > after) and slot.open_at(slot.due.due_at)
    ]
    return min(moments, default=None)


def audience(due: Due, facts: TicketFacts) -> tuple[str, str | None]:
    """Who gets ``due``: ``("assignee", id)``, ``("group", id)``, ``("group-lead", group)``,
    ``("supervisor", None)``, ``("supervisors", None)`` or ``("requester", None)``."""
    if due.kind == "deadline_warning":
        return ("assignee", facts.assignee) if facts.assignee else ("group", facts.group)
    if due.kind == "escalation":
        return ("group-lead", facts.group) if due.level == 1 else ("supervisor", None)
    if due.kind == "progress_report":
        return ("supervisors", None)
    return ("requester", None)


def defer_to_business_hours(at: datetime, calendar: BusinessCalendar, *, urgent: bool) -> datetime:
    """When to send a reminder due at ``at``: at once if urgent, else when the recipient's day starts."""
    return at if urgent else next_business_start(calendar, at)


# --- the schedule ------------------------------------------------------------------------------


def _slots(facts: TicketFacts, policy: LifecyclePolicy, calendar: BusinessCalendar, at: datetime) -> list[_Slot]:
    """Every scheduled mail of the ticket; repeating kinds around ``at`` (the latest and the next)."""
    if facts.status is S.CLOSED:
        return []
    slots: list[_Slot] = []
    if facts.status in ACTIVE and not facts.paused_now:
        slots += _deadline_slots(facts, policy, calendar)
    if facts.status in ACTIVE:
        slots += _progress_slots(facts, at)
    slots += _pending_slots(facts, policy)
    slots += _auto_close_slots(facts, policy)
    return slots


def _open_deadlines(facts: TicketFacts) -> list[tuple[str, datetime]]:
    """Deadlines still running: first response until someone answered, resolution until resolved."""
    running = []
    if facts.first_response_at is None and facts.first_response_due_at is not None:
        running.append(("first_response", facts.first_response_due_at))
    if facts.resolve_due_at is not None:
        running.append(("resolution", facts.resolve_due_at))
    return running


def _deadline_slots(facts: TicketFacts, policy: LifecyclePolicy, calendar: BusinessCalendar) -> list[_Slot]:
    """A warning at ``warn_share`` of each running deadline, an escalation when it passes."""
    slots = []
    for name, deadline_at in _open_deadlines(facts):
        warn_at = warning_at(facts.created_at, deadline_at, policy.warn_share, calendar, facts.paused)
        key = f"{facts.number}:warn:{name}:{warn_at:%Y%m%dT%H%M}"
        slots.append(_Slot(Due("deadline_warning", warn_at, key, deadline=name), until=deadline_at))
        level = ESCALATION_LEVELS[name]
        if level > facts.escalation_level:
            key = f"{facts.number}:escalation:{level}"
            slots.append(_Slot(Due("escalation", deadline_at, key, level=level, deadline=name)))
    return slots


def warning_at(
    created_at: datetime,
    deadline_at: datetime,
    share: float,
    calendar: BusinessCalendar,
    paused: tuple[tuple[datetime, datetime | None], ...] = (),
) -> datetime:
    """The moment ``share`` of the clock time from creation to ``deadline_at`` has run.

    Closed pauses before the deadline stopped the clock, as in ``sla.deadlines``:
    they neither count towards the share nor let the warning fall inside them.
    """
    pauses = [(s, e) for s, e in merge_pauses(created_at, paused) if e is not None and s < deadline_at]
    covered = [business_time_between(calendar, s, e) for s, e in pauses]
    running = business_time_between(calendar, created_at, deadline_at) - sum(covered, timedelta())
    warn = add_business_time(calendar, created_at, max(running, timedelta()) * share)
    for (start, _end), extra in zip(pauses, covered, strict=True):
        if start >= warn:
            break
        warn = add_business_time(calendar, warn, extra)
    return min(warn, deadline_at)


def _progress_slots(facts: TicketFacts, at: datetime) -> list[_Slot]:
    """The latest progress report at or before ``at`` (if any) and the next one."""
    every = facts.progress_every
    if every is None:
        return []
    count = max(0, (at - facts.created_at) // every)
    slots = []
    for k in (count, count + 1):
        if k >= 1:
            due_at = facts.created_at + k * every
            slots.append(_Slot(Due("progress_report", due_at, f"{facts.number}:progress:{k}")))
    return slots


def _pending_slots(facts: TicketFacts, policy: LifecyclePolicy) -> list[_Slot]:
    """Reminders to the requester while the ticket waits on them, up to the policy's maximum."""
    since = facts.pending_since_at
    if facts.status is not S.PENDING or since is None:
        return []
    return [
        _Slot(Due("pending_reminder", since + n * policy.pending_reminder_after,
                  f"{facts.number}:pending:{since:%Y%m%dT%H%M}:{n}"))
        for n in range(1, policy.pending_reminder_max + 1)
    ]


def _auto_close_slots(facts: TicketFacts, policy: LifecyclePolicy) -> list[_Slot]:
    """A resolved ticket closes once the requester stayed silent for ``auto_close_after``.

    A short thanks after resolution does not reopen the ticket; it restarts the wait.
    """
    if facts.status is not S.RESOLVED or facts.resolved_at is None:
        return []
    quiet_since = max(facts.resolved_at, facts.last_requester_at or facts.resolved_at)
    return [_Slot(Due("auto_close", quiet_since + policy.auto_close_after, f"{facts.number}:auto-close"))]


# --- a requester's mail on an existing ticket --------------------------------------------------


@dataclass(frozen=True)
class Reaction:
    """What a requester's mail does to its ticket (issue 5, items 1 and 3)."""

    new_status: TicketStatus | None
    reopen: bool
    new_ticket: bool
    note_only: bool
    reason: str


def after_requester_mail(
    status: TicketStatus,
    *,
    resolved_at: datetime | None,
    now_at: datetime,
    policy: LifecyclePolicy,
    text_says_not_solved: bool,
    text_is_short_thanks: bool,
    closed_policy: str = "new-ticket",
) -> Reaction:
    """How the ticket reacts to a requester's reply, given what the reply's new text says."""
    if closed_policy not in CLOSED_POLICIES:
        raise ValueError(f"closed_policy must be one of {', '.join(CLOSED_POLICIES)}, got {closed_policy!r}")
    if status is S.PENDING:
        return Reaction(S.OPEN, False, False, False, "the requester answered: waiting ends, the SLA clock runs")
    if status in (S.NEW, S.OPEN):
        return Reaction(None, False, False, False, "a reply on an active ticket")
    if status is S.RESOLVED:
        if text_says_not_solved:
            return Reaction(S.OPEN, True, False, False, "the requester says the problem is not solved")
        if text_is_short_thanks:
            return Reaction(None, False, False, True, "a short thanks after resolution is recorded, not reopened")
        if resolved_at is None or now_at - resolved_at <= policy.reopen_window:
            return Reaction(S.OPEN, True, False, False, "a reply within the reopen window after resolution")
        return _after_closing(text_is_short_thanks, closed_policy, "a reply after the reopen window")
    return _after_closing(text_is_short_thanks, closed_policy, "a reply to a closed ticket")


def _after_closing(short_thanks: bool, closed_policy: str, why: str) -> Reaction:
    if short_thanks and closed_policy == "note":
        return Reaction(None, False, False, True, f"{why}: a short thanks becomes an internal note")
    return Reaction(None, False, True, False, f"{why}: a new ticket that links the old one")
