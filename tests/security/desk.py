"""The hostile-input tests' test desk: config for one account and sink, one daemon cycle, sink helpers."""

from __future__ import annotations

import re
import resource
import time
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

from maildesk.cli import load_settings
from maildesk.daemon import Desk, build_desk
from tests.integration.desk_helpers import ROOT, SUPPORT, kind_of, write_config

__all__ = ["ROOT", "SUPPORT", "CycleReport", "cycle", "header_names", "kind_of", "make_desk", "reparse"]


def make_desk(tmp_path: Path, account: Any, sink: Any, monkeypatch: Any, *, host: str | None = None,
              port: int | None = None, **kw: Any) -> Desk:
    """A desk on ``account`` (IMAP) and ``sink`` (SMTP) built by the daemon's own composition root."""
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", account.password)
    config = write_config(tmp_path, imap_host=host or account.host, imap_port=port or account.port,
                          imap_user=account.user, smtp_host=sink.host, smtp_port=sink.port, **kw)
    settings, base = load_settings(str(config))
    return build_desk(settings, base)


@dataclass(frozen=True)
class CycleReport:
    errors: tuple[str | None, ...]
    fetched: int
    outcomes: tuple[Any, ...]
    cpu_s: float


def cycle(desk: Desk) -> CycleReport:
    """One full turn of the daemon's jobs, in order, without the scheduler (as test_end_to_end does)."""
    start = resource.getrusage(resource.RUSAGE_SELF)
    reports = [poller.poll_once() for poller in desk.pollers]
    outcomes = desk.runner.process_pending()
    desk.sender.send_due()
    end = resource.getrusage(resource.RUSAGE_SELF)
    return CycleReport(tuple(r.error for r in reports), sum(r.fetched for r in reports), tuple(outcomes),
                       (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime))


def reparse(raw: bytes) -> Any:
    """A sent mail as a strict modern parser reads it."""
    return message_from_bytes(raw, policy=default)


def header_names(raw: bytes) -> list[str]:
    """The header field names of the top-level header block, as they appear on the wire."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    return [line.split(b":", 1)[0].decode("ascii", "replace").lower()
            for line in re.split(rb"\r?\n", head) if line and line[:1] not in (b" ", b"\t")]


def wait_for_mails(sink: Any, count: int, timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(sink.received) < count:
        time.sleep(0.05)
    return list(sink.received)
