"""``maildesk tickets``: look at tickets, newest first (``list``) or one in full (``show``).

Shell layer: opens the store and prints; it never changes a ticket.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from maildesk.cli.context import config_option, open_sessions, settings_or_exit, ticket_or_exit


@click.group()
def tickets() -> None:
    """Look at tickets."""


@tickets.command("list")
@config_option
@click.option("--status", default=None, help="Only tickets in this status.")
@click.option("--limit", default=50, show_default=True)
def tickets_list(config_path: str, status: str | None, limit: int) -> None:
    """The newest tickets, one line each."""
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, _ = settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(open_sessions(settings)) as session:
        rows = queries.list_tickets(session, status=status, limit=limit)
        if not rows:
            click.echo("no tickets")
        for t in rows:
            created = t.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            click.echo(f"{t.number}  {created}  {t.status:<8} {t.priority:<6} {t.category:<11} "
                       f"{t.requester_addr:<28} {t.subject}")


@tickets.command("show")
@config_option
@click.argument("number")
def tickets_show(config_path: str, number: str) -> None:
    """One ticket with its messages and events."""
    from maildesk.store.session import transaction

    settings, _ = settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(open_sessions(settings)) as session:
        ticket = ticket_or_exit(session, number)

        def local(at: datetime | None) -> str:
            return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if at else "-"

        click.echo(f"{ticket.number}  {ticket.subject}")
        click.echo(f"  status {ticket.status}, priority {ticket.priority}, category {ticket.category}, "
                   f"group {ticket.group or '-'}, assignee {ticket.assignee or '-'}")
        click.echo(f"  requester {ticket.requester_name} <{ticket.requester_addr}>, created {local(ticket.created_at)}")
        click.echo(f"  first response due {local(ticket.first_response_due_at)}, "
                   f"resolution due {local(ticket.resolve_due_at)}")
        click.echo(f"  participants: {', '.join(p.address + ' (' + p.role + ')' for p in ticket.participants)}")
        click.echo("\nmessages:")
        for m in ticket.messages:
            click.echo(f"  [{local(m.created_at)}] {m.kind} from {m.from_addr}: {m.subject}")
            for line in (m.reply_text or m.body_text).strip().splitlines()[:12]:
                click.echo(f"      {line}")
        click.echo("\nevents:")
        for e in ticket.events:
            details = {k: v for k, v in e.data.items() if k != "version"}
            click.echo(f"  [{local(e.at)}] {e.kind} by {e.actor}: {json.dumps(details, ensure_ascii=False)[:300]}")
