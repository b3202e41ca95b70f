"""Running the desk: ``maildesk run``, ``check-config``, ``db upgrade``, ``status`` and ``reconcile``.

Shell layer.  The heavy imports (the daemon, the store, the IMAP client) stay inside the commands: ``run``
installs the SIGTERM guard before any of them, and ``maildesk --help`` loads none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from maildesk import logs
from maildesk.cli.context import (
    config_option,
    fail_config,
    load_settings,
    open_sessions,
    rules_dir,
    secret_values,
    settings_or_exit,
)
from maildesk.errors import ConfigError, MaildeskError


@click.command()
@config_option
def run(config_path: str) -> None:
    """Run the daemon: poll the mailboxes, make tickets, send mail."""
    from maildesk import EARLY_STOP, guard_startup
    from maildesk.store.locks import SingleDaemonLock

    guard_startup()  # (again, for the console script) a stop asked for while we start is a clean stop
    stop = EARLY_STOP
    try:
        settings, base = load_settings(config_path)
        lock = SingleDaemonLock(settings.database_url)
        lock.acquire()  # before anything slow: a second daemon on SQLite is refused at once
        from maildesk.daemon import Daemon, build_desk

        logs.configure(verbose=click.get_current_context().obj.get("verbose", False), fmt=settings.log_format,
                       secrets=secret_values(settings))
        desk = build_desk(settings, base, stop=stop)
        code = Daemon(desk).run(lock)
    except ConfigError as exc:
        fail_config(exc)
    except MaildeskError as exc:
        click.echo(f"maildesk: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


@click.command("check-config")
@config_option
def check_config(config_path: str) -> None:
    """Validate maildesk.toml and the rule files; list every problem as file:line: reason."""
    from maildesk.rules.policy import check_rules_dir

    problems: list[str] = []
    try:
        settings, base = load_settings(config_path)
        folder = rules_dir(settings, base)
    except ConfigError as exc:
        problems.extend(exc.problems)
        settings, folder = None, Path(config_path).resolve().parent  # the rule files sit beside it by default
    problems.extend(check_rules_dir(folder))
    if problems:
        fail_config(ConfigError(problems))
    assert settings is not None
    click.echo(f"{config_path}: OK ({len(settings.mailboxes)} mailbox(es), support address "
               f"{settings.support_address}); rules in {folder}: OK")


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str) -> None:
    """Create or migrate the database schema to the latest version."""
    from maildesk.store import migrate
    from maildesk.store.session import make_engine

    settings, _ = settings_or_exit(config_path)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    click.echo(f"database at revision {migrate.current_revision(engine)}")


@click.command()
@config_option
def status(config_path: str) -> None:
    """What the desk is doing now: mailboxes, queues, quarantine, SLA (the same figures as /metrics)."""
    from maildesk.clock import SystemClock
    from maildesk.health import collect

    settings, _ = settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    try:
        health = collect(open_sessions(settings), SystemClock())
    except MaildeskError as exc:
        click.echo(f"database unavailable: {exc}", err=True)
        sys.exit(1)
    for name, at, error in health.mailboxes or [("(no mailbox polled yet)", None, None)]:
        when = at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if at else "never"
        click.echo(f"mailbox {name}: last good poll {when}" + (f"; FAILING: {error}" if error else ""))
    raw = ", ".join(f"{k} {v}" for k, v in sorted(health.raw.items())) or "none"
    click.echo(f"mails stored: {raw}")
    click.echo(f"tickets: {health.tickets} in all, {health.open_tickets} open")
    click.echo(f"outbox: {health.outbox_depth} waiting, {health.outbox.get('sent', 0)} sent, "
               f"{health.outbox.get('dead', 0)} dead letters")
    click.echo(f"quarantine: {health.quarantined}")
    click.echo(f"SLA: {health.events.get('sla_warning', 0)} warnings, {health.events.get('escalated', 0)} "
               f"escalations, {health.first_response_breaches} late first responses")
    if health.quarantined or health.outbox.get("dead", 0) or any(e for _, _, e in health.mailboxes):
        sys.exit(2)


@click.command()
@config_option
def reconcile(config_path: str) -> None:
    """Compare each mailbox on the server with the store; exit 1 if a handled mail is missing."""
    from maildesk.daemon import imap_credential
    from maildesk.ingest.reconcile import reconcile_mailbox

    settings, _ = settings_or_exit(config_path)
    sessions = open_sessions(settings)
    ok = True
    for box in settings.mailboxes:
        try:
            report = reconcile_mailbox(box, imap_credential(box.server, f"mailbox {box.name}"), sessions)
        except MaildeskError as exc:
            click.echo(f"{box.name}: cannot reconcile: {exc}", err=True)
            ok = False
            continue
        click.echo(f"{box.name}: {report.on_server} on the server, {len(report.waiting)} waiting to be fetched, "
                   f"{len(report.missing)} missing; stored: "
                   + ", ".join(f"{k} {v}" for k, v in sorted(report.stored_by_status.items())))
        for folder, uid, mid in report.missing:
            click.echo(f"  MISSING {folder} UID {uid} Message-ID {mid or '-'}")
        ok = ok and report.ok
    sys.exit(0 if ok else 1)
