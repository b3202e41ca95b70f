"""Which ticket a mail belongs to: keys to look up, then a decision.

Split as the design asks: ``lookup_keys`` makes the keys (pure), the runner
queries the store, ``decide`` chooses (pure).  The guard against outsiders
lives here: a ticket number is sequential and easy to guess, so a valid tag
from someone who is neither a participant nor an agent is recorded on the
ticket but flagged, and the sender is never added to it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from maildesk.domain import AppendTo, CandidateTicket, NewTicket, ParsedMail, ThreadDecision, ThreadKeys
from maildesk.tickets.numbers import parse_number

MAX_REFERENCES = 32
TAG_TEXT = "技术支持"

# After NFKC, full-width ［］ and ＴＳ are ASCII; the CJK lenticular brackets
# 【】 and 〔〕 survive NFKC and are folded by hand.
_BRACKETS = str.maketrans({"【": "[", "】": "]", "〔": "[", "〕": "]", "「": "[", "」": "]"})
_TAGGED_RE = re.compile(r"\[\s*" + TAG_TEXT + r"\s*\]\s*(TS\s?\d{11,14})", re.IGNORECASE)
_BARE_RE = re.compile(r"(?<![A-Za-z0-9])(TS\s?\d{11,14})(?!\d)", re.IGNORECASE)
_PREFIX_RE = re.compile(
    r"^\s*(?:re|fw|fwd|aw|wg|sv|vs|antw|tr|rv|回复|回覆|答复|转发|轉寄|转|答)\s*(?:\[\d+\])?\s*[:：]\s*",
    re.IGNORECASE,
)
_TAG_ONLY_RE = re.compile(r"\[\s*" + TAG_TEXT + r"\s*\]\s*(?:TS\s?\d{11,14})?\s*", re.IGNORECASE)


def normalize_subject(subject: str) -> str:
    """NFKC, CJK brackets folded to ``[]``, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", subject).translate(_BRACKETS)
    return " ".join(text.split())


def extract_ticket_ref(subject: str) -> str | None:
    """The ticket number a subject refers to, normalised (``TS20261123001``), or None.

    The tag form ``【技术支持】TS…`` wins; a bare well-formed ``TS…`` number is
    accepted too, since requesters copy it into fresh mails.
    """
    text = normalize_subject(subject)
    for pattern in (_TAGGED_RE, _BARE_RE):
        for match in pattern.finditer(text):
            number = parse_number(match.group(1).replace(" ", ""))
            if number is not None:
                return str(number)
    return None


def strip_subject(subject: str) -> str:
    """The subject a person wrote: reply/forward prefixes and our tag removed."""
    text = normalize_subject(subject)
    while True:
        stripped = _TAG_ONLY_RE.sub("", _PREFIX_RE.sub("", text, count=1), count=1).strip()
        if stripped == text:
            return text
        text = stripped


def lookup_keys(mail: ParsedMail) -> ThreadKeys:
    """What the store must look up: the tagged number and the referenced Message-IDs."""
    ids = _unique([*mail.in_reply_to, *reversed(mail.references)])[:MAX_REFERENCES]
    return ThreadKeys(ticket_ref=extract_ticket_ref(mail.subject), message_ids=tuple(ids))


def decide(
    mail: ParsedMail, candidates: Iterable[CandidateTicket], *, sender_is_agent: bool
) -> ThreadDecision:
    """Append to the ticket the sender belongs to, flag an outsider, or start a new ticket.

    Preference: a tagged ticket the sender takes part in, then a ticket found by
    Message-ID the sender takes part in, then (flagged as outsider) any ticket
    found.  A tag for a ticket that does not exist starts a new ticket.
    """
    found = sorted(candidates, key=lambda c: (c.found_by != "tag", c.ticket_id))
    if not found:
        return NewTicket(reason="no tag or reference matches a ticket")
    sender = mail.from_addr.key if mail.from_addr else None
    for candidate in found:
        if sender_is_agent or (sender is not None and sender in candidate.participants):
            who = "agent" if sender_is_agent else "participant"
            return AppendTo(
                candidate.ticket_id, candidate.number, reason=f"{who} mail matched by {candidate.found_by}"
            )
    first = found[0]
    return AppendTo(
        first.ticket_id,
        first.number,
        reason=f"sender is not a participant of {first.number} (matched by {first.found_by})",
        outsider=True,
    )


def _unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out
