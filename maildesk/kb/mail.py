"""The knowledge base by mail: the article mail to the agent who resolved a ticket, and their edits.

An article mail (``kb_article``, subject ``【知识库】KB0001 <title>``) goes to the
agent through ``TicketMail.to_agents``, so it carries their personal reply
address; their authenticated reply with ``标题:``/``问题:``/``原因:``/``解决方案:``
lines is routed here by ``ingest/route.py`` before any ticket threading.
"""

from __future__ import annotations

import logging
from datetime import datetime

from maildesk.domain import ParsedMail
from maildesk.kb import service
from maildesk.kb.articles import find_tag
from maildesk.outbound.ticket_mail import TicketMail
from maildesk.store import kb_queries
from maildesk.store.models import KbArticle, Ticket
from maildesk.store.session import Session

log = logging.getLogger(__name__)


def article_from_resolved(session: Session, mails: TicketMail, ticket: Ticket, agent: str,
                          at: datetime) -> KbArticle | None:
    """A ticket marked ``#kb`` and now resolved becomes an article; the agent gets its mail to edit it."""
    if not ticket.kb_candidate:
        return None
    created = service.create_from_ticket(session, ticket, agent, at)
    if created.new:
        send_article(session, mails, ticket, created.article, agent)
    return created.article


def send_article(session: Session, mails: TicketMail, ticket: Ticket | None, article: KbArticle,
                 agent: str) -> int:
    """The article mail to one agent (address or agent id), keyed by article and version."""
    people = mails.agent(agent)
    context: dict[str, object] = {
        "kb_number": article.number, "title": article.title, "problem": article.problem,
        "cause": article.cause, "solution": article.solution, "category": article.category,
        "version": article.version, "source": ticket.number if ticket else "",
    }
    return mails.to_agents(session, ticket, "kb_article", people, context,
                           f"kb:{article.number}:v{article.version}")


def edit_target(mail: ParsedMail) -> str | None:
    """The article a mail answers, from its ``【知识库】KB…`` subject tag."""
    return find_tag(mail.subject)


def apply_edit(session: Session, mail: ParsedMail, number: str, agent: str, at: datetime) -> tuple[str, str]:
    """An authenticated agent's reply to an article mail; (outcome, reason) for the router's record."""
    article = kb_queries.article_by_number(session, number)
    if article is None:
        log.warning("agent %s replied to %s, which does not exist", agent, number)
        return "discarded", f"no knowledge-base article {number}"
    changed = service.edit_by_mail(session, article, mail.reply_text or mail.body_text, agent, at)
    if not changed:
        return "agent", f"{number}: nothing to change"
    return "agent", f"{number} edited ({', '.join(changed)}), version {article.version}"
