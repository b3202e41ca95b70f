"""Values that cross stages: frozen dataclasses and enums, nothing else.

Every stage of the pipeline (parse → loops → thread → rules → sla → service)
takes and returns these.  They hold no behaviour beyond small derived
properties, so any layer may import them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """The only way code below the runners learns the time."""

    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...


class Priority(enum.Enum):
    URGENT = "urgent"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


class TicketStatus(enum.Enum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Category(enum.Enum):
    HARDWARE = "hardware"
    SOFTWARE = "software"
    NETWORK = "network"
    ACCOUNT = "account"
    THIRD_PARTY = "third-party"
    QUESTION = "question"
    OTHER = "other"


class AutoKind(enum.Enum):
    """Why a mail must never get an automatic answer."""

    AUTO_REPLY = "auto-reply"
    OUT_OF_OFFICE = "out-of-office"
    BOUNCE = "bounce"
    LIST = "list"


@dataclass(frozen=True)
class Address:
    """One mailbox.  ``addr`` is ``local@domain`` with the domain lower-cased."""

    addr: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2].lower()

    @property
    def key(self) -> str:
        """Case-insensitive identity used for participant lookups."""
        return self.addr.lower()


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    content_id: str | None = None
    inline: bool = False
    data: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class ParsedMail:
    """What a person would read in one mail, decoded; produced by ``ingest.parse``.

    Message ids (``message_id``, ``in_reply_to``, ``references``) are stored
    without angle brackets.  ``headers`` keeps every header as decoded text, in
    order, with lower-cased names, for loop detection and rules.
    """

    message_id: str | None
    from_addr: Address | None
    subject: str
    body_text: str
    reply_text: str = ""
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    sender: Address | None = None
    date: datetime | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body_html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)


# --- loop / automatic mail assessment (ingest.loops) -------------------------


@dataclass(frozen=True)
class Proceed:
    """An ordinary mail written by a person."""


@dataclass(frozen=True)
class Automatic:
    """Must never get an automatic answer; recorded on its ticket if it has one."""

    kind: AutoKind
    reason: str


# --- threading (ingest.thread) -----------------------------------------------


@dataclass(frozen=True)
class ThreadKeys:
    """What to look up in the store to find the ticket a mail belongs to."""

    ticket_ref: str | None
    message_ids: tuple[str, ...]


@dataclass(frozen=True)
class CandidateTicket:
    """A ticket the store found for a mail's keys."""

    ticket_id: int
    number: str
    participants: frozenset[str]
    found_by: str  # "tag" or "message-id"


@dataclass(frozen=True)
class AppendTo:
    ticket_id: int
    number: str
    reason: str
    outsider: bool = False


@dataclass(frozen=True)
class NewTicket:
    reason: str


ThreadDecision = AppendTo | NewTicket


# --- rules and SLA -------------------------------------------------------------


@dataclass(frozen=True)
class RuleHit:
    """One rule that matched, with where it is written and why it matched."""

    rule_id: str
    location: str  # "config/rules.toml:12"
    why: str


@dataclass(frozen=True)
class Classification:
    category: Category
    priority: Priority
    group: str | None = None
    assignee: str | None = None
    impact: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    suppress_ack: bool = False
    reply_template: str | None = None
    close: bool = False
    hits: tuple[RuleHit, ...] = ()


@dataclass(frozen=True)
class Deadlines:
    first_response_at: datetime | None
    resolve_at: datetime | None
    progress_every: timedelta | None = None
    explanation: tuple[str, ...] = ()


# --- outbound ----------------------------------------------------------------


@dataclass(frozen=True)
class OutboxMessage:
    """A mail to send, fully built (headers and MIME bytes) before it is queued."""

    kind: str
    dedup_key: str
    message_id: str
    mail_from: str  # envelope sender
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)
