"""What the SMTP sink keeps: one :class:`ReceivedMail` per accepted mail, thread-safe, optionally mirrored
to a JSON-lines log (one line per mail, ``"version": 1``) and to numbered ``.eml`` files.

The log line is what the reliability reconciler reads: Message-ID, envelope, SHA-256 of the raw bytes,
and the wall and monotonic time at which the sink decided to answer 250 to the end of data.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted mail as the sink saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_monotonic: float
    received_at: datetime
    message_id: str | None
    peer: str = ""
    auth_user: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def header_message_id(raw: bytes) -> str | None:
    """The first Message-ID of the header block of ``raw`` (None when there is none)."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode(errors="replace") if match else None


class MailStore:
    """The thread-safe list of kept mail, with waiting and the optional log and ``.eml`` mirror."""

    def __init__(self, log_path: Path | None = None, eml_dir: Path | None = None) -> None:
        self.log_path = log_path
        self.eml_dir = eml_dir
        self._mails: list[ReceivedMail] = []
        self._cond = threading.Condition()

    def prepare(self) -> None:
        if self.eml_dir:
            self.eml_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes, peer: str,
            auth_user: str | None) -> ReceivedMail:
        mail = ReceivedMail(mail_from=mail_from, rcpt_tos=rcpt_tos, raw=raw,
                            received_monotonic=time.monotonic(), received_at=datetime.now(UTC),
                            message_id=header_message_id(raw), peer=peer, auth_user=auth_user)
        with self._cond:
            number = len(self._mails) + 1
            eml = self._write_eml(number, mail)
            if self.log_path:
                record = {
                    "version": 1, "n": number, "message_id": mail.message_id, "mail_from": mail.mail_from,
                    "rcpt_tos": list(mail.rcpt_tos), "received_at": mail.received_at.isoformat(),
                    "monotonic": mail.received_monotonic, "size": len(raw), "sha256": mail.sha256,
                    "auth_user": auth_user, "eml": str(eml) if eml else None,
                }
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._mails.append(mail)
            self._cond.notify_all()
        return mail

    def _write_eml(self, number: int, mail: ReceivedMail) -> Path | None:
        if not self.eml_dir:
            return None
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", (mail.message_id or "no-id").strip("<>"))[:80]
        path = self.eml_dir / f"{number:05d}-{stem}.eml"
        path.write_bytes(mail.raw)
        return path

    def snapshot(self) -> list[ReceivedMail]:
        with self._cond:
            return list(self._mails)

    def clear(self) -> None:
        with self._cond:
            self._mails.clear()

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._mails) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the SMTP sink got {len(self._mails)} of {count} mails within "
                                       f"{timeout} s: {[m.message_id for m in self._mails]}")
                self._cond.wait(remaining)
            return list(self._mails)
