"""Ticket numbers: ``TS`` + ``YYYYMMDD`` + a daily sequence of at least 3 digits.

Formatting and parsing only; handing out the sequence is the store's job
(one row per day, incremented inside the creating transaction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

PREFIX = "TS"
MIN_SEQUENCE_DIGITS = 3

# Past 999 a day the sequence simply grows (TS202611230001000 is not ambiguous:
# the date part is fixed-width).
NUMBER_RE = re.compile(r"TS(\d{4})(\d{2})(\d{2})(\d{3,6})")


@dataclass(frozen=True, order=True)
class TicketNumber:
    day: date
    sequence: int

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise ValueError(f"A ticket sequence starts at 1, not {self.sequence}")

    def __str__(self) -> str:
        return format_number(self.day, self.sequence)


def format_number(day: date, sequence: int) -> str:
    """``format_number(date(2026, 11, 23), 1) == "TS20261123001"``."""
    if sequence < 1:
        raise ValueError(f"A ticket sequence starts at 1, not {sequence}")
    return f"{PREFIX}{day:%Y%m%d}{sequence:0{MIN_SEQUENCE_DIGITS}d}"


def parse_number(text: str) -> TicketNumber | None:
    """The number in ``text`` if it is exactly a well-formed ticket number."""
    match = NUMBER_RE.fullmatch(text.strip().upper())
    if match is None:
        return None
    year, month, day, seq = (int(g) for g in match.groups())
    try:
        return TicketNumber(date(year, month, day), seq)
    except ValueError:
        return None
