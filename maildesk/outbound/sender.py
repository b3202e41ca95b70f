"""Outbox sender: claim due rows, send them, record what the server said.

Exactly-once as far as SMTP allows: a row is claimed (with a lease, in the
name of this daemon) and marked sent in its own transaction right after the
server's 250 for that mail (two statements, no ORM load of the mail's bytes).  A crash between the two resends that one mail,
under the same Message-ID.  Rows claimed by a daemon that died are taken over
once its heartbeat stops.  Temporary failures back off exponentially, and the
backlog is pulled forward as soon as the server answers again; a permanent
failure, or a mail still undelivered after its give-up age, is a dead letter,
with an event on its ticket and one alert a day to the admins.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from maildesk.domain import Clock
from maildesk.errors import PermanentDeliveryError
from maildesk.faults import crashpoint
from maildesk.outbound.smtp import Envelope, SendResult, SmtpTransport
from maildesk.store import queries
from maildesk.store.models import Outbox
from maildesk.store.session import Session, SessionFactory, core_transaction, transaction
from maildesk.tickets import service

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
HEARTBEAT_STALE = timedelta(seconds=60)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(minutes=60)
PROBE_EVERY = timedelta(minutes=1)
SUPPRESS_AFTER_REFUSAL = timedelta(days=60)
# Mail a person wrote (an agent's reply relayed) still goes to a suppressed address; automatic mail does not.
PERSONAL_KINDS = frozenset({"agent_reply"})

Alert = Callable[[str, str, str], object]  # (problem, detail, key)


@dataclass(frozen=True)
class Claimed:
    """What recording a mail's result needs of its claimed row (the bytes are in the envelope)."""

    row_id: int
    kind: str
    message_id: str
    ticket_id: int | None
    envelope: Envelope


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def retry_delay(attempts: int) -> timedelta:
    """1 min, 2, 4 … capped at 60 min."""
    return min(FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 6)), MAX_RETRY)


class OutboxSender:
    def __init__(self, *, sessions: SessionFactory, clock: Clock, transport: SmtpTransport,
                 give_up_after: timedelta = timedelta(days=5), give_up_acks_after: timedelta = timedelta(days=1),
                 daemon_id: str = "", alert: Alert | None = None,
                 on_dead_letter: Callable[[int], object] | None = None, batch_size: int = 50) -> None:
        self.sessions = sessions
        self.clock = clock
        self.transport = transport
        self.give_up_after = give_up_after
        self.give_up_acks_after = give_up_acks_after
        self.daemon_id = daemon_id
        self.alert = alert
        self.on_dead_letter = on_dead_letter
        self.batch_size = batch_size
        self._last_probe_at: datetime | None = None

    def _probe_due(self, now_at: datetime) -> bool:
        return self._last_probe_at is None or now_at - self._last_probe_at >= PROBE_EVERY

    def send_due(self, stop: threading.Event | None = None) -> SendReport:
        """Send everything due now, batch by batch, recording each mail as its reply comes.

        When nothing is due but mails are waiting out a backoff, the earliest is
        tried early (at most once per ``PROBE_EVERY``): if the server is back,
        the rest follow at once instead of up to an hour later.
        """
        tally = {"sent": 0, "retry": 0, "dead": 0}
        # One SMTP connection for the whole run when the transport offers it (a test double may not).
        with getattr(self.transport, "connection", contextlib.nullcontext)():
            self._send_batches(tally, stop)
        return SendReport(tally["sent"], tally["retry"], tally["dead"])

    def _send_batches(self, tally: dict[str, int], stop: threading.Event | None) -> None:
        probed = False
        while not (stop and stop.is_set()):
            now_at = self.clock.now()
            with transaction(self.sessions) as session:
                rows = queries.claim_due_outbox(session, now_at, self.batch_size, LEASE, self.daemon_id,
                                                stale_before=now_at - HEARTBEAT_STALE)
                if not rows and not probed and self._probe_due(now_at):
                    rows, probed = queries.claim_probe(session, now_at, LEASE, self.daemon_id), True
                    self._last_probe_at = now_at
                claimed = self._deliverable(session, rows)
            if not claimed:
                break
            crashpoint("outbox_claimed")
            before = dict(tally)

            def record(index: int, result: SendResult, claimed: list[Claimed] = claimed) -> None:
                crashpoint("smtp_250_not_marked")
                tally[self._record(claimed[index], result)] += 1
                crashpoint("marked_sent")

            self.transport.send_batch([c.envelope for c in claimed], record)
            if tally["sent"] > before["sent"]:
                with transaction(self.sessions) as session:
                    if queries.pull_forward_retries(session, self.clock.now()):
                        log.info("the SMTP server answers again: mails waiting to retry go now")
            else:
                break  # the server is refusing; wait for the next run instead of spinning

    def _deliverable(self, session: Session, rows: list[Outbox]) -> list[Claimed]:
        """Envelopes to send; automatic mail skips addresses that bounced (a row left with none is dead)."""
        now_at = self.clock.now()
        out = []
        blocked = queries.suppressed(session, [r for row in rows if row.kind not in PERSONAL_KINDS
                                               for r in row.recipients], now_at)
        for row in rows:
            recipients = tuple(row.recipients)
            if row.kind not in PERSONAL_KINDS:
                recipients = tuple(r for r in recipients if r.lower() not in blocked)
                if not recipients:
                    row.status, row.claimed_until, row.last_error = "dead", None, "every recipient is suppressed"
                    service.record_event(session, row.ticket_id, "mail_suppressed", "maildesk", now_at,
                                         kind=row.kind, message_id=row.message_id, to=list(row.recipients))
                    continue
            out.append(Claimed(row.id, row.kind, row.message_id, row.ticket_id,
                               Envelope(row.mail_from, recipients, row.raw)))
        return out

    def _record(self, claimed: Claimed, result: SendResult) -> str:
        if result.error is None and not result.refused:
            return self._record_sent(claimed, result)
        with transaction(self.sessions) as session:
            row = session.get(Outbox, claimed.row_id)
            if row is None:
                return "dead"
            outcome = self._apply_result(session, row, result)
        if outcome == "dead" and self.alert is not None:
            self.alert("mail could not be delivered (dead letter)",
                       f"{row.kind} {row.message_id} to {', '.join(row.recipients)}: {row.last_error}",
                       f"dead-letters:{self.clock.now().date().isoformat()}")
        if outcome == "dead" and self.on_dead_letter is not None and row.ticket_id is not None:
            self.on_dead_letter(row.id)
        return outcome

    def _record_sent(self, claimed: Claimed, result: SendResult) -> str:
        """The common case, every recipient accepted: one UPDATE and one event INSERT, then commit."""
        now_at = self.clock.now()
        with core_transaction(self.sessions) as connection:
            if not queries.mark_outbox_sent(connection, claimed.row_id, now_at):
                return "dead"  # the row is gone (purged by hand): nothing to record
            service.record_event_at_once(connection, claimed.ticket_id, "mail_sent", "maildesk", now_at,
                                         kind=claimed.kind, message_id=claimed.message_id,
                                         accepted=list(result.accepted), refused=None)
        log.info("sent %s %s to %s", claimed.kind, claimed.message_id, ", ".join(result.accepted))
        return "sent"

    def _apply_result(self, session: Session, row: Outbox, result: SendResult) -> str:
        now_at = self.clock.now()
        row.attempts += 1
        self._suppress_refused(session, row, result)
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
        limit = self.give_up_acks_after if row.kind == "ack" else self.give_up_after
        if isinstance(result.error, PermanentDeliveryError) or now_at - row.created_at >= limit:
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

    def _suppress_refused(self, session: Session, row: Outbox, result: SendResult) -> None:
        """An address our own server refuses with 5xx gets no more automatic mail for a while."""
        now_at = self.clock.now()
        for address, (code, message) in result.refused.items():
            if 500 <= code < 600:
                queries.suppress_address(session, address, now_at + SUPPRESS_AFTER_REFUSAL,
                                         f"refused by the SMTP server: {code} {message}"[:500], now_at)


def _refused_text(result: SendResult) -> str:
    return "; ".join(f"{a}: {c} {m}" for a, (c, m) in result.refused.items())[:2000]
