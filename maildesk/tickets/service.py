"""The one place that changes tickets.

Takes a Session and never commits: the runner owns the transaction, so a
ticket, its message, its events and the mails it causes are written together
or not at all.  Every change leaves an event saying what changed and who or
what changed it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.domain import Address, Classification, Deadlines, OutboxMessage, ParsedMail, TicketStatus
from maildesk.store import queries
from maildesk.store.models import Event, Message, Outbox, Participant, Ticket
from maildesk.store.session import Connection, Session
from maildesk.tickets.numbers import format_number
from maildesk.tickets.states import after_requester_reply, check_transition

log = logging.getLogger(__name__)
EVENT_VERSION = 1


def record_event(
    session: Session, ticket_id: int | None, what: str, actor: str, at: datetime, /, **data: Any
) -> Event:
    """Append to the audit trail; ``data`` is stored as versioned JSON."""
    event = Event(ticket_id=ticket_id, kind=what, actor=actor, at=at, data={"version": EVENT_VERSION, **data})
    session.add(event)
    return event


def record_event_at_once(
    connection: Connection, ticket_id: int | None, what: str, actor: str, at: datetime, /, **data: Any
) -> None:
    """``record_event`` as one INSERT now, on a bare connection (the outbox sender, once per sent mail)."""
    queries.insert_event(connection, {"ticket_id": ticket_id, "kind": what, "actor": actor, "at": at,
                                   "data": {"version": EVENT_VERSION, **data}})


def open_ticket(
    session: Session,
    *,
    mail: ParsedMail,
    subject: str,
    classification: Classification,
    deadlines: Deadlines,
    at: datetime,
    timezone: str,
    mailbox: str | None,
    language: str,
) -> Ticket:
    """Create a ticket for a new request, numbered in the desk's local day."""
    day = at.astimezone(ZoneInfo(timezone)).date()
    number = format_number(day, queries.next_ticket_sequence(session, day))
    requester = mail.from_addr or Address("unknown@invalid")
    ticket = Ticket(
        number=number,
        subject=subject,
        status=TicketStatus.NEW.value,
        priority=classification.priority.value,
        category=classification.category.value,
        group=classification.group,
        assignee=classification.assignee,
        impact=classification.impact,
        language=classification.language or language,
        requester_addr=requester.addr,
        requester_name=requester.name,
        mailbox=mailbox,
        created_at=at,
        updated_at=at,
        first_response_due_at=deadlines.first_response_at,
        resolve_due_at=deadlines.resolve_at,
        classification=_classification_record(classification, deadlines),
        participants=[],  # known empty: adding the requester then loads nothing
    )
    session.add(ticket)
    session.flush()
    record_event(
        session, ticket.id, "ticket_created", "maildesk", at,
        number=number, priority=ticket.priority, category=ticket.category, group=ticket.group,
        rules=[asdict(hit) for hit in classification.hits],
        deadlines={"first_response_at": _iso(deadlines.first_response_at),
                   "resolve_at": _iso(deadlines.resolve_at),
                   "explanation": list(deadlines.explanation)},
    )
    log.info("ticket %s created for %s (priority %s)", number, requester.addr, ticket.priority)
    return ticket


def add_participants(
    session: Session, ticket: Ticket, addresses: list[tuple[Address, str]], own_addresses: frozenset[str]
) -> None:
    """Add people to a ticket once each; our own addresses never become participants."""
    known = {p.address for p in ticket.participants}
    for address, role in addresses:
        key = address.key
        if key in known or key in own_addresses or "@" not in key:
            continue
        known.add(key)
        ticket.participants.append(Participant(address=key, name=address.name, role=role))


def add_message(
    session: Session,
    ticket: Ticket,
    *,
    mail: ParsedMail,
    raw_mail_id: int | None,
    dedup_key: str,
    kind: str,
    at: datetime,
) -> Message:
    """Record an incoming mail on a ticket."""
    sender = mail.from_addr or Address("unknown@invalid")
    message = Message(
        ticket_id=ticket.id,
        raw_mail_id=raw_mail_id,
        dedup_key=dedup_key,
        message_id=mail.message_id,
        direction="in",
        kind=kind,
        from_addr=sender.addr,
        from_name=sender.name,
        to_addrs=[a.addr for a in mail.to],
        cc_addrs=[a.addr for a in mail.cc],
        subject=mail.subject,
        body_text=mail.body_text,
        reply_text=mail.reply_text,
        created_at=at,
    )
    session.add(message)
    if kind in ("request", "reply"):
        ticket.updated_at = at
    session.flush()
    return message


def requester_replied(session: Session, ticket: Ticket, at: datetime, actor: str) -> None:
    """A requester's follow-up; reopens a ticket that was waiting on them."""
    ticket.last_requester_at = at
    target = after_requester_reply(TicketStatus(ticket.status))
    change_status(session, ticket, target, actor, at, why="requester replied")


def enqueue(session: Session, ticket_id: int | None, message: OutboxMessage, at: datetime,
            send_at: datetime | None = None) -> Outbox:
    """Queue a mail to send in the current transaction (the transactional outbox).

    ``send_at`` holds it back (e.g. until the recipient's business hours).
    """
    row = Outbox(
        ticket_id=ticket_id,
        kind=message.kind,
        dedup_key=message.dedup_key,
        message_id=message.message_id,
        mail_from=message.mail_from,
        recipients=list(message.recipients),
        recipient_key=message.recipients[0].lower() if message.recipients else "",
        raw=message.raw,
        status="queued",
        attempts=0,
        next_attempt_at=send_at or at,
        created_at=at,
    )
    session.add(row)
    session.flush()
    record_event(session, ticket_id, "mail_queued", "maildesk", at, kind=message.kind,
                 message_id=message.message_id, to=list(message.recipients))
    return row


def _classification_record(classification: Classification, deadlines: Deadlines) -> dict[str, Any]:
    return {
        "version": EVENT_VERSION,
        "tags": list(classification.tags),
        "hits": [asdict(hit) for hit in classification.hits],
        "progress_every_s": deadlines.progress_every.total_seconds() if deadlines.progress_every else None,
        "explanation": list(deadlines.explanation),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- changes of a ticket (agents' commands, the sweep, requester replies) -------------------------


def change_status(session: Session, ticket: Ticket, target: TicketStatus, actor: str, at: datetime,
                  why: str) -> bool:
    """Move a ticket to ``target`` if the process allows it; keeps the SLA pause bookkeeping right.

    Returns False when the ticket is already there.  Raises TransitionError for
    a move the process forbids (e.g. closed → open).
    """
    current = TicketStatus(ticket.status)
    if current is target:
        return False
    check_transition(current, target)
    if current is TicketStatus.PENDING and ticket.pending_since_at is not None:
        ticket.paused_seconds += int((at - ticket.pending_since_at).total_seconds())
        ticket.pending_since_at = None
    if target is TicketStatus.PENDING:
        ticket.pending_since_at = at
    if target is TicketStatus.RESOLVED:
        ticket.resolved_at = at
    if target is TicketStatus.CLOSED:
        ticket.closed_at = at
    if current is TicketStatus.RESOLVED and target is TicketStatus.OPEN:
        ticket.reopened_count += 1
        ticket.resolved_at = None
    ticket.status, ticket.updated_at = target.value, at
    ticket.next_due_at = at  # the sweep re-plans what this ticket is owed
    record_event(session, ticket.id, "status_changed", actor, at, old=current.value, new=target.value, why=why)
    return True


def set_deadlines(session: Session, ticket: Ticket, deadlines: Deadlines, actor: str, at: datetime,
                  why: str) -> None:
    """Store recomputed deadlines (after a priority change or the end of a pause) with the reason."""
    old = (ticket.first_response_due_at, ticket.resolve_due_at)
    ticket.first_response_due_at, ticket.resolve_due_at = deadlines.first_response_at, deadlines.resolve_at
    if old != (ticket.first_response_due_at, ticket.resolve_due_at):
        record_event(session, ticket.id, "deadlines_changed", actor, at, why=why,
                     first_response_at=_iso(deadlines.first_response_at), resolve_at=_iso(deadlines.resolve_at),
                     explanation=list(deadlines.explanation))


def change_field(session: Session, ticket: Ticket, field: str, value: str | None, actor: str, at: datetime,
                 why: str) -> bool:
    """Change priority, category, group or assignee, recording old and new."""
    if field not in ("priority", "category", "group", "assignee", "impact"):
        raise ValueError(f"{field} is not a field agents may change")
    old = getattr(ticket, field)
    if old == value:
        return False
    setattr(ticket, field, value)
    ticket.updated_at, ticket.next_due_at = at, at
    record_event(session, ticket.id, f"{field}_changed", actor, at, old=old, new=value, why=why)
    return True


def record_first_response(session: Session, ticket: Ticket, actor: str, at: datetime) -> None:
    """The first public answer by an agent stops the first-response clock."""
    if ticket.first_response_at is None:
        ticket.first_response_at = at
        breached = ticket.first_response_due_at is not None and at > ticket.first_response_due_at
        record_event(session, ticket.id, "first_response", actor, at, within_sla=not breached)
        if TicketStatus(ticket.status) is TicketStatus.NEW:
            change_status(session, ticket, TicketStatus.OPEN, actor, at, why="first agent reply")


def rate(session: Session, ticket: Ticket, rating: str, comment: str, actor: str, at: datetime) -> None:
    """One rating per ticket; a later answer replaces the earlier one, and both are in the trail."""
    old = ticket.satisfaction
    ticket.satisfaction, ticket.satisfaction_comment, ticket.rated_at = rating, comment[:4000], at
    record_event(session, ticket.id, "rated", actor, at, old=old, new=rating, comment=comment[:1000])


def escalate(session: Session, ticket: Ticket, level: int, actor: str, at: datetime, why: str) -> bool:
    if level <= ticket.escalation_level:
        return False
    old, ticket.escalation_level = ticket.escalation_level, level
    ticket.next_due_at = at
    record_event(session, ticket.id, "escalated", actor, at, old=old, new=level, why=why)
    return True
