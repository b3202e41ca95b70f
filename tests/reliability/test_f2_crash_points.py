"""F2: the daemon dies (``os._exit(137)``, like kill -9) at each named crash point, then starts again.

Short scale: every point of ``maildesk.faults.POINTS`` at its 1st pass; full scale: at its 1st, 7th and 23rd
pass.  A 50-mail backlog; for the 7th and 23rd pass the mails arrive two at a time (every 0.4 s) so that the
per-poll and per-send-batch points are passed often enough.  A point that never fires fails the run (the
daemon must exit 137); a point the product does not call at all is reported as not wired.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from maildesk.faults import POINTS
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

MAILS = 50
HITS = (1, 7, 23) if FULL else (1,)
SHORT_LEASE = "5"  # see launch.py; the product's own lease is tested below
CRASH_EXIT = 137


def wired_points() -> set[str]:
    """The points some product module actually calls ``crashpoint(...)`` for."""
    found: set[str] = set()
    for path in (ROOT / "maildesk").rglob("*.py"):
        found.update(re.findall(r"""crashpoint\(\s*["']([a-z0-9_]+)["']\s*\)""", path.read_text(encoding="utf-8")))
    return found


def _deliver(account, raws: list[bytes], trickle: bool, stop: threading.Event) -> None:  # noqa: ANN001
    if not trickle:
        account.append_many(raws)
        return
    for start in range(0, len(raws), 2):
        if stop.is_set():
            return
        account.append_many(raws[start:start + 2])
        time.sleep(0.4)


RULES_CHECK_S = 0.5  # the daemon looks at its rule files this often in F2 (launch.py; the product: 5 s)


def _edit_rules_repeatedly(rules: Path, daemon: DaemonProcess, stop: threading.Event) -> None:
    """Save the rules file with a new comment every 0.6 s until the daemon is gone (each save is a reload)."""
    def edit() -> None:
        for n in range(400):
            if stop.is_set() or not daemon.alive:
                return
            rules.write_text(rules.read_text(encoding="utf-8") + f"\n# edited {n}\n", encoding="utf-8")
            time.sleep(RULES_CHECK_S + 0.1)

    threading.Thread(target=edit, daemon=True).start()


def _params() -> list[object]:
    return [pytest.param(point, n, id=f"{point}-{n}") for point in POINTS for n in HITS]


@pytest.mark.reliability
@pytest.mark.parametrize(("point", "hit"), _params())
def test_a_crash_at_each_named_point_loses_nothing_and_doubles_only_inside_the_smtp_window(
        point: str, hit: int, tmp_path: Path, imap_account, smtp_sink_factory, record_line) -> None:  # noqa: ANN001
    if point not in wired_points():
        pytest.xfail(f"product gap: crashpoint({point!r}) is listed in maildesk.faults.POINTS but no product "
                     "code calls it, so this fault cannot be injected")
    seed = 100 + POINTS.index(point) * 10 + hit
    corpus = build_corpus(seed, MAILS)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port), batch_size=2, idle=False)
    sessions = desk.sessions()
    daemon = DaemonProcess(desk, tmp_path / "daemon.log", extra_env={"MAILDESK_TEST_OUTBOX_LEASE_S": SHORT_LEASE,
                                                                     "MAILDESK_TEST_RULES_CHECK_S": str(RULES_CHECK_S),
                                                                     # one claim per row: the 23rd pass comes
                                                                     "MAILDESK_TEST_OUTBOX_BATCH": "1"})
    stop = threading.Event()
    feeder = threading.Thread(target=_deliver, args=(imap_account, corpus.raws, hit > 1, stop), daemon=True)
    try:
        if hit == 1:
            _deliver(imap_account, corpus.raws, False, stop)
        daemon.start(MAILDESK_CRASHPOINT=f"{point}:{hit}")
        if hit > 1:
            feeder.start()
        if point == "rules_reloading":  # the point sits in a reload: an admin edits the rules meanwhile
            _edit_rules_repeatedly(desk.path.parent / "rules.toml", daemon, stop)
        # a reload happens every few seconds whatever the backlog does: wait for the crash itself there
        reload_point = point == "rules_reloading"
        crashed = wait_until(lambda: not daemon.alive or (not reload_point and progress(sessions).drained(MAILS)),
                             timeout=90)
        code = daemon.wait_exit(0.5)
        assert crashed and code == CRASH_EXIT, (
            f"crash point {point}:{hit} never fired (exit {code}, {progress(sessions)})\n{daemon.output()[-2000:]}")
        daemon.note_crash()
        if feeder.is_alive():
            feeder.join(30)
        time.sleep(0.5)
        daemon.start()
        assert wait_drained(sessions, MAILS, timeout=60), f"backlog not drained: {progress(sessions)}"
        daemon.sigterm()
        assert daemon.wait_exit(15) == 0, daemon.output()[-3000:]
    finally:
        stop.set()
        daemon.kill()
    result = reconcile(f"F2:{point}:{hit}", corpus, sessions, sink.log_path, kill_times=daemon.kill_times,
                       logs=daemon.output())
    record_line(result)
    result.check()
    if point == "smtp_250_not_marked":
        assert result.counts["dup_acks"] == 1, "a crash right after one 250 must resend exactly that one mail"
    if point == "marked_sent":
        assert result.counts["dup_acks"] == 0, "a crash right after marking a mail sent must resend nothing"


@pytest.mark.reliability
def test_outbox_rows_claimed_by_a_killed_daemon_are_sent_soon_after_restart(
        tmp_path: Path, imap_account, smtp_sink_factory) -> None:  # noqa: ANN001
    corpus = build_corpus(7, 20)
    sink = smtp_sink_factory(log_path=tmp_path / "sink.jsonl")
    desk = write_desk(tmp_path, imap=(imap_account.host, imap_account.port, imap_account.user,
                                      imap_account.password), smtp=(sink.host, sink.port))
    imap_account.append_many(corpus.raws)
    daemon = DaemonProcess(desk, tmp_path / "daemon.log")
    try:
        daemon.start(MAILDESK_CRASHPOINT="outbox_claimed:1")
        assert daemon.wait_exit(60) == CRASH_EXIT, daemon.output()[-2000:]
        daemon.start()
        due = sum(1 for m in corpus.mails if m.ack_due)
        assert wait_drained(desk.sessions(), len(corpus.mails), timeout=15, settle=0), \
            f"acks still unsent 15 s after the restart: {progress(desk.sessions())}"
        assert len({m.message_id for m in sink.received}) == due
    finally:
        daemon.kill()
