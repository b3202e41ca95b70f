"""Helpers shared by the integration tests: config files for a test desk, mail builders, DB counts."""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from sqlalchemy import func, select

from devstack.deskconfig import ROOT, SUPPORT, DeskToml, write_desk

__all__ = ["ADMIN", "ROOT", "SUPPORT", "acks", "count", "kind_of", "request_mail", "wait_acks", "write_config"]

ADMIN = "admin@desk.test"


def write_config(tmp: Path, *, imap_host: str, imap_port: int, imap_user: str, smtp_host: str, smtp_port: int,
                 database_url: str | None = None, batch_size: int = 200, poll_interval: str = "1s",
                 idle: bool = True, done_action: str = "move", desk: dict[str, str | int] | None = None) -> Path:
    """A complete config folder (maildesk.toml + the shipped rule files) for one test desk.

    ``desk`` adds keys to ``[desk]``, e.g. ``{"max_mail_size": "1MB"}``.
    """
    return write_desk(tmp / "config", DeskToml(
        database_url=database_url or f"sqlite:///{tmp / 'var' / 'maildesk.db'}", imap_host=imap_host,
        imap_port=imap_port, imap_user=imap_user, smtp_host=smtp_host, smtp_port=smtp_port, batch_size=batch_size,
        poll_interval=poll_interval, idle=idle, done_action=done_action, desk=desk or {}))


def request_mail(sender: str, subject: str, body: str, *, name: str = "", message_id: str | None = None,
                 in_reply_to: str | None = None, date_at: datetime | None = None) -> tuple[bytes, str]:
    """A plain mail as a client would send it; returns (raw bytes, Message-ID without brackets)."""
    msg = EmailMessage()
    msg["From"] = f"{Header(name, 'utf-8').encode()} <{sender}>" if name else sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date_at or datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    mid = message_id or make_msgid(domain=sender.rpartition("@")[2])
    msg["Message-ID"] = mid if mid.startswith("<") else f"<{mid}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content(body)
    return msg.as_bytes(), mid.strip("<>")


def count(session_factory, model, *where) -> int:  # noqa: ANN001
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def kind_of(mail) -> str:  # noqa: ANN001 - a devstack ReceivedMail
    """The X-Maildesk-Kind of a mail the sink received (ack, new_ticket_notice, …)."""
    for line in mail.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"x-maildesk-kind:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def acks(sink) -> list:  # noqa: ANN001
    """The acknowledgments among what the sink received (agents get notices beside them)."""
    return [m for m in sink.received if kind_of(m) == "ack"]


def wait_acks(sink, count: int, timeout: float = 10.0) -> list:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = acks(sink)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"{len(acks(sink))} of {count} acknowledgments arrived within {timeout} s")
