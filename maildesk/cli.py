"""The ``maildesk`` command: run the daemon, and look at or fix what it stores."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from maildesk import logs
from maildesk.config import Settings, parse_settings
from maildesk.errors import ConfigError, MaildeskError, StoreUnavailableError
from maildesk.kb.commands import kb
from maildesk.reports.commands import report

EX_TEMPFAIL = 75
DEFAULT_CONFIG = "config/maildesk.toml"


def _secret_values(settings: Settings) -> list[str]:
    """The values of the environment variables the settings name as secrets (to keep them out of logs)."""
    import os

    names = [settings.smtp.password_env, settings.smtp.token_env]
    for box in settings.mailboxes:
        names += [box.server.password_env, box.server.token_env]
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def load_settings(path: str) -> tuple[Settings, Path]:
    """Read and validate the config file; the base folder is the one above ``config/``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    settings = parse_settings(text, str(path))
    base = file.resolve().parent
    return settings, base.parent if base.name == "config" else base


config_option = click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             help="Path of maildesk.toml.")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """maildesk: an IT support desk run over plain email."""
    ctx.ensure_object(dict)["verbose"] = verbose
    logs.configure(verbose=verbose)


@main.command()
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
                       secrets=_secret_values(settings))
        desk = build_desk(settings, base, stop=stop)
        code = Daemon(desk).run(lock)
    except ConfigError as exc:
        _fail_config(exc)
    except MaildeskError as exc:
        click.echo(f"maildesk: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


@main.command("check-config")
@config_option
def check_config(config_path: str) -> None:
    """Validate maildesk.toml and the rule files; list every problem as file:line: reason."""
    from maildesk.rules.policy import check_rules_dir

    problems: list[str] = []
    try:
        settings, base = load_settings(config_path)
        rules_dir = _rules_dir(settings, base)
    except ConfigError as exc:
        problems.extend(exc.problems)
        settings, rules_dir = None, Path(config_path).resolve().parent  # the rule files sit beside it by default
    problems.extend(check_rules_dir(rules_dir))
    if problems:
        _fail_config(ConfigError(problems))
    assert settings is not None
    click.echo(f"{config_path}: OK ({len(settings.mailboxes)} mailbox(es), support address "
               f"{settings.support_address}); rules in {rules_dir}: OK")


def _fail_config(exc: ConfigError) -> None:
    for problem in exc.problems:
        click.echo(problem, err=True)
    sys.exit(1)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str) -> None:
    """Create or migrate the database schema to the latest version."""
    from maildesk.store import migrate
    from maildesk.store.session import make_engine

    settings, _ = _settings_or_exit(config_path)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    click.echo(f"database at revision {migrate.current_revision(engine)}")


def _settings_or_exit(config_path: str) -> tuple[Settings, Path]:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        _fail_config(exc)
        raise  # unreachable; keeps type checkers content


def _sessions(settings: Settings):  # noqa: ANN202 - SessionFactory import stays lazy
    from maildesk.store import migrate
    from maildesk.store.session import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return make_session_factory(engine)


def _ticket_or_exit(session: object, number: str):  # noqa: ANN202 - a store model, imported lazily
    """The ticket a person named (any spelling of its number), or a one-line error and exit 1."""
    from maildesk.ingest.thread import extract_ticket_ref
    from maildesk.store import queries

    ref = extract_ticket_ref(number) or number.strip().upper()
    ticket = queries.ticket_by_number(session, ref)  # type: ignore[arg-type]
    if ticket is None:
        click.echo(f"no ticket {ref}", err=True)
        sys.exit(1)
    return ticket


@main.group()
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

    settings, _ = _settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(_sessions(settings)) as session:
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

    settings, _ = _settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(_sessions(settings)) as session:
        ticket = _ticket_or_exit(session, number)

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


def _rules_dir(settings: Settings, base: Path) -> Path:
    folder = Path(settings.rules_dir)
    return folder if folder.is_absolute() else base / folder


def _parse_at(value: str | None, zone: ZoneInfo) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {value!r} (e.g. 2026-11-27T17:50)") from None
    return (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)


@main.group()
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

    settings, base = _settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    try:
        policy = RulesPolicy.load(_rules_dir(settings, base))
    except ConfigError as exc:
        _fail_config(exc)
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
                   f"{', answered with ' + c.reply_template + ' and closed' if c.close else ''}")
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


@main.group()
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

    settings, base = _settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(_sessions(settings)) as session:
        ticket = _ticket_or_exit(session, number)
        pauses = queries.pending_pauses(session, ticket.id)
        click.echo(f"{ticket.number}: priority {ticket.priority}, group {ticket.group or '-'}, status {ticket.status}")
        click.echo("as recorded when the ticket was made:")
        for line in ticket.classification.get("explanation", []):
            click.echo(f"  {line}")
        try:
            policy = RulesPolicy.load(_rules_dir(settings, base))
        except ConfigError as exc:
            _fail_config(exc)
        click.echo("under the rules in force now, with the pauses so far:")
        _echo_deadlines(policy.deadlines(Priority(ticket.priority), ticket.created_at, group=ticket.group,
                                         paused=pauses), zone)


@main.group()
def quarantine() -> None:
    """Mails that could not be processed, kept raw with the reason."""


@quarantine.command("list")
@config_option
def quarantine_list(config_path: str) -> None:
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, _ = _settings_or_exit(config_path)
    with transaction(_sessions(settings)) as session:
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

    settings, _ = _settings_or_exit(config_path)
    with transaction(_sessions(settings)) as session:
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
    settings, _ = _settings_or_exit(config_path)
    with transaction(_sessions(settings)) as session:
        n = queries.requeue_raw(session, None if retry_all else list(raw_ids))
    click.echo(f"requeued {n} mail(s)")


@main.group()
def outbox() -> None:
    """Mails waiting to be sent, sent, or given up on (dead letters)."""


@outbox.command("list")
@config_option
@click.option("--status", type=click.Choice(["queued", "sending", "sent", "dead"]), default=None)
@click.option("--limit", default=50, show_default=True)
def outbox_list(config_path: str, status: str | None, limit: int) -> None:
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, _ = _settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(_sessions(settings)) as session:
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
    settings, _ = _settings_or_exit(config_path)
    with transaction(_sessions(settings)) as session:
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

    settings, _ = _settings_or_exit(config_path)
    with transaction(_sessions(settings)) as session:
        n = queries.purge_outbox(session, datetime.now(UTC) - timedelta(days=days))
    click.echo(f"purged the bytes of {n} mail(s) older than {days} days")


@main.command()
@config_option
def status(config_path: str) -> None:
    """What the desk is doing now: mailboxes, queues, quarantine, SLA (the same figures as /metrics)."""
    from maildesk.clock import SystemClock
    from maildesk.health import collect

    settings, _ = _settings_or_exit(config_path)
    zone = ZoneInfo(settings.timezone)
    try:
        health = collect(_sessions(settings), SystemClock())
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


@main.command()
@config_option
def reconcile(config_path: str) -> None:
    """Compare each mailbox on the server with the store; exit 1 if a handled mail is missing."""
    from maildesk.daemon import imap_credential
    from maildesk.ingest.reconcile import reconcile_mailbox

    settings, _ = _settings_or_exit(config_path)
    sessions = _sessions(settings)
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


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def parse(file: str, as_json: bool) -> None:
    """Show how maildesk reads one mail (exit 0 for any mail it could read at all)."""
    from maildesk.ingest.describe import describe_mail

    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    result = describe_mail(raw)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for key, value in result.items():
        click.echo(f"{key}: {value}")


@main.command()
@config_option
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
def ingest(config_path: str, file: str) -> None:
    """Take one mail from FILE or stdin (for an MTA pipe).

    Exits 0 when the mail is stored, 75 (EX_TEMPFAIL) when it could not be
    stored, so the MTA keeps it and retries.
    """
    from maildesk.ingest.imap import FetchedMail

    try:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        click.echo(f"maildesk ingest: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(EX_TEMPFAIL)
    if not raw.strip():
        click.echo("maildesk ingest: empty input, nothing stored", err=True)
        sys.exit(0)
    try:
        settings, base = load_settings(config_path)
        from maildesk.daemon import build_desk

        desk = build_desk(settings, base, require_secrets=False)  # a pipe needs no IMAP or SMTP secret
        # A pipe has no UIDs: a hash of the bytes stands in, so a redelivery is stored once.
        uid = int.from_bytes(hashlib.sha256(raw).digest()[:7], "big")
        desk.runner.store_fetched("pipe", 0, [FetchedMail(uid, raw)])
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EX_TEMPFAIL)
    except Exception as exc:  # noqa: BLE001 - any failure to store must make the MTA retry
        from maildesk.store.session import translate

        error = translate(exc) or exc
        click.echo(f"maildesk ingest: not stored, try again later: {error}", err=True)
        sys.exit(EX_TEMPFAIL)
    try:
        desk.runner.process_pending(limit=1)
    except StoreUnavailableError as exc:
        click.echo(f"maildesk ingest: stored; processing deferred to the daemon: {exc}", err=True)
    click.echo(f"stored at {datetime.now(UTC).isoformat(timespec='seconds')}")
    sys.exit(0)


main.add_command(report)
main.add_command(kb)

if __name__ == "__main__":
    main()
