"""LD1: a backlog with 1 % poison and 5 % auto-replies drained by the real daemon on SQLite.

Full scale (``MAILDESK_RELIABILITY_FULL=1``): 10,000 mails; short (``make test``): 300.  The corpus is the usual
mix (60 % new, 25 % replies, 5 % out-of-office replies, 5 % DSNs, 5 % hostile) with 1 % of the new requests made
poison: ``launch.py`` makes the parser raise on their Message-IDs (as F12 does in process) and shortens the
waits between attempts to 1 s and 2 s, so they are quarantined after 3 attempts within the drain.

Checked: the pass criteria (``reconcile``), exactly the poison quarantined, each after 3 attempts with its
traceback.  Printed, not asserted (2 shared cores, and other work on them): the daemon's peak RSS (VmHWM) after
the first 2,000 mails (short: the first fifth) and at the end, and the drain rate.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maildesk.store.models import RawMail
from tests.reliability.corpus import AUTO_REPLY, POISON, build_corpus, with_poison
from tests.reliability.harness import FULL, DaemonProcess, memory_kib, progress, wait_until, write_desk
from tests.reliability.reconcile import reconcile

SEED = 101
MAILS = 10_000 if FULL else 300
CHECKPOINT = 2_000 if FULL else MAILS // 5
DRAIN_TIMEOUT = 3000 if FULL else 240


def _processed(sessions) -> int:  # noqa: ANN001
    try:
        with sessions() as session:
            return int(session.scalar(select(func.count(RawMail.id)).where(RawMail.status != "pending")) or 0)
    except Exception:  # noqa: BLE001 - the daemon holds the write lock now and then
        return 0


@pytest.mark.reliability
def test_a_backlog_with_poison_and_auto_replies_drains_with_nothing_lost_and_flat_memory(
        tmp_path: Path, imap_account, smtp_sink_factory, record_line) -> None:  # noqa: ANN001
    corpus = with_poison(build_corpus(SEED, MAILS), 0.01)
    corpus.write_manifest(tmp_path / "manifest.json")
    poison = frozenset(m.message_id for m in corpus.mails if m.outcome == POISON)
    (tmp_path / "poison.txt").write_text("\n".join(sorted(poison)) + "\n", encoding="utf-8")
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port))
    imap_account.append_many(corpus.raws)
    sessions = desk.sessions()
    daemon = DaemonProcess(desk, tmp_path / "daemon.log", extra_env={
        "MAILDESK_TEST_POISON_IDS": str(tmp_path / "poison.txt"), "MAILDESK_TEST_RETRY_DELAYS_S": "1,2"})
    started = time.monotonic()
    try:
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        assert wait_until(lambda: _processed(sessions) >= CHECKPOINT, DRAIN_TIMEOUT, interval=1.0), \
            f"not {CHECKPOINT} mails processed: {progress(sessions)}"
        at_checkpoint, checkpoint_s = memory_kib(pid), time.monotonic() - started
        assert wait_until(lambda: progress(sessions).drained(MAILS), DRAIN_TIMEOUT, interval=1.0), \
            f"backlog not drained: {progress(sessions)}"
        at_end, drained_s = memory_kib(pid), time.monotonic() - started
        daemon.sigterm()
        assert daemon.wait_exit(30) == 0, daemon.output()[-3000:]
    finally:
        daemon.kill()
    result = reconcile("LD1", corpus, sessions, sink.log_path, logs=daemon.output(), not_innocent=poison)
    record_line(result)
    print(f"LD1 mails={MAILS} poison={len(poison)} auto_replies={corpus.count(AUTO_REPLY)} "
          f"drained_s={drained_s:.1f} rate_mails_per_s={MAILS / drained_s:.1f}")
    print(f"LD1 memory: VmHWM after {CHECKPOINT} mails ({checkpoint_s:.0f} s) = {at_checkpoint['VmHWM'] / 1024:.1f} MiB, "
          f"at the end = {at_end['VmHWM'] / 1024:.1f} MiB (VmRSS {at_end['VmRSS'] / 1024:.1f} MiB), "
          f"growth {100 * (at_end['VmHWM'] / at_checkpoint['VmHWM'] - 1):+.1f} % (bench target: peak <= 200 MB)")
    result.check(allow_quarantine=True)
    with sessions() as session:
        held = list(session.scalars(select(RawMail).where(RawMail.status == "quarantined")))
    assert {r.message_id for r in held} == poison, "exactly the poison mails are quarantined"
    assert all(r.attempts == 3 and "injected parser crash" in (r.reason or "") for r in held)
