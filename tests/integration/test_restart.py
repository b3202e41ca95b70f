"""Issue 2 acceptance: stop the daemon in the middle of a 50-mail backlog, start it again, lose and double nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from email import message_from_bytes
from pathlib import Path

from sqlalchemy import func, select

from maildesk.store.models import Message, Outbox, RawMail, Ticket
from maildesk.store.session import make_engine, make_session_factory

from .desk_helpers import acks as acks_of
from .desk_helpers import request_mail, write_config

NEW, REPLIES = 40, 10


def _backlog() -> list[bytes]:
    mails, originals = [], []
    for i in range(NEW):
        raw, mid = request_mail(f"user{i:02d}@corp.test", f"问题 {i:02d}: 打印机无法打印",
                                f"第 {i} 个请求：三楼打印机卡纸，无法打印。")
        mails.append(raw)
        originals.append((f"user{i:02d}@corp.test", mid))
    for i in range(REPLIES):
        sender, mid = originals[i * 3]
        raw, _ = request_mail(sender, f"Re: 问题 {i * 3:02d}: 打印机无法打印", "补充：型号 HP M404dn。",
                              in_reply_to=mid)
        mails.append(raw)
    return mails


def _daemon(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "maildesk", "run", "-c", str(config)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("daemon did not stop in time:\n" + out.decode(errors="replace")[-3000:]) from None
    return proc.returncode, out.decode(errors="replace")


def _count(sessions, stmt) -> int:  # noqa: ANN001
    with sessions() as session:
        return int(session.scalar(stmt) or 0)


def test_sigterm_mid_backlog_then_restart_loses_and_doubles_nothing(tmp_path, imap_account, smtp_sink) -> None:  # noqa: ANN001
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port,
                          batch_size=10)
    imap_account.append_many(_backlog())
    env = {**os.environ, "MAILDESK_TEST_IMAP_PASSWORD": imap_account.password}
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'var' / 'maildesk.db'}"))

    # SIGTERM arrives while the 20th mail is being applied: that mail is finished, then the daemon stops.
    first = _daemon(config, {**env, "MAILDESK_SIGTERMPOINT": "mid_apply:20"})
    code, output = _wait_exit(first, 60)
    assert code == 0, output[-3000:]
    assert _count(sessions, select(func.count(Message.id))) == 20, output[-3000:]

    second = _daemon(config, env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = _count(sessions, select(func.count(Message.id)))
            if done == NEW + REPLIES and len(acks_of(smtp_sink)) >= NEW:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # a duplicate would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        code, output = _wait_exit(second, 30)
    assert code == 0, output[-3000:]

    assert _count(sessions, select(func.count(Message.id))) == NEW + REPLIES
    assert _count(sessions, select(func.count(Message.id)).where(Message.ticket_id.is_(None))) == 0
    assert _count(sessions, select(func.count(func.distinct(Message.raw_mail_id)))) == NEW + REPLIES
    assert _count(sessions, select(func.count(RawMail.id)).where(RawMail.status != "done")) == 0
    assert _count(sessions, select(func.count(Ticket.id))) == NEW
    assert _count(sessions, select(func.count(Outbox.id)).where(Outbox.status == "sent", Outbox.kind == "ack")) == NEW
    acks = acks_of(smtp_sink)
    ids = [message_from_bytes(m.raw)["Message-ID"] for m in acks]
    assert len(acks) == NEW and len(set(ids)) == NEW, "one acknowledgment per new ticket, none twice"
    assert sorted(r for m in acks for r in m.rcpt_tos) == sorted(f"user{i:02d}@corp.test" for i in range(NEW))
    assert imap_account.list_uids("INBOX") == []
