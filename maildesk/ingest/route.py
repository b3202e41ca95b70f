"""Where one stored mail goes, and what that does: the decisions of the ingest pipeline, applied.

parse → duplicate? → automatic? (loops) → who wrote it (agent authentication)
→ which ticket (threading, outsider guard) → the route: automatic record,
agent mail, outsider, requester reply, or a new ticket.  Runs inside the
transaction the runner opened for this mail; everything it writes — ticket,
message, events, outbox rows — commits together or not at all.

Longer than our usual module: the intake guards (oversize mail, ticket-number
guessing) sit here beside the routes on purpose, so every way a mail can go is
read in one file, in the order it is decided.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from maildesk.config import Settings
from maildesk.domain import (
    AppendTo,
    AutoKind,
    Automatic,
    Clock,
    NewTicket,
    OutboxMessage,
    ParsedMail,
    Priority,
)
from maildesk.ingest import loops, thread
from maildesk.ingest.agent_mail import AgentMail
from maildesk.ingest.authn import AgentCheck, verify_agent
from maildesk.ingest.parse import parse_mail
from maildesk.ingest.requester_mail import RequesterMail
from maildesk.kb import mail as kb_mail
from maildesk.kb import service as kb_service
from maildesk.outbound.compose import is_own_message_id, safe_address
from maildesk.outbound.notices import AckFacts, AckSuggestion, build_ack, build_admin_alert
from maildesk.outbound.notifier import REPLY_TOKEN_SECRET, SECRET_NAME, Notifier
from maildesk.outbound.ticket_mail import TicketMail, reply_token
from maildesk.rules.agents import choose_assignee
from maildesk.rules.loader import RuleConfig
from maildesk.rules.policy import PolicyDecision, RulesPolicy
from maildesk.sla.calendar import is_business_time
from maildesk.store import queries
from maildesk.store.models import AssignmentState, RawMail, Ticket
from maildesk.store.session import Session
from maildesk.tickets import lifecycle, service

log = logging.getLogger(__name__)

SUPPRESS_AFTER_BOUNCE = timedelta(days=60)
# An outsider naming ticket numbers not theirs (someone else's, or none) is throttled after this many a day.
GUESS_LIMIT = 5
GUESS_WINDOW = timedelta(hours=24)
GUESS_KINDS = ("outsider_mail", "unknown_ticket_tag", "guess_throttled")
DONE = {"new-ticket", "appended", "outsider", "automatic", "agent"}


@dataclass(frozen=True)
class Outcome:
    """What became of one stored mail."""

    status: str  # new-ticket | appended | agent | outsider | automatic | duplicate | discarded | deferred | …
    raw_id: int
    ticket: str | None = None
    reason: str = ""


class MailRouter:
    def __init__(self, *, settings: Settings, clock: Clock, policy: RulesPolicy, notifier: Notifier,
                 lifecycle_policy: lifecycle.LifecyclePolicy | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.policy = policy
        self.notifier = notifier
        self.lifecycle = lifecycle_policy or lifecycle_from(settings)

    def apply(self, session: Session, raw: RawMail) -> Outcome:
        if raw.size > self.settings.max_mail_size or raw.size > len(raw.raw):
            return self._oversize(session, raw)
        mail = parse_mail(raw.raw)
        outcome = self._route(session, raw, mail)
        limits = [d for d in mail.defects if d.startswith("limit:")]
        if (limits or mail.truncated) and outcome.status != "deferred":
            # The rest of the mail stays in the raw bytes; say which limit cut it, where people look.
            why = "; ".join(limits) or "parse stopped at a limit"
            service.record_event(session, raw.ticket_id, "mail_truncated", _sender(mail), self.clock.now(),
                                 raw_mail_id=raw.id, limits=limits)
            raw.reason = f"{raw.reason or ''} [{why}]"[:2000]
            outcome = replace(outcome, reason=f"{outcome.reason} [{why}]")
        return outcome

    def _route(self, session: Session, raw: RawMail, mail: ParsedMail) -> Outcome:
        now_at = self.clock.now()
        dedup_key = f"mid:{mail.message_id}" if mail.message_id else f"sha256:{raw.sha256}"
        existing = queries.message_by_dedup_key(session, dedup_key)
        if existing is not None:
            return self._finish(raw, now_at, "duplicate", existing.ticket_id, f"same mail as message {existing.id}")
        keys = thread.lookup_keys(mail)
        waiting_for = queries.unprocessed_parents(session, keys.message_ids, raw.id)
        if waiting_for:
            # The mail it answers is still being processed (by another daemon, or awaiting a retry):
            # deciding now would make a reply into a ticket of its own.
            return Outcome("deferred", raw.id, reason=f"waits for stored mail {waiting_for[0]}")
        config = self.policy.config  # one snapshot of the rules for the whole mail
        mails = TicketMail(self.notifier, config)
        verdict = self._assess(session, mail)
        check = self._authenticate(session, mail, config)
        kb_number = kb_mail.edit_target(mail) if check.is_agent and check.address else None
        if kb_number and check.address and not isinstance(verdict, Automatic):
            return self._kb_edit(session, raw, mail, kb_number, check.address, now_at)
        decision = thread.decide(mail, queries.find_candidates(session, keys), sender_is_agent=check.is_agent)
        if isinstance(verdict, Automatic):
            return self._automatic(session, raw, mail, dedup_key, decision, verdict, now_at)
        guess = None if check.is_agent else _foreign_number(decision, keys.ticket_ref)
        if guess and self._guessing(session, mail, guess, now_at):
            return self._throttled(session, raw, mail, guess, now_at)
        if guess and isinstance(decision, NewTicket):
            service.record_event(session, None, "unknown_ticket_tag", _sender(mail), now_at, number=guess,
                                 raw_mail_id=raw.id, flagged=True)
        if check.claimed:
            self._impostor(session, mail, check, decision, mails, dedup_key, now_at)
        if isinstance(decision, AppendTo) and check.is_agent and check.address:
            return self._agent(session, raw, mail, dedup_key, decision, check.address, mails, now_at)
        if isinstance(decision, AppendTo) and decision.outsider:
            return self._outsider(session, raw, mail, dedup_key, decision, now_at)
        if isinstance(decision, AppendTo):
            return self._requester(session, raw, mail, dedup_key, decision, mails, now_at)
        return self._new_ticket(session, raw, mail, dedup_key, decision.reason, mails, now_at)

    def _assess(self, session: Session, mail: ParsedMail) -> loops.Proceed | Automatic:
        verdict = loops.assess(mail, own_addresses=self.settings.own_addresses)
        if mail.message_id and is_own_message_id(self.notifier.secret(session), mail.message_id):
            return Automatic(AutoKind.AUTO_REPLY, "our own mail came back (Message-ID is ours)")
        return verdict

    def _authenticate(self, session: Session, mail: ParsedMail, config: RuleConfig) -> AgentCheck:
        secret = self.notifier.named_secret(session, REPLY_TOKEN_SECRET)
        return verify_agent(mail, config.agents.addresses, config.agents.trust,
                            reply_token=lambda address: reply_token(secret, address),
                            support_address=self.settings.support_address)

    # -- routes -----------------------------------------------------------------------------------

    def _oversize(self, session: Session, raw: RawMail) -> Outcome:
        """Too big to parse: kept in quarantine as it came, the sender told once a day, its ticket noted."""
        now_at = self.clock.now()
        limit = self.settings.max_mail_size
        mail = parse_mail(_header_block(raw.raw))  # who sent it and what it answers; the body is never read
        kept = "kept raw, not parsed" if raw.size <= len(raw.raw) else \
            "only its headers were kept: the mail itself stays on the mail server, marked done"
        reason = f"oversize: {_megabytes(raw.size)} is over the {_megabytes(limit)} limit; {kept}"
        decision = thread.decide(mail, queries.find_candidates(session, thread.lookup_keys(mail)),
                                 sender_is_agent=False)
        ticket_id = decision.ticket_id if isinstance(decision, AppendTo) and not decision.outsider else None
        told = self._tell_oversize(session, mail, raw.size, now_at)
        service.record_event(session, ticket_id, "mail_oversize", _sender(mail), now_at, raw_mail_id=raw.id,
                             size=raw.size, limit=limit, subject=mail.subject[:200], sender_told=told)
        log.warning("raw mail %s from %s quarantined: %s", raw.id, _sender(mail), reason)
        raw.status, raw.ticket_id, raw.processed_at, raw.reason = "quarantined", ticket_id, now_at, reason
        return Outcome("quarantined", raw.id, reason=reason)

    def _guessing(self, session: Session, mail: ParsedMail, number: str, now_at: datetime) -> bool:
        """Has this sender already named ``GUESS_LIMIT`` ticket numbers not theirs within ``GUESS_WINDOW``?"""
        return queries.events_by_actor_since(session, GUESS_KINDS, _sender(mail),
                                             now_at - GUESS_WINDOW) >= GUESS_LIMIT

    def _throttled(self, session: Session, raw: RawMail, mail: ParsedMail, number: str, now_at: datetime) -> Outcome:
        """Ticket-number guessing: the mail goes nowhere near a ticket, the admins hear of it once a day."""
        sender = _sender(mail)
        reason = (f"throttled: {sender} wrote about more than {GUESS_LIMIT} ticket numbers that are not theirs "
                  f"within {GUESS_WINDOW.total_seconds() / 3600:.0f} h (this one: {number})")
        service.record_event(session, None, "guess_throttled", sender, now_at, number=number, raw_mail_id=raw.id,
                             flagged=True)
        day = now_at.astimezone(ZoneInfo(self.settings.timezone)).date().isoformat()
        queue_admin_alert(session, self.notifier, self.settings, problem="可能在猜测工单号 / possible ticket-number "
                          "guessing", detail=f"{reason}. Their further mails of this kind are held in quarantine "
                          "(maildesk quarantine list); nothing was added to any ticket and nothing was answered.",
                          key=f"guessing:{mail.from_addr.key if mail.from_addr else sender}:{day}", now_at=now_at)
        log.warning("raw mail %s quarantined: %s", raw.id, reason)
        raw.status, raw.processed_at, raw.reason = "quarantined", now_at, reason
        return Outcome("quarantined", raw.id, reason=reason)

    def _tell_oversize(self, session: Session, mail: ParsedMail, size: int, now_at: datetime) -> bool:
        """One notice per sender and local day, never to automatic mail or an address that bounced."""
        if isinstance(self._assess(session, mail), Automatic) or self._why_no_ack(session, mail, False, now_at):
            return False
        assert mail.from_addr is not None
        day = now_at.astimezone(ZoneInfo(self.settings.timezone)).date().isoformat()
        return self.notifier.send(
            session, None, kind="oversize_notice", to=[(mail.from_addr.name or "", mail.from_addr.addr)],
            context={"subject": mail.subject, "size": _megabytes(size),
                     "limit": _megabytes(self.settings.max_mail_size)},
            key=f"oversize:{mail.from_addr.key}:{day}")

    def _kb_edit(self, session: Session, raw: RawMail, mail: ParsedMail, number: str, agent: str,
                 now_at: datetime) -> Outcome:
        """An agent's reply to a knowledge-base article mail edits the article; it is no ticket's mail."""
        status, reason = kb_mail.apply_edit(session, mail, number, agent, now_at)
        return self._finish(raw, now_at, status, None, f"agent {agent}: {reason}")

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
            return self._finish(raw, now_at, "automatic", ticket.id, verdict.reason, ticket.number)
        service.record_event(session, None, "automatic_mail_discarded", _sender(mail), now_at,
                             kind=verdict.kind.value, reason=verdict.reason, raw_mail_id=raw.id,
                             message_id=mail.message_id)
        return self._finish(raw, now_at, "discarded", None, verdict.reason)

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

    def _impostor(self, session: Session, mail: ParsedMail, check: AgentCheck, decision: AppendTo | NewTicket,
                  mails: TicketMail, dedup_key: str, now_at: datetime) -> None:
        """Someone used an agent's address without proof: the mail runs no command, the agent is told."""
        ticket = session.get(Ticket, decision.ticket_id) if isinstance(decision, AppendTo) else None
        service.record_event(session, ticket.id if ticket else None, "agent_impersonation", _sender(mail), now_at,
                             flagged=True, claimed=check.address, reason=check.reason)
        log.warning("mail claiming to be agent %s failed authentication: %s", check.address, check.reason)
        if check.address:
            mails.impostor(session, ticket, check.address, mail.subject, check.reason, dedup_key)

    def _agent(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str, decision: AppendTo,
               agent: str, mails: TicketMail, now_at: datetime) -> Outcome:
        ticket = session.get(Ticket, decision.ticket_id)
        assert ticket is not None
        result = AgentMail(mails, self.policy).handle(session, ticket, mail, agent, raw_id=raw.id,
                                                      dedup_key=dedup_key, at=now_at)
        return self._finish(raw, now_at, "agent", ticket.id, f"agent {agent}: {result.reason}", ticket.number)

    def _outsider(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str, decision: AppendTo,
                  now_at: datetime) -> Outcome:
        ticket = session.get(Ticket, decision.ticket_id)
        assert ticket is not None
        service.add_message(session, ticket, mail=mail, raw_mail_id=raw.id, dedup_key=dedup_key, kind="outsider",
                            at=now_at)
        service.record_event(session, ticket.id, "outsider_mail", _sender(mail), now_at,
                             reason=decision.reason, message_id=mail.message_id, flagged=True)
        return self._finish(raw, now_at, "outsider", ticket.id, decision.reason, ticket.number)

    def _requester(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str, decision: AppendTo,
                   mails: TicketMail, now_at: datetime) -> Outcome:
        ticket = session.get(Ticket, decision.ticket_id)
        assert ticket is not None
        handler = RequesterMail(mails, self.lifecycle, closed_policy=self.settings.lifecycle.closed_policy)
        reaction = handler.reaction(ticket, mail, now_at)
        if reaction.new_ticket:
            return self._new_ticket(session, raw, mail, dedup_key, reaction.reason, mails, now_at, follows=ticket)
        service.add_participants(session, ticket, [(a, "cc") for a in mail.cc], self.settings.own_addresses)
        result = handler.handle(session, ticket, mail, reaction, raw_id=raw.id, dedup_key=dedup_key, at=now_at,
                                sender=_sender(mail))
        service.record_event(session, ticket.id, "reply_received", _sender(mail), now_at, reason=decision.reason,
                             message_id=mail.message_id, outcome=result.kind)
        return self._finish(raw, now_at, "appended", ticket.id, f"{decision.reason}; {result.reason}", ticket.number)

    def _new_ticket(self, session: Session, raw: RawMail, mail: ParsedMail, dedup_key: str, reason: str,
                    mails: TicketMail, now_at: datetime, follows: Ticket | None = None) -> Outcome:
        queue = next((m.queue for m in self.settings.mailboxes if m.name == raw.mailbox), None)
        policy = self.policy.decide(mail, at=now_at, mailbox=raw.mailbox, default_group=queue)
        classification = policy.classification
        if classification.assignee is None and classification.group:
            classification = replace(classification, assignee=self._assign(session, mails.config,
                                                                           classification.group, now_at))
            policy = replace(policy, classification=classification)
        ticket = service.open_ticket(
            session, mail=mail, subject=thread.strip_subject(mail.subject) or "(无主题)",
            classification=classification, deadlines=policy.deadlines, at=now_at, timezone=self.settings.timezone,
            mailbox=raw.mailbox, language=self.settings.locale)
        ticket.next_due_at = now_at
        if follows is not None:
            ticket.follows_id = follows.id
            service.record_event(session, follows.id, "followed_by", _sender(mail), now_at, ticket=ticket.number)
        people = [(mail.from_addr, "requester")] if mail.from_addr else []
        service.add_participants(session, ticket, [*people, *((a, "cc") for a in mail.cc)],
                                 self.settings.own_addresses)
        service.add_message(session, ticket, mail=mail, raw_mail_id=raw.id, dedup_key=dedup_key, kind="request",
                            at=now_at)
        why_no_ack = self._why_no_ack(session, mail, classification.suppress_ack, now_at)
        if why_no_ack:
            service.record_event(session, ticket.id, "ack_skipped", "maildesk", now_at, reason=why_no_ack)
        else:
            service.enqueue(session, ticket.id, self._ack(session, ticket, mail, policy, mails, now_at), now_at)
        mails.new_ticket(session, ticket, mail.body_text,
                         urgent_or_high=classification.priority in (Priority.URGENT, Priority.HIGH))
        return self._finish(raw, now_at, "new-ticket", ticket.id, reason, ticket.number)

    def _assign(self, session: Session, config: RuleConfig, group: str, now_at: datetime) -> str | None:
        """Round robin or least open tickets among the group's agents on duty now."""
        candidates = config.agents.members_of(group)
        if not candidates:
            return None
        state = session.get(AssignmentState, group) or AssignmentState(group_id=group)

        def on_duty(agent: object) -> bool:
            calendar_id = getattr(agent, "calendar", None)
            if not getattr(agent, "on_duty", True):
                return False
            if calendar_id is None:
                return True
            return is_business_time(config.calendar(calendar_id), now_at)

        chosen = choose_assignee(candidates, mode=config.agents.mode_for(group),
                                 open_counts=queries.open_counts_by_assignee(session, [a.agent_id for a in candidates]),
                                 last_assigned=state.last_agent, on_duty=on_duty)
        if chosen is None:
            return None
        state.last_agent = chosen.agent_id
        session.merge(state)
        return chosen.agent_id

    def _why_no_ack(self, session: Session, mail: ParsedMail, suppressed_by_rule: bool, now_at: datetime) -> str | None:
        if suppressed_by_rule:
            return "a rule suppresses the acknowledgment"
        if mail.from_addr is None or safe_address(mail.from_addr.addr) is None:
            return "the mail has no deliverable From address"
        if loops.wants_no_auto_response(mail):
            return "the sender asked for no automatic answers (X-Auto-Response-Suppress)"
        if queries.suppressed(session, [mail.from_addr.addr], now_at):
            return "the address bounced recently and is suppressed"
        recent = queries.acks_sent_since(session, mail.from_addr.key, now_at - timedelta(hours=1))
        if recent >= self.settings.ack_limit_per_hour:
            log.warning("ack rate limit: %s already got %d acknowledgments this hour", mail.from_addr.addr, recent)
            return f"sender got {recent} acknowledgments in the last hour (limit {self.settings.ack_limit_per_hour})"
        return None

    def _ack(self, session: Session, ticket: Ticket, mail: ParsedMail, policy: PolicyDecision, mails: TicketMail,
             now_at: datetime) -> OutboxMessage:
        assert mail.from_addr is not None
        found = kb_service.suggest(session, ticket.subject, mail.reply_text or mail.body_text)
        if found:
            kb_service.record_suggestions(session, ticket, found, now_at)
        suggestions = tuple(AckSuggestion(a.number, a.title, a.solution)
                            for a in kb_service.suggestion_articles(session, found))
        facts = AckFacts(
            number=ticket.number, subject=ticket.subject, priority=ticket.priority, requester=mail.from_addr,
            language=ticket.language, group_name=policy.group_name,
            assignee_name=mails.agent_name(ticket.assignee), response_target=policy.response_target,
            response_business=policy.response_business, response_due_at=policy.deadlines.first_response_at,
            in_reply_to=mail.message_id, references=mail.references, suggestions=suggestions,
        )
        return build_ack(self.notifier.templates, self.notifier.desk(session), facts, now_at)

    def _finish(self, raw: RawMail, now_at: datetime, status: str, ticket_id: int | None, reason: str,
                ticket: str | None = None) -> Outcome:
        raw.status = "done" if status in DONE else status
        raw.ticket_id, raw.processed_at, raw.reason = ticket_id, now_at, reason[:2000]
        return Outcome(status, raw.id, ticket, reason)


def queue_admin_alert(session: Session, notifier: Notifier, settings: Settings, *, problem: str, detail: str,
                      key: str, now_at: datetime) -> bool:
    """Queue a mail to the admins about ``problem``, once per ``key``, in the caller's transaction."""
    if not settings.admins:
        log.error("ADMIN ALERT (no admins configured): %s: %s", problem, detail)
        return False
    dedup_key = f"alert:{key}"
    if queries.dedup_keys_taken(session, [dedup_key]):
        return False
    alert = build_admin_alert(notifier.templates, notifier.desk(session), settings.admins, problem=problem,
                              detail=detail, dedup_key=dedup_key, now_at=now_at)
    service.enqueue(session, None, alert, now_at)
    log.error("admin alert sent to %s: %s", ", ".join(settings.admins), problem)
    return True


def _foreign_number(decision: AppendTo | NewTicket, tagged: str | None) -> str | None:
    """The ticket number a mail names that is not its sender's: someone else's, or none at all."""
    if isinstance(decision, AppendTo):
        return decision.number if decision.outsider else None
    return tagged  # a tag that matched no ticket


def lifecycle_from(settings: Settings) -> lifecycle.LifecyclePolicy:
    """The lifecycle policy the admin set in ``[lifecycle]`` of maildesk.toml."""
    own = settings.lifecycle
    return lifecycle.LifecyclePolicy(
        warn_share=own.warn_share, pending_reminder_after=own.pending_reminder_after,
        pending_reminder_max=own.pending_reminder_max, auto_close_after=own.auto_close_after,
        reopen_window=own.reopen_window)


def _header_block(raw: bytes) -> bytes:
    """The header block of a raw mail (all of it when there is no body)."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[:min(ends) + 2] if ends else raw


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _sender(mail: ParsedMail) -> str:
    return mail.from_addr.addr if mail.from_addr else "unknown"


__all__ = ["SECRET_NAME", "MailRouter", "Outcome"]
