"""Dovecot + SMTP sink started together for the demo and the benchmarks, plus the sample mails.

``MailStack(state_dir).start()`` starts a Dovecot with one user (``support``) and an SMTP sink that keeps
mail as JSON lines and ``.eml`` files under the state folder, and writes ``STATE/stack.json`` (mode 0600,
it holds the password) with everything a client needs.  ``python -m devstack up --state DIR`` does the
same in the foreground until Ctrl-C or SIGTERM; ``stack.json`` appears only once everything is ready
(samples loaded with ``--load-samples``) and is removed at stop.

Samples: :func:`sample_paths` lists the seven new-request mails in ``devstack/samples``;
:func:`render_reply` fills ``reply-template.eml`` (placeholders ``{ticket}``, ``{in_reply_to}``,
``{message_id}``, ``{date}``) so the demo can answer a ticket it created at run time.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from email.utils import formatdate, make_msgid
from pathlib import Path
from types import TracebackType

from devstack.dovecot import Dovecot
from devstack.smtpsink import SmtpSink

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
REPLY_TEMPLATE = SAMPLES_DIR / "reply-template.eml"
PASSWORD_ENV = "DEVSTACK_IMAP_PASSWORD"
_HEADER_SAFE = re.compile(r"[^\r\n{}]+")


def sample_paths() -> list[Path]:
    """The new-request sample mails, in file name order (the reply template is not among them)."""
    return sorted(p for p in SAMPLES_DIR.glob("*.eml") if p != REPLY_TEMPLATE)


def render_reply(ticket: str, in_reply_to: str, *, message_id: str | None = None,
                 date: str | None = None) -> bytes:
    """The requester's reply to the acknowledgment of ``ticket`` (whose Message-ID is ``in_reply_to``)."""
    in_reply_to = in_reply_to.strip()
    if not in_reply_to.startswith("<"):
        in_reply_to = f"<{in_reply_to}>"
    values = {
        "ticket": ticket, "in_reply_to": in_reply_to,
        "message_id": message_id or make_msgid(domain="example.com"),
        "date": date or formatdate(localtime=True),
    }
    for key, value in values.items():
        if not _HEADER_SAFE.fullmatch(value):
            raise ValueError(f"The reply's {key} {value!r} must be one line without braces")
    template = REPLY_TEMPLATE.read_bytes().decode("utf-8")  # keeps the CRLF line endings
    return template.format(**values).encode("utf-8")


class MailStack:
    """Dovecot (one user) and the SMTP sink under ``state_dir``; a context manager."""

    def __init__(self, state_dir: str | os.PathLike[str], *, user: str = "support",
                 password: str | None = None, imap_port: int | None = None, smtp_port: int | None = None,
                 tls: bool = False, load_samples: bool = False) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.imap_user = user
        self._load_samples_at_start = load_samples
        self.imap_password = password or os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(12)
        self.dovecot = Dovecot(self.state_dir / "dovecot", users={user: self.imap_password},
                               imap_port=imap_port, tls=tls)
        self.sink = SmtpSink(port=smtp_port, log_path=self.state_dir / "sink" / "sink.jsonl",
                             eml_dir=self.state_dir / "sink" / "eml")

    @property
    def imap_host(self) -> str:
        return self.dovecot.host

    @property
    def imap_port(self) -> int:
        return self.dovecot.imap_port

    @property
    def smtp_host(self) -> str:
        return self.sink.host

    @property
    def smtp_port(self) -> int:
        return self.sink.port

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    def start(self) -> MailStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.dovecot.start()
        try:
            self.sink.start()
            if self._load_samples_at_start:
                self.load_samples()
        except BaseException:
            self.sink.stop()
            self.dovecot.stop()
            raise
        self._write_stack_file()  # last: its presence means the stack is ready
        return self

    def stop(self) -> None:
        try:
            self.sink.stop()
        finally:
            self.dovecot.stop()
            self.stack_file.unlink(missing_ok=True)

    def __enter__(self) -> MailStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def load_samples(self, folder: str = "INBOX") -> list[int]:
        """APPEND the sample mails to the user's ``folder``; returns their UIDs."""
        raws = [p.read_bytes() for p in sample_paths()]
        return self.dovecot.append_many(self.imap_user, self.imap_password, folder, raws)

    def describe(self) -> dict[str, object]:
        return {
            "version": 1,
            "pid": os.getpid(),
            "state_dir": str(self.state_dir),
            "imap_host": self.imap_host, "imap_port": self.imap_port,
            "imaps_port": self.dovecot.imaps_port,
            "imap_user": self.imap_user, "imap_password": self.imap_password,
            "imap_ca_file": str(self.dovecot.ca.cert_path) if self.dovecot.ca else None,
            "smtp_host": self.smtp_host, "smtp_port": self.smtp_port,
            "sink_log": str(self.sink.log_path), "sink_eml_dir": str(self.sink.eml_dir),
            "dovecot_log": str(self.dovecot.log_path),
            "samples_dir": str(SAMPLES_DIR), "reply_template": str(REPLY_TEMPLATE),
        }

    def _write_stack_file(self) -> None:
        tmp = self.stack_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.describe(), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, self.stack_file)
