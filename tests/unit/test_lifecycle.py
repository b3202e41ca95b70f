"""Time-travel tests of the ticket lifecycle: what automatic mail is due when, and once (explicit times, no clock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from maildesk.domain import Priority, TicketStatus
from maildesk.sla.calendar import BusinessCalendar
from maildesk.tickets.lifecycle import (
    Due,
    LifecyclePolicy,
    TicketFacts,
    after_requester_mail,
    audience,
    defer_to_business_hours,
    next_due_at,
    plan,
    warning_at,
)

S = TicketStatus
SH = ZoneInfo("Asia/Shanghai")
POLICY = LifecyclePolicy()
OFFICE = BusinessCalendar.weekly_hours(
    "office", "Asia/Shanghai", {day: ((time(9, 0), time(18, 0)),) for day in range(5)}
)
ALWAYS = BusinessCalendar.always_open()
MIN = timedelta(minutes=1)


def at(*args: int) -> datetime:
    """A Shanghai wall-clock time as aware UTC (2026-11-23 is a Monday)."""
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc,arg-type]


def ticket(**changes: object) -> TicketFacts:
    base = TicketFacts(
        number="TS20261123001", status=S.OPEN, priority=Priority.MEDIUM, created_at=at(2026, 11, 23, 10, 0),
        first_response_at=None, first_response_due_at=at(2026, 11, 23, 12, 0), resolve_due_at=at(2026, 11, 24, 10, 0),
        resolved_at=None, pending_since_at=None, last_requester_at=None, escalation_level=0, progress_every=None,
        assignee="zhang", group="software",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def urgent(**changes: object) -> TicketFacts:
    """Urgent, 24×7: respond in 15 min, resolve in 2 h, progress every 30 min."""
    base: dict[str, object] = {"priority": Priority.URGENT, "first_response_due_at": at(2026, 11, 23, 10, 15),
                               "resolve_due_at": at(2026, 11, 23, 12, 0), "progress_every": timedelta(minutes=30)}
    return ticket(**{**base, **changes})


Event = tuple[datetime, dict[str, object]]


def sweep(
    facts: TicketFacts, calendar: BusinessCalendar, until: datetime, events: Sequence[Event] = (), *,
    every: timedelta | None = MIN,
) -> list[tuple[datetime, Due]]:
    """A sweeping daemon: every ``every`` (or, with None, at each ``next_due_at`` and event), plan and queue.

    The outbox holds one row per dedup key; an escalation raises the ticket's level, as the runner does.
    """
    queued: dict[str, tuple[datetime, Due]] = {}
    pending = sorted(events, key=lambda e: e[0])
    now = facts.created_at
    while now <= until:
        while pending and pending[0][0] <= now:
            facts = replace(facts, **pending.pop(0)[1])  # type: ignore[arg-type]
        for due in plan(facts, POLICY, now_at=now, calendar=calendar):
            queued.setdefault(due.dedup_key, (now, due))
            if due.kind == "escalation" and due.level:
                facts = replace(facts, escalation_level=max(facts.escalation_level, due.level))
        if every is not None:
            now += every
            continue
        moments = [m for m in (next_due_at(facts, POLICY, calendar=calendar, after=now),) if m is not None]
        moments += [e[0] for e in pending]
        if not moments:
            break
        now = min(moments)
    return sorted(queued.values(), key=lambda sent: (sent[0], sent[1].dedup_key))


def keys(sent: list[tuple[datetime, Due]]) -> list[str]:
    return [due.dedup_key for _, due in sent]


# --- whole lives -------------------------------------------------------------------------------


def test_an_urgent_ticket_warns_at_75_percent_escalates_at_each_breach_and_reports_every_30_minutes() -> None:
    events: list[Event] = [
        (at(2026, 11, 23, 10, 20), {"first_response_at": at(2026, 11, 23, 10, 20)}),
        (at(2026, 11, 23, 12, 10), {"status": S.RESOLVED, "resolved_at": at(2026, 11, 23, 12, 10)}),
    ]
    sent = sweep(urgent(), ALWAYS, at(2026, 11, 27, 0, 0), events)
    assert [(when.astimezone(SH).strftime("%d %H:%M"), due.kind, due.level) for when, due in sent] == [
        ("23 10:12", "deadline_warning", None),  # 75 % of 15 min = 10:11:15, next minute's sweep
        ("23 10:15", "escalation", 1),  # no first response: group lead
        ("23 10:30", "progress_report", None),
        ("23 11:00", "progress_report", None),
        ("23 11:30", "progress_report", None),
        ("23 11:30", "deadline_warning", None),  # 75 % of 2 h
        ("23 12:00", "escalation", 2),  # not resolved: on-duty supervisor
        ("23 12:00", "progress_report", None),
        ("26 12:10", "auto_close", None),  # nothing else after resolution
    ]
    assert keys(sent)[:3] == [
        "TS20261123001:warn:first_response:20261123T0211", "TS20261123001:escalation:1", "TS20261123001:progress:1"
    ]


def test_a_high_ticket_warns_at_75_percent_of_business_time_not_of_wall_clock() -> None:
    friday = ticket(priority=Priority.HIGH, created_at=at(2026, 11, 27, 17, 0),
                    first_response_due_at=at(2026, 11, 27, 17, 30), resolve_due_at=at(2026, 11, 30, 12, 0))
    events: list[Event] = [(at(2026, 11, 27, 17, 25), {"first_response_at": at(2026, 11, 27, 17, 25)})]
    sent = sweep(friday, OFFICE, at(2026, 11, 30, 18, 0), events, every=None)
    assert [(when, due.kind, due.deadline) for when, due in sent] == [
        (at(2026, 11, 27, 17, 22, 30), "deadline_warning", "first_response"),
        (at(2026, 11, 30, 11, 0), "deadline_warning", "resolution"),  # 1 h Friday + 2 h Monday of 4 h
        (at(2026, 11, 30, 12, 0), "escalation", "resolution"),
    ]


def test_a_medium_ticket_answered_and_resolved_in_time_gets_only_the_auto_close() -> None:
    events: list[Event] = [
        (at(2026, 11, 23, 10, 30), {"first_response_at": at(2026, 11, 23, 10, 30)}),
        (at(2026, 11, 23, 15, 0), {"status": S.RESOLVED, "resolved_at": at(2026, 11, 23, 15, 0)}),
    ]
    sent = sweep(ticket(), OFFICE, at(2026, 12, 10, 0, 0), events, every=None)
    # the first-response warning (11:30) and the resolution warning (Monday 16:45) came after the facts
    assert [(when, due.kind) for when, due in sent] == [(at(2026, 11, 26, 15, 0), "auto_close")]


def test_a_low_ticket_nobody_answers_escalates_to_the_group_lead_then_the_supervisor() -> None:
    low = ticket(priority=Priority.LOW, created_at=at(2026, 11, 27, 17, 0),
                 first_response_due_at=at(2026, 11, 30, 17, 0), resolve_due_at=at(2026, 12, 2, 17, 0))
    sent = sweep(low, OFFICE, at(2026, 12, 4, 0, 0), every=None)
    assert [(when, due.kind, due.level) for when, due in sent] == [
        (at(2026, 11, 30, 14, 45), "deadline_warning", None),  # 6 h 45 of 9 h: 1 h Friday + 5 h 45 Monday
        (at(2026, 11, 30, 17, 0), "escalation", 1),
        (at(2026, 12, 2, 10, 15), "deadline_warning", None),  # 75 % of 27 h: 1 + 9 + 9 h, then 1 h 15 Wednesday
        (at(2026, 12, 2, 17, 0), "escalation", 2),
    ]
    assert [audience(due, low) for _, due in sent] == [
        ("assignee", "zhang"), ("group-lead", "software"), ("assignee", "zhang"), ("supervisor", None)
    ]


def test_a_pending_ticket_never_warns_or_escalates_and_reminds_the_requester_at_most_twice() -> None:
    events: list[Event] = [
        (at(2026, 11, 23, 10, 30), {"first_response_at": at(2026, 11, 23, 10, 30), "status": S.PENDING,
                                     "pending_since_at": at(2026, 11, 23, 10, 30), "resolve_due_at": None}),
    ]
    sent = sweep(ticket(), OFFICE, at(2026, 12, 10, 0, 0), events, every=None)
    assert [(when, due.kind, due.dedup_key) for when, due in sent] == [
        (at(2026, 11, 25, 10, 30), "pending_reminder", "TS20261123001:pending:20261123T0230:1"),
        (at(2026, 11, 27, 10, 30), "pending_reminder", "TS20261123001:pending:20261123T0230:2"),
    ]


def test_a_pending_ticket_with_stale_deadlines_still_neither_warns_nor_escalates() -> None:
    paused = ticket(status=S.PENDING, pending_since_at=at(2026, 11, 23, 10, 30))
    assert [d.kind for d in plan(paused, POLICY, now_at=at(2026, 11, 25, 9, 0), calendar=OFFICE)] == []


def test_an_open_pause_stops_warnings_even_when_the_status_says_open() -> None:
    odd = ticket(pending_since_at=at(2026, 11, 23, 10, 30))
    assert plan(odd, POLICY, now_at=at(2026, 11, 24, 12, 0), calendar=OFFICE) == ()


def test_the_sweep_every_minute_and_the_sweep_at_next_due_at_queue_the_same_mails() -> None:
    events: list[Event] = [
        (at(2026, 11, 23, 10, 20), {"first_response_at": at(2026, 11, 23, 10, 20)}),
        (at(2026, 11, 23, 13, 5), {"status": S.RESOLVED, "resolved_at": at(2026, 11, 23, 13, 5)}),
    ]
    by_minute = sweep(urgent(), ALWAYS, at(2026, 11, 27, 0, 0), events)
    on_time = sweep(urgent(), ALWAYS, at(2026, 11, 27, 0, 0), events, every=None)
    assert keys(by_minute) == keys(on_time)
    assert all(when == due.due_at for when, due in on_time)


# --- once, and no bursts ------------------------------------------------------------------------


def test_the_same_plan_twice_gives_the_same_dedup_keys_so_a_second_sweep_sends_nothing() -> None:
    facts, now = urgent(), at(2026, 11, 23, 12, 1)
    first = plan(facts, POLICY, now_at=now, calendar=ALWAYS)
    assert first == plan(facts, POLICY, now_at=now, calendar=ALWAYS)
    outbox = {d.dedup_key for d in first}
    assert {d.dedup_key for d in plan(facts, POLICY, now_at=now + MIN, calendar=ALWAYS)} <= outbox
    assert len(outbox) == len(first)


def test_after_downtime_only_the_latest_progress_report_is_due() -> None:
    due = plan(urgent(first_response_at=at(2026, 11, 23, 10, 5), escalation_level=2), POLICY,
               now_at=at(2026, 11, 23, 13, 10), calendar=ALWAYS)
    assert [d.dedup_key for d in due if d.kind == "progress_report"] == ["TS20261123001:progress:6"]


def test_after_downtime_only_the_latest_pending_reminder_is_due() -> None:
    paused = ticket(status=S.PENDING, pending_since_at=at(2026, 11, 23, 10, 30))
    due = plan(paused, POLICY, now_at=at(2026, 12, 1, 9, 0), calendar=OFFICE)
    assert [d.dedup_key for d in due] == ["TS20261123001:pending:20261123T0230:2"]


def test_a_warning_is_no_longer_due_once_its_deadline_has_passed() -> None:
    due = plan(urgent(), POLICY, now_at=at(2026, 11, 23, 10, 16), calendar=ALWAYS)
    assert [(d.kind, d.deadline) for d in due] == [("escalation", "first_response")]


def test_escalation_never_goes_below_the_ticket_s_current_level() -> None:
    escalated = urgent(escalation_level=2)
    due = plan(escalated, POLICY, now_at=at(2026, 11, 23, 12, 5), calendar=ALWAYS)
    assert [d.kind for d in due] == ["progress_report"]
    assert [d.level for d in plan(urgent(escalation_level=1), POLICY, now_at=at(2026, 11, 23, 12, 5),
                                  calendar=ALWAYS) if d.kind == "escalation"] == [2]


def test_a_recomputed_deadline_gets_a_fresh_warning_key() -> None:
    before = plan(ticket(), POLICY, now_at=at(2026, 11, 23, 11, 40), calendar=OFFICE)
    moved = ticket(first_response_due_at=at(2026, 11, 23, 11, 0))  # re-judged to high
    after = plan(moved, POLICY, now_at=at(2026, 11, 23, 10, 50), calendar=OFFICE)
    assert [d.dedup_key for d in before] == ["TS20261123001:warn:first_response:20261123T0330"]
    assert [d.dedup_key for d in after] == ["TS20261123001:warn:first_response:20261123T0245"]


def test_a_closed_ticket_has_nothing_due_ever() -> None:
    closed = urgent(status=S.CLOSED, resolved_at=at(2026, 11, 23, 11, 0))
    assert plan(closed, POLICY, now_at=at(2026, 12, 30, 0, 0), calendar=ALWAYS) == ()
    assert next_due_at(closed, POLICY, calendar=ALWAYS) is None


def test_a_thanks_after_resolution_restarts_the_auto_close_wait() -> None:
    resolved = ticket(status=S.RESOLVED, resolved_at=at(2026, 11, 23, 15, 0), last_requester_at=at(2026, 11, 24, 9, 0))
    assert next_due_at(resolved, POLICY, calendar=OFFICE) == at(2026, 11, 27, 9, 0)
    assert plan(resolved, POLICY, now_at=at(2026, 11, 26, 15, 0), calendar=OFFICE) == ()


# --- next_due_at --------------------------------------------------------------------------------


@pytest.mark.parametrize("facts", [
    urgent(),
    urgent(first_response_at=at(2026, 11, 23, 10, 3)),
    ticket(),
    ticket(status=S.PENDING, pending_since_at=at(2026, 11, 23, 11, 0)),
    ticket(status=S.RESOLVED, resolved_at=at(2026, 11, 23, 16, 0)),
], ids=["urgent", "urgent-answered", "medium", "pending", "resolved"])
def test_next_due_at_is_the_earliest_due_at_plan_returns_at_that_moment(facts: TicketFacts) -> None:
    calendar = ALWAYS if facts.priority is Priority.URGENT else OFFICE
    now = facts.created_at
    while now < at(2026, 11, 30, 0, 0):
        upcoming = next_due_at(facts, POLICY, calendar=calendar, after=now)
        if upcoming is None:
            break
        seen = {d.dedup_key for d in plan(facts, POLICY, now_at=now, calendar=calendar)}
        new = [d for d in plan(facts, POLICY, now_at=upcoming, calendar=calendar) if d.dedup_key not in seen]
        assert upcoming > now and min(d.due_at for d in new) == upcoming
        just_before = plan(facts, POLICY, now_at=upcoming - timedelta(seconds=1), calendar=calendar)
        assert {d.dedup_key for d in just_before} <= seen
        now = upcoming


def test_next_due_at_without_after_is_the_first_moment_of_the_ticket_s_schedule() -> None:
    assert next_due_at(urgent(), POLICY, calendar=ALWAYS) == at(2026, 11, 23, 10, 11, 15)


# --- pauses and business hours -------------------------------------------------------------------


def test_a_closed_pause_pushes_the_warning_by_the_business_time_it_covered() -> None:
    created, pause = at(2026, 11, 23, 10, 0), (at(2026, 11, 23, 10, 30), at(2026, 11, 23, 11, 30))
    # 2 h target + 1 h pause: due 13:00; 75 % of the 2 h running time is 1 h 30 → 11:30 + the hour paused
    assert warning_at(created, at(2026, 11, 23, 13, 0), 0.75, OFFICE, (pause,)) == at(2026, 11, 23, 12, 30)
    assert warning_at(created, at(2026, 11, 23, 12, 0), 0.75, OFFICE) == at(2026, 11, 23, 11, 30)


def test_non_urgent_reminders_wait_for_business_hours_and_urgent_ones_go_at_once() -> None:
    saturday_night = at(2026, 11, 28, 22, 0)
    assert defer_to_business_hours(saturday_night, OFFICE, urgent=False) == at(2026, 11, 30, 9, 0)
    assert defer_to_business_hours(saturday_night, OFFICE, urgent=True) == saturday_night
    monday_noon = at(2026, 11, 30, 12, 0)
    assert defer_to_business_hours(monday_noon, OFFICE, urgent=False) == monday_noon


# --- the policy checks itself --------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.0, 1.0, 1.5, -0.2])
def test_a_warn_share_outside_zero_and_one_is_refused_with_its_name(share: float) -> None:
    with pytest.raises(ValueError, match="warn_share must be between 0 and 1"):
        LifecyclePolicy(warn_share=share)


def test_a_zero_auto_close_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="auto_close_after must be a positive duration"):
        LifecyclePolicy(auto_close_after=timedelta(0))


def test_a_non_positive_progress_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="progress_every must be positive"):
        urgent(progress_every=timedelta(0))


# --- a requester's mail ---------------------------------------------------------------------------

RESOLVED_AT = at(2026, 11, 23, 15, 0)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("status", "after", "not_solved", "thanks", "closed_policy", "expected"),
    [
        (S.PENDING, DAY, False, False, "new-ticket", (S.OPEN, False, False, False)),
        (S.PENDING, DAY, False, True, "new-ticket", (S.OPEN, False, False, False)),
        (S.OPEN, DAY, True, False, "new-ticket", (None, False, False, False)),
        (S.NEW, DAY, False, False, "note", (None, False, False, False)),
        (S.RESOLVED, DAY, False, False, "new-ticket", (S.OPEN, True, False, False)),
        (S.RESOLVED, DAY, False, True, "new-ticket", (None, False, False, True)),
        (S.RESOLVED, DAY, True, False, "new-ticket", (S.OPEN, True, False, False)),
        (S.RESOLVED, 7 * DAY, False, False, "new-ticket", (S.OPEN, True, False, False)),
        (S.RESOLVED, 8 * DAY, False, False, "new-ticket", (None, False, True, False)),
        (S.RESOLVED, 30 * DAY, True, False, "new-ticket", (S.OPEN, True, False, False)),
        (S.CLOSED, DAY, False, True, "new-ticket", (None, False, True, False)),
        (S.CLOSED, DAY, False, True, "note", (None, False, False, True)),
        (S.CLOSED, DAY, False, False, "note", (None, False, True, False)),
        (S.CLOSED, DAY, True, False, "note", (None, False, True, False)),
    ],
    ids=[
        "pending-reply-opens", "pending-thanks-opens", "open-stays", "new-stays", "resolved-reply-reopens",
        "resolved-thanks-is-recorded", "resolved-not-solved-reopens", "resolved-edge-of-window-reopens",
        "resolved-after-window-new-ticket", "resolved-not-solved-always-reopens", "closed-thanks-new-ticket",
        "closed-thanks-note", "closed-new-problem-new-ticket-under-note", "closed-not-solved-new-ticket",
    ],
)
def test_a_requester_mail_moves_the_ticket_as_the_process_says(
    status: TicketStatus, after: timedelta, not_solved: bool, thanks: bool, closed_policy: str,
    expected: tuple[TicketStatus | None, bool, bool, bool],
) -> None:
    reaction = after_requester_mail(
        status, resolved_at=RESOLVED_AT, now_at=RESOLVED_AT + after, policy=POLICY,
        text_says_not_solved=not_solved, text_is_short_thanks=thanks, closed_policy=closed_policy,
    )
    assert (reaction.new_status, reaction.reopen, reaction.new_ticket, reaction.note_only) == expected
    assert reaction.reason


def test_an_unknown_closed_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="closed_policy must be one of new-ticket, note"):
        after_requester_mail(S.CLOSED, resolved_at=None, now_at=RESOLVED_AT, policy=POLICY,
                             text_says_not_solved=False, text_is_short_thanks=True, closed_policy="ignore")
