"""``maildesk report``: the weekly or monthly report, printed, written to a file or queued as a mail.

Shell layer: reads the config, opens the store, reads the clock, and calls
``reports.build``.  Registered in ``maildesk/cli/__init__.py`` with the other subcommands.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from maildesk.config import Settings
from maildesk.reports.periods import KINDS, between, last_full, local_dates
from maildesk.reports.stats import Period

# The same default as maildesk.cli.context; maildesk.cli imports this module, so it is not imported from
# there at load.
DEFAULT_CONFIG = "config/maildesk.toml"


def choose_period(kind: str, first: date | None, last: date | None, today: date, zone: ZoneInfo) -> Period:
    """``--from/--to`` when given (``--to`` defaults to yesterday), else the last full week or month."""
    if first is None and last is None:
        return last_full(kind, today, zone)
    if first is None:
        raise click.UsageError("--to needs --from")
    return between(first, last or date.fromordinal(today.toordinal() - 1), zone)


@click.command("report")
@click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
              help="Path of maildesk.toml.")
@click.option("--period", "kind", type=click.Choice(KINDS), default="week", show_default=True,
              help="The last full week (Monday–Sunday) or calendar month.")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day (YYYY-MM-DD, local time), instead of --period.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day, included (default: yesterday).")
@click.option("--format", "fmt", type=click.Choice(("html", "csv", "json")), default="html", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write here instead of standard output.")
@click.option("--locale", type=click.Choice(("zh-CN", "en")), default=None, help="Default: the desk's locale.")
@click.option("--send", is_flag=True, help="Queue the report mail (HTML with inline charts) in the outbox.")
@click.option("--send-to", "send_to", multiple=True, metavar="ADDRESS",
              help="A recipient of --send (repeatable); the supervisors until the agent directory exists.")
@click.option("--again", is_flag=True, help="With --send: queue it even if the same report was queued before.")
def report(config_path: str, kind: str, first: datetime | None, last: datetime | None, fmt: str, output: str,
           locale: str | None, send: bool, send_to: tuple[str, ...], again: bool) -> None:
    """The support report: volumes, times, SLA, satisfaction, frequent problems and the trend."""
    if send and not send_to:
        raise click.UsageError("--send needs at least one --send-to ADDRESS")
    settings, base = _load(config_path)
    zone = ZoneInfo(settings.timezone)
    now_at = datetime.now(UTC)
    try:
        period = choose_period(kind, first.date() if first else None, last.date() if last else None,
                               now_at.astimezone(zone).date(), zone)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _run(settings, base, period, now_at, zone, fmt, output, locale or settings.locale,
         send_to if send else (), again)


def _load(config_path: str) -> tuple[Settings, Path]:
    from maildesk.cli.context import settings_or_exit  # lazy: maildesk.cli registers this module

    return settings_or_exit(config_path)


def _run(settings: Settings, base: Path, period: Period, now_at: datetime, zone: ZoneInfo, fmt: str,
         output: str, locale: str, recipients: tuple[str, ...], again: bool) -> None:
    import jieba

    from maildesk.cli.context import open_sessions
    from maildesk.daemon import template_environment
    from maildesk.outbound.notices import Desk
    from maildesk.outbound.notifier import SECRET_NAME
    from maildesk.reports.build import export_report, load_report, queue_report
    from maildesk.store import queries
    from maildesk.store.session import transaction

    jieba.setLogLevel(logging.WARNING)
    env = template_environment(settings, base)
    with transaction(open_sessions(settings)) as session:
        desk = Desk(settings.support_address, settings.support_name, settings.bounce_address,
                    settings.message_id_domain, queries.get_or_create_secret(session, SECRET_NAME),
                    settings.timezone, locale)
        result = load_report(session, period, now_at, zone)
        if recipients:
            queued = queue_report(session, env, desk, result, recipients, now_at, zone, locale, again=again)
    text = export_report(env, desk, result, fmt, zone, locale)
    _write(output, text)
    first, last = local_dates(period, zone)
    click.echo(f"report {first} .. {last}: {result.new} new, {result.resolved} resolved, {result.open} open",
               err=True)
    if recipients:
        state = "queued" if queued.created else "already queued (use --again to send it once more)"
        click.echo(f"report mail <{queued.message_id}> {state} for {', '.join(recipients)}", err=True)


def _write(output: str, text: str) -> None:
    if output == "-":
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
