"""Who gets which automatic mail of a ticket, threaded and queued in the caller's transaction.

Every notification of the lifecycle (new-ticket notices, relays, reminders,
escalations, surveys …) goes through ``Notifier.send``: it renders the kind's
templates, threads the mail under the ticket's first mail, and writes the
outbox row with its unique key — so a second sweep, or a second daemon,
queues nothing twice.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import jinja2

from maildesk.config import Settings
from maildesk.domain import Clock
from maildesk.outbound.notices import Desk, build_notice, render_notice
from maildesk.outbound.render import Rendered
from maildesk.store import queries
from maildesk.store.models import Ticket
from maildesk.store.session import Session
from maildesk.tickets import service

log = logging.getLogger(__name__)
SECRET_NAME = "message-id-hmac"
REPLY_TOKEN_SECRET = "agent-reply-token"
SURVEY_SECRET = "survey-token"
# Made once per installation; daemon.build_desk creates them all in a transaction of their own, so a secret
# kept in a Notifier's cache is always one that was committed.
INSTALLATION_SECRETS = (SECRET_NAME, REPLY_TOKEN_SECRET, SURVEY_SECRET)

Recipient = tuple[str, str]  # (display name, address)


_MARKER_DOMAIN = "@marker.invalid"


@dataclass(frozen=True)
class Personal:
    """One person's copy of a mail sent to several people each on their own (agents' notices)."""

    name: str
    address: str
    locale: str
    reply_to: str | None = None  # their personal reply address, also shown in the text as ``reply_address``
# What a requester receives; their thread is built from these and their own mails only.
REQUESTER_KINDS = ("ack", "agent_reply", "resolution_notice", "pending_reminder", "auto_close", "rating_thanks",
                   "reopened_ack")


class Notifier:
    def __init__(self, *, settings: Settings, templates: jinja2.Environment, clock: Clock) -> None:
        self.settings = settings
        self.templates = templates
        self.clock = clock
        self._secrets: dict[str, str] = {}

    def desk(self, session: Session) -> Desk:
        s = self.settings
        return Desk(s.support_address, s.support_name, s.bounce_address, s.message_id_domain,
                    self.secret(session), s.timezone, s.locale)

    def secret(self, session: Session) -> str:
        """The key of our Message-IDs' HMAC."""
        return self.named_secret(session, SECRET_NAME)

    def named_secret(self, session: Session, name: str) -> str:
        """An installation secret, read once per process (they never change)."""
        value = self._secrets.get(name)
        if value is None:
            value = self._secrets[name] = queries.get_or_create_secret(session, name)
        return value

    def send_each(self, session: Session, ticket: Ticket, *, kind: str, people: Sequence[Personal],
                  context: dict[str, object], key: str, send_at: datetime | None = None,
                  shows_reply_address: bool = False) -> int:
        """Queue one mail per person, keyed ``key:address``; returns how many were new.

        The text is rendered once per language: a person's reply address goes in by substituting a
        random marker, so ten agents of a group cost one render, not ten.
        """
        people = [p for p in dict((p.address.strip(), p) for p in people if p.address.strip()).values()]
        keys = {p.address: self._dedup_key(ticket, f"{key}:{p.address}") for p in people}
        taken = queries.dedup_keys_taken(session, list(keys.values()))
        todo = [p for p in people if keys[p.address] not in taken]
        if not todo:
            return 0
        thread = queries.thread_ids(session, ticket.id, limit=1, outgoing_kinds=())  # under the request
        marker = f"reply-{secrets.token_hex(12)}{_MARKER_DOMAIN}"
        context = {"number": ticket.number, "subject": ticket.subject, **context}
        if shows_reply_address:
            context["reply_address"] = marker
        desk, now_at = self.desk(session), self.clock.now()
        texts: dict[str, Rendered] = {}
        for person in todo:
            text = texts.get(person.locale)
            if text is None:
                text = texts[person.locale] = render_notice(self.templates, desk, kind, person.locale, context)
            if shows_reply_address:
                mine = person.reply_to or self.settings.support_address
                text = Rendered(text.subject.replace(marker, mine), text.text.replace(marker, mine),
                                text.html.replace(marker, mine) if text.html is not None else None)
                if _MARKER_DOMAIN in f"{text.subject}{text.text}{text.html or ''}".lower():
                    # A template changed the address on its way out (a filter): render this one for real.
                    text = render_notice(self.templates, desk, kind, person.locale, {**context, "reply_address": mine})
            message = build_notice(
                self.templates, desk, kind=kind, locale=person.locale, context=context,
                to=((person.name, person.address),), dedup_key=keys[person.address], now_at=now_at,
                ticket=ticket.number, in_reply_to=thread[-1] if thread else None, references=tuple(thread),
                reply_to=person.reply_to, rendered=text)
            service.enqueue(session, ticket.id, message, now_at, send_at=send_at)
        return len(todo)

    @staticmethod
    def _dedup_key(ticket: Ticket | None, key: str) -> str:
        return f"{ticket.number}:{key}" if ticket and not key.startswith(f"{ticket.number}:") else key

    def send(self, session: Session, ticket: Ticket | None, *, kind: str, to: Sequence[Recipient],
             context: dict[str, object], key: str, locale: str | None = None,
             send_at: datetime | None = None, reply_to: str | None = None, from_name: str | None = None,
             automatic: bool = True) -> bool:
        """Queue one mail; False when it was queued before (same key) or has nobody to go to."""
        recipients = tuple(dict.fromkeys((n, a.strip()) for n, a in to if a and a.strip()))
        if not recipients:
            log.info("%s %s: nobody to send it to", kind, ticket.number if ticket else "-")
            return False
        dedup_key = self._dedup_key(ticket, key)
        if queries.dedup_keys_taken(session, [dedup_key]):
            return False
        now_at = self.clock.now()
        if ticket is None:
            thread: list[str] = []
        elif kind in REQUESTER_KINDS:
            thread = queries.thread_ids(session, ticket.id, outgoing_kinds=REQUESTER_KINDS)
        else:  # to agents: under the request, nothing of other people's mail
            thread = queries.thread_ids(session, ticket.id, limit=1, outgoing_kinds=())
        context = {"number": ticket.number, "subject": ticket.subject, **context} if ticket else context
        message = build_notice(
            self.templates, self.desk(session), kind=kind,
            locale=locale or (ticket.language if ticket else self.settings.locale), context=context,
            to=recipients, dedup_key=dedup_key, now_at=now_at, ticket=ticket.number if ticket else "desk",
            in_reply_to=thread[-1] if thread else None, references=tuple(thread), reply_to=reply_to,
            from_name=from_name, automatic=automatic,
        )
        service.enqueue(session, ticket.id if ticket else None, message, now_at, send_at=send_at)
        return True
