"""Two processes allocating ticket numbers at the same moment never get the same one (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from datetime import date
from pathlib import Path

import pytest

from maildesk.store import migrate, queries
from maildesk.store.session import make_engine, make_session_factory, transaction
from maildesk.tickets.numbers import format_number, parse_number

PER_PROCESS = 200
DAY = date(2026, 11, 23)


def _allocate(url: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:  # type: ignore[name-defined]
    sessions = make_session_factory(make_engine(url))
    start.wait(10)
    numbers = []
    for _ in range(PER_PROCESS):
        with transaction(sessions) as session:
            numbers.append(format_number(DAY, queries.next_ticket_sequence(session, DAY)))
    out.put(numbers)


def _race(url: str) -> list[str]:
    migrate.upgrade(make_engine(url))
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_allocate, args=(url, start, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    return [n for chunk in results for n in chunk]


def _check(numbers: list[str]) -> None:
    assert len(numbers) == 2 * PER_PROCESS
    assert len(set(numbers)) == 2 * PER_PROCESS, "a ticket number was handed out twice"
    assert sorted(parse_number(n).sequence for n in numbers) == list(range(1, 2 * PER_PROCESS + 1))  # type: ignore[union-attr]


def test_two_processes_get_400_distinct_numbers_on_sqlite(tmp_path: Path) -> None:
    _check(_race(f"sqlite:///{tmp_path / 'seq.db'}"))


@pytest.mark.postgres
def test_two_processes_get_400_distinct_numbers_on_postgresql(pg_url: str) -> None:
    _check(_race(pg_url))


def test_sequences_restart_each_local_day(tmp_path: Path) -> None:
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'd.db'}"))
    migrate.upgrade(make_engine(f"sqlite:///{tmp_path / 'd.db'}"))
    with transaction(sessions) as session:
        assert queries.next_ticket_sequence(session, DAY) == 1
        assert queries.next_ticket_sequence(session, DAY) == 2
        assert queries.next_ticket_sequence(session, date(2026, 11, 24)) == 1
