"""F3: the IMAP connection is cut in the middle of a FETCH, reset, or stalled (TCP fault proxy before Dovecot).

In-process desk with a ``FrozenClock`` (the reconnect backoff is moved, never slept) and a real 3 s IMAP
timeout.  Each round delivers 10 fresh corpus mails, applies one fault, polls, then clears the fault and polls
again: nothing partial may be stored as complete (size and SHA-256 checked by the reconciler), nothing lost or
doubled.  Short scale: 5 cuts, 1 reset, 1 stall; full: 50 cuts, 10 resets, 10 stalls.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maildesk.cli import load_settings
from maildesk.clock import FrozenClock
from maildesk.daemon import Desk, build_desk
from tests.reliability.corpus import build_corpus
from tests.reliability.harness import FULL, PASSWORD_ENV, write_desk
from tests.reliability.reconcile import reconcile

SEED = 3
CUTS, RESETS, STALLS = (50, 10, 10) if FULL else (5, 1, 1)
PER_ROUND = 10
IMAP_TIMEOUT = 3.0
SLACK = 1.0  # scheduling and the socket's own granularity


def _desk(tmp_path: Path, account, sink, proxy, monkeypatch) -> tuple[Desk, FrozenClock]:  # noqa: ANN001
    clock = FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    config = write_desk(tmp_path, imap=(proxy.host, proxy.port, account.user, account.password),
                        smtp=(sink.host, sink.port), imap_timeout=f"{IMAP_TIMEOUT:g}s", idle=False)
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    settings, base = load_settings(str(config.path))
    return build_desk(settings, base, clock=clock), clock


def _recover(desk: Desk, clock: FrozenClock) -> None:
    """Past any backoff, one clean poll, then process and send everything."""
    clock.advance(timedelta(minutes=2))
    report = desk.pollers[0].poll_once()
    assert report.error is None, report.error
    desk.runner.process_pending()
    desk.sender.send_due()


def _stall_mid_session(desk: Desk, proxy) -> float:  # noqa: ANN001
    """Stall the proxy once the poll is under way; seconds from the stall until the poll gave up."""
    proxy.latency(40)  # slow enough that the stall lands after login, in SELECT/SEARCH/FETCH
    stalled_at: list[float] = []

    def stall() -> None:
        stalled_at.append(time.monotonic())
        proxy.stall()

    timer = threading.Timer(0.3, stall)
    timer.start()
    report = desk.pollers[0].poll_once()
    ended = time.monotonic()
    timer.join()
    assert report.error is not None, "the stall must surface as a fetch error"
    return ended - stalled_at[0]


@pytest.mark.reliability
def test_imap_cuts_resets_and_stalls_mid_fetch_store_nothing_partial_and_lose_nothing(
        tmp_path: Path, imap_account, smtp_sink_factory, tcp_proxy, monkeypatch, record_line) -> None:  # noqa: ANN001
    rng = random.Random(SEED)
    rounds = ["cut"] * CUTS + ["reset"] * RESETS + ["stall"] * STALLS
    rng.shuffle(rounds)
    corpus = build_corpus(SEED, PER_ROUND * len(rounds))
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    proxy = tcp_proxy(imap_account.host, imap_account.port)
    desk, clock = _desk(tmp_path, imap_account, sink, proxy, monkeypatch)
    stalls: list[float] = []
    for number, fault in enumerate(rounds):
        chunk = corpus.raws[number * PER_ROUND:(number + 1) * PER_ROUND]
        imap_account.append_many(chunk)
        if fault == "cut":
            proxy.limit_data(rng.randint(0, sum(len(raw) for raw in chunk) + 2000), reset=rng.random() < 0.5)
            desk.pollers[0].poll_once()
        elif fault == "reset":
            proxy.reset_peer()
            assert desk.pollers[0].poll_once().error is not None
        else:
            stalls.append(_stall_mid_session(desk, proxy))
        proxy.clear()
        _recover(desk, clock)
    result = reconcile("F3", corpus, desk.sessions, sink.log_path)
    record_line(result)
    print(f"F3 rounds={len(rounds)} stall_detected_max_s={max(stalls, default=0):.1f}")
    result.check()
    assert imap_account.list_uids("INBOX") == []
    assert max(stalls, default=0.0) <= IMAP_TIMEOUT + SLACK, f"stalls noticed after {stalls} s"


def _tried(report) -> bool:  # noqa: ANN001
    """Whether the poll really tried the server (and failed), rather than waiting out its backoff."""
    said = f"{report.error or ''} {getattr(report, 'skipped', None) or ''}"
    if "waiting before reconnecting" in said:
        return False
    assert report.error is not None, "the server is down; a poll that tried must report an error"
    return True


@pytest.mark.reliability
def test_reconnect_backs_off_from_1_to_60_seconds_and_never_gives_up(
        tmp_path: Path, imap_account, smtp_sink_factory, tcp_proxy, monkeypatch) -> None:  # noqa: ANN001
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    proxy = tcp_proxy(imap_account.host, imap_account.port)
    desk, clock = _desk(tmp_path, imap_account, sink, proxy, monkeypatch)
    poller = desk.pollers[0]
    proxy.reset_peer()
    waits = []
    for expected in (1, 2, 4, 8, 16, 32, 60, 60, 60, 60):
        assert _tried(poller.poll_once()), f"no reconnect attempt after {waits}"
        assert not _tried(poller.poll_once())
        clock.advance(timedelta(seconds=expected) - timedelta(milliseconds=1))
        assert not _tried(poller.poll_once()), f"retried before {expected} s"
        clock.advance(timedelta(milliseconds=1))
        waits.append(expected)
    proxy.clear()
    imap_account.append_many(build_corpus(SEED, 3).raws)
    assert poller.poll_once().error is None, "the mailbox must work again after the outage"
    print(f"F3 backoff_s={waits}")
