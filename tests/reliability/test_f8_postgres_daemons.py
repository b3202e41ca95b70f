"""F8: three ``maildesk run`` daemons share one PostgreSQL database and one mailbox; one is killed mid-way.

Pass: the pass criteria; the work shared (each survivor decided ≥ 20 % of the mails, counted from the
``maildesk.decision`` lines of its log); the mailbox taken over after the kill (mail delivered after it is
stored within 30 s).  Short scale: 150 mails; full: 1,000.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.corpus import build_corpus
from tests.reliability.harness import (
    FULL,
    ROOT,
    DaemonProcess,
    progress,
    wait_drained,
    wait_until,
    write_desk,
)
from tests.reliability.reconcile import reconcile

SEED = 8
MAILS = 1000 if FULL else 150
LATE = 5  # mails delivered after the kill
SHORT_LEASE = "5"  # see launch.py: the product lease is tested in test_f2_crash_points.py
TAKEOVER_WITHIN = 30.0
MIN_SHARE = 0.20
DECISION = re.compile(r"maildesk\.decision: raw=\d+ ")


@pytest.mark.reliability
@pytest.mark.postgres
def test_three_daemons_on_postgresql_share_the_work_and_survive_a_kill_9_without_loss_or_doubles(
        tmp_path: Path, pg_url: str, imap_account, smtp_sink_factory, record_line) -> None:  # noqa: ANN001
    rng = random.Random(SEED)
    corpus = build_corpus(SEED, MAILS + LATE)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port), database_url=pg_url,
                      batch_size=25)
    imap_account.append_many(corpus.raws[:MAILS])
    upgrade = subprocess.run([sys.executable, "-m", "maildesk", "db", "upgrade", "-c", str(desk.path)], env=desk.env,
                             cwd=ROOT, capture_output=True, timeout=60)  # see the start-up race test below
    assert upgrade.returncode == 0, upgrade.stderr.decode()[-2000:]
    sessions = desk.sessions()
    daemons = [DaemonProcess(desk, tmp_path / f"daemon-{i}.log", extra_env={"MAILDESK_TEST_OUTBOX_LEASE_S": SHORT_LEASE})
               for i in range(3)]
    victim = daemons[rng.randrange(3)]
    try:
        for daemon in daemons:
            daemon.start()
        time.sleep(rng.uniform(3.0, 6.0))
        victim.kill9()
        killed_at = time.monotonic()
        imap_account.append_many(corpus.raws[MAILS:])
        took_over = wait_until(lambda: progress(sessions).raw >= MAILS + LATE, TAKEOVER_WITHIN + 30)
        takeover_s = time.monotonic() - killed_at
        assert took_over, f"mail delivered after the kill was not stored: {progress(sessions)}"
        assert wait_drained(sessions, MAILS + LATE, timeout=180), f"backlog not drained: {progress(sessions)}"
        for daemon in daemons:
            daemon.sigterm()
        codes = [daemon.wait_exit(15) for daemon in daemons if daemon is not victim]
    finally:
        for daemon in daemons:
            daemon.kill()
    shares = [len(DECISION.findall(daemon.output())) for daemon in daemons]
    logs = "\n".join(daemon.output() for daemon in daemons)
    result = reconcile("F8", corpus, sessions, sink.log_path, kill_times=victim.kill_times, logs=logs)
    record_line(result)
    print(f"F8 decisions_per_daemon={shares} victim={daemons.index(victim)} takeover_s={takeover_s:.1f}")
    result.check()
    assert codes == [0, 0]
    assert takeover_s <= TAKEOVER_WITHIN
    total = sum(shares)
    survivors = [n for daemon, n in zip(daemons, shares, strict=True) if daemon is not victim]
    assert all(n >= MIN_SHARE * total for n in survivors), f"work not shared: {shares} (victim {daemons.index(victim)})"


@pytest.mark.reliability
@pytest.mark.postgres
def test_three_daemons_started_at_once_on_an_empty_postgresql_database_all_come_up(
        tmp_path: Path, pg_url: str, imap_account, smtp_sink_factory) -> None:  # noqa: ANN001
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port), database_url=pg_url)
    daemons = [DaemonProcess(desk, tmp_path / f"daemon-{i}.log") for i in range(3)]
    try:
        for daemon in daemons:
            daemon.start()
        time.sleep(8)
        assert [daemon.alive for daemon in daemons] == [True] * 3, "\n".join(d.output()[-1500:] for d in daemons)
    finally:
        for daemon in daemons:
            daemon.kill()
