"""SLA deadlines from the shipped policy, with injected times: the acceptance cases of issue 4 and more."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from maildesk.domain import Priority
from maildesk.rules.loader import build_calendar
from maildesk.sla.calendar import BusinessCalendar
from maildesk.sla.deadlines import (
    business_time_left,
    compute_deadlines,
    is_breached,
    merge_pauses,
    next_progress_at,
)
from maildesk.sla.policy import SlaPolicy, parse_sla, parse_span

SH = ZoneInfo("Asia/Shanghai")
SLA_TOML = Path(__file__).resolve().parents[2] / "config" / "sla.toml"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture(scope="module")
def shipped() -> tuple[SlaPolicy, BusinessCalendar]:
    policies = parse_sla(SLA_TOML.read_text(encoding="utf-8"), "config/sla.toml")
    policy = policies.policy()
    spec = next(c for c in policies.calendars if c.calendar_id == policy.calendar)
    return policy, build_calendar(spec)


def test_medium_mail_friday_1750_first_response_due_monday_1050(shipped: tuple[SlaPolicy, BusinessCalendar]) -> None:
    """Issue 4 says "due Monday 09:50"; with the process targets (medium 2 h, Mon–Fri 09:00–18:00)
    the clock runs 10 min on Friday and 1 h 50 on Monday, so the first response is due at 10:50."""
    policy, cal = shipped
    deadlines = compute_deadlines(Priority.MEDIUM, at(2026, 3, 13, 17, 50), policy, cal)
    assert deadlines.first_response_at == at(2026, 3, 16, 10, 50)
    assert deadlines.resolve_at == at(2026, 3, 16, 17, 50)  # 1 working day = 9 h: 10 min Fri + 8 h 50 Mon


def test_medium_mail_friday_1750_is_due_monday_0950_when_the_office_opens_at_0800(
    shipped: tuple[SlaPolicy, BusinessCalendar],
) -> None:
    """Issue 4's statement as written holds for a queue whose business day runs 08:00–18:00:
    10 min on Friday, 1 h 50 on Monday from 08:00."""
    policy, _ = shipped
    day = ((time(8, 0), time(18, 0)),)
    early = BusinessCalendar.weekly_hours("early-office", "Asia/Shanghai", {d: day for d in range(5)})
    deadlines = compute_deadlines(Priority.MEDIUM, at(2026, 11, 27, 17, 50), policy, early)
    assert deadlines.first_response_at == at(2026, 11, 30, 9, 50)


def test_mail_on_national_day_eve_2026_skips_the_holiday_and_counts_the_make_up_day(
    shipped: tuple[SlaPolicy, BusinessCalendar],
) -> None:
    policy, cal = shipped
    created = at(2026, 9, 30, 17, 0)  # Wednesday; Oct 1–7 are off, Sat Oct 10 is a make-up working day
    low = compute_deadlines(Priority.LOW, created, policy, cal)
    assert low.first_response_at == at(2026, 10, 8, 17, 0)  # 1 h on Sep 30 + 8 h on Thu Oct 8
    assert low.resolve_at == at(2026, 10, 10, 17, 0)  # 27 h: 1 + 9 (Oct 8) + 9 (Oct 9) + 8 on Saturday Oct 10
    medium = compute_deadlines(Priority.MEDIUM, created, policy, cal)
    assert medium.first_response_at == at(2026, 10, 8, 10, 0)


def test_urgent_mail_at_three_on_a_sunday_is_due_at_quarter_past(shipped: tuple[SlaPolicy, BusinessCalendar]) -> None:
    policy, cal = shipped
    deadlines = compute_deadlines(Priority.URGENT, at(2026, 3, 15, 3, 0), policy, cal)
    assert deadlines.first_response_at == at(2026, 3, 15, 3, 15)
    assert deadlines.resolve_at == at(2026, 3, 15, 5, 0)
    assert deadlines.progress_every == timedelta(minutes=30)


def test_ticket_pending_on_the_requester_for_two_days_does_not_breach(shipped: tuple[SlaPolicy, BusinessCalendar]) -> None:
    policy, cal = shipped
    created, asked = at(2026, 3, 9, 10, 0), at(2026, 3, 9, 10, 10)  # Monday; agent asks the requester
    answered = at(2026, 3, 11, 10, 10)  # Wednesday, two days later
    still_open = compute_deadlines(Priority.HIGH, created, policy, cal, paused=[(asked, None)])
    assert still_open.resolve_at is None
    assert not is_breached(still_open.resolve_at, answered, [(asked, None)])
    closed = compute_deadlines(Priority.HIGH, created, policy, cal, paused=[(asked, answered)])
    assert closed.resolve_at == at(2026, 3, 11, 14, 0)  # 4 h target moved by the 18 h of business time paused
    assert not is_breached(closed.resolve_at, at(2026, 3, 11, 11, 0))
    unpaused = compute_deadlines(Priority.HIGH, created, policy, cal)
    assert is_breached(unpaused.resolve_at, at(2026, 3, 11, 11, 0))


def test_a_pause_after_the_deadline_changes_nothing(shipped: tuple[SlaPolicy, BusinessCalendar]) -> None:
    policy, cal = shipped
    created = at(2026, 3, 9, 10, 0)
    late = [(at(2026, 3, 9, 15, 0), at(2026, 3, 10, 15, 0))]
    assert compute_deadlines(Priority.HIGH, created, policy, cal, paused=late).resolve_at == at(2026, 3, 9, 14, 0)


def test_overlapping_pauses_are_counted_once() -> None:
    created = at(2026, 3, 9, 10, 0)
    merged = merge_pauses(created, [(at(2026, 3, 9, 11, 0), at(2026, 3, 9, 13, 0)), (at(2026, 3, 9, 12, 0), at(2026, 3, 9, 14, 0)),
                                    (at(2026, 3, 9, 9, 0), at(2026, 3, 9, 10, 30))])
    assert merged == [(created, at(2026, 3, 9, 10, 30)), (at(2026, 3, 9, 11, 0), at(2026, 3, 9, 14, 0))]


def test_explanation_says_how_each_deadline_was_computed(shipped: tuple[SlaPolicy, BusinessCalendar]) -> None:
    policy, cal = shipped
    lines = compute_deadlines(Priority.LOW, at(2026, 9, 30, 17, 0), policy, cal).explanation
    text = "\n".join(lines)
    assert "policy standard (config/sla.toml:" in text
    assert "3 working days = 3 × 9 h = 27 h of business time" in text
    assert "due 2026-10-10 17:00 CST (Sat)" in text
    assert "holidays" in lines[0] and "CN 2024–2027" in lines[0]


def test_reminder_and_progress_helpers() -> None:
    cal = BusinessCalendar.always_open()
    assert business_time_left(cal, at(2026, 3, 9, 12, 0), at(2026, 3, 9, 11, 30)) == timedelta(minutes=30)
    assert business_time_left(cal, at(2026, 3, 9, 12, 0), at(2026, 3, 9, 12, 10)) == timedelta(minutes=-10)
    assert next_progress_at(timedelta(minutes=30), at(2026, 3, 9, 3, 0), None) == at(2026, 3, 9, 3, 30)
    assert next_progress_at(timedelta(minutes=30), at(2026, 3, 9, 3, 0), at(2026, 3, 9, 4, 5)) == at(2026, 3, 9, 4, 35)
    assert not is_breached(None, at(2026, 3, 9, 3, 0))


@pytest.mark.parametrize(
    ("text", "minutes", "days"),
    [("15m", 15, 0), ("2h", 120, 0), ("1h30m", 90, 0), ("1 working day", 0, 1), ("3 working days", 0, 3), ("90 min", 90, 0)],
)
def test_durations_are_parsed(text: str, minutes: int, days: int) -> None:
    span = parse_span(text)
    assert span is not None and (span.minutes, span.working_days) == (minutes, days)


@pytest.mark.parametrize("text", ["", "soon", "2 days", "1.5h", "h", "0m"])
def test_unclear_durations_are_refused(text: str) -> None:
    assert parse_span(text) is None
