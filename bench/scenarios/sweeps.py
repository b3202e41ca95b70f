"""Sweeps at scale (scenario 4): one outbox claim and one SLA sweep at a million tickets.

The database is made by maildesk's own migrations and filled by ``bench.ticketgen``.  The outbox claim is
``queries.claim_due_outbox`` exactly as the sender calls it (batch of 50), inside a transaction that is
rolled back, so the five repetitions see the same data.  The sweep is ``maildesk.sla.sweep.Sweeper.sweep``
as the daemon runs it (shipped rules, SLA and templates, the clock frozen at the load's "now"): first the
catch-up of every ticket the load left due (they all become due at once, which a running daemon never
sees), then the steady state, a sweep with nothing newly due, five times.  The due-ticket queries are also
timed on their own, with their plans.
"""

from __future__ import annotations

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
    out: dict[str, object] = {}
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
        result["sweep"] = sweep_runs(sessions, url, now)
        return result
    finally:
        engine.dispose()


SETTINGS = """
[desk]
support_address = "support@desk.test"
rules_dir = "{root}/config"
templates_dir = "{root}/templates"
[database]
url = "{url}"
[[mailbox]]
name = "support"
host = "127.0.0.1"
user = "bench"
password_env = "MAILDESK_BENCH_UNUSED"
[smtp]
host = "127.0.0.1"
"""


def sweep_runs(sessions: Callable[[], Session], url: str, now: datetime) -> dict[str, Any]:
    """The real sweep on the loaded database: the catch-up once, then five steady-state sweeps."""
    from bench.stack import ROOT
    from maildesk.clock import FrozenClock
    from maildesk.config import parse_settings
    from maildesk.daemon import template_environment
    from maildesk.ingest.route import lifecycle_from
    from maildesk.outbound.notifier import Notifier
    from maildesk.rules.policy import RulesPolicy
    from maildesk.sla.sweep import Sweeper

    settings = parse_settings(SETTINGS.format(root=ROOT, url=url))
    clock = FrozenClock(now)
    sweeper = Sweeper(sessions=sessions, clock=clock, policy=RulesPolicy.load(ROOT / "config", clock),
                      notifier=Notifier(settings=settings, templates=template_environment(settings, ROOT),
                                        clock=clock), lifecycle_policy=lifecycle_from(settings))
    started = time.perf_counter()
    first = sweeper.sweep()
    catch_up_s = time.perf_counter() - started
    log.info("sweeps: catch-up sweep of %d due tickets queued %d mails in %.1f s", first.tickets, first.mails,
             catch_up_s)
    steady = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        report = sweeper.sweep()
        steady.append((time.perf_counter() - started) * 1000)
    return {"catch_up": {"tickets": first.tickets, "mails": first.mails, "s": round(catch_up_s, 2),
                         "ms_per_ticket": round(catch_up_s * 1000 / max(first.tickets, 1), 2)},
            "steady": {"tickets": report.tickets, "first_ms": round(steady[0], 2),
                       "median_ms": round(statistics.median(steady), 2), "max_ms": round(max(steady), 2)}}


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
