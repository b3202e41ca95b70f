"""A requester's mail on an existing ticket: follow-ups, confirmations, survey answers, thanks.

What it does to the ticket is decided by ``tickets.lifecycle.after_requester_mail``
(pending → open, reopening within the window, "还没解决" always reopening, short
thanks kept as a note, mail after closing); a survey answer counts only with
the unforgeable token of *this* ticket.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from maildesk.domain import ParsedMail, TicketStatus
from maildesk.ingest.quotes import is_short_thanks, says_not_solved
from maildesk.kb import service as kb_service
from maildesk.outbound.ticket_mail import TicketMail
from maildesk.store.models import Ticket
from maildesk.store.session import Session
from maildesk.tickets import lifecycle, service, survey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequesterOutcome:
    kind: str  # reply | note | rated | rating-refused | reopened | new-ticket
    reason: str


class RequesterMail:
    def __init__(self, ticket_mail: TicketMail, policy: lifecycle.LifecyclePolicy,
                 closed_policy: str = "new-ticket") -> None:
        self.ticket_mail = ticket_mail
        self.policy = policy
        self.closed_policy = closed_policy

    def reaction(self, ticket: Ticket, parsed: ParsedMail, at: datetime) -> lifecycle.Reaction:
        text = parsed.reply_text or parsed.body_text
        answer = self._survey_answer(parsed)
        if answer is not None and answer[0] == ticket.number:
            # A survey answer rates this ticket even after it closed; it never reopens it or opens another.
            return lifecycle.Reaction(None, False, False, True, "an answer to this ticket's satisfaction survey")
        return lifecycle.after_requester_mail(
            TicketStatus(ticket.status), resolved_at=ticket.resolved_at, now_at=at, policy=self.policy,
            text_says_not_solved=says_not_solved(text), text_is_short_thanks=is_short_thanks(text),
            closed_policy=self.closed_policy)

    def handle(self, session: Session, ticket: Ticket, parsed: ParsedMail, reaction: lifecycle.Reaction, *,
               raw_id: int, dedup_key: str, at: datetime, sender: str) -> RequesterOutcome:
        """Record the mail on ``ticket`` and react to it (a reaction of new-ticket is the runner's job)."""
        rated = self._rating(session, ticket, parsed, raw_id, dedup_key, at, sender)
        if rated is not None:
            return rated
        if kb_service.solved_by_suggestions(session, ticket, parsed.reply_text or parsed.body_text, sender, at):
            service.add_message(session, ticket, mail=parsed, raw_mail_id=raw_id, dedup_key=dedup_key, kind="reply",
                                at=at)
            ticket.last_requester_at = ticket.next_due_at = at
            return RequesterOutcome("kb-solved", "the requester says a suggested knowledge-base article solved it")
        kind = "note" if reaction.note_only else "reply"
        service.add_message(session, ticket, mail=parsed, raw_mail_id=raw_id, dedup_key=dedup_key, kind=kind, at=at)
        ticket.last_requester_at = at
        ticket.next_due_at = at
        if reaction.new_status is not None:
            service.change_status(session, ticket, reaction.new_status, sender, at, why=reaction.reason)
            if reaction.reopen:
                self.ticket_mail.reopened(session, ticket, reaction.reason, parsed.reply_text or parsed.body_text)
                return RequesterOutcome("reopened", reaction.reason)
        return RequesterOutcome(kind, reaction.reason)

    @staticmethod
    def _survey_answer(parsed: ParsedMail) -> tuple[str, str, survey.Rating] | None:
        """(number, token, rating) when the mail answers a survey: a survey token (it is in the quoted
        notice too) and a rating in what the requester wrote above the quote or in the subject."""
        found = survey.find_survey_token(parsed.subject) or survey.find_survey_token(parsed.body_text)
        rating = survey.parse_rating(parsed.reply_text) or survey.parse_rating(parsed.subject)
        return (found[0], found[1], rating) if found is not None and rating is not None else None

    def _rating(self, session: Session, ticket: Ticket, parsed: ParsedMail, raw_id: int, dedup_key: str,
                at: datetime, sender: str) -> RequesterOutcome | None:
        answer = self._survey_answer(parsed)
        if answer is None:
            return None  # a reply quoting the notice, not a rating: the ticket's usual reaction applies
        number, token, rating = answer
        service.add_message(session, ticket, mail=parsed, raw_mail_id=raw_id, dedup_key=dedup_key, kind="note",
                            at=at)
        if number != ticket.number or not survey.verify_survey_token(self.ticket_mail.survey_secret(session),
                                                                    ticket.number, token):
            service.record_event(session, ticket.id, "rating_refused", sender, at, flagged=True,
                                 why=f"survey token of {number} does not belong to {ticket.number}")
            log.warning("%s: survey answer with a token that is not this ticket's (%s) refused", ticket.number, number)
            return RequesterOutcome("rating-refused", f"token for {number} does not match {ticket.number}")
        service.rate(session, ticket, rating.value, rating.comment, sender, at)
        label = survey.label(rating.value, ticket.language)
        self.ticket_mail.rating_thanks(session, ticket, label, rating.comment)
        if rating.score <= 2:
            self.ticket_mail.low_rating(session, ticket, label, rating.comment)
        return RequesterOutcome("rated", f"rated {rating.value}")
