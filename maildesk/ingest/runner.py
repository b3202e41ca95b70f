"""Ingest runner: raw mail in, ticket changes and queued mails out.

Two steps, each its own transaction:

1. ``store_fetched`` commits the raw bytes of fetched mails (nothing lost) —
   only after that may the mail be marked done on the server;
2. ``process_one`` hands one stored mail to ``route.MailRouter`` inside one
   transaction, so the ticket change and every mail it causes commit together.

A mail that raises is retried with a delay and quarantined after
``MAX_ATTEMPTS``, with its traceback; the mails behind it keep flowing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import traceback
from collections.abc import Iterable
from datetime import datetime, timedelta

import jinja2

from maildesk.config import Settings
from maildesk.domain import Clock
from maildesk.errors import StoreUnavailableError
from maildesk.faults import crashpoint
from maildesk.ingest.imap import FetchedMail
from maildesk.ingest.route import MailRouter, Outcome, queue_admin_alert
from maildesk.outbound.notifier import Notifier
from maildesk.outbound.ticket_mail import TicketMail
from maildesk.rules.policy import RulesPolicy
from maildesk.store import queries
from maildesk.store.models import Outbox, RawMail, Ticket
from maildesk.store.session import SessionFactory, transaction, translate
from maildesk.tickets import service

log = logging.getLogger(__name__)
decisions = logging.getLogger("maildesk.decision")

MAX_ATTEMPTS = 3
MAX_SIZE_RECORDED = 2**31 - 1  # raw_mails.size is a 32-bit integer; a larger mail is kept as headers only
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=5))


class IngestRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: SessionFactory,
        clock: Clock,
        policy: RulesPolicy,
        templates: jinja2.Environment,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.templates = templates
        self.notifier = Notifier(settings=settings, templates=templates, clock=clock)
        self.router = MailRouter(settings=settings, clock=clock, policy=policy, notifier=self.notifier)

    # -- step 1: raw first ---------------------------------------------------

    def store_fetched(self, mailbox: str, uidvalidity: int, mails: Iterable[FetchedMail]) -> list[int]:
        """Commit fetched mails; returns the UIDs now safely stored (new or seen before)."""
        fetched = list(mails)  # the FETCH completes before the write transaction opens
        now_at = self.clock.now()
        with transaction(self.sessions) as session:
            queries.insert_raw_mails(session, [_raw_values(mailbox, uidvalidity, m, now_at) for m in fetched])
            crashpoint("fetched_not_committed")
        return [mail.uid for mail in fetched]

    # -- step 2: one mail, one transaction -----------------------------------

    def process_pending(self, stop: threading.Event | None = None, limit: int = 1000) -> list[Outcome]:
        """Process stored mails that are due, oldest first, until none is left or ``stop`` is set."""
        outcomes: list[Outcome] = []
        while not (stop and stop.is_set()):
            with transaction(self.sessions) as session:
                ids = queries.pending_raw_ids(session, self.clock.now(), limit=min(limit, 200))
            progress = 0
            for raw_id in ids:
                if stop and stop.is_set():
                    break
                outcome = self.process_one(raw_id)
                outcomes.append(outcome)
                progress += outcome.status not in ("deferred", "skipped")
            if not progress or len(outcomes) >= limit:
                break  # nothing left, or only mails that wait for others: the next run takes them
        return outcomes

    def process_one(self, raw_id: int) -> Outcome:
        try:
            with transaction(self.sessions) as session:
                raw = queries.lock_raw_mail(session, raw_id)
                if raw is None or raw.status != "pending":
                    return Outcome("skipped", raw_id, reason="taken by another process or done")
                outcome = self.router.apply(session, raw)
                crashpoint("mid_apply")
        except Exception as exc:
            store_error = translate(exc)
            if isinstance(store_error, StoreUnavailableError):
                raise store_error from exc  # not the mail's fault: no attempt counted
            return self._record_failure(raw_id, exc)
        decisions.info("raw=%s %s ticket=%s %s", raw_id, outcome.status, outcome.ticket or "-", outcome.reason)
        return outcome

    def tell_group_of_dead_letter(self, outbox_id: int) -> None:
        """A ticket's mail was given up on: its group hears of it, once."""
        with transaction(self.sessions) as session:
            row = session.get(Outbox, outbox_id)
            ticket = session.get(Ticket, row.ticket_id) if row and row.ticket_id else None
            if row is None or ticket is None or row.kind == "delivery_failed":
                return
            mails = TicketMail(self.notifier, self.router.policy.config)
            mails.to_agents(session, ticket, "delivery_failed", mails.agent(ticket.assignee)
                            or mails.group_agents(ticket.group), {
                                "mail_kind": row.kind, "to": ", ".join(row.recipients),
                                "error": (row.last_error or "")[:500]}, f"dead:{row.id}")

    def alert_admins(self, problem: str, detail: str, key: str) -> bool:
        """Mail the admins about ``problem`` once per ``key`` (e.g. per mailbox and day)."""
        with transaction(self.sessions) as session:
            return queue_admin_alert(session, self.notifier, self.settings, problem=problem, detail=detail, key=key,
                                     now_at=self.clock.now())

    def _record_failure(self, raw_id: int, exc: Exception) -> Outcome:
        now_at = self.clock.now()
        detail = "".join(traceback.format_exception(exc))[-8000:]
        with transaction(self.sessions) as session:
            raw = session.get(RawMail, raw_id)
            if raw is None:
                raise exc
            raw.attempts += 1
            if raw.attempts >= MAX_ATTEMPTS:
                raw.status, raw.reason = "quarantined", f"processing failed {raw.attempts} times:\n{detail}"
                service.record_event(session, None, "mail_quarantined", "maildesk", now_at, raw_mail_id=raw_id,
                                     error=f"{exc.__class__.__name__}: {exc}"[:500])
                log.error("raw mail %s quarantined after %d attempts: %s", raw_id, raw.attempts, exc)
                return Outcome("quarantined", raw_id, reason=str(exc))
            raw.next_attempt_at = now_at + RETRY_DELAYS[min(raw.attempts - 1, len(RETRY_DELAYS) - 1)]
            raw.reason = f"attempt {raw.attempts} failed:\n{detail}"
        log.warning("raw mail %s failed (attempt %d), will retry: %s", raw_id, raw.attempts, exc)
        return Outcome("retry", raw_id, reason=str(exc))


def _raw_values(mailbox: str, uidvalidity: int, mail: FetchedMail, now_at: datetime) -> dict[str, object]:
    return {
        "mailbox": mailbox,
        "uidvalidity": uidvalidity,
        "uid": mail.uid,
        "message_id": _quick_message_id(mail.raw),
        "sha256": hashlib.sha256(mail.raw).hexdigest(),
        "size": min(mail.size if mail.size is not None else len(mail.raw), MAX_SIZE_RECORDED),
        "raw": mail.raw,
        "fetched_at": now_at,
        "status": "pending",
        "attempts": 0,
    }


def _quick_message_id(raw: bytes) -> str | None:
    """The Message-ID header for bookkeeping, without a full parse."""
    lines = raw[:65536].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n")
    for index, line in enumerate(lines):
        if line[:11].lower() == b"message-id:":
            value = line[11:].strip() or (lines[index + 1].strip() if index + 1 < len(lines) else b"")
            return value.strip(b"<>").decode("ascii", "replace")[:900] or None
    return None


__all__ = ["IngestRunner", "Outcome"]
