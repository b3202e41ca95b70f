"""Why the desk decides what it does: ``maildesk rules test`` dry-runs a mail through the rules, and
``maildesk sla explain`` shows how a ticket's deadlines were computed.

Shell layer: reads the rule files, the mail and the clock, and prints the same reasons the daemon records.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from maildesk.cli.context import (
    config_option,
    fail_config,
    open_sessions,
    rules_dir,
    settings_or_exit,
    ticket_or_exit,
)
from maildesk.errors import ConfigError


def _parse_at(value: str | None, zone: ZoneInfo) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {value!r} (e.g. 2026-11-27T17:50)") from None
    return (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)


@click.group()
def rules() -> None:
    """Rule files: try them on a mail before deploying."""


@rules.command("test")
@config_option
@click.argument("mail", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--at", "at_text", default=None, help="Pretend the mail arrived at this local time (ISO 8601).")
@click.option("--mailbox", default=None, help="Pretend the mail came to this mailbox.")
def rules_test(config_path: str, mail: str, at_text: str | None, mailbox: str | None) -> None:
    """Dry-run MAIL through the rules: what matched and why, and the resulting ticket fields and deadlines."""
    from maildesk.ingest.parse import parse_mail
    from maildesk.rules.policy import RulesPolicy

    settings, base = settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    try:
        policy = RulesPolicy.load(rules_dir(settings, base))
    except ConfigError as exc:
        fail_config(exc)
    parsed = parse_mail(sys.stdin.buffer.read() if mail == "-" else Path(mail).read_bytes())
    at = _parse_at(at_text, zone)
    queue = next((m.queue for m in settings.mailboxes if m.name == mailbox), None)
    decision = policy.decide(parsed, at=at, mailbox=mailbox, default_group=queue)
    c = decision.classification
    click.echo(f"mail: {parsed.subject!r} from {parsed.from_addr.addr if parsed.from_addr else '-'}, "
               f"at {at.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    click.echo("rules matched:" if c.hits else "rules matched: none (defaults apply)")
    for hit in c.hits:
        click.echo(f"  {hit.rule_id:<28} {hit.location:<28} {hit.why}")
    click.echo(f"category {c.category.value}, priority {c.priority.value}, group {c.group or '-'}"
               f" ({decision.group_name or '-'}), assignee {c.assignee or '-'}")
    if c.tags:
        click.echo(f"tags {', '.join(c.tags)}")
    if c.suppress_ack or c.close:
        click.echo(f"acknowledgment {'suppressed' if c.suppress_ack else 'sent'}"
                   f"{', answered with ' + (c.reply_template or '-') + ' and closed' if c.close else ''}")
    _echo_deadlines(decision.deadlines, zone)


def _echo_deadlines(deadlines: object, zone: ZoneInfo) -> None:
    from maildesk.domain import Deadlines

    assert isinstance(deadlines, Deadlines)

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else "-"

    click.echo(f"first response due {local(deadlines.first_response_at)}, resolution due "
               f"{local(deadlines.resolve_at)}")
    for line in deadlines.explanation:
        click.echo(f"  {line}")


@click.group()
def sla() -> None:
    """Service level: how deadlines were computed."""


@sla.command("explain")
@config_option
@click.argument("number")
def sla_explain(config_path: str, number: str) -> None:
    """How each deadline of ticket NUMBER was computed, with its pauses."""
    from maildesk.domain import Priority
    from maildesk.rules.policy import RulesPolicy
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, base = settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(open_sessions(settings)) as session:
        ticket = ticket_or_exit(session, number)
        pauses = queries.pending_pauses(session, ticket.id)
        click.echo(f"{ticket.number}: priority {ticket.priority}, group {ticket.group or '-'}, status {ticket.status}")
        click.echo("as recorded when the ticket was made:")
        for line in ticket.classification.get("explanation", []):
            click.echo(f"  {line}")
        try:
            policy = RulesPolicy.load(rules_dir(settings, base))
        except ConfigError as exc:
            fail_config(exc)
        click.echo("under the rules in force now, with the pauses so far:")
        _echo_deadlines(policy.deadlines(Priority(ticket.priority), ticket.created_at, group=ticket.group,
                                         paused=pauses), zone)
