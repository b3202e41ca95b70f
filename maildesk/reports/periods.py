"""Which dates a report covers: the last full week or month, or dates an operator names.

Pure: today's date and the timezone come in; a ``Period`` of aware UTC
datetimes goes out, from local midnight to local midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from maildesk.reports.stats import Period

KINDS = ("week", "month")


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The start of ``day`` in ``zone``, as an aware UTC datetime."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def between(first: date, last: date, zone: tzinfo) -> Period:
    """From the start of ``first`` to the end of ``last`` (both included)."""
    if last < first:
        raise ValueError(f"the report ends ({last}) before it starts ({first})")
    return Period(local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone))


def last_full(kind: str, today: date, zone: tzinfo) -> Period:
    """The last complete ISO week (Monday to Sunday) or calendar month before ``today``."""
    if kind == "week":
        monday = today - timedelta(days=today.weekday())
        return between(monday - timedelta(days=7), monday - timedelta(days=1), zone)
    if kind == "month":
        first_of_this = today.replace(day=1)
        last_of_previous = first_of_this - timedelta(days=1)
        return between(last_of_previous.replace(day=1), last_of_previous, zone)
    raise ValueError(f"unknown report period '{kind}' (expected one of: {', '.join(KINDS)})")


def local_dates(period: Period, zone: tzinfo) -> tuple[date, date]:
    """The first and the last local day a period covers (the last one included)."""
    first = period.start_at.astimezone(zone).date()
    last = (period.end_at - timedelta(microseconds=1)).astimezone(zone).date()
    return first, last
