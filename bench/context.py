"""What the scenarios of one benchmark run share: sizes, the servers, a temp folder, the figures so far."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.stack import SinkProcess
from devstack.dovecot import Dovecot

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Sizes:
    drain: int
    memory: tuple[int, int]
    latency_mails: int
    latency_rate: float  # mails per second while measuring latency
    poll_interval_s: int  # for the latency run without IDLE
    tickets: int
    open_tickets: int
    sending: int
    parsing: int

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(300, (300, 1_500), 8, 2.0, 5, 100_000, 20_000, 300, 1_000)
        return cls(10_000, (10_000, 50_000), 60, 1.0, 5, 1_000_000, 200_000, 2_000, 10_000)


@dataclass
class Run:
    quick: bool
    sizes: Sizes
    tmp: Path
    dovecot: Dovecot
    sink: SinkProcess
    pg_url: str
    ticket_day: date = field(default_factory=lambda: datetime.now(ZoneInfo("Asia/Shanghai")).date())
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        log.info("note: %s", text)
        self.notes.append(text)
