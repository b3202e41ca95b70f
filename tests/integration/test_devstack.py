"""The dev stack itself works: Dovecot, the SMTP sink with its faults, and the TCP fault proxy."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import socket
import time
from collections.abc import Callable
from email.message import EmailMessage

import aiosmtplib
import pytest
from imap_tools import MailBoxUnencrypted

from devstack.dovecot import Dovecot, find_dovecot_binary
from devstack.smtpsink import SmtpSink
from devstack.tcpproxy import TcpProxy

pytestmark = pytest.mark.dovecot


def make_mail(n: int, subject: str = "打印机无法打印") -> bytes:
    return (
        f"From: 张三 <zhangsan@example.test>\r\nTo: support@example.test\r\n"
        f"Subject: {subject} #{n}\r\nMessage-ID: <devstack-{n}@example.test>\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"第 {n} 封测试邮件。\r\n"
    ).encode()


def email_message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "support@example.test"
    msg["To"] = "zhangsan@example.test"
    msg["Subject"] = f"【技术支持】TS2026112300{n}"
    msg["Message-ID"] = f"<ack-{n}@example.test>"
    msg.set_content("您的请求已收到。")
    return msg


def test_appended_mails_are_fetched_by_imap_tools_without_marking_them_seen(imap_account) -> None:
    uids = [imap_account.append(make_mail(n)) for n in range(1, 4)]
    assert uids == [1, 2, 3]
    with MailBoxUnencrypted(imap_account.host, imap_account.port, timeout=10).login(
            imap_account.user, imap_account.password) as box:
        mails = list(box.fetch(mark_seen=False, bulk=True))
        assert [m.subject for m in mails] == [f"打印机无法打印 #{n}" for n in (1, 2, 3)]
        assert "IDLE" in box.client.capabilities
    assert all("\\Seen" not in flags for flags in imap_account.fetch_flags().values())


def test_bulk_append_returns_uids_and_keeps_flags(imap_account) -> None:
    uids = imap_account.append_many((make_mail(n) for n in range(500)), flags=["\\Seen"])
    assert uids == list(range(1, 501))
    assert imap_account.list_uids() == uids
    assert all("\\Seen" in flags for flags in imap_account.fetch_flags().values())


def test_recreating_a_folder_changes_its_uidvalidity(imap_account) -> None:
    imap_account.create_folder("工单/处理中")
    imap_account.append(make_mail(1), folder="工单/处理中")
    old, new = imap_account.recreate_folder("工单/处理中")
    assert new != old
    assert imap_account.list_uids("工单/处理中") == []


def test_recreating_inbox_changes_its_uidvalidity(imap_account) -> None:
    imap_account.append_many([make_mail(1), make_mail(2)])
    old, new = imap_account.recreate_folder("INBOX")
    assert new != old
    assert imap_account.list_uids() == []


def test_a_fresh_account_sees_no_mail_of_another_test(imap_account) -> None:
    assert imap_account.list_uids() == []


def test_idle_is_advertised_before_and_after_login(dovecot: Dovecot, imap_account) -> None:
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert "IDLE" in imap.capabilities
        imap.login(imap_account.user, imap_account.password)
        assert b"IDLE" in imap.capability()[1][0].split()
    finally:
        imap.logout()


def test_tls_instance_accepts_only_clients_that_trust_the_test_ca(dovecot_factory) -> None:
    private = dovecot_factory(tls=True, users={"agent": "s3cret"})
    assert private.ca is not None and private.imaps_port
    imap = imaplib.IMAP4_SSL("localhost", private.imaps_port, ssl_context=private.ca.client_context(),
                             timeout=10)
    imap.login("agent", "s3cret")
    imap.logout()
    starttls = imaplib.IMAP4("localhost", private.imap_port, timeout=10)
    starttls.starttls(ssl_context=private.ca.client_context())
    starttls.login("agent", "s3cret")
    starttls.logout()
    import ssl

    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("localhost", private.imaps_port, ssl_context=ssl.create_default_context(), timeout=10)


def test_the_sink_keeps_mail_sent_with_aiosmtplib_and_smtplib(smtp_sink: SmtpSink) -> None:
    asyncio.run(aiosmtplib.send(email_message(1), hostname=smtp_sink.host, port=smtp_sink.port, timeout=10))
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.send_message(email_message(2))
    received = smtp_sink.wait_for(2, timeout=10)
    assert [m.message_id for m in received] == ["<ack-1@example.test>", "<ack-2@example.test>"]
    assert received[0].rcpt_tos == ("zhangsan@example.test",)
    assert [m["Subject"] for m in smtp_sink.messages()] == ["【技术支持】TS20261123001", "【技术支持】TS20261123002"]
    assert smtp_sink.log_path is not None and len(smtp_sink.log_path.read_text().splitlines()) == 2


def test_scripted_451_on_rcpt_refuses_three_times_then_accepts(smtp_sink: SmtpSink) -> None:
    smtp_sink.script("RCPT", ["451 4.3.0 try later"] * 3)
    for _ in range(3):
        with pytest.raises(smtplib.SMTPRecipientsRefused), \
                smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
            client.send_message(email_message(1))
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.send_message(email_message(1))
    assert len(smtp_sink.wait_for(1, timeout=5)) == 1


def test_hang_after_end_of_data_keeps_the_mail_but_times_the_client_out(smtp_sink_factory) -> None:
    sink = smtp_sink_factory(hang_seconds=3)
    sink.script(".", ["hang"])
    with pytest.raises((smtplib.SMTPServerDisconnected, TimeoutError)), \
            smtplib.SMTP(sink.host, sink.port, timeout=1) as client:
        client.send_message(email_message(1))
    assert [m.message_id for m in sink.received] == ["<ack-1@example.test>"]


def test_a_down_sink_refuses_connections_until_up(smtp_sink: SmtpSink) -> None:
    smtp_sink.down()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5)
    smtp_sink.up()
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.send_message(email_message(1))
    assert len(smtp_sink.received) == 1


def test_auth_is_required_and_checked(smtp_sink_factory) -> None:
    sink = smtp_sink_factory(auth=("maildesk", "pw"))
    with pytest.raises(smtplib.SMTPSenderRefused), smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.send_message(email_message(1))
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        asyncio.run(aiosmtplib.send(email_message(1), hostname=sink.host, port=sink.port, timeout=10,
                                    username="maildesk", password="wrong"))
    asyncio.run(aiosmtplib.send(email_message(2), hostname=sink.host, port=sink.port, timeout=10,
                                username="maildesk", password="pw"))
    assert [(m.auth_user, m.message_id) for m in sink.received] == [("maildesk", "<ack-2@example.test>")]


def test_starttls_and_implicit_tls_work_with_the_test_ca(smtp_sink_factory, test_ca, tmp_path) -> None:
    server_ctx = test_ca.server_context(tmp_path / "tls")
    sink = smtp_sink_factory(tls_context=server_ctx, require_starttls=True)
    with smtplib.SMTP("localhost", sink.port, timeout=10) as client:
        client.starttls(context=test_ca.client_context())
        client.send_message(email_message(1))
    implicit = smtp_sink_factory(tls_context=server_ctx, implicit_tls=True)
    with smtplib.SMTP_SSL("localhost", implicit.port, timeout=10, context=test_ca.client_context()) as client:
        client.send_message(email_message(2))
    assert len(sink.received) == 1 and len(implicit.received) == 1


def _fetch_all_bodies(port: int, account) -> int:
    with MailBoxUnencrypted(account.host, port, timeout=3).login(account.user, account.password) as box:
        return len(list(box.fetch(mark_seen=False, bulk=True)))


def test_proxy_cut_mid_fetch_breaks_the_fetch_and_clearing_heals_it(
        imap_account, tcp_proxy: Callable[..., TcpProxy]) -> None:
    imap_account.append_many(make_mail(n) * 20 for n in range(20))
    proxy = tcp_proxy(imap_account.host, imap_account.port)
    assert _fetch_all_bodies(proxy.port, imap_account) == 20
    proxy.limit_data(20_000)
    with pytest.raises((OSError, imaplib.IMAP4.abort, EOFError)):
        _fetch_all_bodies(proxy.port, imap_account)
    proxy.clear()
    assert _fetch_all_bodies(proxy.port, imap_account) == 20
    assert proxy.connections == 3


def test_proxy_reset_and_stall(imap_account, tcp_proxy: Callable[..., TcpProxy]) -> None:
    proxy = tcp_proxy(imap_account.host, imap_account.port)
    proxy.reset_peer()
    with pytest.raises((OSError, imaplib.IMAP4.abort, EOFError)):
        imaplib.IMAP4(proxy.host, proxy.port, timeout=3)
    proxy.clear()
    imap = imaplib.IMAP4(proxy.host, proxy.port, timeout=3)
    proxy.stall()
    started = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        imap.noop()
    assert time.monotonic() - started < 10
    imap.shutdown()
    proxy.clear()
    proxy.latency(200)
    started = time.monotonic()
    imaplib.IMAP4(proxy.host, proxy.port, timeout=3).logout()
    assert time.monotonic() - started >= 0.2


def test_the_samples_parse_and_the_reply_template_renders() -> None:
    import email
    import email.policy

    from devstack.mailstack import render_reply, sample_paths

    paths = sample_paths()
    assert len(paths) == 7
    for path in paths:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg["Message-ID"] and msg["Date"] and msg["From"] and not msg.defects, path.name
        assert msg.get_body(("plain", "html")) is not None, path.name
    reply = email.message_from_bytes(render_reply("TS20261123001", "ack-1@example.test"),
                                     policy=email.policy.default)
    assert reply["Subject"] == "回复: 【技术支持】TS20261123001 打印机无法打印"
    assert reply["In-Reply-To"] == "<ack-1@example.test>"
    assert "TS20261123001" in reply.get_body(("plain",)).get_content()
    with pytest.raises(ValueError):
        render_reply("TS1\r\nBcc: x@evil.test", "<a@b>")


def test_the_mail_stack_writes_stack_json_and_loads_samples() -> None:
    import json
    import shutil
    import tempfile

    from devstack.mailstack import MailStack

    if find_dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    state = tempfile.mkdtemp(prefix="devstack-mailstack-")  # not tmp_path, see the dovecot fixture
    with MailStack(state, password="demo-pw") as stack:
        info = json.loads(stack.stack_file.read_text())
        assert (info["imap_port"], info["smtp_port"], info["imap_password"]) == (
            stack.imap_port, stack.smtp_port, "demo-pw")
        assert stack.load_samples() == list(range(1, 8))
        with MailBoxUnencrypted(stack.imap_host, stack.imap_port, timeout=10).login("support", "demo-pw") as box:
            subjects = [m.subject for m in box.fetch(mark_seen=False, bulk=True)]
        assert "新员工入职需要开通账号和电脑" in subjects
        with smtplib.SMTP(stack.smtp_host, stack.smtp_port, timeout=10) as client:
            client.send_message(email_message(1))
        assert len(stack.sink.wait_for(1, timeout=5)) == 1
    assert not stack.stack_file.exists()
    shutil.rmtree(state)


@pytest.mark.postgres
def test_pg_url_is_a_fresh_empty_database(pg_url: str) -> None:
    import psycopg

    conninfo = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert name.startswith("maildesk_test_") and tables == 0


def test_the_test_ca_issues_expired_and_self_signed_certificates_clients_refuse(test_ca, tmp_path) -> None:
    import ssl
    import threading

    from devstack.tlsca import self_signed

    for cert, key in (test_ca.issue("expired", tmp_path, expired=True), self_signed("rogue", tmp_path),
                      test_ca.issue("wrong-name", tmp_path, ("mail.other.test",))):
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]

            def serve(listener=listener, server_ctx=server_ctx) -> None:
                conn, _ = listener.accept()
                try:
                    server_ctx.wrap_socket(conn, server_side=True).close()
                except (ssl.SSLError, OSError):
                    conn.close()

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            with pytest.raises(ssl.SSLCertVerificationError), \
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                test_ca.client_context().wrap_socket(raw, server_hostname="localhost")
            thread.join(5)


def test_idle_reports_a_mail_appended_by_another_connection(imap_account) -> None:
    import threading

    with MailBoxUnencrypted(imap_account.host, imap_account.port, timeout=10).login(
            imap_account.user, imap_account.password) as box:
        box.idle.start()
        try:
            timer = threading.Timer(0.5, imap_account.append, args=(make_mail(1),))
            timer.start()
            responses = box.idle.poll(timeout=10)
            timer.join()
        finally:
            box.idle.stop()
    assert any(b"EXISTS" in r for r in responses)


def test_a_restarted_dovecot_keeps_port_and_mail(dovecot_factory) -> None:
    private = dovecot_factory(users={"agent": "pw"})
    port = private.imap_port
    private.append("agent", "pw", "INBOX", make_mail(1))
    private.restart(down_seconds=0.2)
    assert private.imap_port == port
    assert private.list_uids("agent") == [1]


def test_devstack_up_runs_until_sigterm_and_stops_everything() -> None:
    import json
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if find_dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    state = Path(tempfile.mkdtemp(prefix="devstack-cli-"))
    proc = subprocess.Popen([sys.executable, "-m", "devstack", "up", "--state", str(state), "--load-samples"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (state / "stack.json").exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "stack.json did not appear"
            time.sleep(0.1)
        info = json.loads((state / "stack.json").read_text())
        with MailBoxUnencrypted(info["imap_host"], info["imap_port"], timeout=10).login(
                info["imap_user"], info["imap_password"]) as box:
            assert len(list(box.fetch(mark_seen=False, bulk=True, headers_only=True))) == 7
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not (state / "stack.json").exists()
        with pytest.raises(OSError):
            socket.create_connection((info["imap_host"], info["imap_port"]), timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(state, ignore_errors=True)
