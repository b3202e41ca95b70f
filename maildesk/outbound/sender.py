"""Outbox sender: claim due rows, send them, record what the server said.

Exactly-once as far as SMTP allows: a row is claimed with a lease and marked
sent in its own transaction right after the server's 250.  A crash between
the two resends that one mail, under the same Message-ID.  Temporary failures
back off exponentially; permanent ones, or too many tries, dead-letter the
row with an event on its ticket.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from maildesk.domain import Clock
from maildesk.errors import PermanentDeliveryError
from maildesk.faults import crashpoint
from maildesk.outbound.smtp import Envelope, SendResult, SmtpTransport
from maildesk.store import queries
from maildesk.store.models import Outbox
from maildesk.store.session import Session, SessionFactory, transaction
from maildesk.tickets import service

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# Mail a person wrote (an agent's reply relayed) still goes to a suppressed address; automatic mail does not.
PERSONAL_KINDS = frozenset({"agent_reply"})
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(minutes=60)


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def retry_delay(attempts: int) -> timedelta:
    """1 min, 2, 4 … capped at 60 min."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


class OutboxSender:
    def __init__(self, *, sessions: SessionFactory, clock: Clock, transport: SmtpTransport,
                 max_attempts: int = 12, batch_size: int = 50) -> None:
        self.sessions = sessions
        self.clock = clock
        self.transport = transport
        self.max_attempts = max_attempts
        self.batch_size = batch_size

    def send_due(self, stop: threading.Event | None = None) -> SendReport:
        """Send everything due now, batch by batch."""
        total = SendReport()
        while not (stop and stop.is_set()):
            with transaction(self.sessions) as session:
                rows = queries.claim_due_outbox(session, self.clock.now(), self.batch_size, LEASE)
                claimed = self._deliverable(session, rows)
            if not claimed:
                break
            crashpoint("outbox_claimed")
            results = self.transport.send_batch([env for _, env in claimed])
            crashpoint("smtp_250_not_marked")
            report = self._record(list(zip([i for i, _ in claimed], results, strict=True)))
            total = SendReport(total.sent + report.sent, total.retried + report.retried, total.dead + report.dead)
            if report.sent == 0:
                break  # the server is refusing; wait for the next run instead of spinning
        return total

    def _deliverable(self, session: Session, rows: list[Outbox]) -> list[tuple[int, Envelope]]:
        """Envelopes to send; automatic mail skips addresses that bounced (a row left with none is dead)."""
        now_at = self.clock.now()
        out = []
        for row in rows:
            recipients = tuple(row.recipients)
            if row.kind not in PERSONAL_KINDS:
                blocked = queries.suppressed(session, recipients, now_at)
                recipients = tuple(r for r in recipients if r.lower() not in blocked)
                if not recipients:
                    row.status, row.claimed_until, row.last_error = "dead", None, "every recipient is suppressed"
                    service.record_event(session, row.ticket_id, "mail_suppressed", "maildesk", now_at,
                                         kind=row.kind, message_id=row.message_id, to=list(row.recipients))
                    continue
            out.append((row.id, Envelope(row.mail_from, recipients, row.raw)))
        return out

    def _record(self, results: list[tuple[int, SendResult]]) -> SendReport:
        sent = retried = dead = 0
        for row_id, result in results:
            with transaction(self.sessions) as session:
                row = session.get(Outbox, row_id)
                if row is None:
                    continue
                outcome = self._apply_result(session, row, result)
            crashpoint("marked_sent")
            sent += outcome == "sent"
            retried += outcome == "retry"
            dead += outcome == "dead"
        return SendReport(sent, retried, dead)

    def _apply_result(self, session: Session, row: Outbox, result: SendResult) -> str:
        now_at = self.clock.now()
        row.attempts += 1
        if result.error is None:
            row.status, row.sent_at, row.claimed_until, row.last_error = "sent", now_at, None, None
            if result.refused:
                row.last_error = _refused_text(result)
            service.record_event(session, row.ticket_id, "mail_sent", "maildesk", now_at,
                                 kind=row.kind, message_id=row.message_id, accepted=list(result.accepted),
                                 refused=_refused_text(result) or None)
            log.info("sent %s %s to %s", row.kind, row.message_id, ", ".join(result.accepted))
            return "sent"
        row.last_error = str(result.error)[:2000]
        permanent = isinstance(result.error, PermanentDeliveryError)
        if permanent or row.attempts >= self.max_attempts:
            row.status, row.claimed_until = "dead", None
            service.record_event(session, row.ticket_id, "mail_dead_letter", "maildesk", now_at,
                                 kind=row.kind, message_id=row.message_id, attempts=row.attempts,
                                 error=row.last_error)
            log.error("dead letter: %s %s after %d attempts: %s", row.kind, row.message_id, row.attempts,
                      row.last_error)
            return "dead"
        row.status, row.claimed_until = "queued", None
        row.next_attempt_at = now_at + retry_delay(row.attempts)
        log.warning("will retry %s %s at %s: %s", row.kind, row.message_id, row.next_attempt_at, row.last_error)
        return "retry"


def _refused_text(result: SendResult) -> str:
    return "; ".join(f"{a}: {c} {m}" for a, (c, m) in result.refused.items())[:2000]
