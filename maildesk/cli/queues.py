"""The mails set aside: ``maildesk quarantine`` (incoming mails that failed) and ``maildesk outbox``
(outgoing mails, sent or given up on), to look at, requeue or purge.

Shell layer: opens the store; the daemon does the work on its next run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from maildesk.cli.context import config_option, open_sessions, settings_or_exit


@click.group()
def quarantine() -> None:
    """Mails that could not be processed, kept raw with the reason."""


@quarantine.command("list")
@config_option
def quarantine_list(config_path: str) -> None:
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, _ = settings_or_exit(config_path)
    with transaction(open_sessions(settings)) as session:
        rows = queries.quarantined(session)
        if not rows:
            click.echo("quarantine is empty")
        for raw in rows:
            first = (raw.reason or "").strip().splitlines()
            click.echo(f"{raw.id:>6}  {raw.mailbox}/{raw.uid}  {raw.size:>8} B  {raw.message_id or '-'}  "
                       f"{first[-1][:100] if first else ''}")


@quarantine.command("show")
@config_option
@click.argument("raw_id", type=int)
@click.option("--raw", "show_raw", is_flag=True, help="Print the mail's bytes instead.")
def quarantine_show(config_path: str, raw_id: int, show_raw: bool) -> None:
    from maildesk.store.models import RawMail
    from maildesk.store.session import transaction

    settings, _ = settings_or_exit(config_path)
    with transaction(open_sessions(settings)) as session:
        raw = session.get(RawMail, raw_id)
        if raw is None:
            click.echo(f"no stored mail {raw_id}", err=True)
            sys.exit(1)
        if show_raw:
            sys.stdout.buffer.write(raw.raw)
            return
        click.echo(f"mail {raw.id}: {raw.status}, from {raw.mailbox} UIDVALIDITY {raw.uidvalidity} UID {raw.uid}")
        click.echo(f"  Message-ID {raw.message_id or '-'}, {raw.size} bytes, sha256 {raw.sha256}")
        click.echo(f"  attempts {raw.attempts}, fetched {raw.fetched_at:%Y-%m-%d %H:%M:%S} UTC\n")
        click.echo(raw.reason or "(no reason recorded)")


@quarantine.command("retry")
@config_option
@click.argument("raw_ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Requeue every quarantined mail.")
def quarantine_retry(config_path: str, raw_ids: tuple[int, ...], retry_all: bool) -> None:
    """Put mails back in the queue (after a fix); the daemon processes them on its next run."""
    from maildesk.store import queries
    from maildesk.store.session import transaction

    if not raw_ids and not retry_all:
        raise click.UsageError("name the mails to retry, or use --all")
    settings, _ = settings_or_exit(config_path)
    with transaction(open_sessions(settings)) as session:
        n = queries.requeue_raw(session, None if retry_all else list(raw_ids))
    click.echo(f"requeued {n} mail(s)")


@click.group()
def outbox() -> None:
    """Mails waiting to be sent, sent, or given up on (dead letters)."""


@outbox.command("list")
@config_option
@click.option("--status", type=click.Choice(["queued", "sending", "sent", "dead"]), default=None)
@click.option("--limit", default=50, show_default=True)
def outbox_list(config_path: str, status: str | None, limit: int) -> None:
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, _ = settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(open_sessions(settings)) as session:
        rows = queries.outbox_rows(session, status, limit)
        if not rows:
            click.echo("outbox is empty" if status is None else f"no {status} mail")
        for row in rows:
            click.echo(f"{row.id:>6}  {row.created_at.astimezone(zone):%Y-%m-%d %H:%M}  {row.status:<7} "
                       f"{row.kind:<18} tries {row.attempts:<2} to {', '.join(row.recipients)}"
                       + (f"  ({(row.last_error or '').splitlines()[0][:80]})" if row.last_error else ""))


@outbox.command("retry")
@config_option
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Queue every dead letter again.")
def outbox_retry(config_path: str, ids: tuple[int, ...], retry_all: bool) -> None:
    """Queue dead letters again (after the cause is fixed); the daemon sends them on its next run."""
    from maildesk.store import queries
    from maildesk.store.session import transaction

    if not ids and not retry_all:
        raise click.UsageError("name the mails to retry, or use --all")
    settings, _ = settings_or_exit(config_path)
    with transaction(open_sessions(settings)) as session:
        n = queries.retry_outbox(session, None if retry_all else list(ids), datetime.now(UTC))
    click.echo(f"queued {n} mail(s) again")


@outbox.command("purge")
@config_option
@click.option("--older-than", "days", default=90, show_default=True, help="Days.")
def outbox_purge(config_path: str, days: int) -> None:
    """Free the space of old sent and dead mails (their Message-IDs stay, so replies still thread)."""
    from datetime import timedelta

    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, _ = settings_or_exit(config_path)
    with transaction(open_sessions(settings)) as session:
        n = queries.purge_outbox(session, datetime.now(UTC) - timedelta(days=days))
    click.echo(f"purged the bytes of {n} mail(s) older than {days} days")
