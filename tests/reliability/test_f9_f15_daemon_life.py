"""F9 (a second daemon on the same SQLite file is refused; a restart after kill -9 works) and F15 (SIGTERM at a
random moment of a 200-mail backlog: exit 0 within 10 s, nothing lost)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.reliability.corpus import build_corpus
from tests.reliability.harness import FULL, DaemonProcess, progress, wait_drained, wait_until, write_desk
from tests.reliability.reconcile import reconcile

REFUSE_WITHIN = 2.0
STOP_WITHIN = 10.0
F15_MAILS, F15_STOPS = 200, (5 if FULL else 1)


def _lock_holder(db_url: str) -> str:
    path = Path(db_url.removeprefix("sqlite:///") + ".lock")
    return path.read_text().strip() if path.exists() else ""


@pytest.mark.reliability
def test_a_second_daemon_on_the_same_sqlite_file_is_refused_fast_and_a_restart_after_kill_9_works(
        tmp_path: Path, imap_account, smtp_sink_factory) -> None:  # noqa: ANN001
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port), idle=False)
    first = DaemonProcess(desk, tmp_path / "first.log")
    second = DaemonProcess(desk, tmp_path / "second.log")
    third = DaemonProcess(desk, tmp_path / "third.log")
    try:
        first.start()
        assert first.proc is not None
        assert wait_until(lambda: _lock_holder(desk.database_url) == f"pid {first.proc.pid}", 20), first.output()
        started = time.monotonic()
        second.start()
        code = second.wait_exit(10)
        refused_after = time.monotonic() - started
        lines = [line for line in second.output().splitlines() if line.strip() and not line.startswith("===")]
        print(f"F9 refused_after_s={refused_after:.2f} (target <= {REFUSE_WITHIN}) exit={code} output={lines}")
        assert code not in (None, 0), "the second daemon must not run"
        assert len(lines) == 1 and "another maildesk daemon" in lines[0], lines
        assert first.alive, "the first daemon must keep running"

        first.kill9()
        third.start()
        assert third.proc is not None
        assert wait_until(lambda: _lock_holder(desk.database_url) == f"pid {third.proc.pid}", 20), third.output()
        imap_account.append_many(build_corpus(9, 3).raws)
        assert wait_drained(desk.sessions(), 3, timeout=30, settle=0), progress(desk.sessions())
        third.sigterm()
        assert third.wait_exit(STOP_WITHIN) == 0
    finally:
        for daemon in (first, second, third):
            daemon.kill()


@pytest.mark.reliability
def test_sigterm_at_a_random_moment_of_a_backlog_stops_within_10_s_with_exit_0_and_loses_nothing(
        tmp_path: Path, imap_account, smtp_sink_factory, record_line) -> None:  # noqa: ANN001
    rng = random.Random(15)
    corpus = build_corpus(15, F15_MAILS)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port), batch_size=50)
    imap_account.append_many(corpus.raws)
    sessions = desk.sessions()
    daemon = DaemonProcess(desk, tmp_path / "daemon.log")
    stops: list[float] = []
    try:
        for _ in range(F15_STOPS):
            daemon.start()
            time.sleep(rng.uniform(1.5, 4.0))
            if progress(sessions).drained(F15_MAILS):
                break
            asked = time.monotonic()
            daemon.sigterm()
            code = daemon.wait_exit(STOP_WITHIN + 5)
            stops.append(time.monotonic() - asked)
            assert code == 0, f"exit {code} after SIGTERM\n{daemon.output()[-3000:]}"
        daemon.start()
        assert wait_drained(sessions, F15_MAILS, timeout=90), f"backlog not drained: {progress(sessions)}"
        daemon.sigterm()
        assert daemon.wait_exit(STOP_WITHIN + 5) == 0
    finally:
        daemon.kill()
    result = reconcile("F15", corpus, sessions, sink.log_path, logs=daemon.output())
    record_line(result)
    print(f"F15 stops_s={[round(s, 1) for s in stops]} (target <= {STOP_WITHIN})")
    result.check()
    assert stops, "no SIGTERM landed before the backlog was done"
