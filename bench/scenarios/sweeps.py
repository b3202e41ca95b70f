"""Sweeps at scale (scenario 4): one outbox claim and the SLA due-ticket queries at a million tickets.

The database is made by maildesk's own migrations and filled by ``bench.ticketgen``.  The outbox claim is
``queries.claim_due_outbox`` exactly as the sender calls it (batch of 50), inside a transaction that is
rolled back, so the five repetitions see the same data.  When ``maildesk/sla/sweep.py`` exists, one sweep
run is timed as well; the due-ticket queries it needs are timed on their own either way, with their plans.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, and_, select
from sqlalchemy.orm import Session

from bench.context import Run, log
from bench.stack import pg_database
from bench.ticketgen import fill
from maildesk.outbound.sender import LEASE
from maildesk.store import migrate, queries
from maildesk.store.models import Outbox, Ticket
from maildesk.store.session import make_engine, make_session_factory

REPEAT = 5
ACTIVE = ("new", "open", "pending")


def due_queries(now: datetime) -> dict[str, Select[Any]]:
    """What an SLA sweep must find: overdue first responses, overdue resolutions, progress reports due;
    and, when the schema has it, the single ``next_due_at`` column the sweep is meant to use."""
    active = Ticket.status.in_(ACTIVE)
    extra = {"next_due": select(Ticket.id).where(Ticket.next_due_at <= now)} if hasattr(Ticket, "next_due_at") else {}
    return {**extra,
        "first_response_due": select(Ticket.id).where(and_(
            Ticket.first_response_due_at <= now, Ticket.first_response_at.is_(None), active)),
        "resolve_due": select(Ticket.id).where(and_(Ticket.resolve_due_at <= now, active)),
        "progress_due": select(Ticket.id).where(and_(Ticket.next_progress_at <= now, active)),
    }


def claim_statement(now: datetime) -> Select[Any]:
    """The SELECT inside ``queries.claim_due_outbox``, rebuilt only to print its plan."""
    due = ((Outbox.status == "queued") & (Outbox.next_attempt_at <= now)) | (
        (Outbox.status == "sending") & (Outbox.claimed_until <= now))
    return select(Outbox).where(due).order_by(Outbox.next_attempt_at, Outbox.id).limit(50)


def run(ctx: Run) -> dict[str, object]:
    out: dict[str, object] = {"sweep_module": _sweep_module()}
    if out["sweep_module"] is None:
        ctx.note("maildesk/sla/sweep.py does not exist yet: the due-ticket queries it will use are timed instead")
    sqlite_url = f"sqlite:///{ctx.tmp / 'sweeps' / 'maildesk.db'}"
    out["sqlite"] = measure(ctx, sqlite_url)
    with pg_database(ctx.pg_url) as url:
        if url is None:
            ctx.note("PostgreSQL not reachable: sweeps on PostgreSQL skipped")
        out["postgresql"] = measure(ctx, url) if url else None
    return out


def measure(ctx: Run, url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        now = datetime.now(UTC)
        started = time.perf_counter()
        fill(engine, ctx.sizes.tickets, ctx.sizes.open_tickets, now)
        load_s = time.perf_counter() - started
        log.info("sweeps: %d tickets loaded into %s in %.0f s", ctx.sizes.tickets, engine.dialect.name, load_s)
        sessions = make_session_factory(engine)
        result: dict[str, object] = {"tickets": ctx.sizes.tickets, "open": ctx.sizes.open_tickets,
                                     "load_s": round(load_s, 1)}
        result["outbox_claim"] = _timed(sessions, lambda s: len(queries.claim_due_outbox(s, now, 50, LEASE)))
        result["outbox_claim"]["plan"] = explain(engine, claim_statement(now))
        for name, stmt in due_queries(now).items():
            result[name] = _timed(sessions, lambda s, q=stmt: len(s.execute(q).all()))
            result[name]["plan"] = explain(engine, stmt)
        due_ms = [result[name]["median_ms"] for name in due_queries(now) if name != "next_due"]
        result["due_queries_total_ms"] = round(sum(due_ms), 2)
        if _sweep_module():
            result["sweep_run_ms"] = None  # filled in by hand once sweep.py has a stable entry point
        return result
    finally:
        engine.dispose()


def _timed(sessions: Callable[[], Session], work: Callable[[Session], int]) -> dict[str, Any]:
    """``work`` REPEAT times, each in a transaction rolled back afterwards; first, median and max in ms."""
    times, rows = [], 0
    for _ in range(REPEAT):
        with sessions() as session:
            started = time.perf_counter()
            rows = work(session)
            times.append((time.perf_counter() - started) * 1000)
            session.rollback()
    return {"rows": rows, "first_ms": round(times[0], 2), "median_ms": round(statistics.median(times), 2),
            "max_ms": round(max(times), 2)}


def explain(engine: Engine, stmt: Select[Any]) -> list[str]:
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + str(compiled)).all()
    if engine.dialect.name == "sqlite":
        return [str(row[-1]) for row in rows]
    return [str(row[0]) for row in rows]


def _sweep_module() -> str | None:
    return "maildesk.sla.sweep" if importlib.util.find_spec("maildesk.sla.sweep") else None
