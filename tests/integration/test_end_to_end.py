"""Issue 2 acceptance: a real mail becomes a ticket, is acknowledged once, and its reply threads back.

Real Dovecot (IMAP on loopback), real aiosmtpd sink, SQLite; the daemon's own parts, no mocks.
"""

from __future__ import annotations

import threading
import time
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from maildesk.cli import load_settings
from maildesk.daemon import Daemon, build_desk
from maildesk.store.models import Message, Outbox, Ticket

from .desk_helpers import acks as acks_of
from .desk_helpers import count, request_mail, wait_acks, write_config


@pytest.fixture
def desk_config(tmp_path: Path, imap_account, smtp_sink, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: ANN001
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    return write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                        imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)


def _cycle(desk) -> None:  # noqa: ANN001
    """One full turn of the daemon's jobs, in order, without the scheduler."""
    for poller in desk.pollers:
        report = poller.poll_once()
        assert report.error is None, report.error
    desk.runner.process_pending()
    desk.sender.send_due()


def _subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


def test_new_mail_makes_one_ticket_and_one_ack_threaded_under_it(desk_config, imap_account, smtp_sink) -> None:  # noqa: ANN001
    settings, base = load_settings(str(desk_config))
    desk = build_desk(settings, base)
    raw, mid = request_mail("zhang.san@corp.test", "打印机无法打印", "财务部三楼的打印机无法打印，急用。",
                            name="张三")
    imap_account.append(raw)

    _cycle(desk)

    assert count(desk.sessions, Ticket) == 1
    acks = wait_acks(smtp_sink, 1, timeout=10)
    assert len(acks) == 1
    with desk.sessions() as session:
        ticket = session.query(Ticket).one()
    ack = message_from_bytes(acks[0].raw)
    assert f"【技术支持】{ticket.number}" in _subject(acks[0].raw)
    assert "打印机无法打印" in _subject(acks[0].raw)
    assert ack["In-Reply-To"] == f"<{mid}>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert acks[0].rcpt_tos == ("zhang.san@corp.test",)
    body = ack.get_body(("plain",)) if hasattr(ack, "get_body") else None  # compat32 has no get_body
    text = (body or next(p for p in ack.walk() if p.get_content_type() == "text/plain")).get_payload(decode=True)
    assert ticket.number in text.decode("utf-8")

    # The mail is done on the server: moved out of INBOX.
    assert imap_account.list_uids("INBOX") == []

    # A reply threads back: same ticket, no new ticket, no new acknowledgment.
    reply, _ = request_mail("zhang.san@corp.test", f"回复: 【技术支持】{ticket.number} 打印机无法打印",
                            "补充：打印机型号 HP M404dn，报错 49.4C02。", name="张三")
    imap_account.append(reply)
    _cycle(desk)
    time.sleep(0.3)  # give a (wrong) second ack the chance to arrive before counting
    assert count(desk.sessions, Ticket) == 1
    assert count(desk.sessions, Message) == 2
    assert count(desk.sessions, Outbox, Outbox.kind == "ack") == 1
    assert len(acks_of(smtp_sink)) == 1


def test_reply_threads_by_in_reply_to_without_the_tag(desk_config, imap_account, smtp_sink) -> None:  # noqa: ANN001
    settings, base = load_settings(str(desk_config))
    desk = build_desk(settings, base)
    raw, _ = request_mail("li.si@corp.test", "VPN keeps dropping", "Since this morning the VPN drops every 5 min.")
    imap_account.append(raw)
    _cycle(desk)
    ack = wait_acks(smtp_sink, 1)[0]
    ack_id = message_from_bytes(ack.raw)["Message-ID"].strip("<>")
    reply, _ = request_mail("li.si@corp.test", "Re: VPN keeps dropping", "It happened again at 10:02.",
                            in_reply_to=ack_id)
    imap_account.append(reply)
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 1
    assert count(desk.sessions, Message, Message.kind == "reply") == 1


def test_the_same_mail_seen_twice_is_one_message(desk_config, imap_account, smtp_sink) -> None:  # noqa: ANN001
    settings, base = load_settings(str(desk_config))
    desk = build_desk(settings, base)
    raw, _ = request_mail("wang.wu@corp.test", "无法登录 OA", "提示密码错误，账号被锁定。")
    imap_account.append(raw)
    imap_account.append(raw)
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 1
    assert count(desk.sessions, Message) == 1
    assert len(wait_acks(smtp_sink, 1)) == 1


def test_running_daemon_answers_a_new_mail_seen_by_idle(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    """The poll interval is 10 minutes: only IDLE can explain an answer within seconds."""
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_host=imap_account.host, imap_port=imap_account.port,
                          imap_user=imap_account.user, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port,
                          poll_interval="600s")
    settings, base = load_settings(str(config))
    desk = build_desk(settings, base)
    daemon = Daemon(desk)
    daemon.start()
    try:
        time.sleep(1.5)  # let the first poll and the IDLE connection settle
        raw, mid = request_mail("zhao.liu@corp.test", "ERP 报错 无法保存凭证", "销售部全员无法保存凭证，报错 ORA-01653。")
        imap_account.append(raw)
        ack = wait_acks(smtp_sink, 1, timeout=30)[0]  # long before the next poll would run
        assert message_from_bytes(ack.raw)["In-Reply-To"] == f"<{mid}>"
    finally:
        daemon.shutdown()
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("idle-"))
