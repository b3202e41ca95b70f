"""Queries the runners and the service need, each a small named function.

Everything that depends on the backend (upserts, ``FOR UPDATE SKIP LOCKED``)
is decided here so the callers stay backend-agnostic.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Select, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from maildesk.domain import CandidateTicket, ThreadKeys
from maildesk.store.models import Daemon as DaemonRow
from maildesk.store.models import (
    Event,
    MailboxState,
    Message,
    Outbox,
    Participant,
    RawMail,
    Secret,
    Suppression,
    Ticket,
    TicketSequence,
)


def _insert(session: Session, table: type) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _skip_locked(session: Session, stmt: Select[Any]) -> Select[Any]:
    """On PostgreSQL, lock the rows read and skip those another daemon holds; SQLite has one writer."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def _claim(session: Session, stmt: Select[Any], now_at: datetime, lease: timedelta, claimer: str) -> list[Outbox]:
    """Mark the outbox rows ``stmt`` selects as being sent by ``claimer`` until the lease runs out."""
    rows = list(session.scalars(_skip_locked(session, stmt)))
    for row in rows:
        row.status, row.claimed_until, row.claimed_by = "sending", now_at + lease, claimer or None
    session.flush()
    return rows


def next_ticket_sequence(session: Session, day: date) -> int:
    """Hand out the next sequence of ``day``; the row stays locked until commit.

    An upsert with RETURNING is one atomic statement on both backends, so two
    processes can never read the same ``last``.
    """
    stmt = _insert(session, TicketSequence).values(day=day, last=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[TicketSequence.day], set_={"last": TicketSequence.last + 1}
    ).returning(TicketSequence.last)
    return int(session.execute(stmt).scalar_one())


def insert_raw_mails(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Store fetched mails in one statement, skipping any (mailbox, UIDVALIDITY, UID) already there
    (another process or an earlier run got it first)."""
    if rows:
        stmt = _insert(session, RawMail).on_conflict_do_nothing(index_elements=["mailbox", "uidvalidity", "uid"])
        session.execute(stmt, list(rows))


def known_uids(session: Session, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> set[int]:
    if not uids:
        return set()
    rows = session.execute(
        select(RawMail.uid).where(
            RawMail.mailbox == mailbox, RawMail.uidvalidity == uidvalidity, RawMail.uid.in_(list(uids))
        )
    )
    return {int(uid) for (uid,) in rows}


def pending_raw_ids(session: Session, now_at: datetime, limit: int, mailbox: str | None = None) -> list[int]:
    stmt = select(RawMail.id).where(
        RawMail.status == "pending",
        or_(RawMail.next_attempt_at.is_(None), RawMail.next_attempt_at <= now_at),
    )
    if mailbox is not None:
        stmt = stmt.where(RawMail.mailbox == mailbox)
    return list(session.scalars(stmt.order_by(RawMail.id).limit(limit)))


def lock_raw_mail(session: Session, raw_id: int) -> RawMail | None:
    """The raw row, locked for this transaction; None if another process holds it."""
    return session.scalars(_skip_locked(session, select(RawMail).where(RawMail.id == raw_id))).one_or_none()


def message_by_dedup_key(session: Session, dedup_key: str) -> Message | None:
    return session.scalars(select(Message).where(Message.dedup_key == dedup_key)).one_or_none()


def find_candidates(session: Session, keys: ThreadKeys) -> list[CandidateTicket]:
    """Tickets the tag or the referenced Message-IDs point at, with their participants."""
    found: dict[int, str] = {}
    if keys.ticket_ref:
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.number == keys.ticket_ref))
        if ticket_id is not None:
            found[ticket_id] = "tag"
    if keys.message_ids:
        ids = list(keys.message_ids)
        incoming = select(Message.ticket_id).where(Message.message_id.in_(ids), Message.kind != "outsider")
        outgoing = select(Outbox.ticket_id).where(Outbox.message_id.in_(ids), Outbox.ticket_id.is_not(None))
        for (ticket_id,) in session.execute(incoming.union(outgoing)):
            found.setdefault(ticket_id, "message-id")
    if not found:
        return []
    rows = session.execute(
        select(Ticket.id, Ticket.number, Participant.address)
        .join(Participant, Participant.ticket_id == Ticket.id, isouter=True)
        .where(Ticket.id.in_(list(found)))
    )
    numbers: dict[int, str] = {}
    people: dict[int, set[str]] = {}
    for ticket_id, number, address in rows:
        numbers[ticket_id] = number
        if address:
            people.setdefault(ticket_id, set()).add(address)
    return [
        CandidateTicket(tid, numbers[tid], frozenset(people.get(tid, ())), found_by)
        for tid, found_by in found.items()
    ]


def acks_sent_since(session: Session, recipient_key: str, since_at: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(Outbox.id)).where(
                Outbox.recipient_key == recipient_key, Outbox.kind == "ack", Outbox.created_at >= since_at
            )
        )
        or 0
    )


def events_by_actor_since(session: Session, kinds: tuple[str, ...], actor: str, since_at: datetime) -> int:
    """How many events of ``kinds`` ``actor`` (any letter case) caused since ``since_at``.

    Meant for rare kinds: the kind index finds the few rows, the case-folded comparison runs on those.
    """
    return int(session.scalar(select(func.count(Event.id)).where(
        Event.kind.in_(kinds), func.lower(Event.actor) == actor.lower(), Event.at >= since_at)) or 0)


def get_or_create_secret(session: Session, name: str) -> str:
    """A random secret generated once per installation and kept in the database (``Notifier`` caches it)."""
    value = session.scalar(select(Secret.value).where(Secret.name == name))
    if value is not None:
        return value
    stmt = _insert(session, Secret).values(name=name, value=secrets.token_hex(32))
    session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return str(session.scalar(select(Secret.value).where(Secret.name == name)))


def claim_due_outbox(session: Session, now_at: datetime, limit: int, lease: timedelta,
                     claimer: str = "", stale_before: datetime | None = None) -> list[Outbox]:
    """Rows due for sending, marked ``sending`` by ``claimer`` so nobody else takes them.

    A row being sent by a daemon that died is due again: its lease ran out, or
    its daemon stopped beating (heartbeat older than ``stale_before``).
    """
    dead = select(DaemonRow.id).where(DaemonRow.heartbeat_at < stale_before) if stale_before else None
    orphaned = (Outbox.claimed_until <= now_at) | Outbox.claimed_by.is_(None)
    if dead is not None:
        alive = select(DaemonRow.id)
        orphaned = orphaned | Outbox.claimed_by.in_(dead) | Outbox.claimed_by.not_in(alive)
    due = or_(
        (Outbox.status == "queued") & (Outbox.next_attempt_at <= now_at),
        (Outbox.status == "sending") & orphaned,
    )
    stmt = select(Outbox).where(due).order_by(Outbox.next_attempt_at, Outbox.id).limit(limit)
    return _claim(session, stmt, now_at, lease, claimer)


# Built once: a statement object keeps its compiled form and cache key, which matters at one per sent mail.
_OUTBOX = cast(Table, Outbox.__table__)
_MARK_SENT = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id"))
              .values(status="sent", sent_at=bindparam("now_at", type_=_OUTBOX.c.sent_at.type),
                      claimed_until=None, last_error=None, attempts=_OUTBOX.c.attempts + 1))
_INSERT_EVENT = insert(cast(Table, Event.__table__))


def mark_outbox_sent(connection: Connection, row_id: int, now_at: datetime) -> bool:
    """Record a 250 for every recipient of an outbox row in one UPDATE; False when the row is gone.

    Core on a bare connection: no ORM bookkeeping for a row we never loaded.
    """
    return bool(connection.execute(_MARK_SENT, {"row_id": row_id, "now_at": now_at}).rowcount)


def insert_event(connection: Connection, values: dict[str, Any]) -> None:
    """One audit event written now, without an ORM object (for paths that load no ticket)."""
    connection.execute(_INSERT_EVENT, values)


def claim_probe(session: Session, now_at: datetime, lease: timedelta, claimer: str = "") -> list[Outbox]:
    """The earliest mail waiting out a backoff, claimed now: a probe of whether the server is back."""
    stmt = (select(Outbox).where(Outbox.status == "queued", Outbox.attempts > 0, Outbox.next_attempt_at > now_at)
            .order_by(Outbox.next_attempt_at, Outbox.id).limit(1))
    return _claim(session, stmt, now_at, lease, claimer)


def pull_forward_retries(session: Session, now_at: datetime) -> int:
    """The server answers again: mails waiting out a backoff go now instead of up to an hour later."""
    result = session.execute(
        update(Outbox).where(Outbox.status == "queued", Outbox.attempts > 0, Outbox.next_attempt_at > now_at)
        .values(next_attempt_at=now_at)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def heartbeat(session: Session, daemon_id: str, host: str, pid: int, now_at: datetime) -> None:
    row = session.get(DaemonRow, daemon_id)
    if row is None:
        session.add(DaemonRow(id=daemon_id, host=host, pid=pid, started_at=now_at, heartbeat_at=now_at))
    else:
        row.heartbeat_at = now_at


def forget_daemon(session: Session, daemon_id: str) -> None:
    """A daemon that stops cleanly hands back what it claimed and leaves."""
    session.execute(update(Outbox).where(Outbox.status == "sending", Outbox.claimed_by == daemon_id)
                    .values(status="queued", claimed_by=None, claimed_until=None))
    row = session.get(DaemonRow, daemon_id)
    if row is not None:
        session.delete(row)


def release_all_claims(session: Session) -> int:
    """On SQLite only one daemon runs, so at its start every 'sending' row was its dead predecessor's."""
    result = session.execute(update(Outbox).where(Outbox.status == "sending")
                             .values(status="queued", claimed_by=None, claimed_until=None))
    session.execute(delete(DaemonRow))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def ticket_by_number(session: Session, number: str) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.number == number)).one_or_none()


def list_tickets(session: Session, *, status: str | None = None, limit: int = 50) -> list[Ticket]:
    stmt = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Ticket.status == status)
    return list(session.scalars(stmt))


def quarantined(session: Session, limit: int = 100) -> list[RawMail]:
    stmt = select(RawMail).where(RawMail.status == "quarantined").order_by(RawMail.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def requeue_raw(session: Session, raw_ids: Sequence[int] | None) -> int:
    """Put quarantined mails back in the queue (all of them when ``raw_ids`` is None)."""
    stmt = select(RawMail).where(RawMail.status == "quarantined")
    if raw_ids is not None:
        stmt = stmt.where(RawMail.id.in_(list(raw_ids)))
    rows = list(session.scalars(stmt))
    for row in rows:
        row.status, row.attempts, row.next_attempt_at = "pending", 0, None
    return len(rows)


def stored_message_ids(session: Session, message_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    ids = [m for m in message_ids if m]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(m for (m,) in session.execute(select(RawMail.message_id).where(RawMail.message_id.in_(chunk))))
    return found


def raw_counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(RawMail.status, func.count(RawMail.id)).group_by(RawMail.status))
    return {status: int(n) for status, n in rows}


def suppress_address(session: Session, address: str, until_at: datetime, reason: str, now_at: datetime) -> None:
    """Stop automatic mail to ``address`` until ``until_at`` (a later bounce extends it)."""
    key = address.strip().lower()
    row = session.get(Suppression, key)
    if row is None:
        session.add(Suppression(address=key, until_at=until_at, reason=reason[:2000], created_at=now_at))
    elif row.until_at < until_at:
        row.until_at, row.reason = until_at, reason[:2000]


def suppressed(session: Session, addresses: Sequence[str], now_at: datetime) -> set[str]:
    keys = [a.strip().lower() for a in addresses if a]
    if not keys:
        return set()
    rows = session.scalars(select(Suppression.address).where(Suppression.address.in_(keys),
                                                            Suppression.until_at > now_at))
    return set(rows)


def outbox_by_message_id(session: Session, message_id: str) -> Outbox | None:
    return session.scalars(select(Outbox).where(Outbox.message_id == message_id.strip("<> "))).one_or_none()


def stored_hashes(session: Session, sha256s: Sequence[str]) -> set[str]:
    if not sha256s:
        return set()
    return set(session.scalars(select(RawMail.sha256).where(RawMail.sha256.in_(list(sha256s)))))


def outbox_by_dedup_key(session: Session, dedup_key: str) -> Outbox | None:
    return session.scalars(select(Outbox).where(Outbox.dedup_key == dedup_key)).one_or_none()


def dedup_keys_taken(session: Session, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` some outbox row already has (the rows themselves, with their bytes, stay unread)."""
    if not keys:
        return set()
    return set(session.scalars(select(Outbox.dedup_key).where(Outbox.dedup_key.in_(list(keys)))))


def pending_pauses(session: Session, ticket_id: int) -> list[tuple[datetime, datetime | None]]:
    """The spans a ticket waited on its requester, from its status events (the last may be open)."""
    events = session.scalars(
        select(Event).where(Event.ticket_id == ticket_id, Event.kind == "status_changed").order_by(Event.id)
    )
    pauses: list[tuple[datetime, datetime | None]] = []
    started: datetime | None = None
    for event in events:
        if event.data.get("new") == "pending" and started is None:
            started = event.at
        elif event.data.get("old") == "pending" and started is not None:
            pauses.append((started, event.at))
            started = None
    if started is not None:
        pauses.append((started, None))
    return pauses


def outbox_rows(session: Session, status: str | None, limit: int) -> list[Outbox]:
    stmt = select(Outbox).order_by(Outbox.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Outbox.status == status)
    return list(session.scalars(stmt))


def retry_outbox(session: Session, ids: Sequence[int] | None, now_at: datetime) -> int:
    """Queue dead letters again (all when ``ids`` is None), due now, with a fresh attempt count."""
    stmt = select(Outbox).where(Outbox.status == "dead")
    if ids is not None:
        stmt = stmt.where(Outbox.id.in_(list(ids)))
    rows = list(session.scalars(stmt))
    for row in rows:
        row.status, row.attempts, row.next_attempt_at, row.claimed_until = "queued", 0, now_at, None
    return len(rows)


def purge_outbox(session: Session, older_than_at: datetime) -> int:
    """Drop the bytes of sent and dead mails older than a date; the rows (and Message-IDs) stay for threading."""
    rows = list(session.scalars(select(Outbox).where(Outbox.status.in_(("sent", "dead")),
                                                     Outbox.created_at < older_than_at,
                                                     func.length(Outbox.raw) > 0)))
    for row in rows:
        row.raw = b""
    return len(rows)


def thread_ids(session: Session, ticket_id: int, limit: int = 20,
               outgoing_kinds: Sequence[str] | None = None) -> list[str]:
    """Message-IDs of a ticket's mails, oldest first (the first is the request): for References.

    ``outgoing_kinds`` limits our own mails to those the recipient has seen (an
    agent's notices never appear in a requester's thread, and vice versa).
    """
    incoming = select(Message.message_id, Message.created_at).where(
        Message.ticket_id == ticket_id, Message.message_id.is_not(None), Message.kind.in_(("request", "reply"))
    )
    outgoing = select(Outbox.message_id, Outbox.created_at).where(Outbox.ticket_id == ticket_id)
    if outgoing_kinds is not None:
        outgoing = outgoing.where(Outbox.kind.in_(list(outgoing_kinds)))
    rows = session.execute(incoming.union_all(outgoing).order_by("created_at").limit(200)).all()
    ids = [mid for mid, _ in rows if mid]
    return ids[:1] + ids[1:][-(limit - 1):] if ids else []


def due_tickets(session: Session, now_at: datetime, limit: int) -> list[Ticket]:
    """Tickets whose next automatic mail is due, locked for this sweep (skipped if another daemon has them)."""
    stmt = (select(Ticket).where(Ticket.next_due_at.is_not(None), Ticket.next_due_at <= now_at)
            .order_by(Ticket.next_due_at).limit(limit))
    return list(session.scalars(_skip_locked(session, stmt)))


def ticket_history(session: Session, ticket_id: int, limit: int = 30) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id.desc())
                                .limit(limit)))[::-1]


def health_counts(session: Session) -> dict[str, object]:
    """The figures an operator watches, straight from the database (true for every daemon at once)."""
    raw = dict(session.execute(select(RawMail.status, func.count(RawMail.id)).group_by(RawMail.status)).all())
    out = dict(session.execute(select(Outbox.status, func.count(Outbox.id)).group_by(Outbox.status)).all())
    events = dict(session.execute(
        select(Event.kind, func.count(Event.id))
        .where(Event.kind.in_(("sla_warning", "escalated", "first_response", "mail_bounced")))
        .group_by(Event.kind)).all())
    breached = session.scalar(select(func.count(Event.id)).where(Event.kind == "first_response",
                                                                 Event.data["within_sla"].as_boolean().is_(False)))
    boxes = [(m.mailbox, m.last_poll_at, m.last_error) for m in session.scalars(select(MailboxState))]
    return {
        "raw": {str(k): int(v) for k, v in raw.items()},
        "outbox": {str(k): int(v) for k, v in out.items()},
        "tickets": int(session.scalar(select(func.count(Ticket.id))) or 0),
        "open_tickets": int(session.scalar(select(func.count(Ticket.id)).where(
            Ticket.status.in_(("new", "open", "pending")))) or 0),
        "events": {str(k): int(v) for k, v in events.items()},
        "first_response_breaches": int(breached or 0),
        "mailboxes": boxes,
    }


def unprocessed_parents(session: Session, message_ids: Sequence[str], raw_id: int) -> list[int]:
    """Earlier stored mails this one refers to that are not processed yet (another daemon may hold them)."""
    ids = [m for m in message_ids if m]
    if not ids:
        return []
    return list(session.scalars(select(RawMail.id).where(RawMail.message_id.in_(ids), RawMail.id < raw_id,
                                                         RawMail.status == "pending")))


def open_counts_by_assignee(session: Session, agent_ids: Sequence[str]) -> dict[str, int]:
    if not agent_ids:
        return {}
    rows = session.execute(select(Ticket.assignee, func.count(Ticket.id))
                           .where(Ticket.assignee.in_(list(agent_ids)), Ticket.status.in_(("new", "open", "pending")))
                           .group_by(Ticket.assignee))
    return {str(a): int(n) for a, n in rows}


def open_tickets_at_risk(session: Session, before_at: datetime, limit: int = 50) -> tuple[int, list[Ticket]]:
    """How many tickets are open, and those whose next deadline falls before ``before_at`` (or has passed)."""
    active = Ticket.status.in_(("new", "open"))
    total = int(session.scalar(select(func.count(Ticket.id)).where(Ticket.status.in_(("new", "open", "pending"))))
                or 0)
    risky = (Ticket.first_response_at.is_(None) & (Ticket.first_response_due_at < before_at)) | (
        Ticket.resolve_due_at < before_at)
    rows = session.scalars(select(Ticket).where(active, risky).order_by(Ticket.resolve_due_at).limit(limit))
    return total, list(rows)


def outbox_kind_since(session: Session, kind: str, since_at: datetime) -> int:
    return int(session.scalar(select(func.count(Outbox.id)).where(Outbox.kind == kind, Outbox.created_at >= since_at))
               or 0)
