"""The one place that changes the knowledge base, and the search a new ticket runs.

Takes a Session and never commits (the runner or the command owns the
transaction).  Every change leaves an event on the article's source ticket:
``kb_article_created``, ``kb_article_edited``; a new ticket's suggestions are
``kb_suggested`` and a requester saying they solved it ``kb_solved``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from maildesk.domain import TicketStatus
from maildesk.kb import search
from maildesk.kb.articles import (
    FIELDS,
    ArticleDraft,
    draft_from_ticket,
    format_number,
    parse_edit,
    says_solved,
)
from maildesk.store import kb_queries
from maildesk.store.models import Event, KbArticle, Ticket
from maildesk.store.session import Session
from maildesk.tickets import service

log = logging.getLogger(__name__)
SOLVABLE = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING)


@dataclass(frozen=True)
class Created:
    """An article for a ticket: the one made now (``new``) or the one it already had."""

    article: KbArticle
    new: bool


def create_from_ticket(session: Session, ticket: Ticket, actor: str, at: datetime) -> Created:
    """The article of a resolved ticket: its request as the problem, its solution, its category."""
    existing = kb_queries.article_by_ticket(session, ticket.id)
    if existing is not None:
        return Created(existing, False)
    request = next((m for m in ticket.messages if m.kind == "request"), None)
    text = (request.reply_text or request.body_text) if request else ticket.subject
    draft = draft_from_ticket(ticket.subject, text, ticket.solution or "", ticket.category)
    article = KbArticle(
        number=format_number(kb_queries.next_article_sequence(session)), title=draft.title,
        problem=draft.problem, cause=draft.cause, solution=draft.solution, category=draft.category,
        source_ticket_id=ticket.id, created_by=actor, created_at=at, updated_at=at, version=1,
        search_text=_search_text(draft))
    session.add(article)
    session.flush()
    service.record_event(session, ticket.id, "kb_article_created", actor, at, article=article.number,
                         title=article.title)
    log.info("%s: knowledge-base article %s created by %s", ticket.number, article.number, actor)
    return Created(article, True)


def edit_by_mail(session: Session, article: KbArticle, text: str, actor: str, at: datetime) -> tuple[str, ...]:
    """Apply the ``标题:``/``问题:``/``原因:``/``解决方案:`` lines of an agent's reply; the fields changed.

    Nothing changed (no labels, or the same texts again) bumps no version and records nothing.
    """
    fields = parse_edit(text)
    changed = tuple(name for name in FIELDS if name in fields and fields[name] != getattr(article, name))
    if not changed:
        return ()
    for name in changed:
        setattr(article, name, fields[name])
    article.search_text = _search_text(draft_of(article))
    article.version += 1
    article.updated_at = at
    service.record_event(session, article.source_ticket_id, "kb_article_edited", actor, at,
                         article=article.number, version=article.version, fields=list(changed))
    log.info("knowledge-base article %s edited by %s (version %d: %s)", article.number, actor,
             article.version, ", ".join(changed))
    return changed


def suggest(session: Session, subject: str, body: str) -> tuple[search.Suggestion, ...]:
    """Up to three articles that answer a mail well enough (see ``kb.search`` for the score).

    An empty knowledge base answers nothing, so the mail is not segmented at all: the count is one
    cheap query, while segmenting costs milliseconds per mail and loading jieba's dictionary (on
    first use) about a second and 150 MB.
    """
    n_articles = kb_queries.article_count(session)
    if n_articles == 0:
        return ()
    terms = search.query_terms(subject, body)
    if len(terms) < search.MIN_MATCHED:
        return ()
    rows = kb_queries.search_candidates(session, terms, search.fts5_match(terms), search.tsquery(terms))
    if not rows:
        return ()
    candidates = [search.Candidate(*row) for row in rows]
    frequencies = kb_queries.document_frequencies(session, terms)
    return search.choose(terms, candidates, frequencies, n_articles)


def record_suggestions(session: Session, ticket: Ticket, found: tuple[search.Suggestion, ...],
                       at: datetime) -> None:
    service.record_event(session, ticket.id, "kb_suggested", "maildesk", at,
                         articles=[s.number for s in found], scores=[s.score for s in found],
                         matched=[list(s.matched) for s in found], threshold=search.THRESHOLD)


def suggestion_articles(session: Session, found: tuple[search.Suggestion, ...]) -> list[KbArticle]:
    if not found:
        return []
    by_id = {a.id: a for a in kb_queries.articles_by_ids(session, [s.article_id for s in found])}
    return [by_id[s.article_id] for s in found if s.article_id in by_id]


def solved_by_suggestions(session: Session, ticket: Ticket, text: str, actor: str, at: datetime) -> bool:
    """A requester's "已解决" on a ticket that got suggestions and no agent answer: resolve it, record why.

    The ticket is resolved (``solved_by = "kb"`` in the ``kb_solved`` event) and closes by the normal
    auto-close; False (nothing done) when any condition does not hold.
    """
    if TicketStatus(ticket.status) not in SOLVABLE or ticket.first_response_at is not None:
        return False
    suggested = _suggested(ticket)
    if not suggested or not says_solved(text):
        return False
    service.change_status(session, ticket, TicketStatus.RESOLVED, actor, at,
                          why="the requester says a suggested knowledge-base article solved it")
    ticket.solution = ticket.solution or "、".join(suggested)
    service.record_event(session, ticket.id, "kb_solved", actor, at, solved_by="kb", articles=suggested)
    log.info("%s: solved by knowledge-base suggestions %s (the requester says)", ticket.number,
             ", ".join(suggested))
    return True


def draft_of(article: KbArticle) -> ArticleDraft:
    return ArticleDraft(article.title, article.problem, article.cause, article.solution, article.category)


def _suggested(ticket: Ticket) -> list[str]:
    events: list[Event] = [e for e in ticket.events if e.kind == "kb_suggested"]
    return list(events[-1].data.get("articles", [])) if events else []


def _search_text(draft: ArticleDraft) -> str:
    return search.search_text(draft.title, draft.problem, draft.cause, draft.solution)
