"""Make a report from the store: read the tickets, compute, draw, and render or queue the mail.

A runner: it reads the database through ``store.report_queries`` and queues
the report mail through ``tickets.service.enqueue`` in the caller's session
(the caller owns the transaction).  The time comes in as ``now_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

import jinja2

from maildesk.outbound.compose import safe_address
from maildesk.outbound.notices import Desk
from maildesk.reports.charts import render_charts
from maildesk.reports.exports import report_to_csv, report_to_json
from maildesk.reports.mail import build_report_mail, render_report, report_key
from maildesk.reports.stats import Period, Report, TicketRow, compute_report
from maildesk.store import queries, report_queries
from maildesk.store.models import Outbox, Ticket
from maildesk.store.session import Session
from maildesk.tickets.service import enqueue

log = logging.getLogger(__name__)
FORMATS = ("html", "csv", "json")


@dataclass(frozen=True)
class Queued:
    """The outcome of queueing a report mail: ``created`` is False when the same one was queued before."""

    outbox_id: int
    message_id: str
    created: bool


def ticket_row(ticket: Ticket, body: str) -> TicketRow:
    """The plain row of one stored ticket."""
    return TicketRow(
        number=ticket.number, subject=ticket.subject, body=body, status=ticket.status,
        priority=ticket.priority, category=ticket.category, group=ticket.group, assignee=ticket.assignee,
        requester_name=ticket.requester_name, requester_addr=ticket.requester_addr,
        created_at=ticket.created_at, first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at, closed_at=ticket.closed_at,
        first_response_due_at=ticket.first_response_due_at, resolve_due_at=ticket.resolve_due_at,
        satisfaction=ticket.satisfaction, rated_at=ticket.rated_at, reopened_count=ticket.reopened_count or 0,
    )


def load_report(session: Session, period: Period, now_at: datetime, zone: tzinfo) -> Report:
    """The report of ``period`` (and its trend against the period before), as the store is at ``now_at``."""
    found = report_queries.report_tickets(session, period.previous().start_at, period.end_at)
    rows = [ticket_row(ticket, body) for ticket, body in found]
    log.info("report %s .. %s: %d tickets read", period.start_at.isoformat(), period.end_at.isoformat(), len(rows))
    return compute_report(rows, period, now_at, zone)


def export_report(env: jinja2.Environment, desk: Desk, report: Report, fmt: str, zone: tzinfo,
                  locale: str) -> str:
    """The report as a standalone HTML page (charts as ``data:`` images), CSV or JSON."""
    if fmt == "csv":
        return report_to_csv(report)
    if fmt == "json":
        return report_to_json(report)
    if fmt == "html":
        rendered = render_report(env, report, desk, zone, locale, render_charts(report, locale), inline=False)
        return rendered.html or ""
    raise ValueError(f"unknown report format '{fmt}' (expected one of: {', '.join(FORMATS)})")


def queue_report(session: Session, env: jinja2.Environment, desk: Desk, report: Report,
                 recipients: Sequence[str], now_at: datetime, zone: tzinfo, locale: str,
                 *, again: bool = False) -> Queued:
    """Queue the report mail in the outbox; the same report to the same people is queued once unless ``again``."""
    nonce = f"{now_at:%Y%m%dT%H%M%S}" if again else ""
    recipients = [a for a in (safe_address(r) for r in recipients) if a]
    existing = queries.outbox_by_dedup_key(session, report_key(report, recipients, locale, nonce))
    if existing is not None:
        log.info("report mail %s already queued (outbox %d, %s)", existing.message_id, existing.id,
                 existing.status)
        return Queued(existing.id, existing.message_id, created=False)
    charts = render_charts(report, locale)
    message = build_report_mail(env, desk, report, charts, recipients, now_at, zone, locale, nonce)
    row: Outbox = enqueue(session, None, message, now_at)
    log.info("report mail %s queued for %d recipient(s)", message.message_id, len(message.recipients))
    return Queued(row.id, row.message_id, created=True)
