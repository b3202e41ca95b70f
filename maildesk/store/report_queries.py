"""The queries of the reports: tickets and the text of their first request.

Read only.  ``reports/build.py`` turns the results into the plain rows the
statistics take.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from maildesk.store.models import Message, Ticket

BODY_LIMIT = 4000  # characters of the first request kept for term counting


def report_tickets(session: Session, since_at: datetime, until_at: datetime) -> list[tuple[Ticket, str]]:
    """Tickets a report on ``[since_at, until_at)`` needs.

    Those created before ``until_at`` that were created, resolved, closed or rated
    on or after ``since_at``, or are not resolved or closed at all (for the open count);
    each with the text of its first request.
    """
    stmt = (
        select(Ticket)
        .where(
            Ticket.created_at < until_at,
            or_(
                Ticket.created_at >= since_at,
                Ticket.resolved_at >= since_at,
                Ticket.closed_at >= since_at,
                Ticket.rated_at >= since_at,
                Ticket.resolved_at.is_(None) & Ticket.closed_at.is_(None),
            ),
        )
        .order_by(Ticket.id)
    )
    tickets = list(session.scalars(stmt))
    bodies = first_request_texts(session, [t.id for t in tickets])
    return [(t, bodies.get(t.id, "")) for t in tickets]


def first_request_texts(session: Session, ticket_ids: list[int]) -> dict[int, str]:
    """Ticket id → the text of its first incoming request (the reply part if the parser found one)."""
    found: dict[int, str] = {}
    for start in range(0, len(ticket_ids), 500):
        chunk = ticket_ids[start:start + 500]
        first = (
            select(func.min(Message.id))
            .where(Message.ticket_id.in_(chunk), Message.direction == "in", Message.kind == "request")
            .group_by(Message.ticket_id)
        )
        rows = session.execute(
            select(Message.ticket_id, Message.reply_text, Message.body_text).where(Message.id.in_(first))
        )
        for ticket_id, reply_text, body_text in rows:
            found[ticket_id] = (reply_text or body_text or "")[:BODY_LIMIT]
    return found
