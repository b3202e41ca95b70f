"""``maildesk kb``: make an article from a ticket by hand, list, show and export the knowledge base.

Shell layer: reads the config, opens the store, reads the clock.  Registered in
``maildesk/cli/__init__.py`` with the other subcommands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from maildesk.config import Settings
from maildesk.kb.articles import to_markdown

# The same default as maildesk.cli.context; maildesk.cli imports this module, so it is not imported from
# there at load.
DEFAULT_CONFIG = "config/maildesk.toml"
config_option = click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             help="Path of maildesk.toml.")


@click.group("kb")
def kb() -> None:
    """The knowledge base: articles made from resolved tickets."""


@kb.command("add")
@config_option
@click.argument("number")
def kb_add(config_path: str, number: str) -> None:
    """Make an article from resolved ticket NUMBER (as #kb does); its assignee gets the article mail."""
    from maildesk.daemon import build_desk
    from maildesk.domain import TicketStatus
    from maildesk.ingest.thread import extract_ticket_ref
    from maildesk.kb import mail as kb_mail
    from maildesk.kb import service
    from maildesk.outbound.ticket_mail import TicketMail
    from maildesk.store import queries
    from maildesk.store.session import transaction

    settings, base = _load(config_path)
    desk = build_desk(settings, base, require_secrets=False)
    ref = extract_ticket_ref(number) or number.strip().upper()
    with transaction(desk.sessions) as session:
        ticket = queries.ticket_by_number(session, ref)
        if ticket is None:
            raise click.ClickException(f"no ticket {ref}")
        if TicketStatus(ticket.status) not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            raise click.ClickException(f"{ref} is {ticket.status}; only a resolved or closed ticket becomes an article")
        ticket.kb_candidate = True
        created = service.create_from_ticket(session, ticket, "cli", datetime.now(UTC))
        if created.new and ticket.assignee:
            kb_mail.send_article(session, TicketMail(desk.runner.notifier, desk.policy.config), ticket,
                                 created.article, ticket.assignee)
        state = "created" if created.new else "already exists"
        click.echo(f"{created.article.number} {state}: {created.article.title}")


@kb.command("list")
@config_option
def kb_list(config_path: str) -> None:
    """Every article, one line each."""
    from maildesk.store import kb_queries
    from maildesk.store.models import Ticket
    from maildesk.store.session import transaction

    settings, _ = _load(config_path)
    zone = ZoneInfo(settings.timezone)
    with transaction(_sessions(settings)) as session:
        articles = kb_queries.list_articles(session)
        if not articles:
            click.echo("no articles")
        for a in articles:
            source = session.get(Ticket, a.source_ticket_id) if a.source_ticket_id else None
            click.echo(f"{a.number}  v{a.version:<3} {a.updated_at.astimezone(zone):%Y-%m-%d}  {a.category:<11} "
                       f"{source.number if source else '-':<14} {a.title}")


@kb.command("show")
@config_option
@click.argument("number")
def kb_show(config_path: str, number: str) -> None:
    """One article, as Markdown."""
    from maildesk.store import kb_queries
    from maildesk.store.session import transaction

    settings, _ = _load(config_path)
    with transaction(_sessions(settings)) as session:
        article = kb_queries.article_by_number(session, number)
        if article is None:
            raise click.ClickException(f"no article {number.strip().upper()}")
        click.echo(_markdown(session, article, ZoneInfo(settings.timezone)), nl=False)


@kb.command("export")
@config_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="kb-export", show_default=True,
              help="Folder to write KBxxxx.md files into (created if missing).")
def kb_export(config_path: str, out_dir: str) -> None:
    """Every article as a Markdown file, one per article."""
    from maildesk.store import kb_queries
    from maildesk.store.session import transaction

    settings, _ = _load(config_path)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    zone = ZoneInfo(settings.timezone)
    with transaction(_sessions(settings)) as session:
        articles = kb_queries.list_articles(session)
        for article in articles:
            (folder / f"{article.number}.md").write_text(_markdown(session, article, zone), encoding="utf-8")
    click.echo(f"{len(articles)} article(s) written to {folder}")


def _markdown(session: object, article: object, zone: ZoneInfo) -> str:
    from maildesk.kb.service import draft_of
    from maildesk.store.models import KbArticle, Ticket

    assert isinstance(article, KbArticle)
    source = session.get(Ticket, article.source_ticket_id) if article.source_ticket_id else None  # type: ignore[attr-defined]
    return to_markdown(article.number, draft_of(article), version=article.version,
                       source=source.number if source else None,
                       updated=f"{article.updated_at.astimezone(zone):%Y-%m-%d %H:%M}")


def _load(config_path: str) -> tuple[Settings, Path]:
    from maildesk.cli.context import settings_or_exit  # lazy: maildesk.cli registers this module

    return settings_or_exit(config_path)


def _sessions(settings: Settings):  # noqa: ANN202 - the session factory import stays lazy
    from maildesk.cli.context import open_sessions as sessions

    return sessions(settings)
