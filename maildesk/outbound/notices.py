"""Turn a ticket event into a finished outgoing mail (render + compose).

Pure: everything it needs is passed in, including the Jinja2 environment, the
installation secret and the time to stamp in ``Date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2

from maildesk.domain import Address, OutboxMessage
from maildesk.outbound.compose import Envelope, compose, make_message_id
from maildesk.outbound.render import Rendered, render

SUGGESTION_CHARS = 1500  # of an article's solution shown in an acknowledgment


@dataclass(frozen=True)
class Desk:
    """Who we are on the wire."""

    support_address: str
    support_name: str
    bounce_address: str
    message_id_domain: str
    secret: str
    timezone: str
    locale: str


@dataclass(frozen=True)
class AckSuggestion:
    """A knowledge-base article shown in an acknowledgment: what may already solve the problem."""

    number: str
    title: str
    solution: str


@dataclass(frozen=True)
class AckFacts:
    number: str
    subject: str
    priority: str
    requester: Address
    language: str
    group_name: str | None
    assignee_name: str | None
    response_target: timedelta | None
    response_business: bool
    response_due_at: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    suggestions: tuple[AckSuggestion, ...] = ()


def build_notice(
    env: jinja2.Environment,
    desk: Desk,
    *,
    kind: str,
    locale: str,
    context: dict[str, object],
    to: tuple[tuple[str, str], ...],
    dedup_key: str,
    now_at: datetime,
    ticket: str = "desk",
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    reply_to: str | None = None,
    from_name: str | None = None,
    automatic: bool = True,
    rendered: Rendered | None = None,
) -> OutboxMessage:
    """Any mail of the desk: rendered from ``kind``'s templates, threaded, loop-safe.

    ``reply_to`` is an agent's personal reply address on mail to that agent;
    ``from_name`` shows an agent's name on a relayed reply ("张工 (技术支持)").
    ``rendered`` is the text when the caller rendered it already (``render_notice``).
    """
    rendered = rendered or render_notice(env, desk, kind, locale, context)
    message_id = make_message_id(desk.secret, kind, ticket, dedup_key, desk.message_id_domain)
    envelope = Envelope(
        from_addr=desk.support_address,
        from_name=from_name or desk.support_name,
        to=to,
        bounce_addr=desk.bounce_address,
        reply_to=reply_to or desk.support_address,
        in_reply_to=in_reply_to,
        references=references,
        automatic=automatic,
        loop_marker=desk.support_address,
    )
    return compose(rendered, envelope, kind=kind, dedup_key=dedup_key, message_id=message_id, date_at=now_at)


def render_notice(env: jinja2.Environment, desk: Desk, kind: str, locale: str,
                  context: dict[str, object]) -> Rendered:
    base = {"desk_name": desk.support_name, "support_address": desk.support_address}
    return render(env, kind, locale or desk.locale, {**base, **context})


def build_ack(env: jinja2.Environment, desk: Desk, facts: AckFacts, now_at: datetime) -> OutboxMessage:
    """The acknowledgment of a new ticket, threaded under the requester's mail."""
    local_due = facts.response_due_at.astimezone(ZoneInfo(desk.timezone)) if facts.response_due_at else None
    context = {
        "number": facts.number,
        "subject": facts.subject,
        "priority": facts.priority,
        "requester_name": facts.requester.name,
        "group_name": facts.group_name,
        "assignee_name": facts.assignee_name,
        "response_minutes": int(facts.response_target.total_seconds() // 60) if facts.response_target else None,
        "response_business": facts.response_business,
        "response_due": f"{local_due:%Y-%m-%d %H:%M}" if local_due else "",
        "suggestions": [{"number": s.number, "title": s.title, "solution": s.solution[:SUGGESTION_CHARS]}
                        for s in facts.suggestions],
    }
    references = tuple(facts.references) + ((facts.in_reply_to,) if facts.in_reply_to else ())
    return build_notice(
        env, desk, kind="ack", locale=facts.language, context=context,
        to=((facts.requester.name, facts.requester.addr),), dedup_key=f"{facts.number}:ack", now_at=now_at,
        ticket=facts.number, in_reply_to=facts.in_reply_to, references=references,
    )


def build_admin_alert(env: jinja2.Environment, desk: Desk, admins: tuple[str, ...], *, problem: str,
                      detail: str, dedup_key: str, now_at: datetime) -> OutboxMessage:
    """A loud notice to the admins (expired login, dead letters …), at most one per ``dedup_key``."""
    local = now_at.astimezone(ZoneInfo(desk.timezone))
    return build_notice(
        env, desk, kind="admin_alert", locale=desk.locale,
        context={"problem": problem, "detail": detail, "at": f"{local:%Y-%m-%d %H:%M:%S}"},
        to=tuple(("", a) for a in admins), dedup_key=dedup_key, now_at=now_at,
    )
