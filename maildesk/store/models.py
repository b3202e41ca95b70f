"""SQLAlchemy models: the whole persistent state of maildesk.

The daemon keeps nothing that matters in memory: raw mails, tickets, their
messages, participants, the audit trail and the outbox all live here, so a
restart (or a second daemon on PostgreSQL) continues from the database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must be aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class TicketSequence(Base):
    """The last sequence handed out per local day; incremented under a row lock."""

    __tablename__ = "ticket_sequences"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    group: Mapped[str | None] = mapped_column("group_id", String(64))
    assignee: Mapped[str | None] = mapped_column(String(255))
    impact: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    requester_addr: Mapped[str] = mapped_column(String(320), index=True)
    requester_name: Mapped[str] = mapped_column(String(255))
    mailbox: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    first_response_due_at: Mapped[datetime | None] = mapped_column(index=True)
    resolve_due_at: Mapped[datetime | None] = mapped_column(index=True)
    classification: Mapped[dict[str, Any]]
    # lifecycle (issue 5): SLA pauses, reopening, satisfaction, escalation
    pending_since_at: Mapped[datetime | None]
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    last_requester_at: Mapped[datetime | None]
    next_progress_at: Mapped[datetime | None] = mapped_column(index=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction: Mapped[str | None] = mapped_column(String(16))  # very-satisfied | satisfied | neutral | dissatisfied
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None]
    solution: Mapped[str | None] = mapped_column(Text)
    kb_candidate: Mapped[bool] = mapped_column(default=False)
    # the sweep looks only at tickets whose next automatic mail is due (indexed; never a scan)
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))  # a new ticket after a closed one

    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id",
                                                   foreign_keys="Message.ticket_id")
    participants: Mapped[list[Participant]] = relationship(back_populates="ticket", order_by="Participant.id")
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")


class RawMail(Base):
    """Every fetched mail, committed before it is parsed (nothing lost)."""

    __tablename__ = "raw_mails"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_raw_mail_source"),
        Index("ix_raw_mails_status", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[datetime]
    # pending | done | duplicate | discarded | quarantined
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))


class Message(Base):
    """A mail of a ticket.  ``dedup_key`` makes a second copy of a mail an error."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    raw_mail_id: Mapped[int | None] = mapped_column(ForeignKey("raw_mails.id"))
    dedup_key: Mapped[str] = mapped_column(String(998), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    # request | reply | note | automatic | outsider
    kind: Mapped[str] = mapped_column(String(16))
    from_addr: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(255))
    to_addrs: Mapped[list[Any]]
    cc_addrs: Mapped[list[Any]]
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    reply_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("ticket_id", "address", name="uq_participant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    address: Mapped[str] = mapped_column(String(320), index=True)  # lower-cased
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # requester | cc | agent
    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class Event(Base):
    """The audit trail: every change and every decision, with who or what made it."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(48), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    data: Mapped[dict[str, Any]]
    ticket: Mapped[Ticket | None] = relationship(back_populates="events")


class Outbox(Base):
    """A mail to send, written in the transaction of the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_recipient", "recipient_key", "kind", "created_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[Any]]
    # lower-cased first recipient: rate limits and bounce suppression look it up
    recipient_key: Mapped[str] = mapped_column(String(320))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # queued | sending | sent | dead
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the daemon sending it (see Daemon)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class MailboxState(Base):
    """What we know of a remote folder, to notice a UIDVALIDITY change."""

    __tablename__ = "mailbox_state"
    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    """An address that bounced permanently: no automatic mail to it until ``until_at``."""

    __tablename__ = "suppressions"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    until_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Daemon(Base):
    """A running daemon and its heartbeat: work claimed by one that stopped beating is taken over."""

    __tablename__ = "daemons"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class AssignmentState(Base):
    """Round-robin position per group: who got the last ticket."""

    __tablename__ = "assignment_state"
    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_agent: Mapped[str | None] = mapped_column(String(64))


class Secret(Base):
    """Installation secrets generated on first use (HMAC key of our Message-IDs)."""

    __tablename__ = "secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class KbArticle(Base):
    """A knowledge-base article; ``search_text`` holds its jieba terms joined by spaces for the FTS index.

    The index itself is not a model: on SQLite the FTS5 table ``kb_fts`` (external content, kept in step by
    triggers), on PostgreSQL a GIN index on ``to_tsvector('simple', search_text)`` (migration 0006).
    """

    __tablename__ = "kb_articles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(Text)
    problem: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)
    solution: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    source_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), unique=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)
    search_text: Mapped[str] = mapped_column(Text)
