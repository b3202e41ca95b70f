"""A desk after years of use, generated straight into the database with bulk inserts (not through maildesk).

``fill(engine, n, open_n, now)`` writes ``n`` tickets created over three years, oldest first, and one
acknowledgment per ticket in the outbox, then 50 queued mails due now.  The shape is what makes the sweep
queries hard: every closed ticket has deadlines long past, while the set that is really due is small.

- open tickets: the newest 75% of ``open_n`` all open, the rest stale open tickets scattered among old ones;
  status new / open / pending;
- first response: answered everywhere except the newest 300 tickets (about half of them overdue);
- resolve deadline: closed tickets created + 3 days; open ones mostly ahead (3% overdue);
- progress report: open tickets only, 0.1% due in the last ten minutes, the rest within three days;
- ``next_due_at`` (when the schema has it): the earliest of those for open tickets, empty for closed ones.

SQLite gets ``executemany`` on the raw driver; PostgreSQL gets ``COPY`` (psycopg).  Times are written in the
form the store's ``UtcDateTime`` uses on each backend.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, inspect

TICKET_COLUMNS = (
    "id", "number", "subject", "status", "priority", "category", "group_id", "language", "requester_addr",
    "requester_name", "mailbox", "created_at", "updated_at", "first_response_at", "resolved_at", "closed_at",
    "first_response_due_at", "resolve_due_at", "classification", "paused_seconds", "reopened_count",
    "next_progress_at", "escalation_level", "kb_candidate",
)
OUTBOX_COLUMNS = (
    "id", "ticket_id", "kind", "dedup_key", "message_id", "mail_from", "recipients", "recipient_key", "raw",
    "status", "attempts", "next_attempt_at", "created_at", "sent_at",
)
SPAN = timedelta(days=3 * 365)
UNANSWERED_NEWEST = 300
QUEUED_NOW = 50
_CLASSIFICATION = json.dumps({"version": 1, "category": "hardware", "priority": "medium", "hits": []})
_RAW = b"Subject: ack\r\nMessage-ID: <x@desk.test>\r\n\r\n" + b"x" * 160


def fill(engine: Engine, n: int, open_n: int, now: datetime, seed: int = 7) -> None:
    rng = random.Random(seed)
    stale_every = max(1, int((n - int(open_n * 0.75)) / max(1, open_n - int(open_n * 0.75))))
    tickets: Iterator[tuple[Any, ...]] = _tickets(rng, n, open_n, now, stale_every)
    columns = TICKET_COLUMNS
    if "next_due_at" in {c["name"] for c in inspect(engine).get_columns("tickets")}:
        columns, tickets = (*columns, "next_due_at"), (_with_next_due(row) for row in tickets)
    outbox = _outbox(n, now)
    if engine.dialect.name == "postgresql":
        _copy(engine, "tickets", columns, tickets)
        _copy(engine, "outbox", OUTBOX_COLUMNS, outbox)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does by itself after a load this size
    else:
        _executemany(engine, "tickets", columns, tickets)
        _executemany(engine, "outbox", OUTBOX_COLUMNS, outbox)


def _tickets(rng: random.Random, n: int, open_n: int, now: datetime, stale_every: int) -> Iterator[tuple[Any, ...]]:
    step = SPAN / n
    start = now - SPAN
    newest_open_from = n - int(open_n * 0.75)
    stale_left = open_n - (n - newest_open_from)
    for i in range(n):
        created = start + step * i
        is_open = i >= newest_open_from or (stale_left > 0 and i % stale_every == 0)
        if is_open and i < newest_open_from:
            stale_left -= 1
        answered = i < n - UNANSWERED_NEWEST
        status = rng.choice(("new", "open", "open", "pending")) if is_open else rng.choice(("closed",) * 9 + ("resolved",))
        if is_open:
            overdue = rng.random() < 0.03
            resolve_due = now - timedelta(hours=rng.uniform(0, 48)) if overdue else now + timedelta(hours=rng.uniform(1, 1440))
            progress = now - timedelta(minutes=rng.uniform(0, 10)) if rng.random() < 0.001 else \
                now + timedelta(minutes=rng.uniform(1, 4320))
        else:
            resolve_due, progress = created + timedelta(days=3), None
        yield (
            i + 1, f"TS{created:%Y%m%d}{i % 1_000_000:06d}", f"打印机无法打印 #{i}", status, "medium", "hardware", "hardware-support",
            "zh-CN", f"user{i % 50000}@corp.test", "张三", "support", created, created + timedelta(hours=2),
            created + timedelta(hours=1) if answered else None,
            None if is_open else created + timedelta(days=1), None if is_open else created + timedelta(days=8),
            created + timedelta(hours=4), resolve_due, _CLASSIFICATION, 0, 0, progress, 0, False,
        )


def _with_next_due(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The earliest pending deadline of an open ticket (the sweep's index, migration 0004); None when closed."""
    values = dict(zip(TICKET_COLUMNS, row, strict=True))
    if values["status"] not in ("new", "open", "pending"):
        return (*row, None)
    due = [values["resolve_due_at"], values["next_progress_at"]]
    if values["first_response_at"] is None:
        due.append(values["first_response_due_at"])
    return (*row, min(d for d in due if d is not None))


def _outbox(n: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    step = SPAN / n
    start = now - SPAN
    for i in range(n):
        created = start + step * i
        yield (i + 1, i + 1, "ack", f"ack:{i + 1}", f"ack.{i + 1}@desk.test", "support@desk.test",
               f'["user{i % 50000}@corp.test"]', f"user{i % 50000}@corp.test", _RAW, "sent", 1, created, created,
               created + timedelta(seconds=2))
    for j in range(QUEUED_NOW):
        yield (n + j + 1, n - j, "reminder", f"reminder:{j}", f"reminder.{j}@desk.test", "support@desk.test",
               '["user1@corp.test"]', "user1@corp.test", _RAW, "queued", 0, now - timedelta(seconds=j), now, None)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _executemany(engine: Engine, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(tuple(_sqlite_value(v) for v in row))
            if len(chunk) >= 20_000:
                cursor.executemany(sql, chunk)
                chunk = []
        cursor.executemany(sql, chunk)
        cursor.execute("COMMIT")
    finally:
        raw.close()


def _copy(engine: Engine, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        raw.commit()
    finally:
        raw.close()
