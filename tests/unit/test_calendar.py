"""Business calendar arithmetic: opening hours, lunch breaks, holidays, 调休, 24×7 — no clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from maildesk.sla.calendar import (
    BusinessCalendar,
    add_business_time,
    business_time_between,
    is_business_time,
    next_business_start,
)

SH = ZoneInfo("Asia/Shanghai")
NINE_TO_SIX = {day: [(time(9), time(18))] for day in range(5)}


def at(*args: int) -> datetime:
    """An aware UTC datetime from Shanghai wall-clock fields."""
    return datetime(*args, tzinfo=SH).astimezone(UTC)  # type: ignore[misc]


def office(**kwargs: object) -> BusinessCalendar:
    return BusinessCalendar.weekly_hours("office", "Asia/Shanghai", NINE_TO_SIX, **kwargs)  # type: ignore[arg-type]


def china_2026() -> BusinessCalendar:
    cn = holidays.China(years=2026)
    return office(holidays=list(cn), workdays=[d for d in cn.weekend_workdays if d.year == 2026])


def test_time_within_a_day_is_plain_addition() -> None:
    assert add_business_time(office(), at(2026, 3, 10, 10, 0), timedelta(hours=2)) == at(2026, 3, 10, 12, 0)


def test_time_that_runs_past_closing_continues_next_morning() -> None:
    assert add_business_time(office(), at(2026, 3, 10, 17, 0), timedelta(hours=2)) == at(2026, 3, 11, 10, 0)


def test_a_duration_ending_exactly_at_closing_is_due_at_closing() -> None:
    assert add_business_time(office(), at(2026, 3, 10, 16, 0), timedelta(hours=2)) == at(2026, 3, 10, 18, 0)


def test_mail_arriving_at_night_starts_counting_at_opening() -> None:
    assert add_business_time(office(), at(2026, 3, 10, 22, 30), timedelta(minutes=30)) == at(2026, 3, 11, 9, 30)


def test_weekend_is_skipped() -> None:
    assert add_business_time(office(), at(2026, 3, 13, 17, 0), timedelta(hours=3)) == at(2026, 3, 16, 11, 0)


def test_lunch_break_is_not_business_time() -> None:
    cal = BusinessCalendar.weekly_hours(
        "lunch", "Asia/Shanghai", {d: [(time(9), time(12)), (time(13), time(18))] for d in range(5)}
    )
    assert add_business_time(cal, at(2026, 3, 10, 11, 30), timedelta(hours=1)) == at(2026, 3, 10, 13, 30)
    assert not is_business_time(cal, at(2026, 3, 10, 12, 30))
    assert cal.day_length == timedelta(hours=8)


def test_holidays_are_closed_and_make_up_days_open() -> None:
    cal = china_2026()
    assert not is_business_time(cal, at(2026, 10, 5, 10, 0))  # a Monday inside the National Day week
    assert is_business_time(cal, at(2026, 10, 10, 10, 0))  # Saturday, 调休 make-up working day
    assert is_business_time(cal, at(2026, 9, 20, 10, 0))  # Sunday, 调休 make-up working day
    assert not is_business_time(cal, at(2026, 10, 11, 10, 0))  # an ordinary Sunday


def test_the_holidays_package_has_the_real_2026_national_day_schedule() -> None:
    cn = holidays.China(years=2026)
    assert all(date(2026, 10, d) in cn for d in (1, 2, 3, 5, 6, 7))  # Oct 4 is a Sunday anyway
    assert {date(2026, 9, 20), date(2026, 10, 10)} <= set(cn.weekend_workdays)


def test_opening_hours_include_start_and_exclude_end() -> None:
    assert is_business_time(office(), at(2026, 3, 10, 9, 0))
    assert not is_business_time(office(), at(2026, 3, 10, 18, 0))


def test_next_business_start_is_now_when_open_else_next_opening() -> None:
    assert next_business_start(office(), at(2026, 3, 10, 11, 0)) == at(2026, 3, 10, 11, 0)
    assert next_business_start(office(), at(2026, 3, 14, 11, 0)) == at(2026, 3, 16, 9, 0)
    assert next_business_start(china_2026(), at(2026, 9, 30, 18, 30)) == at(2026, 10, 8, 9, 0)


def test_business_time_between_counts_only_open_hours() -> None:
    assert business_time_between(office(), at(2026, 3, 13, 17, 0), at(2026, 3, 16, 10, 0)) == timedelta(hours=2)
    assert business_time_between(office(), at(2026, 3, 16, 10, 0), at(2026, 3, 13, 17, 0)) == timedelta(0)


def test_between_and_add_are_inverse() -> None:
    cal = china_2026()
    start = at(2026, 9, 28, 15, 17)
    for hours in (1, 5, 9, 13, 40, 100):
        end = add_business_time(cal, start, timedelta(hours=hours))
        assert business_time_between(cal, start, end) == timedelta(hours=hours)


def test_around_the_clock_calendar_counts_everything() -> None:
    cal = BusinessCalendar.always_open()
    start = at(2026, 3, 15, 3, 0)  # a Sunday night
    assert add_business_time(cal, start, timedelta(minutes=15)) == at(2026, 3, 15, 3, 15)
    assert is_business_time(cal, start)
    assert business_time_between(cal, start, start + timedelta(days=2)) == timedelta(days=2)
    assert cal.day_length == timedelta(days=1)


def test_results_are_utc_and_naive_inputs_are_refused() -> None:
    result = add_business_time(office(), at(2026, 3, 10, 10, 0), timedelta(hours=1))
    assert result.tzinfo is UTC
    with pytest.raises(ValueError, match="aware"):
        add_business_time(office(), datetime(2026, 3, 10, 10, 0), timedelta(hours=1))


def test_a_calendar_checks_itself_when_built() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        BusinessCalendar.weekly_hours("bad", "Asia/Shanghai", {0: [(time(18), time(9))]})
    with pytest.raises(ValueError, match="no opening hours"):
        BusinessCalendar.weekly_hours("empty", "Asia/Shanghai", {})
    with pytest.raises(ValueError, match="negative"):
        add_business_time(office(), at(2026, 3, 10, 10, 0), timedelta(hours=-1))


def test_a_day_ending_at_midnight_is_supported() -> None:
    cal = BusinessCalendar.weekly_hours("late", "Asia/Shanghai", {d: [(time(18), time(0))] for d in range(7)})
    assert add_business_time(cal, at(2026, 3, 10, 23, 0), timedelta(hours=2)) == at(2026, 3, 11, 19, 0)
    assert cal.day_length == timedelta(hours=6)
