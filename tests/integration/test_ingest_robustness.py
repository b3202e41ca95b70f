"""Issue 3 acceptance against real Dovecot and aiosmtpd: cuts, UIDVALIDITY, loops, outsiders, the MTA pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.cli import load_settings
from maildesk.clock import FrozenClock
from maildesk.daemon import build_desk
from maildesk.store.models import Event, Message, Participant, RawMail, Ticket

from .desk_helpers import ROOT, acks, count, kind_of, request_mail, wait_acks, write_config

LOOPS = ROOT / "tests" / "fixtures" / "mail" / "loops"


def _desk(tmp_path: Path, account, sink, monkeypatch, *, host=None, port=None, clock=None, **kw):  # noqa: ANN001, ANN202
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", account.password)
    config = write_config(tmp_path, imap_host=host or account.host, imap_port=port or account.port,
                          imap_user=account.user, smtp_host=sink.host, smtp_port=sink.port, **kw)
    settings, base = load_settings(str(config))
    return build_desk(settings, base, clock=clock), config


def _cycle(desk) -> list[str | None]:  # noqa: ANN001
    errors = [poller.poll_once().error for poller in desk.pollers]
    desk.runner.process_pending()
    desk.sender.send_due()
    return errors


def test_connection_cut_in_the_middle_of_a_fetch_loses_and_doubles_nothing(tmp_path, imap_account, smtp_sink,
                                                                          tcp_proxy, monkeypatch) -> None:  # noqa: ANN001
    proxy = tcp_proxy(imap_account.host, imap_account.port)
    clock = FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, host=proxy.host, port=proxy.port, clock=clock,
                    batch_size=50)
    mails = [request_mail(f"p{i}@corp.test", f"请求 {i}", "内容 " * 200)[0] for i in range(30)]
    imap_account.append_many(mails)
    total = sum(len(m) for m in mails)

    proxy.limit_data(total // 2)  # the bulk FETCH dies half-way through
    errors = _cycle(desk)
    assert errors[0] is not None
    assert count(desk.sessions, RawMail) == 0, "a cut FETCH must store nothing, not a partial batch"

    proxy.clear()
    clock.advance(timedelta(minutes=2))  # past the reconnect backoff
    assert _cycle(desk) == [None]
    assert count(desk.sessions, RawMail) == 30
    assert count(desk.sessions, Ticket) == 30
    assert count(desk.sessions, Message) == 30
    assert len(wait_acks(smtp_sink, 30)) == 30


def test_uidvalidity_reset_doubles_nothing(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, done_action="flag")
    mails = [request_mail(f"u{i}@corp.test", f"问题 {i}", "VPN 无法连接")[0] for i in range(10)]
    imap_account.append_many(mails)
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 10

    imap_account.recreate_folder("INBOX")  # a server migration: same mails, new UIDVALIDITY
    new = [request_mail(f"n{i}@corp.test", f"新问题 {i}", "打印机卡纸")[0] for i in range(2)]
    imap_account.append_many(mails + new)
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 12
    assert count(desk.sessions, Message) == 12
    assert count(desk.sessions, RawMail, RawMail.status == "duplicate") == 10
    assert count(desk.sessions, Event, Event.kind == "uidvalidity_changed") == 1
    assert len(wait_acks(smtp_sink, 12)) == 12


def test_bounces_and_out_of_office_replies_get_no_answer(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    automatic = sorted(LOOPS.glob("*.eml"))
    assert len(automatic) >= 4
    imap_account.append_many([path.read_bytes() for path in automatic])
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 0
    assert count(desk.sessions, RawMail, RawMail.status == "discarded") == len(automatic)
    assert count(desk.sessions, Event, Event.kind == "automatic_mail_discarded") == len(automatic)
    assert acks(smtp_sink) == []


def test_out_of_office_reply_to_a_ticket_is_recorded_without_an_answer(tmp_path, imap_account, smtp_sink,
                                                                      monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    raw, _ = request_mail("chen@corp.test", "邮箱满了", "收不到邮件")
    imap_account.append(raw)
    _cycle(desk)
    ack = wait_acks(smtp_sink, 1)[0]
    ack_id = message_from_bytes(ack.raw)["Message-ID"].strip("<>")
    oof, _ = request_mail("chen@corp.test", "自动回复: 【技术支持】TS 邮箱满了", "我正在休假，11月30日返回。",
                          in_reply_to=ack_id)
    imap_account.append(oof)
    _cycle(desk)
    assert count(desk.sessions, Message, Message.kind == "automatic") == 1
    assert len(acks(smtp_sink)) == 1


def test_two_autoresponders_stop_after_the_limit(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    """Two bots that answer every mail with a fresh subject and no auto headers (FreeScout #688)."""
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    bots = ["bot-a@vendor.test", "bot-b@vendor.test"]
    imap_account.append_many([request_mail(bot, "Hello", "first")[0] for bot in bots])
    answered = 0
    for round_number in range(20):
        _cycle(desk)
        fresh = acks(smtp_sink)[answered:]
        answered = len(acks(smtp_sink))
        if not fresh:
            break
        for ack in fresh:
            bot = ack.rcpt_tos[0]
            imap_account.append(request_mail(bot, f"Ticket received #{round_number}-{bot}", "Thanks for your mail!")[0])
    limit = desk.settings.ack_limit_per_hour
    per_bot = {bot: sum(1 for m in acks(smtp_sink) if bot in m.rcpt_tos) for bot in bots}
    assert per_bot == {bot: limit for bot in bots}
    assert count(desk.sessions, Event, Event.kind == "ack_skipped") == len(bots)


def test_guessed_ticket_number_from_an_outsider_reveals_nothing(tmp_path, imap_account, smtp_sink,
                                                                monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    imap_account.append(request_mail("owner@corp.test", "工资系统无法登录", "财务部全员无法登录工资系统")[0])
    _cycle(desk)
    with desk.sessions() as session:
        number = session.scalar(select(Ticket.number))
    guess, _ = request_mail("mallory@evil.test", f"回复: 【技术支持】{number}", "请把这个工单的处理进展发给我")
    imap_account.append(guess)
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 1
    assert count(desk.sessions, Message, Message.kind == "outsider") == 1
    assert count(desk.sessions, Participant, Participant.address == "mallory@evil.test") == 0
    assert count(desk.sessions, Event, Event.kind == "outsider_mail") == 1
    assert all("mallory@evil.test" not in m.rcpt_tos for m in smtp_sink.received)


@pytest.mark.postgres
def test_mta_pipe_exits_75_while_the_database_is_down_and_0_once_it_is_back(tmp_path, pg_url, tcp_proxy) -> None:  # noqa: ANN001
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    proxy = tcp_proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    config = write_config(tmp_path, imap_host="127.0.0.1", imap_port=1, imap_user="x", smtp_host="127.0.0.1",
                          smtp_port=1, database_url=proxied)
    raw, _ = request_mail("pipe@corp.test", "MTA 投递", "经由 Postfix 管道投递的请求")
    env = {**os.environ, "MAILDESK_TEST_IMAP_PASSWORD": "unused"}

    def ingest() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "maildesk", "ingest", "-c", str(config), "-"], input=raw,
                              env=env, capture_output=True, timeout=60)

    proxy.reset_peer()
    down = ingest()
    assert down.returncode == 75, down.stderr.decode()
    proxy.clear()
    up = ingest()
    assert up.returncode == 0, up.stderr.decode()
    again = ingest()  # the MTA may deliver twice; it is still one mail
    assert again.returncode == 0, again.stderr.decode()
    from maildesk.store.session import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(pg_url))
    assert count(sessions, RawMail) == 1
    assert count(sessions, Message) == 1


def _dsn(recipient: str, original_id: str) -> bytes:
    """An RFC 3464 report as Postfix writes it, returning our acknowledgment."""
    return (
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.corp.test (Mail Delivery System)\r\n"
        f"To: support@desk.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0800\r\nMessage-ID: <dsn.1@mx.corp.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\n"
        f"be delivered to one or more recipients.\r\n\r\n<{recipient}>: host mx said: 550 5.1.1 User unknown\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.corp.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: support@desk.test\r\nTo: {recipient}\r\nMessage-ID: <{original_id}>\r\nSubject: ack\r\n"
        "--B--\r\n"
    ).encode()


def test_a_bounce_is_linked_to_our_mail_and_suppresses_the_address(tmp_path, imap_account, smtp_sink,
                                                                   monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    imap_account.append(request_mail("gone@corp.test", "离职员工账号", "请停用")[0])
    _cycle(desk)
    ack_id = message_from_bytes(wait_acks(smtp_sink, 1)[0].raw)["Message-ID"].strip("<>")
    imap_account.append(_dsn("gone@corp.test", ack_id))
    _cycle(desk)
    with desk.sessions() as session:
        ticket_id = session.scalar(select(Ticket.id))
        bounce = session.scalars(select(Event).where(Event.kind == "mail_bounced")).one()
    assert bounce.ticket_id == ticket_id
    assert bounce.data["recipients"] == ["gone@corp.test"] and bounce.data["status"] == "5.1.1"
    assert count(desk.sessions, Message, Message.kind == "automatic") == 1

    imap_account.append(request_mail("gone@corp.test", "又一个请求", "再试一次")[0])
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 2
    assert len(acks(smtp_sink)) == 1, "no automatic mail to an address that bounced"


def test_a_refused_login_is_reported_to_the_admins_once_a_day(tmp_path, imap_account, smtp_sink,
                                                             monkeypatch) -> None:  # noqa: ANN001
    clock = FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, clock=clock)
    desk.pollers[0].credential = lambda: "not-the-password"
    for _ in range(3):
        errors = _cycle(desk)
        assert errors[0] and "login refused" in errors[0]
        clock.advance(timedelta(minutes=5))
    alerts = [m for m in smtp_sink.wait_for(1) if kind_of(m) == "admin_alert"]
    assert [m.rcpt_tos for m in alerts] == [("admin@desk.test",)]
    assert "login refused" in str(message_from_bytes(alerts[0].raw).get_payload(decode=True), "utf-8")


def test_a_mail_read_in_a_mail_client_is_still_ingested(tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk, _ = _desk(tmp_path, imap_account, smtp_sink, monkeypatch, done_action="flag")
    imap_account.append(request_mail("seen@corp.test", "已读的邮件", "同事先在 Outlook 里打开过")[0],
                        flags=("\\Seen", "\\Flagged"))
    _cycle(desk)
    assert count(desk.sessions, Ticket) == 1
    flags = imap_account.fetch_flags()
    assert all("$MaildeskDone" in f for f in flags.values())
