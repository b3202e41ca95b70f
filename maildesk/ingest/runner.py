"""Ingest runner: raw mail in, ticket changes and queued mails out.

Two steps, each its own transaction:

1. ``store_fetched`` commits the raw bytes of fetched mails (nothing lost) —
   only after that may the mail be marked done on the server;
2. ``process_one`` takes one stored mail through the pure stages
   (parse → loops → thread → rules → SLA) and applies the outcome with the
   ticket service, in one transaction with the acknowledgment it causes.

A mail that raises is retried with a delay and quarantined after
``MAX_ATTEMPTS``, with its traceback; the mails behind it keep flowing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import jinja2

from maildesk.config import Settings
from maildesk.domain import (
    AppendTo,
    AutoKind,
    Automatic,
    Classification,
    Clock,
    NewTicket,
    OutboxMessage,
    ParsedMail,
)
from maildesk.errors import StoreUnavailableError
from maildesk.faults import crashpoint
from maildesk.ingest import loops, thread
from maildesk.ingest.imap import FetchedMail
from maildesk.ingest.parse import parse_mail
from maildesk.outbound.compose import is_own_message_id
from maildesk.outbound.notices import AckFacts, Desk, build_ack, build_admin_alert
from maildesk.rules.policy import PolicyDecision
from maildesk.store import queries
from maildesk.store.models import RawMail, Ticket
from maildesk.store.session import Session, SessionFactory, transaction, translate
from maildesk.tickets import service

log = logging.getLogger(__name__)
decisions = logging.getLogger("maildesk.decision")

MAX_ATTEMPTS = 3
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=5))
SECRET_NAME = "message-id-hmac"
SUPPRESS_AFTER_BOUNCE = timedelta(days=60)


class DeskPolicy(Protocol):
    """What the rules and SLA configuration decide for one new mail."""

    def decide(self, mail: ParsedMail, *, at: datetime, mailbox: str | None,
               default_group: str | None = None) -> PolicyDecision: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one stored mail."""

    status: str  # new-ticket | appended | outsider | automatic | duplicate | discarded | retry | quarantined
    raw_id: int
    ticket: str | None = None
    reason: str = ""


class IngestRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: SessionFactory,
        clock: Clock,
        policy: DeskPolicy,
        templates: jinja2.Environment,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.templates = templates
        self._secret: str | None = None

    # -- step 1: raw first ---------------------------------------------------

    def store_fetched(self, mailbox: str, uidvalidity: int, mails: Iterable[FetchedMail]) -> list[int]:
        """Commit fetched mails; returns the UIDs now safely stored (new or seen before)."""
        stored: list[int] = []
        now_at = self.clock.now()
        with transaction(self.sessions) as session:
            for mail in mails:
                queries.insert_raw_mail(session, _raw_values(mailbox, uidvalidity, mail, now_at))
                stored.append(mail.uid)
            crashpoint("fetched_not_committed")
        return stored

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
                outcome = self._apply(session, raw)
                crashpoint("mid_apply")
        except Exception as exc:
            store_error = translate(exc)
            if isinstance(store_error, StoreUnavailableError):
                raise store_error from exc  # not the mail's fault: no attempt counted
            return self._record_failure(raw_id, exc)
        decisions.info("raw=%s %s ticket=%s %s", raw_id, outcome.status, outcome.ticket or "-", outcome.reason)
        return outcome

    def _apply(self, session: Session, raw: RawMail) -> Outcome:
        now_at = self.clock.now()
        mail = parse_mail(raw.raw)
        dedup_key = f"mid:{mail.message_id}" if mail.message_id else f"sha256:{raw.sha256}"
        existing = queries.message_by_dedup_key(session, dedup_key)
        if existing is not None:
            return self._finish(raw, now_at, "duplicate", existing.ticket_id,
                                f"same mail as message {existing.id}", ticket=None)
        verdict = loops.assess(mail, own_addresses=self.settings.own_addresses)
        if mail.message_id and is_own_message_id(self._get_secret(session), mail.message_id):
            verdict = Automatic(AutoKind.AUTO_REPLY, "our own mail came back (Message-ID is ours)")
        keys = thread.lookup_keys(mail)
        waiting_for = queries.unprocessed_parents(session, keys.message_ids, raw.id)
        if waiting_for:
            # The mail it answers is still being processed (by another daemon, or awaiting a retry):
            # deciding now would make a reply into a ticket of its own.
            return Outcome("deferred", raw.id, reason=f"waits for stored mail {waiting_for[0]}")
        candidates = queries.find_candidates(session, keys)
        decision = thread.decide(mail, candidates, sender_is_agent=False)
        if isinstance(verdict, Automatic):
            return self._automatic(session, raw, mail, dedup_key, decision, verdict, now_at)
        if isinstance(decision, AppendTo):
            return self._append(session, raw, mail, dedup_key, decision, now_at)
        return self._new_ticket(session, raw, mail, dedup_key, decision, now_at)

    def _automatic(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str,
                   decision: AppendTo | NewTicket, verdict: Automatic, now_at: datetime) -> Outcome:
        """Never answered; recorded on its ticket when it has one, else kept as a discard record."""
        ticket_id = decision.ticket_id if isinstance(decision, AppendTo) and not decision.outsider else None
        if verdict.kind is AutoKind.BOUNCE:
            ticket_id = self._record_bounce(session, mail, now_at) or ticket_id
        if ticket_id is not None:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            service.add_message(session, ticket, mail=mail, raw_mail_id=raw.id, dedup_key=dedup_key,
                                kind="automatic", at=now_at)
            service.record_event(session, ticket.id, "automatic_mail", _sender(mail), now_at,
                                 kind=verdict.kind.value, reason=verdict.reason, message_id=mail.message_id)
            return self._finish(raw, now_at, "automatic", ticket.id, verdict.reason, ticket=ticket.number)
        service.record_event(session, None, "automatic_mail_discarded", _sender(mail), now_at,
                             kind=verdict.kind.value, reason=verdict.reason, raw_mail_id=raw.id,
                             message_id=mail.message_id)
        return self._finish(raw, now_at, "discarded", None, verdict.reason, ticket=None)

    def _record_bounce(self, session: Session, mail: ParsedMail, now_at: datetime) -> int | None:
        """Link a bounce to the mail of ours it returns; a permanent failure suppresses the address."""
        info = loops.parse_bounce(mail)
        if info is None:
            return None
        original = queries.outbox_by_message_id(session, info.original_message_id) \
            if info.original_message_id else None
        ticket_id = original.ticket_id if original else None
        if info.action == "failed":
            for address in info.recipients:
                queries.suppress_address(session, address, now_at + SUPPRESS_AFTER_BOUNCE,
                                         f"bounced ({info.status or 'no status'}): {mail.subject[:200]}", now_at)
        service.record_event(session, ticket_id, "mail_bounced", _sender(mail), now_at, action=info.action,
                             status=info.status, recipients=list(info.recipients),
                             original_message_id=info.original_message_id,
                             outbox_id=original.id if original else None)
        log.warning("bounce (%s %s) for %s, original %s", info.action, info.status or "-",
                    ", ".join(info.recipients) or "?", info.original_message_id or "unknown")
        return ticket_id

    def _append(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str,
                decision: AppendTo, now_at: datetime) -> Outcome:
        ticket = session.get(Ticket, decision.ticket_id)
        assert ticket is not None
        kind = "outsider" if decision.outsider else "reply"
        service.add_message(session, ticket, mail=mail, raw_mail_id=raw.id, dedup_key=dedup_key,
                            kind=kind, at=now_at)
        if decision.outsider:
            service.record_event(session, ticket.id, "outsider_mail", _sender(mail), now_at,
                                 reason=decision.reason, message_id=mail.message_id, flagged=True)
            return self._finish(raw, now_at, "outsider", ticket.id, decision.reason, ticket=ticket.number)
        service.add_participants(session, ticket, [(a, "cc") for a in mail.cc], self.settings.own_addresses)
        service.record_event(session, ticket.id, "reply_received", _sender(mail), now_at,
                             reason=decision.reason, message_id=mail.message_id)
        service.requester_replied(session, ticket, now_at, _sender(mail))
        return self._finish(raw, now_at, "appended", ticket.id, decision.reason, ticket=ticket.number)

    def _new_ticket(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str,
                    decision: NewTicket, now_at: datetime) -> Outcome:
        queue = next((m.queue for m in self.settings.mailboxes if m.name == raw.mailbox), None)
        policy = self.policy.decide(mail, at=now_at, mailbox=raw.mailbox, default_group=queue)
        classification, deadlines = policy.classification, policy.deadlines
        subject = thread.strip_subject(mail.subject) or "(无主题)"
        ticket = service.open_ticket(
            session, mail=mail, subject=subject, classification=classification, deadlines=deadlines,
            at=now_at, timezone=self.settings.timezone, mailbox=raw.mailbox, language=self.settings.locale,
        )
        people = [(mail.from_addr, "requester")] if mail.from_addr else []
        service.add_participants(session, ticket, [*people, *((a, "cc") for a in mail.cc)],
                                 self.settings.own_addresses)
        service.add_message(session, ticket, mail=mail, raw_mail_id=raw.id, dedup_key=dedup_key,
                            kind="request", at=now_at)
        why_no_ack = self._why_no_ack(session, mail, classification, now_at)
        if why_no_ack:
            service.record_event(session, ticket.id, "ack_skipped", "maildesk", now_at, reason=why_no_ack)
        else:
            service.enqueue(session, ticket.id, self._ack(session, ticket, mail, policy, now_at), now_at)
        return self._finish(raw, now_at, "new-ticket", ticket.id, decision.reason, ticket=ticket.number)

    def _why_no_ack(self, session: Session, mail: ParsedMail, classification: Classification,
                    now_at: datetime) -> str | None:
        if classification.suppress_ack:
            return "a rule suppresses the acknowledgment"
        if mail.from_addr is None:
            return "the mail has no usable From address"
        if loops.wants_no_auto_response(mail):
            return "the sender asked for no automatic answers (X-Auto-Response-Suppress)"
        if queries.suppressed(session, [mail.from_addr.addr], now_at):
            return "the address bounced recently and is suppressed"
        recent = queries.acks_sent_since(session, mail.from_addr.key, now_at - timedelta(hours=1))
        if recent >= self.settings.ack_limit_per_hour:
            log.warning("ack rate limit: %s already got %d acknowledgments this hour", mail.from_addr.addr, recent)
            return f"sender got {recent} acknowledgments in the last hour (limit {self.settings.ack_limit_per_hour})"
        return None

    def _ack(self, session: Session, ticket: Ticket, mail: ParsedMail, policy: PolicyDecision,
             now_at: datetime) -> OutboxMessage:
        assert mail.from_addr is not None
        facts = AckFacts(
            number=ticket.number,
            subject=ticket.subject,
            priority=ticket.priority,
            requester=mail.from_addr,
            language=ticket.language,
            group_name=policy.group_name,
            assignee_name=ticket.assignee,
            response_target=policy.response_target,
            response_business=policy.response_business,
            response_due_at=policy.deadlines.first_response_at,
            in_reply_to=mail.message_id,
            references=mail.references,
        )
        return build_ack(self.templates, self._desk(session), facts, now_at)

    def alert_admins(self, problem: str, detail: str, key: str) -> bool:
        """Mail the admins about ``problem`` once per ``key`` (e.g. per mailbox and day)."""
        if not self.settings.admins:
            log.error("ADMIN ALERT (no admins configured): %s: %s", problem, detail)
            return False
        now_at = self.clock.now()
        dedup_key = f"alert:{key}"
        with transaction(self.sessions) as session:
            if queries.outbox_by_dedup_key(session, dedup_key) is not None:
                return False
            alert = build_admin_alert(self.templates, self._desk(session), self.settings.admins, problem=problem,
                                      detail=detail, dedup_key=dedup_key, now_at=now_at)
            service.enqueue(session, None, alert, now_at)
        log.error("admin alert sent to %s: %s", ", ".join(self.settings.admins), problem)
        return True

    def _desk(self, session: Session) -> Desk:
        s = self.settings
        return Desk(s.support_address, s.support_name, s.bounce_address, s.message_id_domain,
                    self._get_secret(session), s.timezone, s.locale)

    def _get_secret(self, session: Session) -> str:
        if self._secret is None:
            self._secret = queries.get_or_create_secret(session, SECRET_NAME)
        return self._secret

    def _finish(self, raw: RawMail, now_at: datetime, status: str, ticket_id: int | None, reason: str,
                *, ticket: str | None) -> Outcome:
        raw.status = {"new-ticket": "done", "appended": "done", "outsider": "done",
                      "automatic": "done"}.get(status, status)
        raw.ticket_id, raw.processed_at, raw.reason = ticket_id, now_at, reason[:2000]
        return Outcome(status, raw.id, ticket, reason)

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
        "size": len(mail.raw),
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


def _sender(mail: ParsedMail) -> str:
    return mail.from_addr.addr if mail.from_addr else "unknown"

