"""F6 (SMTP 4xx, a hanging ".", the server down, recovery) and F7 (SMTP 5xx) against the scripted sink.

In-process desks with a ``FrozenClock``: the retry schedule is moved, never slept; only the SMTP timeout
under test (2 s) runs in real time.  Acks come from real corpus mails fetched from Dovecot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maildesk.cli import load_settings
from maildesk.clock import FrozenClock
from maildesk.daemon import Desk, build_desk
from maildesk.store.models import Outbox
from tests.reliability.corpus import NEW, build_corpus
from tests.reliability.harness import FULL, PASSWORD_ENV, write_desk
from tests.reliability.reconcile import reconcile

ACKS = 100 if FULL else 40
SMTP_TIMEOUT = 2.0


def _desk(tmp_path: Path, account, sink, monkeypatch, mails: list[bytes]) -> tuple[Desk, FrozenClock]:  # noqa: ANN001
    """A desk that has fetched and processed ``mails``; their acks wait in the outbox."""
    clock = FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    config = write_desk(tmp_path, imap=(account.host, account.port, account.user, account.password),
                        smtp=(sink.host, sink.port), smtp_timeout=f"{SMTP_TIMEOUT:g}s", idle=False)
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    settings, base = load_settings(str(config.path))
    desk = build_desk(settings, base, clock=clock)
    account.append_many(mails)
    assert desk.pollers[0].poll_once().error is None
    desk.runner.process_pending()
    return desk, clock


def _rows(desk: Desk) -> list[Outbox]:
    with desk.sessions() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "ack").order_by(Outbox.id)))


def _next_retry_max(desk: Desk, clock: FrozenClock) -> timedelta:
    waiting = [r.next_attempt_at - clock.now() for r in _rows(desk) if r.status == "queued"]
    return max(waiting, default=timedelta(0))


def _send_for(desk: Desk, clock: FrozenClock, minutes: int) -> None:
    """Run the sender once a minute for ``minutes`` minutes of injected time."""
    for _ in range(minutes):
        desk.sender.send_due()
        clock.advance(timedelta(minutes=1))


@pytest.mark.reliability
def test_smtp_4xx_a_hanging_dot_and_an_outage_end_with_every_ack_delivered_once_or_inside_the_window(
        tmp_path: Path, imap_account, smtp_sink_factory, monkeypatch, record_line) -> None:  # noqa: ANN001
    corpus = build_corpus(6, ACKS * 100 // 60)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl", hang_seconds=SMTP_TIMEOUT + 1.5)
    desk, clock = _desk(tmp_path, imap_account, sink, monkeypatch, corpus.raws)

    sink.script("CONNECT", ["421 4.3.2 service not available"])
    desk.sender.send_due()
    assert sink.received == []
    assert timedelta(0) < _next_retry_max(desk, clock) <= timedelta(minutes=1), "first retry within 1 min"

    clock.advance(timedelta(minutes=1))
    sink.script("RCPT", ["451 4.3.0 later", "452 4.2.2 full", "451 4.3.0 later"])
    sink.script("DATA", ["452 4.3.1 no space", "451 4.3.0 later"])
    sink.script(".", [None, None, "hang"])  # the third mail: kept by the server, the answer comes too late
    hangs = 1
    desk.sender.send_due()

    sink.down()
    for _ in range(30):  # 30 minutes of outage, the sender trying whenever a row is due
        clock.advance(timedelta(minutes=1))
        desk.sender.send_due()
    assert _next_retry_max(desk, clock) <= timedelta(minutes=60), "retries are capped at 60 min"
    sink.up()
    _send_for(desk, clock, 61)

    result = reconcile("F6", corpus, desk.sessions, sink.log_path, extra_window_events=hangs)
    record_line(result)
    result.check()
    assert all(r.status == "sent" for r in _rows(desk))


@pytest.mark.reliability
def test_acks_queued_during_an_outage_are_delivered_within_2_minutes_of_recovery(
        tmp_path: Path, imap_account, smtp_sink_factory, monkeypatch) -> None:  # noqa: ANN001
    corpus = build_corpus(61, 10)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk, clock = _desk(tmp_path, imap_account, sink, monkeypatch, corpus.raws)
    sink.down()
    _send_for(desk, clock, 35)  # 30 min would end just before the 31st-minute retry of the 1-2-4-8-16 schedule
    sink.up()
    _send_for(desk, clock, 2)
    assert [r.status for r in _rows(desk)] == ["sent"] * corpus.count(NEW)


@pytest.mark.reliability
def test_an_ack_that_cannot_be_delivered_for_a_day_becomes_a_dead_letter_with_one_admin_alert(
        tmp_path: Path, imap_account, smtp_sink_factory, monkeypatch) -> None:  # noqa: ANN001
    corpus = build_corpus(62, 1)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk, clock = _desk(tmp_path, imap_account, sink, monkeypatch, corpus.raws)
    sink.down()
    for _ in range(23):
        _send_for(desk, clock, 60)
        assert _rows(desk)[0].status != "dead", f"given up after {_rows(desk)[0].attempts} attempts, before 1 day"
    _send_for(desk, clock, 120)
    assert _rows(desk)[0].status == "dead"
    with desk.sessions() as session:
        alerts = session.scalar(select(func.count(Outbox.id)).where(Outbox.kind.like("%alert%")))
    assert alerts == 1


@pytest.mark.reliability
def test_smtp_5xx_dead_letters_after_exactly_one_attempt_and_leaves_the_others_alone(
        tmp_path: Path, imap_account, smtp_sink_factory, monkeypatch, record_line) -> None:  # noqa: ANN001
    corpus = build_corpus(7, 100 * 100 // 60 if FULL else 40 * 100 // 60)
    requesters = [m.sender for m in corpus.mails if m.outcome == NEW]
    refused = requesters[3:8]  # 550 on RCPT
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl",
                             rcpt_replies={r: "550 5.1.1 user unknown" for r in refused})
    desk, clock = _desk(tmp_path, imap_account, sink, monkeypatch, corpus.raws)
    sink.script("DATA", [None] * 10 + ["554 5.7.1 rejected by policy"])  # the 11th accepted envelope
    _send_for(desk, clock, 3)
    rows = _rows(desk)
    dead = [r for r in rows if r.status == "dead"]
    assert sorted(r.recipients[0] for r in dead if r.recipients[0] in refused) == sorted(refused)
    assert len(dead) == len(refused) + 1, [(r.recipients, r.last_error) for r in dead]
    assert all(r.attempts == 1 for r in dead), "a permanent failure is never retried"
    _send_for(desk, clock, 120)
    assert [r.attempts for r in _rows(desk) if r.status == "dead"] == [1] * len(dead)
    sent = [r for r in _rows(desk) if r.status == "sent"]
    assert len(sent) == len(rows) - len(dead)
    acks_received = [m for m in sink.received if b"X-Maildesk-Kind: ack" in m.raw]
    assert len(acks_received) == len(sent), "each other recipient got exactly one mail"
    result = reconcile("F7", corpus, desk.sessions, sink.log_path)
    record_line(result)
    assert result.counts["lost"] == result.counts["dup_acks"] == result.counts["dup_tickets"] == 0


@pytest.mark.reliability
def test_an_address_refused_with_550_gets_no_further_automatic_mail(
        tmp_path: Path, imap_account, smtp_sink_factory, monkeypatch) -> None:  # noqa: ANN001
    corpus = build_corpus(71, 1)
    address = corpus.mails[0].sender
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl", rcpt_replies={address: "550 5.1.1 user unknown"})
    desk, clock = _desk(tmp_path, imap_account, sink, monkeypatch, corpus.raws)
    _send_for(desk, clock, 2)
    again = build_corpus(72, 1).mails[0].raw.replace(build_corpus(72, 1).mails[0].sender.encode(), address.encode())
    imap_account.append(again)
    clock.advance(timedelta(days=1))
    assert desk.pollers[0].poll_once().error is None
    desk.runner.process_pending()
    connections = sink.connections
    _send_for(desk, clock, 2)
    assert sink.connections == connections, "no SMTP attempt to an address that answered 550"
